"""The command set a YOLO user types: one line and exit code 2 for every input we can refuse early (and no run
folder left behind), Ultralytics' own verbs through `ikd-yolo`, and `version`."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from helpers import train_kwargs
from ikd_yolo import __version__
from ikd_yolo.cli import help_text, main
from ikd_yolo.config import DEFAULTS, parse_key_values
from ikd_yolo.inputs import weights_dir


def _words(**kwargs) -> list[str]:
    return [f"{k}={v}" for k, v in kwargs.items()]


def _data_with(tmp_path: Path, synthetic_data: Path, names: dict) -> Path:
    """A copy of the synthetic data.yaml whose class list is `names`."""
    cfg = yaml.safe_load(synthetic_data.read_text())
    cfg.update(names=names, nc=len(names), path=str(synthetic_data.parent))
    out = tmp_path / "other.yaml"
    out.write_text(yaml.safe_dump(cfg))
    return out


def _cases(tmp: Path, data: Path, teacher: Path, finished: Path) -> list[tuple[list[str], str | tuple[str, ...]]]:
    """(command words, what the one line on stderr holds: a text, or texts in this order) for every early refusal."""
    truncated = tmp / "trunc" / "weights" / "last.pt"
    truncated.parent.mkdir(parents=True)
    truncated.write_bytes(teacher.read_bytes()[:5000])
    (truncated.parent / "best.pt").write_bytes(teacher.read_bytes())
    run_folder = teacher.parent.parent
    distill_yaml = tmp / "mine.yaml"
    distill_yaml.write_text("kd_loss: fgd\nepochs: 3\n")
    renamed = _data_with(tmp, data, {i: f"class{i}" for i in range(8)})
    t, d = f"teacher={teacher}", f"data={data}"
    train = ["train", "model=yolo11n.yaml"]
    return [
        ([*train, t, d, "fgd_alpha=nan"], "fgd_alpha=nan must be a finite number (default 3e-07)"),
        ([*train, t, d, "adv_eps=-1"], "adv_eps=-1.0 must lie in [0, 1]"),
        ([*train, t, d, "adv_step_size=2"], "adv_step_size=2.0 must lie in [0, 1]"),
        ([*train, t, d, "distill=ikd-score[adv_steps=1]"], "distill='ikd-score[adv_steps=1]': brackets are "
                                                           "bench-distill's way to vary a method (methods=ikd-score["
                                                           "adv_steps=1]); here write distill=ikd-score adv_steps=1"),
        ([*train, t, d, "freq_small=-5"], "freq_small=-5 must be greater than 0"),
        ([*train, t, "data=missing.yaml"], "data=missing.yaml not found: pass the path of a dataset YAML"),
        ([*train, t], "data=coco8.yaml is an Ultralytics dataset that would be downloaded (ikd-yolo never downloads)"),
        ([*train, t, d, "device=0"], "device=0 asks for a GPU, but torch"),
        (["train", "model", "yolo11n.yaml", t, d], "'model' needs a value: write model=yolo11n.yaml"),
        ([*train, t, d, "single_cls=True"], "predicts 8 classes but the data has nc=1: drop single_cls=True"),
        ([*train, f"teacher={run_folder}", d], f"teacher={run_folder} is a folder, not a checkpoint: pass "
                                               f"teacher={run_folder}/weights/best.pt"),
        ([*train, f"teacher={truncated}", d], (f"teacher={truncated} cannot be read (", "): the file is truncated")),
        ([*train, "teacher=yolo11s.pt", d], "teacher=yolo11s.pt not found (an Ultralytics download; ikd-yolo never "
                                            f"downloads): pass the path of a local .pt file (also looked in "
                                            f"{weights_dir()})"),
        (["train", "model=yolo11n.pt", t, d], "model=yolo11n.pt not found (an Ultralytics download; ikd-yolo never "
                                              "downloads)"),
        (["train", "model=yolo11n-pose.yaml", t, d], f"data={data} has no kpt_shape: a pose student needs "
                                                     "a keypoint dataset"),
        (["train", "model=yolo11n-obb.yaml", t, d], "the teacher (task=detect) and the student (task=obb) predict "
                                                    "different boxes (axis-aligned vs rotated): use a teacher trained "
                                                    "with task=obb"),
        (["train", "model=yolo11n-cls.yaml", t, d], "model=yolo11n-cls.yaml is a classify model"),
        (["train", "model=rtdetr-l.yaml", t, d], "model=rtdetr-l.yaml is a RTDETRDecoder detector, not a YOLO Detect"),
        (["train", "model=yolov8s-worldv2.yaml", t, d], "model=yolov8s-worldv2.yaml is a WorldDetect detector"),
        ([*train, t, f"data={renamed}"], "has other classes than the data (class 0: 'disc' vs 'class0')"),
        ([*train, t, d, f"distill={distill_yaml}"], "'epochs' in distill YAML"),
        (["train", "resume", f"model={truncated}"], (f"resume={truncated} cannot be read (", "): the file is truncated "
                                                     f"or not a PyTorch checkpoint; use {truncated.parent}/best.pt "
                                                     "instead")),
        (["train", "resume", f"model={finished}"], f"'{finished}' is a finished run, there is nothing to resume: to "
                                                   f"train further, start a new run from its weights"),
        (["show-aug"], "show-aug needs a dataset"),
        (["show-aug", "data=d.yaml"], "show-aug: distill=score has freq_mode=off, there is no frequency "
                                      "augmentation"),
        (["synth", "n_train=abc"], "n_train='abc' must be a whole number"),
        (["synth", "imgsz=32"], "imgsz=32 must be >= 64"),
        (["synth", "n_train=0"], "n_train=0 must be >= 1"),
        (["synth", "ntrain=5"], "'ntrain' is not an option of synth. Did you mean 'n_train'?"),
        (["val", "model=yolo11n.pt", d], "model=yolo11n.pt not found (an Ultralytics download"),
    ]


def _in_order(parts: tuple[str, ...], text: str) -> bool:
    at = 0
    for part in parts:
        at = text.find(part, at)
        if at < 0:
            return False
        at += len(part)
    return True


def test_every_early_refusal_is_one_line_and_exit_2(tmp_path, monkeypatch, capfd, synthetic_data, teacher_pt,
                                                    finished_run):
    cases = _cases(tmp_path, synthetic_data, teacher_pt, finished_run / "weights" / "last.pt")
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)  # Ultralytics would make runs/ (and synth datasets/) here
    capfd.readouterr()
    for words, expected in cases:
        code = main(words)
        out, err = capfd.readouterr()
        lines = [line for line in err.splitlines() if line.strip()]
        assert code == 2, (words, out[-500:], err[-2000:])
        parts = (expected,) if isinstance(expected, str) else expected
        assert len(lines) == 1 and _in_order(parts, lines[0]), (words, lines)
        assert lines[0].startswith(f"ikd-yolo {words[0]}: error: ")
        assert "Traceback" not in out and "Ultralytics" not in out, (words, out[-500:])  # nothing before the check
    assert list(work.iterdir()) == []  # no run folder, no dataset from any refused start


def test_cli_parsing_and_help(capsys):
    words = ["epochs=3", "freq_lam=[0.1,0.2]", "teacher=null", "resume", "name=007", "mgd_alpha=1e-5"]
    assert parse_key_values(words) == {
        "epochs": 3, "freq_lam": [0.1, 0.2], "teacher": None, "resume": True, "name": "007", "mgd_alpha": 1e-5,
    }
    assert main(["train", "help"]) == 0
    out = capsys.readouterr().out
    for key in DEFAULTS:
        assert f"  {key} " in out
    text = help_text()
    # the values a run with nothing set uses (the default preset's), not the schema's numbers for weights=fixed
    assert "distill=score (configs/default.yaml)" in text
    assert "freq_mode        off" in text and "adv_mode         off" in text
    assert "fgd_alpha        auto             (weight; weights=fixed: 3e-07)" in text


def test_cli_missing_teacher_fails_before_training(capsys, tmp_path):
    code = main(["train", f"teacher={tmp_path / 'none.pt'}", "data=whatever.yaml"])
    assert code == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ikd-yolo train: error: teacher={tmp_path / 'none.pt'} not found: pass the path of a local .pt "
                   f"file (also looked in {weights_dir()})")


def test_teacher_in_a_distill_yaml_is_the_default_teacher(tmp_path, synthetic_data, teacher_pt):
    from ikd_yolo.config import resolve_distill_config

    mine = tmp_path / "mine.yaml"
    mine.write_text(f"kd_loss: mse\nteacher: {teacher_pt}\n")
    assert resolve_distill_config({"distill": str(mine)})["teacher"] == str(teacher_pt)
    assert resolve_distill_config({"distill": str(mine), "teacher": "other.pt"})["teacher"] == "other.pt"


def test_version_and_help(capsys):
    import ultralytics

    for words in (["version"], ["--version"]):
        assert main(words) == 0
        assert capsys.readouterr().out.strip() == f"ikd-yolo {__version__} (ultralytics {ultralytics.__version__})"
    assert main(["val", "help"]) == 0 and "val" in capsys.readouterr().out


@pytest.mark.parametrize("command, go_on", [("train", "ikd-yolo train resume model="), ("attack", "run the same")])
def test_ctrl_c_is_one_line_saying_how_to_go_on(command, go_on, monkeypatch, capsys):
    from ikd_yolo import cli

    def interrupted(_):
        raise KeyboardInterrupt

    monkeypatch.setitem(cli.COMMANDS, command, interrupted)
    assert main([command, "epochs=1"]) == 130
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"ikd-yolo {command}: stopped by Ctrl-C") and go_on in err[0]


def _run_tree(root: Path) -> list[str]:
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if p.is_file())


@pytest.mark.parametrize("mode, extra", [
    ("val", ["data={data}", "imgsz=64", "batch=8", "workers=0", "plots=True"]),
    ("predict", ["source={images}", "imgsz=64", "save=True", "save_txt=True"]),
    ("export", ["format=torchscript", "imgsz=64"]),
])
def test_ultralytics_verbs_behave_like_yolo(mode, extra, tmp_path, synthetic_data, teacher_pt):
    """`ikd-yolo val|predict|export` on a plain checkpoint writes what `yolo` writes (same files, same names)."""
    trees = {}
    for tool in ("yolo", "ikd-yolo"):
        work = tmp_path / tool
        work.mkdir()
        model = work / "best.pt"
        model.write_bytes(teacher_pt.read_bytes())
        words = [w.format(data=synthetic_data, images=synthetic_data.parent / "images" / "val") for w in extra]
        args = [mode, f"model={model}", *words] + ([] if mode == "export" else [f"project={work / 'runs'}", "name=x"])
        run = subprocess.run([tool, *args], capture_output=True, text=True, timeout=300, cwd=work)
        assert run.returncode == 0, (tool, run.stderr[-2000:])
        trees[tool] = _run_tree(work)
    assert trees["ikd-yolo"] == trees["yolo"] and len(trees["yolo"]) > 1


def test_val_and_predict_take_paths_with_spaces(tmp_path, monkeypatch, synthetic_data, teacher_pt):
    """Each key=value word reaches Ultralytics whole: a checkpoint and a source in folders with spaces work."""
    folder = tmp_path / "my runs" / "run 1"
    folder.mkdir(parents=True)
    model = folder / "best.pt"
    model.write_bytes(teacher_pt.read_bytes())
    images = tmp_path / "val images"
    shutil.copytree(synthetic_data.parent / "images" / "val", images)
    monkeypatch.chdir(tmp_path)
    common = [f"model={model}", "imgsz=64", f"project={tmp_path / 'out dir'}", "plots=False"]
    assert main(["val", *common, f"data={synthetic_data}", "batch=8", "workers=0", "name=v"]) == 0
    assert main(["predict", *common, f"source={images}", "save=True", "name=p"]) == 0
    assert len(list((tmp_path / "out dir" / "p").glob("*.jpg"))) == len(list(images.glob("*.jpg"))) > 0


def _source_run(tmp_path: Path, synthetic_data: Path, teacher_pt: Path) -> tuple[Path, dict[str, str]]:
    """A finished run's folder as Ultralytics leaves it (weights and an args.yaml naming that folder, exist_ok=True and,
    after a resume, the checkpoint it resumed) and the digests of its files."""
    run = tmp_path / "runs" / "source"
    (run / "weights").mkdir(parents=True)
    (run / "weights" / "best.pt").write_bytes(b"the source run's weights")
    (run / "weights" / "last.pt").write_bytes(b"the source run's last checkpoint")
    args = {**train_kwargs(tmp_path / "runs", "source"), "model": "yolo11n.yaml", "data": str(synthetic_data),
            "teacher": str(teacher_pt), "distill": "fgd", "save_dir": str(run), "resume": str(run / "weights/last.pt"),
            "mode": "train", "task": "detect"}
    (run / "args.yaml").write_text(yaml.safe_dump(args))
    return run / "args.yaml", {str(p): p.read_bytes() for p in run.rglob("*") if p.is_file()}


def test_cfg_of_a_run_starts_a_new_run_beside_it(tmp_path, synthetic_data, teacher_pt):
    """`train cfg=<run>/args.yaml name=Y` takes the run's settings but not its save_dir or resume: it trains into Y."""
    cfg, before = _source_run(tmp_path, synthetic_data, teacher_pt)
    assert main(["train", f"cfg={cfg}", "name=again"]) == 0
    assert (tmp_path / "runs" / "again" / "weights" / "best.pt").is_file()
    assert {str(p): p.read_bytes() for p in cfg.parent.rglob("*") if p.is_file()} == before  # untouched


