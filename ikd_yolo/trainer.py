"""IKDTrainer: Ultralytics' DetectionTrainer with a frozen teacher, IKD augmentations and distillation losses.

Inconsistent Knowledge Distillation (Liang et al., ACM MM 2023, arXiv:2209.09841): distil the teacher's features on
the training batch (FGD/MGD/CWD/MSE) and, during the first part of training, on inputs whose content the labels do not
describe: frequency-mixed images (per image, from its object scale; by default they replace the batch as the authors'
augmentation replaced the training image, so they feed the detection loss too; with freq_apply=view they are a
distillation-only stream instead; with freq_apply=shared the online attack starts from them), and an extra adversarial
copy that attacks the teacher, distilled on its own.
This class only wires those parts into Ultralytics' loop; each lives in its own module.
"""

from __future__ import annotations

from contextlib import contextmanager
from copy import copy
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn
from ultralytics.models.yolo.detect import DetectionTrainer
from ultralytics.models.yolo.obb import OBBTrainer
from ultralytics.models.yolo.pose import PoseTrainer
from ultralytics.models.yolo.segment import SegmentationTrainer
from ultralytics.utils import DEFAULT_CFG, LOGGER, RANK, YAML, colorstr
from ultralytics.utils.torch_utils import unwrap_model

from .augment.attack import AdversarialAttack, class_loss_criterion
from .augment.frequency import FrequencyAugment
from .augment.image_stream import AugmentedImages, CachedImages, ImageStream, LetterboxedImages
from .augment.pseudo_labels import teacher_labels
from .data.unlabeled import UnlabeledImages
from .auto_weights import set_auto_weights
from .checkpoints import (
    TRUST_KEY, atomic_save, atomic_strip_optimizer, attach_state, load_pt, read_state, remove_state, staged_writes,
    strip_state,
)
from .cfg_files import cfg_file_keys, read_cfg_file
from .config import DISTILL_KEYS, auto_keys, keypoints_distilled, split_distill_args, stream_asked
from .hooks import detect_input_layers
from .inputs import StudentError, TeacherError, wrapped_student
from .model import TEACHER_FEATS, TEACHER_HEAD, FeatureDistiller, IKDModel, level_channels
from .preflight import preflight
from .streams import STREAMS_KEY, Stream, StreamBatch, head_aware, streams_of
from .teacher import FrozenTeacher


def resync_nonfinite(ema: nn.Module, live: nn.Module) -> None:
    """Copy each EMA tensor that is no longer finite from the live model, where that one is finite.

    One NaN reaching the EMA stays there forever (ema = d * ema + (1 - d) * model); Ultralytics repairs its own EMA
    the same way before saving, but by the live model's keys, which an IKD wrapper names differently.
    """
    live_state = live.state_dict()
    for k, v in ema.state_dict().items():
        if v.is_floating_point() and not torch.isfinite(v).all() and torch.isfinite(live_state[k]).all():
            v.copy_(live_state[k])


def without_file_keys(overrides: dict[str, Any]) -> dict[str, Any]:
    """`YOLO(...).train(cfg=file, ...)` gives the trainer the file's keys merged under the call's: of those, keep only
    what a file may set (`cfg_files.cfg_file_keys`). A key whose value differs from the file's is the call's own."""
    if not overrides.get("cfg"):
        return overrides
    loaded = read_cfg_file(overrides["cfg"])
    given = {k: v for k, v in overrides.items() if k not in loaded or v != loaded[k]}
    from_file = cfg_file_keys(loaded, given, f"cfg={overrides['cfg']}")
    return {**{k: v for k, v in from_file.items() if k in overrides}, **given}


