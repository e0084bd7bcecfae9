"""``promptseg everything``'s automatic modes: the flags of AIS / APG and which mode runs.

Shared by the one-image command (:mod:`.everything`) and the folder command
(:mod:`.everything_folder`).
"""

from __future__ import annotations

# (flag, WatershedParams / APGParams field, type, help); given ones go to the mode that has them
INSTANCE_PARAMETERS = (
    ("--center-distance-threshold", "center_distance_threshold", float, "seeds below (0.5)"),
    ("--boundary-distance-threshold", "boundary_distance_threshold", float, "seeds below (0.5)"),
    ("--foreground-threshold", "foreground_threshold", float, "foreground above (0.5)"),
    ("--foreground-smoothing", "foreground_smoothing", float, "ais: sigma of the foreground (1.0)"),
    ("--distance-smoothing", "distance_smoothing", float, "ais: sigma of the distances (1.6)"),
    ("--min-size", "min_size", int, "drop objects under N pixels (ais 0, apg 25)"),
    ("--nms-threshold", "nms_threshold", float, "apg: mask IoU of duplicates (0.9)"),
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


def instance_params(args, mode: str) -> tuple:
    """The given ais/apg flags that ``mode``'s parameters have, as (name, value) pairs."""
    from dataclasses import fields

    from ..core.workflows.instances import APGParams, WatershedParams

    known = {f.name for f in fields(WatershedParams if mode == "ais" else APGParams)}
    given = {dest: getattr(args, dest) for _f, dest, _k, _h in INSTANCE_PARAMETERS}
    return tuple((k, v) for k, v in given.items() if v is not None and k in known)


def decoder_path(args) -> str | None:
    """``--decoder`` made absolute (workers may run elsewhere), or None."""
    return str(args.decoder.expanduser().absolute()) if args.decoder is not None else None
