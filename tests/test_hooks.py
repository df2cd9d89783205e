"""Feature capture at the Detect-head inputs, for every supported family, and the IKDModel wiring around it."""

from __future__ import annotations

import copy
import pickle

import pytest
import torch
from ultralytics.nn.tasks import DetectionModel

from ikd_yolo.config import resolve_distill_config
from ikd_yolo.hooks import FeatureRecorder, detect_input_layers, neck_features
from ikd_yolo.model import TEACHER_FEATS, FeatureDistiller, IKDModel, level_channels

IMGSZ = 64


def build(cfg: str) -> DetectionModel:
    return DetectionModel(cfg, nc=6, verbose=False)


def expected_shapes(width: int, batch: int = 2) -> list[tuple[int, ...]]:
    """n models feed the head (64, 128, 256) channels, s models twice that, at strides 8, 16, 32."""
    return [(batch, width * m, IMGSZ // s, IMGSZ // s) for m, s in ((1, 8), (2, 16), (4, 32))]


@pytest.mark.parametrize(
    "cfg, layers, width",
    [("yolov8n.yaml", [15, 18, 21], 64), ("yolo11n.yaml", [16, 19, 22], 64), ("yolo26n.yaml", [16, 19, 22], 64),
     ("yolo11s.yaml", [16, 19, 22], 128)],
)
def test_recorder_returns_three_maps_per_family(cfg, layers, width):
    model = build(cfg).eval()
    assert detect_input_layers(model) == layers  # taken from the Detect head's own inputs
    recorder = FeatureRecorder(layers)
    with recorder.capture(model) as feats:
        model(torch.rand(2, 3, IMGSZ, IMGSZ))
    assert [tuple(f.shape) for f in feats] == expected_shapes(width)
    # the captured maps are exactly what the head consumes: feeding them to it reproduces the model's output
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad(), recorder.capture(model) as again:
        out = model(x)
    head_out = model.model[-1]([f.clone() for f in again])
    assert torch.equal(head_out[0], out[0])


@pytest.mark.parametrize("cfg", ["yolov8n.yaml", "yolo11n.yaml", "yolo26n.yaml", "yolov10n.yaml"])
def test_head_free_forward_gives_the_maps_a_full_forward_feeds_the_head(cfg):
    model = build(cfg).eval()
    layers = detect_input_layers(model)
    x = torch.rand(2, 3, IMGSZ, IMGSZ)
    with torch.no_grad(), FeatureRecorder(layers).capture(model) as full:
        model(x)
        head_free = neck_features(model, x, layers)
    assert all(torch.equal(a, b) for a, b in zip(head_free, full)) and len(head_free) == 3
    ran = []
    handle = model.model[-1].register_forward_hook(lambda *a: ran.append(1))
    with torch.no_grad():
        neck_features(model, x, layers)
    handle.remove()
    assert ran == []  # the head did not run


def test_hooks_live_only_inside_capture_and_pickle():
    model = build("yolo11n.yaml")
    recorder = FeatureRecorder(detect_input_layers(model))
    with recorder.capture(model):
        assert all(len(model.model[i]._forward_hooks) == 1 for i in recorder.layers)
        clone = pickle.loads(pickle.dumps(recorder))  # handles are dropped, layers kept
    assert clone.layers == recorder.layers and clone._handles == []
    assert all(len(model.model[i]._forward_hooks) == 0 for i in recorder.layers)
    pickle.dumps(model)  # the student carries nothing of ours between steps


def test_heterogeneous_pair_gets_adapters_and_pickles():
    student, teacher = build("yolo26n.yaml"), build("yolov8s.yaml")
    s_ch = level_channels(student, detect_input_layers(student))
    t_ch = level_channels(teacher, detect_input_layers(teacher))
    assert (s_ch, t_ch) == ([64, 128, 256], [128, 256, 512])
    cfg = resolve_distill_config({"distill": "ikd-fgd-full"})
    model = IKDModel(student, FeatureDistiller(s_ch, t_ch, cfg))
    assert [a.weight.shape[:2] for a in model.distiller.adapters] == [(t, s) for s, t in zip(s_ch, t_ch)]
    assert model.distiller.term_names == ["fgd_loss", "adv_loss"]
    for clone in (copy.deepcopy(model), pickle.loads(pickle.dumps(model))):  # EMA copies and DDP pickling
        assert clone.student is not student
        assert clone.stride.tolist() == [8.0, 16.0, 32.0]


def test_ikd_model_loss_adds_terms_and_grads_reach_student_and_adapters():
    from ultralytics.cfg import get_cfg

    student, teacher = build("yolo11n.yaml"), build("yolo11s.yaml").eval()
    cfg = resolve_distill_config({"distill": "mse"})
    model = IKDModel(student, FeatureDistiller([64, 128, 256], [128, 256, 512], cfg))
    model.args = get_cfg()  # forwarded to the student: its criterion reads the gains
    img = torch.rand(2, 3, IMGSZ, IMGSZ)
    batch = {"img": img, "cls": torch.tensor([[0.0], [3.0]]), "batch_idx": torch.tensor([0.0, 1.0]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.4, 0.4], [0.3, 0.3, 0.2, 0.2]])}
    rec = FeatureRecorder(detect_input_layers(teacher))
    with torch.no_grad(), rec.capture(teacher) as t_feats:
        teacher(img)
    loss, items = model({**batch, TEACHER_FEATS: t_feats})
    assert list(items) == ["box_loss", "cls_loss", "dfl_loss", "mse_loss"]
    assert loss.shape == (4,) and torch.isclose(loss[3], items["mse_loss"] * 2)  # scaled by batch like Ultralytics
    loss.sum().backward()
    assert student.model[0].conv.weight.grad.abs().sum() > 0
    assert all(a.weight.grad.abs().sum() > 0 for a in model.distiller.adapters)
    assert all(p.grad is None for p in teacher.parameters())
    # validation path: no teacher features -> the distillation column reads zero
    loss_val, items_val = model(batch)
    assert items_val["mse_loss"] == 0 and loss_val.shape == (4,)
