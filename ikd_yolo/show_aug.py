"""Visual check of the sample-specific frequency augmentation on what training sees (`ikd-yolo show-aug`).

Builds a training batch with Ultralytics' own dataset (mode "train", its usual flips/HSV/affine, mosaic off so each
image keeps its own `ori_shape`), applies `FrequencyAugment` with the given IKD settings and writes one PNG grid with a
column per image and five rows: original with boxes, augmented with boxes, the log-amplitude spectra (fftshifted,
channel mean) of both on a shared colour scale, and the spectrum of the change. The row titles and the heading say
who sees which image: with freq_apply=replace the mixed images are the training batch, with freq_apply=view the
detection loss sees the clean images and only the distillation sees the mixed ones, with freq_apply=shared the attack
starts from the mixed ones. Box colours: cyan = small box, orange = large box (at original resolution). Spectral
mode draws the image's band [lo, hi) as dashed ellipses.

Only matplotlib's Figure/Agg API and its bundled DejaVu font are used (no pyplot state, no Ultralytics text helpers,
so nothing is downloaded).

Examples:
    >>> from ikd_yolo.show_aug import show_augmentation
    >>> show_augmentation(  # needs a dataset  # doctest: +SKIP
    ...     "coco8.yaml", {**ikd_settings, "freq_mode": "spectral"}, "grid.png", n=8, imgsz=256)
"""

from __future__ import annotations

import random
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch

from .augment.frequency import FrequencyAugment
from .augment.policy import box_is_small, input_scales

SMALL_COLOR, LARGE_COLOR = "#00e5ff", "#ff9800"
# by freq_apply: what the rows show (who sees the top two images) and the heading's sentence
ROWS = {
    "replace": ("original", "augmented: training batch", "log |FFT| original", "log |FFT| augmented",
                "log |FFT| of change"),
    "view": ("clean: detection loss", "mixed: distillation view", "log |FFT| clean", "log |FFT| mixed",
             "log |FFT| of change"),
    "shared": ("clean: detection loss", "mixed: the attack's start", "log |FFT| clean", "log |FFT| mixed",
               "log |FFT| of change"),
}
WHO_SEES = {
    "replace": "freq_apply=replace: the mixed images are the training batch (detection loss and distillation)",
    "view": "freq_apply=view: the detection loss trains on the clean images; teacher and student are distilled on the "
            "mixed ones too",
    "shared": "freq_apply=shared: the detection loss trains on the clean images; the attack starts from the mixed "
              "ones, and its images are distilled",
}


