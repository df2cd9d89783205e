"""Fused kernels (torch.ops.ikd, CPU and CUDA) against the reference, the noise spectrum's statistics, dispatch."""

import math
import subprocess
import sys

import pytest
import torch

from ikd_yolo import ops
from ikd_yolo.ops import _loader
from ikd_yolo.ops import reference as ref

HAS_EXT = _loader.load() is not None
HAS_CUDA = HAS_EXT and torch.cuda.is_available() and _loader.cuda_compiled()
needs_ext = pytest.mark.skipif(not HAS_EXT, reason=f"fused extension not built ({_loader.error()})")
DEVICES = ["cpu", pytest.param("cuda", marks=pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device"))]
SHAPES = [(2, 3, 32, 32), (1, 3, 17, 23), (3, 2, 20, 15), (2, 1, 16, 9), (1, 2, 5, 1)]
MODES = ["complex", "amplitude"]


@pytest.fixture
def fused():
    ops.set_backend("fused")
    yield
    ops.set_backend("auto")


def params(b, g, device):
    """Per-sample band and strength covering empty (lo >= hi), full and partial bands, lam 0 and 1."""
    lo = torch.rand(b, generator=g, dtype=torch.float64) * 0.6
    hi = lo + torch.rand(b, generator=g, dtype=torch.float64)
    lam = torch.rand(b, generator=g, dtype=torch.float64)
    lo[0], hi[0] = 0.0, 2.0  # full band
    lam[-1] = 1.0
    if b > 2:
        lo[1], hi[1] = 0.7, 0.7  # empty band
        lam[2] = 0.0
    return lo.to(device), hi.to(device), lam.to(device)


# ----- spectral mixing: fused == reference ------------------------------------------------------------------------


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("mode", MODES)
def test_spectral_mix_matches_reference(fused, device, shape, mode):
    g = torch.Generator().manual_seed(sum(shape))
    x, s = torch.rand(shape, generator=g).to(device), torch.rand(shape, generator=g).to(device)
    lo, hi, lam = params(shape[0], g, device)
    torch.testing.assert_close(ops.spectral_mix(x, s, lo, hi, lam, mode), ref.spectral_mix(x, s, lo, hi, lam, mode),
                               atol=1e-5, rtol=0)
    perm = torch.randint(0, shape[0], (shape[0],), generator=g).to(device)  # repeats allowed
    for p in (perm, torch.arange(shape[0], device=device)):
        torch.testing.assert_close(ops.spectral_mix_shuffle(x, p, lo, hi, lam, mode),
                                   ref.spectral_mix_shuffle(x, p, lo, hi, lam, mode), atol=1e-5, rtol=0)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", MODES)
def test_spectral_mix_scalar_params_and_noncontiguous(fused, device, mode):
    g = torch.Generator().manual_seed(7)
    base = torch.rand(3, 2, 24, 19, generator=g).to(device)
    x = base.transpose(2, 3)  # (3, 2, 19, 24), non-contiguous
    s = torch.rand(3, 2, 38, 24, generator=g).to(device)[:, :, ::2]  # strided rows
    for lo, hi, lam in ((0.0, 2.0, 1.0), (0.25, 0.75, 0.5), (0.3, 0.3, 1.0), (0.0, 2.0, 0.0)):
        y = ops.spectral_mix(x, s, lo, hi, lam, mode)
        assert y.is_contiguous() and y.shape == x.shape
        torch.testing.assert_close(y, ref.spectral_mix(x, s, lo, hi, lam, mode), atol=1e-5, rtol=0)
    torch.testing.assert_close(ops.spectral_mix(x, s, 0.0, 2.0, 0.0, mode), x, atol=1e-6, rtol=0)  # lam 0 -> x
    if mode == "complex":  # full band, lam 1 -> clamp(source)
        torch.testing.assert_close(ops.spectral_mix(x, s, 0.0, 2.0, 1.0, mode), s.clamp(0, 1), atol=1e-5, rtol=0)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_spectral_mix_dtypes(fused, device, dtype):
    g = torch.Generator().manual_seed(8)
    x, s = torch.rand(2, 3, 18, 21, generator=g), torch.rand(2, 3, 18, 21, generator=g)
    x, s = x.to(device, dtype), s.to(device, dtype)
    atol = 1e-10 if dtype == torch.float64 else 1e-2
    for mode in MODES:
        y = ops.spectral_mix(x, s, 0.2, 0.9, 0.6, mode)
        assert y.dtype == dtype
        torch.testing.assert_close(y, ref.spectral_mix(x, s, 0.2, 0.9, 0.6, mode), atol=atol, rtol=0)
        y = ops.spectral_mix_noise(x, 0.1, 0.2, 0.9, 0.6, mode)
        assert y.dtype == dtype and y.shape == x.shape and y.isfinite().all()


@needs_ext
def test_band_mask_is_exact_at_edges(fused):
    """Band edges that fall exactly on a bin radius select the same bins as the reference (float64 radius)."""
    x, s = torch.rand(2, 1, 16, 16), torch.rand(2, 1, 16, 16)
    r = ref.band_radius(16, 16).unique()
    for lo, hi in ((r[3].item(), r[9].item()), (r[0].item(), r[5].item()), (r[7].item(), r[-1].item())):
        torch.testing.assert_close(ops.spectral_mix(x, s, lo, hi, 1.0), ref.spectral_mix(x, s, lo, hi, 1.0),
                                   atol=1e-5, rtol=0)


# ----- noise source: statistics, not values -----------------------------------------------------------------------


def _noise(device, sigma, c, h, w, seed):
    return torch.ops.ikd.noise_spectrum(torch.tensor(sigma, dtype=torch.float64, device=device), c, h, w, seed)


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("hw", [(96, 96), (95, 97), (96, 81)])
def test_noise_spectrum_statistics(device, hw):
    h, w = hw
    sigma = [0.05, 0.1]
    n = _noise(device, sigma, 4, h, w, seed=1234)
    assert n.shape == (2, 4, h, w // 2 + 1) and n.dtype == torch.complex64
    n = n.cpu().to(torch.complex128)
    r = ref.band_radius(h, w)
    self_conj = torch.zeros(h, w // 2 + 1, dtype=torch.bool)
    for fy in {0, h // 2} if h % 2 == 0 else {0}:
        for fx in {0, w // 2} if w % 2 == 0 else {0}:
            self_conj[fy, fx] = True
    for b, sd in enumerate(sigma):
        nb, var = n[b], sd * sd * h * w  # E|N|^2 of the rfft2 of white noise with std sd
        # self-conjugate bins are real; Hermitian pairs in the fx = 0 (and Nyquist) columns are conjugate
        assert (nb[:, self_conj].imag == 0).all()
        for col in {0, w // 2} if w % 2 == 0 else {0}:
            torch.testing.assert_close(nb[:, 1:, col], nb[:, 1:, col].flip(1).conj(), atol=0, rtol=0)
        # mean ~ 0 and E|N|^2 = sigma^2 H W in every radial band
        interior = nb[:, 1:, 1 : (w + 1) // 2]
        tol = 5 * math.sqrt(var / 2 / interior.numel())
        assert abs(interior.real.mean()) < tol and abs(interior.imag.mean()) < tol
        for lo, hi in ((0.0, 0.5), (0.5, 1.0), (1.0, 1.5)):
            band = ((r >= lo) & (r < hi) & ~self_conj)[None].expand_as(nb)
            e = nb[band].abs().pow(2).mean() / var
            assert abs(e - 1) < 6 / math.sqrt(band.sum()), (lo, hi, e)
        # the parts are Gaussian: P(|z| < 1) and P(|z| < 2) for the standardised real parts
        z = interior.real.flatten() / math.sqrt(var / 2)
        assert abs((z.abs() < 1).double().mean() - 0.6827) < 0.015
        assert abs((z.abs() < 2).double().mean() - 0.9545) < 0.01
        re = interior.real
        for a, b_ in ((re[..., :-1], re[..., 1:]), (re[:, :-1], re[:, 1:]), (re, interior.imag)):  # independent
            assert abs(torch.corrcoef(torch.stack([a.flatten(), b_.flatten()]))[0, 1]) < 0.03
    # the implied noise image is real: irfft2 round-trips through rfft2, and its pixels have std sigma
    img = torch.fft.irfft2(n, s=(h, w))
    torch.testing.assert_close(torch.fft.rfft2(img), n, atol=1e-3 * math.sqrt(h * w), rtol=0)
    for b, sd in enumerate(sigma):
        assert abs(img[b].std() / sd - 1) < 0.03 and abs(img[b].mean()) < 5 * sd / math.sqrt(img[b].numel())


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
def test_noise_is_a_pure_function_of_the_seed(fused, device):
    x = torch.rand(2, 3, 20, 17).to(device)
    f64 = {"dtype": torch.float64, "device": device}
    args = (x, torch.tensor([0.05, 0.1], **f64), torch.zeros(2, **f64), torch.full((2,), 2.0, **f64))
    args += (torch.ones(2, **f64),)
    for mode in MODES:
        a, b = (torch.ops.ikd.spectral_mix_noise(*args, mode, 99) for _ in range(2))
        assert torch.equal(a, b) and not torch.equal(a, torch.ops.ikd.spectral_mix_noise(*args, mode, 100))
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    assert torch.equal(ops.spectral_mix_noise(x, 0.1, 0.3, 2.0, 1.0, generator=g1),
                       ops.spectral_mix_noise(x, 0.1, 0.3, 2.0, 1.0, generator=g2))
    assert not torch.equal(ops.spectral_mix_noise(x, 0.1, 0.3, 2.0, 1.0), ops.spectral_mix_noise(x, 0.1, 0.3, 2.0, 1.0))


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("mode", MODES)
def test_noise_mix_matches_reference_in_distribution(fused, device, mode):
    g = torch.Generator().manual_seed(11)
    x = (0.3 + 0.4 * torch.rand(4, 3, 64, 63, generator=g)).to(device)
    sigma, lo = torch.tensor([0.0, 0.04, 0.08, 0.08]), torch.tensor([0.0, 0.0, 0.5, 0.0])
    hi = torch.tensor([2.0, 2.0, 2.0, 0.3])
    y_f = ops.spectral_mix_noise(x, sigma, lo, hi, 1.0, mode, generator=g)
    y_r = ref.spectral_mix_noise(x, sigma, lo, hi, 1.0, mode, generator=g)
    torch.testing.assert_close(y_f[0], x[0], atol=1e-5, rtol=0)  # sigma 0: the source is x itself
    for i in range(1, 4):
        d_f, d_r = (y_f[i] - x[i]).double(), (y_r[i] - x[i]).double()
        assert abs(d_f.std() / d_r.std() - 1) < 0.1, (i, d_f.std(), d_r.std())
        assert abs(d_f.mean()) < 0.01
    if mode == "complex":  # the change stays in the band, and has the band's share of the noise variance
        for i in range(1, 4):
            e = torch.fft.rfft2((y_f[i] - x[i]).double()).abs().pow(2)
            m = ref.band_mask(64, 63, lo[i], hi[i], 1, device)[0]
            w_ = torch.ones_like(e)
            w_[..., 1:] = 2  # rfft2 bins with a mirror image count twice
            assert (e * w_ * m).sum() / (e * w_).sum() > 0.999
            frac = (w_ * m).sum() / w_.sum()
            assert abs((y_f[i] - x[i]).double().var() / (sigma[i] ** 2 * frac) - 1) < 0.1


@pytest.mark.skipif(not HAS_CUDA, reason="no CUDA device")
def test_noise_cpu_and_cuda_agree():
    a = _noise("cpu", [0.1, 0.2], 3, 33, 40, seed=42)
    b = _noise("cuda", [0.1, 0.2], 3, 33, 40, seed=42).cpu()
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * math.sqrt(33 * 40))


# ----- adv_step -----------------------------------------------------------------------------------------------


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(4, 3, 33, 31), (1, 3, 8, 8), (2, 1, 1, 7)])
def test_adv_step_matches_reference(fused, device, shape):
    g = torch.Generator().manual_seed(sum(shape))
    b, c = shape[:2]
    xc = torch.rand(shape, generator=g).to(device)
    xa = (xc + 0.03 * torch.randn(shape, generator=g).to(device)).clamp(0, 1)
    grad, m = torch.randn(shape, generator=g).to(device), 0.01 * torch.randn(shape, generator=g).to(device)
    grad[0] = 0  # a zero gradient
    step, eps = (torch.rand(b, generator=g) * 0.02).to(device), (torch.rand(b, generator=g) * 0.05).to(device)
    lo, hi = (torch.rand(b, c, generator=g) * 0.2).to(device), (0.8 + torch.rand(b, c, generator=g) * 0.2).to(device)
    for args in ((step, eps, lo, hi, 0.9), (2 / 255, 8 / 255, 0.0, 1.0, 1.0), (0.01, 0.0, lo[:1], 1.0, 0.5)):
        x_f, m_f = ops.adv_step(xa, xc, grad, m, *args)
        x_r, m_r = ref.adv_step(xa, xc, grad, m, *args)
        torch.testing.assert_close(x_f, x_r, atol=1e-6, rtol=0)
        torch.testing.assert_close(m_f, m_r, atol=1e-6, rtol=1e-5)
        assert not m_f.isnan().any()
    x_f, m_f = ops.adv_step(xa, xa, torch.zeros_like(xa), torch.zeros_like(xa), 0.01, 0.03)
    assert torch.equal(x_f, xa) and torch.equal(m_f, torch.zeros_like(xa))  # zero grad -> unchanged


@needs_ext
@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_adv_step_dtypes_and_noncontiguous(fused, device, dtype):
    g = torch.Generator().manual_seed(3)
    xc = torch.rand(2, 3, 12, 10, generator=g).to(device, dtype).transpose(2, 3)
    grad = torch.randn(2, 3, 10, 12, generator=g).to(device, dtype)
    m = torch.zeros(2, 3, 10, 12, device=device)  # fp32 momentum with a low-precision image
    x_f, m_f = ops.adv_step(xc, xc, grad, m, 0.01, 0.03)
    x_r, m_r = ref.adv_step(xc, xc, grad, m.to(dtype), 0.01, 0.03)
    assert x_f.dtype == dtype and m_f.dtype == torch.float32
    tol = 1e-12 if dtype == torch.float64 else 1e-2
    torch.testing.assert_close(x_f, x_r, atol=tol, rtol=0)
    torch.testing.assert_close(m_f, m_r.float(), atol=tol, rtol=tol)


# ----- custom-op checks and dispatch --------------------------------------------------------------------------


@needs_ext
def test_opcheck():
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(2, 3, 9, 8, generator=g), torch.rand(2, 3, 9, 8, generator=g)
    lo, hi, lam = (torch.tensor(v, dtype=torch.float64) for v in ([0.1, 0.0], [0.9, 2.0], [0.5, 1.0]))
    lib = torch.ops.ikd
    torch.library.opcheck(lib.spectral_mix.default, (x, s, lo, hi, lam, "complex"))
    torch.library.opcheck(lib.spectral_mix_shuffle.default, (x, torch.tensor([1, 0]), lo, hi, lam, "amplitude"))
    sigma = torch.tensor([0.1, 0.2], dtype=torch.float64)
    torch.library.opcheck(lib.spectral_mix_noise.default, (x, sigma, lo, hi, lam, "complex", 3))
    torch.library.opcheck(lib.noise_spectrum.default, (torch.tensor([0.1], dtype=torch.float64), 2, 6, 5, 3))
    lo_c, hi_c = torch.zeros(2, 3, dtype=torch.float64), torch.ones(2, 3, dtype=torch.float64)
    torch.library.opcheck(lib.adv_step.default, (x, s, x - s, torch.zeros_like(x), lam, lam, lo_c, hi_c, 1.0))


@needs_ext
def test_traces_under_torch_compile():
    """The fake kernels let torch.compile (AOT, fake tensors) trace the ops in one graph."""

    def step(x, lo, hi):
        y = ops.spectral_mix_shuffle(x, torch.tensor([1, 0]), lo, hi, 0.5, "amplitude")
        return ops.adv_step(y, x, x - y, torch.zeros_like(x), 0.01, 0.03)[0]

    x, lo, hi = torch.rand(2, 3, 16, 15), torch.tensor([0.0, 0.5]), torch.tensor([0.5, 2.0])
    compiled = torch.compile(step, backend="aot_eager", fullgraph=True)
    torch.testing.assert_close(compiled(x, lo, hi), step(x, lo, hi))


@needs_ext
def test_kernel_errors_are_clear():
    x = torch.rand(1, 1, 4, 4)
    p = torch.zeros(1, dtype=torch.float64)
    with pytest.raises(RuntimeError, match="mode must be 'complex' or 'amplitude'"):
        torch.ops.ikd.spectral_mix(x, x, p, p, p, "phase")
    with pytest.raises(RuntimeError, match="lam must have 1 elements"):
        torch.ops.ikd.spectral_mix(x, x, p, p, torch.zeros(2), "complex")
    with pytest.raises(RuntimeError, match="perm values must lie in"):
        torch.ops.ikd.spectral_mix_shuffle(x, torch.tensor([3]), p, p, p, "complex")


@needs_ext
def test_backend_selection():
    assert ops.backend() == ops.backend("cpu") == "fused-cpu"
    assert ops.backend(torch.device("cuda")) == ("fused-cuda" if _loader.cuda_compiled() else "reference")
    ops.set_backend("reference")
    try:
        assert ops.backend("cpu") == "reference"
    finally:
        ops.set_backend("auto")
    assert ops.backend("cpu") == "fused-cpu"
    with pytest.raises(ValueError, match="set_backend: name must be one of"):
        ops.set_backend("fast")


@needs_ext
def test_users_torch_ops_ikd_holds_the_real_ops_alone():
    """ikd_yolo.ops loads ikd_yolo._C alone: the test-only ops ikd::_emulated_* (ikd_yolo._C_emulated) stay out."""
    code = ("import torch\nfrom ikd_yolo.ops import _loader\nassert _loader.load() is not None\n"
            "names = ['spectral_mix', 'spectral_mix_shuffle', 'spectral_mix_noise', 'noise_spectrum', 'adv_step']\n"
            "print(*(hasattr(torch.ops.ikd, p + n) for p in ('', '_emulated_') for n in names))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.split()
    assert out == ["True"] * 5 + ["False"] * 5


def test_fallback_warns_once_when_extension_unavailable(monkeypatch):
    from ultralytics.utils import LOGGER

    def broken():
        raise ImportError("simulated: undefined symbol _ZN3c10")

    warnings = []
    monkeypatch.setattr(_loader, "_import_extension", broken)
    monkeypatch.setattr(LOGGER, "warning", lambda msg, *a, **k: warnings.append(msg))
    _loader.reset()
    try:
        x = torch.rand(2, 1, 8, 8)
        assert ops.backend("cpu") == "reference"
        y = ops.spectral_mix(x, x.flip(0), 0.0, 0.5, 1.0)
        ops.adv_step(x, x, x, x, 0.1, 0.1)
        torch.testing.assert_close(y, ref.spectral_mix(x, x.flip(0), 0.0, 0.5, 1.0))
        assert len(warnings) == 1 and "\n" not in warnings[0] and "simulated" in warnings[0]
        assert "using the PyTorch reference" in warnings[0]
        with pytest.raises(RuntimeError, match="extension is unavailable"):
            ops.set_backend("fused")
    finally:
        monkeypatch.undo()
        _loader.reset()
        ops.set_backend("auto")
