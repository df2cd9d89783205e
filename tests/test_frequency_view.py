"""freq_apply=view: the frequency-mixed images as a distillation-only stream. The detection loss keeps the clean
batch; teacher and student run on the mixed images, which the base loss distils at positions weighted by the
teacher's clean scores; its term is its own loss column. freq_apply=shared: the online attack starts from the mixed
images, so the adversarial stream carries both parts."""

from __future__ import annotations

import pytest
import torch

from helpers import read_results, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.cli import main
from ikd_yolo.config import DistillConfigError, resolve_distill_config
from ikd_yolo.model import TEACHER_FEATS, TEACHER_HEAD, FeatureDistiller, IKDModel
from ikd_yolo.streams import STREAMS_KEY

VIEW = dict(freq_mode="spectral", freq_apply="view", freq_p=1.0)


def test_parts_are_named_by_their_stream():
    distiller = FeatureDistiller([8], [8], resolve_distill_config({"distill": "ikd-score", **VIEW}))
    assert [distiller.term_of(k) for k in ("score.feat", "score.box", "adv", "adv.cls", "freq", "freq.feat")] == [
        "score_loss", "score_loss", "adv_loss", "adv_loss", "freq_loss", "freq_loss"]


def test_view_term_is_the_base_loss_on_the_mixed_images_times_freq_weight():
    torch.manual_seed(0)
    cfg = resolve_distill_config({"distill": "mse", "weights": "fixed", **VIEW, "freq_weight": 0.25})
    distiller = FeatureDistiller([8, 16], [8, 16], cfg)
    assert [s.name for s in distiller.streams] == ["freq"] and distiller.term_names == ["mse_loss", "freq_loss"]
    student = [torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2)]
    teacher = [torch.randn(2, 8, 4, 4), torch.randn(2, 16, 2, 2)]
    base = distiller.base_parts(student, teacher, [])
    view = distiller.stream_terms(distiller.streams[0], student, teacher, [])
    assert set(view) == {"freq"} and torch.equal(view["freq"], 0.25 * base["mse"])  # a lone part: "freq"
    # by hand: MSE's mean squared difference (equal widths: no adapter) times its fixed weight, summed over levels
    by_hand = sum(cfg["mse_weight"] * (s - t).square().mean() for s, t in zip(student, teacher))
    assert torch.allclose(base["mse"], by_hand)


def test_no_view_stream_without_the_view_or_with_zero_weight():
    assert FeatureDistiller([8], [8], resolve_distill_config({"distill": "mse", **VIEW, "freq_apply": "replace"})
                            ).streams == ()
    assert FeatureDistiller([8], [8], resolve_distill_config({"distill": "mse", **VIEW, "freq_weight": 0.0})
                            ).streams == ()


def test_view_settings_that_contradict_are_one_line():
    with pytest.raises(DistillConfigError, match="^freq_apply=view needs freq_mode=spectral"):
        resolve_distill_config({"distill": "ikd-fgd-paper", "freq_apply": "view"})
    with pytest.raises(DistillConfigError, match="^freq_apply=view distils the mixed images with the base loss"):
        resolve_distill_config({"distill": "mse", **VIEW, "kd_loss": "none", "adv_weight": 0.5})


def test_shared_settings_that_contradict_are_one_line():
    shared = dict(freq_mode="spectral", freq_apply="shared")
    with pytest.raises(DistillConfigError, match="^freq_apply=shared needs freq_mode=spectral"):
        resolve_distill_config({"distill": "ikd-fgd-paper", "freq_apply": "shared"})
    with pytest.raises(DistillConfigError, match="^freq_apply=shared starts the attack from the mixed images, and "
                                                 "this run has no attack"):
        resolve_distill_config({"distill": "score", **shared})
    with pytest.raises(DistillConfigError, match="^freq_apply=shared needs adv_mode=online"):
        resolve_distill_config({"distill": "ikd-score", **shared})  # ikd-score attacks from its cache
    assert resolve_distill_config({"distill": "ikd-score", **shared, "adv_mode": "online"})["freq_apply"] == "shared"


