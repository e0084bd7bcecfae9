"""``promptseg models``: the registry, sizes, and what is cached where."""

from __future__ import annotations


def register(commands) -> None:
    models = commands.add_parser(
        "models", help="list the SAM models, their size and whether they are cached"
    )
    models.set_defaults(run=run_models)


def run_models(args) -> int:
    from ..core.models import cache_dir, list_models

    rows = list_models()
    print(f"{'name':<24} {'type':<8} {'size':>9}  {'cached':<6}  path")
    for row in rows:
        size = f"{row['size'] / 1e6:.0f} MB" if row.get("size") else "?"
        cached = "yes" if row["cached"] else "no"
        print(f"{row['name']:<24} {row['model_type']:<8} {size:>9}  {cached:<6}  {row['path']}")
    print(f"\ncache folder: {cache_dir()} (set NAPARI_PROMPTSEG_CACHE to move it)")
    return 0
