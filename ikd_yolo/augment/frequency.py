"""Sample-specific frequency augmentation of a training batch (IKD part 1).

The policy looks at each image's ground-truth boxes: an image whose boxes are all small (or that has no boxes, as the
authors did) gets the HIGH frequency band, an image with at least one large box gets the LOW band. "Small" means a box
area below `freq_small`² pixels at the image's ORIGINAL resolution.

Scale convention (original pixels -> network-input pixels). Ultralytics loads every image, mosaic tiles included,
with its long side resized to `imgsz` (`BaseDataset.load_image`); the training transforms then place it (mosaic,
RandomPerspective or LetterBox) on an `imgsz` canvas and `DetectionTrainer.preprocess_batch` may rescale the whole
batch for multi-scale training. So one image's scale is

    s = max(H, W) / max(h0, w0)        network px per original px,

with (H, W) the batch tensor's size (multi-scale included) and (h0, w0) = `batch["ori_shape"][i]`. For a mosaic,
`ori_shape` (and `ratio_pad`, the per-axis load gain) belong to the first tile only, the other tiles' resolutions are
not in the batch, so that tile's scale stands for all four. The random zoom of RandomPerspective (`scale` hyp) is not
recorded in the batch and so is not undone: a box is measured as the network sees it, expressed in original pixels
(an object zoomed out to below the threshold counts as small in that batch). A batch without `ori_shape` is taken at
s = 1 (network pixels = original pixels).
A box is small iff  w_px * h_px / s² < freq_small²  (w_px, h_px its size in network pixels); a relative tolerance of
1e-5 makes a box exactly at the threshold count as large despite float32 round-off of normalised coordinates.

Modes (config key `freq_mode`): "off" (identity), "spectral" (band-limited spectral mixing through `ikd_yolo.ops`, the
project's generalisation), "paper" (the authors' Gaussian-noise / random-crop rule, see `ikd_yolo.augment.paper`).

Examples:
    >>> aug = FrequencyAugment(cfg)  # cfg: the IKD settings (configs/default.yaml keys)
    >>> batch = aug(batch, generator=torch.Generator(batch["img"].device).manual_seed(0))
    >>> batch["freq_info"]["high"], batch["freq_info"]["lam"]
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch

FREQ_KEYS = (
    "freq_mode",
    "freq_p",
    "freq_mix",
    "freq_source",
    "freq_sigma",
    "freq_small",
    "freq_band_high",
    "freq_band_low",
    "freq_lam",
    "freq_crop",
)
MODES = ("off", "spectral", "paper")
MIXES = ("complex", "amplitude")
SOURCES = ("noise", "shuffle")
_AREA_RTOL = 1e-5  # boxes within this relative distance of freq_small² count as large (float32 round-off)


# ------------------------------------------------------------------------------------------------------- policy ----
def input_scales(batch: Mapping[str, Any]) -> torch.Tensor:
    """Return each image's scale from original resolution to the network input, in network px per original px.

    Args:
        batch (Mapping): Ultralytics detection batch after `preprocess_batch`; uses `img` and `ori_shape`.

    Returns:
        (torch.Tensor): Scales of shape (B,), float32 on the device of `batch["img"]`; ones if `ori_shape` is missing.
    """
    img = batch["img"]
    b, dev = img.shape[0], img.device
    ori = batch.get("ori_shape")
    if ori is None:
        return torch.ones(b, device=dev)
    ori = torch.as_tensor([[float(v) for v in hw] for hw in ori], dtype=torch.float32).reshape(-1, 2)
    if len(ori) != b:
        raise ValueError(f"batch['ori_shape'] has {len(ori)} entries for {b} images")
    return (max(img.shape[-2:]) / ori.amax(1)).to(dev)


def box_is_small(
    bboxes: torch.Tensor, batch_idx: torch.Tensor, img_hw: tuple[int, int], scales: torch.Tensor, small: float
) -> torch.Tensor:
    """Tell which boxes are small, i.e. have an area below `small`² pixels at their image's original resolution.

    Args:
        bboxes (torch.Tensor): Boxes (n, 4), normalised xywh of the network input.
        batch_idx (torch.Tensor): Image index of each box (n,).
        img_hw (tuple[int, int]): Network input height and width in pixels.
        scales (torch.Tensor): Per-image scale (B,), network px per original px (see `input_scales`).
        small (float): Side of the small-area threshold, original pixels.

    Returns:
        (torch.Tensor): Boolean (n,), True for small boxes.
    """
    h, w = img_hw
    s = scales.to(bboxes.device)[batch_idx.long()]
    area = (bboxes[:, 2] * w) * (bboxes[:, 3] * h) / (s * s)  # original px²
    return area < float(small) ** 2 * (1.0 - _AREA_RTOL)


def image_all_small(is_small: torch.Tensor, batch_idx: torch.Tensor, batch_size: int) -> torch.Tensor:
    """Reduce per-box smallness to per-image "every box is small" (an image without boxes counts as all small).

    Args:
        is_small (torch.Tensor): Boolean (n,) from `box_is_small`.
        batch_idx (torch.Tensor): Image index of each box (n,).
        batch_size (int): Number of images B.

    Returns:
        (torch.Tensor): Boolean (B,), True where the image has no large box.
    """
    n_large = torch.zeros(batch_size, device=is_small.device).index_add_(
        0, batch_idx.long().to(is_small.device), (~is_small).float()
    )
    return n_large == 0


def image_band_choice(batch: Mapping[str, Any], small: float) -> torch.Tensor:
    """Pick each image's band from its labels: True -> HIGH band (all boxes small or none), False -> LOW band.

    Args:
        batch (Mapping): Detection batch with `img`, `bboxes`, `batch_idx` and (optionally) `ori_shape`.
        small (float): `freq_small`, side of the small-area threshold in original pixels.

    Returns:
        (torch.Tensor): Boolean (B,) on the device of `batch["img"]`.
    """
    img = batch["img"]
    bboxes, batch_idx = batch["bboxes"].to(img.device), batch["batch_idx"].to(img.device)
    is_small = box_is_small(bboxes, batch_idx, tuple(img.shape[-2:]), input_scales(batch), small)
    return image_all_small(is_small, batch_idx, img.shape[0])


# ------------------------------------------------------------------------------------------------ random draws ----
def band_fraction(lo: torch.Tensor, hi: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Share of an H x W spectrum's bins with lo <= r < hi, per sample (at least one bin).

    White noise spreads its energy evenly over the bins, so scaling its standard deviation by 1/sqrt(share) makes
    `freq_sigma` the noise level *inside* the band: a narrow low band then gets as visible a change as a wide high one.
    """
    fy = torch.fft.fftfreq(height, device=lo.device)[:, None]
    fx = torch.fft.fftfreq(width, device=lo.device)[None, :]
    r = (fy.square() + fx.square()).sqrt().flatten() / 0.5
    inside = (r[None] >= lo[:, None]) & (r[None] < hi[:, None])
    return inside.float().mean(1).clamp_min(1.0 / (height * width))


