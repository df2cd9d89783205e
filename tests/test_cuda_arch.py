"""Kernels for the user's GPU: the build's default targets cover every GPU torch's own wheel runs on (and newer ones
through PTX), the extension says what it holds, and a GPU it cannot run on gets the reference ops with one warning
(emulated here: no GPU, so the device's compute capability and the compiled list are patched)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
import torch

from ikd_yolo import ops
from ikd_yolo.ops import _arch, _loader

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_BUILD = ("sm_75", "sm_80", "sm_86", "sm_90", "sm_100", "sm_120", "compute_120")  # setup.py's default list


def setup_py():
    """setup.py as a module (its setup() call runs only as __main__)."""
    spec = importlib.util.spec_from_file_location("ikd_setup", ROOT / "setup.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("code, capability, runs", [
    ("sm_80", (8, 0), True),
    ("sm_80", (8, 6), True),  # A100 code on an RTX 30 / A10
    ("sm_80", (8, 9), True),  # ... on an RTX 40 / L4
    ("sm_86", (8, 0), False),  # machine code never runs on an older minor version
    ("sm_80", (9, 0), False),  # nor on another major version
    ("sm_90", (12, 0), False),
    ("compute_120", (12, 1), True),  # PTX: compiled by the driver for any newer GPU
    ("compute_120", (11, 0), False),  # but not for an older one
    ("sm_90a", (9, 0), True),  # arch-specific code: that GPU alone
    ("sm_90a", (10, 0), False),
])
def test_which_gpu_runs_which_code(code, capability, runs):
    assert _arch.runs_on(code, capability) is runs


@pytest.mark.skipif(not torch.cuda.get_arch_list(), reason="a CPU-only torch builds no CUDA kernels")
def test_default_build_runs_on_every_gpu_torchs_wheel_runs_on(monkeypatch):
    setup = setup_py()
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")  # unset for setup.py, and restored after the test
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)  # no GPU at install: the documented list
    built = setup.compiled_archs(setup.nvcc_arch_flags())
    assert tuple(built.split(",")) == DEFAULT_BUILD
    wheel = [(int(a[3:-1]), int(a[-1])) for a in torch.cuda.get_arch_list() if a.startswith("sm_")]
    for capability in [*wheel, (8, 9), (12, 1)]:  # and an RTX 40 / L4, a GB10: newer than any listed code
        assert any(_arch.runs_on(code, capability) for code in DEFAULT_BUILD), capability
    # a GPU found at install: torch builds for it (and its PTX), nothing else
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=None: (8, 9))
    monkeypatch.setenv("TORCH_CUDA_ARCH_LIST", "")
    assert setup.compiled_archs(setup.nvcc_arch_flags()) == "sm_89,compute_89"


@pytest.mark.skipif(not _loader.cuda_compiled(), reason="the extension was built without CUDA kernels")
def test_extension_says_which_gpu_code_it_holds():
    archs = _loader.cuda_archs()  # the README's test command builds sm_90 alone
    assert archs and all(isinstance(_arch.runs_on(code, (9, 0)), bool) for code in archs)  # each one parses


@pytest.fixture
def emulated_gpu(monkeypatch):
    """A CUDA-built extension holding the default build's code, and GPU 0 of the compute capability the test sets."""
    capability = {"value": (8, 0)}
    monkeypatch.setattr(_loader, "cuda_compiled", lambda: True)
    monkeypatch.setattr(_loader, "cuda_archs", lambda: DEFAULT_BUILD)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability["value"])
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda device=None: "Emulated GPU")
    _arch.reset()
    yield capability
    _arch.reset()
    ops.set_backend("auto")


@pytest.mark.skipif(_loader.load() is None, reason="no compiled extension")
def test_gpu_without_compiled_kernels_falls_back_to_the_reference_with_one_warning(emulated_gpu, ultralytics_log):
    emulated_gpu["value"] = (11, 0)  # a Jetson Thor: no sm_11x code, and PTX 12.0 is newer than it
    gpu = torch.device("cuda:0")
    for _ in range(3):  # every op, several calls: the reference each time
        assert ops.backend(gpu) == "reference"
        assert not any(ops._backend.use_fused(op, gpu) for op in ("adv_step", "spectral_mix", "spectral_mix_noise"))
    warned = [m for m in ultralytics_log if "ikd_yolo.ops" in m]
    assert len(warned) == 1 and "compute capability 11.0" in warned[0] and "Emulated GPU" in warned[0]
    assert "TORCH_CUDA_ARCH_LIST=11.0" in warned[0] and "sm_120, compute_120" in warned[0]
    with pytest.raises(RuntimeError, match="no kernels for cuda:0"):  # asked for explicitly: an error, not a fallback
        ops.set_backend("fused")
        ops.backend(gpu)


@pytest.mark.skipif(_loader.load() is None, reason="no compiled extension")
def test_gpu_the_kernels_run_on_uses_them_without_a_warning(emulated_gpu, ultralytics_log):
    emulated_gpu["value"] = (8, 9)  # an L4: sm_80 code runs on it
    assert ops.backend(torch.device("cuda:0")) == "fused-cuda"
    assert not [m for m in ultralytics_log if "ikd_yolo.ops" in m]


@pytest.mark.skipif(not torch.cuda.is_available() or not _loader.cuda_compiled(), reason="needs a GPU and CUDA kernels")
def test_a_build_made_for_this_gpu_runs_on_it():
    _arch.reset()
    assert _arch.kernels_run_on(torch.device("cuda:0")) and ops.backend(torch.device("cuda:0")) == "fused-cuda"
