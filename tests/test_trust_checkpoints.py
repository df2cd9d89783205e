"""Trust: no code runs from a checkpoint, no run writes into its teacher's folder, checkpoint writes are atomic, a
resume with a teacher of another width is one line."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import DetectionModel

from helpers import train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.checkpoints import STATE_ATTR, UntrustedCheckpoint, load_pt, read_state
from ikd_yolo.cli import main
from ikd_yolo.config import DistillConfigError, check_value
from ikd_yolo.errors import TeacherError
from ikd_yolo.preflight import run_folder


class _TouchesMarker:
    """Pickles as a call of Path.touch(marker): loading the checkpoint with plain pickle creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return Path.touch, (self.marker,)


class _CallsModelClass:
    """Pickles as DetectionModel(cfg) with an activation that creates the marker when the model is built: every type
    in it is allow-listed, only the call is not."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        cfg = {"nc": 1, "act": f"__import__('pathlib').Path({str(self.marker)!r}).touch()",
               "backbone": [[-1, 1, "Conv", [16, 3, 2]]], "head": [[[0], 1, "Detect", ["nc"]]]}
        return DetectionModel, (cfg,)


def _detector(data: Path, cfg: str = "yolo11n.yaml") -> DetectionModel:
    """An untrained detection model with the dataset's classes (a teacher or student the checks accept)."""
    names = yaml.safe_load(Path(data).read_text())["names"]
    model = DetectionModel(cfg, nc=len(names), verbose=False)
    model.names = dict(enumerate(names)) if isinstance(names, list) else names
    return model


def _hostile_checkpoint(path: Path, data: Path, payload: object) -> Path:
    """A checkpoint with a real detection model plus `payload` next to it."""
    torch.save({"model": _detector(data), "epoch": 0, "extra": payload}, path)
    return path


def _one_error_line(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    return err


# ---- 1. the safe reader ----------------------------------------------------------------------------------------------
def test_checkpoints_written_by_ikd_yolo_and_by_plain_ultralytics_load_with_the_safe_reader(killed_run, teacher_pt,
                                                                                            finished_run):
    mid_run = load_pt(killed_run["last"])  # ikd-yolo mid-run: EMA student with the resume state and the optimizer
    assert isinstance(mid_run["ema"], DetectionModel) and mid_run["optimizer"] is not None
    assert set(read_state(mid_run)) == {"config", "distiller"}
    assert isinstance(load_pt(killed_run["mid_epoch"])["ema"], DetectionModel)
    assert isinstance(load_pt(teacher_pt)["model"], DetectionModel)  # plain Ultralytics training
    for name in ("last.pt", "best.pt"):  # an ikd-yolo run that finished
        ckpt = load_pt(finished_run / "weights" / name)
        assert isinstance(ckpt["model"], DetectionModel) and not hasattr(ckpt["model"], STATE_ATTR)


@pytest.mark.parametrize("role", ["teacher", "model", "resume", "val", "bench", "pretrained", "bench_pretrained"])
def test_checkpoint_whose_pickle_writes_a_marker_is_refused_in_one_line_and_the_marker_never_appears(
        role, tmp_path, synthetic_data, teacher_pt, capsys):
    marker = tmp_path / "marker"
    evil = _hostile_checkpoint(tmp_path / "evil.pt", synthetic_data, _TouchesMarker(marker))
    common = [f"data={synthetic_data}", f"project={tmp_path / 'runs'}", "name=r", "epochs=1", "imgsz=64",
              "device=cpu", "workers=0"]
    argv = {"teacher": ["train", "model=yolo11n.yaml", f"teacher={evil}", *common],
            "model": ["train", f"model={evil}", f"teacher={teacher_pt}", *common],
            "resume": ["train", "resume", f"model={evil}", f"teacher={teacher_pt}"],
            "val": ["val", f"model={evil}", f"data={synthetic_data}", "imgsz=64", "device=cpu"],
            "bench": ["bench-distill", f"teacher={evil}", f"data={synthetic_data}", "methods=fgd", "seeds=1",
                      "epochs=1", "imgsz=64", f"out={tmp_path / 'runs'}", f"project={tmp_path / 'runs'}"],
            "pretrained": ["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"pretrained={evil}", *common],
            "bench_pretrained": ["bench-distill", f"teacher={teacher_pt}", f"data={synthetic_data}",
                                 f"methods=none[pretrained={evil}]", "seeds=1", "epochs=1", "imgsz=64",
                                 f"out={tmp_path / 'runs'}", f"project={tmp_path / 'runs'}"]}[role]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    key = {"resume": "resume", "val": "model", "bench": "teacher", "bench_pretrained": "pretrained"}.get(role, role)
    assert f"{key}={evil} is refused: loading it would unpickle builtins.getattr" in line  # Path.touch, via getattr
    assert line.endswith("if you trust this file, pass trust_checkpoints=True")
    assert not marker.exists()
    assert not (tmp_path / "runs").exists()


def test_checkpoint_calling_a_model_class_with_crafted_arguments_is_refused(tmp_path, synthetic_data):
    marker = tmp_path / "marker"
    evil = _hostile_checkpoint(tmp_path / "evil.pt", synthetic_data, _CallsModelClass(marker))
    with pytest.raises(UntrustedCheckpoint, match="would call ultralytics.nn.tasks.DetectionModel with arguments"):
        load_pt(evil, key="teacher")
    assert not marker.exists()


def test_trust_checkpoints_true_loads_the_file_and_so_runs_its_pickle(tmp_path, synthetic_data, teacher_pt):
    """The opt-in is honoured: the file is read as plain torch.load reads it, so the marker appears."""
    marker = tmp_path / "marker"
    evil = _hostile_checkpoint(tmp_path / "evil.pt", synthetic_data, _TouchesMarker(marker))
    IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(evil), "data": str(synthetic_data),
                          "trust_checkpoints": True, **train_kwargs(tmp_path, "trusted")})
    assert marker.exists()


