"""The registry: the SAM checkpoints napari-promptseg knows by name, and where they are.

Each :class:`ModelSpec` pins a URL and a hash (Meta's original SAM checkpoints and micro-sam's
microscopy fine-tunes; see ``docs/models.md``). :func:`fetch_checkpoint` returns a verified
file, downloading it if needed (:mod:`.download`); :func:`list_models` describes the registry
for the CLI and the widget. Turning a file into a model is :mod:`.loading`'s job.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import Any

from ..errors import ModelError
from . import download
from .architectures import BUILDERS
from .demo import DEMO_MODEL_TYPE
from .download import HASH_ALGORITHMS, ByteProgress
from .families import family_of
from .my_models import read_my_models
from .spec import ModelSpec
from .speed import speed_hint

_SAM_SOURCE = "Meta AI, github.com/facebookresearch/segment-anything (Apache-2.0)"
_MICROSAM_SOURCE = (
    "micro-sam (github.com/computational-cell-analytics/micro-sam), BioImage Model Zoo "
    "entry {entry}; xxh128 hash as pinned by micro-sam"
)
_BIOIMAGEIO = "https://uk1s3.embassy.ebi.ac.uk/public-datasets/bioimage.io"
MICROSAM_GROUP = "micro-sam microscopy models"
_MOBILESAM_SOURCE = (
    "Chaoning Zhang et al., github.com/ChaoningZhang/MobileSAM (Apache-2.0), "
    "weights/mobile_sam.pt (unchanged since 2023-06-29); sha256 as pinned by micro-sam's "
    "earlier sha256 registry for its vit_t (the publisher gives none)"
)
_SAM2_1_BASE = "https://dl.fbaipublicfiles.com/segment_anything_2/092824"
_SAM2_1_SOURCE = (
    "Meta AI, github.com/facebookresearch/sam2 (Apache-2.0), checkpoints/download_ckpts.sh; "
    "Meta publishes no hashes: sha256 as pinned by micro-sam (micro_sam/v2/util.py, HASHES) "
    "and, with the same digest and size, by independent projects"
)

MODELS: dict[str, ModelSpec] = {}
log = logging.getLogger(__name__)


def register_model(spec: ModelSpec, *, replace: bool = False) -> ModelSpec:
    """Add ``spec`` to :data:`MODELS` after checking it; returns it.

    Raises
    ------
    ModelError
        Unknown model type, malformed hash or file name, or the name is taken (unless
        ``replace``) or the file name is used by another model.
    """
    if spec.model_type not in BUILDERS:
        raise ModelError(
            f"model {spec.name!r}: unknown model type {spec.model_type!r}; "
            f"known types: {', '.join(BUILDERS)}"
        )
    algorithm, digest = download.split_hash(spec.hash)
    if algorithm not in HASH_ALGORITHMS or not re.fullmatch(r"[0-9a-f]+", digest):
        raise ModelError(
            f"model {spec.name!r}: hash {spec.hash!r} is not '<algorithm>:<hex digest>' "
            f"with one of {', '.join(HASH_ALGORITHMS)}"
        )
    # a portable whitelist: what is a plain name on Linux (a\\..\\x, C:x) may not be elsewhere
    if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]{0,200}", spec.filename or ""):
        raise ModelError(
            f"model {spec.name!r}: file name {spec.filename!r} must be a plain name "
            "(letters, digits, '.', '_', '+', '-')"
        )
    if spec.name in MODELS and not replace:
        raise ModelError(f"a model named {spec.name!r} is already registered")
    for other in MODELS.values():
        if other.filename == spec.filename and other.name != spec.name:
            raise ModelError(
                f"model {spec.name!r}: file name {spec.filename!r} is used by {other.name!r}"
            )
    MODELS[spec.name] = spec
    return spec


for _spec in (
    ModelSpec(
        name="vit_b",
        model_type="vit_b",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_b_01ec64.pth",
        hash="sha256:ec2df62732614e57411cdcf32a23ffdf28910380d03139ee0f4fcbe91eb8c912",
        filename="sam_vit_b_01ec64.pth",
        size_bytes=375_042_383,
        description="SAM ViT-B, the original Segment Anything (smallest, fastest; default)",
        source=_SAM_SOURCE,
    ),
    ModelSpec(
        name="vit_l",
        model_type="vit_l",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_l_0b3195.pth",
        hash="sha256:3adcc4315b642a4d2101128f611684e8734c41232a17c648ed1693702a49a622",
        filename="sam_vit_l_0b3195.pth",
        size_bytes=1_249_524_607,
        description="SAM ViT-L, the original Segment Anything (larger, slower)",
        source=_SAM_SOURCE,
    ),
    ModelSpec(
        name="vit_h",
        model_type="vit_h",
        url="https://dl.fbaipublicfiles.com/segment_anything/sam_vit_h_4b8939.pth",
        hash="sha256:a7bf3b02f3ebf1267aba913ff637d9a2d5c33d3173bb679e46d9f338c26f262e",
        filename="sam_vit_h_4b8939.pth",
        size_bytes=2_564_550_879,
        description="SAM ViT-H, the original Segment Anything (largest; wants a GPU)",
        source=_SAM_SOURCE,
    ),
    ModelSpec(
        name="vit_b_lm",
        model_type="vit_b",
        url=f"{_BIOIMAGEIO}/diplomatic-bug/1.2/files/vit_b.pt",
        hash="xxh128:fe9252a29f3f4ea53c15a06de471e186",
        filename="microsam_vit_b_lm_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-B fine-tuned for light microscopy (cells, nuclei)",
        source=_MICROSAM_SOURCE.format(entry="diplomatic-bug v1.2"),
        group=MICROSAM_GROUP,
    ),
    ModelSpec(
        name="vit_b_em_organelles",
        model_type="vit_b",
        url=f"{_BIOIMAGEIO}/noisy-ox/1.2/files/vit_b.pt",
        hash="xxh128:f3bf2ed83d691456bae2c3f9a05fb438",
        filename="microsam_vit_b_em_organelles_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-B fine-tuned for electron microscopy organelles",
        source=_MICROSAM_SOURCE.format(entry="noisy-ox v1.2"),
        group=MICROSAM_GROUP,
    ),
    ModelSpec(
        name="vit_l_lm",
        model_type="vit_l",
        url=f"{_BIOIMAGEIO}/idealistic-rat/1.2/files/vit_l.pt",
        hash="xxh128:017f20677997d628426dec80a8018f9d",
        filename="microsam_vit_l_lm_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-L fine-tuned for light microscopy (cells, nuclei)",
        source=_MICROSAM_SOURCE.format(entry="idealistic-rat v1.2"),
        group=MICROSAM_GROUP,
    ),
    ModelSpec(
        name="vit_l_em_organelles",
        model_type="vit_l",
        url=f"{_BIOIMAGEIO}/humorous-crab/1.2/files/vit_l.pt",
        hash="xxh128:810b084b6e51acdbf760a993d8619f2d",
        filename="microsam_vit_l_em_organelles_v1.2.pt",
        size_bytes=None,
        description="micro-sam ViT-L fine-tuned for electron microscopy organelles",
        source=_MICROSAM_SOURCE.format(entry="humorous-crab v1.2"),
        group=MICROSAM_GROUP,
    ),
    ModelSpec(
        name="vit_t",
        model_type="vit_t",
        url="https://github.com/ChaoningZhang/MobileSAM/raw/master/weights/mobile_sam.pt",
        hash="sha256:6dbb90523a35330fedd7f1d3dfc66f995213d81b29a5ca8108dbcdd4e37d6c2f",
        filename="mobile_sam.pt",
        size_bytes=40_728_226,
        description="MobileSAM ViT-T: SAM's decoder behind a 6 M-parameter encoder (CPU pick)",
        source=_MOBILESAM_SOURCE,
    ),
    ModelSpec(
        name="vit_t_lm",
        model_type="vit_t",
        url=f"{_BIOIMAGEIO}/faithful-chicken/1.1/files/vit_t.pt",
        hash="xxh128:72ec5074774761a6e5c05a08942f981e",
        filename="microsam_vit_t_lm_v1.1.pt",
        size_bytes=None,
        description="micro-sam MobileSAM ViT-T fine-tuned for light microscopy (CPU pick)",
        source=_MICROSAM_SOURCE.format(entry="faithful-chicken v1.1"),
        group=MICROSAM_GROUP,
    ),
    ModelSpec(
        name="vit_t_em_organelles",
        model_type="vit_t",
        url=f"{_BIOIMAGEIO}/greedy-whale/1/files/vit_t.pt",
        hash="xxh128:253474720c497cce605e57c9b1d18fd9",
        filename="microsam_vit_t_em_organelles_v1.pt",
        size_bytes=None,
        description="micro-sam MobileSAM ViT-T fine-tuned for electron microscopy organelles",
        source=_MICROSAM_SOURCE.format(entry="greedy-whale v1"),
        group=MICROSAM_GROUP,
    ),
    ModelSpec(
        name="sam2.1_hiera_t",
        model_type="sam2.1_hiera_t",
        url=f"{_SAM2_1_BASE}/sam2.1_hiera_tiny.pt",
        hash="sha256:7402e0d864fa82708a20fbd15bc84245c2f26dff0eb43a4b5b93452deb34be69",
        filename="sam2.1_hiera_tiny.pt",
        size_bytes=156_008_466,
        description="SAM 2.1 Hiera-T: better masks per click than SAM, light encoder",
        source=_SAM2_1_SOURCE,
    ),
    ModelSpec(
        name="sam2.1_hiera_s",
        model_type="sam2.1_hiera_s",
        url=f"{_SAM2_1_BASE}/sam2.1_hiera_small.pt",
        hash="sha256:6d1aa6f30de5c92224f8172114de081d104bbd23dd9dc5c58996f0cad5dc4d38",
        filename="sam2.1_hiera_small.pt",
        size_bytes=184_416_285,
        description="SAM 2.1 Hiera-S",
        source=_SAM2_1_SOURCE,
    ),
    ModelSpec(
        name="sam2.1_hiera_b+",
        model_type="sam2.1_hiera_b+",
        url=f"{_SAM2_1_BASE}/sam2.1_hiera_base_plus.pt",
        hash="sha256:a2345aede8715ab1d5d31b4a509fb160c5a4af1970f199d9054ccfb746c004c5",
        filename="sam2.1_hiera_base_plus.pt",
        size_bytes=323_606_802,
        description="SAM 2.1 Hiera-B+ (the GPU pick: best masks for the time)",
        source=_SAM2_1_SOURCE,
    ),
    ModelSpec(
        name="sam2.1_hiera_l",
        model_type="sam2.1_hiera_l",
        url=f"{_SAM2_1_BASE}/sam2.1_hiera_large.pt",
        hash="sha256:2647878d5dfa5098f2f8649825738a9345572bae2d4350a2468587ece47dd318",
        filename="sam2.1_hiera_large.pt",
        size_bytes=898_083_611,
        description="SAM 2.1 Hiera-L (largest; wants a GPU)",
        source=_SAM2_1_SOURCE,
    ),
):
    register_model(_spec)
del _spec

#: The demo model ships inside the package: no download, works offline (scripts/train_demo.py).
DEMO_MODEL = "demo"
DEMO_GROUP = "Demo (offline)"
DEMO_FOLDER = Path(__file__).parent / "weights"
register_model(
    ModelSpec(
        name=DEMO_MODEL,
        model_type=DEMO_MODEL_TYPE,
        url="",
        hash="sha256:75952a94804b7f0b3210d3e36d269e02d315bc10d44f460705dae2b7930198ff",
        filename="demo.pt",
        size_bytes=3_090_527,
        description=(
            "demo: a small model trained here from scratch on synthetic nuclei and cells; "
            "automatic instance segmentation (AIS), and clicks that pick its objects. "
            "Works offline; not a substitute for SAM on real images"
        ),
        source="napari-promptseg (BSD-3-Clause), made by scripts/train_demo.py (seed 0)",
        group=DEMO_GROUP,
        folder=DEMO_FOLDER,
    )
)

DEFAULT_MODEL = "vit_b"
MY_MODELS_GROUP = "my models"


def refresh_my_models() -> list[ModelSpec]:
    """Register the user's finetuned models (:mod:`.my_models`) under "my models".

    Entries that disappeared are dropped; one whose name is a built-in model's is skipped
    (with a warning in the log). Returns the specs registered.
    """
    for name in [n for n, spec in MODELS.items() if spec.group == MY_MODELS_GROUP]:
        del MODELS[name]
    found = []
    for model in read_my_models():
        if model.name in MODELS:
            log.warning("my model %r is not listed: a built-in model has that name", model.name)
            continue
        spec = ModelSpec(
            name=model.name,
            model_type=model.model_type,
            url="",
            hash=f"sha256:{model.sha256}",
            filename=model.path.name,
            size_bytes=model.size_bytes,
            description=model.description(),
            source=f"finetuned here ({model.metadata.get('created', 'date unknown')})",
            group=MY_MODELS_GROUP,
            folder=model.path.parent,
        )
        try:
            found.append(register_model(spec))
        except ModelError as error:
            log.warning("my model %r is not listed: %s", model.name, error)
    return found


def get_spec(name: str) -> ModelSpec:
    """The registry entry for ``name``; ``ModelError`` listing the known names otherwise."""
    if name not in MODELS or MODELS[name].group == MY_MODELS_GROUP:
        refresh_my_models()  # a model finetuned since the last look, or one deleted
    try:
        return MODELS[name]
    except KeyError:
        raise ModelError(
            f"unknown model {name!r}; known models: {', '.join(MODELS)} "
            "(or load a local checkpoint file)"
        ) from None


def checkpoint_path(name: str) -> Path:
    """Where model ``name``'s checkpoint is (or will be) stored in :func:`cache_dir`."""
    return download.spec_path(get_spec(name))


