"""weights=auto: each unset loss weight is measured on a few training batches before the first step, so that its term
starts at kd_share detection-loss items; explicit weights stay; the measurement leaves no trace; resume reuses it."""

from __future__ import annotations

import pytest
import torch

from helpers import read_results, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.auto_weights import AUTO_BATCHES, choose_weights, measure_terms, measurement_batches, preserved_state
from ikd_yolo.config import adversarial_term_on, auto_keys, resolve_distill_config
from ikd_yolo.model import IKDModel


def test_weight_is_the_share_over_the_unit_value():
    keys = {"fgd.fg": "fgd_alpha", "fgd.bg": "fgd_beta", "adv": "adv_weight"}
    one = choose_weights({"fgd.fg": 4.0, "fgd.bg": 0.5, "adv": 0.0}, keys, detection_item=2.0, share=1.5)
    assert one == {"fgd_alpha": 0.75, "fgd_beta": 6.0, "adv_weight": 0.0}  # 1.5 * 2 / value; nothing to compare: 0
    doubled = choose_weights({"fgd.fg": 8.0, "fgd.bg": 0.5, "adv": 0.0}, keys, detection_item=2.0, share=1.5)
    assert doubled["fgd_alpha"] == one["fgd_alpha"] / 2 and doubled["fgd_beta"] == one["fgd_beta"]


def test_only_the_unset_weights_are_auto():
    cfg = resolve_distill_config({"distill": "ikd-fgd-full", "fgd_alpha": 1e-3})
    assert cfg["fgd_alpha"] == 1e-3 and {"fgd_beta", "fgd_gamma", "fgd_lambda", "adv_weight"} <= set(auto_keys(cfg))
    assert not adversarial_term_on(resolve_distill_config({"distill": "fgd"}))  # the preset turns the stream off
    fixed = resolve_distill_config({"distill": "ikd-fgd-full", "weights": "fixed"})
    assert auto_keys(fixed) == [] and fixed["fgd_beta"] == 2.5e-6


@pytest.fixture
def measured(tmp_path, synthetic_data, teacher_pt):
    """An ikd-fgd trainer set up with weights=auto and fgd_alpha given, counting the batches its measurement drew."""
    trainer = IKDTrainer(overrides=dict(model="yolo11n.yaml", teacher=str(teacher_pt), data=str(synthetic_data),
                                        distill="ikd-fgd-full", fgd_alpha=1e-3, kd_share=0.5, adv_steps=1,
                                        **train_kwargs(tmp_path, "auto", val=False)))
    drawn = []
    inputs = trainer._distillation_inputs
    trainer._distillation_inputs = lambda batch, streams: drawn.append([s.name for s in streams]) or inputs(batch,
                                                                                                            streams)
    trainer._setup_train()
    trainer._distillation_inputs = inputs
    return trainer, drawn


def test_measured_weights_put_each_term_at_its_share(measured):
    trainer, drawn = measured
    report = trainer.auto_weight_report
    assert drawn == [["adv"]] * AUTO_BATCHES and report["batches"] == AUTO_BATCHES  # a few batches, each attacked
    assert trainer.distill["fgd_alpha"] == 1e-3  # explicit: never measured
    assert auto_keys(trainer.distill) == [] and set(report["weights"]) == {"fgd_beta", "fgd_gamma", "fgd_lambda",
                                                                           "adv_weight"}
    model: IKDModel = trainer.model
    adv_weight = model.distiller.stream_weights["adv"]
    assert model.distiller.base[0].beta == trainer.distill["fgd_beta"] and adv_weight == trainer.distill["adv_weight"]
    assert adv_weight > 0 and trainer.ema.ema.distiller.stream_weights["adv"] == adv_weight
    # the same batches again (the measurement restores the random state) now give kd_share items per auto term
    with preserved_state(model):
        parts, det, _ = measure_terms(model, measurement_batches(trainer, AUTO_BATCHES))
    assert det == pytest.approx(report["detection_item"], rel=1e-6)
    assert set(report["keys"]) == {"fgd.bg", "fgd.att", "fgd.global", "adv"}
    for part in report["keys"]:
        assert parts[part] == pytest.approx(0.5 * det, rel=1e-4), part
    assert parts["fgd.fg"] == pytest.approx(report["values"]["fgd.fg"], rel=1e-6)  # fixed: unchanged
    saved = (trainer.save_dir / "args.yaml").read_text()
    assert "fgd_beta: auto" not in saved and f"fgd_beta: {trainer.distill['fgd_beta']}" in saved


