"""The head-aware base loss (`kd_loss=score`): hand-computed parts, Ultralytics' own formula for the control, the
teacher head taken from its neck maps, and students and teachers of three head kinds training with it."""

from __future__ import annotations

import math

import pytest
import torch
from ultralytics.nn.distill_model import DistillationModel
from ultralytics.nn.tasks import DetectionModel

from ikd_yolo.hooks import detect_input_layers, head_outputs, neck_features, split_levels, training_outputs
from ikd_yolo.losses import LevelHead, ScoreLoss, position_weights
from ikd_yolo.losses.score import bernoulli_kl, box_discrepancy, dfl_kl, ltrb_iou, side_distances
from ikd_yolo.model import level_heads

KL_HALF_VS_THREE_QUARTERS = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)  # = 0.5 ln(4/3)


def _head(n: int = 1, nc: int = 2, bins: int = 16, h: int = 1, w: int = 1, weight: float = 1.0) -> LevelHead:
    logits, box = torch.zeros(n, nc, h, w), torch.zeros(n, 4 * bins, h, w)
    return LevelHead(logits, logits.clone(), box, box.clone(), torch.full((n, 1, h, w), weight))


def test_feature_part_is_a_weighted_mean_over_positions_and_channels():
    s, t = torch.zeros(1, 2, 1, 2), torch.zeros(1, 2, 1, 2)
    s[0, :, 0, 0] = torch.tensor([1.0, 3.0])  # squares 1 and 9 at position 0
    s[0, :, 0, 1] = torch.tensor([2.0, 2.0])  # squares 4 and 4 at position 1
    head = _head(h=1, w=2)
    head.weight[0, 0, 0] = torch.tensor([3.0, 1.0])
    # (3 * (1 + 9) + 1 * (4 + 4)) / (2 channels * (3 + 1)) = 38 / 8
    assert ScoreLoss(feat=1.0, cls=0.0, box=0.0).parts(s, t, head=head)["feat"].item() == pytest.approx(38 / 8)


def test_feature_part_with_weight_six_is_ultralytics_distill_model_loss():
    g = torch.Generator().manual_seed(0)
    s, t = torch.randn(2, 5, 3, 4, generator=g), torch.randn(2, 5, 3, 4, generator=g)
    head = _head(n=2, h=3, w=4)
    weight = torch.rand(2, 1, 3, 4, generator=g)
    head = LevelHead(head.teacher_logits, head.student_logits, head.teacher_box, head.student_box, weight)
    ours = ScoreLoss(feat=6.0, cls=0.0, box=0.0)(s, t, head=head)
    theirs = DistillationModel.loss_sl2(None, s, t, 0, (weight.flatten(2),)) * 6.0
    assert ours.item() == pytest.approx(theirs.item(), rel=1e-6)


def test_positions_without_teacher_score_get_no_gradient():
    s = torch.randn(1, 3, 2, 2, requires_grad=True)
    head = _head(h=2, w=2)
    head.weight[0, 0, 1, 1] = 0.0
    ScoreLoss(feat=1.0, cls=0.0, box=0.0)(s, torch.zeros(1, 3, 2, 2), head=head).backward()
    assert torch.all(s.grad[0, :, 1, 1] == 0) and torch.all(s.grad[0, :, 0, 0] != 0)


def test_class_part_is_the_bernoulli_kl_zero_where_scores_agree():
    t, s = torch.zeros(1, 1, 1, 1), torch.full((1, 1, 1, 1), math.log(3.0))  # p = 0.5, q = 0.75
    assert bernoulli_kl(t, s).item() == pytest.approx(KL_HALF_VS_THREE_QUARTERS, rel=1e-5)
    assert bernoulli_kl(t, t).item() == pytest.approx(0.0, abs=1e-7)
    head = LevelHead(t.expand(1, 2, 1, 1), torch.cat([s, t], 1), torch.zeros(1, 64, 1, 1), torch.zeros(1, 64, 1, 1),
                     torch.ones(1, 1, 1, 1))
    part = ScoreLoss(feat=0.0, cls=2.0, box=0.0).parts(torch.zeros(1, 1, 1, 1), torch.zeros(1, 1, 1, 1), head=head)
    assert part["cls"].item() == pytest.approx(2.0 * KL_HALF_VS_THREE_QUARTERS / 2, rel=1e-5)  # mean over 2 classes


def test_box_part_is_lds_kl_of_the_side_distributions_times_t_squared():
    t = torch.zeros(1, 4 * 2, 1, 1)  # 2 bins per side, uniform
    s = torch.zeros(1, 4, 2, 1, 1)
    s[:, :, 1] = math.log(3.0)  # softmax [0.25, 0.75] on every side
    s = s.reshape(1, 8, 1, 1)
    assert dfl_kl(t, s, temp=1.0).item() == pytest.approx(KL_HALF_VS_THREE_QUARTERS, rel=1e-5)
    # at T = 2 the student's logits halve: [0, ln 3 / 2] -> softmax [1 / (1 + sqrt 3), sqrt 3 / (1 + sqrt 3)]
    q0 = 1 / (1 + math.sqrt(3))
    expected = 4 * (0.5 * math.log(0.5 / q0) + 0.5 * math.log(0.5 / (1 - q0)))
    assert dfl_kl(t, s, temp=2.0).item() == pytest.approx(expected, rel=1e-5)
    assert dfl_kl(s, s, temp=10.0).item() == pytest.approx(0.0, abs=1e-6)


