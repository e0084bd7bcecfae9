"""SAM 2.1 memory propagation: ours (MemoryTracker) vs ``SAM2VideoPredictor``, same run.

Random hiera_t weights (sam2's own builder, saved and loaded as a checkpoint), a stack of
``--frames`` RGB frames (300 x 467, a disc drifting over noise), one click on frame 0.

* **first propagation**: prompts on frame 0, then forward through the stack, nothing
  embedded before (both sides encode every frame once). Per frame.
* **re-propagation**: a correction click on frame ``k`` (``--correct``), then forward
  from ``k`` again. The predictor keeps one frame's features (``cached_features``) and
  runs its image encoder again on every frame; ours reads the frames' embeddings from the
  cache, so only memory attention, the decoder and the memory encoder run. Per frame.
* **memory held** for a ``--memory-frames``-frame stack (100): the predictor's
  ``init_state`` loads every frame as a (3, 1024, 1024) float32 tensor, measured for real
  on that many frames; both sides then keep the same per-object outputs per tracked frame
  (measured on the frames tracked here, times the frame count). Ours keeps no frame
  pixels: the embeddings sit in the bounded cache (an LRU, 1 GiB by default) and the disk
  store, and a frame evicted is read back from the store, not re-encoded.

    python benchmarks/bench_track.py [--frames 8] [--correct 4] [--memory-frames 100]
"""

from __future__ import annotations

import argparse
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from napari_promptseg.core import Prompts, PromptSegmenter
from napari_promptseg.core.models import load_model
from napari_promptseg.core.workflows.tracking.memory import MemoryTracker

CONFIG = "configs/sam2.1/sam2.1_hiera_t.yaml"
SHAPE = (300, 467)
CLICK = (150.0, 120.0)  # (row, col)
CORRECTION = ((150.0, 150.0), (150.0, 230.0))  # a positive and a negative click


def stack(n: int) -> np.ndarray:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[: SHAPE[0], : SHAPE[1]]
    frames = []
    for t in range(n):
        frame = rng.integers(0, 60, SHAPE, dtype=np.uint8)
        frame[(rows - 150) ** 2 + (cols - 120 - 10 * t) ** 2 < 45**2] = 200
        frames.append(np.repeat(frame[..., None], 3, axis=-1))
    return np.stack(frames)


def tensor_bytes(value) -> int:
    """Bytes of every tensor reachable through dicts, lists and tuples."""
    if isinstance(value, torch.Tensor):
        return value.element_size() * value.nelement()
    if isinstance(value, dict):
        return sum(tensor_bytes(v) for v in value.values())
    if isinstance(value, (list, tuple)):
        return sum(tensor_bytes(v) for v in value)
    return 0


# the rest of a frame's time is the image encoder (ours runs it block by block, so it has no
# single forward to hook) and the bookkeeping
PARTS = ("memory_attention", "sam_mask_decoder", "memory_encoder")


class PartTimer:
    """Wall time spent in each of the model's parts (forward hooks), to say where it goes."""

    def __init__(self, model) -> None:
        self.seconds = dict.fromkeys(PARTS, 0.0)
        self._started: dict[str, float] = {}
        for name in PARTS:
            part = getattr(model, name)
            part.register_forward_pre_hook(lambda *_, n=name: self._start(n))
            part.register_forward_hook(lambda *_, n=name: self._stop(n))

    def _start(self, name: str) -> None:
        self._started[name] = time.perf_counter()

    def _stop(self, name: str) -> None:
        self.seconds[name] += time.perf_counter() - self._started.pop(name)

    def take(self) -> dict[str, float]:
        taken, self.seconds = self.seconds, dict.fromkeys(PARTS, 0.0)
        return taken


