"""Loss weights that fit the run they are in (`weights=auto`): measured on a few training batches before any step.

Published distillation weights span orders of magnitude because the terms sum over positions and channels: a pair of
models or an image size other than the one they were tuned for makes a term drown the detection loss or vanish. So
before the first optimizer step the trainer runs `AUTO_BATCHES` real training batches (the augmentations, the teacher,
the adversarial images, the untrained adapters) through the distiller at unit weight, without gradients, and sets

    weight = kd_share * (mean detection-loss item) / (mean value of the term at unit weight)

so that every term starts at `kd_share` detection-loss items per image (the detection loss has three items: box, cls
and dfl; YOLO26's box, cls and l1). Weights the preset or the user set are kept. The measured numbers replace "auto" in
the run's settings, so args.yaml, every checkpoint, a resume and every DDP rank use them without measuring again.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import torch
from ultralytics.utils import LOGGER, RANK, YAML, colorstr
from ultralytics.utils.torch_utils import unwrap_model

from .config import DEFAULTS, auto_keys
from .model import IKDModel

AUTO_BATCHES = 4  # training batches the measurement runs (the attack, if on, runs on each)


@torch.no_grad()
def measure_terms(model: IKDModel, batches: Iterable[dict[str, Any]]) -> tuple[dict[str, float], float, int]:
    """(mean of each distillation part at the distiller's current weights, mean detection-loss item, batches used).

    A weight still "auto" was built as 1.0 (`FeatureDistiller`), so its part's mean is the unit-weight value.

    Each batch must carry what training gives the model: the images, labels and teacher maps (and adversarial images
    with their teacher maps when the adversarial term is on).
    """
    sums: dict[str, float] = {}
    det, n = 0.0, 0
    for batch in batches:
        feats, preds = model.student_features(batch["img"])
        _, items = model.student.loss(batch, preds)
        det += sum(float(v) for v in items.values()) / len(items)  # box, cls and dfl (YOLO26: l1) items
        for k, v in model.distill_parts(batch, feats, preds).items():
            sums[k] = sums.get(k, 0.0) + float(v)
        n += 1
    if n == 0:
        raise ValueError("auto weights: the training set gave no batch to measure on")
    return {k: v / n for k, v in sums.items()}, det / n, n


def choose_weights(
    unit_values: Mapping[str, float], weight_keys: Mapping[str, str], detection_item: float, share: float
) -> dict[str, float]:
    """{config key: weight} so that each part starts at `share` detection-loss items.

    A part that measures 0 at unit weight (a term with nothing to compare yet) keeps weight 0 rather than infinity.
    """
    target = share * detection_item
    return {weight_keys[part]: (target / value if value > 0 else 0.0) for part, value in unit_values.items()}


class preserved_state:
    """Context manager: the student's BatchNorm statistics and every random generator as they were on entry.

    The measurement runs the student in training mode, as training does, but must leave no trace: the first real
    step then starts from the same weights, statistics and random draws as a run without it.
    """

    def __init__(self, model: torch.nn.Module) -> None:
        self.model = model

    def __enter__(self) -> None:
        import random

        import numpy as np

        self.buffers = {k: v.clone() for k, v in self.model.state_dict().items() if not v.is_floating_point()
                        or "running" in k}
        self.rng = (torch.get_rng_state(), torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                    np.random.get_state(), random.getstate())

    def __exit__(self, *exc: Any) -> None:
        import random

        import numpy as np

        self.model.load_state_dict(self.buffers, strict=False)
        cpu, cuda, numpy_state, python_state = self.rng
        torch.set_rng_state(cpu)
        if cuda is not None:
            torch.cuda.set_rng_state_all(cuda)
        np.random.set_state(numpy_state)
        random.setstate(python_state)


def set_auto_weights(trainer: Any) -> dict[str, Any] | None:
    """weights=auto for an `IKDTrainer` after its set-up: measure the unset weights on rank 0 (every DDP rank then
    uses its numbers), give them to the distiller and its EMA, and store them in the run's settings and args.yaml.

    Returns what this process measured (`IKDTrainer.auto_weight_report`: the values, the detection-loss item, the
    batches, the weights and their keys), or None on the other ranks.
    """
    model = unwrap_model(trainer.model)
    cfg = trainer.distill
    measured, report = None, None
    trainer.epoch = trainer.start_epoch  # the measurement sees the first epoch's augmentations (the loop sets it later)
    if RANK in {-1, 0}:
        with preserved_state(model):
            values, det, n = measure_terms(model, measurement_batches(trainer, AUTO_BATCHES))
        keys = {part: key for part, key in model.distiller.weight_keys().items() if key in auto_keys(cfg)}
        streams = [part for part in keys if part in model.distiller.stream_weights]
        units = {part: values[part] for part in keys if part not in streams}  # an auto term was built at weight 1.0
        measured = choose_weights(units, keys, det, cfg["kd_share"])
        for name in streams:  # a head-aware stream's term is the base's parts: measured at the base's new weights
            units[name] = model.distiller.stream_at(name, values, measured)
            measured.update(choose_weights({name: units[name]}, keys, det, cfg["kd_share"]))
        report = {"values": values, "detection_item": det, "batches": n, "weights": measured, "keys": keys}
        for part, key in keys.items():
            LOGGER.info(f"{colorstr('ikd-yolo:')} auto weight {key}={measured[key]:.3g}: {part} is "
                        f"{units[part]:.4g} at unit weight, one detection-loss item {det:.3g} ({n} batches, "
                        f"kd_share {cfg['kd_share']:g})")
    if trainer.world_size > 1:
        import torch.distributed as dist

        box = [measured]
        dist.broadcast_object_list(box, src=0)
        measured = box[0]
    for key in auto_keys(cfg):  # a term this run does not compute keeps the fixed default
        cfg[key] = measured.get(key, DEFAULTS[key])
        setattr(trainer.args, key, cfg[key])
    for distiller in (model.distiller, trainer.ema.ema.distiller):
        distiller.set_weights(cfg)
    if RANK in {-1, 0}:
        YAML.save(trainer.save_dir / "args.yaml", vars(trainer.args))
    return report


def measurement_batches(trainer: Any, n: int) -> Iterator[dict]:
    """`n` training batches of an `IKDTrainer` for the weight measurement, from a loader of their own; the training
    loader's order and the dataset's mosaic buffer are as before afterwards (with the random state `preserved_state`
    restores), and a stream with a loader of its own (the cached attack) reads a copy of it seeded apart."""
    from ultralytics.data import build_dataloader

    dataset = trainer.train_loader.dataset
    # mosaic's buffer of recently loaded images; a cache=ram image store is not a list, and loading never changes it
    kept = {name: list(value) for name in ("buffer", "ims", "im_hw0", "im_hw")
            if isinstance(value := getattr(dataset, name), list)}
    loaders = trainer.loaders
    loader = build_dataloader(dataset, trainer.batch_size, workers=0, shuffle=True, rank=-1)
    trainer.loaders = {name: stream.reseeded(trainer.args.seed + 1) for name, stream in loaders.items()}
    try:
        for _, raw in zip(range(n), (b for _ in iter(int, 1) for b in loader)):  # a small set repeats
            yield trainer.distillation_batch(raw, trainer.streams)
    finally:
        for name, values in kept.items():
            getattr(dataset, name)[:] = values
        trainer.loaders = loaders
