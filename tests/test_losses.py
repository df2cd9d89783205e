"""Tests for ikd_yolo.losses: hand-computed values on tiny tensors, identities, masks, gradients and bf16 autocast."""

from __future__ import annotations

import copy
import math
import pickle
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from ikd_yolo.losses import (
    BASE_LOSSES,
    AdvFeatureLoss,
    CWDLoss,
    FGDLoss,
    GcBlock,
    MGDLoss,
    MSELoss,
    build_base_loss,
    fgd_masks,
)

CONFIG = Path(__file__).resolve().parents[1] / "configs" / "default.yaml"


def _seeded(*shape: int, seed: int = 0) -> torch.Tensor:
    """Return a reproducible standard-normal tensor."""
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed))


def _randomise_last_conv(loss: FGDLoss, seed: int = 0) -> None:
    """Give both GcBlocks a non-zero last conv so the global term is no longer the identity."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for block in (loss.gc_student, loss.gc_teacher):
            for p in block.transform[-1].parameters():
                p.copy_(torch.randn(p.shape, generator=g) * 0.5)


# ---------------------------------------------------------------- MSE / adversarial
def test_mse_hand_value():
    s = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 0.0], [0.0, 0.0]]]])  # 1x2x2x2
    t = torch.zeros_like(s)
    # squares 1 + 4 + 9 + 16 = 30 over 8 elements = 3.75; weight 2 -> 7.5
    assert MSELoss(weight=2.0)(s, t).item() == pytest.approx(7.5)


def test_adv_hand_value():
    s = torch.zeros(2, 3, 2, 2)
    s[0, 0, 0, 0] = 2.0  # image 0 contributes 4
    s[1, 2, 1, 1] = -1.0  # image 1 contributes 1
    t = torch.zeros_like(s)
    t[1, 1] = 1.0  # image 1 channel 1: 4 cells of (0 - 1)^2 = 4
    # sum of squares 4 + 1 + 4 = 9, divided by N = 2 -> 4.5; weight 0.1 -> 0.45
    assert AdvFeatureLoss(weight=0.1)(s, t).item() == pytest.approx(0.45)


@pytest.mark.parametrize("cls", [MSELoss, AdvFeatureLoss, CWDLoss])
def test_identical_features_give_zero(cls):
    x = _seeded(2, 3, 4, 4)
    assert cls()(x, x.clone()).item() == pytest.approx(0.0, abs=1e-7)


# ---------------------------------------------------------------- CWD
def test_cwd_hand_value():
    s = torch.zeros(2, 2, 1, 2)  # N=2, C=2, two positions per channel
    t = torch.zeros_like(s)
    s[0, 0, 0, 1] = 2 * math.log(3.0)
    # only (n=0, c=0) differs: tau=2 gives student logits [0, ln 3] -> q = [1/4, 3/4], teacher p = [1/2, 1/2]
    # KL(p||q) = 1/2 ln(1/2 / 1/4) + 1/2 ln(1/2 / 3/4) = 1/2 ln(4/3); times tau^2 = 4 -> 2 ln(4/3)
    # divided by C*N = 4 -> 1/2 ln(4/3); weight 3 -> 1.5 ln(4/3) = 0.43152
    # (the reverse direction KL(q||p) = 0.75 ln 1.5 - 0.25 ln 2 = 0.1308 would give 3 * 4 * 0.1308 / 4 = 0.392)
    assert CWDLoss(weight=3.0, tau=2.0)(s, t).item() == pytest.approx(1.5 * math.log(4 / 3), rel=1e-5)


def test_cwd_shift_invariant_per_channel():
    # the spatial softmax ignores a constant added to a whole channel
    t = _seeded(2, 3, 4, 4)
    s = t + torch.tensor([1.0, -2.0, 5.0]).view(1, 3, 1, 1)
    assert CWDLoss(tau=1.5)(s, t).item() == pytest.approx(0.0, abs=1e-6)


# ---------------------------------------------------------------- MGD
def _dirac_generator(loss: MGDLoss) -> None:
    """Make both generator convs the identity (centre tap 1, bias 0), so G(x) = relu(x)."""
    with torch.no_grad():
        for conv in (loss.generator[0], loss.generator[2]):
            torch.nn.init.dirac_(conv.weight)
            conv.bias.zero_()


def test_mgd_hand_value_with_mask():
    loss = MGDLoss(channels=1, alpha=0.5, ratio=0.65)
    _dirac_generator(loss)
    s = torch.tensor([[[[1.0, 2.0], [-3.0, 4.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])  # 2x1x2x2
    t = torch.ones_like(s)
    mask = torch.tensor([[[[1.0, 0.0], [1.0, 1.0]]], [[[1.0, 1.0], [1.0, 1.0]]]])
    # image 0: s*mask = [[1, 0], [-3, 4]], relu -> [[1, 0], [0, 4]], minus 1 -> [[0, -1], [-1, 3]], squares sum 11
    # image 1: relu(1) - 1 = 0 everywhere
    # alpha * 11 / N = 0.5 * 11 / 2 = 2.75
    assert loss(s, t, mask=mask).item() == pytest.approx(2.75)


def test_mgd_ones_mask_matches_manual_generator():
    loss = MGDLoss(channels=3, alpha=0.01, ratio=0.65)
    s, t = _seeded(2, 3, 5, 4, seed=1), _seeded(2, 3, 5, 4, seed=2)
    c1, c2 = loss.generator[0], loss.generator[2]
    gen = F.conv2d(F.relu(F.conv2d(s, c1.weight, c1.bias, padding=1)), c2.weight, c2.bias, padding=1)
    expected = 0.01 * ((gen - t) ** 2).sum() / 2
    got = loss(s, t, mask=torch.ones(2, 1, 5, 4))
    assert got.item() == pytest.approx(expected.item(), rel=1e-5)


def test_mgd_random_mask():
    loss = MGDLoss(channels=3, ratio=0.65)
    torch.manual_seed(0)
    feat = torch.zeros(8, 3, 32, 32)
    mask = loss.draw_mask(feat)
    assert mask.shape == (8, 1, 32, 32)
    assert set(mask.unique().tolist()) <= {0.0, 1.0}
    assert (1 - mask.mean().item()) == pytest.approx(0.65, abs=0.03)  # 8192 draws, std ~0.005
    # with ratio 0 the drawn mask keeps everything, so the default path equals an explicit all-ones mask
    keep_all = MGDLoss(channels=3, alpha=1.0, ratio=0.0)
    s, t = _seeded(2, 3, 4, 4, seed=3), _seeded(2, 3, 4, 4, seed=4)
    ones = keep_all(s, t, mask=torch.ones(2, 1, 4, 4))
    assert keep_all(s, t).item() == pytest.approx(ones.item(), rel=1e-6)
    # with ratio 1 every position is dropped: the generator only sees zeros
    drop_all = MGDLoss(channels=3, alpha=1.0, ratio=1.0)
    zeros = drop_all(s, t, mask=torch.zeros(2, 1, 4, 4))
    assert drop_all(s, t).item() == pytest.approx(zeros.item(), rel=1e-6)
    assert zeros.item() != pytest.approx(drop_all(s, t, mask=torch.ones(2, 1, 4, 4)).item(), rel=1e-3)


def test_mgd_gradients():
    loss = MGDLoss(channels=3, alpha=1.0)
    s = _seeded(2, 3, 4, 4).requires_grad_()
    loss(s, _seeded(2, 3, 4, 4, seed=1)).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    for name, p in loss.named_parameters():
        assert p.grad is not None and p.grad.abs().sum() > 0, name


# ---------------------------------------------------------------- FGD masks
def test_fgd_masks_single_box():
    # box x 0.25..0.75, y 0..0.5 on a 4x4 grid -> columns 1, 2 and rows 0, 1: 2x2 cells of 1/4
    fg, bg = fgd_masks([torch.tensor([[0.25, 0.0, 0.75, 0.5]])], (4, 4))
    expected = torch.zeros(1, 4, 4)
    expected[0, 0:2, 1:3] = 0.25
    assert torch.equal(fg, expected)
    # the other 12 cells are background, each 1/12
    assert torch.allclose(bg, (expected == 0).float() / 12)
    assert bg.sum().item() == pytest.approx(1.0)


def test_fgd_masks_partial_cells_and_rounding():
    # x 0.1..0.3 on W=4: floor(0.4) = 0 .. ceil(1.2) = 2 -> columns 0, 1; same rows -> 4 cells of 1/4
    fg, _ = fgd_masks([torch.tensor([[0.1, 0.1, 0.3, 0.3]])], (4, 4))
    assert torch.equal(fg[0, :2, :2], torch.full((2, 2), 0.25))
    assert fg[0].count_nonzero().item() == 4
    # x2 = 7/13 on W=13 ends exactly on a cell edge, but fp32 (7/13) * 13 = 7.0000005 (> 7), which a bare ceil
    # would turn into an 8th column; the tolerance keeps columns 0..6 -> 7 cells of 1/7 on a 1x13 grid
    x2 = torch.tensor(7 / 13, dtype=torch.float32)
    assert (x2 * 13).item() > 7
    fg, _ = fgd_masks([torch.stack([torch.tensor(0.0), torch.tensor(0.0), x2, torch.tensor(1.0)])[None]], (1, 13))
    assert fg[0, 0, :7].tolist() == pytest.approx([1 / 7] * 7)
    assert fg[0, 0, 7:].sum().item() == 0


def test_fgd_masks_overlap_takes_max_and_no_background():
    boxes = torch.tensor([[0.0, 0.0, 1.0, 1.0], [0.0, 0.0, 0.25, 0.25]])  # whole image + the top-left cell
    fg, bg = fgd_masks([boxes], (4, 4))
    expected = torch.full((1, 4, 4), 1 / 16)
    expected[0, 0, 0] = 1.0  # max(1/16, 1/1)
    assert torch.allclose(fg, expected)
    assert torch.equal(bg, torch.zeros(1, 4, 4))  # every cell is foreground -> no background at all


def test_fgd_masks_per_image_and_empty():
    boxes = [torch.zeros(0, 4), torch.tensor([[0.0, 0.0, 0.5, 0.5]])]
    fg, bg = fgd_masks(boxes, (2, 3))
    # image 0 has no boxes: all 6 cells background at 1/6
    assert torch.equal(fg[0], torch.zeros(2, 3))
    assert torch.allclose(bg[0], torch.full((2, 3), 1 / 6))
    # image 1: x 0..0.5 on W=3 -> floor(0) .. ceil(1.5) = 2 -> columns 0, 1; y 0..0.5 on H=2 -> row 0: 2 cells of 1/2
    assert torch.allclose(fg[1], torch.tensor([[0.5, 0.5, 0.0], [0.0, 0.0, 0.0]]))
    assert torch.allclose(bg[1], torch.tensor([[0.0, 0.0, 0.25], [0.25, 0.25, 0.25]]))  # 4 background cells


def test_fgd_masks_degenerate_and_clipped_boxes():
    # a zero-size box marks the one cell it lies in; coordinates outside [0, 1] are clipped
    fg, _ = fgd_masks([torch.tensor([[0.6, 0.6, 0.6, 0.6], [-0.5, -0.5, 0.2, 0.2]])], (2, 2))
    assert torch.equal(fg[0], torch.tensor([[1.0, 0.0], [0.0, 1.0]]))


# ---------------------------------------------------------------- GcBlock
def test_gcblock_identity_at_init():
    x = _seeded(2, 6, 3, 5)
    assert torch.equal(GcBlock(6)(x), x)


def test_gcblock_hand_value():
    block = GcBlock(4)
    with torch.no_grad():
        block.context_conv.weight.zero_()
        block.context_conv.bias.zero_()
        block.transform[0].weight.zero_()
        block.transform[0].weight[0, 1] = 1.0  # hidden unit 0 reads context channel 1, hidden unit 1 reads nothing
        block.transform[0].bias.zero_()
        block.transform[3].weight[:, 0, 0, 0] = torch.tensor([1.0, 2.0, 3.0, 4.0])  # only hidden unit 0 is used
    x = torch.zeros(1, 4, 2, 2)
    x[0, 0] = torch.tensor([[1.0, 0.0], [0.0, 0.0]])
    x[0, 1] = torch.tensor([[2.0, -5.0], [-5.0, -5.0]])
    # uniform attention (zero context conv): context channel 1 = mean = -13/4; hidden (-3.25, 0) -> LayerNorm over
    # 2 values -> (-1, 1) -> ReLU (0, 1); hidden unit 1 has zero out-weights, so the output is x itself
    assert torch.allclose(block(x), x)
    # attention logits 50 * channel 0 = [50, 0, 0, 0]: softmax puts ~1 on position (0, 0), context channel 1 = 2;
    # hidden (2, 0) -> LayerNorm (mean 1, var 1) -> (1, -1) -> ReLU (1, 0) -> output x + [1, 2, 3, 4] per channel
    with torch.no_grad():
        block.context_conv.weight[0, 0] = 50.0
    expected = x + torch.tensor([1.0, 2.0, 3.0, 4.0]).view(1, 4, 1, 1)
    assert torch.allclose(block(x), expected, atol=1e-4)


# ---------------------------------------------------------------- FGD loss
def test_fgd_hand_value():
    t = torch.ones(1, 2, 2, 2)
    t[0, 1, 0, 0] = -1.0  # |t| = 1 everywhere: teacher attention A_S^t = 1, A_C^t = 1
    s = t.clone()
    s[0, 0] = torch.tensor([[2.0, 1.0], [1.0, 3.0]])  # (s - t)^2 on channel 0 = [[1, 0], [0, 4]], channel 1 = 0
    boxes = [torch.tensor([[0.0, 0.0, 0.5, 1.0]])]  # left column on the 2x2 grid: fg 1/2, bg (right column) 1/2
    loss = FGDLoss(channels=2, alpha=2.0, beta=3.0, gamma=0.25, lambda_=0.1, temp=0.5)
    parts = loss.parts(s, t, boxes)
    # fg = alpha * (1/2 * 1 + 1/2 * 0) = 2 * 0.5 = 1;  bg = beta * (1/2 * 0 + 1/2 * 4) = 3 * 2 = 6
    assert parts["fg"].item() == pytest.approx(1.0)
    assert parts["bg"].item() == pytest.approx(6.0)
    # student channel attention: mean_hw|s| = (7/4, 1) / 0.5 = (3.5, 2); 2 * softmax -> sum|A_C^s - 1| = 2 tanh(0.75)
    # student spatial attention: mean_c|s| = [[1.5, 1], [1, 2]] / 0.5 = [[3, 2], [2, 4]]; 4 * softmax
    e = math.exp
    z = e(3) + 2 * e(2) + e(4)
    spatial = sum(abs(4 * e(k) / z - 1) for k in (3, 2, 2, 4))  # 0.1019 + 2 * 0.6696 + 1.4412 = 2.8824
    attention = 0.25 * (2 * math.tanh(0.75) + spatial)  # 0.25 * (1.2703 + 2.8824) = 1.0382
    assert parts["att"].item() == pytest.approx(attention, rel=1e-5)
    # global at init: both GcBlocks are the identity -> lam * sum((s - t)^2) / N = 0.1 * 5 = 0.5
    assert parts["global"].item() == pytest.approx(0.5)
    total = loss(s, t, boxes)
    assert total.item() == pytest.approx(1.0 + 6.0 + attention + 0.5, rel=1e-5)  # 8.5382
    assert set(parts) == set(FGDLoss.WEIGHTS) == {"fg", "bg", "att", "global"}
    assert sum(parts.values()).item() == pytest.approx(total.item())


def test_a_part_weight_is_set_through_the_loss():
    """`set_weight` / `weight_of` reach each part's weight by its name in `WEIGHTS` ("" for a lone part)."""
    loss = FGDLoss(channels=3, alpha=1.0, beta=1.0, gamma=1.0, lambda_=1.0)
    loss.set_weight("global", 0.25)
    assert loss.lambda_ == loss.weight_of("global") == 0.25 and loss.weight_of("bg") == 1.0
    single = MSELoss(weight=2.0)
    single.set_weight("", 3)
    assert single.weight == single.weight_of("") == 3.0 and isinstance(single.weight, float)


