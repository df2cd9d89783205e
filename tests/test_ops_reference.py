"""Reference ops (ikd_yolo.ops.reference, the oracle) against numpy and the properties of the method."""

import numpy as np
import pytest
import torch

from ikd_yolo import ops
from ikd_yolo.ops import reference as ref


@pytest.fixture(autouse=True)
def _reference_backend():
    ops.set_backend("reference")
    yield
    ops.set_backend("auto")


def np_band_mask(h, w, lo, hi):
    """Full-plane (h, w) numpy mask lo <= r < hi, r = |f| / 0.5 (independent of torch)."""
    fy, fx = np.meshgrid(np.fft.fftfreq(h), np.fft.fftfreq(w), indexing="ij")
    r = np.sqrt(fy**2 + fx**2) / 0.5
    return (r >= lo) & (r < hi)


def np_spectral_mix(x, s, lo, hi, lam, mode):
    """numpy version of spectral_mix for one sample (C, H, W), float64."""
    h, w = x.shape[-2:]
    m = np_band_mask(h, w, lo, hi)
    xs, ss = np.fft.fft2(x), np.fft.fft2(s)
    if mode == "complex":
        ys = xs + lam * m * (ss - xs)
    else:
        amp = np.abs(xs) + lam * m * (np.abs(ss) - np.abs(xs))
        ys = amp * np.exp(1j * np.angle(xs))
    return np.clip(np.fft.ifft2(ys).real, 0, 1)


def band_energy_fraction(d, lo, hi):
    """Fraction of the energy of fft2(d) (d: (C, H, W)) inside the band."""
    e = np.abs(np.fft.fft2(d)) ** 2
    return e[..., np_band_mask(*d.shape[-2:], lo, hi)].sum() / e.sum()


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 3, 17, 23), (3, 1, 20, 15)])
@pytest.mark.parametrize("mode", ["complex", "amplitude"])
def test_spectral_mix_matches_numpy(shape, mode):
    g = torch.Generator().manual_seed(0)
    x, s = torch.rand(shape, generator=g), torch.rand(shape, generator=g)
    b = shape[0]
    lo, hi, lam = torch.rand(b, generator=g) * 0.5, 0.5 + torch.rand(b, generator=g), torch.rand(b, generator=g)
    y = ref.spectral_mix(x, s, lo, hi, lam, mode)
    for i in range(b):
        want = np_spectral_mix(x[i].double().numpy(), s[i].double().numpy(), lo[i].item(), hi[i].item(),
                               lam[i].item(), mode)
        np.testing.assert_allclose(y[i].numpy(), want, atol=1e-5)


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 2, 15, 9)])
@pytest.mark.parametrize("mode", ["complex", "amplitude"])
def test_lam_zero_is_identity(shape, mode):
    x = torch.rand(shape)
    y = ref.spectral_mix(x, torch.rand(shape), 0.0, 2.0, 0.0, mode)
    assert (y - x).abs().max() <= 1e-6


@pytest.mark.parametrize("shape", [(2, 3, 32, 32), (1, 1, 13, 7)])
def test_full_band_lam_one_gives_clamped_source(shape):
    x, s = torch.rand(shape), torch.rand(shape) * 1.6 - 0.3
    y = ref.spectral_mix(x, s, 0.0, 2.0, 1.0, "complex")
    torch.testing.assert_close(y, s.clamp(0, 1), atol=1e-5, rtol=0)


@pytest.mark.parametrize("mode", ["complex", "amplitude"])
def test_change_stays_in_band_per_sample(mode):
    g = torch.Generator().manual_seed(1)
    x = 0.3 + 0.4 * torch.rand(4, 3, 48, 40, generator=g)
    s = 0.3 + 0.4 * torch.rand(4, 3, 48, 40, generator=g)
    lo, hi = torch.tensor([0.0, 0.3, 0.6, 0.1]), torch.tensor([0.3, 0.6, 2.0, 0.2])
    y = ref.spectral_mix(x, s, lo, hi, torch.tensor([0.5, 0.5, 0.5, 0.0]), mode)
    assert y.min() > 0 and y.max() < 1  # clamp inactive, so y - x is exactly band-limited
    for i in range(3):
        d = (y[i] - x[i]).double().numpy()
        assert band_energy_fraction(d, lo[i].item(), hi[i].item()) >= 0.999
        assert np.abs(d).max() > 1e-3  # and something did change
    assert (y[3] - x[3]).abs().max() <= 1e-6  # lam = 0 for that sample


