"""Extra sections of the dock widget, each a QWidget in its own module.

A panel is constructed as ``Panel(viewer, session)`` and talks to the session only through
:class:`SessionAPI`: it reads the session's state, calls its methods, and listens to its
signals (one way: the session's events update the panel; the panel calls the session). It
never emits the session's signals. A panel that starts workers runs them in a
:class:`~napari_promptseg._qt.workers.WorkerSlot` and cancels it in ``close()``. The helpers
below are what panels share: :func:`say`, :func:`plane_ready`, :func:`disconnect`.

A new panel: a module in this package with a ``QWidget`` subclass taking ``(viewer,
session)``, and one line in :data:`PANELS`.
"""

from __future__ import annotations

import contextlib
import importlib
import logging
from typing import Any, Protocol

from ..._napari.editing import ObjectEditor
from ..._napari.slices import SliceRef
from ..._napari.state import Target
from ...core.sam.embedding import EmbeddingCache, ImageEmbedding
from ...core.sam.engine import PromptSegmenter

log = logging.getLogger(__name__)


class SignalLike(Protocol):
    def connect(self, slot: Any) -> Any: ...

    def disconnect(self, slot: Any = ...) -> Any: ...


class SessionAPI(Protocol):
    """What a panel may use of :class:`~napari_promptseg._qt.session.SegmentationSession`."""

    # state (read only; change it through the methods)
    segmenter: PromptSegmenter | None
    image_layer: Any
    labels_layer: Any
    current_slice: SliceRef | None
    embedding: ImageEmbedding | None
    tiled: Any  # the TiledImage of a plane too large for one embedding, else None
    cache: EmbeddingCache
    overwrite: bool  # commits may paint over existing objects
    editing: ObjectEditor  # picks objects already in labels layers and edits them in place

    # signals to listen to
    slice_changed: SignalLike  # another image, plane or model
    embedding_ready: SignalLike  # (ImageEmbedding) of the plane shown
    objects_changed: SignalLike  # a commit, undo, redo or a panel wrote objects
    model_changed: SignalLike  # (name)
    busy_changed: SignalLike  # (bool) an embedding or model load runs

    def say(self, message: str) -> None:
        """A status line."""

    def report(self, message: str, error: BaseException | None = None) -> None:
        """A problem: status line and a napari warning."""

    def notify_objects_changed(self) -> None:
        """The panel changed the labels layer's objects."""

    def current_target(self) -> Target | None:
        """The image, plane and model shown now (what a result must belong to)."""

    def set_image_layer(self, layer: Any) -> None: ...

    def set_labels_layer(self, layer: Any) -> None: ...

    def ensure_labels_layer(self) -> Any: ...

    def refresh(self) -> None: ...

    def set_segmenter(self, segmenter: PromptSegmenter) -> None: ...


# The dock's task groups, in order. The prompt -> mask -> commit loop is always visible above
# them; every other section belongs to one group (what the user is doing).
GROUPS = (
    "Annotate",
    "Automatic",
    "Volume & time",
    "Train & evaluate",
    "Files & batch",
)

# (group, section title, "module:Class") in the order they appear within their group.
PANELS = (
    ("Annotate", "Edit objects", "napari_promptseg._qt.panels.edit:EditPanel"),
    ("Annotate", "Object classes", "napari_promptseg._qt.panels.classes:ClassesPanel"),
    ("Annotate", "Learn classes", "napari_promptseg._qt.panels.classifier:ClassifierPanel"),
    ("Automatic", "Segment everything", "napari_promptseg._qt.panels.everything:EverythingPanel"),
    ("Volume & time", "Stack / time series", "napari_promptseg._qt.panels.stack:StackPanel"),
    (
        "Volume & time",
        "Propagate through slices",
        "napari_promptseg._qt.panels.propagation:PropagationPanel",
    ),
    (
        "Volume & time",
        "Track with memory (SAM 2.1)",
        "napari_promptseg._qt.panels.tracking:TrackingPanel",
    ),
    ("Train & evaluate", "Evaluate", "napari_promptseg._qt.panels.evaluate:EvaluatePanel"),
    ("Train & evaluate", "Finetune", "napari_promptseg._qt.panels.finetune:FinetunePanel"),
    ("Files & batch", "Image folder", "napari_promptseg._qt.panels.folder:FolderPanel"),
    ("Files & batch", "Embeddings on disk", "napari_promptseg._qt.panels.store:StorePanel"),
    ("Files & batch", "Autosave", "napari_promptseg._qt.panels.autosave:AutosavePanel"),
)


def load_panels(viewer: Any, session: SessionAPI) -> list[tuple[str, str, Any]]:
    """Instantiate every panel whose module exists, as (group, title, panel).

    A module not built (yet) is skipped; any other import error is raised.
    """
    panels = []
    for group, title, target in PANELS:
        module_name, class_name = target.split(":")
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as error:
            if error.name == module_name:
                continue  # not built (yet)
            raise
        panels.append((group, title, getattr(module, class_name)(viewer, session)))
    return panels


def say(session: SessionAPI, label: Any, message: str, *, problem: bool = False) -> None:
    """Show ``message`` in a panel's ``label`` and pass it on to the session.

    A problem goes to ``session.report`` (status bar and a napari warning); anything else
    to the status bar only.
    """
    label.setText(message)
    if problem:
        session.report(message)
    else:
        session.say(message)


def plane_ready(session: SessionAPI, action: str) -> bool:
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