def write_jpegs(frames: np.ndarray, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    for index, rgb in enumerate(frames):
        Image.fromarray(rgb).save(folder / f"{index:05d}.jpg", quality=95)
    return folder


def theirs(video, frames_dir: Path, n: int, k: int) -> dict:
    timer = PartTimer(video)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        started = time.perf_counter()
        state = video.init_state(str(frames_dir))
        load = time.perf_counter() - started
        started = time.perf_counter()
        video.add_new_points_or_box(
            state, frame_idx=0, obj_id=1, points=[[CLICK[1], CLICK[0]]], labels=[1]
        )
        for _ in video.propagate_in_video(state):
            pass
        first = time.perf_counter() - started
        parts_first = timer.take()
        started = time.perf_counter()
        video.add_new_points_or_box(
            state, frame_idx=k, obj_id=1, points=[[c, r] for r, c in CORRECTION], labels=[1, 0]
        )
        for _ in video.propagate_in_video(state, start_frame_idx=k):
            pass
        again = time.perf_counter() - started
        parts_again = timer.take()
    outputs = state["output_dict_per_obj"][0]
    tracked = {**outputs["cond_frame_outputs"], **outputs["non_cond_frame_outputs"]}
    return {
        "load": load,
        "first": first / n,
        "again": again / (n - k),
        "parts_first": {p: t / n for p, t in parts_first.items()},
        "parts_again": {p: t / (n - k) for p, t in parts_again.items()},
        "images_per_frame": tensor_bytes(state["images"]) / n,
        "outputs_per_frame": tensor_bytes(list(tracked.values())) / len(tracked),
    }


def ours(segmenter: PromptSegmenter, frames: np.ndarray, k: int) -> dict:
    n = len(frames)
    tracker = MemoryTracker(segmenter, lambda i: frames[i], n, fill_hole_area=0)
    timer = PartTimer(segmenter.sam)
    started = time.perf_counter()
    tracker.add_prompts(0, 1, Prompts.from_points([CLICK]))
    tracker.propagate([1], direction="forward", stop_when_lost=False)
    first = time.perf_counter() - started
    parts_first = timer.take()
    encoded = segmenter.encoder_calls
    started = time.perf_counter()
    tracker.add_prompts(k, 1, Prompts.from_points(list(CORRECTION), [1, 0]))
    tracker.propagate([1], start=k, direction="forward", stop_when_lost=False)
    again = time.perf_counter() - started
    parts_again = timer.take()
    state = tracker._objects[1]
    outputs = {**state.cond, **state.non_cond}
    embedding = segmenter.cache.get(segmenter.key_for(frames[0]))
    return {
        "first": first / n,
        "again": again / (n - k),
        "parts_first": {p: t / n for p, t in parts_first.items()},
        "parts_again": {p: t / (n - k) for p, t in parts_again.items()},
        "encoded": encoded,
        "re_encoded": segmenter.encoder_calls - encoded,
        "outputs_per_frame": tensor_bytes(list(outputs.values())) / len(outputs),
        "embedding_bytes": embedding.nbytes if embedding is not None else 0,
        "cache_limit": segmenter.cache.max_bytes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--frames", type=int, default=8)
    parser.add_argument("--correct", type=int, default=4)
    parser.add_argument("--memory-frames", type=int, default=100)
    args = parser.parse_args()
    from sam2.build_sam import build_sam2, build_sam2_video_predictor

    torch.manual_seed(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        reference = build_sam2(CONFIG, ckpt_path=None, device="cpu")
        video = build_sam2_video_predictor(CONFIG, ckpt_path=None, device="cpu")
    video.load_state_dict(reference.state_dict())
    video.eval()
    frames = stack(args.frames)
    with tempfile.TemporaryDirectory() as tmp:
        checkpoint = Path(tmp) / "sam2.1_random.pt"
        torch.save({"model": reference.state_dict()}, checkpoint)
        segmenter = PromptSegmenter.from_model(load_model(checkpoint=checkpoint, device="cpu"))
        frames_dir = write_jpegs(frames, Path(tmp) / "frames")
        print(f"torch threads {torch.get_num_threads()}, {args.frames} frames of {SHAPE}")
        mine = ours(segmenter, frames, args.correct)
        upstream = theirs(video, frames_dir, args.frames, args.correct)
        many = write_jpegs(stack(args.memory_frames), Path(tmp) / "many")
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            state = video.init_state(str(many))
        images_100 = tensor_bytes(state["images"])
        del state

    mib = 1 << 20
    print(f"\n{'per frame':<34}{'ours':>10}{'upstream':>10}{'ratio':>8}")
    for label, key in (("first propagation (s)", "first"), ("re-propagation (s)", "again")):
        print(
            f"{label:<34}{mine[key]:>10.3f}{upstream[key]:>10.3f}{mine[key] / upstream[key]:>8.2f}"
        )
    # upstream converts every frame to its model input in init_state (resize, normalise);
    # ours does it per frame inside the embedding: the fair first-run figure counts both
    loaded = upstream["first"] + upstream["load"] / args.frames
    label = "first, with init_state's loading"
    print(f"{label:<34}{mine['first']:>10.3f}{loaded:>10.3f}{mine['first'] / loaded:>8.2f}")
    for run, key in (("first propagation", "parts_first"), ("re-propagation", "parts_again")):
        print(f"  {run}, s per frame in each part (ours / upstream):")
        for part in PARTS:
            print(f"    {part:<22}{mine[key][part]:>8.3f}{upstream[key][part]:>8.3f}")
        total = key.removeprefix("parts_")
        rest = [d[total] - sum(d[key].values()) for d in (mine, upstream)]
        print(f"    {'rest (image encoder)':<22}{rest[0]:>8.3f}{rest[1]:>8.3f}")
    print(
        f"\nframes encoded: ours {mine['encoded']} for the first run, {mine['re_encoded']} for "
        f"the re-propagation; upstream re-encodes every frame it visits "
        f"(init_state loading {upstream['load']:.2f} s not counted above)"
    )
    m = args.memory_frames
    ours_state = mine["outputs_per_frame"] * m
    theirs_state = upstream["outputs_per_frame"] * m + images_100
    cache_frames = mine["cache_limit"] // max(mine["embedding_bytes"], 1)
    print(f"\nmemory held for a {m}-frame stack, one object tracked through it:")
    print(
        f"  upstream: frames in init_state {images_100 / mib:.0f} MiB (measured, "
        f"{upstream['images_per_frame'] / mib:.1f} MiB/frame) + outputs "
        f"{upstream['outputs_per_frame'] / mib:.2f} MiB/frame = {theirs_state / mib:.0f} MiB"
    )
    print(
        f"  ours: outputs {mine['outputs_per_frame'] / mib:.2f} MiB/frame = "
        f"{ours_state / mib:.0f} MiB, plus the embedding cache: "
        f"{mine['embedding_bytes'] / mib:.1f} MiB/frame, bounded at "
        f"{mine['cache_limit'] / mib:.0f} MiB ({cache_frames} frames; older ones from the store)"
    )
    print(
        f"  ratio of what grows with the stack (ours / upstream): {ours_state / theirs_state:.3f}"
    )


if __name__ == "__main__":
    main()