def pick_images(labels: list[dict], n: int, small: float, seed: int) -> list[int]:
    """Pick n dataset indices at random, half all-small (or empty) images and half with a large box where possible.

    Args:
        labels (list[dict]): Ultralytics dataset labels (`shape` = original (h, w), `bboxes` normalised xywh).
        n (int): Number of images.
        small (float): Small-box threshold side, original pixels.
        seed (int): Seed of the choice.

    Returns:
        (list[int]): Indices, all-small images first.
    """
    rng = np.random.default_rng(seed)
    groups = [[], []]
    for i, lb in enumerate(labels):
        (h, w), b = lb["shape"], np.asarray(lb["bboxes"]).reshape(-1, 4)
        groups[int(bool((b[:, 2] * w * b[:, 3] * h >= small**2).any()))].append(i)
    picks = [list(rng.permutation(g)) for g in groups]
    k = min(len(picks[0]), max(n // 2, n - len(picks[1])))
    return [int(i) for i in picks[0][:k] + picks[1][: n - k]]


def load_train_batch(data: str, n: int, imgsz: int, seed: int, small: float = 32) -> dict[str, Any]:
    """Load n images of the dataset's train split as one batch, as `DetectionTrainer.preprocess_batch` hands it on.

    Args:
        data (str): Dataset YAML (anything `check_det_dataset` accepts).
        n (int): Number of images (fewer if the split is smaller), chosen by `pick_images`.
        imgsz (int): Network input size.
        seed (int): Seed for the image choice and Ultralytics' random transforms.
        small (float): Small-box threshold side used to balance the choice, original pixels.

    Returns:
        (dict): Collated batch on the CPU with `img` float in [0, 1].
    """
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset

    from .inputs import load_data

    info = load_data(data)  # one line for a folder or file that is not a dataset
    args = get_cfg(overrides={"imgsz": imgsz, "mosaic": 0.0, "mixup": 0.0, "cutmix": 0.0, "copy_paste": 0.0})
    dataset = build_yolo_dataset(args, info["train"], batch=n, data=info, mode="train", stride=32)
    state = random.getstate(), np.random.get_state()
    try:
        random.seed(seed)
        np.random.seed(seed)
        batch = dataset.collate_fn([dataset[i] for i in pick_images(dataset.labels, n, small, seed)])
    finally:
        random.setstate(state[0])
        np.random.set_state(state[1])
    batch["img"] = batch["img"].float() / 255
    return batch


def log_spectrum(img: torch.Tensor) -> np.ndarray:
    """Return log(1 + |FFT|) of images (B, C, H, W), mean over channels, zero frequency centred: (B, H, W)."""
    amp = torch.fft.fftshift(torch.fft.fft2(img.double()), dim=(-2, -1)).abs()
    return torch.log1p(amp).mean(1).numpy()


def _column_title(info: Mapping[str, Any] | None, i: int, name: str) -> str:
    """Describe what image i got."""
    if info is None:
        return f"{name}\noff"
    kind = "small" if bool(info["high"][i]) else "large"
    if info["mode"] == "paper":
        if bool(info["noise"][i]):
            what = "noise"
        elif bool(info["crop"][i]):
            w, h = info["crop_box"][i, 2:].tolist()
            what = f"crop {w:.2f}x{h:.2f}"
        else:
            what = "untouched"
    elif bool(info["selected"][i]):
        band = "high" if bool(info["high"][i]) else "low"
        src = f" <- {int(info['perm'][i])}" if info["perm"] is not None else ""
        what = f"{band} [{float(info['lo'][i]):.2f},{float(info['hi'][i]):.2f}) lam={float(info['lam'][i]):.2f}{src}"
    else:
        what = "not selected"
    return f"{i}: {name} ({kind})\n{what}"


def _draw_boxes(ax, batch: Mapping[str, Any], i: int, small: float) -> None:
    """Draw image i's boxes on ax (pixel coords), coloured small / large."""
    from matplotlib.patches import Rectangle

    h, w = batch["img"].shape[-2:]
    sel = batch["batch_idx"].long() == i
    boxes = batch["bboxes"][sel]
    is_small = box_is_small(boxes, batch["batch_idx"][sel], (h, w), input_scales(batch), small)
    for (cx, cy, bw, bh), s in zip(boxes.tolist(), is_small.tolist()):
        color = SMALL_COLOR if s else LARGE_COLOR
        x0, y0 = (cx - bw / 2) * w - 0.5, (cy - bh / 2) * h - 0.5  # imshow puts pixel centres on integers
        ax.add_patch(Rectangle((x0, y0), bw * w, bh * h, fill=False, ec=color))


def _draw_band(ax, lo: float, hi: float, h: int, w: int) -> None:
    """Draw the radial band [lo, hi) on an fftshifted spectrum: r = sqrt(fy² + fx²) / 0.5, fy, fx in cycles/px."""
    from matplotlib.patches import Ellipse

    centre = (w // 2, h // 2)  # zero frequency after fftshift
    for r in (lo, hi):
        if 0 < r < 2**0.5:
            ax.add_patch(Ellipse(centre, r * w, r * h, fill=False, ec="white", lw=0.8, ls="--"))


def show_augmentation(
    data: str, cfg: Mapping[str, Any], out: str | Path, n: int = 8, imgsz: int = 256, seed: int = 0
) -> Path:
    """Write a PNG grid comparing original and frequency-augmented training images and their spectra.

    Args:
        data (str): Dataset YAML.
        cfg (Mapping): IKD settings with the `freq_*` keys of configs/default.yaml.
        out (str | Path): Output PNG path (parents are created).
        n (int): Number of images (columns).
        imgsz (int): Network input size.
        seed (int): Seed for images, Ultralytics transforms and the augmentation draws.

    Returns:
        (Path): The written PNG.
    """
    from matplotlib.figure import Figure

    aug = FrequencyAugment.from_config(cfg)
    batch = load_train_batch(data, n, imgsz, seed, aug.settings.small)
    augmented = aug(batch, generator=torch.Generator().manual_seed(seed))
    info = augmented.get("freq_info")
    x, y = batch["img"], augmented["img"]
    sx, sy, sd = log_spectrum(x), log_spectrum(y), log_spectrum(y - x)
    b, (h, w) = x.shape[0], x.shape[-2:]

    apply = aug.settings.apply
    rows = ROWS[apply]
    fig = Figure(figsize=(2.2 * b, 2.3 * len(rows)), dpi=100, layout="constrained")
    axes = fig.subplots(len(rows), b, squeeze=False)
    for i in range(b):
        vmin, vmax = min(sx[i].min(), sy[i].min()), max(sx[i].max(), sy[i].max())
        panels = (
            (x[i].permute(1, 2, 0).numpy(), {}),
            (y[i].permute(1, 2, 0).clamp(0, 1).numpy(), {}),
            (sx[i], {"cmap": "magma", "vmin": vmin, "vmax": vmax}),
            (sy[i], {"cmap": "magma", "vmin": vmin, "vmax": vmax}),
            (sd[i], {"cmap": "magma"}),
        )
        for r, (im, kw) in enumerate(panels):
            ax = axes[r, i]
            ax.imshow(im, interpolation="nearest", **kw)
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_ylabel(rows[r], fontsize=8)
        _draw_boxes(axes[0, i], batch, i, aug.settings.small)
        _draw_boxes(axes[1, i], augmented, i, aug.settings.small)
        if info is not None and info["mode"] == "spectral" and bool(info["selected"][i]):
            for r in (3, 4):
                _draw_band(axes[r, i], float(info["lo"][i]), float(info["hi"][i]), h, w)
        axes[0, i].set_title(_column_title(info, i, Path(batch["im_file"][i]).name), fontsize=7)
    fig.suptitle(f"{aug!r}\n{WHO_SEES[apply]}\nbox: cyan small, orange large; dashed circle: the band", fontsize=8)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