def test_fgd_identical_features():
    loss = FGDLoss(channels=3, alpha=1.0, beta=1.0, gamma=1.0, lambda_=1.0)
    x = _seeded(2, 3, 4, 4)
    boxes = [torch.tensor([[0.1, 0.2, 0.6, 0.7]]), torch.zeros(0, 4)]
    parts = loss.parts(x, x.clone(), boxes)
    for name in ("fg", "bg", "att", "global"):  # global is 0 only because both last convs start at zero
        assert parts[name].item() == pytest.approx(0.0, abs=1e-7), name
    _randomise_last_conv(loss)
    assert loss.parts(x, x.clone(), boxes)["global"].item() > 1e-3  # different GcBlocks now separate s == t


def test_fgd_global_is_plain_squared_error_at_init():
    loss = FGDLoss(channels=3, lambda_=0.5)
    s, t = _seeded(2, 3, 4, 4, seed=1), _seeded(2, 3, 4, 4, seed=2)
    expected = 0.5 * ((s - t) ** 2).sum().item() / 2
    assert loss.parts(s, t, [torch.zeros(0, 4)] * 2)["global"].item() == pytest.approx(expected, rel=1e-5)


def test_fgd_gradients_reach_student_and_gc_blocks():
    loss = FGDLoss(channels=4, alpha=1.0, beta=1.0, gamma=1.0, lambda_=1.0)
    _randomise_last_conv(loss)
    s = _seeded(2, 4, 4, 4).requires_grad_()
    boxes = [torch.tensor([[0.0, 0.0, 0.5, 0.5]]), torch.tensor([[0.25, 0.25, 1.0, 1.0]])]
    loss(s, _seeded(2, 4, 4, 4, seed=1), boxes).backward()
    assert s.grad is not None and s.grad.abs().sum() > 0
    grads = dict(loss.named_parameters())
    # the context conv's bias adds one constant to every logit of a softmax over positions: its gradient is zero by
    # mathematics (up to rounding), every other parameter's is not
    shift_invariant = {f"{side}.context_conv.bias" for side in ("gc_student", "gc_teacher")}
    scale = max(p.grad.abs().max().item() for p in grads.values())
    for name, p in grads.items():
        assert p.grad is not None, name
        if name in shift_invariant:
            assert p.grad.abs().max().item() <= 1e-5 * scale, name
        else:
            assert p.grad.abs().sum() > 0, name


