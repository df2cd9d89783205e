"""Property tests (hypothesis) of the two IKD ops over random shapes, bands, strengths, budgets and per-sample tensors.

Every property holds for the backend the package runs (`ikd_yolo.ops`, fused when built); where the extension is
built, the fused kernels must also equal the PyTorch reference. Images and parameters are drawn small: the point is
odd shapes (1-pixel sides, odd widths, batch 1) and per-sample parameter routing, not size.
"""

from __future__ import annotations

import importlib

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ikd_yolo import ops
from ikd_yolo.ops import reference as ref

PROPERTY = settings(max_examples=25, deadline=None)
BACKEND = ops.backend("cpu")  # "fused-cpu" when the compiled extension is built, else "reference"
needs_fused = pytest.mark.skipif(BACKEND == "reference", reason="no fused kernels: ops.backend('cpu') == 'reference'")
if BACKEND != "reference":  # the test-only module of the ops ikd::_emulated_* (ikd_yolo.ops never loads it)
    importlib.import_module("ikd_yolo._C_emulated")


@pytest.fixture(autouse=True)
def _auto_backend():
    ops.set_backend("auto")
    yield
    ops.set_backend("auto")


@st.composite
def image_batches(draw, max_side: int = 12) -> torch.Tensor:
    """(B, C, H, W) images in [0, 1]: any side from 1, sometimes binary (saturated), sometimes non-contiguous."""
    b, c = draw(st.integers(1, 3)), draw(st.integers(1, 3))
    h, w = draw(st.integers(1, max_side)), draw(st.integers(1, max_side))
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = torch.rand(b, c, w, h, generator=g).transpose(2, 3)  # non-contiguous view of an (B, C, H, W) batch
    if draw(st.booleans()):
        x = (x > 0.5).float()  # all pixels at 0 or 1: clamping must not push anything out of range
    if draw(st.booleans()):
        x = x.contiguous()
    return x


def per_sample(draw, b: int, lo: float, hi: float):
    """A float, or a (B,) float64 tensor with values in [lo, hi] (repeats and the bounds themselves included)."""
    values = st.floats(lo, hi, allow_nan=False, allow_infinity=False)
    if draw(st.booleans()):
        return draw(values)
    return torch.tensor(draw(st.lists(values, min_size=b, max_size=b)), dtype=torch.float64)


def value(p, i: int) -> float:
    return float(p[i]) if isinstance(p, torch.Tensor) else float(p)


@st.composite
def spectral_cases(draw):
    """Images plus per-sample band [lo, hi) (empty when lo >= hi), strength lam, and a mixing mode."""
    x = draw(image_batches())
    b = x.shape[0]
    return {
        "x": x, "lo": per_sample(draw, b, 0.0, 1.5), "hi": per_sample(draw, b, 0.0, 1.5),
        "lam": per_sample(draw, b, 0.0, 1.0), "mode": draw(st.sampled_from(["complex", "amplitude"])),
        "seed": draw(st.integers(0, 2**31 - 1)),
    }


def in_unit_range(y: torch.Tensor) -> bool:
    return bool(torch.isfinite(y).all() and y.min() >= 0 and y.max() <= 1)


# ---- spectral mixing ------------------------------------------------------------------------------------------------


@PROPERTY
@given(spectral_cases())
def test_spectral_mix_is_finite_in_range_and_per_sample(case):
    x, lo, hi, lam, mode = case["x"], case["lo"], case["hi"], case["lam"], case["mode"]
    source = torch.rand(x.shape, generator=torch.Generator().manual_seed(case["seed"]))
    y = ops.spectral_mix(x, source, lo, hi, lam, mode)
    assert y.shape == x.shape and y.dtype == x.dtype and in_unit_range(y)
    for i in range(x.shape[0]):  # sample i only sees its own parameters and its own source
        alone = ops.spectral_mix(x[i:i + 1], source[i:i + 1], value(lo, i), value(hi, i), value(lam, i), mode)
        torch.testing.assert_close(y[i:i + 1], alone, atol=1e-5, rtol=0)
        if value(lam, i) == 0 or value(lo, i) >= value(hi, i):  # nothing to mix: the image comes back
            torch.testing.assert_close(y[i], x[i], atol=1e-5, rtol=0)