def test_ultralytics_safe_load_wins_over_trust_checkpoints(tmp_path, synthetic_data, monkeypatch):
    marker = tmp_path / "marker"
    evil = _hostile_checkpoint(tmp_path / "evil.pt", synthetic_data, _TouchesMarker(marker))
    monkeypatch.setattr("ikd_yolo.checkpoints.safe_load_forced", lambda: True)
    with pytest.raises(TeacherError, match="ULTRALYTICS_SAFE_LOAD is set, which trust_checkpoints=True does not"):
        IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(evil), "data": str(synthetic_data),
                              "trust_checkpoints": True, **train_kwargs(tmp_path, "forced")})
    assert not marker.exists() and not (tmp_path / "forced").exists()


def test_trust_checkpoints_takes_only_true_or_false():
    assert check_value("trust_checkpoints", "true") is True and check_value("trust_checkpoints", False) is False
    with pytest.raises(DistillConfigError, match=r"trust_checkpoints='yes please' must be True or False"):
        check_value("trust_checkpoints", "yes please")


# ---- 2. a run never writes into the folder of a checkpoint it reads ------------------------------------------------
def test_student_run_pointed_at_the_teachers_run_folder_is_refused_and_the_teacher_is_untouched(
        tmp_path, synthetic_data, teacher_pt, capsys):
    run = tmp_path / "teachers" / "big"
    (run / "weights").mkdir(parents=True)
    teacher = run / "weights" / "best.pt"
    shutil.copy(teacher_pt, teacher)
    before = teacher.read_bytes()
    listing = sorted(run.rglob("*"))
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher}", f"data={synthetic_data}",
                 f"project={run.parent}", "name=big", "exist_ok=True", "epochs=1", "imgsz=64", "device=cpu"]) == 2
    assert _one_error_line(capsys) == (
        f"ikd-yolo train: error: teacher={teacher} lies inside {run.resolve()}, the folder this run would write its "
        "weights and results into: pass another project= or name= (or move the teacher checkpoint out)")
    assert teacher.read_bytes() == before and sorted(run.rglob("*")) == listing
    assert sorted(p.name for p in run.parent.iterdir()) == ["big"]  # no new run folder either


def test_fine_tuning_a_student_into_its_own_run_folder_is_refused(tmp_path, synthetic_data, teacher_pt, capsys):
    run = tmp_path / "students" / "s"
    (run / "weights").mkdir(parents=True)
    student = run / "weights" / "last.pt"
    shutil.copy(teacher_pt, student)  # any detection checkpoint of these classes
    assert main(["train", f"model={student}", f"teacher={teacher_pt}", f"data={synthetic_data}",
                 f"project={run.parent}", "name=s", "exist_ok=True", "epochs=1", "imgsz=64", "device=cpu"]) == 2
    assert _one_error_line(capsys).startswith(f"ikd-yolo train: error: model={student} lies inside {run.resolve()}")