class IKDTrainer(DetectionTrainer):
    """Detection trainer that distils a frozen teacher into the student with IKD; the parts for every task.

    `IKDTrainer(...)` builds the trainer of the run's task (`ikd_trainer_for`: `IKDSegmentationTrainer`,
    `IKDPoseTrainer`, `IKDOBBTrainer` for those students), so `trainer=IKDTrainer` fits any student, as Ultralytics'
    own `YOLO(...).train()` picks its trainer by the model's task. Those subclasses add nothing but their Ultralytics
    base: the student's task loss, validator and checkpoint are Ultralytics' own.

    Every distillation setting is an ordinary trainer argument (see configs/default.yaml), so Ultralytics' DDP
    launcher, which rebuilds the trainer from `vars(args)`, reproduces the same run in every rank.

    Examples:
        >>> from ultralytics import YOLO
        >>> YOLO("yolo11n.yaml").train(  # needs a trained teacher.pt and a dataset  # doctest: +SKIP
        ...     trainer=IKDTrainer, teacher="teacher.pt", distill="ikd-score", data="data.yaml")
    """

    TASK = "detect"

    def __new__(cls, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None) -> IKDTrainer:
        if cls is IKDTrainer:
            cls = ikd_trainer_for(run_task(cfg, overrides))
        return super().__new__(cls)

    def __init__(self, cfg=DEFAULT_CFG, overrides: dict | None = None, _callbacks: dict | None = None) -> None:
        explicit, overrides = split_distill_args(without_file_keys(dict(overrides or {})))
        overrides["task"] = self.TASK  # as the task's Ultralytics trainer does, but before preflight names the folder
        if overrides.get("distill_model"):
            raise TeacherError("IKDTrainer takes the teacher as teacher=..., not Ultralytics' distill_model=")
        # every check before Ultralytics prints or creates anything
        distill, teacher, self.unlabeled = preflight(overrides, explicit)
        super().__init__(cfg, overrides, _callbacks)
        self.distill = distill
        for k, v in distill.items():
            setattr(self.args, k, v)
        if self.args.compile:
            LOGGER.warning("'compile' is not supported with distillation and will be disabled.")
            self.args.compile = False
        if RANK in {-1, 0}:
            YAML.save(self.save_dir / "args.yaml", vars(self.args))
        self.teacher = FrozenTeacher(teacher, keypoints=keypoints_distilled(distill))
        self.streams = streams_of(distill)
        self.head_aware = head_aware(distill)
        self.freq_augment = FrequencyAugment.from_config(distill) if distill["freq_mode"] != "off" else None
        attacked = any(stream.attack != "none" for stream in self.streams)
        self.attack = AdversarialAttack.from_config(distill) if attacked else None
        if stream_asked(distill) and not any(s.weight_key == "adv_weight" for s in self.streams):
            LOGGER.warning("ikd-yolo: adv_steps=0 makes no adversarial images, so the adversarial term is off "
                           "(set adv_mode=off to say so, or adv_steps>=1 to attack)")
        self.teacher_criterion = None  # built on the first attack, once the teacher sits on its device
        self.loaders = {}  # {stream name: its images' loader} for streams of a loader source, opened in _setup_train
        self.auto_weight_report = None  # weights=auto: what this process measured (rank 0 only)
        self._step = 0

    # ---- model -------------------------------------------------------------------------------------------------
    def get_model(self, cfg=None, weights=None, verbose: bool = True):
        """Ultralytics' model of the task; weights saved inside a distillation wrapper give their student (logged)."""
        student = wrapped_student(weights)
        if student is not None:
            LOGGER.info(
                f"{colorstr('ikd-yolo:')} the student checkpoint holds a {type(weights).__name__}: training its "
                "student, without the saved teacher or distillation layers"
            )
            weights = student
        return super().get_model(cfg=cfg, weights=weights, verbose=verbose)

    def setup_model(self):
        """Build or load the student as Ultralytics does, then wrap it with the distiller (restored on resume)."""
        if isinstance(self.model, (str, Path)) and str(self.model).lower().endswith(".pt") and not self.resume:
            from ultralytics.nn.tasks import load_checkpoint

            weights, _ = load_checkpoint(self.model)  # Ultralytics would rebuild a DistillationModel without teacher
            if wrapped_student(weights) is not None:
                self.model = self.get_model(cfg=weights.yaml, weights=weights, verbose=RANK in {-1, 0})
        ckpt = super().setup_model()
        student = self.model
        distiller = FeatureDistiller(
            level_channels(student, detect_input_layers(student)),
            level_channels(self.teacher.model, self.teacher.recorder.layers),
            self.distill,
        )
        self.model = IKDModel(student, distiller)
        if ckpt and self.resume:
            self.model.distiller.load_state_dict(read_state(ckpt)["distiller"])
        self.teacher.to(self.device)
        self.teacher.model.args = self.args  # the attack uses the teacher's own criterion, which reads hyp gains
        return ckpt

    # ---- training step -------------------------------------------------------------------------------------
    @property
    def augmentation_phase(self) -> bool:
        """True during the first `ikd_phase` of the epochs, when IKD's augmentations run."""
        return self.epoch < int(self.distill["ikd_phase"] * self.epochs + 0.5)  # round half up, not to even

    def preprocess_batch(self, batch: dict) -> dict:
        """Normalise as Ultralytics does, then add the teacher's maps and the images of the streams this step runs."""
        running = [s for s in self.streams if s.runs_at(self._step)] if self.augmentation_phase else []
        self._step += 1
        return self.distillation_batch(batch, running)

    def distillation_batch(self, batch: dict, streams: list[Stream] | tuple[Stream, ...]) -> dict:
        """A loader batch as the distilled model takes it, with the images of `streams`: Ultralytics' preprocessing,
        then `_distillation_inputs` (training and the `weights=auto` measurement)."""
        return self._distillation_inputs(super().preprocess_batch(batch), streams)

    def _distillation_inputs(self, batch: dict, streams: list[Stream] | tuple[Stream, ...]) -> dict:
        """The batch IKD trains on: frequency-mixed in the augmentation phase (freq_apply=replace), with the teacher's
        maps (and head), and each stream's images with the teacher's of them (`STREAMS_KEY`)."""
        phase = self.augmentation_phase and self.freq_augment is not None
        if phase and self.freq_augment.settings.apply == "replace":
            batch = self.freq_augment(batch)
        mixed = self.freq_augment(batch) if phase and any(s.mix for s in streams) else None
        feats, images = None, {}
        for stream in streams:
            got = self._stream_images(stream, batch, mixed, need_clean_maps=feats is None)
            if got is not None:
                (img, index), clean = got
                feats = clean if clean is not None else feats
                images[stream] = img, index
        batch[TEACHER_FEATS] = self.teacher.features(batch["img"]) if feats is None else feats
        if self.head_aware:
            batch[TEACHER_HEAD] = self.teacher.head(batch[TEACHER_FEATS])
        if images:
            batch[STREAMS_KEY] = {stream.name: self._stream_batch(stream, img.to(batch["img"].dtype), index, batch)
                                  for stream, (img, index) in images.items()}
        return batch

    def _stream_images(self, stream: Stream, batch: dict, mixed: dict | None, need_clean_maps: bool):
        """((images, their indices in the batch or None), the teacher's clean maps of the batch when the attack's
        first forward gave them, else None) of one stream this step; None when it has no image this step."""
        k = stream.size(batch["img"].shape[0])
        if stream.attack == "online" and stream.source == "batch":
            start = mixed if stream.mix and mixed is not None else batch
            layers = self.teacher.recorder.layers if start is batch and need_clean_maps else None
            x, clean = self.attack.with_features(self.teacher.model, self._criterion(), start, layers, k)
            return None if x is None else ((x, torch.arange(k, device=x.device)), clean)
        if stream.source == "loader":
            if not k:
                return None
            x = self.loaders[stream.name].next(k, self.device)
            if stream.attack == "online":  # attacked against the teacher's own detections of them
                x = self.attack(self.teacher.model, self._criterion(), {"img": x, **teacher_labels(self.teacher.model,
                                                                                                      x)})
            return (x, None), None
        if mixed is None:  # the frequency view outside the augmentation phase
            return None
        index = mixed["freq_info"]["selected"].nonzero().squeeze(1)
        return ((mixed["img"][index], index), None) if index.numel() else None

    def _criterion(self) -> Any:
        """The teacher's class-loss criterion the attack ascends, built on the first attack (the teacher then sits
        on its device)."""
        if self.teacher_criterion is None:
            self.teacher_criterion = class_loss_criterion(self.teacher.model)
        return self.teacher_criterion

    def _stream_batch(self, stream: Stream, img: torch.Tensor, index: torch.Tensor | None, batch: dict) -> StreamBatch:
        """A stream's images with the teacher's maps and head of them, and the head whose scores weight their
        positions: the teacher's scores on the clean images they came from, or on themselves."""
        feats = self.teacher.features(img)
        head = weigher = None
        if self.head_aware:
            head = self.teacher.head(feats)
            clean = stream.weigh_by == "clean" and index is not None
            weigher = {name: value[index] for name, value in batch[TEACHER_HEAD].items()} if clean else head
        return StreamBatch(img, feats, head, weigher, index)

    def _setup_train(self):
        """Ultralytics' set-up, then the loaders of the streams that read images of their own (the adversarial cache,
        built by every rank if any image misses), then the weights=auto measurement."""
        super()._setup_train()  # a resumed run's start_epoch is known from here
        for stream in self.streams:
            if stream.source == "loader":
                self.loaders[stream.name] = ImageStream(self._loader_images(stream), self.args.workers,
                                                        self.args.seed, drawn=self._drawn_before(stream),
                                                        rank=RANK, world=self.world_size)
        if auto_keys(self.distill):
            self.auto_weight_report = set_auto_weights(self)

    def _loader_images(self, stream: Stream) -> torch.utils.data.Dataset:
        """The images a stream of a loader of its own reads: the adversarial cache, the training split augmented as
        training does, or letterboxed: the training split, the unlabelled images, or both."""
        if stream.attack == "cached":
            return self._cached_images()
        if stream.augment:
            return AugmentedImages(self.build_dataset(self.data["train"], mode="train", batch=self.batch_size))
        sets = []
        if stream.images in ("train", "both"):
            sets.append(self._letterboxed_train())
        if stream.images in ("unlabeled", "both"):
            sets.append(UnlabeledImages(self.unlabeled, self.args.imgsz))
        return LetterboxedImages(sets[0] if len(sets) == 1 else torch.utils.data.ConcatDataset(sets), self.args.fliplr)

    def _drawn_before(self, stream: Stream) -> int:
        """The batches a loader stream handed out before this run's start epoch (0 for a new run): on every
        `every`-th step of the epochs of the augmentation phase."""
        steps, phase_epochs = len(self.train_loader), int(self.distill["ikd_phase"] * self.epochs + 0.5)
        done = min(self.start_epoch, phase_epochs) * steps  # the phase's first steps, all done
        return (done + stream.every - 1) // stream.every

    def _cached_images(self) -> CachedImages:
        """The adversarial cache of this teacher and training split, checked and completed (under DDP every rank
        attacks its share)."""
        from .augment.adv_cache import open_attack_cache

        cache, stats = open_attack_cache(self.teacher.model, self.data, self.args.imgsz, self.attack.settings,
                                         self.device, self.batch_size, progress=RANK in {-1, 0}, args=self.args)
        converted = f", {stats['converted']} converted" if stats["converted"] else ""
        LOGGER.info(f"{colorstr('ikd-yolo:')} adversarial cache {cache.folder}: {stats['total']} images "
                    f"({stats['images']} attacked now{converted}, {stats['seconds']:.0f}s)")
        return CachedImages(cache, self.args.fliplr)

    def _letterboxed_train(self) -> torch.utils.data.Dataset:
        """The training split letterboxed to the training size, as the cache's attack reads it (no augmentation)."""
        from .augment.adv_cache import attack_dataset, label_task

        return attack_dataset(self.data, self.args.imgsz, self.batch_size, label_task(self.teacher.model, self.data))

    def _close_dataloader_mosaic(self):
        """Close mosaic in the training loader as Ultralytics does, and in a stream of augmented training images."""
        super()._close_dataloader_mosaic()
        for stream in self.loaders.values():
            if isinstance(stream.dataset, AugmentedImages):
                stream.dataset.close_mosaic(hyp=copy(self.args))

    # ---- validation and checkpoints ------------------------------------------------------------------------
    @contextmanager
    def _student_as_ema(self) -> Iterator[nn.Module]:
        """Let Ultralytics see the EMA student alone (validation, checkpoints), then put the wrapper back."""
        wrapper = self.ema.ema
        self.ema.ema = wrapper.student
        try:
            yield wrapper
        finally:
            self.ema.ema = wrapper

    def get_validator(self):
        """Ultralytics' validator of the task, built from the Ultralytics keys of `args` (it rejects unknown keys)."""
        with self._ultralytics_args():
            return super().get_validator()

    def validate(self):
        """Validate the EMA student exactly as a plain Ultralytics run would."""
        with self._student_as_ema():
            return super().validate()

    def save_model(self) -> bool:
        """Write plain Ultralytics checkpoints; the distiller weights and settings ride along as a dict of tensors.

        The saved model is the student `DetectionModel` and `train_args` holds only Ultralytics keys, so a process
        without ikd_yolo loads, validates and exports `last.pt`/`best.pt`; resume reads `model.ikd_state`.
        """
        live = unwrap_model(self.model)
        resync_nonfinite(self.ema.ema, live)  # the whole wrapper: the distiller's EMA can be poisoned too
        with self._student_as_ema() as wrapper, self._ultralytics_args(), self._model_as(live.student):
            student = wrapper.student
            student.args = self.args
            attach_state(student, self.distill, wrapper.distiller)
            try:
                with self._staged_checkpoints():
                    return super().save_model()
            finally:
                remove_state(student)

    @contextmanager
    def _staged_checkpoints(self) -> Iterator[None]:
        """Let Ultralytics write its checkpoints into a hidden folder, then rename each over its target: a full disk
        or a kill mid-write leaves the previous last.pt / best.pt whole (Ultralytics writes them in place)."""
        paths = self.wdir, self.last, self.best
        with staged_writes(self.wdir) as stage:
            self.wdir, self.last, self.best = stage, stage / self.last.name, stage / self.best.name
            try:
                yield
            finally:
                self.wdir, self.last, self.best = paths

    @contextmanager
    def _model_as(self, module: nn.Module) -> Iterator[None]:
        """Let Ultralytics see `module` as the trained model (its EMA repair reads the live weights by the EMA's
        keys)."""
        model, self.model = self.model, module
        try:
            yield
        finally:
            self.model = model

    def label_loss_items(self, loss_items: dict | None = None, prefix: str = "train"):
        """Ultralytics' loss columns; validation has no teacher, so its distillation columns would only be zeros."""
        items = super().label_loss_items(loss_items, prefix)
        if prefix != "val":
            return items
        terms = {f"{prefix}/{name}" for name in unwrap_model(self.model).distiller.term_names}
        return [k for k in items if k not in terms] if loss_items is None else {
            k: v for k, v in items.items() if k not in terms}

    @contextmanager
    def _ultralytics_args(self) -> Iterator[None]:
        """Hide the distillation keys from `self.args` (Ultralytics rebuilds checkpoint args with strict checks)."""
        hidden = {k: self.args.__dict__.pop(k) for k in DISTILL_KEYS if k in self.args.__dict__}
        try:
            yield
        finally:
            self.args.__dict__.update(hidden)

    def resume_training(self, ckpt: dict | None) -> None:
        """Resume as Ultralytics does (IKDModel loads the saved student), then continue the attack cadence."""
        super().resume_training(ckpt)
        self._step = self.start_epoch * len(self.train_loader)

    def final_eval(self) -> None:
        """Drop the distiller state from the finished weights, then validate best.pt as Ultralytics does; every
        rewrite of last.pt / best.pt (ours and Ultralytics' optimizer stripping) replaces the file in one rename."""
        if RANK in {-1, 0}:
            for f in (self.last, self.best):
                if f.exists():
                    ckpt = load_pt(f, trust=self.distill[TRUST_KEY])
                    if strip_state(ckpt):
                        atomic_save(ckpt, f)
            LOGGER.info(f"{colorstr('ikd-yolo:')} distilled student saved as a plain Ultralytics model in {self.wdir}")
        with atomic_strip_optimizer():
            super().final_eval()


