"""Feature capture at the maps a YOLO Detect head reads (P3, P4, P5), for teacher and student alike.

Hooks are registered only for the duration of one forward pass (`FeatureRecorder.capture`), so a model never carries
them between steps: EMA deep copies, checkpoints and DDP pickling see a plain Ultralytics model. The hook itself is a
small picklable class rather than a closure, and the recorder drops captured tensors and hook handles when pickled.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

import torch
from torch import nn
from ultralytics.nn.modules.head import Detect


def detect_input_layers(model: nn.Module) -> list[int]:
    """Indices of the layers whose outputs feed the model's Detect head, from the head's own `f` (never hard-coded).

    Works for any Ultralytics detection model (YOLOv8, YOLO11, YOLO26, ...): e.g. [16, 19, 22] for yolo11n.
    """
    layers = getattr(model, "model", None)
    if layers is None:
        raise ValueError(f"{type(model).__name__} is not an Ultralytics model (it has no 'model' layer list)")
    for m in layers:
        if isinstance(m, Detect):
            return [m.f] if isinstance(m.f, int) else list(m.f)
    raise ValueError(f"{type(model).__name__} has no Detect head: only detection models can be distilled")


def detect_head(model: nn.Module) -> Detect:
    """The model's Detect head module."""
    return next(m for m in model.model if isinstance(m, Detect))


def head_outputs(model: nn.Module, maps: list[torch.Tensor], keypoints: bool = False) -> dict[str, torch.Tensor]:
    """The raw outputs of `model`'s Detect head on its own neck `maps`, without decoding: {"scores": class logits
    (N, nc, A), "boxes": box output (N, 4 * reg_max, A)} of the one-to-many branch, plus "scores_o2o" for a head
    that also has a one-to-one branch (YOLO26, YOLOv10). A = the positions of every level, P3 first.

    A Segment, Pose or OBB head is a Detect head plus a branch (mask coefficients, keypoints, angles): only its
    detection branch runs here, and with `keypoints` a Pose head's keypoint branch too ("kpts", (N, nk * ndim, A),
    raw: x and y in half-strides from the anchor, then the visibility logit). An OBB head's "boxes" are its DFL
    distances in each object's rotated frame (the angle is a branch of its own), so a box term between two OBB heads
    compares like with like."""
    head = detect_head(model)
    keep = ("box_head", "cls_head", "pose_head") if keypoints else ("box_head", "cls_head")
    out = head.forward_head(maps, **detection_branch(head.one2many, keep))
    result = {"scores": out["scores"], "boxes": out["boxes"], **({"kpts": out["kpts"]} if "kpts" in out else {})}
    if getattr(head, "one2one_cv2", None) is not None:
        result["scores_o2o"] = head.forward_head(maps, **detection_branch(head.one2one))["scores"]
    return result


def detection_branch(parts: dict[str, nn.Module], keep: tuple[str, ...] = ("box_head", "cls_head"),
                     ) -> dict[str, nn.Module | None]:
    """A head's `one2many` / `one2one` parts with every branch but those in `keep` (box and class) set to None:
    `forward_head` then skips the other task branches (masks, keypoints, angles)."""
    return {name: part if name in keep else None for name, part in parts.items()}


def training_outputs(preds: dict) -> dict[str, torch.Tensor]:
    """`head_outputs`' form of what a Detect head returns in training mode (its one-to-many branch)."""
    many = preds["one2many"] if "one2many" in preds else preds
    result = {"scores": many["scores"], "boxes": many["boxes"], **({"kpts": many["kpts"]} if "kpts" in many else {})}
    if "one2many" in preds:
        result["scores_o2o"] = preds["one2one"]["scores"]
    return result


def split_levels(flat: torch.Tensor, maps: list[torch.Tensor]) -> list[torch.Tensor]:
    """A head output (N, C, A) cut into one (N, C, H, W) tensor per level, at the levels' (H, W) of `maps`."""
    sizes = [m.shape[-2] * m.shape[-1] for m in maps]
    return [part.reshape(*part.shape[:2], *m.shape[-2:]) for part, m in zip(flat.split(sizes, dim=-1), maps)]


def neck_features(model: nn.Module, x: torch.Tensor, layers: list[int]) -> list[torch.Tensor]:
    """The outputs of `layers` from a forward that stops after the last of them: no Detect head, no box decoding.

    The layers run exactly as in Ultralytics' own forward (each reads its inputs from the layers its `f` names), so the
    maps equal what hooks capture in a full forward; a pass that needs features only (the teacher's, the student's on
    adversarial images) skips the head's cost.
    """
    last = max(layers)
    keep = set(layers) | set(getattr(model, "save", ()))
    y: list = []
    for m in model.model:
        if m.i > last:
            break
        if m.f != -1:
            x = y[m.f] if isinstance(m.f, int) else [x if j == -1 else y[j] for j in m.f]
        x = m(x)
        y.append(x if m.i in keep else None)
    return [y[i] for i in layers]


class LevelHook:
    """Forward hook that stores a layer's output in slot `level` of a shared list."""

    def __init__(self, store: list, level: int) -> None:
        self.store = store
        self.level = level

    def __call__(self, module: nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        self.store[self.level] = output


class FeatureRecorder:
    """Records the Detect-head input maps of one model during a forward pass.

    It holds layer indices only, not the model, so it can sit on any module without creating a second reference
    to the network it observes.

    Examples:
        >>> from ultralytics.nn.tasks import DetectionModel
        >>> model = DetectionModel("yolo11n.yaml", verbose=False).eval()
        >>> recorder = FeatureRecorder(detect_input_layers(model))
        >>> with recorder.capture(model) as feats:
        ...     preds = model(torch.zeros(1, 3, 64, 64))
        >>> [f.shape for f in feats]  # P3, P4, P5
        [torch.Size([1, 64, 8, 8]), torch.Size([1, 128, 4, 4]), torch.Size([1, 256, 2, 2])]
    """

    def __init__(self, layers: list[int]) -> None:
        self.layers = list(layers)
        self._handles: list = []

    def __getstate__(self) -> dict:
        state = self.__dict__.copy()
        state["_handles"] = []  # handles belong to the live process
        return state

    @contextmanager
    def capture(self, model: nn.Module) -> Iterator[list[torch.Tensor]]:
        """Register hooks on `model`, yield the list they fill (one entry per level), and remove them on exit."""
        store: list = [None] * len(self.layers)
        self._handles = [
            model.model[i].register_forward_hook(LevelHook(store, level)) for level, i in enumerate(self.layers)
        ]
        try:
            yield store
        finally:
            for handle in self._handles:
                handle.remove()
            self._handles = []