def test_box_part_without_bins_is_one_minus_iou_of_the_ltrb_boxes():
    a, b = torch.ones(1, 4, 1, 1), torch.full((1, 4, 1, 1), 2.0)  # 2x2 and 4x4 boxes about one anchor
    assert ltrb_iou(a, b).item() == pytest.approx(4 / 16)
    assert box_discrepancy(a, b, temp=10.0).item() == pytest.approx(0.75)
    # a 16-bin teacher and a one-value student: the teacher's expected distances, then 1 - IoU
    dfl = torch.full((1, 64, 1, 1), -30.0).reshape(1, 4, 16, 1, 1)
    dfl[:, :, 2] = 30.0  # all mass on bin 2: distance 2 on every side
    assert side_distances(dfl.reshape(1, 64, 1, 1)).flatten().tolist() == pytest.approx([2.0] * 4)
    assert box_discrepancy(dfl.reshape(1, 64, 1, 1), a, temp=10.0).item() == pytest.approx(0.75, rel=1e-5)


def test_position_weights_average_both_branches_before_the_sigmoid():
    o2m, o2o = torch.zeros(1, 2, 1, 1), torch.zeros(1, 2, 1, 1)
    o2m[0, 1], o2o[0, 1] = 2.0, -2.0  # mean logit 0 -> 0.5; class 0 also 0.5
    o2m[0, 0], o2o[0, 0] = 4.0, 0.0  # mean 2 -> sigmoid(2) wins the max
    assert position_weights(o2m, o2o).item() == pytest.approx(1 / (1 + math.exp(-2)))
    assert position_weights(o2m).item() == pytest.approx(1 / (1 + math.exp(-4)))


@pytest.mark.parametrize("cfg", ["yolo11n.yaml", "yolo26n.yaml"])
def test_teacher_head_from_its_neck_maps_equals_its_own_forward(cfg):
    torch.manual_seed(0)
    model = DetectionModel(cfg, nc=3, verbose=False).eval()
    img = torch.rand(2, 3, 64, 64)
    maps = neck_features(model, img, detect_input_layers(model))
    ours = head_outputs(model, maps)
    _, preds = model(img)
    theirs = training_outputs(preds)
    assert set(ours) == set(theirs)
    for k in ours:
        assert torch.equal(ours[k], theirs[k]), k


def test_level_heads_cut_the_flat_outputs_at_each_level():
    maps = [torch.zeros(1, 4, 4, 4), torch.zeros(1, 8, 2, 2), torch.zeros(1, 8, 1, 1)]
    flat = torch.arange(21, dtype=torch.float32).view(1, 1, 21)
    levels = split_levels(flat, maps)
    assert [lv.shape[-2:] for lv in levels] == [(4, 4), (2, 2), (1, 1)]
    assert levels[1].flatten().tolist() == [16.0, 17.0, 18.0, 19.0] and levels[2].item() == 20.0
    teacher = {"scores": flat.expand(1, 2, 21), "boxes": torch.zeros(1, 64, 21)}
    heads = level_heads(teacher, {"scores": torch.zeros(1, 2, 21), "boxes": torch.zeros(1, 4, 21)}, maps)
    assert heads[2].weight.item() == pytest.approx(1 / (1 + math.exp(-20.0)))
    assert heads[0].student_box.shape == (1, 4, 4, 4) and heads[0].teacher_box.shape == (1, 64, 4, 4)


@pytest.mark.parametrize("student, teacher, box", [
    ("yolo11n.yaml", "teacher_pt", "LD"),  # DFL on both sides, 16 bins
    ("yolov8n.yaml", "teacher_pt", "LD"),  # another family, same bins
    ("yolo26n.yaml", "teacher_pt", "IoU"),  # a student without bins
    ("yolo11n.yaml", "yolo26_teacher_pt", "IoU"),  # an end-to-end teacher without bins
])
def test_score_trains_students_and_teachers_of_three_head_kinds(student, teacher, box, request, tmp_path,
                                                                 synthetic_data):
    from ultralytics import YOLO

    from helpers import read_results, train_kwargs
    from ikd_yolo import IKDTrainer

    teacher_pt = request.getfixturevalue(teacher)
    model = YOLO(student)
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="score", data=str(synthetic_data),
                **train_kwargs(tmp_path, "run", val=False))
    column = read_results(tmp_path / "run")["train/score_loss"]
    assert column[0] > 0 and math.isfinite(column[0])
    distiller = model.trainer.model.distiller
    assert all(isinstance(p, torch.nn.Sequential) for p in distiller.adapters)  # the MLP projector
    assert distiller.base[0].box > 0 and distiller.base[0].cls > 0  # every part measured, none left at 0
    plain = YOLO(tmp_path / "run" / "weights" / "best.pt")
    assert type(plain.model) is DetectionModel and not hasattr(plain.model, "ikd_state")
