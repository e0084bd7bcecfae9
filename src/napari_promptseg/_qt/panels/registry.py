"""Extra sections of the dock widget, each a QWidget in its own module.

A panel is constructed as ``Panel(viewer, session)`` and talks to the session only through
its public API (attributes ``segmenter``, ``image_layer``, ``labels_layer``, ``embedding``,
``current_slice``, ``cache``; methods ``set_image_layer``, ``set_labels_layer``,
``ensure_labels_layer``, ``refresh``, ``report``; signals ``status``, ``problem``,
``slice_changed``, ``embedding_ready``, ``objects_changed``, ``model_changed``). A panel that
starts workers stops them in ``close()``. The helpers below are what panels share:
:func:`say`, :func:`plane_ready`, :func:`disconnect` (workers: :mod:`.workers`).
"""

from __future__ import annotations

import contextlib
import importlib
import logging

log = logging.getLogger(__name__)

# (section title, "module:Class") in the order they appear under the prompt controls.
PANELS = (
    ("Stack / time series", "napari_promptseg._qt.panels.stack:StackPanel"),
    (
        "Propagate through slices",
        "napari_promptseg._qt.panels.propagation:PropagationPanel",
    ),
    ("Segment everything", "napari_promptseg._qt.panels.everything:EverythingPanel"),
    ("Image folder", "napari_promptseg._qt.panels.folder:FolderPanel"),
    ("Embeddings on disk", "napari_promptseg._qt.panels.store:StorePanel"),
    ("Autosave", "napari_promptseg._qt.panels.autosave:AutosavePanel"),
)


def load_panels(viewer, session) -> list[tuple[str, object]]:
    """Instantiate every panel whose module exists; a broken one is logged, not fatal."""
    panels = []
    for title, target in PANELS:
        module_name, class_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # not built (yet)
            raise
        panels.append((title, getattr(module, class_name)(viewer, session)))
    return panels


def say(session, label, message: str, *, problem: bool = False) -> None:
    """Show ``message`` in a panel's ``label`` and pass it on to the session.

    A problem goes to ``session.report`` (status bar and a napari warning); anything else
    to the status bar only.
    """
    label.setText(message)
    if problem:
        session.report(message)
    else:
        session.status.emit(message)


def plane_ready(session, action: str) -> bool:
    """Whether ``action`` ("precompute", ...) can run on the plane shown; reports why not.

    It needs a model, an image layer and a 2D view (a plane to work on).
    """
    if session.segmenter is None or session.image_layer is None:
        session.report(f"{action} needs an image layer and a model.")
        return False
    if session.current_slice is None:
        session.report(f"{action} works in 2D view: switch the viewer to 2D (Ctrl+Y).")
        return False
    return True


def disconnect(*connections) -> None:
    """Disconnect ``(signal, slot)`` pairs; a pair already disconnected is passed over."""
    for signal, slot in connections:
        with contextlib.suppress(TypeError, RuntimeError):  # closed twice
            signal.disconnect(slot)
