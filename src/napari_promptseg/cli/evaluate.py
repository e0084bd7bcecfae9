"""``promptseg evaluate``: clicks-to-accuracy of one or more models on your own labels.

    promptseg evaluate cells.tif cells_gt.tif --model vit_b --model vit_b_lm -o report.csv
    promptseg evaluate cells.tif cells_gt.tif --checkpoint finetuned.pth --clicks 10 -o r.csv

Writes report.csv (IoU after every click, per model and object), report_summary.csv (mIoU@1,
@3, @5, NoC@85, NoC@90, failure rates, seconds per object; per class where the ground truth
has a class table) and report.png (mIoU against clicks, one line per model). See
docs/evaluate.md and ``core.workflows.evaluation``.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from .common import add_image_arguments, check_output_path
from .scale import add_scale_arguments


class _ModelList(argparse.Action):
    """--model and --checkpoint append to one list, so models run in command-line order."""

    def __call__(self, parser, namespace, values, option_string=None) -> None:
        kind = "checkpoint" if option_string == "--checkpoint" else "name"
        models = list(getattr(namespace, "models", None) or [])
        models.append((kind, values))
        namespace.models = models


def register(commands) -> None:
    evaluate = commands.add_parser(
        "evaluate",
        help="measure clicks-to-accuracy (mIoU@k, NoC@85/90) of models against ground-truth labels",
        description=(
            "Simulated interactive segmentation of every ground-truth object: the first prompt "
            "at the object's most interior pixel (or its box), then each click at the most "
            "interior pixel of the largest error region (positive where the object is missed, "
            "negative where the mask spills), with the previous mask as SAM's mask input. "
            "Stacks are evaluated plane by plane. Writes REPORT.csv, REPORT_summary.csv and "
            "REPORT.png."
        ),
    )
    evaluate.add_argument("image", type=Path, help="image file: 2D (gray or RGB) or a stack")
    evaluate.add_argument(
        "ground_truth",
        type=Path,
        metavar="GT_LABELS",
        help="label image of the same planes (0 = background, each id one object)",
    )
    group = evaluate.add_argument_group("models (repeat to compare side by side; default vit_b)")
    group.add_argument(
        "--model", action=_ModelList, dest="models", metavar="NAME", help="registry name"
    )
    group.add_argument(
        "--checkpoint", action=_ModelList, dest="models", type=Path, metavar="FILE",
        help="a local SAM checkpoint",
    )  # fmt: skip
    group.add_argument(
        "--model-type",
        action="append",
        dest="model_types",
        metavar="TYPE",
        help="architecture of the checkpoints: once for all, or once per --checkpoint "
        "(guessed if omitted)",
    )
    group.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    group.add_argument(
        "--offline", action="store_true", help="never download; use cached files only"
    )
    evaluate.add_argument(
        "--clicks", type=int, default=20, help="interactions per object, first prompt included"
    )
    evaluate.add_argument(
        "--start", choices=("point", "box"), default="point", help="the first prompt"
    )
    evaluate.add_argument(
        "--no-mask-input",
        dest="mask_input",
        action="store_false",
        help="do not give SAM the previous mask's logits with each click",
    )
    evaluate.add_argument(
        "--classes",
        type=Path,
        metavar="CSV",
        help="objects table with id and class columns, for per-class figures "
        "(default: GT_LABELS_objects.csv beside the labels, if it has a class column)",
    )
    evaluate.add_argument(
        "--store",
        type=Path,
        help="embedding store folder to reuse and fill (default: the user's store)",
    )
    evaluate.add_argument("--no-store", action="store_true", help="keep embeddings in memory only")
    evaluate.add_argument("-o", "--output", type=Path, required=True, help="report to write (.csv)")
    add_image_arguments(evaluate)
    add_scale_arguments(evaluate, store=False)
    evaluate.set_defaults(run=run_evaluate, models=None)


def run_evaluate(args) -> int:
    from ..core.storage.readers import read_image
    from ..core.workflows.evaluation import (
        EvaluationSettings,
        check_ground_truth,
        format_summary,
        iter_evaluate,
        write_report,
    )
    from ..core.workflows.evaluation.run import planes_shape
    from ..core.workflows.stack import planes_of

    output = check_output_path(args.output, (".csv",))
    settings = EvaluationSettings(clicks=args.clicks, start=args.start, mask_input=args.mask_input)
    planes = planes_of(
        read_image(args.image),
        contrast_limits=tuple(args.contrast_limits) if args.contrast_limits else None,
        channel_axis=args.channel_axis,
        channels=args.channels[0] if args.channels and len(args.channels) == 1 else args.channels,
    )
    labels = check_ground_truth(
        _read_ground_truth(args.ground_truth), planes_shape(planes), planes.plane_shape
    )
    classes = _classes(args)
    loaders = _model_loaders(args)  # refuses bad model arguments before anything slow
    if args.scheduler:  # per model and plane, here or on Dask (cli/scale.py, docs/scale.md)
        from .scale import evaluate_on_scheduler

        report = evaluate_on_scheduler(args, settings, classes, labels)
    else:
        steps = iter_evaluate(loaders, planes, labels, settings, classes=classes)
        report = _run_with_progress(steps)
    paths = write_report(report, output)
    print(format_summary(report))
    print(f"wrote {paths.objects}, {paths.summary.name} and {paths.plot.name}")
    return 0


def _read_ground_truth(path: Path):
    from ..core.errors import ImageError
    from ..core.storage.readers import read_image
    from ..core.workflows.evaluation import EvaluationError

    try:
        return read_image(path)
    except ImageError as error:
        raise EvaluationError(f"ground truth: {error}") from None


def _classes(args) -> dict[int, str] | None:
    """id → class from --classes, or from the labels' own objects table if it has classes."""
    from ..core.storage.export import objects_csv_path, read_objects_csv
    from ..core.workflows.evaluation import EvaluationError, classes_from_rows

    table = args.classes
    if table is None:
        beside = objects_csv_path(args.ground_truth)
        if not beside.is_file():
            return None
        table = beside
    elif not table.is_file():
        raise EvaluationError(f"class table {table} does not exist.")
    try:
        rows = read_objects_csv(table)
    except (OSError, UnicodeDecodeError) as error:
        raise EvaluationError(f"cannot read class table {table}: {error}") from None
    if args.classes is not None and (not rows or not {"id", "class"} <= set(rows[0])):
        raise EvaluationError(f"class table {table} needs the columns id and class.")
    classes = classes_from_rows(rows)
    if classes:
        print(f"classes of {len(classes)} object(s) from {table}", file=sys.stderr)
    return classes or None