class IKDSegmentationTrainer(IKDTrainer, SegmentationTrainer):
    """IKD for a segment student: the detection branch and features distilled, Ultralytics' mask loss untouched."""

    TASK = "segment"


class IKDPoseTrainer(IKDTrainer, PoseTrainer):
    """IKD for a pose student: the detection branch and features distilled, Ultralytics' keypoint loss untouched."""

    TASK = "pose"


class IKDOBBTrainer(IKDTrainer, OBBTrainer):
    """IKD for an obb student (an obb teacher): features, classes and the rotated-frame box distances distilled."""

    TASK = "obb"


TASK_TRAINERS: dict[str, type[IKDTrainer]] = {"detect": IKDTrainer, "segment": IKDSegmentationTrainer,
                                              "pose": IKDPoseTrainer, "obb": IKDOBBTrainer}


def ikd_trainer_for(task: str) -> type[IKDTrainer]:
    """The IKD trainer class of an Ultralytics task (detect, segment, pose, obb); one line for any other."""
    if task not in TASK_TRAINERS:
        why = TASK_REFUSALS.get(task, "it has no YOLO detection head")
        raise StudentError(f"task={task} cannot be distilled with ikd-yolo: {why}; it distils task "
                           f"{', '.join(TASK_TRAINERS)}")
    return TASK_TRAINERS[task]


TASK_REFUSALS = {"classify": "a classifier has no detection head, features or boxes to distil at the head's inputs"}


def run_task(cfg: Any = DEFAULT_CFG, overrides: dict | None = None) -> str:
    """The task a trainer built from `cfg` and `overrides` runs: `task=` as given (Ultralytics' `YOLO.train` passes
    the model's), else the head of a student `model=` YAML (yolo11n-seg.yaml: segment), else `cfg`'s (detect).
    A `.pt` student without `task=` is not opened here: preflight refuses it in one line if its task differs."""
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import guess_model_task, yaml_model_load

    overrides = overrides or {}
    if overrides.get("task"):
        return str(overrides["task"])
    model = overrides.get("model")
    if isinstance(model, (str, Path)) and str(model).endswith((".yaml", ".yml")):
        try:
            return guess_model_task(yaml_model_load(model))
        except Exception:  # a missing or broken YAML is refused in preflight, with its own line
            pass
    return get_cfg(cfg).task or "detect"
