"""The module IKD trains: the student plus the distillation parts learned with it (adapters, generators, GC blocks).

`IKDModel` is what Ultralytics' training loop, optimizer, EMA and DDP see. The frozen teacher is deliberately NOT in
it: the trainer computes teacher features in `preprocess_batch` and hands them over in the batch dict under the keys
below, so the teacher never enters the optimizer, the EMA, DDP's parameter set or a checkpoint.
"""

from __future__ import annotations

from typing import Any, Mapping

import torch
from torch import nn

from .config import unit_for_auto
from .hooks import FeatureRecorder, detect_input_layers, neck_features, split_levels, training_outputs
from .losses import (
    BASE_LOSSES, AdvFeatureLoss, LevelHead, build_base_loss, part_name, position_weights, term_weight_keys,
)
from .streams import STREAMS_KEY, Stream, StreamBatch, streams_of

TEACHER_FEATS = "ikd_teacher_feats"  # list of teacher maps on batch["img"]
TEACHER_HEAD = "ikd_teacher_head"  # the teacher head's raw outputs on batch["img"] (hooks.head_outputs), if needed


@torch.no_grad()
def level_channels(model: nn.Module, layers: list[int], imgsz: int = 64) -> list[int]:
    """Channel count of each Detect-head input, measured with one small no-grad forward in eval mode."""
    was_training = model.training
    model.eval()
    device = next(model.parameters()).device
    channels = model.yaml.get("channels", 3) if hasattr(model, "yaml") else 3
    with FeatureRecorder(layers).capture(model) as feats:
        model(torch.zeros(1, channels, imgsz, imgsz, device=device))
    model.train(was_training)
    return [f.shape[1] for f in feats]


def boxes_per_image(batch: Mapping[str, Any]) -> list[torch.Tensor]:
    """Split the batch's normalised xywh labels into one (n_i, 4) normalised xyxy tensor per image; a rotated box
    (xywhr, obb) gives the axis-aligned box around it (training images are square, so w and h share one scale)."""
    boxes, index = batch["bboxes"], batch["batch_idx"].long()
    half = boxes[:, 2:4] / 2
    if boxes.shape[1] == 5:
        cos, sin = boxes[:, 4:].cos().abs(), boxes[:, 4:].sin().abs()
        half = torch.cat([half[:, :1] * cos + half[:, 1:] * sin, half[:, :1] * sin + half[:, 1:] * cos], 1)
    xyxy = torch.cat([boxes[:, :2] - half, boxes[:, :2] + half], 1).clamp(0, 1)
    return [xyxy[index == i] for i in range(batch["img"].shape[0])]


def projector(student_channels: int, teacher_channels: int, kind: str) -> nn.Module:
    """What maps a student level onto the teacher's channels: "linear" a 1x1 conv (nothing when the widths are
    equal), "mlp" 1x1 conv - ReLU - 1x1 conv (FRS, Ultralytics' distill_model)."""
    if kind == "mlp":
        return nn.Sequential(nn.Conv2d(student_channels, teacher_channels, 1), nn.ReLU(inplace=True),
                             nn.Conv2d(teacher_channels, teacher_channels, 1))
    return nn.Conv2d(student_channels, teacher_channels, 1) if student_channels != teacher_channels else nn.Identity()


def level_heads(teacher: Mapping[str, torch.Tensor], student: Mapping[str, torch.Tensor],
                maps: list[torch.Tensor], weigher: Mapping[str, torch.Tensor] | None = None,
                kpt_dim: int = 3) -> list[LevelHead]:
    """Per level, the teacher's and student's head outputs (`hooks.head_outputs` form) with position weights from
    the scores of `weigher` (a teacher head output on the same positions; default `teacher`), its one-to-many and
    one-to-one logits averaged where it has both; keypoints where both outputs hold them (`kpt_dim` values each)."""
    weigher = teacher if weigher is None else weigher
    t_scores = [weigher["scores"], *([weigher["scores_o2o"]] if "scores_o2o" in weigher else [])]
    weights = split_levels(position_weights(*[t.unsqueeze(-1) for t in t_scores]).squeeze(-1), maps)
    outputs = (teacher["scores"], student["scores"], teacher["boxes"], student["boxes"])
    levels = [split_levels(out, maps) for out in outputs] + [weights]
    if "kpts" in teacher and "kpts" in student and teacher["kpts"].shape[1] == student["kpts"].shape[1]:
        levels += [split_levels(teacher["kpts"], maps), split_levels(student["kpts"], maps)]
    return [LevelHead(*level, kpt_dim=kpt_dim) for level in zip(*levels)]


