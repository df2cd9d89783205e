"""Tests for ikd_yolo.augment.attack: the online momentum DI-FGSM attack on the frozen teacher."""

from __future__ import annotations

import copy

import pytest
import torch
import torch.nn.functional as F

from ikd_yolo.augment.attack import AdversarialAttack, _resize_pad_matrix, teacher_class_loss
from ikd_yolo.config import DistillConfigError, resolve_distill_config
from ikd_yolo.teacher import load_teacher

IMGSZ, BATCH = 64, 8
CFG = {  # the authors' attack, online on every batch (as ikd-fgd runs it)
    "adv_mode": "online",
    "adv_steps": 5,
    "adv_eps": 8 / 255,
    "adv_step_size": 2 / 255,
    "adv_decay": 1.0,
    "adv_di_p": 0.5,
    "adv_every": 1,
    "adv_frac": 1.0,
}


def make_attack(**overrides) -> AdversarialAttack:
    """The attack of the validated settings CFG + overrides."""
    return AdversarialAttack.from_config(resolve_distill_config({**CFG, **overrides}))


def _freeze(model: torch.nn.Module) -> torch.nn.Module:
    """Put a DetectionModel in the frozen-teacher state the trainer gives the attack."""
    from ultralytics.cfg import get_cfg

    model = model.float().eval()
    for p in model.parameters():
        p.requires_grad_(False)
    model.args = get_cfg()  # the criterion reads its box/cls/dfl gains from here
    return model


@pytest.fixture(scope="module")
def trained_teacher(synthetic_data, tmp_path_factory):
    """A yolo11n teacher (v8DetectionLoss) trained briefly on the synthetic set (about 10 s on 2 CPU cores), frozen."""
    from helpers import train_brief_teacher

    return _freeze(load_teacher(train_brief_teacher("yolo11n.yaml", synthetic_data, tmp_path_factory.mktemp("runs11")),
                                nc=8))


@pytest.fixture(scope="module")
def yolo26_teacher(yolo26_teacher_pt):
    """The yolo26n teacher (one-to-many + one-to-one heads, E2ELoss) of conftest.py, trained the same way, frozen."""
    return _freeze(load_teacher(yolo26_teacher_pt, nc=8))


@pytest.fixture(scope="module")
def batch(synthetic_data):
    """One preprocessed training-format batch (8 images of the synthetic train split, no augmentation)."""
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data.utils import check_det_dataset

    data = check_det_dataset(str(synthetic_data))
    dataset = build_yolo_dataset(get_cfg(overrides={"imgsz": IMGSZ}), data["train"], BATCH, data, mode="val")
    out = dataset.collate_fn([dataset[i] for i in range(BATCH)])
    out["img"] = out["img"].float() / 255
    assert len(out["cls"]) > 0
    return out


@pytest.fixture(params=["yolo11n", "yolo26n"])
def teacher(request):
    """Each teacher family: YOLO11 (v8DetectionLoss) and YOLO26 (E2ELoss), both trained briefly."""
    return request.getfixturevalue("trained_teacher" if request.param == "yolo11n" else "yolo26_teacher")


def _attack(teacher, batch, seed=0, k=None, **overrides):
    """Run the attack with CFG plus overrides and a seeded generator on the first `k` images (all by default)."""
    attack = make_attack(**overrides)
    k = batch["img"].shape[0] if k is None else k
    return attack.with_features(teacher, teacher.init_criterion(), batch, None, k,
                                generator=torch.Generator().manual_seed(seed))[0]


def _cls_loss(teacher, img, batch) -> float:
    with torch.no_grad():
        return teacher_class_loss(teacher, teacher.init_criterion(), img, batch).item()


def test_criterion_families(trained_teacher, yolo26_teacher):
    """The two teachers exercise both Ultralytics detection criteria."""
    assert type(trained_teacher.init_criterion()).__name__ == "v8DetectionLoss"
    assert type(yolo26_teacher.init_criterion()).__name__ == "E2ELoss"


