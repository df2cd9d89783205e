"""The first-use self-check of the fused kernels (ikd_yolo/ops/_self_check.py), checked on CPU.

On a GPU the check runs for CUDA tensors; here it is applied to CPU tensors instead, and a wrong kernel is forced
through the dispatcher: a Python kernel registered over the compiled CPU one (a fake backend), removed afterwards.
"""

from __future__ import annotations

import pytest
import torch

from ikd_yolo import ops
from ikd_yolo.ops import _loader, _self_check
from ikd_yolo.ops import reference as ref

pytestmark = pytest.mark.skipif(_loader.load() is None, reason=f"fused extension not built ({_loader.error()})")


@pytest.fixture
def checked_cpu(monkeypatch):
    """The self-check applied to CPU tensors, from a clean slate, on the fused backend."""
    monkeypatch.setattr(_self_check, "CHECKED_DEVICE_TYPES", ("cpu",))
    monkeypatch.delenv("IKD_SELF_CHECK", raising=False)
    _self_check.reset()
    ops.set_backend("fused")
    yield
    ops.set_backend("auto")
    _self_check.reset()


@pytest.fixture
def fake_kernel():
    """install(op, fn): route the CPU kernel of torch.ops.ikd.<op> to `fn`, counting its calls."""
    libs, calls = [], []

    def install(op: str, fn):
        lib = torch.library.Library("ikd", "IMPL")

        def counted(*args):
            calls.append(op)
            return fn(*args)

        lib.impl(op, counted, "CPU")
        libs.append(lib)
        return calls

    yield install
    for lib in libs:
        lib._destroy()  # the compiled kernel is back


def batch():
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(2, 3, 16, 15, generator=g), torch.rand(2, 3, 16, 15, generator=g)
    return x, s, torch.tensor([1, 0]), torch.tensor([0.0, 0.4]), torch.tensor([2.0, 1.0]), torch.tensor([1.0, 0.6])


def spectral_mix(x, s, perm, lo, hi, lam):
    return ops.spectral_mix(x, s, lo, hi, lam), ref.spectral_mix(x, s, lo, hi, lam)


def spectral_mix_shuffle(x, s, perm, lo, hi, lam):
    return ops.spectral_mix_shuffle(x, perm, lo, hi, lam), ref.spectral_mix_shuffle(x, perm, lo, hi, lam)


def spectral_mix_noise(x, s, perm, lo, hi, lam):
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    return (ops.spectral_mix_noise(x, 0.1, lo, hi, lam, generator=g1),
            ref.spectral_mix_noise(x, 0.1, lo, hi, lam, generator=g2))


def adv_step(x, s, perm, lo, hi, lam):
    args = x, s, s - x, x - s, 0.01, 0.03, 0.0, 1.0, 0.9
    return ops.adv_step(*args), ref.adv_step(*args)


# wrong kernels, each a bug a kernel could have: the neighbour's source (a wrong sample index), the permutation read
# backwards, the noise forgotten, the gradient's sign flipped
WRONG = {
    "spectral_mix": lambda x, s, lo, hi, lam, mode: ref.spectral_mix(x, s.roll(1, 0), lo, hi, lam, mode),
    "spectral_mix_shuffle": lambda x, perm, lo, hi, lam, mode: ref.spectral_mix_shuffle(x, perm.flip(0), lo, hi, lam,
                                                                                         mode),
    "spectral_mix_noise": lambda x, sigma, lo, hi, lam, mode, seed: x.clamp(0, 1),
    "adv_step": lambda xa, xc, g, m, step, eps, lo, hi, decay: ref.adv_step(xa, xc, -g, m, step, eps, lo, hi, decay),
}
CALLS = {"spectral_mix": spectral_mix, "spectral_mix_shuffle": spectral_mix_shuffle,
         "spectral_mix_noise": spectral_mix_noise, "adv_step": adv_step}


def assert_same(got, want):
    for a, b in zip(*((t,) if isinstance(t, torch.Tensor) else t for t in (got, want))):
        assert torch.equal(a, b)


@pytest.mark.parametrize("op", list(WRONG))
def test_self_check_catches_a_wrong_kernel_once_and_falls_back_to_the_reference(op, checked_cpu, fake_kernel,
                                                                                 ultralytics_log):
    calls = fake_kernel(op, WRONG[op])
    got, want = CALLS[op](*batch())
    assert_same(got, want)  # the very first call already returns the reference's result
    checked = len(calls)
    assert checked >= 1  # the check ran the (wrong) fused kernel ...
    warnings = [m for m in ultralytics_log if "first-use check" in m]
    assert len(warnings) == 1 and "\n" not in warnings[0], warnings  # ... and said so in one line
    assert f"fused {op} kernel" in warnings[0] and "on cpu" in warnings[0] and "max |fused - reference|" in warnings[0]
    for _ in range(2):  # later calls: the reference, no second check, no second warning
        assert_same(*CALLS[op](*batch()))
    assert len(calls) == checked and len([m for m in ultralytics_log if "first-use check" in m]) == 1
    other = "adv_step" if op != "adv_step" else "spectral_mix"  # the other ops keep their fused kernels
    assert _self_check.trusted(other, torch.device("cpu")) and not _self_check.trusted(op, torch.device("cpu"))


def test_self_check_reports_a_launch_error(checked_cpu, fake_kernel, ultralytics_log):
    def no_image(*args):
        raise RuntimeError("CUDA error: no kernel image is available for execution on the device\nmore detail")

    fake_kernel("adv_step", no_image)
    assert_same(*adv_step(*batch()))
    warnings = [m for m in ultralytics_log if "first-use check" in m]
    assert len(warnings) == 1 and "RuntimeError: CUDA error: no kernel image is available" in warnings[0]
    assert "more detail" not in warnings[0]


@pytest.mark.parametrize("device", ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(
    not (torch.cuda.is_available() and _loader.cuda_compiled()), reason="no CUDA device"))])
@pytest.mark.parametrize("op", list(WRONG))
def test_self_check_passes_the_real_kernels(op, device):
    assert _self_check.check(op, torch.device(device)) is None


def test_self_check_off_keeps_the_fused_kernel(checked_cpu, fake_kernel, ultralytics_log, monkeypatch):
    monkeypatch.setenv("IKD_SELF_CHECK", "0")
    calls = fake_kernel("spectral_mix", WRONG["spectral_mix"])
    x, s, _, lo, hi, lam = batch()
    got = ops.spectral_mix(x, s, lo, hi, lam)
    assert calls == ["spectral_mix"] and not ultralytics_log  # no check: the (wrong) fused kernel ran, once
    assert torch.equal(got, ref.spectral_mix(x, s.roll(1, 0), lo, hi, lam))


def test_self_check_only_on_checked_devices(fake_kernel, ultralytics_log):
    """By default only CUDA tensors are checked: the CPU kernels are tested here, in CI."""
    _self_check.reset()
    ops.set_backend("fused")
    try:
        calls = fake_kernel("spectral_mix", WRONG["spectral_mix"])
        x, s, _, lo, hi, lam = batch()
        ops.spectral_mix(x, s, lo, hi, lam)
        assert calls == ["spectral_mix"] and not ultralytics_log
    finally:
        ops.set_backend("auto")
