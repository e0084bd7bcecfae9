"""The object classifier: features under the mask, the forest, its file, bad input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from napari_promptseg.core import to_rgb_uint8
from napari_promptseg.core.sam.embedding import EmbeddingKey, ImageEmbedding
from napari_promptseg.core.workflows.classify.classifier import (
    ObjectClassifier,
    load_classifier,
    save_classifier,
)
from napari_promptseg.core.workflows.classify.features import (
    ClassifierError,
    embedding_cells,
    feature_names,
    object_features,
)
from napari_promptseg.core.workflows.classify.forest import Forest
from napari_promptseg.core.workflows.classify.synthetic import two_class_cells


def grid_embedding(shape, input_size, model_id="fake", grid=64) -> ImageEmbedding:
    """Channel 0 = the cell's row, channel 1 = its column: pooling reads back where it looked."""
    rows, cols = np.mgrid[0:grid, 0:grid].astype(np.float32)
    features = torch.from_numpy(np.stack([rows, cols])[None])
    key = EmbeddingKey("x", model_id, "sam")
    return ImageEmbedding(features, tuple(shape), tuple(input_size), key, {"model": model_id})


@pytest.mark.parametrize(
    ("shape", "input_size"),
    [((300, 417), (737, 1024)), ((417, 300), (1024, 737)), ((300, 417), (1024, 1024))],
    ids=["wide-padded", "tall-padded", "sam2-squeezed"],
)
def test_mask_is_mapped_into_the_valid_part_of_the_grid(shape, input_size):
    embedding = grid_embedding(shape, input_size)
    cells, grid = embedding_cells(shape, embedding)
    side = max(input_size)
    # the last pixel lies in the last valid cell, never in SAM's padding
    last_row, last_col = divmod(int(cells[-1, -1]), grid)
    valid_rows = int(np.ceil(input_size[0] / side * grid))  # cells holding image pixels
    valid_cols = int(np.ceil(input_size[1] / side * grid))
    assert valid_rows - 2 <= last_row < valid_rows
    assert valid_cols - 2 <= last_col < valid_cols
    assert last_row == int((shape[0] - 0.5) * input_size[0] / shape[0] * grid / side)
    labels = np.zeros(shape, np.int32)
    r0, c0 = shape[0] - 40, shape[1] - 30
    labels[r0 : r0 + 20, c0 : c0 + 10] = 5
    rgb = np.zeros((*shape, 3), np.uint8)
    features = object_features([((), rgb)], labels, lambda _i, _r: embedding)
    names = features.names
    mean_row = features.values[0, names.index("emb_mean_0")]
    mean_col = features.values[0, names.index("emb_mean_1")]
    scale_r, scale_c = (
        input_size[0] / shape[0] * grid / side,
        input_size[1] / shape[1] * grid / side,
    )
    assert mean_row == pytest.approx((r0 + 10) * scale_r, abs=1.0)
    assert mean_col == pytest.approx((c0 + 5) * scale_c, abs=1.0)
    assert features.values[0, names.index("area")] == 200
    assert features.ids.tolist() == [5]


def test_an_object_through_planes_is_one_row_pooled_over_them():
    shape = (60, 90)
    labels = np.zeros((2, *shape), np.int32)
    labels[0, 10:20, 10:20] = 1
    labels[1, 10:30, 10:20] = 1
    labels[1, 40:50, 60:70] = 2
    planes = [((0,), np.zeros((*shape, 3), np.uint8)), ((1,), np.full((*shape, 3), 90, np.uint8))]
    features = object_features(planes, labels, lambda _i, _r: grid_embedding(shape, (683, 1024)))
    assert features.ids.tolist() == [1, 2]
    names = features.names
    assert features.values[0, names.index("area")] == 300
    # pixel-weighted over planes: 100 pixels at 0, 200 at 90
    assert features.values[0, names.index("intensity_mean_r")] == pytest.approx(60.0)
    assert features.names == feature_names(2)


def test_plane_without_embedding_is_a_clear_error():
    labels = np.zeros((2, 30, 40), np.int32)
    labels[1, 5:10, 5:10] = 3
    planes = [((z,), np.zeros((30, 40, 3), np.uint8)) for z in range(2)]
    with pytest.raises(ClassifierError, match=r"plane \(1,\) has objects but no embedding"):
        object_features(planes, labels, lambda _i, _r: None)


@pytest.fixture(scope="module")
def cells_features(tiny_sam):
    from napari_promptseg.core import PromptSegmenter

    segmenter = PromptSegmenter(tiny_sam, "tiny-test", name="tiny")
    cells = two_class_cells(per_class=10, seed=3)
    rgb = to_rgb_uint8(cells.image)
    before = segmenter.encoder_calls
    embedding = segmenter.embed(rgb)
    features = object_features([((), rgb)], cells.labels, lambda _i, image: segmenter.cached(image))
    assert segmenter.encoder_calls == before + 1  # features read the cache: no re-encoding
    assert embedding.original_size == cells.labels.shape
    return cells, features


def five_each(cells) -> dict[int, str]:
    examples = {}
    for name in ("round", "long"):
        ids = [i for i, c in cells.classes.items() if c == name][:5]
        examples.update(dict.fromkeys(ids, name))
    return examples


