"""Object classes from 5 examples per class: accuracy on held-out objects, and what it costs.

Synthetic two-class cells (``core.workflows.classify.synthetic``: small bright round cells,
larger dim grainy elongated ones, uneven background, noise; 300 x 417, non-square). The
classifier is trained on 5 objects per class of one image (drawn at random, ``--draws``
times) and scored on every other object of that image and on every object of
``--images`` other images (the saved classifier applied elsewhere, as ``promptseg
classify --classifier`` does).

Features compared in the same run:

* ours: pooled embedding (mean and spread, reduced to 16 principal components:
  ``core.workflows.classify.projection`` says why) + regionprops shape + intensity;
* ours without that reduction (the raw 512 embedding columns);
* embedding mean only: what micro-sam's object classifier pools (its per-object mean of
  the image embedding), the baseline;
* shape + intensity only (no SAM at all).

The model has random weights (``--model vit_t``: MobileSAM's builder; ``tiny``: the test
model), so its embedding carries image statistics but no learned semantics: the
embedding-only figure is a floor, not what a trained SAM gives. Timings: the embedding
(once per image, cached), features per object from the cached embedding, training, and
prediction per object.

    python benchmarks/bench_classify.py [--model vit_t|tiny] [--draws 10] [--images 3]
"""

from __future__ import annotations

import argparse
import time
import warnings

import numpy as np
import torch

from napari_promptseg.core import PromptSegmenter, to_rgb_uint8
from napari_promptseg.core.workflows.classify.classifier import ObjectClassifier
from napari_promptseg.core.workflows.classify.features import ObjectFeatures, object_features
from napari_promptseg.core.workflows.classify.synthetic import CLASSES, two_class_cells
from napari_promptseg.testing import build_tiny_sam

# label: (columns kept, embedding reduced to principal components as the classifier does)
FEATURE_SETS = {
    "ours (emb. mean+std -> 16 PCs, shape, intens.)": (lambda n: True, True),
    "ours without the projection (raw columns)": (lambda n: True, False),
    "embedding mean only (micro-sam's features)": (lambda n: n.startswith("emb_mean_"), False),
    "shape + intensity only": (lambda n: not n.startswith("emb_"), True),
}


def build(model: str):
    torch.manual_seed(0)
    if model == "tiny":
        return PromptSegmenter(build_tiny_sam(seed=0), "tiny-random", name="tiny")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from mobile_sam import sam_model_registry
    model = sam_model_registry["vit_t"]().eval()
    return PromptSegmenter(model, "vit_t-random", name="vit_t", family="mobilesam")


def subset(features: ObjectFeatures, keep, project: bool) -> ObjectFeatures:
    """The kept columns; without ``project`` renamed so the classifier's projection (which
    takes the ``emb_*`` columns) leaves them raw."""
    columns = [i for i, name in enumerate(features.names) if keep(name)]
    names = tuple(features.names[i] if project else f"raw_{features.names[i]}" for i in columns)
    return ObjectFeatures(features.ids, features.values[:, columns], names, features.signature)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=("vit_t", "tiny"), default="vit_t")
    parser.add_argument("--draws", type=int, default=10, help="random choices of the examples")
    parser.add_argument("--images", type=int, default=3, help="other images to apply it to")
    parser.add_argument("--per-class", type=int, default=5)
    args = parser.parse_args()

    segmenter = build(args.model)
    print(
        f"torch {torch.__version__}, {torch.get_num_threads()} threads, {args.model} random "
        f"weights, {args.per_class} examples per class, {args.draws} draws, "
        f"{args.images} other images"
    )
    scenes, features, embed_s, feature_s = [], [], [], []
    for seed in range(1 + args.images):
        cells = two_class_cells(per_class=12, seed=seed)
        rgb = to_rgb_uint8(cells.image)
        start = time.perf_counter()
        segmenter.embed(rgb)
        embed_s.append(time.perf_counter() - start)
        start = time.perf_counter()
        found = object_features([((), rgb)], cells.labels, lambda _i, im: segmenter.cached(im))
        feature_s.append((time.perf_counter() - start) / len(found.ids))
        scenes.append(cells)
        features.append(found)
    objects = sum(len(f.ids) for f in features)
    print(f"{objects} objects in {len(scenes)} images of {scenes[0].labels.shape}")

    rng = np.random.default_rng(0)
    train_s, predict_s = [], []
    print(f"\n{'features':46} {'same image':>12} {'other images':>13}")
    for label, (keep, project) in FEATURE_SETS.items():
        same, other = [], []
        for _ in range(args.draws):
            truth = scenes[0].classes
            examples = {}
            for name in CLASSES:
                ids = [i for i, c in truth.items() if c == name]
                for i in rng.choice(ids, args.per_class, replace=False):
                    examples[int(i)] = name
            train_features = subset(features[0], keep, project)
            start = time.perf_counter()
            classifier = ObjectClassifier.train(train_features, examples, classes=CLASSES)
            train_s.append(time.perf_counter() - start)
            held = [p for p in classifier.predict(train_features) if p.object_id not in examples]
            same.append(np.mean([truth[p.object_id] == p.class_name for p in held]))
            for cells, found in zip(scenes[1:], features[1:], strict=True):
                start = time.perf_counter()
                predictions = classifier.predict(subset(found, keep, project))
                predict_s.append((time.perf_counter() - start) / len(predictions))
                other.append(
                    np.mean([cells.classes[p.object_id] == p.class_name for p in predictions])
                )
        print(
            f"{label:46} {np.mean(same):6.3f} ±{np.std(same):.3f} "
            f"{np.mean(other) if other else float('nan'):6.3f} ±{np.std(other) if other else 0:.3f}"
        )
    per_image = np.median(feature_s) * objects / len(scenes) / np.median(embed_s)
    print(
        f"\nembedding {np.median(embed_s):.2f} s per image (once, cached); features "
        f"{1000 * np.median(feature_s):.2f} ms per object from the cache (an image's "
        f"objects: {per_image:.3f}x its embedding); training {np.median(train_s):.2f} s (200 trees, "
        f"{2 * args.per_class} examples); prediction {1000 * np.median(predict_s):.3f} ms per object"
    )


if __name__ == "__main__":
    main()
