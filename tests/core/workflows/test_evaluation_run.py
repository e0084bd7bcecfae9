"""Evaluation runs with the tiny model: reproducible, consistent with predict, per plane/class."""

from __future__ import annotations

import csv
import dataclasses

import numpy as np
import pytest

from napari_promptseg.core import PromptSegmenter
from napari_promptseg.core.errors import Cancelled
from napari_promptseg.core.sam.decode import DecodeResult
from napari_promptseg.core.workflows.evaluation import (
    ALL_OBJECTS,
    EvaluationError,
    EvaluationReport,
    EvaluationSettings,
    ObjectResult,
    evaluate,
    evaluate_object,
    evaluate_plane,
    first_prompt,
    mask_iou,
    next_click,
    write_report,
)
from napari_promptseg.core.workflows.evaluation.report import object_rows, summary_rows


@pytest.fixture(scope="module")
def scene():
    """A 48 x 64 gray image with three bright rectangles and their labels (ids 1, 2, 9)."""
    rng = np.random.default_rng(3)
    image = (rng.random((48, 64)) * 40).astype(np.uint8)
    labels = np.zeros((48, 64), np.uint16)
    labels[4:16, 5:25] = 1
    labels[24:44, 30:60] = 2
    labels[30:40, 4:14] = 9
    image[labels > 0] += 160
    return image, labels


def rgb_of(image):
    return np.repeat(image[..., None], 3, axis=2)


def without_seconds(rows):
    return [
        {k: v for k, v in row.items() if k not in ("seconds", "seconds_per_object")} for row in rows
    ]


def test_the_same_numbers_twice_and_the_embedding_is_reused(tiny_sam, scene):
    image, labels = scene
    settings = EvaluationSettings(clicks=3)
    segmenter = PromptSegmenter(tiny_sam, "tiny-eval")
    first = evaluate([segmenter], image, labels, settings)
    second = evaluate([segmenter], image, labels, settings)
    fresh = evaluate([PromptSegmenter(tiny_sam, "tiny-eval")], image, labels, settings)
    assert segmenter.encoder_calls == 1  # the second run took the cached embedding
    rows = without_seconds(object_rows(first))
    assert rows == without_seconds(object_rows(second)) == without_seconds(object_rows(fresh))
    assert [(r["id"], r["area"]) for r in rows] == [(1, 240), (2, 600), (9, 100)]
    assert all(len(r.ious) == 3 for r in first.results)


@pytest.mark.parametrize(("start", "mask_input"), [("point", True), ("box", False)])
def test_recorded_ious_and_clicks_replay_through_predict(segmenter, scene, start, mask_input):
    """Every recorded IoU is the IoU of predict() on the recorded prompts, and every recorded
    click is the simulator's click for the mask decoded before it."""
    image, labels = scene
    settings = EvaluationSettings(clicks=3, start=start, mask_input=mask_input)
    results = evaluate_plane(segmenter, rgb_of(image), labels, settings)
    embedding = segmenter.embed(rgb_of(image))
    for result in results:
        truth = labels == result.label_id
        prompts, first = first_prompt(truth, start)
        clicks = list(result.clicks)
        if first is not None:
            assert clicks.pop(0) == first
        for k, iou in enumerate(result.ious):
            decoded = segmenter.predict(embedding, prompts)
            assert iou == mask_iou(truth, decoded.mask)
            if k == len(result.ious) - 1:
                break
            click = clicks.pop(0)
            assert click == next_click(truth, decoded.mask)
            prompts = prompts.with_point((click.row, click.col), click.label)
            if mask_input:
                logits = decoded.low_res_logits[decoded.best][None]
                prompts = dataclasses.replace(prompts, mask_input=logits)
        assert clicks == []


class ScriptedSegmenter:
    """Returns the given masks in turn and records the prompts it was given."""

    name = "scripted"

    def __init__(self, masks):
        self.masks = list(masks)
        self.prompts = []

    def predict(self, embedding, prompts, multimask=None):
        self.prompts.append(prompts)
        mask = self.masks.pop(0)
        logits = np.full((1, 256, 256), float(len(self.prompts)), np.float32)
        return DecodeResult(
            masks=mask[None], iou=np.ones(1, np.float32), stability=np.ones(1, np.float32),
            low_res_logits=logits, best=0,
        )  # fmt: skip


def test_clicks_correct_the_scripted_masks_and_stop_once_perfect():
    truth = np.zeros((30, 30), bool)
    truth[5:20, 5:20] = True
    spill = truth.copy()
    spill[22:29, 22:29] = True  # spilled 49 px outside the object
    half = truth.copy()
    half[5:20, 12:20] = False  # missed the right part
    model = ScriptedSegmenter([half, spill, truth])
    ious, clicks, _ = evaluate_object(model, None, truth, EvaluationSettings(clicks=5))
    assert ious[:3] == (mask_iou(truth, half), mask_iou(truth, spill), 1.0)
    assert ious[3:] == (1.0, 1.0)  # nothing left to click: the IoU stands
    assert len(model.prompts) == 3
    assert [c.positive for c in clicks] == [True, True, False]
    assert clicks[1] == next_click(truth, half) and half[clicks[1].row, clicks[1].col] == 0
    assert clicks[2] == next_click(truth, spill) and (clicks[2].row, clicks[2].col) == (25, 25)
    # each correcting decode got the previous decode's logits as mask input
    assert model.prompts[0].mask_input is None
    assert model.prompts[2].mask_input[0, 0, 0] == 2.0
    np.testing.assert_array_equal(model.prompts[2].labels, [1, 1, 0])