def stream_parts(stream: str, weight: float, parts: Mapping[str, torch.Tensor],
                 keep: tuple[str, ...] | None = None) -> dict[str, torch.Tensor]:
    """The base loss's `parts` (fgd.fg, score.cls, mse, ...) as the parts of a stream: each times `weight`, renamed
    "<stream>.<part>" ("<stream>" for a lone part), only the parts in `keep` when given."""
    return {".".join(filter(None, (stream, k.partition(".")[2]))): weight * v for k, v in parts.items()
            if keep is None or k.partition(".")[2] in keep}


class FeatureDistiller(nn.Module):
    """Per-level channel projectors (student -> teacher width), the base loss, and the terms of every extra stream.

    Args:
        student_channels: Channels of the student's P3..P5 maps.
        teacher_channels: Channels of the teacher's P3..P5 maps.
        cfg: Resolved distillation settings (see configs/default.yaml); a weight still "auto" starts at 1.0 until
            `set_weights` gives it its measured value.
    """

    def __init__(self, student_channels: list[int], teacher_channels: list[int], cfg: Mapping[str, Any]) -> None:
        super().__init__()
        self.streams = streams_of(cfg)
        cfg = unit_for_auto(cfg)
        self.kd_name = cfg["kd_loss"]
        kind = BASE_LOSSES[self.kd_name].PROJECTOR if self.kd_name != "none" else "linear"
        self.adapters = nn.ModuleList(projector(s, t, kind) for s, t in zip(student_channels, teacher_channels))
        self.base = (
            nn.ModuleList(build_base_loss(self.kd_name, c, cfg) for c in teacher_channels)
            if self.kd_name != "none"
            else None
        )
        self.stream_weights = {stream.name: float(cfg[stream.weight_key]) for stream in self.streams}
        # the authors' adversarial term (a feature base loss) is a loss of its own, at unit weight: the stream's weight
        # scales it as it scales a head-aware stream's parts
        self.feature_mse = AdvFeatureLoss(1.0)

    @property
    def term_names(self) -> list[str]:
        """Loss-column names: `<kd_loss>_loss` for the base loss on the batch, then each stream's (`adv_loss`, ...)."""
        base = [f"{self.kd_name}_loss"] if self.base is not None else []
        return base + [stream.term for stream in self.streams]

    def term_of(self, part: str) -> str:
        """The loss column a part belongs to: its stream's (adv.feat -> adv_loss), else the base loss's."""
        head = part.partition(".")[0]
        named = [stream.term for stream in self.streams if stream.name == head]
        return named[0] if named else f"{self.kd_name}_loss"

    @property
    def needs_head(self) -> bool:
        """Whether the base loss also distils the head (its `parts` take each level's `LevelHead`)."""
        return self.base is not None and type(self.base[0]).NEEDS_HEAD

    def base_parts(
        self, student: list[torch.Tensor], teacher: list[torch.Tensor], boxes: list[torch.Tensor],
        heads: list[LevelHead] | None = None,
    ) -> dict[str, torch.Tensor]:
        """The base loss's weighted parts summed over levels, named `<kd_loss>[.<part>]` (fgd.fg, ..., mse)."""
        extra = [{"head": h} for h in heads] if self.needs_head else [{}] * len(student)
        levels = [loss.parts(adapt(s), t, boxes, **kw)
                  for loss, adapt, s, t, kw in zip(self.base, self.adapters, student, teacher, extra)]
        return {part_name(self.kd_name, k): sum(p[k] for p in levels) for k in levels[0]}

    def stream_terms(self, stream: Stream, student: list[torch.Tensor], teacher: list[torch.Tensor],
                     boxes: list[torch.Tensor], heads: list[LevelHead] | None = None) -> dict[str, torch.Tensor]:
        """One stream's parts summed over levels, through the same projectors, each times the stream's weight.

        The authors' adversarial term (`feature_mse`): {"adv": weight * sum((P(F_s) - F_t)^2) / N}. Otherwise the base
        loss's own parts on the stream's images (those `stream.parts` names): {"adv.feat": ..., "freq.cls": ...}.
        """
        weight = self.stream_weights[stream.name]
        if stream.feature_mse:
            return {stream.name: weight * sum(self.feature_mse(adapt(s), t)
                                              for adapt, s, t in zip(self.adapters, student, teacher))}
        return stream_parts(stream.name, weight, self.base_parts(student, teacher, boxes, heads), stream.parts)

    def weight_keys(self) -> dict[str, str]:
        """{part name: the config key of its weight} for every measured term: the base loss's parts, and a stream
        whose weight is a loss weight ("fgd.fg": "fgd_alpha", "adv": "adv_weight")."""
        keys = term_weight_keys(self.kd_name if self.base is not None else "none", adversarial=False)
        return {**keys, **{s.name: s.weight_key for s in self.streams if s.weight_key == "adv_weight"}}

    def set_weights(self, weights: Mapping[str, float]) -> None:
        """Give the terms new weights, by config key (what `weight_keys` names), on every level."""
        for part, key in self.weight_keys().items():
            if key not in weights:
                continue
            if part in self.stream_weights:
                self.stream_weights[part] = float(weights[key])
            else:
                for loss in self.base:
                    loss.set_weight(part.partition(".")[2], weights[key])

    def stream_at(self, name: str, values: Mapping[str, float], weights: Mapping[str, float]) -> float:
        """Stream `name`'s measured value (`values`, at the weights the distiller holds now) recomputed at the base
        weights `weights` (config keys): a head-aware stream's term is linear in each base part's weight."""
        if name in values:
            return values[name]
        total = 0.0
        for part, key in self.weight_keys().items():
            stream_part = f"{name}.{part.partition('.')[2]}"
            if part not in self.stream_weights and stream_part in values:
                now = self.base[0].weight_of(part.partition(".")[2])
                total += values[stream_part] * (float(weights.get(key, now)) / now if now else 0.0)
        return total