def test_measurement_leaves_no_trace(tmp_path, synthetic_data, teacher_pt):
    """A run that measures trains exactly like one given the measured numbers (same batches, same augmentation)."""
    from ultralytics import YOLO

    common = dict(teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-fgd-full", adv_steps=1)
    auto = YOLO("yolo11n.yaml")
    auto.train(trainer=IKDTrainer, **common, **train_kwargs(tmp_path, "auto", val=False))
    numbers = auto.trainer.auto_weight_report["weights"]
    YOLO("yolo11n.yaml").train(trainer=IKDTrainer, **common, weights="fixed", **numbers,
                               **train_kwargs(tmp_path, "fixed", val=False))
    a, b = read_results(tmp_path / "auto"), read_results(tmp_path / "fixed")
    for column in ("train/box_loss", "train/cls_loss", "train/fgd_loss", "train/adv_loss"):
        assert a[column] == b[column], column


def test_resume_uses_the_measured_weights(killed_run):
    """The killed run measured its weights at its start: its checkpoint holds the numbers, resume measures nothing."""
    saved = torch.load(killed_run["last"], weights_only=False)["ema"].ikd_state["config"]
    trainer = IKDTrainer(overrides={"model": str(killed_run["last"]), "resume": str(killed_run["last"])})
    assert auto_keys(trainer.distill) == [] and trainer.distill["mgd_alpha"] == saved["mgd_alpha"] > 0
    assert saved["weights"] == "auto" and isinstance(saved["adv_weight"], float)


def test_a_runs_args_yaml_as_cfg_measures_its_weights_again(tmp_path, finished_run, ultralytics_log):
    """`train cfg=<run>/args.yaml`: the file's measured numbers are that run's; with weights=auto this run measures
    its own, except the weights the command line gives (a weight of 0 in the file would stay: a term turned off)."""
    import yaml

    from ikd_yolo.cli import main

    args = yaml.safe_load((finished_run / "args.yaml").read_text())
    assert args["weights"] == "auto" and args["fgd_alpha"] > 0 and args["adv_mode"] == "off"  # fgd: no extra stream
    cfg = tmp_path / "args.yaml"
    cfg.write_text(yaml.safe_dump({**args, "fgd_alpha": 123.0, "fgd_gamma": 0.0}))
    assert main(["train", f"cfg={cfg}", f"project={tmp_path}", "name=again", "fgd_beta=0.5"]) == 0
    again = yaml.safe_load((tmp_path / "again" / "args.yaml").read_text())
    assert 0 < again["fgd_alpha"] != 123.0 and again["fgd_lambda"] != "auto"  # measured by this run
    assert again["fgd_beta"] == 0.5 and again["fgd_gamma"] == 0.0 and again["adv_mode"] == "off"
    assert [m for m in ultralytics_log if "again (the numbers" in m] == [
        f"ikd-yolo: weights=auto measures fgd_alpha, fgd_lambda again (the numbers in cfg={cfg} are an earlier "
        "run's); kept as given on the command line: fgd_beta"]


def test_weights_are_measured_with_images_cached_in_ram(tmp_path, synthetic_data, teacher_pt):
    """cache=ram keeps the images in one store that is not a list (and that loading never changes): the measurement
    leaves it as it is and training goes on from it."""
    from ultralytics import YOLO

    model = YOLO("yolo11n.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), data=str(synthetic_data), distill="fgd", cache="ram",
                **train_kwargs(tmp_path, "ram", val=False))
    dataset = model.trainer.train_loader.dataset
    assert not isinstance(dataset.ims, list) and dataset.ims[0].shape[-1] == 3  # Ultralytics' RAM image store
    assert model.trainer.auto_weight_report["weights"]["fgd_alpha"] > 0
    assert read_results(tmp_path / "ram")["train/fgd_loss"][0] > 0
