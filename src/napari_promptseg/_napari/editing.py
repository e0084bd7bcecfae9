"""Fixing objects that are already in a labels layer: pick one, refine it, commit it in place.

:class:`ObjectEditor` is the session's collaborator for edits (no Qt). A pick — Shift+click,
or key K then a click — finds the object under the cursor in a labels layer (the session's,
else the topmost visible one with an object there: ours or a foreign one, any integer dtype,
2D or the plane in view of a stack). That object becomes SAM's starting point: while it is
being edited, :class:`EditingPromptView` adds its bounding box (grown to cover positive
clicks; a box the user draws replaces it) and its mask, as the decoder's low-resolution mask
input, to the prompts on the plane, so the decoded mask shows at once and +/− clicks, boxes
and scribbles refine it. Commit (C) replaces the object in place under its own id; Split
makes the mask shown a new object cut out of it; Delete and Merge need no model.
Each is one undo step (see :mod:`.object_edits`).

The edit ends after a commit, split, delete or merge, on Clear (X / Esc), when the plane or
image changes, or when its labels layer is deleted — each says so; nothing is written then.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..core.editing import EditError, box_covering, mask_box, mask_input_from_mask
from ..core.errors import PromptSegError
from ..core.labels import LabelsError
from ..core.sam.prompts import POSITIVE, Prompts
from . import layers as prompt_layers
from . import object_edits, objects
from .decoding import DecodeController, PromptView
from .picking import layer_problem, object_under, pick_on_click
from .slices import SliceRef, slice_in_view
from .state import SessionState


@dataclass(eq=False)
class ObjectEdit:
    """The object being edited and SAM's starting point made from it.

    Attributes
    ----------
    layer
        The napari Labels layer it is in.
    object_id
        Its id (kept by a commit).
    ref
        The plane it is edited on (the image's plane in view when it was picked).
    image_layer
        The image layer shown then; the edit belongs to it.
    mask
        (H, W) bool: its pixels on that plane when it was picked.
    """

    layer: Any
    object_id: int
    ref: SliceRef
    image_layer: Any
    mask: np.ndarray
    box: np.ndarray = field(init=False)
    _mask_inputs: dict = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        self.box = mask_box(self.mask)

    def describe(self) -> str:
        return f"object {self.object_id} of {self.layer.name!r}"

    def mask_input(self, input_size: tuple[int, int]) -> np.ndarray:
        """(1, 256, 256) logits for an embedding of this input size (computed once)."""
        key = tuple(int(s) for s in input_size)
        if key not in self._mask_inputs:
            self._mask_inputs[key] = mask_input_from_mask(self.mask, key)
        return self._mask_inputs[key]

    def prompts_with(self, user: Prompts, state: SessionState) -> Prompts:
        """The user's prompts plus the object's box and (with a whole-plane embedding) mask."""
        box = user.box
        if box is None:
            positive = [user.points[user.labels == POSITIVE]]
            positive += [s.path for s in user.scribbles if s.positive]
            box = box_covering(self.box, np.concatenate(positive).reshape(-1, 2))
        embedding = state.embedding
        mask_input = None if embedding is None else self.mask_input(embedding.input_size)
        return Prompts(user.points, user.labels, box, user.scribbles, mask_input)


class EditingPromptView:
    """A :class:`~.decoding.PromptView` that adds the edited object to the prompts read."""

    def __init__(self, inner: PromptView, state: SessionState) -> None:
        self.inner = inner
        self.state = state
        self.edit: ObjectEdit | None = None

    def read_prompts(self, ref: SliceRef) -> Prompts:
        prompts = self.inner.read_prompts(ref)
        edit = self.edit
        if edit is None or edit.ref != ref or edit.image_layer is not self.state.image_layer:
            return prompts
        return edit.prompts_with(prompts, self.state)

    def show_mask(self, mask: np.ndarray | None) -> None:
        self.inner.show_mask(mask)


class ObjectEditor:
    """Picks objects in labels layers and edits them in place (see the module docstring).

    Parameters
    ----------
    viewer
        The napari viewer (its layers, dims and mouse).
    state
        The session's state (read; ``object_class`` written by :meth:`choose_class`).
    decoding
        The session's decode controller: the mask shown, requests, the preview.
    view
        The prompt view the decode controller reads, which this editor feeds.
    status, problem, changed
        A status line; a problem (message, error); the objects of a labels layer changed.
    use_labels
        Make a labels layer the session's (commits, undo and redo go there): a picked
        object's layer becomes it, so a segmentation is fixed and completed in one layer.
    """

    def __init__(
        self,
        viewer: Any,
        state: SessionState,
        decoding: DecodeController,
        view: EditingPromptView,
        *,
        status: Callable[[str], None],
        problem: Callable[..., None],
        changed: Callable[[], None],
        use_labels: Callable[[Any], None],
    ) -> None:
        self.viewer = viewer
        self.state = state
        self.decoding = decoding
        self.view = view
        self._status = status
        self._problem = problem
        self._changed = changed
        self._use_labels = use_labels
        self.armed = False  # the next click picks (key K)
        self.merging = False  # the next pick is merged into the edited object
        # delete, merge and split act on every plane of the object (one undo step), not
        # only the plane in view; replacing stays per plane (a decoded mask is 2D)
        self.whole_object = False
        self.listeners: list[Callable[[], None]] = []  # called when any of the above changes
        self._on_click = pick_on_click(self)
        viewer.mouse_drag_callbacks.append(self._on_click)
        viewer.layers.events.removed.connect(self._on_layer_removed)
        viewer.dims.events.current_step.connect(self._on_view_changed)
        viewer.dims.events.ndisplay.connect(self._on_view_changed)

    @property
    def edit(self) -> ObjectEdit | None:
        return self.view.edit

    @property
    def active(self) -> bool:
        return self.view.edit is not None

    # -- picking --------------------------------------------------------------------------

    def toggle_pick(self) -> None:
        """Key K: the next click picks an object (again: back to prompting)."""
        self.armed = not self.armed
        self._status(
            "click an object to edit it (Shift+click works any time)"
            if self.armed
            else "pick mode off: clicks add prompts"
        )
        self._notify()

    def begin_merge(self) -> None:
        """The next pick names the object to merge into the one being edited."""
        if self._valid_edit("merge") is None:
            return
        self.merging = True
        self._status(f"Shift+click the object to merge into {self.edit.describe()}")
        self._notify()

    def pick_at(self, position: np.ndarray) -> bool:
        """Pick the object at world ``position``: edit it, or merge it if a merge waits."""
        self.armed = False
        self._notify()
        try:
            layer, object_id = object_under(self.viewer, position, self.state)
        except EditError as error:
            self._problem(str(error))
            return False
        if self.merging:
            self.merging = False
            edit = self.edit
            if edit is None or layer is not edit.layer:
                self._problem(
                    f"merge: pick the second object in the same labels layer ({edit.layer.name!r})"
                    if edit
                    else "merge: pick an object to edit first"
                )
                return False
            return self.merge_with(object_id) is not None
        return self.start(layer, object_id)

    def start(self, layer: Any, object_id: int) -> bool:
        """Edit object ``object_id`` of labels layer ``layer`` on the plane in view."""
        ref, image = self.state.current_slice, self.state.image_layer
        problem = layer_problem(layer, image, ref)
        if problem is None and ref is not None:
            mask = objects.plane_of(layer, ref) == object_id
            if not mask.any():
                problem = f"object {object_id} is not on this plane of {layer.name!r}."
        if problem is not None or ref is None:
            self._problem(problem or "choose an image layer and a 2D view to edit objects.")
            return False
        self.merging = False
        self.decoding.cancel_pending()
        prompt_layers.clear_prompts(self.viewer, ref)  # the edit starts from the object alone
        self.view.edit = ObjectEdit(layer, int(object_id), ref, image, mask)
        self.decoding.set_result(None)
        self.view.show_mask(mask)  # at once; SAM's mask replaces it as soon as it is decoded
        self.decoding.request()
        message = self._started_message(self.view.edit)
        if layer is not self.state.labels_layer:  # undo, redo and new commits go there now
            self._use_labels(layer)
            self._changed()
            message += f" (commits now go to {layer.name!r})"
        self._status(message)
        self._notify()
        return True

    def _started_message(self, edit: ObjectEdit) -> str:
        what = f"editing {edit.describe()} ({int(edit.mask.sum())} px)"
        if self.state.segmenter is None:
            return f"{what}: load a model to refine it; Delete and Merge work now"
        if not self.state.has_pixels:
            return f"{what}: the image embedding is still being computed; its mask shows then"
        return f"{what}: +/- clicks refine it, C commits it in place, X cancels"

    # -- what an edit can do --------------------------------------------------------------

    def commit(self) -> dict | None:
        """Replace the edited object by the mask shown, under its own id (one undo step)."""
        decoded = self._decoded("commit")
        if decoded is None:
            return None
        edit, mask, scores = decoded
        try:
            row = object_edits.replace_in_place(
                edit.layer,
                edit.ref,
                edit.object_id,
                mask,
                overwrite=self.state.overwrite,
                **scores,
            )
        except (LabelsError, PromptSegError) as error:
            self._problem(str(error))
            return None
        self._finish()
        self._status(
            f"object {row['id']} replaced in place (predicted IoU {row['predicted_iou']:.2f}, "
            f"{row['area']} px)"
        )
        return row

    def split(self) -> tuple[dict, dict] | None:
        """The part of the edited object under the mask shown becomes a new object."""
        decoded = self._decoded("split")
        if decoded is None:
            return None
        edit, mask, scores = decoded
        try:
            new, rest = object_edits.split(
                edit.layer, edit.ref, edit.object_id, mask, whole=self.whole_object, **scores
            )
        except (LabelsError, PromptSegError) as error:
            self._problem(str(error))
            return None
        self._finish()
        self._status(
            f"object {rest['id']} split: {new['area']} px are object {new['id']}, "
            f"{rest['area']} px keep id {rest['id']}"
        )
        return new, rest

    def delete(self) -> bool:
        """Remove the edited object from the plane (one undo step)."""
        edit = self._valid_edit("delete")
        if edit is None:
            return False
        try:
            removed = object_edits.delete(
                edit.layer, edit.ref, edit.object_id, whole=self.whole_object
            )
        except (LabelsError, PromptSegError) as error:
            self._problem(str(error))
            return False
        self._finish()
        where = " on every plane" if self.whole_object else ""
        self._status(f"deleted {edit.describe()}{where} ({removed} px); Ctrl+Z brings it back")
        return True

    def merge_with(self, other_id: int) -> dict | None:
        """Object ``other_id`` joins the edited object, which keeps its id (one undo step)."""
        edit = self._valid_edit("merge")
        if edit is None:
            return None
        try:
            row = object_edits.merge(
                edit.layer, edit.ref, edit.object_id, int(other_id), whole=self.whole_object
            )
        except (LabelsError, PromptSegError) as error:
            self._problem(str(error))
            return None
        self._finish()
        self._status(f"object {other_id} merged into object {row['id']} ({row['area']} px)")
        return row

    def choose_class(self, name: str) -> None:
        """Class ``name`` ("" none) for the next commits, and for the object being edited."""
        self.state.object_class = name
        edit = self.edit
        if edit is None or self._valid_edit("set the class", quiet=True) is None:
            self._status(f"next objects: class {name!r}" if name else "next objects: no class")
        else:
            object_edits.set_class(edit.layer, edit.object_id, name, edit.ref)
            self._changed()
            self._status(f"{edit.describe()}: class {name!r}" if name else "class removed")
        self._notify()

    # -- ending ---------------------------------------------------------------------------

    def end(self, message: str | None = None) -> None:
        """Forget the edit (nothing is written); the prompts stay where they are."""
        self.merging = False
        if self.view.edit is None:
            return
        self.view.edit = None
        if message:
            self._status(message)
        self._notify()

    def close(self) -> None:
        self.end()
        self.listeners.clear()
        if self._on_click in self.viewer.mouse_drag_callbacks:
            self.viewer.mouse_drag_callbacks.remove(self._on_click)
        self.viewer.layers.events.removed.disconnect(self._on_layer_removed)
        self.viewer.dims.events.current_step.disconnect(self._on_view_changed)
        self.viewer.dims.events.ndisplay.disconnect(self._on_view_changed)

    def _notify(self) -> None:
        for listener in list(self.listeners):
            listener()

    def _finish(self) -> None:
        """After an edit was written: drop its prompts and mask, end it, tell listeners."""
        edit = self.edit
        self.decoding.cancel_pending()
        self.end()
        if edit is not None:
            prompt_layers.clear_prompts(self.viewer, edit.ref)
        self.decoding.set_result(None)
        self._changed()

    def _on_layer_removed(self, event: Any) -> None:
        edit = self.edit
        if edit is not None and event.value is edit.layer:
            self.end()
            self.decoding.set_result(None)
            self._problem(
                f"the labels layer {edit.layer.name!r} was deleted while object "
                f"{edit.object_id} was being edited: the edit is dropped, nothing was written."
            )
        elif edit is not None and event.value is edit.image_layer:
            self.end(f"the image was removed: the edit of {edit.describe()} is dropped")

    def _on_view_changed(self, event: Any = None) -> None:
        edit = self.edit
        if edit is None:
            return
        try:
            ref = slice_in_view(self.viewer, edit.image_layer)
        except PromptSegError:
            ref = None
        if ref != edit.ref:
            self.end(f"the view moved off the plane of {edit.describe()}: its edit is dropped")

    # -- checks ---------------------------------------------------------------------------

    def _valid_edit(self, action: str, *, quiet: bool = False) -> ObjectEdit | None:
        """The edit if ``action`` can apply to it now; else None (said why unless quiet)."""
        edit = self.edit
        if edit is None:
            problem = f"{action}: Shift+click an object first (or press K, then click it)."
        elif edit.layer not in self.viewer.layers:
            problem = f"{action}: the labels layer {edit.layer.name!r} is gone."
            self.end()
        elif edit.image_layer is not self.state.image_layer or edit.ref != self.state.current_slice:
            problem = f"{action}: {edit.describe()} was picked on another image or plane."
            self.end()
        else:
            problem = layer_problem(edit.layer, edit.image_layer, edit.ref)
        if problem is None:
            return edit
        if not quiet:
            self._problem(problem)
        return None

    def _decoded(self, action: str) -> tuple[ObjectEdit, np.ndarray, dict] | None:
        """The edit, the mask shown and its scores, if SAM has decoded one for this edit."""
        edit = self._valid_edit(action)
        if edit is None:
            return None
        state, decoding = self.state, self.decoding
        if state.segmenter is None:
            self._problem(f"{action} needs a model: load one (Delete and Merge work without).")
            return None
        if not state.has_pixels:
            self._problem(
                f"the image embedding is still being computed: {edit.describe()} stays picked; "
                f"{action} once its mask shows."
            )
            return None
        result = decoding.result
        stale = (
            state.embedding is not None and result is not None and result.key != state.embedding.key
        )
        if result is None or decoding.result_target != state.current_target() or stale:
            self._problem(f"no mask for {edit.describe()} yet: wait for it to show, then {action}.")
            return None
        index = decoding.candidate
        prompts = decoding.result_prompts
        scores = {
            "predicted_iou": float(result.iou[index]),
            "stability": float(result.stability[index]),
            "prompts": prompts.summary() if prompts is not None else "",
            "candidate": index,
            "model": state.segmenter.name,
        }
        return edit, result.masks[index], scores