def test_cfg_of_a_run_never_writes_into_that_run(tmp_path, capsys, synthetic_data, teacher_pt):
    """Without a new name, the run's own exist_ok=True would send the new run into the source folder: refused."""
    cfg, before = _source_run(tmp_path, synthetic_data, teacher_pt)
    assert main(["train", f"cfg={cfg}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err == [f"ikd-yolo train: error: cfg={cfg} comes from run folder {cfg.parent}, and with exist_ok=True this "
                   "run would write into it (replacing its weights): pass another name= or exist_ok=False"]
    assert {str(p): p.read_bytes() for p in cfg.parent.rglob("*") if p.is_file()} == before
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["source"]


@pytest.mark.parametrize("text, message", [
    (None, "cfg={cfg} not found: pass a YAML of train arguments"),
    ("epochs: [1\n", "cfg={cfg} does not parse as YAML"),
    ("- epochs\n", "cfg={cfg} must be a mapping of key: value"),
])
def test_a_bad_cfg_file_is_one_line(text, message, tmp_path, capsys):
    cfg = tmp_path / "hyp.yaml"
    if text is not None:
        cfg.write_text(text)
    assert main(["train", f"cfg={cfg}"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and message.format(cfg=cfg) in err[0]


def test_export_without_its_format_package_is_one_line_and_installs_nothing(finished_run, tmp_path, monkeypatch,
                                                                             capsys):
    import sys

    import ultralytics.utils.checks as checks

    installs, autoinstall = [], checks.AUTOINSTALL
    monkeypatch.setattr(checks, "ONLINE", True)  # so that only ikd-yolo stands between Ultralytics and pip
    monkeypatch.setattr(checks.subprocess, "check_output", lambda *a, **k: installs.append(a))  # pip would run here
    monkeypatch.setitem(sys.modules, "onnx", None)  # as if onnx were not installed
    best = tmp_path / "best.pt"
    shutil.copy(finished_run / "weights" / "best.pt", best)
    assert main(["export", f"model={best}", "format=onnx", "imgsz=64"]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert err[-1] == ("ikd-yolo export: error: export needs the Python package onnx, which is not installed: pip "
                       "install onnx (ikd-yolo never installs packages while it runs)")
    assert installs == [] and checks.AUTOINSTALL == autoinstall and not list(tmp_path.glob("best.onnx"))


@pytest.mark.parametrize("command", ["synth", "show-aug", "attack", "demo", "bench-distill"])
def test_each_command_has_a_help_of_its_own_with_every_key_it_takes(command, capsys):
    """`ikd-yolo <command> --help` lists each of the command's keys with a default and a meaning."""
    import inspect

    from ikd_yolo.cli import command_keys
    from ikd_yolo.evidence.profiles import PROFILE_KEYS

    assert main([command, "--help"]) == 0
    out = capsys.readouterr().out
    fn, _, skip = command_keys(command)
    keys = [k for k, p in inspect.signature(fn).parameters.items() if k not in skip and p.kind != p.VAR_KEYWORD]
    if command in {"demo", "bench-distill"}:
        keys += [k for k in PROFILE_KEYS if command == "bench-distill" or k not in {"methods", "seeds"}]
    rows = {line.split()[0]: line for line in out.splitlines() if line.startswith("  ") and len(line.split()) >= 3}
    assert keys and [k for k in keys if k not in rows] == []
    assert out != help_text() and "Keys (default, meaning):" in out


def test_bench_distill_help_documents_its_own_keys_and_the_bracket_syntax(capsys):
    assert main(["bench-distill", "--help"]) == 0
    out = capsys.readouterr().out
    for key in ("profile", "seeds", "jobs", "methods", "teacher_init", "report", "name"):
        assert re.search(rf"^  {key} +\S+ +\S", out, flags=re.M), key
    assert "ultralytics[dis=18]" in out and "ikd-score[adv_steps=1]" in out and "distill=ikd-score adv_steps=1" in out