def _model_loaders(args):
    """One loader per --model / --checkpoint, in order (vit_b when none is given)."""
    from ..core import PromptSegmenter
    from ..core.errors import ModelError
    from ..core.models.registry import get_spec
    from ..core.storage.store import EmbeddingStore

    models = args.models or [("name", "vit_b")]
    checkpoints = [value for kind, value in models if kind == "checkpoint"]
    types = args.model_types or []
    if types and not checkpoints:
        raise ModelError("--model-type describes a --checkpoint; give the checkpoint too.")
    if len(types) > 1 and len(types) != len(checkpoints):
        raise ModelError(
            f"{len(types)} --model-type for {len(checkpoints)} --checkpoint: give one for all "
            "or one per checkpoint."
        )
    for path in checkpoints:
        if not path.is_file():
            raise ModelError(f"checkpoint file {path} does not exist.")
    for kind, value in models:
        if kind == "name":
            get_spec(value)  # an unknown name fails now, not after the first model's run
    store = None if args.no_store else EmbeddingStore(args.store)
    loaders = []
    checkpoint_number = 0
    for kind, value in models:
        if kind == "checkpoint":
            model_type = (
                types[0] if len(types) == 1 else types[checkpoint_number] if types else None
            )
            checkpoint_number += 1
            options = {"checkpoint": value, "model_type": model_type}
        else:
            options = {"name": value}
        loaders.append(_loader(PromptSegmenter, options, args, store))
    return loaders


def _loader(engine, options, args, store):
    def load():
        started = time.perf_counter()
        segmenter = engine.load(
            options.get("name"),
            checkpoint=options.get("checkpoint"),
            model_type=options.get("model_type"),
            device=args.device,
            offline=args.offline,
            store=store,
        )
        from ..core.workflows.instances.clicks import use_instance_clicks

        use_instance_clicks(segmenter)  # the demo model: clicks select its AIS objects
        seconds = time.perf_counter() - started
        print(f"model {segmenter.name} loaded in {seconds:.1f} s", file=sys.stderr)
        return segmenter

    return load


def _run_with_progress(steps):
    from tqdm import tqdm

    bar = None
    try:
        while True:
            step = next(steps)
            if bar is None:
                bar = tqdm(total=step.total, unit="object", file=sys.stderr, leave=False)
            bar.set_description(f"{step.model or 'loading'} {step.stage}".strip(), refresh=False)
            bar.update(step.done - bar.n)
    except StopIteration as finished:
        return finished.value
    finally:
        if bar is not None:
            bar.close()
        steps.close()