class _StudentAttribute:
    """Class attribute that reads and writes the same-named attribute of the wrapped student."""

    def __set_name__(self, owner: type, name: str) -> None:
        self.name = name

    def __get__(self, obj: Any, objtype: type | None = None) -> Any:
        return self if obj is None else getattr(obj.student, self.name)

    def __set__(self, obj: Any, value: Any) -> None:
        setattr(obj.student, self.name, value)


class IKDModel(nn.Module):
    """Student model (detect, segment, pose or obb) + distiller, trained together; returns its own task loss +
    distillation losses.

    Reads and writes of the attributes Ultralytics' trainer and validator use (`model`, `stride`, `args`, `criterion`,
    `class_weights`, ...) go to the student, and `load_state_dict` also takes a plain student state dict, which is what
    IKD checkpoints hold: Ultralytics' resume, EMA restore and NaN recovery then work on this wrapper unchanged.

    Examples:
        >>> model = IKDModel(student, FeatureDistiller([64, 128, 256], [128, 256, 512], cfg))  # doctest: +SKIP
        >>> loss, items = model({**batch, TEACHER_FEATS: teacher.features(batch["img"])})  # doctest: +SKIP
    """

    model = _StudentAttribute()
    args = _StudentAttribute()
    nc = _StudentAttribute()
    names = _StudentAttribute()
    stride = _StudentAttribute()
    yaml = _StudentAttribute()
    criterion = _StudentAttribute()
    end2end = _StudentAttribute()
    class_weights = _StudentAttribute()
    kpt_shape = _StudentAttribute()  # pose: PoseTrainer sets these on the model it trains
    kpt_oks_sigmas = _StudentAttribute()
    kpt_names = _StudentAttribute()

    def __init__(self, student: nn.Module, distiller: FeatureDistiller) -> None:
        super().__init__()
        self.student = student
        self.distiller = distiller
        self.recorder = FeatureRecorder(detect_input_layers(student))

    def forward(self, x: torch.Tensor | dict, *args: Any, **kwargs: Any) -> Any:
        """Loss tuple for a batch dict, student predictions for an image tensor."""
        if isinstance(x, dict):
            return self.loss(x, *args, **kwargs)
        return self.student.predict(x, *args, **kwargs)

    def load_state_dict(self, state_dict: Mapping[str, Any], strict: bool = True, assign: bool = False):
        """Load a full IKDModel state dict, or a plain student one into the student (the distiller is kept)."""
        if not any(k.startswith(("student.", "distiller.")) for k in state_dict):
            return self.student.load_state_dict(state_dict, strict=strict, assign=assign)
        return super().load_state_dict(state_dict, strict=strict, assign=assign)

    def init_criterion(self) -> Any:
        """The student's Ultralytics detection criterion."""
        return self.student.init_criterion()

    def set_head_attr(self, **kwargs: Any) -> None:
        """Forward head settings (max_det, agnostic_nms, ...) to the student."""
        self.student.set_head_attr(**kwargs)

    def fuse(self, verbose: bool = True, **kwargs: Any) -> nn.Module:
        """The fused student alone: what inference and export use."""
        return self.student.fuse(verbose=verbose, **kwargs)

    @property
    def keypoint_dim(self) -> int:
        """Values per keypoint of a pose student (2: x, y; 3: with visibility); 3 for a student without keypoints."""
        return int(getattr(self.student, "kpt_shape", (0, 3))[1])

    def student_features(self, img: torch.Tensor) -> tuple[list[torch.Tensor], Any]:
        """Student forward that also returns the Detect-head input maps."""
        with self.recorder.capture(self.student) as feats:
            preds = self.student.predict(img)
        return feats, preds

    def student_neck_features(self, img: torch.Tensor) -> list[torch.Tensor]:
        """The student's Detect-head input maps alone (no head): what the adversarial term compares."""
        return neck_features(self.student, img, self.recorder.layers)

    def distill_parts(self, batch: dict, feats: list[torch.Tensor], preds: Any) -> dict[str, torch.Tensor]:
        """Every distillation part of one training batch by name (fgd.fg, ..., score.cls, adv.feat, freq.cls), from
        the student's maps `feats` and training-mode head output `preds` on batch["img"], and the streams the batch
        holds (`STREAMS_KEY`). What the loss sums and `weights=auto` measures."""
        parts = {}
        if self.distiller.base is not None:
            heads = None
            if self.distiller.needs_head:
                heads = level_heads(batch[TEACHER_HEAD], training_outputs(preds), batch[TEACHER_FEATS],
                                    kpt_dim=self.keypoint_dim)
            parts.update(self.distiller.base_parts(feats, batch[TEACHER_FEATS], boxes_per_image(batch), heads))
        held = batch.get(STREAMS_KEY, {})
        for stream in self.distiller.streams:
            if stream.name in held:
                parts.update(self.stream_parts(stream, held[stream.name], batch))
        return parts

    def stream_parts(self, stream: Stream, images: StreamBatch, batch: dict) -> dict[str, torch.Tensor]:
        """One stream's parts: the student and the teacher on the stream's images, positions weighted by its
        weigher's scores; images of the training batch keep their boxes (a feature base such as FGD reads them)."""
        boxes = []
        if images.index is not None:
            every_image = boxes_per_image(batch)
            boxes = [every_image[i] for i in images.index.tolist()]
        if not self.distiller.needs_head or stream.feature_mse:
            return self.distiller.stream_terms(stream, self.student_neck_features(images.img), images.teacher_feats,
                                               boxes)
        feats, preds = self.student_features(images.img)
        heads = level_heads(images.teacher_head, training_outputs(preds), images.teacher_feats, images.weigher,
                            self.keypoint_dim)
        return self.distiller.stream_terms(stream, feats, images.teacher_feats, boxes, heads)

    def loss(self, batch: dict, preds: Any = None) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        """Detection loss on batch["img"] plus every distillation term, each also reported as its own loss item.

        Without teacher features in the batch (validation) the distillation terms are reported as zeros.
        """
        names = self.distiller.term_names
        if TEACHER_FEATS not in batch:
            det, items = self.student.loss(batch, preds)
            zeros = torch.zeros(len(names), device=det.device)
            return torch.cat([det, zeros]), {**items, **dict(zip(names, zeros))}

        feats, preds = self.student_features(batch["img"])
        det, items = self.student.loss(batch, preds)
        parts = self.distill_parts(batch, feats, preds)
        zero = torch.zeros((), device=det.device)  # a stream's term outside the phase or between its steps
        of = {k: self.distiller.term_of(k) for k in parts}
        terms = [sum((v for k, v in parts.items() if of[k] == name), zero) for name in names]
        terms = torch.stack([t.float().reshape(()) for t in terms]) if terms else det.new_zeros(0)
        batch_size = batch["img"].shape[0]
        items.update({k: v.detach() for k, v in zip(names, terms)})
        return torch.cat([det, terms * batch_size]), items