def is_cached(name: str) -> bool:
    """Whether model ``name``'s file is in the cache with the right size (not hashed)."""
    return download.is_spec_cached(get_spec(name))


def fetch_checkpoint(
    name: str,
    *,
    progress: bool | ByteProgress = True,
    offline: bool = False,
    url: str | None = None,
) -> Path:
    """Return the path of model ``name``'s verified checkpoint, downloading it if needed.

    Parameters
    ----------
    name : str
        A registry name (see :data:`MODELS`).
    progress : bool or callable
        ``True``: a tqdm bar on stderr; ``False``: silent; a callable
        ``(bytes_done, bytes_total) -> None`` is called as data arrives (``bytes_total`` is 0
        if unknown). An exception raised by the callable (e.g. ``Cancelled``) aborts the
        download and leaves nothing in the cache.
    offline : bool
        Never touch the network (also set by ``NAPARI_PROMPTSEG_OFFLINE=1``).
    url : str, optional
        Download from here instead of the registry URL (the hash is still checked). The
        ``NAPARI_PROMPTSEG_MIRROR`` environment variable does the same for every model.

    Raises
    ------
    ModelError
        Unknown name; hash mismatch (names both hashes and the URL); unwritable cache.
    CheckpointNotAvailable
        Offline or the download failed; the message says which file to put where.
    """
    return download.fetch_spec(get_spec(name), progress=progress, offline=offline, url=url)


