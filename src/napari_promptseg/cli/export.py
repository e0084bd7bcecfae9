"""``promptseg export``: a label image (+ objects table) → COCO instance segmentation JSON."""

from __future__ import annotations

from pathlib import Path

from .common import check_output_path


def register(commands) -> None:
    export = commands.add_parser(
        "export",
        help="convert a label image and its objects table to COCO JSON",
        description=(
            "Writes COCO instance segmentation (RLE masks): one annotation per object (per "
            "plane for stacks), with the predicted IoU as score and the stability from the "
            "objects table. By default the table is LABELS_objects.csv beside the labels, "
            "if it exists."
        ),
    )
    export.add_argument("labels", type=Path, help="label image (.tif), 2D or a stack")
    export.add_argument(
        "--objects", type=Path, help="objects table CSV (default: LABELS_objects.csv if present)"
    )
    export.add_argument("--coco", type=Path, required=True, help="COCO JSON file to write")
    export.add_argument(
        "--image-name", help="file_name of the COCO images (default: the labels file's name)"
    )
    export.add_argument(
        "--category",
        action="append",
        dest="categories",
        metavar="NAME",
        help="category name (repeatable; default 'object'); rows name theirs in 'class'",
    )
    export.add_argument(
        "--classes",
        type=Path,
        metavar="FILE",
        help="class list (.json, as the widget saves it): its names become the categories, in order",
    )
    export.add_argument(
        "--all-planes",
        action="store_true",
        help="for stacks, also list planes without objects (as images with no annotations)",
    )
    export.set_defaults(run=run_export)


def run_export(args) -> int:
    from ..core.errors import ExportError
    from ..core.storage.coco import write_coco_json
    from ..core.storage.export import objects_csv_path, read_objects_csv
    from ..core.storage.readers import read_image

    output = check_output_path(args.coco, (".json",))
    categories = list(args.categories or [])
    if args.classes is not None:
        from ..core.storage.classes import load_class_list

        categories += [n for n in load_class_list(args.classes).names if n not in categories]
    labels = read_image(args.labels)
    table = args.objects
    if table is None and objects_csv_path(args.labels).is_file():
        table = objects_csv_path(args.labels)
    rows = []
    if table is not None:
        if not table.is_file():
            raise ExportError(f"objects table {table} does not exist.")
        try:
            rows = read_objects_csv(table)
        except (OSError, UnicodeDecodeError) as error:
            raise ExportError(f"cannot read objects table {table}: {error}") from error
    written = write_coco_json(
        output,
        labels,
        rows,
        image_name=args.image_name or args.labels.name,
        categories=categories or None,
        all_planes=args.all_planes,
    )
    import json

    with open(written, encoding="utf-8") as file:
        document = json.load(file)
    scored = sum("score" in a for a in document["annotations"])
    source = f", scores from {table}" if table is not None else ", no objects table"
    print(
        f"wrote {written}: {len(document['images'])} image(s), "
        f"{len(document['annotations'])} object(s), {scored} with a score{source}"
    )
    return 0
