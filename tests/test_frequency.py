"""Tests of the sample-specific frequency augmentation (ikd_yolo.augment.frequency / paper) and its visual check."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from ikd_yolo.augment.frequency import FrequencyAugment
from ikd_yolo.augment.paper import crop_boxes
from ikd_yolo.augment.policy import box_is_small, image_all_small, image_band_choice, input_scales
from ikd_yolo.augment.sampling import random_derangement
from ikd_yolo.config import DEFAULTS, DistillConfigError, resolve_distill_config


def settings(**kw) -> dict:
    """Validated ikd-fgd-full settings (frequency part on) with freq_* overrides (`mode="paper"` sets freq_mode)."""
    return resolve_distill_config({"distill": "ikd-fgd-full", **{f"freq_{k}": v for k, v in kw.items()}})


def augment(**kw) -> FrequencyAugment:
    """The frequency augmentation of `settings(**kw)`."""
    return FrequencyAugment.from_config(settings(**kw))


def xyxy_px_to_xywhn(boxes, h: int, w: int) -> torch.Tensor:
    """Pixel xyxy -> normalised xywh."""
    b = torch.tensor(boxes, dtype=torch.float32).reshape(-1, 4)
    return torch.stack(((b[:, 0] + b[:, 2]) / 2 / w, (b[:, 1] + b[:, 3]) / 2 / h, (b[:, 2] - b[:, 0]) / w,
                        (b[:, 3] - b[:, 1]) / h), 1)


def make_batch(per_image_boxes, hw=(64, 64), ori=None, seed=0, lo=0.3, hi=0.7) -> dict:
    """Hand-made preprocessed batch; per_image_boxes: list (one per image) of pixel xyxy boxes at network size."""
    g = torch.Generator().manual_seed(seed)
    b = len(per_image_boxes)
    img = lo + (hi - lo) * torch.rand((b, 3, *hw), generator=g)
    boxes = [xyxy_px_to_xywhn(bx, *hw) for bx in per_image_boxes]
    idx = torch.cat([torch.full((len(bx),), float(i)) for i, bx in enumerate(boxes)])
    n = len(idx)
    return {
        "img": img,
        "bboxes": torch.cat(boxes),
        "batch_idx": idx,
        "cls": torch.arange(n, dtype=torch.float32)[:, None],  # unique ids to track boxes
        "ori_shape": tuple(ori or [hw] * b),
        "resized_shape": tuple([hw] * b),
        "im_file": tuple(f"im{i}.jpg" for i in range(b)),
    }


SMALL, LARGE = [4, 4, 14, 14], [8, 8, 48, 48]  # 10x10 and 40x40 px at scale 1 (freq_small 32 -> 1024 px²)


# ----------------------------------------------------------------------------------------------------- policy ----
def test_policy_all_small_mixed_empty():
    batch = make_batch([[SMALL, SMALL], [SMALL, LARGE], [], [LARGE]])
    assert image_band_choice(batch, 32).tolist() == [True, False, True, False]


def test_threshold_exact_at_original_resolution():
    # network 320x320, original 480x640 -> s = 0.5: a 32x32 px original box is 16x16 px in the batch
    for w_orig, expect_small in ((32.0, False), (31.9, True), (33.0, False)):
        w = w_orig * 0.5
        batch = make_batch([[[100, 100, 100 + w, 100 + 16]]], hw=(320, 320), ori=[(480, 640)])
        assert torch.allclose(input_scales(batch), torch.tensor([0.5]))
        assert image_band_choice(batch, 32).item() is expect_small, w_orig
    # the same 20x20 px batch box is large at scale 0.5 (40x40 original) and small at scale 1
    batch = make_batch([[[0, 0, 20, 20]], [[0, 0, 20, 20]]], hw=(320, 320), ori=[(640, 400), (320, 320)])
    assert image_band_choice(batch, 32).tolist() == [False, True]
    # multi-scale: the batch resized to 640 (same normalised boxes) keeps the decision
    big = {**batch, "img": torch.zeros(2, 3, 640, 640)}
    assert torch.allclose(input_scales(big), torch.tensor([1.0, 2.0]))
    assert image_band_choice(big, 32).tolist() == [False, True]


def test_box_and_image_reductions():
    boxes = xyxy_px_to_xywhn([SMALL, LARGE, SMALL], 64, 64)
    idx = torch.tensor([0.0, 1.0, 1.0])
    small = box_is_small(boxes, idx, (64, 64), torch.ones(3), 32)
    assert small.tolist() == [True, False, True]
    assert image_all_small(small, idx, 3).tolist() == [True, False, True]


def test_derangement():
    for n in (2, 3, 8):
        p = random_derangement(n, torch.Generator().manual_seed(n), torch.device("cpu"))
        assert sorted(p.tolist()) == list(range(n)) and (p != torch.arange(n)).all()


# --------------------------------------------------------------------------------------------------- spectral ----
def radius(h: int, w: int) -> np.ndarray:
    """Normalised radius of the rfft2 bins, r = sqrt(fy² + fx²) / 0.5."""
    fy, fx = np.fft.fftfreq(h)[:, None], np.fft.rfftfreq(w)[None]
    return np.sqrt(fy**2 + fx**2) / 0.5


def mixed_batch(b=8, seed=0, hw=(64, 64)):
    """Alternating all-small / large images."""
    return make_batch([[SMALL] if i % 2 == 0 else [SMALL, LARGE] for i in range(b)], hw=hw, seed=seed)


def test_off_mode_builds_no_augmenter():
    with pytest.raises(ValueError, match="freq_mode=off has no frequency augmentation to build"):
        augment(mode="off")


@pytest.mark.parametrize("source", ["noise", "shuffle"])
def test_p0_identity_p1_changes_all(source):
    batch = mixed_batch()
    out = augment(p=0.0, source=source)(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out["img"], batch["img"]) and not out["freq_info"]["selected"].any()
    out = augment(p=1.0, source=source)(batch, torch.Generator().manual_seed(0))
    diff = (out["img"] - batch["img"]).flatten(1).abs().amax(1)
    assert (diff > 1e-3).all(), diff


@pytest.mark.parametrize("source", ["noise", "shuffle"])
def test_unselected_bit_identical(source):
    batch = mixed_batch(b=12)
    before = batch["img"].clone()
    out = augment(p=0.5, source=source)(batch, torch.Generator().manual_seed(3))
    sel = out["freq_info"]["selected"]
    assert 0 < sel.sum() < len(sel)
    assert torch.equal(out["img"][~sel], before[~sel])
    assert ((out["img"][sel] - before[sel]).flatten(1).abs().amax(1) > 1e-3).all()
    assert torch.equal(batch["img"], before)  # the input batch is not modified


def test_per_sample_bands():
    batch = mixed_batch()
    info = augment(p=1.0)(batch, torch.Generator().manual_seed(0))["freq_info"]
    high = torch.tensor([i % 2 == 0 for i in range(8)])
    assert torch.equal(info["high"], high)
    (hl, hh), (ll, lh) = DEFAULTS["freq_band_high"], DEFAULTS["freq_band_low"]
    assert torch.allclose(info["lo"], torch.where(high, hl, ll).float())
    assert torch.allclose(info["hi"], torch.where(high, hh, lh).float())
    lam = info["lam"]
    assert ((lam >= DEFAULTS["freq_lam"][0]) & (lam <= DEFAULTS["freq_lam"][1])).all() and lam.unique().numel() == 8


@pytest.mark.parametrize("mix", ["complex", "amplitude"])
def test_noise_change_in_band(mix):
    batch = mixed_batch(hw=(64, 48))
    out = augment(p=1.0, mix=mix, sigma=0.05)(batch, torch.Generator().manual_seed(1))
    info = out["freq_info"]
    d = (out["img"] - batch["img"]).double().numpy()
    assert out["img"].min() > 0 and out["img"].max() < 1  # no clamping in the check
    energy = np.abs(np.fft.rfft2(d)) ** 2  # (B, C, H, W//2+1)
    r = radius(64, 48)
    for i in range(len(d)):
        lo, hi = float(info["lo"][i]), float(info["hi"][i])
        band = (r >= lo) & (r < hi)
        frac = energy[i][:, band].sum() / energy[i].sum()
        assert frac > 0.99, (i, lo, hi, frac)


def test_shuffle_moves_band_content():
    batch = mixed_batch(hw=(64, 64), seed=2)
    batch["img"] = 0.45 + (batch["img"] - 0.3) / 0.4 * 0.1  # inside [0.45, 0.55]: no clamping
    out = augment(p=1.0, source="shuffle")(batch, torch.Generator().manual_seed(0))
    info = out["freq_info"]
    perm = info["perm"]
    assert (perm != torch.arange(8)).all()
    xf = np.fft.rfft2(batch["img"].double().numpy())
    yf = np.fft.rfft2(out["img"].double().numpy())
    r = radius(64, 64)
    for i in range(8):
        lo, hi, lam, j = float(info["lo"][i]), float(info["hi"][i]), float(info["lam"][i]), int(perm[i])
        inside = (r >= lo + 0.03) & (r < hi - 0.03) if lo > 0 else r < hi - 0.03  # away from a soft edge
        outside = (r < lo - 0.03) | (r >= hi + 0.03)
        expect = xf[i] + lam * (xf[j] - xf[i])
        assert np.abs(yf[i][:, inside] - expect[:, inside]).max() < 1e-3 * np.abs(xf[i][:, inside]).max()
        assert np.abs(yf[i][:, outside] - xf[i][:, outside]).max() < 1e-3 * np.abs(xf[i]).max()


@pytest.mark.parametrize("mode,source", [("spectral", "noise"), ("spectral", "shuffle"), ("paper", "noise")])
def test_reproducible(mode, source):
    batch = make_batch([[SMALL], [LARGE], [], [SMALL, LARGE], [SMALL]] * 2)
    aug = augment(mode=mode, source=source, p=0.5)
    a, b = (aug(batch, torch.Generator().manual_seed(7)) for _ in range(2))
    c = aug(batch, torch.Generator().manual_seed(8))
    assert torch.equal(a["img"], b["img"]) and torch.equal(a["bboxes"], b["bboxes"])
    assert not torch.equal(a["img"], c["img"])


def test_bad_settings():
    with pytest.raises(KeyError):
        FrequencyAugment.from_config({"freq_mode": "spectral"})
    with pytest.raises(DistillConfigError, match="freq_mode"):
        augment(mode="fourier")
    with pytest.raises(DistillConfigError, match="freq_lam"):
        augment(lam=[0.5, 1.5])


# ------------------------------------------------------------------------------------------------------ paper ----
def ramp_batch(per_image_boxes, hw=(64, 64)):
    """Batch whose channel 0 is the x coordinate and channel 1 the y coordinate (pixel centres, normalised)."""
    batch = make_batch(per_image_boxes, hw=hw)
    h, w = hw
    ys, xs = torch.meshgrid((torch.arange(h) + 0.5) / h, (torch.arange(w) + 0.5) / w, indexing="ij")
    batch["img"][:, 0], batch["img"][:, 1] = xs, ys
    return batch


def test_paper_crop_boxes_and_alignment():
    corner = [0, 0, 40, 40]  # a large box in the corner: dropped when the crop starts right/below of it
    edge = [56, 20, 64, 60]  # large-image extra box along the right edge
    batch = ramp_batch([[LARGE, corner, edge], [SMALL], [corner, SMALL], [LARGE]] * 3)
    out = augment(mode="paper", p=0.0, crop=[0.8, 0.8])(batch, torch.Generator().manual_seed(0))
    info = out["freq_info"]
    assert info["crop"].tolist() == [True, False, True, True] * 3 and not info["noise"].any()
    bx, idx, cls = out["bboxes"], out["batch_idx"], out["cls"]
    assert len(bx) == len(idx) == len(cls) < len(batch["bboxes"])  # something was dropped
    x1, y1, x2, y2 = bx[:, 0] - bx[:, 2] / 2, bx[:, 1] - bx[:, 3] / 2, bx[:, 0] + bx[:, 2] / 2, bx[:, 1] + bx[:, 3] / 2
    assert (x1 >= -1e-6).all() and (y1 >= -1e-6).all() and (x2 <= 1 + 1e-6).all() and (y2 <= 1 + 1e-6).all()
    assert (bx[:, 2] > 0).all() and (bx[:, 3] > 0).all()
    ids = cls[:, 0].long()  # cls carries each box's original row
    assert torch.equal(idx, batch["batch_idx"][ids])
    # every dropped box is one that lies outside its crop window, every kept one matches the analytic transform
    win = info["crop_box"]
    win_xyxy = torch.cat((win[:, :2] - win[:, 2:] / 2, win[:, :2] + win[:, 2:] / 2), 1)
    mapped, keep = crop_boxes(batch["bboxes"], win_xyxy[batch["batch_idx"].long()])
    assert torch.equal(keep.nonzero().squeeze(1), ids)
    assert torch.allclose(bx, mapped[ids], atol=1e-6)
    # the crop window of the images matches the boxes: resampled ramp = window coordinates
    for i in info["crop"].nonzero().squeeze(1).tolist():
        x0, y0, x1w, y1w = win_xyxy[i].tolist()
        ramp = torch.tensor(x0 + (torch.arange(64) + 0.5).numpy() / 64 * (x1w - x0), dtype=torch.float32)
        assert torch.allclose(out["img"][i, 0, 32, 8:-8], ramp[8:-8], atol=1e-4)
    # an image kept as is (all small, no noise at p=0) is bit-identical with the same boxes
    assert torch.equal(out["img"][1], batch["img"][1])
    assert torch.equal(bx[idx == 1], batch["bboxes"][batch["batch_idx"] == 1])


def test_paper_noise_only_on_all_small():
    batch = make_batch([[SMALL], [LARGE], [], [SMALL, LARGE]] * 4)
    out = augment(mode="paper", p=1.0, sigma=0.08)(batch, torch.Generator().manual_seed(0))
    info = out["freq_info"]
    small = torch.tensor([True, False, True, False] * 4)
    assert torch.equal(info["noise"], small) and torch.equal(info["crop"], ~small)
    d = out["img"][small] - batch["img"][small]
    assert abs(d.std().item() - 0.08) < 0.005 and abs(d.mean().item()) < 0.005
    in_noise = small[batch["batch_idx"].long()]
    kept = small[out["batch_idx"].long()]
    assert torch.equal(out["bboxes"][kept], batch["bboxes"][in_noise])  # noise leaves the boxes alone
    out = augment(mode="paper", p=0.0)(batch, torch.Generator().manual_seed(0))
    assert torch.equal(out["img"][small], batch["img"][small]) and not out["freq_info"]["noise"].any()


# ------------------------------------------------------------------------------------------------------- show ----
def tiny_dataset(root: Path) -> Path:
    """Four 96x80 images with one small or one large box each."""
    import cv2

    rng = np.random.default_rng(0)
    for split in ("train", "val"):
        (root / "images" / split).mkdir(parents=True)
        (root / "labels" / split).mkdir(parents=True)
        for i in range(4):
            im = rng.integers(60, 200, (80, 96, 3), dtype=np.uint8)
            bw, bh = (0.1, 0.12) if i % 2 else (0.6, 0.5)
            cv2.rectangle(im, (int((0.5 - bw / 2) * 96), int((0.5 - bh / 2) * 80)),
                          (int((0.5 + bw / 2) * 96), int((0.5 + bh / 2) * 80)), (255, 0, 0), -1)
            cv2.imwrite(str(root / "images" / split / f"{i}.png"), im)
            (root / "labels" / split / f"{i}.txt").write_text(f"{i % 2} 0.5 0.5 {bw} {bh}\n")
    names = "names:\n  0: big\n  1: small\n"
    (root / "data.yaml").write_text(f"path: {root}\ntrain: images/train\nval: images/val\n{names}")
    return root / "data.yaml"


@pytest.mark.parametrize("mode", ["spectral", "paper"])
def test_show_augmentation_writes_png(tmp_path, mode):
    from ikd_yolo.show_aug import show_augmentation

    import cv2

    data = tiny_dataset(tmp_path / "ds")
    png = show_augmentation(str(data), settings(mode=mode, p=1.0), tmp_path / "grid.png", n=4, imgsz=64)
    im = cv2.imread(str(png), cv2.IMREAD_GRAYSCALE).astype(np.float32)
    assert im.shape == (1150, 880)  # 5 rows x 4 images at 2.2 x 2.3 inches, 100 dpi
    cells = [[im[r * 230:(r + 1) * 230, c * 220:(c + 1) * 220] for c in range(4)] for r in range(5)]
    # no blank panel; the change spectrum is the row an unaugmented image leaves black (its inner std is then 0)
    assert all(cell[70:170, 70:170].std() > 10 for row in cells for cell in row)
    if mode == "spectral":  # the change lies inside the band: the disc round DC for large boxes, outside it for small
        contrast = [cell[95:135, 90:130].mean() - cell[30:60, 30:60].mean() for cell in cells[4]]
        assert sorted(np.sign(contrast)) == [-1, -1, 1, 1] and min(map(abs, contrast)) > 40


def test_band_fraction_makes_sigma_an_in_band_level():
    from ikd_yolo.augment.frequency import band_fraction

    lo, hi = torch.tensor([0.0, 0.0, 0.3]), torch.tensor([2.0, 0.15, 2.0])
    frac = band_fraction(lo, hi, 256, 256)
    assert frac[0] == 1.0  # the whole spectrum
    # a disc of radius 0.15 in the [-1, 1]^2 normalised square: pi * 0.15^2 / 4 of the bins
    assert abs(frac[1].item() - math.pi * 0.15**2 / 4) < 2e-3
    assert abs(frac[2].item() - (1 - math.pi * 0.3**2 / 4)) < 2e-3
    # an empty band still counts one bin, so sigma stays finite
    assert band_fraction(torch.tensor([0.5]), torch.tensor([0.5]), 8, 8).item() == 1 / 64