def test_class_loss_differentiable(teacher, batch):
    """The cls term is a scalar with a non-zero gradient w.r.t. the image and none for the teacher."""
    img = batch["img"].clone().requires_grad_(True)
    loss = teacher_class_loss(teacher, teacher.init_criterion(), img, batch)
    assert loss.ndim == 0 and torch.isfinite(loss)
    (grad,) = torch.autograd.grad(loss, img)
    assert grad.abs().sum() > 0
    assert all(p.grad is None for p in teacher.parameters())


def test_attack_raises_class_loss(teacher, batch):
    """The teacher's classification loss on x_adv is higher than on x (default settings: 5 steps, 8/255).

    Measured on the batch, as the teacher's criterion scores it. Per image it can go either way on a briefly trained
    teacher: the task-aligned assigner re-draws the (detached) targets from the new predictions, and that change can
    outweigh the ascent of the BCE the attack differentiates.
    """
    x_adv = _attack(teacher, batch)
    assert _cls_loss(teacher, x_adv, batch) > _cls_loss(teacher, batch["img"], batch)


def test_attack_stays_in_budget_and_range(teacher, batch):
    """Only the first k images of the batch come back, |x_adv - x| <= eps, each channel inside the clean range."""
    k = BATCH // 2
    x = batch["img"][:k]
    x_adv = _attack(teacher, batch, k=k)
    assert x_adv.shape == x.shape and x_adv.dtype == x.dtype and not x_adv.requires_grad
    assert (x_adv - x).abs().max() <= CFG["adv_eps"] + 1e-6
    assert (x_adv != x).any()
    lo, hi = x.amin(dim=(2, 3), keepdim=True), x.amax(dim=(2, 3), keepdim=True)
    assert (x_adv >= lo).all() and (x_adv <= hi).all()


@pytest.mark.parametrize("frac", [1.0, 0.5])
def test_one_shared_teacher_pass_equals_a_feature_pass_plus_the_attack(trained_teacher, batch, frac):
    """The shared first forward gives the same adversarial images and the same clean maps as two passes, with one
    teacher forward of the attacked images fewer."""
    from ikd_yolo.hooks import detect_input_layers, neck_features

    layers = detect_input_layers(trained_teacher)
    calls = []
    handle = trained_teacher.model[0].register_forward_hook(lambda m, i, o: calls.append(o.shape[0]))
    attack, criterion = make_attack(adv_steps=3), trained_teacher.init_criterion()
    k = round(frac * BATCH)
    with torch.no_grad():
        want_feats = neck_features(trained_teacher, batch["img"], layers)
    want = attack.with_features(trained_teacher, criterion, batch, None, k, torch.Generator().manual_seed(0))[0]
    two_pass, calls[:] = list(calls), []
    got, feats = attack.with_features(trained_teacher, criterion, batch, layers, k, torch.Generator().manual_seed(0))
    handle.remove()
    assert torch.equal(got, want)
    assert all(torch.equal(a, b) for a, b in zip(feats, want_feats))
    assert two_pass == [BATCH, k, k, k] and calls == [k, k, k] + ([BATCH - k] if k < BATCH else [])


def test_teacher_untouched(teacher, batch):
    """Parameters and BN buffers bit-identical, no .grad, still in eval mode, autocast or not."""
    state = copy.deepcopy(teacher.state_dict())
    x_adv = _attack(teacher, batch)
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the attack switches autocast off and runs in fp32
        x_adv_amp = _attack(teacher, batch)
    assert torch.equal(x_adv, x_adv_amp)
    assert not teacher.training and not any(m.training for m in teacher.modules())
    assert all(p.grad is None and not p.requires_grad for p in teacher.parameters())
    after = teacher.state_dict()
    assert state.keys() == after.keys()
    assert all(torch.equal(state[k], after[k]) for k in state)
    assert any(k.endswith("running_mean") for k in state)  # BN statistics really are among them


def test_deterministic_with_seeded_generator(trained_teacher, batch):
    """Same seed, same images; another seed gives other input-diversity draws, hence other images."""
    a = _attack(trained_teacher, batch, seed=1, adv_di_p=1.0, adv_steps=2)
    b = _attack(trained_teacher, batch, seed=1, adv_di_p=1.0, adv_steps=2)
    c = _attack(trained_teacher, batch, seed=2, adv_di_p=1.0, adv_steps=2)
    assert torch.equal(a, b)
    assert not torch.equal(a, c)


