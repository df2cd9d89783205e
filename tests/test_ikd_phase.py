"""IKD at the trainer level: the augmentation schedule, gradient from the adversarial term, paper mode in training."""

from __future__ import annotations

import torch
from ultralytics import YOLO

from helpers import read_results, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.model import TEACHER_FEATS
from ikd_yolo.streams import STREAMS_KEY, StreamBatch


class Spy:
    """Stands in for one of the trainer's augmenters: runs its `method`, and records the epoch, what went in and out."""

    def __init__(self, trainer, target, method: str = "__call__"):
        self.trainer, self.target, self.method, self.calls = trainer, target, method, []

    def __getattr__(self, name):  # settings, ... of the wrapped object
        if name == self.method:
            return self._logged
        return getattr(self.target, name)

    def __call__(self, *args, **kwargs):
        return self._logged(*args, **kwargs)

    def _logged(self, *args, **kwargs):
        out = getattr(self.target, self.method)(*args, **kwargs)
        self.calls.append({"epoch": self.trainer.epoch, "args": args, "out": out})
        return out


def spy_on_augmentations(model: YOLO) -> dict:
    """Callbacks that wrap the trainer's frequency augmentation and attack, and log the IKD phase of every batch."""
    record = {"phase": []}

    def wrap(trainer):
        record["freq"] = trainer.freq_augment = Spy(trainer, trainer.freq_augment)
        record["attack"] = trainer.attack = Spy(trainer, trainer.attack, "with_features")

    model.add_callback("on_train_start", wrap)
    model.add_callback("on_train_batch_start", lambda t: record["phase"].append((t.epoch, t.augmentation_phase)))
    return record


def test_ikd_phase_switches_augmentations_off(tmp_path, synthetic_data, teacher_pt):
    # 16 images, batch 8: 2 iterations per epoch; round(0.34 * 3) = 1, so only epoch 1 (index 0) is in the IKD phase
    model = YOLO("yolo11n.yaml")
    record = spy_on_augmentations(model)
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="ikd-fgd-full", adv_steps=1, ikd_phase=0.34,
                data=str(synthetic_data), **train_kwargs(tmp_path, "phase", epochs=3, val=False))

    assert record["phase"] == [(0, True), (0, True), (1, False), (1, False), (2, False), (2, False)]
    assert [c["epoch"] for c in record["freq"].calls] == [0, 0]  # never called after the phase
    assert [c["epoch"] for c in record["attack"].calls] == [0, 0]  # adv_every=1: every iteration of the phase
    for call in record["freq"].calls:
        info = call["out"]["freq_info"]
        assert info["mode"] == "spectral" and info["selected"].shape == (8,)
    for call in record["attack"].calls:
        x = call["args"][2]["img"]
        x_adv, clean_maps = call["out"]
        assert x_adv.shape == x.shape and 0 < (x_adv - x).abs().max() <= 8 / 255 + 1e-6
        assert [f.shape[0] for f in clean_maps] == [8, 8, 8]  # the teacher's maps of the batch, from the same pass

    results = read_results(tmp_path / "phase")
    assert results["epoch"] == [1.0, 2.0, 3.0]
    assert all(v > 0 for v in results["train/fgd_loss"])  # the base loss runs throughout
    adv = results["train/adv_loss"]
    assert adv[0] > 0 and adv[1:] == [0.0, 0.0]


