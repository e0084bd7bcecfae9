"""The decode controller's staleness rules, with a fake state and view: no viewer, no Qt.

Outcomes are held back and delivered by hand, so each test decides exactly what finished
when: the rules are what a result must still match to be shown (the image, plane and model in
view, the embedding's pixels, the prompts on the layers) and that the newest request wins.
"""

from __future__ import annotations

import threading
import time
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from napari_promptseg._napari.decoding import DecodeController
from napari_promptseg._napari.slices import SliceRef
from napari_promptseg._napari.state import SessionState
from napari_promptseg.core.errors import PromptError
from napari_promptseg.core.sam.decode import DecodeResult
from napari_promptseg.core.sam.embedding import EmbeddingKey
from napari_promptseg.core.sam.prompts import Prompts

PLANE = SliceRef((None, None), (0, 1))


class FakeImage:
    name = "image"


class FakeEmbedding:
    def __init__(self, fingerprint: str) -> None:
        self.key = EmbeddingKey(fingerprint, "model-a")


class FakeSegmenter:
    """Decodes instantly; the mask is a row band whose height is the number of points."""

    model_id = "model-a"
    name = "model-a"

    def __init__(self) -> None:
        self.calls = 0
        self.threads: list[threading.Thread] = []  # where each decode ran
        self.gate: threading.Event | None = None  # set: the decode waits for it
        self.started = threading.Event()  # a decode is running

    def predict(self, embedding, prompts: Prompts, multimask=None) -> DecodeResult:
        self.calls += 1
        self.threads.append(threading.current_thread())
        self.started.set()
        if self.gate is not None:
            self.gate.wait(5)
        if len(prompts.points) and prompts.points[0][0] < 0:
            raise PromptError("a point outside the image")
        masks = np.zeros((3, 8, 8), dtype=bool)
        masks[:, : len(prompts.points)] = True
        return DecodeResult(
            masks=masks,
            iou=np.array([0.5, 0.9, 0.7], np.float32),
            stability=np.ones(3, np.float32),
            low_res_logits=np.zeros((3, 256, 256), np.float32),
            best=1,
            key=embedding.key,
        )


class FakeView:
    def __init__(self) -> None:
        self.prompts = Prompts()
        self.shown: list[np.ndarray | None] = []

    def read_prompts(self, ref: SliceRef) -> Prompts:
        return self.prompts

    def show_mask(self, mask: np.ndarray | None) -> None:
        self.shown.append(mask)


@pytest.fixture
def setup(request):
    wait_limit = getattr(request, "param", 0.0)  # 0: results arrive only through post
    state = SessionState(
        image_layer=FakeImage(),
        current_slice=PLANE,
        segmenter=FakeSegmenter(),
        embedding=FakeEmbedding("pixels-1"),
    )
    view = FakeView()
    outcomes: list = []
    done = threading.Event()
    events: dict[str, list] = {"result": [], "status": [], "problem": [], "tiles": []}

    def post(outcome):
        outcomes.append(outcome)
        done.set()

    controller = DecodeController(
        state,
        view,
        post=post,
        on_result=lambda: events["result"].append(controller.result),
        status=events["status"].append,
        problem=lambda message, error: events["problem"].append(message),
        tiles_needed=events["tiles"].append,
        wait_limit=wait_limit,
    )

    def wait_outcome(count: int = 1):
        for _ in range(200):
            if len(outcomes) >= count:
                return outcomes[count - 1]
            done.wait(0.05)
            done.clear()
        raise TimeoutError

    yield SimpleNamespace(
        state=state,
        view=view,
        controller=controller,
        outcomes=outcomes,
        wait=wait_outcome,
        events=events,
    )
    controller.close()


def test_result_for_the_prompts_on_the_layers_is_shown(setup):
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    controller.on_decoded(wait())
    assert controller.result is not None and controller.candidate == 1  # the best
    assert controller.result_prompts.same_as(view.prompts)
    assert view.shown[-1] is not None and view.shown[-1][0].all()


def test_result_for_another_plane_is_dropped(setup):
    state = setup.state
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    outcome = wait()
    state.current_slice = SliceRef((1, None, None), (1, 2))  # the user moved on
    controller.on_decoded(outcome)
    assert controller.result is None


