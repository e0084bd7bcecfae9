"""Choosing the torch device a model runs on, and describing it to the user.

``"auto"`` prefers an NVIDIA GPU (CUDA), then Apple silicon (MPS), then the CPU. A device
the user asks for explicitly is honoured or refused with a message saying what is
available; it never silently falls back to the CPU (a 20x slower run would look like a hang).
"""

from __future__ import annotations

import torch

from ..errors import ModelError

_SUPPORTED = "'auto', 'cpu', 'cuda', 'cuda:<index>' or 'mps'"


def available_devices() -> list[str]:
    """Names of the devices this machine can use, best first (``"cpu"`` always last)."""
    names = [f"cuda:{i}" for i in range(torch.cuda.device_count())] if _cuda_ok() else []
    if _mps_ok():
        names.append("mps")
    names.append("cpu")
    return names


def select_device(preferred: str | torch.device | None = None) -> torch.device:
    """Return the device to run on.

    Parameters
    ----------
    preferred : str, torch.device or None
        None or ``"auto"``: CUDA if available, else MPS, else CPU. Otherwise ``"cpu"``,
        ``"cuda"``, ``"cuda:1"``, ``"mps"`` (case-insensitive) or a ``torch.device``.

    Raises
    ------
    ModelError
        The device is unknown or not available here; the message lists what is.
    """
    if preferred is None or (isinstance(preferred, str) and preferred.strip().lower() == "auto"):
        if _cuda_ok():
            return torch.device("cuda", torch.cuda.current_device())
        if _mps_ok():
            return torch.device("mps")
        return torch.device("cpu")

    if isinstance(preferred, torch.device):
        device = preferred
    else:
        try:
            device = torch.device(str(preferred).strip().lower())
        except (RuntimeError, ValueError):
            raise ModelError(f"unknown device {preferred!r}; use {_SUPPORTED}") from None

    if device.type == "cpu":
        return torch.device("cpu")
    if device.type == "cuda":
        if not _cuda_ok():
            raise ModelError(_unavailable(device, "no CUDA GPU is usable by PyTorch here"))
        count = torch.cuda.device_count()
        index = torch.cuda.current_device() if device.index is None else device.index
        if index >= count:
            raise ModelError(_unavailable(device, f"this machine has {count} CUDA GPU(s)"))
        return torch.device("cuda", index)
    if device.type == "mps":
        if not _mps_ok():
            raise ModelError(_unavailable(device, "Apple MPS is not available here"))
        return torch.device("mps")
    raise ModelError(f"device {str(device)!r} is not supported; use {_SUPPORTED}")


def describe_device(device: str | torch.device) -> str:
    """A short human description, e.g. ``"CPU (8 threads)"``, ``"CUDA: NVIDIA H100 (80 GB)"``."""
    device = torch.device(device) if isinstance(device, str) else device
    if device.type == "cuda":
        index = device.index if device.index is not None else torch.cuda.current_device()
        props = torch.cuda.get_device_properties(index)
        # GPU makers quote memory in GiB but label it GB: an 80 GB card has ~80 GiB
        return f"CUDA: {props.name} ({props.total_memory / 2**30:.0f} GB)"
    if device.type == "mps":
        return "Apple MPS (Metal GPU)"
    if device.type == "cpu":
        return f"CPU ({torch.get_num_threads()} threads)"
    return str(device)


def _cuda_ok() -> bool:
    return torch.cuda.is_available()


def _mps_ok() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return bool(mps is not None and mps.is_available() and mps.is_built())


def _unavailable(device: torch.device, why: str) -> str:
    return (
        f"device {str(device)!r} is not available: {why}. "
        f"Available devices: {', '.join(available_devices())}."
    )
