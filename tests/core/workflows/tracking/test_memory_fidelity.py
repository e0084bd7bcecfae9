"""SAM 2.1 memory propagation = ``SAM2VideoPredictor`` for the same weights, frames and prompts.

Random (perturbed) hiera_t weights, a non-square, odd-sized stack of 5 frames (301 x 467).
The predictor reads frames from JPEG files and resizes them with PIL; our frames go through
``SAM2Transforms`` like every click's embedding, so the test hands the predictor the same
model inputs (its ``images``) and compares everything after: masks on every frame, object
scores, a correction click with re-propagation from it, a mask prompt tracked backward.
"""

from __future__ import annotations

import warnings

import numpy as np
import pytest
import torch
from familykit import SAM2_CONFIG, sam2_reference, save_sam2
from PIL import Image

from napari_promptseg.core import Prompts, PromptSegmenter
from napari_promptseg.core.errors import PromptError
from napari_promptseg.core.models import load_model
from napari_promptseg.core.sam.families.base import FamilyError
from napari_promptseg.core.workflows.tracking.memory import MemoryTracker
from napari_promptseg.core.workflows.tracking.memory_state import fill_holes

pytestmark = pytest.mark.slow  # both sides encode 5 frames (about 4 s each here)

SHAPE = (301, 467)
N_FRAMES = 5


def _stack() -> np.ndarray:
    """A bright disk drifting right over a noisy background: (T, H, W, 3) uint8."""
    rng = np.random.default_rng(3)
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    frames = []
    for t in range(N_FRAMES):
        frame = rng.integers(0, 60, SHAPE, dtype=np.uint8)
        disk = (rows - 150) ** 2 + (cols - 120 - 25 * t) ** 2 < 45**2
        frame[disk] = 200
        frames.append(np.repeat(frame[..., None], 3, axis=-1))
    return np.stack(frames)


@pytest.fixture(scope="module")
def pair(tmp_path_factory):
    from sam2.build_sam import build_sam2_video_predictor

    reference = sam2_reference(seed=1)
    folder = tmp_path_factory.mktemp("sam2_video")
    path = save_sam2(reference, folder / "sam2.1_random.pt")
    segmenter = PromptSegmenter.from_model(load_model(checkpoint=path, device="cpu"))
    video = build_sam2_video_predictor(SAM2_CONFIG, ckpt_path=None, device="cpu")
    video.load_state_dict(reference.state_dict())
    video.eval()
    stack = _stack()
    frames = folder / "frames"
    frames.mkdir()
    for index, rgb in enumerate(stack):
        Image.fromarray(rgb).save(frames / f"{index:05d}.jpg", quality=95)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        state = video.init_state(str(frames))
    # the same model inputs as our embeddings: SAM2Transforms of the exact pixels
    transforms = segmenter.runner.transforms
    state["images"] = torch.stack([transforms(rgb) for rgb in stack])
    state["cached_features"] = {}
    tracker = MemoryTracker(segmenter, lambda i: stack[i], N_FRAMES, fill_hole_area=0)
    return video, state, tracker, segmenter


def _theirs(video, state, **kwargs) -> dict[int, tuple[np.ndarray, float]]:
    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # no sam2._C on the CPU: hole filling is skipped
        for frame, obj_ids, masks in video.propagate_in_video(state, **kwargs):
            for index, obj_id in enumerate(obj_ids):
                out[(obj_id, frame)] = (masks[index, 0] > 0).cpu().numpy()
    return out


def _scores(video, state, obj_id) -> dict[int, float]:
    index = state["obj_id_to_idx"][obj_id]
    outputs = state["output_dict_per_obj"][index]
    merged = {**outputs["non_cond_frame_outputs"], **outputs["cond_frame_outputs"]}
    return {
        frame: float(out["object_score_logits"].reshape(-1)[0]) for frame, out in merged.items()
    }


