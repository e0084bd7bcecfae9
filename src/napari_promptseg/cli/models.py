"""``promptseg models``: the registry with family, download size, speed here, and the cache."""

from __future__ import annotations


def register(commands) -> None:
    models = commands.add_parser(
        "models",
        help="list the models (SAM, MobileSAM, SAM 2.1): family, download size, speed here, cache",
    )
    models.set_defaults(run=run_models)


def run_models(args) -> int:
    from ..core.models import FAMILIES, cache_dir, list_models
    from ..core.models.families import is_installed

    rows = list_models()
    print(
        f"{'name':<20} {'family':<9} {'type':<15} {'download':>9}  {'speed (measured here)':<26} "
        f"{'offline':<8}  path"
    )
    for row in rows:
        size = f"{row['size'] / 1e6:.0f} MB" if row.get("size") else "?"
        # offline: usable without a download (in the package, made here, or in the cache)
        offline = "yes" if row["cached"] else "no"
        print(
            f"{row['name']:<20} {row['family_title']:<9} {row['model_type']:<15} {size:>9}  "
            f"{row['speed']:<26} {offline:<8}  {row['path']}"
        )
    print(f"\ncache folder: {cache_dir()} (set NAPARI_PROMPTSEG_CACHE to move it)")
    for family in FAMILIES.values():
        if not is_installed(family):
            print(f"{family.title} models need {family.package!r}: {family.install}")
    print("demo comes with the package: it works offline, on synthetic-looking nuclei.")
    print("On a CPU pick vit_t or vit_t_lm (MobileSAM); on a GPU sam2.1_hiera_b+ (see README).")
    return 0
