"""``promptseg everything``'s automatic modes: the flags of AIS / APG and which mode runs.

Shared by the one-image command (:mod:`.everything`) and the folder command
(:mod:`.everything_folder`).
"""

from __future__ import annotations

import argparse


def mask_threshold_value(text: str) -> float | str:
    """``--mask-threshold``: a logit, or ``auto`` (micro-sam's local Otsu per mask)."""
    if text.strip().lower() == "auto":
        return "auto"
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is neither a number (a logit; SAM's is 0) nor 'auto'"
        ) from None


# (flag, WatershedParams / APGParams field, type, help); given ones go to the mode that has them
INSTANCE_PARAMETERS = (
    ("--center-distance-threshold", "center_distance_threshold", float, "seeds below (0.5)"),
    ("--boundary-distance-threshold", "boundary_distance_threshold", float, "seeds below (0.5)"),
    ("--foreground-threshold", "foreground_threshold", float, "foreground above (0.5)"),
    ("--foreground-smoothing", "foreground_smoothing", float, "ais: sigma of the foreground (1.0)"),
    ("--distance-smoothing", "distance_smoothing", float, "ais: sigma of the distances (1.6)"),
    ("--min-size", "min_size", int, "drop objects under N pixels (ais 0, apg 25)"),
    ("--nms-threshold", "nms_threshold", float, "apg: mask IoU of duplicates (0.9)"),
    (
        "--mask-threshold",
        "mask_threshold",
        mask_threshold_value,
        "apg: logits above this are the mask (SAM's 0), or auto: one threshold per mask "
        "from a local Otsu of its logits (micro-sam's mask_threshold='auto')",
    ),
)
# (flag, APGParams field, help): switches, on when given
INSTANCE_SWITCHES = (
    (
        "--refine-with-boxes",
        "refine_with_box_prompts",
        "apg: decode once more from a box around each point's mask (micro-sam's "
        "refine_with_box_prompts)",
    ),
)


def resolve_cli_mode(args) -> str:
    """``--mode``, with ``auto`` decided before the model loads: ais for a micro-sam model
    with an instance decoder (registry name, checkpoint with ``decoder_state``, or
    ``--decoder``), grid otherwise. An explicit ais/apg is checked where the model loads."""
    if args.mode != "auto":
        return args.mode
    if args.decoder is not None:
        return "ais"
    if args.checkpoint is not None:
        from ..core.models.checkpoint import has_decoder_state

        return "ais" if has_decoder_state(args.checkpoint) else "grid"
    from ..core.workflows.instances.checkpoint import DECODER_MODELS

    if args.model in DECODER_MODELS:
        return "ais"
    return "ais" if _file_has_decoder(args.model) else "grid"


def _file_has_decoder(name: str | None) -> bool:
    """A registry model whose file is here (the demo, "my models", a cached one) with a
    ``decoder_state``; read cheaply, nothing downloaded."""
    from ..core.errors import ModelError
    from ..core.models.checkpoint import has_decoder_state
    from ..core.models.registry import DEFAULT_MODEL, checkpoint_path

    try:
        path = checkpoint_path(name or DEFAULT_MODEL)
    except ModelError:
        return False
    return path.is_file() and has_decoder_state(path)


def add_tiling_arguments(group) -> None:
    """``--tile-shape H W`` and ``--halo H W`` (micro-sam's ``tile_shape`` / ``halo``)."""
    group.add_argument(
        "--tile-shape",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="ais/apg by tiles of H x W px, each embedded with a halo around it and the "
        "decoder maps stitched (micro-sam's Tiled* classes; default: tiles of 768 only for "
        "planes over 2048 px)",
    )
    group.add_argument(
        "--halo",
        type=int,
        nargs=2,
        metavar=("H", "W"),
        help="with --tile-shape: px added around each tile (default 128 128)",
    )


def tiling_of(args) -> dict:
    """The tasks' ``tile_shape`` / ``halo`` from the flags; ``ImageError`` when unusable,
    before any model loads."""
    from ..core.errors import ImageError
    from ..core.workflows.instances.tiles import TileLayout

    tile_shape = tuple(args.tile_shape) if args.tile_shape else None
    halo = tuple(args.halo) if args.halo else None
    if halo is not None and tile_shape is None:
        raise ImageError("--halo needs --tile-shape")
    if tile_shape is not None:
        if args.mode == "grid":
            raise ImageError(
                "--tile-shape is for --mode ais/apg (the grid mode tiles with --crop-n-layers)"
            )
        TileLayout((1, 1), tile_shape, halo or (0, 0))  # refuses tiles under 16 px
    return {"tile_shape": tile_shape, "halo": halo}


def instance_params(args, mode: str) -> tuple:
    """The given ais/apg flags that ``mode``'s parameters have, as (name, value) pairs."""
    from dataclasses import fields

    from ..core.workflows.instances import APGParams, WatershedParams

    known = {f.name for f in fields(WatershedParams if mode == "ais" else APGParams)}
    given = {dest: getattr(args, dest) for _f, dest, _k, _h in INSTANCE_PARAMETERS}
    given.update({dest: getattr(args, dest) or None for _f, dest, _h in INSTANCE_SWITCHES})
    return tuple((k, v) for k, v in given.items() if v is not None and k in known)


def decoder_path(args) -> str | None:
    """``--decoder`` made absolute (workers may run elsewhere), or None."""
    return str(args.decoder.expanduser().absolute()) if args.decoder is not None else None