def test_shared_attack_starts_from_the_mixed_images_and_the_clean_batch_stays(tmp_path, synthetic_data, teacher_pt):
    # a zero step size leaves the attack where it starts (the projection clamps to the start's own range), so the
    # adversarial images are exactly the mixed images the augmentation drew
    trainer = IKDTrainer(overrides=dict(
        model="yolo11n.yaml", teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-score", weights="fixed",
        freq_mode="spectral", freq_apply="shared", freq_p=1.0, adv_mode="online", adv_steps=1, adv_step_size=0.0,
        **train_kwargs(tmp_path, "shared")))
    trainer._setup_train()
    trainer.epoch = 0
    raw = next(iter(trainer.train_loader))
    clean = super(IKDTrainer, trainer).preprocess_batch(dict(raw))
    torch.manual_seed(0)
    batch = trainer.distillation_batch(dict(raw), trainer.streams)
    torch.manual_seed(0)
    mixed = trainer.freq_augment(dict(clean))["img"]
    assert not torch.equal(mixed, clean["img"])
    assert torch.equal(batch["img"], clean["img"])  # the detection loss trains on the clean images
    assert torch.equal(batch[STREAMS_KEY]["adv"].img, mixed)
    assert torch.equal(batch[TEACHER_FEATS][0], trainer.teacher.features(clean["img"])[0])  # clean maps, not mixed
    assert list(batch[STREAMS_KEY]) == ["adv"]  # one extra stream, not two
    quiet = trainer.distillation_batch(dict(raw), [])  # a step without an attack mixes nothing
    assert torch.equal(quiet["img"], clean["img"]) and STREAMS_KEY not in quiet


@pytest.fixture
def view_trainer(tmp_path, synthetic_data, teacher_pt):
    """A set-up ikd-score trainer with the frequency view on every image and no attack."""
    trainer = IKDTrainer(overrides=dict(model="yolo11n.yaml", teacher=str(teacher_pt), data=str(synthetic_data),
                                        distill="score", weights="fixed", **VIEW, **train_kwargs(tmp_path, "view")))
    trainer._setup_train()
    trainer.epoch = 0  # the first epoch: inside the augmentation phase
    return trainer


def test_the_detection_loss_keeps_the_clean_batch_and_the_view_carries_the_mixed_images(view_trainer):
    trainer = view_trainer
    raw = next(iter(trainer.train_loader))
    torch.manual_seed(0)
    batch = trainer.distillation_batch(dict(raw), trainer.streams)
    clean = super(IKDTrainer, trainer).preprocess_batch(dict(raw))["img"]
    assert torch.equal(batch["img"], clean)  # what the detection loss trains on
    n = clean.shape[0]
    view = batch[STREAMS_KEY]["freq"]
    assert view.index.tolist() == list(range(n))  # freq_p=1: every image is mixed
    assert view.img.shape == clean.shape and not torch.equal(view.img, clean)
    assert torch.equal(view.teacher_feats[0], trainer.teacher.features(view.img)[0])
    assert set(view.teacher_head) == set(batch[TEACHER_HEAD])
    for name, value in view.weigher.items():  # positions weighted by the teacher's scores on the clean images
        assert torch.equal(value, batch[TEACHER_HEAD][name][view.index])
    model: IKDModel = trainer.model
    loss, items = model.loss(batch)
    parts = model.distill_parts(batch, *model.student_features(batch["img"]))
    assert {k for k in parts if k.startswith("freq")} == {"freq.feat", "freq.cls", "freq.box"}
    freq = sum(v for k, v in parts.items() if k.startswith("freq"))
    assert torch.allclose(items["freq_loss"], freq.float(), rtol=1e-5) and float(items["freq_loss"]) > 0
    assert loss.shape == (len(items),) and torch.allclose(loss[-1], freq.float() * n, rtol=1e-5)


def test_outside_the_augmentation_phase_there_is_no_view(view_trainer):
    trainer = view_trainer
    trainer.epoch = trainer.epochs  # past ikd_phase
    batch = trainer.distillation_batch(dict(next(iter(trainer.train_loader))), trainer.streams)
    assert STREAMS_KEY not in batch
    _, items = trainer.model.loss(batch)
    assert float(items["freq_loss"]) == 0.0  # a zero column, not a missing one


def test_a_view_run_trains_with_its_own_loss_column(tmp_path, synthetic_data, teacher_pt, capsys):
    words = [f"{k}={v}" for k, v in train_kwargs(tmp_path, "run", val=False).items()]
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}", "distill=score",
                 "freq_mode=spectral", "freq_apply=view", "ikd_phase=1.0", *words]) == 0
    results = read_results(tmp_path / "run")
    assert results["train/freq_loss"][0] > 0 and results["train/score_loss"][0] > 0


def test_show_aug_says_who_sees_which_image(tmp_path, synthetic_data, monkeypatch):
    from matplotlib.figure import Figure

    titles = []
    monkeypatch.setattr(Figure, "suptitle", lambda self, text, **kw: titles.append(text))
    for apply in ("replace", "view", "shared"):
        out = tmp_path / f"{apply}.png"
        assert main(["show-aug", f"data={synthetic_data}", "distill=ikd-fgd-full", f"freq_apply={apply}", "n=2",
                     "imgsz=64", f"out={out}"]) == 0
        assert out.read_bytes()[:4] == b"\x89PNG"
    assert "the mixed images are the training batch" in titles[0]
    assert "the detection loss trains on the clean images" in titles[1]
    assert "the attack starts from the mixed ones" in titles[2]