def list_models() -> list[dict[str, Any]]:
    """One row per registry model, for the CLI and the widget's model menu.

    Keys: ``name``, ``model_type``, ``family`` (``"sam"``, ``"mobilesam"``, ``"sam2.1"``),
    ``family_title`` (``"SAM"``, ``"MobileSAM"``, ``"SAM 2.1"``), ``group`` (menu heading),
    ``size`` (bytes, int or None if unpublished), ``size_text`` (e.g. ``"358 MiB"`` or
    ``"unknown"``), ``cached`` (bool: file present with the right size; not hashed),
    ``path`` (str), ``description``, ``speed`` (measured here: ``"≈ 1.2 s / image here
    (cpu)"`` or ``"not measured yet"``, see :mod:`.speed`), ``shipped`` (bool: never
    downloaded, the file comes with the package or was made here).
    """
    refresh_my_models()
    return [
        {
            "name": spec.name,
            "model_type": spec.model_type,
            "family": spec.family,
            "family_title": family_of(spec.model_type).title,
            "group": spec.group or family_of(spec.model_type).title,
            "speed": speed_hint(spec.name),
            "size": spec.size_bytes,
            "size_text": _human_size(spec.size_bytes),
            "cached": download.is_spec_cached(spec),
            "path": str(download.spec_path(spec)),
            "description": spec.description,
            "shipped": spec.folder is not None,
        }
        for spec in MODELS.values()
    ]


def _human_size(size: int | None) -> str:
    if size is None:
        return "unknown"
    if size >= 1 << 30:
        return f"{size / (1 << 30):.1f} GiB"
    if size < 10 << 20:
        return f"{size / (1 << 20):.1f} MiB"
    return f"{size / (1 << 20):.0f} MiB"
