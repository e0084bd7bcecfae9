"""Keyboard shortcuts, bound on the viewer and on the prompt layers while the widget is open.

Layer key bindings take precedence over the viewer's, so the shortcuts are bound on our
own prompt layers too (where they override napari's defaults for those layers only).
"""

from __future__ import annotations

from collections.abc import Callable

from . import layers as prompt_layers

SHORTCUTS = (
    ("C", "commit the mask as a new object"),
    ("X / Esc", "clear the prompts"),
    ("N", "next prompts negative ↔ positive"),
    ("right click / Ctrl+click", "negative point"),
    ("V", "next candidate mask"),
    ("Ctrl+Z", "undo the last commit"),
    ("Shift+click / K", "edit an object already in a labels layer"),
    ("1–9", "object class"),
)


def bindings(session) -> dict[str, Callable]:
    return {
        "c": lambda *_: session.commit(),
        "x": lambda *_: session.clear(),
        "Escape": lambda *_: session.clear(),
        "n": lambda *_: session.toggle_next_label(),
        "v": lambda *_: session.next_candidate(),
        "Control-z": lambda *_: session.undo(),
        "k": lambda *_: session.editing.toggle_pick(),
    }


def bind(viewer, session) -> None:
    """Bind the shortcuts on the viewer and on every prompt layer present."""
    for key, action in bindings(session).items():
        if key != "Control-z":  # the viewer has no undo; keep napari's behaviour elsewhere
            viewer.bind_key(key, action, overwrite=True)
    bind_prompt_layers(viewer, session)


def bind_prompt_layers(viewer, session) -> None:
    for role in ("points", "boxes", "scribbles"):
        layer = prompt_layers.find_layer(viewer, role)
        if layer is None:
            continue
        for key, action in bindings(session).items():
            if role != "points" and key == "Escape":
                continue  # Escape finishes the shape being drawn
            layer.bind_key(key, action, overwrite=True)


def unbind(viewer) -> None:
    for key in bindings(None):
        if key != "Control-z":
            viewer.bind_key(key, None)
    for role in ("points", "boxes", "scribbles"):
        layer = prompt_layers.find_layer(viewer, role)
        if layer is not None:
            for key in bindings(None):
                layer.bind_key(key, None)
