"""Hostile inputs: a bad teacher or distill YAML stops with one exact line; odd data and sizes train as Ultralytics
does."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import ClassificationModel, DetectionModel, OBBModel, WorldModel

from helpers import read_results, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.config import DistillConfigError
from ikd_yolo.data import CLASS_NAMES
from ikd_yolo.inputs import weights_dir
from ikd_yolo.teacher import TeacherError, load_teacher


# ---- 4. hostile inputs: one exact message each ----------------------------------------------------------------------


def _write_teacher(kind: str, path: Path, teacher_pt: Path) -> Path:
    if kind == "not_a_checkpoint":
        path.write_text("not a checkpoint")
    elif kind == "state_dict":
        torch.save(load_teacher(teacher_pt, nc=8).state_dict(), path)
    elif kind == "wrong_suffix":
        shutil.copy(teacher_pt, path)
    elif kind != "missing":
        model = {"classify": lambda: ClassificationModel("yolo11n-cls.yaml", nc=8, verbose=False),
                 "obb": lambda: OBBModel("yolo11n-obb.yaml", nc=8, verbose=False),
                 "world": lambda: WorldModel("yolov8n-worldv2.yaml", nc=8, verbose=False),
                 "nc": lambda: DetectionModel("yolo11n.yaml", nc=6, verbose=False)}[kind]()
        model.names = dict(enumerate(CLASS_NAMES))  # the dataset's classes: what is refused is the model itself
        torch.save({"model": model}, path)
    return path


@pytest.mark.parametrize("kind, name, message", [
    ("missing", "none.pt", "teacher={p} not found: pass the path of a local .pt file (also looked in {w})"),
    ("wrong_suffix", "teacher.onnx",
     "teacher={p} must be an Ultralytics .pt checkpoint (a trained detection model)"),
    ("wrong_suffix", "yolo11s.yaml", "teacher={p} must be an Ultralytics .pt checkpoint (a trained detection model)"),
    ("not_a_checkpoint", "junk.pt", "teacher={p} cannot be read (UnpicklingError): the file is truncated or not a "
                                    "PyTorch checkpoint"),
    ("state_dict", "weights.pt", "teacher={p} is not an Ultralytics checkpoint (it holds no model): pass the best.pt "
                                 "or last.pt of a training run"),
    ("classify", "cls.pt", "teacher={p} is a classify model (ClassificationModel): IKD needs a teacher with a "
                           "detection head (a model trained with task=detect, segment, pose or obb)"),
    ("obb", "obb.pt", "the teacher (task=obb) and the student (task=detect) predict different boxes (rotated vs "
                      "axis-aligned): use a teacher trained with task=detect or segment or pose"),
    ("nc", "six.pt", "teacher={p} predicts 6 classes but the data has nc=8: use a teacher trained on the same "
                     "dataset (same class list)"),
    ("world", "world.pt", "teacher={p} is a WorldModel, not a YOLO DetectionModel: IKD needs a YOLO teacher with a "
                          "detection head (e.g. YOLOv8, YOLO11 or YOLO26 trained with task=detect)"),
])
def test_hostile_teacher_stops_the_trainer_with_one_exact_line(kind, name, message, tmp_path, synthetic_data,
                                                               teacher_pt):
    path = _write_teacher(kind, tmp_path / name, teacher_pt)
    with pytest.raises(TeacherError) as e:
        IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(path), "data": str(synthetic_data),
                              **train_kwargs(tmp_path, "hostile")})
    assert str(e.value) == message.format(p=path, w=weights_dir())
    assert not (tmp_path / "hostile").exists()  # refused before Ultralytics made the run folder


@pytest.mark.parametrize("text, message", [
    ("kd_loss: fgd\nadv_wieght: 1.0e-5\n",
     "unknown key 'adv_wieght' in distill YAML '{p}'. Did you mean 'adv_weight'?"),
    ("epochs: 3\n", "'epochs' in distill YAML '{p}' is an Ultralytics train argument, not a distillation key: pass "
                    "it as epochs=... (or in a cfg= YAML)"),
    ("adv_steps: five\n", "adv_steps='five' must be a number (default 2)"),
    ("freq_lam: 0.5\n", "freq_lam=0.5 must be a range [min, max] of two numbers with 0 <= min <= max <= 1"),
    ("kd_loss: [fgd]\n", "kd_loss=['fgd'] is not valid: choose one of mse, cwd, mgd, fgd, score, none"),
    ("fgd_alpha: -1.0e-3\n", "fgd_alpha=-0.001 must not be negative: use 0 to turn the term off"),
    ("adv_weight: -1\n", "adv_weight=-1.0 must not be negative: use 0 to turn the term off"),
])
def test_hostile_distill_yaml_stops_before_any_work(text, message, tmp_path, teacher_pt):
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(DistillConfigError) as e:  # raised before Ultralytics even reads the dataset
        IKDTrainer(overrides={"model": "yolo11n.yaml", "teacher": str(teacher_pt), "data": "absent.yaml",
                              "distill": str(path)})
    assert str(e.value) == message.format(p=path)


def test_corrupt_image_and_empty_label_file_are_skipped_like_ultralytics(tmp_path, synthetic_data, teacher_pt,
                                                                       ultralytics_log):
    root = tmp_path / "data"
    shutil.copytree(synthetic_data.parent, root, ignore=shutil.ignore_patterns("*.cache"))
    data = yaml.safe_load((root / "data.yaml").read_text())
    (root / "data.yaml").write_text(yaml.safe_dump({**data, "path": str(root)}))
    (root / "images" / "train" / "000003.jpg").write_bytes(b"\xff\xd8 not really a jpeg")
    (root / "labels" / "train" / "000004.txt").write_text("")  # had boxes: now a background image

    model = YOLO("yolo11n.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), data=str(root / "data.yaml"), distill="ikd-fgd-full",
                adv_steps=1, freq_p=1.0, **train_kwargs(tmp_path, "corrupt"))
    files = [Path(f).name for f in model.trainer.train_loader.dataset.im_files]
    labels = dict(zip(files, model.trainer.train_loader.dataset.labels))
    assert len(files) == 15 and "000003.jpg" not in files and len(labels["000004.jpg"]["cls"]) == 0
    assert any("000003.jpg: ignoring corrupt image/label" in m for m in ultralytics_log)
    results = read_results(tmp_path / "corrupt")
    assert all(torch.isfinite(torch.tensor(v)).all() for v in results.values())
    assert results["train/fgd_loss"][0] > 0 and results["train/adv_loss"][0] > 0


def test_imgsz_not_a_multiple_of_the_stride_is_rounded_up(tmp_path, synthetic_data, teacher_pt, ultralytics_log):
    model = YOLO("yolo11n.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-fgd-full",
                adv_steps=1, **train_kwargs(tmp_path, "imgsz", imgsz=40))
    assert model.trainer.args.imgsz == 64
    assert any("imgsz=[40] must be multiple of max stride 32, updating to [64]" in m for m in ultralytics_log)
    results = read_results(tmp_path / "imgsz")
    assert results["train/fgd_loss"][0] > 0 and results["train/adv_loss"][0] > 0


def test_batch_of_one_trains(tmp_path, synthetic_data, teacher_pt):
    model = YOLO("yolo11n.yaml")
    batches = []
    model.add_callback("on_train_batch_end", lambda t: batches.append(t.train_loader.batch_size))
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-fgd-full",
                adv_steps=1, freq_p=1.0, **train_kwargs(tmp_path, "one", batch=1, fraction=0.25))
    assert batches == [1, 1, 1, 1]  # 4 images (fraction=0.25), one per step
    results = read_results(tmp_path / "one")
    assert all(torch.isfinite(torch.tensor(v)).all() for v in results.values())
    assert results["train/fgd_loss"][0] > 0 and results["train/adv_loss"][0] > 0


# ---- former tracebacks: one line, exit code 2, no run folder, nothing written -------------------------------------
ADV_FRAC = ("adv_frac=0 attacks no image: set adv_mode=off to turn the extra stream off, or adv_frac>0 to attack "
            "that fraction of each batch")
SEEDS = "give a count (seeds=3) or a list of distinct seeds >= 0 (seeds=[0,4,7])"


@pytest.mark.parametrize("words, message", [
    (["train", "model=yolo11n.yaml", "{teacher}", "{data}", "distill=score-stream", "adv_frac=0", "epochs=1"],
     ADV_FRAC),
    (["train", "model=yolo11n.yaml", "{teacher}", "{data}", "distill=ikd-mgd", "adv_frac=0.0", "epochs=1"], ADV_FRAC),
    (["val", "{data}"], "val needs model=path/to/best.pt (a trained checkpoint; ikd-yolo never downloads)"),
    (["predict", "source=x.jpg"], "predict needs model=path/to/best.pt"),
    (["export", "format=onnx"], "export needs model=path/to/best.pt"),
    (["bench-distill", "seeds=0"], f"seeds=0 runs nothing: {SEEDS}"),
    (["bench-distill", "seeds=-2"], f"seeds=-2 runs nothing: {SEEDS}"),
    (["bench-distill", "seeds=[0,0]"], f"seeds=[0, 0] names seed 0 more than once: each seed is one run, {SEEDS}"),
    (["bench-distill", "seeds=3,1,3"], "seeds='3,1,3' names seed 3 more than once"),
    (["bench-distill", "seeds=a,b"], f"seeds='a,b' is not valid: {SEEDS}"),
    (["bench-distill", "seeds=1.5"], f"seeds=1.5 is not valid: {SEEDS}"),
    (["bench-distill", "seeds=null"], f"seeds=None is not valid: {SEEDS}"),
    (["bench-distill", "methods=,"], "methods=',' names no method: give at least one, e.g. methods=none,fgd,ikd-fgd"),
    (["bench-distill", "methods=[]"], "methods=[] names no method"),
    (["bench-distill", "methods=5"], "methods=5 is not valid: give a comma-separated list"),
    (["bench-distill", "adv_frac=0"], "'adv_frac' is a distillation setting, which a benchmark gives no method by "
                                      "itself"),
    (["bench-distill", "methods=fgd,ikd-fgd[adv_frac=0]"], ADV_FRAC),
    (["bench-distill", "methods=fgd[fgd_alpha=-1]"], "method 'fgd[fgd_alpha=-1]': fgd_alpha=-1.0 must not be negative"),
    (["bench-distill", "methods=score[score_cls=x]"], "method 'score[score_cls=x]': score_cls='x' must be a number"),
    (["bench-distill", "methods=fgd,ikd-fgd[adv_frac=0]"], f"method 'ikd-fgd[adv_frac=0]': {ADV_FRAC}"),
    (["bench-distill", "epochs=0"], "epochs=0 must be a whole number >= 1"),
    (["bench-distill", "imgsz=abc"], "imgsz='abc' must be a whole number >= 32"),
    (["bench-distill", "batch=0"], "batch=0 must be a whole number >= 1"),
    (["bench-distill", "n_train=0"], "n_train=0 must be a whole number >= 1"),
    (["bench-distill", "data_imgsz=10"], "data_imgsz=10 must be a whole number >= 64"),
    (["bench-distill", "workers=-1"], "workers=-1 must be a whole number >= 0"),
    (["bench-distill", "clutter=2"], "clutter=2 must be a number in [0, 1]"),
    (["bench-distill", "lr0=abc"], "'lr0=abc' is of invalid type str"),
    (["bench-distill", "mosaic=2"], "'mosaic=2' is an invalid value"),
    (["bench-distill", "data=missing.yaml"], "data=missing.yaml not found"),
    (["bench-distill", "teacher=missing.pt"], "teacher=missing.pt not found"),
    (["bench-distill", "task=segment", "student=yolo11n-pose.yaml"],
     "student=yolo11n-pose.yaml is a pose model but task=segment"),
    (["bench-distill", "student=yolo11n-cls.yaml"], "student=yolo11n-cls.yaml is a classify model: bench-distill"),
    (["bench-distill", "teacher_model=absent.yaml"], "teacher_model=absent.yaml not found"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "n=0"], "n=0 must be a whole number >= 1"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "n=abc"], "n='abc' must be a whole number >= 1"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "imgsz=0"], "imgsz=0 must be a whole number >= 32"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "seed=-1"], "seed=-1 must be a whole number >= 0"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "out=grid.txt"], "out=grid.txt: '.txt' is not an image format"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "out=."], "out=. is a folder: pass the image file to write"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "out={file}/grid.png"], "is a file, not a folder"),
    (["synth", "out={file}"], "is a file, not a folder: pick a folder for the dataset"),
    (["bench-distill", "out={file}"], "is a file, not a folder: pass a folder you can write"),
    (["demo", "out={file}/demo"], "is a file, not a folder: pass a folder you can write"),
    (["show-aug", "data={work}", "distill=ikd-fgd-full"], "cannot be used: No YAML file found in"),
    (["train", "{teacher}", "data=/etc/passwd", "epochs=1"], "data=/etc/passwd cannot be used: Not a YAML file"),
    (["train", "model=yolo11n-seg.yaml", "{teacher}", "{data}", "epochs=1"],
     "holds plain boxes ({label}: 5 values a row), and a segment student needs polygons (class x1 y1 x2 y2 x3 y3 "
     "...): pass a segment dataset (ikd-yolo synth task=segment writes one)"),
    (["bench-distill", "task=segment", "{data}", "{teacher}"], "holds plain boxes ("),
    (["bench-distill", "sedes=1"], "'sedes' is not a bench-distill or Ultralytics argument. Did you mean "
                                   "'seeds'? See ikd-yolo bench-distill --help"),
    (["demo", "epochz=3"], "'epochz' is not a bench-distill or Ultralytics argument. Did you mean 'epochs'?"),
    (["demo", "methods=fgd"], "'methods' is set by the demo (seed 0 of profile=quick, methods none and score): "
                              "choose it with ikd-yolo bench-distill instead"),
    (["attack", "{data}", "{teacher}", "previw=a.png"], "'previw' is not an option of attack. Did you mean 'preview'?"),
    (["attack", "{data}", "{teacher}", "epochs=3"], "'epochs' is not an option of attack."),
    (["attack", "{data}", "{teacher}", "preview={file}/p.png"], "is a file, not a folder: pick another path"),
    (["attack", "{data}", "{teacher}", "preview=p.txt"], "preview=p.txt: '.txt' is not an image format"),
    (["show-aug", "{data}", "distill=ikd-fgd-full", "ou=a.png"], "'ou' is not an option of show-aug. Did you mean "
                                                                 "'out'?"),
    (["show-aug", "{data}", "freq_mode=spectral", "freq_pp=1"], "'freq_pp' is not an option of show-aug. Did you "
                                                                "mean 'freq_p'?"),
    (["train", "{teacher}", "{data}", "epochs=0"], "'epochs=0' is an invalid value. 'epochs' must be >= 1."),
    (["train", "{teacher}", "{data}", "lr0=abc"], "'lr0=abc' is of invalid type str."),
    (["val", "{model}", "data=coco8.yaml"], "data=coco8.yaml is an Ultralytics dataset that would be downloaded"),
    (["benchmark", "{model}"], "benchmark needs data=path/to/data.yaml (Ultralytics would download its default"),
    (["export", "{model}", "int8=True"], "export needs data=path/to/data.yaml"),
    (["predict", "{model}", "source=https://example.com/bus.jpg"], "source=https://example.com/bus.jpg is a URL "
                                                                   "(ikd-yolo never downloads)"),
    (["train", "{teacher}", "{data}", "pretrained=yolo11n.pt"], "pretrained=yolo11n.pt not found (an Ultralytics "
                                                                "download; ikd-yolo never downloads)"),
    (["train", "{teacher}", "data=coco8", "epochs=1"], "data=coco8 is an Ultralytics dataset that would be downloaded"),
    (["train", "{teacher}", "data=https://example.com/d.yaml"], "is a URL (ikd-yolo never downloads)"),
])
def test_former_tracebacks_are_one_line_exit_2_and_no_run_folder(words, message, tmp_path, monkeypatch, capsys,
                                                                synthetic_data, teacher_pt):
    from ikd_yolo.cli import main
    from ikd_yolo.evidence import bench

    monkeypatch.setattr(bench, "prepare_data", lambda s: pytest.fail("the benchmark started work"))
    work = tmp_path / "work"
    work.mkdir()
    (tmp_path / "a file").write_text("not a folder")
    monkeypatch.chdir(work)
    fill = dict(teacher=f"teacher={teacher_pt}", data=f"data={synthetic_data}", file=tmp_path / "a file", work=work,
                label=synthetic_data.parent / "labels" / "train" / "000000.txt", model=f"model={teacher_pt}")
    capsys.readouterr()
    assert main([w.format(**fill) for w in words]) == 2
    err = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(err) == 1 and err[0].startswith(f"ikd-yolo {words[0]}: error: ") and message.format(**fill) in err[0]
    assert list(work.iterdir()) == []  # no run folder, no dataset, no report


@pytest.mark.parametrize("download", ["import pathlib; pathlib.Path({marker!r}).touch()", "bash -c 'touch {marker}'",
                                      "https://example.com/data.zip"])
def test_a_data_yaml_download_is_never_run(download, tmp_path, teacher_pt, monkeypatch, capsys):
    """Ultralytics runs a data YAML's `download:` (Python code, a shell command or a URL) when its images are
    missing: ikd-yolo refuses in one line instead, before any folder exists."""
    from ikd_yolo.cli import main

    marker = tmp_path / "marker"
    data = tmp_path / "data.yaml"
    data.write_text(yaml.safe_dump({"path": str(tmp_path / "absent"), "train": "images/train", "val": "images/val",
                                    "names": {0: "a"}, "download": download.format(marker=str(marker))}))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={data}", "epochs=1"]) == 2
    err = capsys.readouterr().err.strip()
    assert err == (f"ikd-yolo train: error: data={data}: Dataset '{data}' images not found, missing path "
                   f"'{tmp_path / 'absent' / 'images' / 'val'}', and ikd-yolo never runs a data YAML's download: (a "
                   "URL, shell command or Python code): fetch the dataset yourself, then run again")
    assert not marker.exists() and list(work.iterdir()) == [] and not (tmp_path / "absent").exists()


@pytest.mark.parametrize("words", [["bench-distill"], ["demo"], ["attack", "{data}", "{teacher}"],
                                   ["train", "model=yolo11n.yaml", "{data}", "{teacher}", "adv_mode=cached"]])
@pytest.mark.parametrize("cache", ["file", "under_file"])
def test_a_cache_folder_that_cannot_be_one_is_one_line_before_any_work(words, cache, tmp_path, monkeypatch, capsys,
                                                                       synthetic_data, teacher_pt):
    from ikd_yolo.cli import main
    from ikd_yolo.evidence import bench

    monkeypatch.setattr(bench, "prepare_data", lambda s: pytest.fail("the benchmark started work"))
    (tmp_path / "a file").write_text("not a folder")
    value = tmp_path / "a file" if cache == "file" else tmp_path / "a file" / "cache"
    monkeypatch.setenv("IKD_YOLO_CACHE", str(value))
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    fill = dict(teacher=f"teacher={teacher_pt}", data=f"data={synthetic_data}")
    capsys.readouterr()
    assert main([w.format(**fill) for w in words]) == 2
    out, err = capsys.readouterr()
    what = "is a file, not a folder" if cache == "file" else "lies under a file, not a folder"
    assert err.strip() == (f"ikd-yolo {words[0]}: error: IKD_YOLO_CACHE={value} {what}: ikd-yolo keeps its datasets, "
                           "teachers and adversarial images there; set IKD_YOLO_CACHE to a writable folder")
    assert "ikd-yolo demo:" not in out and list(work.iterdir()) == []  # no plan line, no run folder


def test_an_empty_cache_variable_means_unset_not_the_working_folder(tmp_path, monkeypatch):
    from ikd_yolo.cache import cache_dir

    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.chdir(tmp_path)
    for value in ("", "  "):
        monkeypatch.setenv("IKD_YOLO_CACHE", value)
        assert cache_dir(writable=True) == tmp_path / "home" / ".cache" / "ikd-yolo"


@pytest.mark.parametrize("command", ["bench-distill", "demo"])
def test_a_missing_evaluator_is_one_line_before_any_work(command, tmp_path, monkeypatch, capsys):
    import sys

    from ikd_yolo.cli import main
    from ikd_yolo.evidence import bench

    monkeypatch.setitem(sys.modules, "pycocotools.cocoeval", None)  # as if pycocotools were not installed
    monkeypatch.setattr(bench, "prepare_data", lambda s: pytest.fail("the benchmark started work"))
    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    capsys.readouterr()
    assert main([command]) == 2
    out, err = capsys.readouterr()
    assert err.strip() == (f"ikd-yolo {command}: error: pycocotools is not installed, and bench-distill (and the "
                           "demo) score every run with its COCOeval too: pip install pycocotools (an ikd-yolo "
                           "dependency: pip install ikd-yolo brings it)")
    assert out == "" and not (tmp_path / "cache").exists()


def _aliases(levels: int) -> str:
    """A YAML flow list whose last item is 10**levels values through nested aliases (a few hundred bytes)."""
    items = ["&a0 [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"] + [f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]"
                                                       for i in range(1, levels + 1)]
    return f"[{', '.join(items)}]"


DEEP = "[" * 20000 + "]" * 20000  # deeper than any YAML reader recurses (Ultralytics' C reader crashed the process)


@pytest.mark.parametrize("key, text, message", [
    ("distill", f"freq_lam: {_aliases(8)}\n", "distill YAML '{p}' holds more than 100000 values once its shared "
                                              "parts (YAML aliases) are expanded"),
    ("cfg", f"hsv_h: {_aliases(8)}\n", "cfg={p} holds more than 100000 values"),
    ("data", "train: images\nval: images\nnames: {{0: a}}\nextra: {aliases}\n", "data={p} holds more than 100000"),
    ("model", "nc: 8\nbackbone: [[-1, 1, Conv, {aliases}]]\nhead: [[-1, 1, Detect, [nc]]]\n",
     "model={p} is refused: its model config holds more than 100000 values"),
    ("distill", f"freq_lam: {DEEP}\n", "distill YAML '{p}' does not parse"),
    ("cfg", f"hsv_h: {DEEP}\n", "cfg={p} does not parse as YAML"),
    ("data", f"names: {DEEP}\ntrain: a\nval: b\n", "data={p} nests brackets too deeply to be read"),
    ("model", f"nc: 8\nbackbone: {DEEP}\nhead: []\n", "model={p} nests brackets too deeply to be read"),
    ("distill", b"\xff\xfe kd_loss: fgd\n", "distill YAML '{p}' is not UTF-8 text"),
    ("model", "- a\n- b\n", "model={p} cannot be read as a model YAML: '{p}' is not a valid YAML mapping"),
])
def test_a_hostile_yaml_is_one_line_before_any_work(key, text, message, tmp_path, monkeypatch, capsys, synthetic_data,
                                                    teacher_pt):
    """A few hundred bytes of aliases expand to 10**9 values (a hang), brackets nested 20000 deep overflow the
    readers' recursion (a segfault in Ultralytics' C reader), bytes that are not text: each one line."""
    from ikd_yolo.cli import main

    path = tmp_path / f"hostile-{key}.yaml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text.replace("{aliases}", _aliases(8)).replace("{{", "{").replace("}}", "}"))
    args = {"model": "yolo11n.yaml", "teacher": teacher_pt, "data": synthetic_data, key: path, "epochs": 1}
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    capsys.readouterr()
    assert main(["train", *(f"{k}={v}" for k, v in args.items())]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"ikd-yolo train: error: {message.format(p=path)}") and "\n" not in err, err
    assert list(work.iterdir()) == []


@pytest.mark.parametrize("project, why", [("{ro}", "Read-only file system"),
                                          ("{file}/runs", "{file} is a file, not a folder")])
def test_a_run_folder_that_cannot_be_written_is_one_line_before_any_work(project, why, tmp_path, monkeypatch, capsys,
                                                                         synthetic_data, teacher_pt):
    import errno
    import tempfile

    from ikd_yolo.cli import main

    (tmp_path / "a file").write_text("not a folder")
    ro = tmp_path / "read-only"
    ro.mkdir()
    real = tempfile.TemporaryFile

    def read_only(*args, dir=None, **kwargs):  # tests run as root, where chmod does not stop writes
        if dir is not None and Path(dir) == ro:
            raise OSError(errno.EROFS, "Read-only file system")
        return real(*args, dir=dir, **kwargs)

    monkeypatch.setattr(tempfile, "TemporaryFile", read_only)
    fill = {"ro": ro, "file": tmp_path / "a file"}
    project = project.format(**fill)
    capsys.readouterr()
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}",
                 f"project={project}", "name=r", "epochs=1"]) == 2
    assert capsys.readouterr().err.strip() == (
        f"ikd-yolo train: error: the run folder {Path(project) / 'r'} cannot be written ({why.format(**fill)}): pass "
        "project= (and name=) a folder you can write")
    assert list(ro.iterdir()) == []