def test_propagate_correct_and_track_back_equal_the_video_predictor(pair):
    video, state, tracker, segmenter = pair
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        # 1. one click on frame 0 (napari (row, col) = (150, 120); sam2 takes (x, y))
        _, _, masks = video.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=[[120.0, 150.0]], labels=[1]
        )
    ours = tracker.add_prompts(0, 1, Prompts.from_points([(150.0, 120.0)]))
    assert np.array_equal(ours.mask, (masks[0, 0] > 0).numpy())

    theirs = _theirs(video, state)
    run = tracker.propagate([1], direction="forward", stop_when_lost=False)
    assert sorted(run.masks[1]) == list(range(N_FRAMES))
    for frame in range(N_FRAMES):
        assert np.array_equal(run.masks[1][frame].mask, theirs[(1, frame)]), frame
    scores = _scores(video, state, 1)
    assert {f: m.object_score for f, m in run.masks[1].items()} == scores

    # 2. a correction on frame 3 (a box and a negative click), re-propagated from there
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _, _, masks = video.add_new_points_or_box(
            state,
            frame_idx=3,
            obj_id=1,
            points=[[260.0, 150.0]],
            labels=[0],
            box=[150.0, 100.0, 260.0, 200.0],
        )
    box = np.array([100.0, 150.0, 200.0, 260.0])  # (row0, col0, row1, col1)
    ours = tracker.add_prompts(3, 1, Prompts.from_points([(150.0, 260.0)], [0], box=box))
    assert np.array_equal(ours.mask, (masks[0, 0] > 0).numpy())
    theirs = _theirs(video, state, start_frame_idx=3)
    run = tracker.propagate([1], start=3, direction="forward", stop_when_lost=False)
    assert sorted(run.masks[1]) == [3, 4]
    for frame in (3, 4):
        assert np.array_equal(run.masks[1][frame].mask, theirs[(1, frame)]), frame

    # 3. a second object given as a mask on the last frame, tracked backward. The predictor
    # re-tracks every object in every call, and object 1 backward from frame 4 has no object
    # pointer to promote its bfloat16 memory: sam2 fails on the CPU there (our tracker reads
    # memory as float32, see memory_state._Float32Memory). Objects are independent, so the
    # predictor gets object 2 alone.
    video.reset_state(state)
    mask = np.zeros(SHAPE, dtype=bool)
    mask[110:190, 190:300] = True
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        video.add_new_mask(state, frame_idx=N_FRAMES - 1, obj_id=2, mask=mask)
    tracker.add_mask(N_FRAMES - 1, 2, mask)
    theirs = _theirs(video, state, start_frame_idx=N_FRAMES - 1, reverse=True)
    run = tracker.propagate([2], start=N_FRAMES - 1, direction="backward", stop_when_lost=False)
    assert sorted(run.masks[2]) == list(range(N_FRAMES))
    for frame in range(N_FRAMES):
        assert np.array_equal(run.masks[2][frame].mask, theirs[(2, frame)]), frame
    assert {f: m.object_score for f, m in run.masks[2].items()} == _scores(video, state, 2)

    # every frame was encoded once, for all three runs: memory work only after that
    assert segmenter.encoder_calls == N_FRAMES


def test_hole_filling_matches_sam2_s_rule():
    """sam2's ``fill_holes_in_mask_scores`` with an independent connected-components count
    (skimage, 8-connectivity) in place of its CUDA extension."""
    import sam2.utils.misc as misc
    from skimage.measure import label as sk_label

    def components(mask):
        labels = np.stack([sk_label(m[0].numpy(), connectivity=2) for m in mask])[:, None]
        areas = np.zeros_like(labels)
        for index in range(labels.shape[0]):
            counts = np.bincount(labels[index].ravel())
            counts[0] = 0
            areas[index] = counts[labels[index]]
        return torch.from_numpy(labels), torch.from_numpy(areas)

    rng = np.random.default_rng(0)
    logits = torch.from_numpy(rng.normal(0.5, 1.0, (2, 1, 64, 64)).astype(np.float32))
    original = misc.get_connected_components
    misc.get_connected_components = components
    try:
        expected = misc.fill_holes_in_mask_scores(logits.clone(), 8)
    finally:
        misc.get_connected_components = original
    filled = fill_holes(logits, 8)
    assert torch.equal(filled, expected)
    assert not torch.equal(filled, logits)  # the noise has specks to fill