def test_run_folder_is_the_one_ultralytics_would_create(tmp_path):
    (tmp_path / "p" / "x").mkdir(parents=True)
    project = str(tmp_path / "p")
    assert run_folder({"project": project, "name": "x", "exist_ok": True}) == (tmp_path / "p" / "x").resolve()
    assert run_folder({"project": project, "name": "x"}) == (tmp_path / "p" / "x-2").resolve()  # numbered
    assert run_folder({"project": "rel", "name": "x"}).parts[-3:] == ("detect", "rel", "x")  # under runs/<task>/


# ---- 3. atomic checkpoint writes -------------------------------------------------------------------------------------
def test_finished_run_leaves_no_temporary_files_and_loadable_checkpoints(finished_run):
    weights = finished_run / "weights"
    assert sorted(p.name for p in weights.iterdir()) == ["best.pt", "last.pt"]  # no staging folder left behind
    assert all(load_pt(weights / n)["epoch"] == -1 for n in ("best.pt", "last.pt"))


def test_checkpoint_write_cut_halfway_leaves_the_previous_last_pt_intact(tmp_path, synthetic_data, teacher_pt,
                                                                         monkeypatch):
    real_write = Path.write_bytes
    saved = {}

    def disk_full_on_second_save(self: Path, data: bytes) -> int:
        if saved and self.name == "last.pt":
            real_write(self, data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(self, data)

    def keep_first(trainer) -> None:
        saved.setdefault("bytes", trainer.last.read_bytes())

    monkeypatch.setattr(Path, "write_bytes", disk_full_on_second_save)
    model = YOLO("yolo11n.yaml")
    model.add_callback("on_model_save", keep_first)
    with pytest.raises(OSError, match="No space left on device"):
        model.train(trainer=IKDTrainer, teacher=str(teacher_pt), data=str(synthetic_data), distill="fgd",
                    **train_kwargs(tmp_path, "full", epochs=2, val=False))
    weights = tmp_path / "full" / "weights"
    assert (weights / "last.pt").read_bytes() == saved["bytes"]
    assert load_pt(weights / "last.pt")["epoch"] == 0
    assert not [p for p in weights.iterdir() if p.name.startswith(".")]  # the staging folder went with the error


def test_a_full_disk_while_training_is_one_line_and_the_previous_checkpoint_stays(tmp_path, synthetic_data,
                                                                                    teacher_pt, monkeypatch, capsys):
    real_write = Path.write_bytes
    saves = []

    def disk_full_on_second_save(self: Path, data: bytes) -> int:
        if self.name == "last.pt" and len(saves) == 1:
            raise OSError(28, "No space left on device")  # what write() raises: errno, no file name
        saves.extend([data] if self.name == "last.pt" else [])
        return real_write(self, data)

    monkeypatch.setattr(Path, "write_bytes", disk_full_on_second_save)
    words = [f"{k}={v}" for k, v in train_kwargs(tmp_path, "full", epochs=2, val=False).items()]
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}", "distill=fgd",
                 *words]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1] == ("ikd-yolo train: error: No space left on device: free some space, then go on with `ikd-yolo "
                       "train resume model=<the run>/weights/last.pt` (what was written before is whole)")
    assert not any("Traceback" in line for line in err)
    last = tmp_path / "full" / "weights" / "last.pt"
    assert last.read_bytes() == saves[0] and load_pt(last)["epoch"] == 0


def test_a_full_disk_while_stripping_the_finished_checkpoint_is_an_os_error(tmp_path, teacher_pt, monkeypatch):
    """torch.save says only RuntimeError on a full disk: the final stripping turns it into the errno it means."""
    import shutil as shell
    from collections import namedtuple

    from ultralytics.engine import trainer as engine

    from ikd_yolo.checkpoints import atomic_strip_optimizer

    def full(f, s="", updates=None):
        raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 576 vs 534")

    target = tmp_path / "best.pt"
    shell.copy(teacher_pt, target)
    monkeypatch.setattr(engine, "strip_optimizer", full)
    monkeypatch.setattr(shell, "disk_usage", lambda p: namedtuple("usage", "total used free")(1, 1, 0))
    with atomic_strip_optimizer(), pytest.raises(OSError) as e:
        engine.strip_optimizer(target)
    assert e.value.errno == 28 and target.read_bytes() == teacher_pt.read_bytes()


