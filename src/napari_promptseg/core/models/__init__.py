"""Getting a model: the registry, downloads, safe checkpoint loading, the device.

* :mod:`.registry` — the models known by name (URL, hash, file name), :func:`fetch_checkpoint`;
* :mod:`.download` — the cache folder, verified downloads, the offline message;
* :mod:`.checkpoint` — the one place a file is unpickled (``weights_only=True``);
* :mod:`.architectures` — builders per model type, recognising a type from its weights;
* :mod:`.families` — SAM, MobileSAM, SAM 2.1: what each needs, telling their weights apart;
* :mod:`.speed` — embedding time measured on this machine, shown as a hint;
* :mod:`.tiny` — the tiny random SAM for tests and demos of the plumbing;
* :mod:`.loading` — name or file → :class:`LoadedModel` on a device (:mod:`.device`).
"""

from .architectures import BUILDERS, infer_model_type
from .checkpoint import load_state_dict
from .device import available_devices, describe_device, select_device
from .download import cache_dir
from .families import FAMILIES, ModelFamily, describe_weights, family_of
from .loading import LoadedModel, load_model, wrap_model
from .registry import (
    DEFAULT_MODEL,
    MODELS,
    ModelSpec,
    checkpoint_path,
    fetch_checkpoint,
    get_spec,
    is_cached,
    list_models,
    register_model,
)

__all__ = [
    "BUILDERS",
    "DEFAULT_MODEL",
    "FAMILIES",
    "MODELS",
    "LoadedModel",
    "ModelFamily",
    "ModelSpec",
    "available_devices",
    "cache_dir",
    "checkpoint_path",
    "describe_device",
    "describe_weights",
    "family_of",
    "fetch_checkpoint",
    "get_spec",
    "infer_model_type",
    "is_cached",
    "list_models",
    "load_model",
    "load_state_dict",
    "register_model",
    "select_device",
    "wrap_model",
]
