"""The CUDA kernels' device code, run on the CPU by the host emulation (csrc/ops/emulated, ops ikd::_emulated_*).

The emulation runs every block and thread of the launch the CUDA launcher makes for a device with `sms`
multiprocessors, through the kernels' own functions (csrc/ops/device/*.h): the same grid-stride loops, index types and
divisions, band test, RNG, gather and, for adv_step, CUDA's order of additions in the block reduction. So these
tests check the arithmetic a GPU would run, on shapes that break kernels, against the CPU kernel and the reference.

Where the maths is the same the results are bit-equal: launches of any size and index width (each bin and element is
computed independently of the grid), complex mixing vs the reference (both round every operation separately; the
device code is built with --fmad=false), adv_step's images (a sign step) and, with sums that are exact in float, its
momentum. Elsewhere the CPU kernel's AVX2/AVX-512 builds contract multiply-adds and sums in another order: the
results agree to 1e-6 (images in [0, 1]; relative to the scale for spectra and momenta).
"""

from __future__ import annotations

import importlib
import math

import pytest
import torch

from ikd_yolo.ops import _loader
from ikd_yolo.ops import reference as ref

pytestmark = pytest.mark.skipif(_loader.load() is None, reason=f"fused extension not built ({_loader.error()})")
if _loader.load() is not None:  # the test-only module of the ops ikd::_emulated_* (ikd_yolo.ops never loads it)
    importlib.import_module("ikd_yolo._C_emulated")

IKD = torch.ops.ikd
F64 = {"dtype": torch.float64}
TOL = 1e-6
# (sms, wide_index): an H200's grid; a 1-SM device, whose 16 blocks make every thread loop over the grid several
# times; the 64-bit index path (plain division) that only spectra of more than 2^31 - 1 bins would take on a GPU
LAUNCHES = [pytest.param(132, False, id="h200"), pytest.param(1, False, id="1sm"), pytest.param(1, True, id="64bit")]
# odd H and W, W = 1, H = 1, B = 1, 1x1 images, and one big enough (24576 bins) for a 1-SM grid to stride 6 times
SHAPES = [(2, 3, 32, 32), (1, 3, 17, 23), (3, 2, 20, 15), (2, 1, 16, 9), (1, 2, 5, 1), (2, 1, 1, 7), (1, 1, 1, 1),
          (4, 3, 64, 63)]
MODES = ["complex", "amplitude"]


def band_params(b: int, g: torch.Generator):
    """Per-sample band and strength: full band, empty band (lo == hi), lam 0 and 1, random partial bands."""
    lo = torch.rand(b, generator=g, **F64) * 0.6
    hi = lo + torch.rand(b, generator=g, **F64)
    lam = torch.rand(b, generator=g, **F64)
    lo[0], hi[0] = 0.0, 2.0
    lam[-1] = 1.0
    if b > 2:
        lo[1], hi[1] = 0.7, 0.7
        lam[2] = 0.0
    return lo, hi, lam


def assert_equal(a: torch.Tensor, b: torch.Tensor) -> None:
    assert a.dtype == b.dtype and a.shape == b.shape
    assert torch.equal(a, b), f"not bit-equal: max |a - b| = {(a.double() - b.double()).abs().max().item():.3g}"


# ----- spectral mixing -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("sms, wide", LAUNCHES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_emulated_spectral_mix_matches_cpu_kernel_and_reference(shape, mode, sms, wide):
    g = torch.Generator().manual_seed(sum(shape))
    x, s = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    lo, hi, lam = band_params(shape[0], g)
    perm = torch.randint(0, shape[0], (shape[0],), generator=g)  # repeats allowed
    cases = {
        "explicit": (IKD._emulated_spectral_mix(x, s, lo, hi, lam, mode, sms, wide),
                     IKD.spectral_mix(x, s, lo, hi, lam, mode), ref.spectral_mix(x, s, lo, hi, lam, mode)),
        "shuffle": (IKD._emulated_spectral_mix_shuffle(x, perm, lo, hi, lam, mode, sms, wide),
                    IKD.spectral_mix_shuffle(x, perm, lo, hi, lam, mode),
                    ref.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)),
    }
    for source, (emulated, cpu, want) in cases.items():
        torch.testing.assert_close(emulated, cpu, atol=TOL, rtol=0, msg=source)
        if mode == "complex":
            assert_equal(emulated, want)
        else:
            torch.testing.assert_close(emulated, want, atol=TOL, rtol=0, msg=source)
    identity = IKD._emulated_spectral_mix_shuffle(x, torch.arange(shape[0]), lo, hi, lam, mode, sms, wide)
    torch.testing.assert_close(identity, x, atol=TOL, rtol=0)  # an image mixed with itself comes back