def test_fgd_rejects_bad_boxes_and_channels():
    loss = FGDLoss(channels=2)
    x = torch.zeros(2, 2, 2, 2)
    with pytest.raises(ValueError, match="box"):
        loss(x, x)
    with pytest.raises(ValueError, match="box"):
        loss(x, x, [torch.zeros(0, 4)])
    with pytest.raises(ValueError, match="channels"):
        loss(torch.zeros(2, 3, 2, 2), torch.zeros(2, 3, 2, 2), [torch.zeros(0, 4)] * 2)


def test_fgd_copy_and_pickle_keep_the_parts():
    loss = FGDLoss(channels=2, alpha=1.0, beta=1.0, gamma=1.0, lambda_=1.0)
    _randomise_last_conv(loss)
    args = (_seeded(1, 2, 2, 2), _seeded(1, 2, 2, 2, seed=1), [torch.zeros(0, 4)])
    want = loss.parts(*args)
    for twin in (copy.deepcopy(loss), pickle.loads(pickle.dumps(loss))):
        assert {k: v.item() for k, v in twin.parts(*args).items()} == {k: v.item() for k, v in want.items()}


# ---------------------------------------------------------------- all losses: shapes, dtype, autocast
def _all_losses(channels: int) -> dict[str, torch.nn.Module]:
    fgd = FGDLoss(channels, alpha=1.0, beta=1.0, gamma=1.0, lambda_=1.0)
    _randomise_last_conv(fgd)
    return {
        "mse": MSELoss(),
        "cwd": CWDLoss(tau=2.0),
        "mgd": MGDLoss(channels, alpha=1.0),
        "fgd": fgd,
        "adv": AdvFeatureLoss(weight=1.0),
    }