def result(ious, model="m", class_name="", seconds=1.0):
    return ObjectResult(model, (), 1, class_name, 10, tuple(ious), (), seconds)


def test_summary_figures():
    settings = EvaluationSettings(clicks=5)
    report = EvaluationReport(settings, models=["m"])
    report.results = [
        result([0.5, 0.86, 0.91, 0.95, 0.95], class_name="a", seconds=1.0),  # NoC85 2, NoC90 3
        result([0.9, 0.9, 0.9, 0.9, 0.9], class_name="a", seconds=2.0),  # 1, 1
        result([0.1, 0.2, 0.3, 0.4, 0.86], class_name="b", seconds=3.0),  # 5, never (cap 5)
        result([0.0] * 5, seconds=6.0),  # never, never
    ]
    rows = {row.class_name: row for row in report.summary()}
    overall = rows[ALL_OBJECTS]
    assert overall.objects == 4
    assert overall.miou == pytest.approx({1: 0.375, 3: 0.5275, 5: 0.6775})
    assert overall.noc == pytest.approx({0.85: (2 + 1 + 5 + 5) / 4, 0.9: (3 + 1 + 5 + 5) / 4})
    assert overall.failed == pytest.approx({0.85: 0.25, 0.9: 0.5})
    assert overall.seconds_per_object == pytest.approx(3.0)
    assert list(rows) == [ALL_OBJECTS, "a", "b", "(unclassified)"]
    assert rows["a"].noc == pytest.approx({0.85: 1.5, 0.9: 2.0})
    assert overall.as_dict()["noc_90"] == 3.5 and overall.as_dict()["failed_85"] == 0.25
    assert report.miou_curve("m") == pytest.approx([0.375, 0.49, 0.5275, 0.5625, 0.6775])


def test_a_stack_is_evaluated_per_plane_and_empty_planes_are_not_embedded(segmenter, scene):
    image, labels = scene
    stack = np.stack([image, image[::-1], np.roll(image, 5, axis=1)])
    truth = np.stack([labels, np.zeros_like(labels), np.roll(labels, 5, axis=1)])
    report = evaluate([segmenter], stack, truth, EvaluationSettings(clicks=2))
    assert segmenter.encoder_calls == 2
    assert [(r.plane, r.label_id) for r in report.results] == [
        ((0,), 1),
        ((0,), 2),
        ((0,), 9),
        ((2,), 1),
        ((2,), 2),
        ((2,), 9),
    ]


def test_per_class_rows_and_the_report_files(segmenter, scene, tmp_path):
    image, labels = scene
    report = evaluate(
        [segmenter], image, labels, EvaluationSettings(clicks=2), classes={1: "b", 2: "a", 9: "a"}
    )
    paths = write_report(report, tmp_path / "report.csv")
    assert [p.name for p in paths] == ["report.csv", "report_summary.csv", "report.png"]
    with open(paths.objects, newline="") as file:
        objects = list(csv.DictReader(file))
    assert list(objects[0])[:9] == [
        "model", "plane", "id", "class", "area", "start", "mask_input", "iou_1", "iou_2"
    ]  # fmt: skip
    assert [(o["id"], o["class"]) for o in objects] == [("1", "b"), ("2", "a"), ("9", "a")]
    with open(paths.summary, newline="") as file:
        summary = list(csv.DictReader(file))
    assert [(s["class"], s["objects"]) for s in summary] == [("(all)", "3"), ("a", "2"), ("b", "1")]
    assert float(summary[1]["miou_1"]) == pytest.approx(
        np.mean([r.ious[0] for r in report.results if r.class_name == "a"]), abs=1e-6
    )
    assert "miou_3" not in summary[0]  # only 2 clicks were made
    assert paths.plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert summary_rows(report)[0]["embedding_seconds"] >= 0


def test_models_given_as_loaders_run_in_turn_with_distinct_names(tiny_sam, scene):
    image, labels = scene
    loaded = []

    def loader():
        loaded.append(len(loaded))
        return PromptSegmenter(tiny_sam, "tiny-a", name="tiny")

    steps = []
    report = evaluate(
        [loader, loader], image, labels, EvaluationSettings(clicks=1), progress=steps.append
    )
    assert loaded == [0, 1]
    assert report.models == ["tiny", "tiny (2)"]
    assert steps[0].stage == "loading" and steps[-1].done == steps[-1].total == 6
    assert report.miou("tiny", 1) == report.miou("tiny (2)", 1)


def test_cancel_and_bad_settings(segmenter, scene):
    image, labels = scene
    with pytest.raises(Cancelled):
        evaluate(
            [segmenter], image, labels, EvaluationSettings(clicks=1), should_cancel=lambda: True
        )
    for bad in ({"clicks": 0}, {"clicks": 1.5}, {"start": "scribble"}, {"thresholds": (1.2,)}):
        with pytest.raises(EvaluationError):
            EvaluationSettings(**bad)
    with pytest.raises(EvaluationError, match="no model"):
        evaluate([], image, labels)
    with pytest.raises(EvaluationError, match="shape"):
        evaluate([segmenter], image, labels[:, :10])