def test_result_for_another_model_is_dropped(setup):
    state = setup.state
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    outcome = wait()
    other = FakeSegmenter()
    other.model_id = "model-b"
    state.segmenter = other
    controller.on_decoded(outcome)
    assert controller.result is None


def test_result_for_other_pixels_is_dropped(setup):
    state = setup.state
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    outcome = wait()
    state.embedding = FakeEmbedding("pixels-2")  # same plane, new contrast: new embedding
    controller.on_decoded(outcome)
    assert controller.result is None


def test_newest_request_wins(setup):
    state = setup.state
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    gate = threading.Event()
    state.segmenter.gate = gate
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    assert state.segmenter.started.wait(5)
    view.prompts = Prompts.from_points([[2, 3], [4, 4]])
    controller.request()  # a newer request while the first runs
    gate.set()
    first = wait(1)
    second = wait(2)
    controller.on_decoded(first)
    assert controller.result is None  # stale: a newer request exists
    controller.on_decoded(second)
    assert controller.result is not None and controller.result.masks[0, :2].all()


def test_reset_drops_the_decode_in_flight(setup):
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    outcome = wait()
    controller.reset()  # the image changed after the decode finished
    controller.on_decoded(outcome)
    assert controller.result is None


def test_early_result_waits_for_its_point(setup):
    state = setup.state
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    controller.decode_on_press(np.array([2.0, 3.0]), 1)  # the press, before napari adds it
    outcome = wait()
    controller.on_decoded(outcome)
    assert controller.result is None  # the point is not on the layer yet
    view.prompts = Prompts.from_points([[2, 3]])  # released: the point lands
    calls = state.segmenter.calls
    controller.request()
    assert controller.result is not None and state.segmenter.calls == calls  # no 2nd decode


def test_a_press_that_became_a_drag_shows_nothing(setup):
    controller = setup.controller
    wait = setup.wait
    controller.decode_on_press(np.array([2.0, 3.0]), 1)
    controller.on_decoded(wait())
    controller.request()  # no point was added: the layers hold no prompt
    assert controller.result is None


def test_no_embedding_yet_waits(setup):
    state = setup.state
    view = setup.view
    controller = setup.controller
    outcomes = setup.outcomes
    events = setup.events
    state.embedding = None
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    assert not outcomes and "wait for the image embedding" in events["status"][-1]


def test_prompt_error_clears_the_mask_and_says_why(setup):
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    events = setup.events
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    controller.on_decoded(wait(1))
    view.prompts = Prompts.from_points([[-1, 3]])  # FakeSegmenter refuses it
    controller.request()
    controller.on_decoded(wait(2))
    assert controller.result is None
    assert events["status"][-1].startswith("prompt problem")
    assert not events["problem"]  # a prompt problem is not a failure


def test_candidates_cycle(setup):
    view = setup.view
    controller = setup.controller
    wait = setup.wait
    view.prompts = Prompts.from_points([[2, 3]])
    controller.request()
    controller.on_decoded(wait())
    controller.next_candidate()
    assert controller.candidate == 2
    controller.next_candidate()
    assert controller.candidate == 0
    controller.select_candidate(7)  # out of range: ignored
    assert controller.candidate == 0


# -- the GUI thread waits for a fast decode: point and mask in one frame ---------------------

waiting = pytest.mark.parametrize("setup", [1.0], indirect=True)


@waiting
def test_a_fast_decode_is_shown_before_request_returns(setup):
    setup.view.prompts = Prompts.from_points([[2, 3]])
    setup.controller.request()
    assert setup.controller.result is not None  # no event-loop turn needed
    setup.controller.on_decoded(setup.wait())  # the posted copy arrives later: ignored
    assert len(setup.events["result"]) == 1


@waiting
def test_the_release_waits_for_the_decode_started_at_press(setup):
    gate = threading.Event()
    setup.state.segmenter.gate = gate
    setup.controller.decode_on_press(np.array([2.0, 3.0]), 1)  # returns at once
    assert setup.state.segmenter.started.wait(5) and setup.controller.result is None
    setup.view.prompts = Prompts.from_points([[2, 3]])  # the release adds the point
    threading.Timer(0.05, gate.set).start()
    calls = setup.state.segmenter.calls
    setup.controller.request()
    assert setup.controller.result is not None and setup.state.segmenter.calls == calls