def test_amplitude_mode_keeps_phase():
    g = torch.Generator().manual_seed(2)
    x = 0.4 + 0.2 * torch.rand(2, 3, 33, 30, generator=g)
    s = 0.4 + 0.2 * torch.rand(2, 3, 33, 30, generator=g)
    y = ref.spectral_mix(x, s, 0.2, 2.0, 0.7, "amplitude").double()
    assert y.min() > 0 and y.max() < 1
    xs, ys = torch.fft.rfft2(x.double()), torch.fft.rfft2(y)
    keep = xs.abs() > 1e-3 * xs.abs().amax()
    dphi = torch.angle(ys * xs.conj())[keep]
    assert dphi.abs().max() < 1e-3
    assert (ys.abs() - xs.abs()).abs().max() > 1e-2  # the amplitudes did change


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_in_same_dtype_out(dtype):
    x = torch.rand(2, 3, 17, 20)
    for y in (
        ops.spectral_mix(x.to(dtype), x.flip(0).to(dtype), 0.2, 1.0, 0.5),
        ops.spectral_mix_noise(x.to(dtype), 0.1, 0.2, 1.0, 0.5, "amplitude"),
        ops.spectral_mix_shuffle(x.to(dtype), torch.tensor([1, 0]), 0.2, 1.0, 0.5),
    ):
        assert y.dtype == dtype and y.shape == x.shape
    want = ref.spectral_mix(x.to(dtype).float(), x.flip(0).to(dtype).float(), 0.2, 1.0, 0.5)
    torch.testing.assert_close(ops.spectral_mix(x.to(dtype), x.flip(0).to(dtype), 0.2, 1.0, 0.5).float(), want,
                               atol=1e-2, rtol=0)


def test_noise_and_shuffle_sources():
    g = torch.Generator().manual_seed(3)
    x = torch.rand(3, 2, 16, 16, generator=g)
    # full band, lam 1: the noise op returns clamp(x + sigma * n), sigma 0 returns x
    torch.testing.assert_close(ref.spectral_mix_noise(x, 0.0, 0.0, 2.0, 1.0), x, atol=1e-6, rtol=0)
    y = ref.spectral_mix_noise(x, torch.tensor([0.0, 0.1, 0.2]), 0.0, 2.0, 1.0, generator=g)
    assert (y[0] - x[0]).abs().max() < 1e-5 and 0.05 < (y[2] - x[2]).std() < 0.25
    perm = torch.tensor([2, 0, 1])
    torch.testing.assert_close(ref.spectral_mix_shuffle(x, perm, 0.0, 2.0, 1.0), x[perm], atol=1e-5, rtol=0)


def test_public_api_checks_and_noncontiguous():
    x = torch.rand(2, 3, 20, 16)
    xt = x.transpose(2, 3)  # non-contiguous (2, 3, 16, 20)
    torch.testing.assert_close(ops.spectral_mix(xt, xt.flip(0), 0.1, 0.9, 0.5),
                               ref.spectral_mix(xt.contiguous(), xt.flip(0).contiguous(), 0.1, 0.9, 0.5))
    msg = r"spectral_mix: x must be a float tensor \(got torch.int64\); convert with x.float\(\) / 255"
    with pytest.raises(TypeError, match=msg):
        ops.spectral_mix((x * 255).long(), x, 0, 1, 1)
    with pytest.raises(ValueError, match="source must have the shape of x"):
        ops.spectral_mix(x, x[:1], 0, 1, 1)
    with pytest.raises(ValueError, match="shape \\(B, C, H, W\\)"):
        ops.spectral_mix(x[0], x[0], 0, 1, 1)
    with pytest.raises(ValueError, match="mode must be one of"):
        ops.spectral_mix(x, x, 0, 1, 1, mode="phase")
    with pytest.raises(ValueError, match="lam must be a float or a \\(2,\\) tensor"):
        ops.spectral_mix(x, x, 0, 1, torch.ones(3))
    with pytest.raises(ValueError, match="perm values must lie in"):
        ops.spectral_mix_shuffle(x, torch.tensor([0, 2]), 0, 1, 1)
    with pytest.raises(TypeError, match="perm must be an integer tensor"):
        ops.spectral_mix_shuffle(x, torch.tensor([0.0, 1.0]), 0, 1, 1)
    ops.adv_step(x, x, x, x, 0.1, 0.1, lo=torch.zeros(1, 3, 1, 1), hi=torch.ones(3))  # per-channel shapes
    with pytest.raises(ValueError, match="lo must be a float or a \\(2, 3\\) tensor"):
        ops.adv_step(x, x, x, x, 0.1, 0.1, lo=torch.zeros(4))


