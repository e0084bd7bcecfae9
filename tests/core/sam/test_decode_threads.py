"""The decode's thread count follows the machine's load: all threads while they are faster,
one thread while another process makes the parallel decode slower (issue 10)."""

from __future__ import annotations

import numpy as np
import torch

from napari_promptseg.core import Prompts, PromptSegmenter
from napari_promptseg.core.sam.threads import DecodeThreads, torch_threads


def run(choice: DecodeThreads, seconds: dict[int, float], decodes: int) -> list[int]:
    """Thread counts chosen for ``decodes`` decodes that take ``seconds[threads]``."""
    chosen = []
    for _ in range(decodes):
        threads = choice.choose()
        choice.record(threads, seconds[threads])
        chosen.append(threads)
    return chosen


def test_quiet_machine_keeps_all_threads_after_timing_both():
    chosen = run(DecodeThreads(2, explore_every=32), {2: 0.09, 1: 0.13}, 64)
    assert sorted(chosen[:2]) == [1, 2]  # both timed first
    assert chosen[2:].count(2) >= 60  # then all threads, one exploring decode per 32


def test_busy_machine_moves_to_one_thread_and_back_when_quiet():
    choice = DecodeThreads(2, explore_every=8)
    busy = run(choice, {2: 0.70, 1: 0.15}, 24)
    assert busy[2:].count(1) >= 19  # 2 threads only when exploring
    quiet = run(choice, {2: 0.09, 1: 0.13}, 24)
    assert quiet[-8:].count(2) >= 7  # found again by exploring


def test_a_slowdown_of_the_option_in_use_moves_to_the_other_at_once():
    choice = DecodeThreads(2, explore_every=1000)
    run(choice, {2: 0.09, 1: 0.13}, 4)
    assert choice.choose() == 2
    choice.record(2, 0.70)  # another process started
    assert choice.choose() == 1


def test_single_noisy_decodes_do_not_flip_the_choice():
    choice = DecodeThreads(2, explore_every=1000)
    run(choice, {2: 0.09, 1: 0.13}, 4)
    choice.record(2, 0.16)  # one slow decode: average 0.125, not clearly above 0.13
    assert choice.choose() == 2


def test_one_thread_machine_has_nothing_to_choose():
    choice = DecodeThreads(1)
    assert run(choice, {1: 0.1}, 5) == [1] * 5


def test_thread_count_is_restored_after_the_block():
    before = torch.get_num_threads()
    with torch_threads(1):
        assert torch.get_num_threads() == 1
    assert torch.get_num_threads() == before


def test_engine_times_both_options_when_warming_up_and_masks_do_not_change(tiny_sam):
    segmenter = PromptSegmenter(tiny_sam, "tiny-threads")
    choice = DecodeThreads(2)
    segmenter.decode_threads = choice
    rgb = np.random.default_rng(0).integers(0, 255, (300, 517, 3), np.uint8)
    embedding = segmenter.embed(rgb)
    segmenter.warm_up_decoder(embedding)
    assert set(choice.average) == {1, 2}
    assert segmenter.last_predict_seconds == min(choice.average.values())
    prompts = Prompts.from_points([[150, 260], [40, 400]], labels=[1, 0])
    with torch_threads(1):
        one = segmenter.decoder.predict(embedding, prompts)
    with torch_threads(2):
        two = segmenter.decoder.predict(embedding, prompts)
    np.testing.assert_array_equal(one.masks, two.masks)  # same masks whatever the choice
