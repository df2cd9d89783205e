"""Sample-specific frequency augmentation of a training batch (IKD part 1).

Per image, the label policy (`policy.image_band_choice`) picks the HIGH band for images whose boxes are all small and
the LOW band for images with a large box; the selected images have that band of their spectrum mixed with a noise or
another image's spectrum through `ikd_yolo.ops`.

Modes (config key `freq_mode`): "spectral" (band-limited spectral mixing through `ikd_yolo.ops`, the project's
generalisation), "paper" (the authors' Gaussian-noise / random-crop rule, see `ikd_yolo.augment.paper`). With
freq_mode=off there is no augmenter: the trainer builds none.

Examples:
    >>> from ikd_yolo.config import resolve_distill_config
    >>> aug = FrequencyAugment.from_config(resolve_distill_config({"distill": "ikd-fgd-full"}))  # validated settings
    >>> batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.zeros(2, 1),
    ...          "bboxes": torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.8, 0.8]]), "ori_shape": [(64, 64)] * 2}
    >>> batch = aug(batch, generator=torch.Generator(batch["img"].device).manual_seed(0))
    >>> batch["freq_info"]["high"]  # the all-small image takes the high band, the one with a large box the low band
    tensor([ True, False])
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import torch

from .. import ops
from ..config import Configured
from .paper import paper_augment
from .policy import image_band_choice
from .sampling import rand, random_derangement, uniform


@dataclass(frozen=True)
class FrequencySettings:
    """The freq_* keys of configs/default.yaml, validated by `ikd_yolo.config` (field = key without `freq_`)."""

    PREFIX: ClassVar[str] = "freq_"
    mode: str
    apply: str  # replace: the mixed images are the batch; view / shared: a stream of their own (`ikd_yolo.streams`)
    p: float
    mix: str
    source: str
    sigma: float
    small: int
    band_high: tuple[float, float]
    band_low: tuple[float, float]
    lam: tuple[float, float]
    crop: tuple[float, float]


# ----------------------------------------------------------------------------------------------- noise level ----
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


# -------------------------------------------------------------------------------------------------- augmenter ----
class FrequencyAugment(Configured):
    """Sample-specific frequency augmentation of an Ultralytics detection batch, all images at once on its device.

    Per image it draws whether it is augmented (probability `freq_p`), takes its band from the label policy
    (`image_band_choice`) and a strength lam ~ U[freq_lam]; the source spectrum is the image plus Gaussian noise whose
    in-band standard deviation is freq_sigma (see `band_fraction`), or another image of the batch (a random
    derangement). Only the selected images go through the spectral op, so the others come back bit-identical. In "paper"
    mode the authors' noise/crop rule runs instead (`ikd_yolo.augment.paper`), which also changes `cls`, `bboxes` and
    `batch_idx`.

    The input dict is not modified: the call returns a shallow copy with the changed tensors replaced and a record
    `freq_info` (per-image tensors of length B on the batch's device) for logging and `ikd_yolo.show_aug`:
    spectral: mode, source, mix, selected, high, lam (0 where not selected), lo, hi, perm (shuffle source, else None);
    paper: mode, selected, high, noise, crop, crop_box (B, 4) normalised xywh of the crop window.

    Attributes:
        settings (FrequencySettings): mode, p, mix, source, sigma, small, band_high, band_low, lam, crop (the freq_*
            keys; see configs/default.yaml for each one's meaning).

    Examples:
        >>> from ikd_yolo.config import resolve_distill_config
        >>> cfg = resolve_distill_config({"distill": "ikd-fgd-full", "freq_source": "shuffle"})
        >>> aug = FrequencyAugment.from_config(cfg)
        >>> batch = {"img": torch.rand(2, 3, 64, 64), "batch_idx": torch.tensor([0.0, 1.0]), "cls": torch.zeros(2, 1),
        ...          "bboxes": torch.tensor([[0.5, 0.5, 0.1, 0.1], [0.5, 0.5, 0.8, 0.8]]), "ori_shape": [(64, 64)] * 2}
        >>> out = aug(batch, generator=torch.Generator().manual_seed(0))
        >>> out["img"].shape == batch["img"].shape
        True
    """

    SETTINGS = FrequencySettings

    def __init__(self, settings: FrequencySettings) -> None:
        """Keep the validated settings; freq_mode=off has no augmenter (the trainer builds none)."""
        if settings.mode == "off":
            raise ValueError("freq_mode=off has no frequency augmentation to build")
        super().__init__(settings)

    def __repr__(self) -> str:
        """Summarise the settings."""
        s = self.settings
        if s.mode == "paper":
            return f"FrequencyAugment(mode=paper, p={s.p}, sigma={s.sigma}, small={s.small}, crop={s.crop})"
        return (
            f"FrequencyAugment(mode={s.mode}, p={s.p}, mix={s.mix}, source={s.source}, small={s.small}, "
            f"high={s.band_high}, low={s.band_low}, lam={s.lam})"
        )

    def __call__(self, batch: dict[str, Any], generator: torch.Generator | None = None) -> dict[str, Any]:
        """Augment a preprocessed detection batch (`img` float in [0, 1], (B, 3, H, W)).

        Args:
            batch (dict): Batch after `DetectionTrainer.preprocess_batch`.
            generator (torch.Generator | None): Source of randomness; per-image draws are made on its device and
                moved to the batch's, so a CPU generator reproduces the same choices on any device.

        Returns:
            (dict): A shallow copy of the batch with `img` (and in paper mode the labels) replaced and `freq_info`
                added.
        """
        s = self.settings
        high = image_band_choice(batch, s.small)
        if s.mode == "paper":
            return paper_augment(batch, high, s.p, s.sigma, s.crop, generator)
        return self._spectral(batch, high, generator)

    def _spectral(self, batch: dict[str, Any], high: torch.Tensor, generator: torch.Generator | None) -> dict:
        """Band-limited spectral mixing of the selected images."""
        s = self.settings
        x = batch["img"]
        b, dev = x.shape[0], x.device
        selected = rand(b, generator, dev) < s.p
        lam = uniform(b, s.lam, generator, dev)
        lo = torch.where(high, s.band_high[0], s.band_low[0]).float()
        hi = torch.where(high, s.band_high[1], s.band_low[1]).float()
        perm = random_derangement(b, generator, dev) if s.source == "shuffle" else None

        idx = selected.nonzero().squeeze(1)
        img = x
        if idx.numel():
            if perm is None:
                gen = self._noise_generator(generator, dev)
                sigma = s.sigma / band_fraction(lo[idx], hi[idx], *x.shape[-2:]).sqrt()
                out = ops.spectral_mix_noise(x[idx], sigma, lo[idx], hi[idx], lam[idx], s.mix, generator=gen)
            else:  # the sources of the selected images must come along: run on selected ∪ perm[selected]
                rows = selected.clone()
                rows[perm[idx]] = True
                u = rows.nonzero().squeeze(1)
                pos = torch.full((b,), -1, dtype=torch.long, device=dev)
                pos[u] = torch.arange(len(u), device=dev)
                sel_u = selected[u]
                perm_u = torch.where(sel_u, pos[perm[u]], torch.arange(len(u), device=dev))
                lam_u = torch.where(sel_u, lam[u], torch.zeros_like(lam[u]))
                out = ops.spectral_mix_shuffle(x[u], perm_u, lo[u], hi[u], lam_u, s.mix)[sel_u]
            img = x.index_copy(0, idx, out.to(x.dtype))

        info = {
            "mode": "spectral",
            "source": s.source,
            "mix": s.mix,
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
        if generator is None or generator.device.type == device.type or ops.backend(device) != "reference":
            return generator
        seed = int(torch.randint(0, 2**62, (1,), generator=generator, device=generator.device))
        return torch.Generator(device).manual_seed(seed)