def test_five_examples_per_class_classify_every_object(cells_features):
    cells, features = cells_features
    examples = five_each(cells)
    classifier = ObjectClassifier.train(features, examples, trees=50)
    predictions = classifier.predict(features)
    assert [p.object_id for p in predictions] == sorted(cells.classes)
    assert all(p.class_name in ("round", "long") and 0.5 <= p.probability <= 1 for p in predictions)
    held_out = [p for p in predictions if p.object_id not in examples]
    accuracy = np.mean([cells.classes[p.object_id] == p.class_name for p in held_out])
    assert accuracy >= 0.9


def test_forest_arrays_predict_as_scikit_learn(cells_features):
    from sklearn.ensemble import RandomForestClassifier

    cells, features = cells_features
    y = np.array([0 if cells.classes[i] == "round" else 1 for i in features.ids])
    model = RandomForestClassifier(n_estimators=20, random_state=1).fit(
        features.values.astype(np.float32), y
    )
    forest = Forest.from_sklearn(model, 2)
    noisy = features.values + np.random.default_rng(0).normal(0, 0.05, features.values.shape)
    np.testing.assert_allclose(
        forest.predict_proba(noisy), model.predict_proba(noisy.astype(np.float32)), atol=1e-12
    )


def test_saved_classifier_round_trips_and_refuses_other_models(cells_features, tmp_path):
    cells, features = cells_features
    classifier = ObjectClassifier.train(features, five_each(cells), trees=20)
    path = save_classifier(tmp_path / "cells.npz", classifier)
    loaded = load_classifier(path)
    assert loaded.classes == classifier.classes and loaded.signature == classifier.signature
    np.testing.assert_array_equal(
        loaded.probabilities(features), classifier.probabilities(features)
    )
    other = type(features)(
        features.ids,
        features.values,
        features.names,
        type(features.signature)("vit_t", "vit_t@abc", "mobilesam", 256),
    )
    with pytest.raises(ClassifierError, match=r"model 'tiny'.*model 'vit_t'"):
        loaded.predict(other)


def test_classifier_files_are_data_only(cells_features, tmp_path):
    cells, features = cells_features
    classifier = ObjectClassifier.train(features, five_each(cells), trees=5)
    arrays = {
        "meta": np.array(json.dumps(classifier.metadata())),
        **classifier.forest.arrays(),
        **classifier.projection.arrays(),
    }
    pickled = tmp_path / "pickled.npz"
    np.savez(pickled, **{**arrays, "value": np.array([object()], dtype=object)})
    with pytest.raises(ClassifierError, match="not a classifier file"):
        load_classifier(pickled)
    looping = tmp_path / "looping.npz"
    left = arrays["left"].copy()
    left[0] = 0  # a node that is its own child would never end
    np.savez(looping, **{**arrays, "left": left})
    with pytest.raises(ClassifierError, match="malformed"):
        load_classifier(looping)
    outside = tmp_path / "outside.npz"
    columns = arrays["projection_columns"].copy()
    columns[-1] = len(features.names) + 5  # a column the features do not have
    np.savez(outside, **{**arrays, "projection_columns": columns})
    with pytest.raises(ClassifierError, match="projection is damaged"):
        load_classifier(outside)
    with pytest.raises(ClassifierError, match="does not exist"):
        load_classifier(tmp_path / "missing.npz")
    (tmp_path / "text.npz").write_text("hello")
    with pytest.raises(ClassifierError, match="not a classifier file"):
        load_classifier(tmp_path / "text.npz")
    with pytest.raises(ClassifierError, match=r"saved as \.npz"):
        save_classifier(tmp_path / "cells.pkl", classifier)


def test_the_embedding_is_reduced_to_its_principal_components(cells_features):
    cells, features = cells_features
    classifier = ObjectClassifier.train(features, five_each(cells), trees=5)
    projection = classifier.projection
    embedding_columns = [n for n in features.names if n.startswith("emb_")]
    assert len(projection.columns) == len(embedding_columns)
    assert projection.components.shape == (16, len(embedding_columns))
    np.testing.assert_allclose(
        projection.components @ projection.components.T, np.eye(16), atol=1e-9
    )
    reduced = projection.apply(features.values)
    assert reduced.shape == (len(features.ids), 16 + len(features.names) - len(embedding_columns))
    assert classifier.forest.n_features == reduced.shape[1]
    # fitted on all objects, without their classes: the same for any choice of examples
    again = ObjectClassifier.train(features, dict(list(five_each(cells).items())[::-1]), trees=5)
    np.testing.assert_array_equal(again.projection.components, projection.components)


def test_bad_training_input_is_named(cells_features):
    cells, features = cells_features
    examples = five_each(cells)
    round_only = {i: c for i, c in examples.items() if c == "round"}
    with pytest.raises(ClassifierError, match=r"only one class \('round', 5 examples\)"):
        ObjectClassifier.train(features, round_only)
    with pytest.raises(ClassifierError, match=r"class\(es\) 'dead' have no example"):
        ObjectClassifier.train(features, examples, classes=["round", "long", "dead"])
    with pytest.raises(ClassifierError, match=r"not in the class list"):
        ObjectClassifier.train(features, examples, classes=["round"])
    with pytest.raises(ClassifierError, match=r"not objects of the label image: 999"):
        ObjectClassifier.train(features, {**examples, 999: "round"})
    with pytest.raises(ClassifierError, match="no examples"):
        ObjectClassifier.train(features, {})