def _rand(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Draw U[0, 1) of shape (n,) from `generator` (on its device) or the default RNG of `device`; return on device."""
    gdev = generator.device if generator is not None else device
    return torch.rand(n, generator=generator, device=gdev).to(device)


def _uniform(n: int, lo_hi, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Draw U[lo, hi] of shape (n,)."""
    lo, hi = (float(v) for v in lo_hi)
    return lo + (hi - lo) * _rand(n, generator, device)


def random_derangement(n: int, generator: torch.Generator | None, device: torch.device) -> torch.Tensor:
    """Return a random permutation of range(n) with no fixed point (a single random cycle) when n > 1."""
    gdev = generator.device if generator is not None else device
    order = torch.randperm(n, generator=generator, device=gdev)
    perm = torch.empty_like(order)
    perm[order] = order.roll(1)  # image order[k] takes its source from order[k-1]
    return perm.to(device)


def _setting(cfg: Any, key: str) -> Any:
    """Read `key` from a mapping or a namespace (Ultralytics args)."""
    return cfg[key] if isinstance(cfg, Mapping) else getattr(cfg, key)


def _pair(value: Any, key: str) -> tuple[float, float]:
    """Validate a [min, max] config list."""
    lo, hi = (float(v) for v in value)
    if not lo <= hi:
        raise ValueError(f"{key}={list(value)} must be [min, max] with min <= max")
    return lo, hi


# -------------------------------------------------------------------------------------------------- augmenter ----
class FrequencyAugment:
    """Sample-specific frequency augmentation of an Ultralytics detection batch, all images at once on its device.

    Per image it draws whether it is augmented (probability `freq_p`), takes its band from the label policy
    (`image_band_choice`) and a strength lam ~ U[freq_lam]; the source spectrum is the image plus Gaussian noise whose
    in-band standard deviation is freq_sigma (see `band_fraction`), or another image of the batch (a random derangement). Only the selected images go through the spectral
    op, so the others come back bit-identical. In "paper" mode the authors' noise/crop rule runs instead
    (`ikd_yolo.augment.paper`), which also changes `cls`, `bboxes` and `batch_idx`.

    The input dict is not modified: the call returns a shallow copy with the changed tensors replaced and a record
    `freq_info` (per-image tensors of length B on the batch's device) for logging and `ikd_yolo.show_aug`:
    spectral: mode, source, mix, selected, high, lam (0 where not selected), lo, hi, perm (shuffle source, else None);
    paper: mode, selected, high, noise, crop, crop_box (B, 4) normalised xywh of the crop window.

    Attributes:
        mode (str): "off", "spectral" or "paper".
        p (float): Spectral: probability an image is mixed. Paper: probability an all-small image gets noise.
        mix (str): "complex" or "amplitude" spectral mixing.
        source (str): "noise" or "shuffle".
        sigma (float): Noise standard deviation, pixel units in [0, 1].
        small (float): Small-box threshold side, original pixels.
        band_high (tuple[float, float]): Normalised radius band [lo, hi) for all-small images.
        band_low (tuple[float, float]): Band for images with a large box.
        lam (tuple[float, float]): Range of the per-image mixing strength.
        crop (tuple[float, float]): Paper: range of the crop height and width fractions.

    Examples:
        >>> aug = FrequencyAugment({**defaults, "freq_mode": "spectral", "freq_source": "shuffle"})
        >>> out = aug(batch, generator=torch.Generator().manual_seed(0))
        >>> out["img"].shape == batch["img"].shape
        True
    """

    def __init__(self, cfg: Mapping[str, Any]):
        """Read and validate the `freq_*` settings from a mapping (or an Ultralytics args namespace)."""
        missing = [k for k in FREQ_KEYS if (k not in cfg if isinstance(cfg, Mapping) else not hasattr(cfg, k))]
        if missing:
            raise KeyError(f"FrequencyAugment: missing settings {missing} (see configs/default.yaml)")
        self.mode = str(_setting(cfg, "freq_mode"))
        self.mix = str(_setting(cfg, "freq_mix"))
        self.source = str(_setting(cfg, "freq_source"))
        self.p = float(_setting(cfg, "freq_p"))
        self.sigma = float(_setting(cfg, "freq_sigma"))
        self.small = float(_setting(cfg, "freq_small"))
        self.band_high = _pair(_setting(cfg, "freq_band_high"), "freq_band_high")
        self.band_low = _pair(_setting(cfg, "freq_band_low"), "freq_band_low")
        self.lam = _pair(_setting(cfg, "freq_lam"), "freq_lam")
        self.crop = _pair(_setting(cfg, "freq_crop"), "freq_crop")
        for key, value, allowed in (("freq_mode", self.mode, MODES), ("freq_mix", self.mix, MIXES)):
            if value not in allowed:
                raise ValueError(f"{key}={value!r} is not one of {allowed}")
        if self.source not in SOURCES:
            raise ValueError(f"freq_source={self.source!r} is not one of {SOURCES}")
        if not 0.0 <= self.p <= 1.0:
            raise ValueError(f"freq_p={self.p} must be in [0, 1]")
        if self.sigma < 0 or self.small <= 0:
            raise ValueError(f"freq_sigma={self.sigma} must be >= 0 and freq_small={self.small} > 0")
        if not (0.0 <= self.lam[0] and self.lam[1] <= 1.0):
            raise ValueError(f"freq_lam={list(self.lam)} must lie in [0, 1]")
        if not (0.0 < self.crop[0] and self.crop[1] <= 1.0):
            raise ValueError(f"freq_crop={list(self.crop)} must lie in (0, 1]")

    def __repr__(self) -> str:
        """Summarise the settings."""
        if self.mode == "paper":
            return f"FrequencyAugment(mode=paper, p={self.p}, sigma={self.sigma}, small={self.small}, crop={self.crop})"
        return (
            f"FrequencyAugment(mode={self.mode}, p={self.p}, mix={self.mix}, source={self.source}, small={self.small}, "
            f"high={self.band_high}, low={self.band_low}, lam={self.lam})"
        )

    def __call__(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        """Augment a preprocessed detection batch (`img` float in [0, 1], (B, 3, H, W)).

        Args:
            batch (dict): Batch after `DetectionTrainer.preprocess_batch`.
            generator (torch.Generator | None): Source of randomness; per-image draws are made on its device and
                moved to the batch's, so a CPU generator reproduces the same choices on any device.

        Returns:
            (dict): The same batch in mode "off", else a shallow copy with `img` (and in paper mode the labels)
                replaced and `freq_info` added.
        """
        if self.mode == "off":
            return batch
        high = image_band_choice(batch, self.small)
        if self.mode == "paper":
            from .paper import paper_augment

            return paper_augment(batch, high, self.p, self.sigma, self.crop, generator)
        return self._spectral(batch, high, generator)

    def _spectral(self, batch: dict[str, Any], high: torch.Tensor, generator: torch.Generator | None) -> dict:
        """Band-limited spectral mixing of the selected images."""
        from ikd_yolo import ops

        x = batch["img"]
        b, dev = x.shape[0], x.device
        selected = _rand(b, generator, dev) < self.p
        lam = _uniform(b, self.lam, generator, dev)
        lo = torch.where(high, self.band_high[0], self.band_low[0]).float()
        hi = torch.where(high, self.band_high[1], self.band_low[1]).float()
        perm = random_derangement(b, generator, dev) if self.source == "shuffle" else None

        idx = selected.nonzero().squeeze(1)
        img = x
        if idx.numel():
            if perm is None:
                gen = self._noise_generator(generator, dev)
                sigma = self.sigma / band_fraction(lo[idx], hi[idx], *x.shape[-2:]).sqrt()
                out = ops.spectral_mix_noise(x[idx], sigma, lo[idx], hi[idx], lam[idx], self.mix, generator=gen)
            else:  # the sources of the selected images must come along: run on selected ∪ perm[selected]
                rows = selected.clone()
                rows[perm[idx]] = True
                u = rows.nonzero().squeeze(1)
                pos = torch.full((b,), -1, dtype=torch.long, device=dev)
                pos[u] = torch.arange(len(u), device=dev)
                sel_u = selected[u]
                perm_u = torch.where(sel_u, pos[perm[u]], torch.arange(len(u), device=dev))
                lam_u = torch.where(sel_u, lam[u], torch.zeros_like(lam[u]))
                out = ops.spectral_mix_shuffle(x[u], perm_u, lo[u], hi[u], lam_u, self.mix)[sel_u]
            img = x.index_copy(0, idx, out.to(x.dtype))

        info = {
            "mode": "spectral",
            "source": self.source,
            "mix": self.mix,
            "selected": selected,
            "high": high,
            "lam": torch.where(selected, lam, torch.zeros_like(lam)),
            "lo": lo,
            "hi": hi,
            "perm": perm,
        }
        return {**batch, "img": img, "freq_info": info}

    @staticmethod
    def _noise_generator(generator: torch.Generator | None, device: torch.device) -> torch.Generator | None:
        """Return `generator`, or, where the reference op must draw the noise on another device (torch.randn needs a
        generator there), a generator on the batch's device seeded from it."""
        from ikd_yolo import ops

        if generator is None or generator.device.type == device.type or ops.backend(device) != "reference":
            return generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        return torch.Generator(device).manual_seed(seed)