@waiting
def test_a_slow_decode_is_not_waited_for(setup):
    setup.controller.wait_limit = 0.05
    gate = threading.Event()
    setup.state.segmenter.gate = gate
    setup.view.prompts = Prompts.from_points([[2, 3]])
    setup.controller.request()  # waits 50 ms at most, then returns without a mask
    assert setup.controller.result is None
    gate.set()
    setup.controller.on_decoded(setup.wait())
    assert setup.controller.result is not None  # shown when it arrives


@waiting
def test_recent_slow_decodes_skip_the_wait(setup):
    setup.controller.last_decode_seconds = 0.9  # the CPU is busy
    gate = threading.Event()
    setup.state.segmenter.gate = gate
    setup.view.prompts = Prompts.from_points([[2, 3]])
    started = time.perf_counter()
    setup.controller.request()
    assert time.perf_counter() - started < 0.5 and setup.controller.result is None
    gate.set()


@waiting
def test_once_decodes_are_known_to_be_fast_they_run_on_the_calling_thread(setup):
    setup.view.prompts = Prompts.from_points([[2, 3]])
    setup.controller.request()  # the first decode runs on the decode thread: it is timed
    assert setup.state.segmenter.threads[-1] is not threading.current_thread()
    assert setup.controller.last_decode_seconds is not None
    setup.view.prompts = Prompts.from_points([[2, 3], [5, 5]])
    setup.controller.request()
    assert setup.state.segmenter.threads[-1] is threading.current_thread()
    assert setup.controller.result.masks[0, :2].all()  # shown at once, for these prompts


@waiting
def test_a_decode_here_makes_older_decodes_stale(setup):
    gate = threading.Event()
    setup.view.prompts = Prompts.from_points([[2, 3]])
    setup.controller.request()  # timed: fast
    setup.controller.last_decode_seconds = 0.9  # slow for now: the press goes to the thread
    setup.state.segmenter.gate = gate
    setup.state.segmenter.started.clear()
    setup.controller.decode_on_press(np.array([6.0, 6.0]), 1)
    assert setup.state.segmenter.started.wait(5)
    setup.state.segmenter.gate = None
    setup.controller.last_decode_seconds = 0.01  # fast again
    setup.view.prompts = Prompts.from_points([[2, 3], [4, 4], [5, 5]])  # other prompts
    setup.controller.request()  # decoded here; the press decode is now stale
    shown = setup.controller.result
    gate.set()
    setup.controller.on_decoded(setup.wait(2))
    assert setup.controller.result is shown and shown.masks[0, :3].all()


@waiting
def test_a_fast_press_decodes_here_and_the_release_shows_it(setup):
    setup.view.prompts = Prompts.from_points([[2, 3]])
    setup.controller.request()  # timed: fast
    calls = setup.state.segmenter.calls
    setup.controller.decode_on_press(np.array([6.0, 6.0]), 1)
    assert setup.state.segmenter.calls == calls + 1  # decoded during the press
    assert setup.state.segmenter.threads[-1] is threading.current_thread()
    assert (
        setup.controller.result.masks[0, :1].all() and not setup.controller.result.masks[0, 1].any()
    )
    setup.view.prompts = Prompts.from_points([[2, 3], [6, 6]])  # the release adds the point
    setup.controller.request()
    assert setup.state.segmenter.calls == calls + 1  # no second decode
    assert setup.controller.result.masks[0, :2].all()


@waiting
def test_prompt_decodes_follow_the_faster_thread_count(setup):
    """The controller times its decodes per torch thread count (core.sam.threads): when one
    thread is faster (another process busy on a core), the next decodes use one."""
    choice = setup.controller.threads
    if len(choice.options) == 1:
        pytest.skip("one CPU thread: nothing to choose")
    many = choice.options[0]
    choice.record(many, 0.70)  # as the warm-up times them on a busy machine
    choice.record(1, 0.15)
    seen = []
    segmenter = setup.state.segmenter
    original = segmenter.predict

    def spy(*args, **kwargs):
        seen.append(torch.get_num_threads())
        return original(*args, **kwargs)

    segmenter.predict = spy
    setup.controller.last_decode_seconds = 0.15
    setup.view.prompts = Prompts.from_points([[2, 3]])
    setup.controller.request()
    assert setup.controller.result is not None and seen == [1]
    assert torch.get_num_threads() == many  # restored after the decode
