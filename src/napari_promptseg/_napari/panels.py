"""Extra sections of the dock widget, each a QWidget in its own module.

A panel is constructed as ``Panel(viewer, session)`` and talks to the session only through
its public API (attributes ``segmenter``, ``image_layer``, ``labels_layer``, ``embedding``,
``current_slice``, ``cache``; methods ``set_image_layer``, ``set_labels_layer``,
``ensure_labels_layer``, ``refresh``, ``report``; signals ``status``, ``problem``,
``slice_changed``, ``embedding_ready``, ``objects_changed``, ``model_changed``). A panel that
starts workers stops them in ``close()``.
"""

from __future__ import annotations

import importlib
import logging

log = logging.getLogger(__name__)

# (section title, "module:Class") in the order they appear under the prompt controls.
PANELS = (
    ("Stack / time series", "napari_promptseg._napari.stack_panel:StackPanel"),
    ("Propagate through slices", "napari_promptseg._napari.propagation_panel:PropagationPanel"),
    ("Segment everything", "napari_promptseg._napari.everything_panel:EverythingPanel"),
    ("Image folder", "napari_promptseg._napari.folder_panel:FolderPanel"),
    ("Embeddings on disk", "napari_promptseg._napari.store_panel:StorePanel"),
    ("Autosave", "napari_promptseg._napari.autosave_panel:AutosavePanel"),
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