# ---- 4. resume with a teacher of another width --------------------------------------------------------------------
def test_resume_with_a_teacher_of_another_width_is_one_line_before_any_work(tmp_path, killed_run, synthetic_data,
                                                                           capsys):
    last = tmp_path / "last.pt"
    shutil.copy(killed_run["last"], last)
    before, listing = last.read_bytes(), sorted(killed_run["run"].rglob("*"))
    narrow = tmp_path / "narrow.pt"
    torch.save({"model": _detector(synthetic_data, "yolo11n.yaml"), "train_args": {"task": "detect"}}, narrow)
    assert main(["train", "resume", f"model={last}", f"teacher={narrow}"]) == 2
    line = _one_error_line(capsys)
    assert line.startswith(f"ikd-yolo train: error: teacher={narrow} has level widths [64, 128, 256], but '{last}' "
                           "was distilled from a teacher with widths [128, 256, 512]: resume with that run's teacher")
    assert last.read_bytes() == before and sorted(killed_run["run"].rglob("*")) == listing
    assert not os.path.exists(tmp_path / "runs")


# ---- 5. trust comes from the command line or the call, never from a file ----------------------------------------
@pytest.mark.parametrize("source", ["cfg", "distill", "extends", "python_cfg"])
def test_trust_checkpoints_in_a_file_is_ignored_with_one_warning(source, tmp_path, synthetic_data, capsys,
                                                                 ultralytics_log):
    marker = tmp_path / "marker"
    evil = _hostile_checkpoint(tmp_path / "evil.pt", synthetic_data, _TouchesMarker(marker))
    common = {"model": "yolo11n.yaml", "teacher": str(evil), "data": str(synthetic_data),
              **train_kwargs(tmp_path / "runs", "r")}
    trusting = tmp_path / "trusting.yaml"  # a cfg= file: e.g. the args.yaml of a run given trust_checkpoints=True
    trusting.write_text(yaml.safe_dump({**common, "trust_checkpoints": True}) if source.endswith("cfg") else
                        "kd_loss: fgd\ntrust_checkpoints: true\n")
    (tmp_path / "child.yaml").write_text("extends: trusting.yaml\n")
    where = f"cfg={trusting}" if source.endswith("cfg") else f"distill YAML '{trusting}'"
    if source == "python_cfg":
        with pytest.raises(TeacherError, match=r"is refused: loading it would unpickle builtins\.getattr"):
            YOLO("yolo11n.yaml").train(trainer=IKDTrainer, cfg=str(trusting))
    else:
        distill = {"distill": trusting, "extends": tmp_path / "child.yaml"}.get(source)
        words = [f"cfg={trusting}"] if source == "cfg" else [*(f"{k}={v}" for k, v in common.items()),
                                                              f"distill={distill}"]
        assert main(["train", *words]) == 2
        assert f"teacher={evil} is refused: loading it would unpickle builtins.getattr" in _one_error_line(capsys)
    assert [m for m in ultralytics_log if "trust_checkpoints" in m] == [
        f"WARNING ⚠️ ikd-yolo: trust_checkpoints: True in {where} is ignored: trust comes only from the command line "
        "or the Python call (trust_checkpoints=True), never from a file"]
    assert not marker.exists() and not (tmp_path / "runs").exists()


def test_trust_on_the_command_line_or_in_the_call_still_opts_in_beside_a_cfg_file(tmp_path, synthetic_data):
    evil = _hostile_checkpoint(tmp_path / "evil.pt", synthetic_data, _TouchesMarker(tmp_path / "marker"))
    cfg = tmp_path / "args.yaml"
    args = {"model": "yolo11n.yaml", "teacher": str(evil), "data": str(synthetic_data), "trust_checkpoints": False,
            **train_kwargs(tmp_path / "runs", "r")}
    cfg.write_text(yaml.safe_dump(args))
    with pytest.raises(TeacherError, match="single_cls"):  # the teacher was read (trusted), then refused
        main(["train", f"cfg={cfg}", "trust_checkpoints=True", "single_cls=True", "verbose=True"])
    assert (tmp_path / "marker").exists()
    (tmp_path / "marker").unlink()
    IKDTrainer(overrides={"cfg": str(cfg), **args, "trust_checkpoints": True})  # as YOLO(...).train merges them
    assert (tmp_path / "marker").exists()


