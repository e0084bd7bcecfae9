"""``promptseg classify``: object classes learned from a few examples, or a saved classifier.

    promptseg classify IMG LABELS --train EXAMPLES.csv --save cells.npz -o table.csv
    promptseg classify IMG LABELS --classifier cells.npz -o table.csv
    promptseg classify FOLDER LABELS_FOLDER --classifier cells.npz -o TABLES/ [--scheduler local:2]

Features per object are the SAM embedding pooled under its mask plus shape and intensity
measures (:mod:`napari_promptseg.core.workflows.classify.features`); the embedding comes
from ``--store`` when the plane was embedded before, else it is computed once. For a
folder, each image's label image is the file of LABELS_FOLDER with the same name (any
suffix), and each image is one task (on Dask with ``--scheduler``); the tables are written
as ``TABLES/<name>_classes.csv``.
"""

from __future__ import annotations

import sys
from pathlib import Path

from .common import add_image_arguments, add_model_arguments
from .scale import add_scale_arguments

TABLE_SUFFIX = "_classes.csv"


def register(commands) -> None:
    classify = commands.add_parser(
        "classify",
        help="give every object a class, learned from a few examples (random forest)",
        description=(
            "Train a classifier from a few objects per class (--train EXAMPLES.csv with "
            "columns id,class) or apply a saved one (--classifier FILE.npz), and write a "
            "table id,class,probability with every object of LABELS."
        ),
    )
    classify.add_argument("image", type=Path, help="image file (2D or stack) or folder of them")
    classify.add_argument(
        "labels", type=Path, help="its label image (tif, png, zarr), or a folder of them"
    )
    what = classify.add_mutually_exclusive_group(required=True)
    what.add_argument(
        "--train", type=Path, metavar="EXAMPLES.csv", help="examples: columns id,class"
    )
    what.add_argument(
        "--classifier", type=Path, metavar="FILE.npz", help="a classifier saved with --save"
    )
    classify.add_argument(
        "--save", type=Path, metavar="FILE.npz", help="with --train: save the classifier here"
    )
    classify.add_argument(
        "--classes",
        nargs="+",
        help="with --train: the classes and their order (default: as the examples list them)",
    )
    classify.add_argument("--trees", type=int, default=200, help="trees of the random forest (200)")
    classify.add_argument(
        "-o",
        "--output",
        type=Path,
        required=True,
        help="table to write (.csv); for a folder of images, the folder for the tables",
    )
    add_model_arguments(classify)
    add_image_arguments(classify)
    add_scale_arguments(classify)
    classify.set_defaults(run=run_classify)


def run_classify(args) -> int:
    from ..core.errors import ExportError
    from ..core.storage.ome_zarr import is_zarr_path
    from ..core.workflows.classify.classifier import SUFFIX, load_classifier
    from ..core.workflows.classify.features import ClassifierError
    from ..core.workflows.classify.images import read_examples
    from ..core.workflows.distributed.scheduler import parse_scheduler
    from .common import check_output_path

    # everything that can be refused is refused before the model loads
    parse_scheduler(args.scheduler)
    folder = args.image.is_dir() and not is_zarr_path(args.image)
    if args.save is not None:
        if args.train is None:
            raise ClassifierError("--save needs --train (a loaded classifier is saved already).")
        if args.save.suffix.lower() != SUFFIX:
            raise ClassifierError(f"classifiers are saved as {SUFFIX} files; got {args.save}.")
        check_output_path(args.save, (SUFFIX,))
    if args.trees < 1:
        raise ClassifierError(f"--trees must be at least 1; got {args.trees}.")
    classifier = load_classifier(args.classifier) if args.classifier is not None else None
    examples = read_examples(args.train) if args.train is not None else None
    if folder:
        if classifier is None:
            raise ClassifierError(
                "train on one image (--train with its examples), save the classifier with "
                "--save, then apply it to the folder with --classifier."
            )
        if args.output.suffix.lower() == ".csv" or (
            args.output.exists() and not args.output.is_dir()
        ):
            raise ExportError(
                f"for a folder of images, -o names the folder for the tables; got {args.output}."
            )
        return _classify_folder(args, classifier)
    check_output_path(args.output, (".csv",))
    return _classify_image(args, classifier, examples)