def test_adv_term_alone_trains_student_not_teacher(teacher_pt):
    from ultralytics.cfg import get_cfg
    from ultralytics.nn.tasks import DetectionModel

    from ikd_yolo.augment.attack import AdversarialAttack
    from ikd_yolo.config import resolve_distill_config
    from ikd_yolo.hooks import detect_input_layers
    from ikd_yolo.model import FeatureDistiller, IKDModel, level_channels
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    torch.manual_seed(0)
    cfg = resolve_distill_config({"distill": "ikd-fgd-adv", "kd_loss": "none", "adv_weight": 1e-3, "adv_steps": 1})
    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=8))
    teacher.model.args = get_cfg()
    student = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    student.args = get_cfg()
    distiller = FeatureDistiller(
        level_channels(student, detect_input_layers(student)),
        level_channels(teacher.model, teacher.recorder.layers),
        cfg,
    )
    model = IKDModel(student, distiller).train()
    assert distiller.term_names == ["adv_loss"]

    img = torch.rand(2, 3, 64, 64)
    batch = {
        "img": img,
        "cls": torch.tensor([[1.0], [3.0], [5.0]]),
        "bboxes": torch.tensor([[0.3, 0.3, 0.2, 0.2], [0.6, 0.5, 0.5, 0.6], [0.5, 0.5, 0.1, 0.1]]),
        "batch_idx": torch.tensor([0.0, 0.0, 1.0]),
    }
    x_adv = AdversarialAttack.from_config(cfg)(teacher.model, teacher.model.init_criterion(), batch)
    batch.update({TEACHER_FEATS: teacher.features(img),
                  STREAMS_KEY: {"adv": StreamBatch(x_adv, teacher.features(x_adv), None, None, None)}})

    loss, items = model(batch)
    assert loss.shape == (4,) and items["adv_loss"] > 0  # box, cls, dfl, adv
    loss[-1].backward()  # the adversarial term only

    first_conv = student.model[0].conv.weight.grad
    assert first_conv is not None and first_conv.abs().sum() > 0
    assert all(p.grad is not None and p.grad.abs().sum() > 0 for p in distiller.adapters.parameters())
    head = student.model[-1]  # the adv term reads the Detect INPUTS: the head's weights must see no gradient from it
    assert all(p.grad is None or not p.grad.any() for p in head.parameters())
    assert all(p.grad is None for p in teacher.parameters())


def test_paper_mode_trains_and_keeps_labels_aligned(tmp_path, synthetic_data, teacher_pt):
    model = YOLO("yolo11n.yaml")
    record = spy_on_augmentations(model)
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="ikd-fgd-paper", adv_steps=1,
                data=str(synthetic_data), **train_kwargs(tmp_path, "paper", val=False))

    calls = record["freq"].calls
    assert len(calls) == 2  # 2 iterations in the one epoch, all in the IKD phase (round(0.667 * 1) = 1)
    cropped = 0
    for call in calls:
        out, b = call["out"], call["out"]["img"].shape[0]
        info = out["freq_info"]
        assert info["mode"] == "paper" and out["img"].shape == call["args"][0]["img"].shape
        n = out["cls"].shape[0]
        assert out["bboxes"].shape == (n, 4) and out["batch_idx"].shape == (n,)
        assert ((out["batch_idx"] >= 0) & (out["batch_idx"] < b)).all()
        assert ((out["bboxes"] >= 0) & (out["bboxes"] <= 1)).all() and (out["bboxes"][:, 2:] > 0).all()
        cropped += int(info["crop"].sum())
    assert cropped > 0  # the synthetic set has large objects, so the crop branch (which moves boxes) ran

    results = read_results(tmp_path / "paper")
    assert results["train/fgd_loss"][0] > 0 and results["train/adv_loss"][0] > 0
    assert all(torch.isfinite(torch.tensor(v)).all() for v in results.values())


def test_zero_attack_steps_turn_the_adversarial_term_off(tmp_path, synthetic_data, teacher_pt, ultralytics_log):
    """adv_steps=0 makes no adversarial images: the term is off (not the clean batch distilled twice), said once."""
    from ikd_yolo.config import resolve_distill_config
    from ikd_yolo.model import FeatureDistiller

    trainer = IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(teacher_pt), "data": str(synthetic_data),
                                    "distill": "ikd-fgd-full", "adv_steps": 0, **train_kwargs(tmp_path, "zero")})
    assert trainer.attack is None
    assert sum("adv_steps=0 makes no adversarial images" in m for m in ultralytics_log) == 1
    cfg = resolve_distill_config({"distill": "ikd-fgd-full", "adv_steps": 0})
    assert FeatureDistiller([16, 32, 64], [32, 64, 128], cfg).term_names == ["fgd_loss"]