def test_zero_steps_and_zero_fraction(trained_teacher, batch):
    """steps=0 returns x (a copy); no image to attack (k=0) returns None."""
    x = batch["img"]
    out = _attack(trained_teacher, batch, adv_steps=0)
    assert torch.equal(out, x) and out.data_ptr() != x.data_ptr()
    assert _attack(trained_teacher, batch, k=0) is None


def test_keeps_input_dtype(trained_teacher, batch):
    """A half-precision batch comes back in half precision, still inside the budget (up to fp16 rounding)."""
    half = {**batch, "img": batch["img"].half()}
    x_adv = _attack(trained_teacher, half, adv_steps=1)
    assert x_adv.dtype == torch.float16
    assert (x_adv.float() - half["img"].float()).abs().max() <= CFG["adv_eps"] + 1e-3


def test_rejects_teacher_in_train_mode(trained_teacher, batch):
    """A teacher in training mode would update its BN statistics: refused, and nothing changes."""
    trained_teacher.model[-1].train()  # one submodule is enough
    try:
        with pytest.raises(RuntimeError, match="eval mode"):
            _attack(trained_teacher, batch)
    finally:
        trained_teacher.eval()


def test_schedule_and_config():
    """The adversarial stream runs on every adv_every-th step and takes adv_frac of the batch; bad values are
    refused."""
    from ikd_yolo.streams import streams_of

    (stream,) = streams_of(resolve_distill_config({**CFG, "adv_every": 3, "adv_frac": 0.3}))
    assert [stream.runs_at(i) for i in range(7)] == [True, False, False, True, False, False, True]
    assert [stream.size(b) for b in (0, 1, 8, 10)] == [0, 1, 2, 3]
    assert streams_of(resolve_distill_config(CFG))[0].size(8) == 8
    for key, bad in (("adv_every", 0), ("adv_frac", 1.5), ("adv_steps", -1), ("adv_di_p", 2.0)):
        with pytest.raises(DistillConfigError, match=key):
            make_attack(**{key: bad})


@pytest.mark.parametrize("n, size, offset", [(64, 58, 3), (64, 63, 0), (64, 57, 7), (64, 64, 0), (31, 28, 2)])
def test_resize_pad_matrix_matches_interpolate(n, size, offset):
    """The input-diversity matrices equal bilinear F.interpolate (align_corners=False) plus zero padding."""
    x = torch.rand(2, 3, n, n)
    a = _resize_pad_matrix(n, torch.tensor([float(size)]), torch.tensor([float(offset)]))
    got = a @ x @ a.transpose(-1, -2)
    resized = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    want = F.pad(resized, (offset, n - size - offset, offset, n - size - offset))
    torch.testing.assert_close(got, want, atol=1e-5, rtol=0)


def test_input_diversity_moves_boxes_with_image():
    """After resize-and-pad, each transformed box still frames its (white) object."""
    attack = make_attack(adv_di_p=1.0)
    x = torch.zeros(4, 3, IMGSZ, IMGSZ)
    x[:, :, 16:40, 8:32] = 1.0  # box x 8..32, y 16..40 px
    labels = {
        "batch_idx": torch.arange(4.0),
        "cls": torch.zeros(4, 1),
        "bboxes": torch.tensor([[20 / IMGSZ, 28 / IMGSZ, 24 / IMGSZ, 24 / IMGSZ]]).repeat(4, 1),
    }
    x_div, moved = attack._diversify(x, labels, torch.Generator().manual_seed(0))
    assert not torch.equal(moved["bboxes"], labels["bboxes"])
    for img, (cx, cy, w, h) in zip(x_div, moved["bboxes"] * IMGSZ):
        ys, xs = torch.nonzero(img[0] > 0.5, as_tuple=True)
        assert abs(xs.min() - (cx - w / 2)) <= 1 and abs(xs.max() + 1 - (cx + w / 2)) <= 1
        assert abs(ys.min() - (cy - h / 2)) <= 1 and abs(ys.max() + 1 - (cy + h / 2)) <= 1
