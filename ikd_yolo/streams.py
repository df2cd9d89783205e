"""IKD's extra image streams as one design: what a stream is (`Stream`), which streams a run distils (`streams_of`),
and what one step of a stream hands the model (`StreamBatch`).

IKD (Liang et al., ACM MM 2023, arXiv:2209.09841) distils the teacher not only on the training batch but on inputs
the labels do not describe. Each such input set is a stream: a record of where its images come from, whether they are
attacked or frequency-mixed, when it runs, which parts of the base loss it distils, its weight and how its positions
are weighted. The trainer asks each stream for its images of a step (`ikd_yolo.trainer`), the model computes every
stream's terms in one loop (`ikd_yolo.model.IKDModel.stream_parts`); adding a stream is a record here and its source.

    adversarial, online   the first images of the batch, attacked against the teacher (the authors' idea, on the
                          device); positions weighted by the teacher's scores on the clean images
    adversarial, cached   images of a loader of its own: each training image attacked once per teacher and stored
                          (the authors' scheme, `augment/adv_cache.py`); weighted by the teacher's scores on them
    clean                 images of a loader of its own, not attacked (adv_mode=clean): the training images
                          letterboxed as validation reads them (or augmented as training does, stream_aug=train);
                          weighted by the teacher's scores on them; loss column stream_loss
    unlabelled            images nobody labelled (unlabeled=, stream_source=unlabeled|both) in that loader, clean or
                          attacked (against the teacher's own detections of them)
    frequency view        the batch's images the frequency augmentation mixed (freq_apply=view); weighted by the
                          clean scores
    shared                the online attack started from the mixed images (freq_apply=shared): one stream, both parts

Examples:
    >>> from ikd_yolo.config import resolve_distill_config
    >>> [s.name for s in streams_of(resolve_distill_config({"distill": "ikd-score"}))]
    ['adv']
    >>> adv, = streams_of(resolve_distill_config({"distill": "ikd-score", "adv_mode": "cached", "adv_every": 2}))
    >>> adv.source, adv.attack, adv.every, adv.weigh_by, adv.parts, adv.images
    ('loader', 'cached', 2, 'own', ('feat', 'cls', 'box', 'kpt'), 'train')
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping

import torch

from .config import adversarial_term_on, frequency_view_on, stream_attack, stream_images
from .losses import BASE_LOSSES

STREAMS_KEY = "ikd_streams"  # the batch's one stream key: {stream name: StreamBatch} of the streams this step runs

# which base parts the adversarial stream distils, by `adv_distill`, where the base loss is head-aware
ADV_DISTILLED = {"all": ("feat", "cls", "box", "kpt"), "features": ("feat",), "predictions": ("cls", "box", "kpt")}


@dataclass(frozen=True)
class Stream:
    """One extra image stream of a run, from its validated settings (`streams_of`).

    Attributes:
        name (str): Its loss column (`<name>_loss`) and the prefix of its parts (`adv.feat`, `freq.cls`, ...).
        source (str): "batch": images of the training batch, at their positions (its labels and clean teacher
            scores apply); "loader": images of a loader of its own (the adversarial cache, letterboxed images).
        attack (str): "online" (attacked as they are trained on), "cached" (attacked once, stored) or "none".
        mix (bool): The frequency augmentation mixes them first (the view, the shared form).
        every (int): It runs on every `every`-th training step.
        frac (float): The share of the batch it takes (of a batch source: its first round(frac * B) images); the view
            takes the images the augmentation mixed.
        parts (tuple[str, ...] | None): The parts of a head-aware base it distils (None: every part of the base).
        weight_key (str): The settings key of its weight.
        weigh_by (str): "clean": its positions weighted by the teacher's scores on the clean images they came from;
            "own": by the teacher's scores on the stream's images themselves.
        feature_mse (bool): The authors' adversarial term, sum((P(F_s) - F_t)^2) / N per level, instead of the base's
            parts (a feature base loss: FGD, MGD, ...).
        images (str): What a loader reads: "train" (the training split), "unlabeled" (unlabeled=), "both"; "batch"
            for a stream of the batch's images.
        augment (bool): A loader's images carry the training augmentations (mosaic, flips, colour) instead of being
            letterboxed as validation reads them.
    """

    name: str
    source: str
    attack: str
    mix: bool
    every: int
    frac: float
    parts: tuple[str, ...] | None
    weight_key: str
    weigh_by: str
    feature_mse: bool
    images: str
    augment: bool

    @property
    def term(self) -> str:
        """Its loss column."""
        return f"{self.name}_loss"

    def runs_at(self, step: int) -> bool:
        """Whether it runs on training step `step` (counting from 0)."""
        return step % self.every == 0

    def size(self, batch_size: int) -> int:
        """How many images it takes of a batch of `batch_size`: round(frac * B), at least one when frac > 0."""
        if self.frac == 0 or batch_size == 0:
            return 0
        return min(batch_size, max(1, round(self.frac * batch_size)))


def head_aware(cfg: Mapping[str, Any]) -> bool:
    """Whether the base loss of `cfg` also distils the head (and so needs the teacher's head outputs)."""
    return cfg["kd_loss"] != "none" and BASE_LOSSES[cfg["kd_loss"]].NEEDS_HEAD


def streams_of(cfg: Mapping[str, Any]) -> tuple[Stream, ...]:
    """The streams a validated config distils, in loss-column order: the adversarial stream, the frequency view."""
    out = []
    aware = head_aware(cfg)
    if adversarial_term_on(cfg):
        attack, images = stream_attack(cfg), stream_images(cfg)
        on_batch = attack == "online" and images == "train"  # the online attack of the training batch's images
        out.append(Stream(
            name="adv" if attack != "none" else "stream", source="batch" if on_batch else "loader", attack=attack,
            mix=on_batch and cfg["freq_mode"] != "off" and cfg["freq_apply"] == "shared", every=int(cfg["adv_every"]),
            frac=float(cfg["adv_frac"]), parts=ADV_DISTILLED[cfg["adv_distill"]] if aware else None,
            weight_key="adv_weight", weigh_by="clean" if on_batch else "own", feature_mse=not aware,
            images="batch" if on_batch else images, augment=cfg["stream_aug"] == "train"))
    if frequency_view_on(cfg):
        out.append(Stream(name="freq", source="batch", attack="none", mix=True, every=1, frac=1.0, parts=None,
                          weight_key="freq_weight", weigh_by="clean", feature_mse=False, images="batch",
                          augment=False))
    return tuple(out)


@dataclass
class StreamBatch:
    """What one step of a stream hands the model: its images, the teacher's maps (and head) of them, the teacher
    head whose scores weight their positions, and which images of the training batch they are (a batch source)."""

    img: torch.Tensor  # (K, C, H, W) in [0, 1]
    teacher_feats: list[torch.Tensor]
    teacher_head: dict[str, torch.Tensor] | None
    weigher: dict[str, torch.Tensor] | None  # None with a feature base
    index: torch.Tensor | None  # (K,) indices into the training batch; None for a loader's images