def np_adv_step(xa, xc, g, m, step, eps, decay, lo, hi):
    """Hand-written numpy MI-FGSM step (float32, like the op)."""
    norm = np.abs(g).sum(axis=(1, 2, 3), keepdims=True)
    gn = np.where(norm > 0, g / np.where(norm > 0, norm, 1), 0).astype(np.float32)
    m2 = (np.float32(decay) * m + gn).astype(np.float32)
    x = xa + step * np.sign(m2)
    x = xc + np.clip(x - xc, -eps, eps)
    return np.clip(x, lo, hi).astype(np.float32), m2


def test_adv_step_matches_numpy():
    g = torch.Generator().manual_seed(4)
    b, c = 3, 3
    xc = torch.rand(b, c, 9, 11, generator=g)
    xa = (xc + 0.02 * torch.randn(xc.shape, generator=g)).clamp(0, 1)
    grad, m = torch.randn(xc.shape, generator=g), torch.randn(xc.shape, generator=g) * 0.01
    step, eps = torch.tensor([1.0, 2.0, 3.0]) / 255, torch.tensor([4.0, 8.0, 16.0]) / 255
    lo, hi = torch.tensor([0.0, 0.1, 0.2]).expand(b, c), torch.tensor([1.0, 0.9, 0.8]).expand(b, c)
    x2, m2 = ref.adv_step(xa, xc, grad, m, step, eps, lo, hi, 0.9)
    f32 = np.float32
    want_x, want_m = np_adv_step(
        xa.numpy(), xc.numpy(), grad.numpy(), m.numpy(), step.numpy().astype(f32)[:, None, None, None],
        eps.numpy().astype(f32)[:, None, None, None], 0.9, lo.numpy()[..., None, None], hi.numpy()[..., None, None],
    )
    np.testing.assert_array_equal(x2.numpy(), want_x)
    np.testing.assert_allclose(m2.numpy(), want_m, rtol=1e-6, atol=1e-9)


def test_adv_step_stays_in_eps_ball_and_range():
    g = torch.Generator().manual_seed(5)
    xc = torch.rand(4, 3, 16, 16, generator=g)
    xa, m = xc.clone(), torch.zeros_like(xc)
    eps = torch.tensor([2.0, 4.0, 8.0, 0.0]) / 255
    lo, hi = torch.tensor([0.1, 0.0, 0.2]), torch.tensor([0.9, 1.0, 0.7])  # per channel, broadcast to (B, C)
    lo4, hi4, e4 = lo.view(1, 3, 1, 1), hi.view(1, 3, 1, 1), eps.view(-1, 1, 1, 1)
    for _ in range(6):
        xa, m = ops.adv_step(xa, xc, torch.randn(xc.shape, generator=g), m, 3 / 255, eps, lo, hi, 1.0)
        # x' = clamp(x_clean + d, lo, hi) with |d| <= eps: inside the clipped eps ball and the range
        assert (xa >= (xc - e4).clamp(lo4, hi4) - 1e-6).all() and (xa <= (xc + e4).clamp(lo4, hi4) + 1e-6).all()
        assert (xa >= lo4).all() and (xa <= hi4).all()
    d = xa - xc.clamp(lo4, hi4)
    assert d[3].abs().max() == 0  # eps 0 -> only the range clip acts
    assert (xa[2] - xc[2]).abs().amax() > 7 / 255  # the big-eps sample moved to the edge of its ball


def test_adv_step_zero_grad_and_per_sample_step():
    xc = torch.rand(2, 3, 8, 8)
    xa, m = ops.adv_step(xc, xc, torch.zeros_like(xc), torch.zeros_like(xc), 2 / 255, 8 / 255)
    assert torch.equal(xa, xc) and torch.equal(m, torch.zeros_like(xc)) and not m.isnan().any()
    x = torch.full((2, 1, 4, 4), 0.5)
    grad = torch.ones_like(x)
    grad[1] = -1
    xa, m = ops.adv_step(x, x, grad, torch.zeros_like(x), torch.tensor([0.01, 0.02]), 1.0)
    torch.testing.assert_close(xa[0], torch.full_like(x[0], 0.51))
    torch.testing.assert_close(xa[1], torch.full_like(x[1], 0.48))
    torch.testing.assert_close(m.abs().sum(dim=(1, 2, 3)), torch.ones(2))  # L1-normalised gradient


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_adv_step_half(dtype):
    x = torch.rand(2, 3, 8, 8)
    xa, m = ops.adv_step(x.to(dtype), x.to(dtype), torch.randn_like(x).to(dtype), torch.zeros(2, 3, 8, 8), 0.01, 0.03)
    assert xa.dtype == dtype and m.dtype == torch.float32