def _classify_image(args, classifier, examples) -> int:
    from ..core.workflows.classify.classifier import ObjectClassifier, save_classifier
    from ..core.workflows.classify.images import (
        FeaturesTask,
        features_task,
        prediction_rows,
        read_labels,
        write_table,
    )
    from ..core.workflows.distributed.sources import ImageSource
    from .common import image_conversion
    from .scale import open_store, recipe_from_args, run_tasks

    read_labels(args.labels)  # a bad label file is named before the model loads
    source = ImageSource.create(args.image, **image_conversion(args)).resolved()
    recipe = recipe_from_args(args, store=open_store(args.store))
    task = FeaturesTask(source, str(args.labels))
    (features,) = run_tasks(args, features_task, [task], recipe, label="object features")
    if classifier is None:
        classifier = ObjectClassifier.train(
            features, examples, classes=args.classes, trees=args.trees
        )
        counts = ", ".join(f"{name} {n}" for name, n in classifier.examples.items())
        print(
            f"trained on {sum(classifier.examples.values())} examples ({counts})", file=sys.stderr
        )
        if args.save is not None:
            print(f"saved the classifier to {save_classifier(args.save, classifier)}")
    predictions = classifier.predict(features)
    path = write_table(args.output, prediction_rows(predictions))
    print(f"wrote {path} ({len(predictions)} objects: {_summary(predictions)})")
    return 0


def _classify_folder(args, classifier) -> int:
    from ..core.errors import ExportError
    from ..core.workflows.classify.images import (
        FeaturesTask,
        features_task,
        prediction_rows,
        write_table,
    )
    from ..core.workflows.distributed.sources import ImageSource
    from .common import image_conversion, input_files
    from .everything_folder import output_name
    from .scale import open_store, recipe_from_args, run_tasks

    out: Path = args.output
    parent = out.parent if str(out.parent) else Path(".")
    if not parent.is_dir():
        raise ExportError(f"cannot write into {out}: the folder {parent} does not exist.")
    labels = _labels_by_name(args.labels)
    settings = image_conversion(args)
    tasks, missing = [], []
    for path in input_files(args.image):
        name = output_name(path)
        if name not in labels:
            missing.append(path.name)
            continue
        tasks.append(FeaturesTask(ImageSource.create(path, **settings), str(labels[name])))
    if not tasks:
        raise ExportError(
            f"no image of {args.image} has a label image of the same name in {args.labels}."
        )
    recipe = recipe_from_args(args, store=open_store(args.store))
    written: list[Path] = []

    def write(task, features) -> None:
        predictions = classifier.predict(features)
        out.mkdir(exist_ok=True)
        name = output_name(Path(task.source.path))
        path = write_table(out / f"{name}{TABLE_SUFFIX}", prediction_rows(predictions))
        written.append(path)
        print(f"{name}: {len(predictions)} objects ({_summary(predictions)}) -> {path}")

    run_tasks(args, features_task, tasks, recipe, label="images", on_result=write)
    print(f"wrote {len(written)} table(s) into {out}")
    if missing:
        print(
            f"{len(missing)} image(s) without a label image skipped: {', '.join(missing)}",
            file=sys.stderr,
        )
        return 1
    return 0


def _labels_by_name(path: Path) -> dict[str, Path]:
    from ..core.errors import ImageError
    from .common import input_files
    from .everything_folder import output_name

    if not path.is_dir():
        raise ImageError(f"for a folder of images, LABELS must be a folder too; got {path}.")
    return {output_name(p): p for p in input_files(path)}


def _summary(predictions) -> str:
    counts: dict[str, int] = {}
    for prediction in predictions:
        counts[prediction.class_name] = counts.get(prediction.class_name, 0) + 1
    return ", ".join(f"{name} {n}" for name, n in sorted(counts.items())) or "none"