def _call(name: str, loss: torch.nn.Module, s: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    boxes = [torch.tensor([[0.1, 0.1, 0.6, 0.5]]), torch.zeros(0, 4)]
    if name == "mgd":
        mask = (torch.arange(s.shape[-2] * s.shape[-1]) % 3 != 0).float().view(1, 1, *s.shape[-2:])
        return loss(s, t, boxes, mask=mask)
    return loss(s, t, boxes)


@pytest.mark.parametrize("name", ["mse", "cwd", "mgd", "fgd", "adv"])
def test_bf16_autocast_close_to_fp32(name):
    loss = _all_losses(8)[name]
    s, t = _seeded(2, 8, 6, 6, seed=5), _seeded(2, 8, 6, 6, seed=6)
    ref = _call(name, loss, s, t)
    for cast in (False, True):  # fp32 inputs, and bf16 inputs as a bf16 model would hand over
        si, ti = (s.bfloat16(), t.bfloat16()) if cast else (s, t)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = _call(name, loss, si, ti)
        assert out.dim() == 0 and out.dtype == torch.float32
        assert torch.isfinite(out)
        assert out.item() == pytest.approx(ref.item(), rel=3e-2)


@pytest.mark.parametrize("name", ["mse", "cwd", "mgd", "fgd", "adv"])
def test_student_gradient_and_noncontiguous_inputs(name):
    loss = _all_losses(4)[name]
    base = _seeded(2, 5, 5, 4, seed=7)  # N, H, W, C layout: permuting gives a non-contiguous NCHW view
    s = base.permute(0, 3, 1, 2)
    t = _seeded(2, 4, 5, 5, seed=8)
    assert not s.is_contiguous()
    out = _call(name, loss, s, t)
    assert out.item() == pytest.approx(_call(name, loss, s.contiguous(), t).item(), rel=1e-6)
    leaf = s.contiguous().requires_grad_()
    _call(name, loss, leaf, t).backward()
    assert leaf.grad is not None and leaf.grad.abs().sum() > 0


@pytest.mark.parametrize("cls", [MSELoss, CWDLoss, AdvFeatureLoss])
def test_shape_mismatch_raises(cls):
    with pytest.raises(ValueError, match="shape"):
        cls()(torch.zeros(1, 2, 3, 3), torch.zeros(1, 2, 3, 4))


# ---------------------------------------------------------------- build_base_loss
CFG = {
    "mse_weight": 0.7,
    "cwd_weight": 2.0,
    "cwd_tau": 4.0,
    "mgd_alpha": 3e-5,
    "mgd_ratio": 0.5,
    "fgd_alpha": 1e-3,
    "fgd_beta": 5e-4,
    "fgd_gamma": 4e-4,
    "fgd_lambda": 6e-6,
    "fgd_temp": 0.25,
    "score_feat": 6.0,
    "score_cls": 0.5,
    "score_box": 2.0,
    "score_temp": 3.0,
    "score_kpt": 0.25,
}


def test_build_base_loss_reads_config():
    assert build_base_loss("mse", 8, CFG).weight == 0.7
    cwd = build_base_loss("CWD", 8, CFG)
    assert isinstance(cwd, CWDLoss) and (cwd.weight, cwd.tau) == (2.0, 4.0)
    mgd = build_base_loss("mgd", 8, CFG)
    assert (mgd.channels, mgd.alpha, mgd.ratio) == (8, 3e-5, 0.5)
    assert mgd.generator[0].in_channels == 8
    fgd = build_base_loss("fgd", 16, CFG)
    assert (fgd.channels, fgd.alpha, fgd.beta, fgd.gamma, fgd.lambda_, fgd.temp) == (16, 1e-3, 5e-4, 4e-4, 6e-6, 0.25)
    score = build_base_loss("score", 16, CFG)
    assert (score.feat, score.cls, score.box, score.temp, score.kpt) == (6.0, 0.5, 2.0, 3.0, 0.25)
    assert set(BASE_LOSSES) == {"mse", "cwd", "mgd", "fgd", "score"}


def test_build_base_loss_errors():
    with pytest.raises(ValueError, match="mse, cwd, mgd, fgd"):
        build_base_loss("kld", 8, CFG)
    with pytest.raises(KeyError, match="cwd_tau"):
        build_base_loss("cwd", 8, {"cwd_weight": 1.0})


def test_build_base_loss_from_default_config():
    yaml = pytest.importorskip("yaml")
    cfg = yaml.safe_load(CONFIG.read_text())
    for name in BASE_LOSSES:  # every key the builders read exists in the shared config
        assert isinstance(build_base_loss(name, 8, cfg), BASE_LOSSES[name])
    assert cfg["kd_loss"] in (*BASE_LOSSES, "none")