@pytest.mark.parametrize("shape", SHAPES)
def test_emulated_launches_agree_bit_for_bit(shape):
    """Each bin is computed on its own: grid size and index width must not change a single bit."""
    g = torch.Generator().manual_seed(1 + sum(shape))
    x, s = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    lo, hi, lam = band_params(shape[0], g)
    perm, sigma = torch.randint(0, shape[0], (shape[0],), generator=g), torch.rand(shape[0], generator=g, **F64)
    for mode in MODES:
        runs = [
            (IKD._emulated_spectral_mix(x, s, lo, hi, lam, mode, sms, wide),
             IKD._emulated_spectral_mix_shuffle(x, perm, lo, hi, lam, mode, sms, wide),
             IKD._emulated_spectral_mix_noise(x, sigma, lo, hi, lam, mode, 5, sms, wide))
            for sms, wide in ((132, False), (1, False), (7, False), (132, True), (1, True))
        ]
        for run in runs[1:]:
            for a, b in zip(run, runs[0]):
                assert_equal(a, b)


@pytest.mark.parametrize("sms, wide", LAUNCHES)
@pytest.mark.parametrize("hw", [(96, 96), (95, 97), (96, 81), (33, 40), (1, 1), (2, 1), (1, 2), (7, 1)])
def test_emulated_noise_spectrum_matches_cpu_kernel(hw, sms, wide):
    """The same seed draws the same noise spectrum on the emulated CUDA path as on the CPU kernel."""
    h, w = hw
    sigma = torch.tensor([0.05, 0.1], **F64)
    emulated = IKD._emulated_noise_spectrum(sigma, 3, h, w, 1234, sms, wide)
    cpu = IKD.noise_spectrum(sigma, 3, h, w, 1234)
    assert emulated.shape == (2, 3, h, w // 2 + 1) and emulated.dtype == torch.complex64
    torch.testing.assert_close(emulated, cpu, atol=TOL * 0.1 * math.sqrt(h * w), rtol=TOL)
    assert not torch.equal(emulated, IKD._emulated_noise_spectrum(sigma, 3, h, w, 1235, sms, wide))
    # the self-conjugate columns (DC, Nyquist) are drawn by the same scalar code on both: bit-equal
    cols = [0] + ([w // 2] if w % 2 == 0 else [])
    assert_equal(emulated[..., cols], cpu[..., cols])


@pytest.mark.parametrize("sms, wide", LAUNCHES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_emulated_spectral_mix_noise_matches_cpu_kernel(shape, mode, sms, wide):
    g = torch.Generator().manual_seed(2 + sum(shape))
    x = torch.rand(shape, generator=g)
    lo, hi, lam = band_params(shape[0], g)
    sigma = torch.rand(shape[0], generator=g, **F64) * 0.2
    sigma[0] = 0.0  # no noise: the source is the image itself
    emulated = IKD._emulated_spectral_mix_noise(x, sigma, lo, hi, lam, mode, 99, sms, wide)
    torch.testing.assert_close(emulated, IKD.spectral_mix_noise(x, sigma, lo, hi, lam, mode, 99), atol=TOL, rtol=0)
    torch.testing.assert_close(emulated[0], x[0].clamp(0, 1), atol=TOL, rtol=0)


@pytest.mark.parametrize("sms, wide", LAUNCHES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_emulated_spectral_dtypes_and_noncontiguous_input(dtype, sms, wide):
    """fp16/bf16 are computed in fp32 and cast back, float64 in float64; a transposed view reads as its contiguous
    copy. The casts may round fp32 values that agree to 1e-6 to neighbouring fp16/bf16 values: at most eps apart."""
    g = torch.Generator().manual_seed(8)
    x = torch.rand(3, 2, 21, 18, generator=g).to(dtype).transpose(2, 3)  # (3, 2, 18, 21), non-contiguous
    s = torch.rand(3, 2, 18, 21, generator=g).to(dtype)
    lo, hi, lam = band_params(3, g)
    perm, sigma = torch.tensor([2, 0, 0]), torch.tensor([0.1, 0.0, 0.05], **F64)
    tol = 1e-12 if dtype == torch.float64 else torch.finfo(dtype).eps
    for mode in MODES:
        pairs = [
            (IKD._emulated_spectral_mix(x, s, lo, hi, lam, mode, sms, wide), IKD.spectral_mix(x, s, lo, hi, lam, mode)),
            (IKD._emulated_spectral_mix_shuffle(x, perm, lo, hi, lam, mode, sms, wide),
             IKD.spectral_mix_shuffle(x, perm, lo, hi, lam, mode)),
            (IKD._emulated_spectral_mix_noise(x, sigma, lo, hi, lam, mode, 3, sms, wide),
             IKD.spectral_mix_noise(x, sigma, lo, hi, lam, mode, 3)),
        ]
        for emulated, cpu in pairs:
            assert emulated.dtype == dtype and emulated.is_contiguous() and emulated.shape == x.shape
            torch.testing.assert_close(emulated, cpu, atol=tol, rtol=0)
        if mode == "complex":
            assert_equal(pairs[0][0], ref.spectral_mix(x, s, lo, hi, lam, mode))


# ----- adv_step ----------------------------------------------------------------------------------------------------

# (4, 3, 33, 31): several planes, odd sides; (1, 3, 8, 8): B = 1; (2, 1, 1, 7): 1-pixel rows; (2, 3, 96, 100): 28800
# elements per sample, so 4-8 partial sums per sample and threads that stride over their chunk
ADV_SHAPES = [(4, 3, 33, 31), (1, 3, 8, 8), (2, 1, 1, 7), (2, 3, 96, 100)]
# an H200; 1 SM; 7 SMs (chunk counts and update grids that divide nothing evenly)
SMS = [132, 1, 7]


def adv_inputs(shape, g, exact: bool):
    """x_clean, x_adv, grad (sample 0 all zero), momentum and per-sample / per-channel parameters. exact: integer
    gradients and momenta on a 1/1024 grid, so every sum is exact in float and any order of additions agrees."""
    b, c = shape[:2]
    xc = torch.rand(shape, generator=g)
    xa = (xc + 0.03 * torch.randn(shape, generator=g)).clamp(0, 1)
    if exact:
        grad = torch.randint(-8, 9, shape, generator=g).float()
        m = torch.randint(-64, 65, shape, generator=g).float() / 1024
    else:
        grad, m = torch.randn(shape, generator=g), 0.01 * torch.randn(shape, generator=g)
    grad[0] = 0  # a flat loss: zero step direction, not NaN
    step, eps = torch.rand(b, generator=g, **F64) * 0.02, torch.rand(b, generator=g, **F64) * 0.05
    lo, hi = torch.rand(b, c, generator=g, **F64) * 0.2, 0.8 + torch.rand(b, c, generator=g, **F64) * 0.2
    return xa, xc, grad, m, step, eps, lo, hi


@pytest.mark.parametrize("sms", SMS)
@pytest.mark.parametrize("shape", ADV_SHAPES)
def test_emulated_adv_step_matches_cpu_kernel_and_reference(shape, sms):
    g = torch.Generator().manual_seed(sum(shape))
    args = adv_inputs(shape, g, exact=False)
    for decay in (0.9, 1.0, 0.0):
        x_e, m_e = IKD._emulated_adv_step(*args, decay, sms)
        x_c, m_c = IKD.adv_step(*args, decay)
        x_r, m_r = ref.adv_step(*args, decay)
        assert_equal(x_e, x_c)
        assert_equal(x_e, x_r)
        scale = m_r.abs().max().item()
        torch.testing.assert_close(m_e, m_r, atol=TOL * scale, rtol=0)
        # the CPU kernel's norm (torch.linalg.vector_norm) is itself up to ~3e-6 off the float64 sum here
        torch.testing.assert_close(m_e, m_c, atol=TOL * scale, rtol=1e-5)


@pytest.mark.parametrize("sms", SMS)
@pytest.mark.parametrize("shape", ADV_SHAPES)
def test_emulated_adv_step_with_exact_sums_is_bit_equal(shape, sms):
    """With exact sums the L1 norm is the same number in any order: a block reduction that skips, repeats or
    misplaces a single element or partial shows as a wrong momentum."""
    g = torch.Generator().manual_seed(3 + sum(shape))
    args = adv_inputs(shape, g, exact=True)
    x_e, m_e = IKD._emulated_adv_step(*args, 0.5, sms)
    for x_want, m_want in (IKD.adv_step(*args, 0.5), ref.adv_step(*args, 0.5)):
        assert_equal(x_e, x_want)
        assert_equal(m_e, m_want)


@pytest.mark.parametrize("sms", SMS)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_emulated_adv_step_dtypes_and_noncontiguous_input(dtype, sms):
    """16-bit inputs are loaded to fp32 and stored rounded to nearest even (as __half2float / __float2half_rn), as
    the reference casts: with exact sums the results are bit-equal."""
    g = torch.Generator().manual_seed(4)
    xa, xc, grad, m, step, eps, lo, hi = adv_inputs((2, 3, 40, 36), g, exact=True)
    xa, xc, grad, m = (t.to(dtype).transpose(2, 3) for t in (xa, xc, grad, m))  # non-contiguous (2, 3, 36, 40)
    x_e, m_e = IKD._emulated_adv_step(xa, xc, grad, m, step, eps, lo, hi, 0.5, sms)
    assert x_e.dtype == m_e.dtype == dtype and x_e.is_contiguous()
    for x_want, m_want in (IKD.adv_step(xa, xc, grad, m, step, eps, lo, hi, 0.5),
                           ref.adv_step(xa, xc, grad, m, step, eps, lo, hi, 0.5)):
        assert_equal(x_e, x_want)
        assert_equal(m_e, m_want)


def test_emulated_adv_step_walks_samples_and_planes_past_the_grid_limit():
    """70000 samples: more than a grid's 65535 rows, so block rows of both kernels take several samples / planes."""
    g = torch.Generator().manual_seed(5)
    xa, xc, grad, m, step, eps, lo, hi = adv_inputs((70000, 1, 1, 2), g, exact=True)
    x_e, m_e = IKD._emulated_adv_step(xa, xc, grad, m, step, eps, lo, hi, 0.5, 132)
    x_r, m_r = ref.adv_step(xa, xc, grad, m, step, eps, lo, hi, 0.5)
    assert_equal(x_e, x_r)
    assert_equal(m_e, m_r)


# ----- the emulation against the real kernels (needs a GPU) -----------------------------------------------------


@pytest.mark.skipif(not (torch.cuda.is_available() and _loader.cuda_compiled()), reason="no CUDA device")
def test_emulated_kernels_equal_the_cuda_kernels():
    """What these tests check on CPU is what the GPU computes: without an FFT in between, bit for bit."""
    sms = torch.cuda.get_device_properties(0).multi_processor_count
    sigma = torch.tensor([0.05, 0.1], **F64)
    for h, w in ((96, 81), (33, 40), (1, 7)):
        assert_equal(IKD.noise_spectrum(sigma.cuda(), 3, h, w, 42).cpu(),
                     IKD._emulated_noise_spectrum(sigma, 3, h, w, 42, sms, False))
    for shape in ADV_SHAPES:
        for exact in (False, True):
            args = adv_inputs(shape, torch.Generator().manual_seed(sum(shape)), exact)
            on_gpu = IKD.adv_step(*(a.cuda() for a in args), 0.9)
            for got, want in zip(on_gpu, IKD._emulated_adv_step(*args, 0.9, sms)):
                assert_equal(got.cpu(), want)
    g = torch.Generator().manual_seed(6)
    x, s = torch.rand(4, 3, 64, 63, generator=g), torch.rand(4, 3, 64, 63, generator=g)
    lo, hi, lam = band_params(4, g)
    for mode in MODES:  # cuFFT and pocketfft round differently: the images agree to 1e-5
        on_gpu = IKD.spectral_mix(x.cuda(), s.cuda(), lo.cuda(), hi.cuda(), lam.cuda(), mode).cpu()
        torch.testing.assert_close(on_gpu, IKD._emulated_spectral_mix(x, s, lo, hi, lam, mode, sms, False),
                                   atol=1e-5, rtol=0)