# ---- 6. a model config is checked before Ultralytics builds it ------------------------------------------------------
TOUCH = "__import__('pathlib').Path({marker!r}).touch() or nn.SiLU()"


def _evil_config(data: Path, marker: Path, how: str) -> dict:
    """yolo11n's config with the dataset's classes and one hostile entry: an activation that touches `marker` when
    evaluated, or a layer that calls a function of Ultralytics' namespace."""
    from ultralytics.nn.tasks import yaml_model_load

    cfg = {**yaml_model_load("yolo11n.yaml"), "nc": len(yaml.safe_load(Path(data).read_text())["names"])}
    if how == "activation":
        cfg["activation"] = TOUCH.format(marker=str(marker))
    else:
        cfg["backbone"] = [[-1, 1, "check_requirements", ["evil-package"]], *cfg["backbone"][1:]]
    return cfg


@pytest.mark.parametrize("how, problem", [
    ("activation", "its activation \"__import__('pathlib').Path("),
    ("layer", "its layer 0 names 'check_requirements', which is not a layer of Ultralytics or torch"),
])
@pytest.mark.parametrize("role", ["model_yaml", "model_pt", "teacher", "resume", "val_yaml"])
def test_a_model_config_that_would_run_code_is_refused_before_it_is_built(role, how, problem, tmp_path, killed_run,
                                                                         synthetic_data, teacher_pt, capsys):
    marker = tmp_path / "marker"
    cfg = _evil_config(synthetic_data, marker, how)
    evil = tmp_path / ("evil.yaml" if role.endswith("yaml") else "evil.pt")
    if role.endswith("yaml"):
        evil.write_text(yaml.safe_dump(cfg))
    elif role == "resume":
        ckpt = torch.load(killed_run["last"], weights_only=False)
        ckpt["ema"].yaml = cfg
        torch.save(ckpt, evil)
    else:
        model = _detector(synthetic_data)
        model.yaml = cfg
        torch.save({"model": model, "train_args": {"task": "detect"}}, evil)
    common = [f"data={synthetic_data}", f"project={tmp_path / 'runs'}", "name=r", "epochs=1", "imgsz=64", "device=cpu"]
    argv = {"model_yaml": ["train", f"model={evil}", f"teacher={teacher_pt}", *common],
            "model_pt": ["train", f"model={evil}", f"teacher={teacher_pt}", *common],
            "teacher": ["train", "model=yolo11n.yaml", f"teacher={evil}", *common],
            "resume": ["train", "resume", f"model={evil}"],
            "val_yaml": ["val", f"model={evil}", f"data={synthetic_data}", "imgsz=64"]}[role]
    assert main(argv) == 2
    line = _one_error_line(capsys)
    key = {"teacher": "teacher", "resume": "resume"}.get(role, "model")
    assert line.startswith(f"ikd-yolo {argv[0]}: error: {key}={evil} is refused: {problem}"), line
    fix = "ikd-yolo builds only configs shaped as Ultralytics' own" if role.endswith("yaml") else (
        "if you trust this file, pass trust_checkpoints=True")
    assert fix in line and not marker.exists() and not (tmp_path / "runs").exists()


def test_every_model_config_ultralytics_ships_passes_the_check():
    import ultralytics
    from ultralytics.nn.tasks import yaml_model_load

    from ikd_yolo.model_yaml import config_problem

    shipped = sorted((Path(ultralytics.__file__).parent / "cfg" / "models").rglob("*.yaml"))
    assert len(shipped) > 50 and [(p.name, config_problem(yaml_model_load(p))) for p in shipped] == [
        (p.name, None) for p in shipped]


@pytest.mark.parametrize("activation, plain", [
    ("nn.SiLU()", True), ("torch.nn.LeakyReLU(0.1)", True), ("nn.Hardtanh(min_val=0, max_val=6)", True),
    ("nn.ReLU(inplace=True)", True), ("nn.Conv2d(1, 1, 1)", False), ("nn.SiLU(**{})", False),
    ("nn.LeakyReLU(abs(-1))", False), ("os.system('x')", False), ("nn.SiLU", False), ("nn.SiLU(); 1", False),
])
def test_only_a_plain_torch_nn_activation_is_accepted(activation, plain):
    from ikd_yolo.model_yaml import config_problem

    cfg = {"activation": activation, "backbone": [], "head": [[-1, 1, "Detect", ["nc"]]]}
    assert (config_problem(cfg) is None) == plain