def test_a_cancelled_run_keeps_the_frames_done_and_a_lost_object_ends_its_track(pair):
    _, _, tracker, segmenter = pair
    calls = segmenter.encoder_calls
    tracker.add_prompts(0, 7, Prompts.from_points([(150.0, 120.0)]))
    asked = []

    def stop_after_two() -> bool:
        asked.append(True)
        return len(asked) > 2

    run = tracker.propagate(
        [7], direction="forward", stop_when_lost=False, should_stop=stop_after_two
    )
    assert run.cancelled and sorted(run.masks[7]) == [0, 1]
    assert run.stops[7]["forward"] == "cancelled before frame 2"
    # the memory of frames 0-1 stays: going on from frame 2 gives the uncancelled result
    rest = tracker.propagate([7], start=2, direction="forward", stop_when_lost=False)
    again = MemoryTracker(segmenter, tracker.frame_rgb, N_FRAMES, fill_hole_area=0)
    again.add_prompts(0, 7, Prompts.from_points([(150.0, 120.0)]))
    whole = again.propagate([7], direction="forward", stop_when_lost=False)
    for frame in (2, 3, 4):
        assert np.array_equal(rest.masks[7][frame].mask, whole.masks[7][frame].mask)
    # with stop_when_lost the track ends at the first frame the object score says "absent"
    lost = again.propagate([7], direction="forward", stop_when_lost=True)
    absent = [f for f, m in sorted(whole.masks[7].items()) if not m.present and f != 0]
    if absent:
        assert max(lost.masks[7]) == absent[0] - 1
        assert f"< 0 at frame {absent[0]}" in lost.stops[7]["forward"]
    else:
        assert sorted(lost.masks[7]) == list(range(N_FRAMES))
    assert segmenter.encoder_calls == calls  # no frame encoded twice


def test_bad_input_is_named(pair, segmenter):
    _, _, tracker, _ = pair
    with pytest.raises(FamilyError, match=r"video memory \(SAM 2\.1\)"):
        MemoryTracker(segmenter, lambda i: np.zeros((8, 8, 3), np.uint8), 3)
    with pytest.raises(PromptError, match="frame 9 is outside the stack: it has 5 frames"):
        tracker.add_prompts(9, 1, Prompts.from_points([(10.0, 10.0)]))
    with pytest.raises(PromptError, match="object 42 is not tracked"):
        tracker.propagate([42])
    with pytest.raises(PromptError, match="direction must be one of"):
        tracker.propagate(direction="sideways")
    with pytest.raises(PromptError, match="is empty"):
        tracker.add_mask(1, 3, np.zeros(SHAPE, bool))
    odd = MemoryTracker(
        tracker.segmenter,
        lambda i: tracker.frame_rgb(i) if i == 0 else tracker.frame_rgb(i)[:-1],
        N_FRAMES,
    )
    odd.add_prompts(0, 1, Prompts.from_points([(150.0, 120.0)]))
    with pytest.raises(PromptError, match="every frame must have one size"):
        odd.propagate([1], direction="forward")


def test_objects_step_through_each_frame_together(pair):
    """Two objects tracked in one run equal each tracked alone, and with a cache that holds
    a single frame every frame is still embedded once per pass: all objects take a frame's
    features before the run moves on (frame-outer, as ``propagate_in_video``)."""
    from napari_promptseg.core.sam.embedding import EmbeddingCache

    _, _, tracker, segmenter = pair
    small = PromptSegmenter(
        segmenter.sam,
        segmenter.model_id,
        family=segmenter.family,
        cache=EmbeddingCache(max_bytes=1),  # keeps only the latest embedding
    )
    box = np.array([100.0, 60.0, 200.0, 180.0])

    def prompted(seg):
        one = MemoryTracker(seg, tracker.frame_rgb, N_FRAMES, fill_hole_area=0)
        one.add_prompts(1, 1, Prompts.from_points([(150.0, 145.0)]))
        one.add_prompts(2, 2, Prompts(box=box))
        return one

    together = prompted(small)
    before = small.encoder_calls
    run = together.propagate(direction="forward", stop_when_lost=False)
    # object 1 from frame 1, object 2 from frame 2: frames 1..4 visited, each encoded once
    assert small.encoder_calls - before == N_FRAMES - 1
    for obj_id in (1, 2):
        alone = prompted(segmenter).propagate([obj_id], direction="forward", stop_when_lost=False)
        assert sorted(run.masks[obj_id]) == sorted(alone.masks[obj_id])
        for frame, result in alone.masks[obj_id].items():
            assert np.array_equal(run.masks[obj_id][frame].mask, result.mask), (obj_id, frame)
            assert run.masks[obj_id][frame].object_score == result.object_score
