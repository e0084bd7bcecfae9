"""Prompts → masks for the plane in view: the newest request wins, nothing stale is shown.

:class:`DecodeController` owns the decode state (the mask shown, its candidate, what it was
decoded for, the prompts in flight) and nothing else. It reads the session's
:class:`~.state.SessionState`, reads prompts and shows masks through a :class:`PromptView`,
and decodes on a :class:`~napari_promptseg.core.latest.LatestOnlyRunner`. Results come back
through ``post`` — the session passes a Qt signal's ``emit``, which hands them to the main
thread — and are shown only if they still belong to the image, plane and model in view and to
the prompts now on the layers. No Qt and no viewer are needed: tests drive it with a fake
view and ``post`` calling back directly.

A left click starts decoding at mouse press (:meth:`DecodeController.decode_on_press`), with
the point napari adds on release: the result is kept until that point lands.

One frame, not two: when prompts change and recent decodes were fast (under
:data:`WAIT_LIMIT`), the GUI thread decodes them itself — as micro-sam does — and shows the
mask before napari draws again, so the new point and its mask appear in the same frame, the
decode has the CPU to itself (no frame of the point rendering in parallel) and no thread
hand-off or second OpenMP team slows it down. A decode already running (started at mouse
press) is waited for, at most :data:`WAIT_LIMIT`. Slow decodes (a busy machine, the first
decode of a model, a large image by tiles) run on the decode thread and are shown when they
arrive.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
import torch

from ..core.errors import PromptError
from ..core.latest import JobOutcome, LatestOnlyRunner
from ..core.sam.decode import DecodeResult
from ..core.sam.prompts import Prompts
from ..core.sam.threads import DecodeThreads, runs_on_cpu, torch_threads
from ..core.workflows.tiling import Tile
from .slices import SliceRef
from .state import SessionState, Target

Decoded = tuple[Target, Prompts, "DecodeResult | list[Tile]"]

#: Longest the GUI thread waits for a decode it asked for (seconds). A decode on a CPU takes
#: 50-100 ms for every SAM size (the decoder is the same); waiting longer would be a freeze.
WAIT_LIMIT = 0.3


class PromptView(Protocol):
    """Where prompts come from and where the mask goes (napari layers, or a test's fake)."""

    def read_prompts(self, ref: SliceRef) -> Prompts:
        """Every prompt on plane ``ref``, in its (row, col) frame."""
        ...

    def show_mask(self, mask: np.ndarray | None) -> None:
        """Show the (H, W) bool mask of the plane in view; None hides it."""
        ...


class DecodeController:
    """Decodes the prompts on the plane in view and keeps the result the user sees.

    Parameters
    ----------
    state
        The session's state (read only here).
    view
        Reads prompts, shows the mask.
    post
        Called on the decode thread with each :class:`JobOutcome`; must bring it to the
        thread that owns the layers and call :meth:`on_decoded` there.
    on_result
        Called after the result or the candidate shown changed (or was cleared).
    status, problem
        A status line; a problem worth a notification (message, exception or None).
    tiles_needed
        Called with the tiles of a large image that must be embedded before these prompts
        can be decoded; once they are, call :meth:`retry`.
    wait_limit
        Longest the caller's thread waits for a decode it asked for (seconds); 0: never
        wait, every result arrives through ``post``.
    """

    def __init__(
        self,
        state: SessionState,
        view: PromptView,
        *,
        post: Callable[[JobOutcome], None],
        on_result: Callable[[], None],
        status: Callable[[str], None],
        problem: Callable[[str, BaseException | None], None],
        tiles_needed: Callable[[list[Tile]], None],
        wait_limit: float = WAIT_LIMIT,
    ) -> None:
        self.state = state
        self.wait_limit = wait_limit
        self.view = view
        self._on_result = on_result
        self._status = status
        self._problem = problem
        self._tiles_needed = tiles_needed
        self.result: DecodeResult | None = None
        self.candidate = 0  # which of the result's masks is shown
        self.result_target: Target | None = None  # what the shown result was decoded for
        self.result_prompts: Prompts | None = None
        self._submitted: Prompts | None = None  # the prompts last sent to the runner
        self._ticket = 0  # the runner's ticket of _submitted
        self._handled = 0  # the newest ticket whose outcome was handled here
        self._early: Decoded | None = None  # decoded at mouse press, its point not yet added
        self._measured: float | None = None  # a decode timed here (tests may set it)
        self._runner = LatestOnlyRunner(post, name="promptseg-decode")
        # CPU: all torch threads, or one while another process competes for the cores
        self.threads = DecodeThreads()

    # -- requests -------------------------------------------------------------------------

    def on_prompts_changed(self, event: Any = None) -> None:
        """A prompt layer's data event: decode again once the change has landed."""
        action = str(getattr(event, "action", "")).lower()
        if action.endswith(("adding", "removing", "changing")):
            return  # the data is not there yet; the matching *ed event follows
        self.request()

    def request(self) -> None:
        """Decode the prompts on the plane in view (in the background; newest wins)."""
        state = self.state
        if state.current_target() is None or state.current_slice is None:
            return
        prompts = self.view.read_prompts(state.current_slice)
        if prompts.is_empty:
            self.cancel_pending()
            self.set_result(None)
            return
        if not state.has_pixels:
            self._status("prompts wait for the image embedding…")
            return
        if self._early is not None and prompts.same_as(self._early[1]):
            self._show(*self._early)  # decoded from the mouse press already
            return
        if not prompts.same_as(self._submitted):
            if self._fast_enough():
                self._decode_here(prompts)
                return
            self._submit(prompts)
        self._wait_and_show(self._ticket)  # also a decode started at mouse press

    def retry(self) -> None:
        """Decode the prompts in view again, even if they were sent already (tiles arrived)."""
        self._submitted = None
        self.request()

    def decode_on_press(self, position: np.ndarray, label: int) -> None:
        """Start decoding with the point a press at ``position`` (layer data coordinates) will
        add on release: saves the click's time.

        If the press turns into a drag (no point added), the early result is never shown:
        results are shown only for the prompts actually on the layers.
        """
        ref = self.state.current_slice
        if self.state.embedding is None or ref is None:
            return
        point = np.asarray(position, dtype=float)[None]
        if not ref.on_plane(point)[0]:
            return
        prompts = self.view.read_prompts(ref)
        prompts = prompts.with_point(ref.to_plane(point)[0], label)
        if prompts.same_as(self._submitted):
            return
        if self._fast_enough():
            self._decode_here(prompts, show=False)  # kept until the point lands on release
        else:
            self._submit(prompts)  # napari handles the press and release meanwhile

    def cancel_pending(self) -> None:
        """Forget the decode in flight and any early result."""
        self._runner.cancel_pending()
        self._submitted = self._early = None

    def reset(self) -> None:
        """The image, plane or model changed: nothing decoded so far may be shown."""
        self.cancel_pending()
        self.set_result(None)

    def close(self) -> None:
        self._runner.close()

    def _submit(self, prompts: Prompts) -> None:
        job = self._job(prompts)
        if job is not None:
            self._submitted, self._early = prompts, None
            self._ticket = self._runner.submit(job)

    def _decode_here(self, prompts: Prompts, *, show: bool = True) -> None:
        """Decode ``prompts`` on this thread (see the module docstring); show the result, or
        with ``show=False`` keep it until those prompts are on the layers."""
        job = self._job(prompts)
        if job is None:
            return
        self._runner.cancel_pending()  # what runs or waits there is older: stale now
        self._handled = self._runner.latest_ticket
        self._submitted, self._early = prompts, None
        try:
            target, decoded, result = job()
        except Exception as error:  # reported like a failed decode on the thread
            self._failed(error)
            return
        if show:
            self._show(target, decoded, result)
        else:
            self._early = (target, decoded, result)

    def warm_up(
        self, segmenter: Any, embedding: Any, should_stop: Callable[[], bool] | None = None
    ) -> None:
        """Prepare ``segmenter``'s decoder for ``embedding`` and time one decode per thread
        option (run in the embedding worker, so the first click pays for neither)."""
        counts = self.threads.options if runs_on_cpu(getattr(segmenter, "sam", None)) else ()
        timed = segmenter.warm_up_decoder(embedding, counts, should_stop=should_stop)
        for count, seconds in timed.items():
            if counts:
                self.threads.record(count, seconds)

    @property
    def last_decode_seconds(self) -> float | None:
        """How long the latest decode of this model took (measured by the engine: also the
        one the embedding worker runs to warm the decoder up), None before any."""
        segmenter = self.state.segmenter
        measured = getattr(segmenter, "last_predict_seconds", None)
        return measured if measured is not None else self._measured

    @last_decode_seconds.setter
    def last_decode_seconds(self, seconds: float | None) -> None:
        self._measured = seconds
        if self.state.segmenter is not None and hasattr(
            self.state.segmenter, "last_predict_seconds"
        ):
            self.state.segmenter.last_predict_seconds = seconds

    def _fast_enough(self) -> bool:
        """Whether decoding here keeps the GUI thread busy for at most :attr:`wait_limit`."""
        recent = self.last_decode_seconds
        return (
            self.wait_limit > 0
            and self.state.tiled is None
            and recent is not None
            and 1.5 * recent <= self.wait_limit
        )

    def _job(self, prompts: Prompts) -> Callable[[], Decoded] | None:
        """The decode of ``prompts`` for the plane in view, as a job for any thread."""
        state = self.state
        target, segmenter = state.current_target(), state.segmenter
        embedding, tiled, multimask = state.embedding, state.tiled, state.multimask
        if target is None or segmenter is None:
            return None

        def job() -> Decoded:
            started = time.perf_counter()
            if tiled is None:
                assert embedding is not None  # has_pixels was checked
                count = self.threads.choose() if runs_on_cpu(getattr(segmenter, "sam", None)) else 0
                with torch_threads(count or torch.get_num_threads()) as applied:
                    result = segmenter.predict(embedding, prompts, multimask=multimask)
                self._measured = time.perf_counter() - started
                if count and applied:  # not applied: another thread was computing
                    self.threads.record(count, self._measured)
                return target, prompts, result
            needed = tiled.tiles_needed(prompts, multimask)
            if needed:  # embedding is slow: done in the embedding worker, not here
                return target, prompts, needed
            return target, prompts, tiled.predict(prompts, multimask, embed_missing=False)

        return job

    def _wait_and_show(self, ticket: int) -> None:
        """Handle decode ``ticket`` now if it finishes within the wait budget."""
        if ticket <= self._handled or self.state.tiled is not None:
            return  # handled already; tiles may need embedding first: never wait for those
        recent = self.last_decode_seconds
        if self.wait_limit <= 0 or (recent is not None and 1.5 * recent > self.wait_limit):
            return  # decodes are slow right now (a busy CPU): show it when it arrives
        outcome = self._runner.wait(ticket, self.wait_limit)
        if outcome is not None:
            self.on_decoded(outcome)

    # -- results (main thread) ------------------------------------------------------------

    def on_decoded(self, outcome: JobOutcome) -> None:
        """A decode finished; show it if it still belongs to what the user sees."""
        if outcome.ticket <= self._handled:
            return  # handled when it finished (the GUI thread waited for it)
        self._handled = outcome.ticket
        if outcome.stale or not self._runner.is_current(outcome.ticket):
            return  # superseded, or reset()/clear() cancelled it after it finished
        if outcome.error is not None:
            self._failed(outcome.error)
            return
        target, prompts, result = outcome.result
        state = self.state
        if target != state.current_target():
            return
        if isinstance(result, list):  # tiles to embed first (large image)
            self._tiles_needed(result)
            return
        if not state.has_pixels:
            return  # the image changed after this decode started
        if state.embedding is not None and result.key != state.embedding.key:
            return
        if state.current_slice is None:
            return
        if not prompts.same_as(self.view.read_prompts(state.current_slice)):
            self._early = outcome.result  # decoded on press; the point lands on release
            return
        self._show(target, prompts, result)

    def _failed(self, error: BaseException) -> None:
        self._submitted = None
        if isinstance(error, PromptError):
            self._status(f"prompt problem: {error}")
            self.set_result(None)
        else:
            self._problem(f"decoding failed: {error}", error)

    def _show(self, target: Target, prompts: Prompts, result: DecodeResult | list[Tile]) -> None:
        if isinstance(result, list):
            return
        self._early = None
        self.result_target, self.result_prompts = target, prompts
        self.set_result(result)

    # -- the result shown -----------------------------------------------------------------

    def set_result(self, result: DecodeResult | None) -> None:
        """Show ``result`` (its best candidate) or nothing."""
        self.result = result
        self.candidate = 0 if result is None else result.best
        if result is None:
            self.result_target = self.result_prompts = None
        self._show_mask()
        self._on_result()

    def select_candidate(self, index: int) -> None:
        """Show candidate mask ``index`` (one of SAM's alternatives for ambiguous prompts)."""
        if self.result is None or not 0 <= index < len(self.result.masks):
            return
        self.candidate = index
        self._show_mask()
        self._on_result()

    def next_candidate(self) -> None:
        if self.result is not None:
            self.select_candidate((self.candidate + 1) % len(self.result.masks))

    def _show_mask(self) -> None:
        self.view.show_mask(None if self.result is None else self.result.masks[self.candidate])
