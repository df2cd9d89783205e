"""End to end: short `ikd-yolo train` runs, a frozen teacher, plain checkpoints, resume, and early errors."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel, SegmentationModel

from helpers import read_results, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.cli import main
from ikd_yolo.teacher import TeacherError, load_teacher


def cli_words(**kwargs) -> list[str]:
    return [f"{k}={v}" for k, v in kwargs.items()]


# MGD's default weight is set for 640 px; at 64 px its sum over 100x fewer positions would round to 0 in results.csv
@pytest.mark.parametrize("loss, extra", [("mse", {}), ("cwd", {}), ("mgd", {"mgd_alpha": 1e-5}), ("fgd", {})])
def test_cli_train_each_loss(loss, extra, tmp_path, synthetic_data, teacher_pt):
    kwargs = train_kwargs(tmp_path, loss, **extra)
    code = main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}", f"distill={loss}",
                 *cli_words(**kwargs)])
    assert code == 0
    results = read_results(tmp_path / loss)
    column = results[f"train/{loss}_loss"]
    assert len(column) == 1 and column[0] > 0 and torch.isfinite(torch.tensor(column)).all()
    assert f"val/{loss}_loss" not in results  # validation has no teacher: no column of zeros
    assert {"val/box_loss", "val/cls_loss", "val/dfl_loss"} <= set(results)
    assert (tmp_path / loss / "weights" / "best.pt").exists()


def test_console_script_and_plain_checkpoint_in_fresh_process(tmp_path, synthetic_data, teacher_pt):
    kwargs = train_kwargs(tmp_path, "cli")
    run = subprocess.run(
        ["ikd-yolo", "train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}",
         "distill=fgd", *cli_words(**kwargs)], capture_output=True, text=True, timeout=600,
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert "fgd_loss" in run.stdout + run.stderr  # the progress-bar header carries our column
    best = tmp_path / "cli" / "weights" / "best.pt"
    script = textwrap.dedent(f"""
        import sys
        from ultralytics import YOLO
        model = YOLO({str(best)!r})
        results = model.predict({str(synthetic_data.parent / 'images' / 'val')!r}, imgsz=64, verbose=False)
        metrics = model.val(data={str(synthetic_data)!r}, imgsz=64, batch=8, workers=0, plots=False, verbose=False)
        assert len(results) == 8 and metrics.box.map >= 0
        assert not hasattr(model.model, "ikd_state")
        leaked = [m for m in sys.modules if m.split(".")[0] == "ikd_yolo"]
        assert not leaked, leaked
        print("PLAIN-OK")
    """)
    check = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300,
                           cwd=tmp_path)
    assert "PLAIN-OK" in check.stdout, check.stderr[-2000:]


def test_teacher_frozen_and_outside_everything_saved(tmp_path, synthetic_data, teacher_pt):
    model = YOLO("yolo11n.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="ikd-fgd-full", adv_steps=1,
                data=str(synthetic_data), **train_kwargs(tmp_path, "frozen"))
    trainer = model.trainer
    reference = load_teacher(teacher_pt, nc=8).state_dict()
    after = trainer.teacher.model.state_dict()
    assert reference.keys() == after.keys()
    assert all(torch.equal(reference[k], after[k]) for k in reference)  # weights and BN buffers bit-identical
    assert not trainer.teacher.training and not any(p.requires_grad for p in trainer.teacher.parameters())
    trainer.teacher.train()  # a stray .train() from anyone must not flip BN to training behaviour
    assert not any(m.training for m in trainer.teacher.modules())
    teacher_ids = {id(p) for p in trainer.teacher.parameters()}
    optimised = {id(p) for group in trainer.optimizer.param_groups for p in group["params"]}
    assert not teacher_ids & optimised
    assert {k.split(".")[0] for k in trainer.ema.ema.state_dict()} == {"student", "distiller"}
    saved = torch.load(trainer.last, weights_only=False)["model"]
    assert type(saved).__name__ == "DetectionModel"
    assert set(saved.state_dict()) == set(YOLO("yolo11n.yaml").model.state_dict())  # no adapters, no teacher


class StopAfterFirstEpoch(Exception):
    """Raised from a callback to interrupt a run once its first checkpoint is on disk."""


def test_resume_keeps_distillation_config_and_distiller(tmp_path, synthetic_data, teacher_pt):
    def stop(trainer):
        if trainer.epoch == 0:
            raise StopAfterFirstEpoch

    model = YOLO("yolo11n.yaml")
    model.add_callback("on_fit_epoch_end", stop)
    with pytest.raises(StopAfterFirstEpoch):
        model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="mgd", mgd_ratio=0.5, mgd_alpha=1e-5,
                    data=str(synthetic_data), **train_kwargs(tmp_path, "resume", epochs=2))
    last = tmp_path / "resume" / "weights" / "last.pt"
    saved = torch.load(last, weights_only=False)["ema"].ikd_state  # mid-run checkpoints keep the EMA
    assert saved["config"]["kd_loss"] == "mgd" and saved["config"]["mgd_ratio"] == 0.5

    resumed = YOLO(last)
    captured = {}
    resumed.add_callback("on_train_start", lambda t: captured.update(
        distill=dict(t.distill), generator=t.model.distiller.base[0].generator[0].weight.detach().clone()))
    resumed.train(trainer=IKDTrainer, resume=True, kd_loss="fgd")  # the changed key is ignored, with a warning
    assert captured["distill"] == saved["config"]
    assert torch.equal(captured["generator"], saved["distiller"]["base.0.generator.0.weight"].float())
    results = read_results(tmp_path / "resume")
    assert results["epoch"] == [1.0, 2.0] and all(v > 0 for v in results["train/mgd_loss"])


def test_errors_before_training(tmp_path, synthetic_data, teacher_pt):
    fewer_classes = yaml.safe_load(synthetic_data.read_text())
    fewer_classes["names"] = fewer_classes["names"][:6] if isinstance(fewer_classes["names"], list) else {
        i: fewer_classes["names"][i] for i in range(6)}
    fewer_classes["nc"] = 6
    fewer_classes["path"] = str(synthetic_data.parent)
    other_data = tmp_path / "six.yaml"
    other_data.write_text(yaml.safe_dump(fewer_classes))
    with pytest.raises(TeacherError, match=r"predicts 8 classes but the data has nc=6: use a teacher trained on"):
        IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(teacher_pt), "data": str(other_data),
                              **train_kwargs(tmp_path, "nc")})

    with pytest.raises(TeacherError, match="teacher has 3 detection levels but the student has 4"):
        IKDTrainer(overrides={"model": "yolo26-p2.yaml", "teacher": str(teacher_pt), "data": str(synthetic_data),
                              **train_kwargs(tmp_path, "levels")})
    assert not (tmp_path / "levels").exists()  # refused before Ultralytics made the run folder

    seg = tmp_path / "seg.pt"
    torch.save({"model": SegmentationModel("yolo11n-seg.yaml", nc=8, verbose=False)}, seg)
    assert type(load_teacher(seg, nc=8)) is SegmentationModel  # a detection head with a mask branch: accepted

    junk = tmp_path / "junk.pt"
    junk.write_text("not a checkpoint")
    with pytest.raises(TeacherError, match="cannot be read .* the file is truncated or not a PyTorch checkpoint"):
        load_teacher(junk, nc=8)


def test_nan_recovery_reloads_the_last_checkpoint(tmp_path, synthetic_data, teacher_pt):
    """Ultralytics' NaN recovery reloads last.pt into the trained module and the EMA; IKD checkpoints must serve it."""
    epochs_ended = []

    def poison_once(trainer):
        epochs_ended.append(trainer.epoch)
        if epochs_ended == [0, 1]:
            trainer.loss = torch.tensor(float("nan"))  # as if the second epoch had diverged

    model = YOLO("yolo11n.yaml")
    model.add_callback("on_train_epoch_end", poison_once)
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="fgd", data=str(synthetic_data),
                **train_kwargs(tmp_path, "nan", epochs=3))
    assert epochs_ended == [0, 1, 1, 2]  # epoch 2 was redone from epoch 1's checkpoint
    assert read_results(tmp_path / "nan")["epoch"] == [1.0, 2.0, 3.0]


def test_nan_in_one_ema_tensor_is_repaired_and_the_run_finishes(tmp_path, synthetic_data, teacher_pt):
    """One non-finite EMA value (student or distiller) is resynced from the live model, as plain Ultralytics does."""

    def poison(trainer):
        if trainer.epoch == 0:
            with torch.no_grad():
                trainer.ema.ema.student.model[0].conv.weight[0, 0, 0, 0] = float("nan")
                next(trainer.ema.ema.distiller.parameters()).view(-1)[0] = float("inf")

    model = YOLO("yolo11n.yaml")
    model.add_callback("on_train_epoch_end", poison)
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), distill="mgd", data=str(synthetic_data),
                **train_kwargs(tmp_path, "nan", epochs=2))
    for name in ("last.pt", "best.pt"):
        ckpt = torch.load(tmp_path / "nan" / "weights" / name, weights_only=False)
        saved = ckpt["ema"] or ckpt["model"]  # a finished run's checkpoints hold the EMA as "model"
        assert isinstance(saved, DetectionModel)
        assert all(torch.isfinite(v).all() for v in saved.state_dict().values() if v.is_floating_point())