@PROPERTY
@given(spectral_cases())
def test_spectral_mix_shuffle_is_finite_in_range_and_identity_for_itself(case):
    x, lo, hi, lam, mode = case["x"], case["lo"], case["hi"], case["lam"], case["mode"]
    perm = torch.randint(0, x.shape[0], (x.shape[0],), generator=torch.Generator().manual_seed(case["seed"]))
    y = ops.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)
    assert y.shape == x.shape and in_unit_range(y)
    torch.testing.assert_close(y, ops.spectral_mix(x, x[perm], lo, hi, lam, mode), atol=1e-5, rtol=0)
    same = ops.spectral_mix_shuffle(x, torch.arange(x.shape[0]), lo, hi, lam, mode)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)  # mixing an image with itself changes nothing


@PROPERTY
@given(spectral_cases(), st.data())
def test_spectral_mix_noise_is_finite_in_range_and_silent_without_noise(case, data):
    x, lo, hi, lam, mode = case["x"], case["lo"], case["hi"], case["lam"], case["mode"]
    sigma = per_sample(data.draw, x.shape[0], 0.0, 0.5)
    y = ops.spectral_mix_noise(x, sigma, lo, hi, lam, mode, generator=torch.Generator().manual_seed(case["seed"]))
    assert y.shape == x.shape and in_unit_range(y)
    for i in range(x.shape[0]):
        if value(sigma, i) == 0 or value(lam, i) == 0 or value(lo, i) >= value(hi, i):
            torch.testing.assert_close(y[i], x[i], atol=1e-5, rtol=0)


@needs_fused
@PROPERTY
@given(spectral_cases())
def test_fused_spectral_mix_equals_reference(case):
    x, lo, hi, lam, mode = case["x"], case["lo"], case["hi"], case["lam"], case["mode"]
    g = torch.Generator().manual_seed(case["seed"])
    source = torch.rand(x.shape, generator=g)
    perm = torch.randint(0, x.shape[0], (x.shape[0],), generator=g)
    ops.set_backend("fused")
    fused = ops.spectral_mix(x, source, lo, hi, lam, mode), ops.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)
    lo_t, hi_t, lam_t = (ref.per_sample(p, x.shape[0], x.device) for p in (lo, hi, lam))
    torch.testing.assert_close(fused[0], ref.spectral_mix(x, source, lo_t, hi_t, lam_t, mode), atol=1e-5, rtol=0)
    torch.testing.assert_close(fused[1], ref.spectral_mix_shuffle(x, perm, lo_t, hi_t, lam_t, mode), atol=1e-5, rtol=0)


@needs_fused
@PROPERTY
@given(spectral_cases(), st.sampled_from([1, 7, 132]), st.booleans())
def test_emulated_cuda_spectral_ops_equal_reference(case, sms, wide_index):
    """The CUDA kernel's pass, emulated on the host (tests/test_emulated_cuda.py) for a device of `sms` SMs."""
    x, mode = case["x"], case["mode"]
    b = x.shape[0]
    lo, hi, lam = (ref.per_sample(case[k], b, x.device) for k in ("lo", "hi", "lam"))
    g = torch.Generator().manual_seed(case["seed"])
    source, perm = torch.rand(x.shape, generator=g), torch.randint(0, b, (b,), generator=g)
    launch = (sms, wide_index)
    torch.testing.assert_close(torch.ops.ikd._emulated_spectral_mix(x, source, lo, hi, lam, mode, *launch),
                               ref.spectral_mix(x, source, lo, hi, lam, mode), atol=1e-6, rtol=0)
    torch.testing.assert_close(torch.ops.ikd._emulated_spectral_mix_shuffle(x, perm, lo, hi, lam, mode, *launch),
                               ref.spectral_mix_shuffle(x, perm, lo, hi, lam, mode), atol=1e-6, rtol=0)
    sigma = torch.rand(b, generator=g, dtype=torch.float64) * 0.3
    torch.testing.assert_close(torch.ops.ikd._emulated_spectral_mix_noise(x, sigma, lo, hi, lam, mode, 7, *launch),
                               torch.ops.ikd.spectral_mix_noise(x, sigma, lo, hi, lam, mode, 7), atol=1e-6, rtol=0)


# ---- adversarial step -----------------------------------------------------------------------------------------------


