"""Device selection and description."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from napari_promptseg.core.errors import ModelError
from napari_promptseg.core.models import device as device_mod
from napari_promptseg.core.models.device import (
    available_devices,
    describe_device,
    select_device,
)

needs_no_gpu = pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has a GPU")


@pytest.fixture
def cpu_only(monkeypatch):
    """Pretend there is neither CUDA nor MPS, whatever the machine has."""
    monkeypatch.setattr(device_mod, "_cuda_ok", lambda: False)
    monkeypatch.setattr(device_mod, "_mps_ok", lambda: False)


@pytest.fixture
def two_gpus(monkeypatch):
    """Pretend there are two CUDA GPUs (nothing is run on them)."""
    monkeypatch.setattr(device_mod, "_cuda_ok", lambda: True)
    monkeypatch.setattr(device_mod, "_mps_ok", lambda: False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.setattr(torch.cuda, "current_device", lambda: 0)


@pytest.mark.parametrize("preferred", [None, "auto", "AUTO", " auto "])
def test_auto_is_cpu_without_gpu(cpu_only, preferred):
    assert select_device(preferred) == torch.device("cpu")


@needs_no_gpu
def test_auto_on_this_machine():
    if device_mod._mps_ok():
        pytest.skip("Apple MPS present")
    assert select_device() == torch.device("cpu")


@pytest.mark.parametrize("preferred", ["cpu", "CPU", torch.device("cpu")])
def test_cpu_is_always_available(preferred):
    assert select_device(preferred) == torch.device("cpu")


@needs_no_gpu
@pytest.mark.parametrize("preferred", ["cuda", "cuda:1", torch.device("cuda", 0)])
def test_missing_cuda_is_refused_by_name(preferred):
    with pytest.raises(ModelError) as info:
        select_device(preferred)
    message = str(info.value)
    assert str(torch.device(preferred) if isinstance(preferred, str) else preferred) in message
    assert "not available" in message and "cpu" in message


def test_missing_mps_is_refused(cpu_only):
    with pytest.raises(ModelError, match=r"'mps' is not available.*Available devices: cpu"):
        select_device("mps")


@pytest.mark.parametrize("preferred", ["gpu0", "bogus", "xpu", "meta"])
def test_unknown_or_unsupported_device(preferred):
    with pytest.raises(ModelError, match="auto"):
        select_device(preferred)


def test_auto_prefers_cuda(two_gpus):
    assert select_device() == torch.device("cuda", 0)
    assert select_device("cuda") == torch.device("cuda", 0)
    assert select_device("cuda:1") == torch.device("cuda", 1)
    assert available_devices() == ["cuda:0", "cuda:1", "cpu"]


def test_cuda_index_out_of_range(two_gpus):
    with pytest.raises(ModelError, match=r"'cuda:2'.*2 CUDA GPU.*cuda:0, cuda:1, cpu"):
        select_device("cuda:2")


def test_auto_falls_back_to_mps(monkeypatch):
    monkeypatch.setattr(device_mod, "_cuda_ok", lambda: False)
    monkeypatch.setattr(device_mod, "_mps_ok", lambda: True)
    assert select_device("auto") == torch.device("mps")
    assert select_device("mps") == torch.device("mps")


def test_describe_cpu():
    assert describe_device("cpu") == f"CPU ({torch.get_num_threads()} threads)"
    assert describe_device(torch.device("cpu")).startswith("CPU (")


def test_describe_cuda(monkeypatch):
    props = SimpleNamespace(name="NVIDIA H100 80GB HBM3", total_memory=85_520_809_984)
    monkeypatch.setattr(torch.cuda, "get_device_properties", lambda index: props)
    assert describe_device("cuda:0") == "CUDA: NVIDIA H100 80GB HBM3 (80 GB)"


def test_describe_mps():
    assert "MPS" in describe_device("mps")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_real_gpu():
    device = select_device()
    assert device.type == "cuda"
    assert select_device("cuda") == device
    assert describe_device(device).startswith("CUDA: ")
    tensor = torch.ones(2, device=device)
    assert tensor.device == device
