"""``promptseg gui [IMAGE]``: napari with an image (or the sample) and the widget docked."""

from __future__ import annotations

from pathlib import Path


def register(commands) -> None:
    gui = commands.add_parser(
        "gui",
        help="open napari with an image (default: the synthetic sample) and the widget docked",
    )
    gui.add_argument("image", nargs="?", type=Path, help="image file to open (default: sample)")
    gui.add_argument("--model", help="load this registry model at start (downloads if needed)")
    gui.add_argument("--checkpoint", type=Path, help="load this local checkpoint at start")
    gui.add_argument("--model-type", help="model type of --checkpoint (guessed if omitted)")
    gui.add_argument("--device", default=None, help="cpu, cuda, mps (default: best available)")
    gui.set_defaults(run=run_gui)


def run_gui(args) -> int:
    import napari

    from .._qt.widget import PromptSegWidget
    from .._sample_data import make_sample_cells
    from ..core.errors import ImageError

    if args.image is not None and not args.image.exists():
        raise ImageError(f"image file {args.image} does not exist.")
    viewer = napari.Viewer(title="napari-promptseg")
    if args.image is None:
        for data, kwargs, _ in make_sample_cells():
            viewer.add_image(data, **kwargs)
    else:
        viewer.open(str(args.image))
    widget = PromptSegWidget(viewer)
    viewer.window.add_dock_widget(widget, name="Prompt segmentation", area="right")
    if args.checkpoint is not None:
        widget.session.load_model(
            checkpoint=args.checkpoint, model_type=args.model_type, device=args.device
        )
    elif args.model is not None:
        widget.select_model(args.model)
        widget.session.load_model(args.model, device=args.device)
    napari.run()
    return 0