@st.composite
def adv_cases(draw):
    """A clean batch, an adversarial one inside its eps-ball and range, gradient (some samples all zero), momentum."""
    x = draw(image_batches(max_side=8)).contiguous()
    b, c = x.shape[:2]
    g = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    eps = per_sample(draw, b, 0.0, 0.1)
    step = per_sample(draw, b, 0.0, 0.05)
    if draw(st.booleans()):  # the attack's clipping: each clean image's own per-channel [min, max]
        lo, hi = x.amin(dim=(2, 3)), x.amax(dim=(2, 3))
    else:
        lo, hi = 0.0, 1.0
    eps_b = ref.per_sample(eps, b, x.device).float().view(-1, 1, 1, 1)
    lo_b, hi_b = (ref.per_channel(v, b, c, x.device).float().view(b, c, 1, 1) for v in (lo, hi))
    x_adv = torch.minimum(torch.maximum(x + eps_b * (2 * torch.rand(x.shape, generator=g) - 1), lo_b), hi_b)
    grad = torch.randn(x.shape, generator=g) * draw(st.sampled_from([1e-6, 1.0, 1e3]))
    zero = torch.tensor(draw(st.lists(st.booleans(), min_size=b, max_size=b)))
    grad[zero] = 0  # a sample whose loss is flat: no step direction from it
    momentum = torch.randn(x.shape, generator=g) * draw(st.sampled_from([0.0, 1e-3, 1.0]))
    decay = draw(st.floats(0.0, 1.5, allow_nan=False))
    return {"x": x, "x_adv": x_adv, "grad": grad, "m": momentum, "step": step, "eps": eps, "decay": decay,
            "lo": lo, "hi": hi, "eps_b": eps_b, "lo_b": lo_b, "hi_b": hi_b}


@PROPERTY
@given(adv_cases())
def test_adv_step_stays_in_budget_and_range_and_follows_the_momentum(case):
    x, x_adv, grad, m = case["x"], case["x_adv"], case["grad"], case["m"]
    x_new, m_new = ops.adv_step(x_adv, x, grad, m, case["step"], case["eps"], case["lo"], case["hi"], case["decay"])
    assert x_new.dtype == x_adv.dtype and m_new.dtype == m.dtype
    assert torch.isfinite(x_new).all() and torch.isfinite(m_new).all()
    assert ((x_new - x).abs() <= case["eps_b"] + 1e-6).all()  # inside the L_inf ball
    assert (x_new >= case["lo_b"] - 1e-6).all() and (x_new <= case["hi_b"] + 1e-6).all()  # inside the valid range
    norm = grad.abs().sum(dim=(1, 2, 3), keepdim=True)
    g = torch.where(norm > 0, grad / norm, torch.zeros_like(grad))
    torch.testing.assert_close(m_new, case["decay"] * m + g, atol=1e-6, rtol=1e-5)
    moved = (x_new - x_adv) * torch.sign(m_new)
    assert (moved >= -1e-6).all()  # a step never goes against the momentum's sign (clipping only shortens it)


@needs_fused
@PROPERTY
@given(adv_cases())
def test_fused_adv_step_equals_reference(case):
    args = case["x_adv"], case["x"], case["grad"], case["m"]
    ops.set_backend("fused")
    x_new, m_new = ops.adv_step(*args, case["step"], case["eps"], case["lo"], case["hi"], case["decay"])
    want_x, want_m = ref.adv_step(*args, case["step"], case["eps"], case["lo"], case["hi"], case["decay"])
    torch.testing.assert_close(x_new, want_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(m_new, want_m, atol=1e-6, rtol=1e-5)


@needs_fused
@PROPERTY
@given(adv_cases(), st.sampled_from([1, 7, 132]))
def test_emulated_cuda_adv_step_equals_reference(case, sms):
    """The CUDA kernels of adv_step, emulated on the host (tests/test_emulated_cuda.py) for a device of `sms` SMs."""
    x = case["x"]
    b, c = x.shape[:2]
    params = (ref.per_sample(case["step"], b, x.device), ref.per_sample(case["eps"], b, x.device),
              ref.per_channel(case["lo"], b, c, x.device), ref.per_channel(case["hi"], b, c, x.device))
    args = case["x_adv"], x, case["grad"], case["m"]
    x_new, m_new = torch.ops.ikd._emulated_adv_step(*args, *params, case["decay"], sms)
    want_x, want_m = ref.adv_step(*args, *params, case["decay"])
    torch.testing.assert_close(x_new, want_x, atol=1e-6, rtol=0)
    torch.testing.assert_close(m_new, want_m, atol=1e-6, rtol=1e-5)
