"""Checkpoints: a mid-epoch one is fp16 and exports to ONNX without ikd_yolo; wrapped student checkpoints train their
student."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import textwrap
from copy import deepcopy
from pathlib import Path

import pytest
import torch
from torch import nn
from ultralytics import YOLO
from ultralytics.cfg import get_cfg
from ultralytics.nn.distill_model import DistillationModel
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils.torch_utils import ModelEMA

from helpers import Stop, stop, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.config import resolve_distill_config
from ikd_yolo.hooks import detect_input_layers
from ikd_yolo.inputs import InputError
from ikd_yolo.model import FeatureDistiller, IKDModel, level_channels
from ikd_yolo.teacher import load_teacher
from ikd_yolo.trainer import wrapped_student


def test_checkpoint_written_mid_epoch_is_fp16_and_loads(killed_run):
    ckpt = torch.load(killed_run["mid_epoch"], weights_only=False)
    params = list(ckpt["ema"].parameters())
    assert params and all(p.dtype == torch.float16 and torch.isfinite(p).all() for p in params)
    state = ckpt["ema"].ikd_state  # distiller weights ride along as plain tensors, fp32 and finite
    assert all(torch.isfinite(v).all() for v in state["distiller"].values())
    model = YOLO(killed_run["mid_epoch"])
    results = model.predict(torch.rand(1, 3, 64, 64), imgsz=64, verbose=False)
    assert len(results) == 1 and torch.isfinite(results[0].boxes.data).all()


def _distillation_model_checkpoint(path: Path, teacher_pt: Path, data: Path) -> nn.Module:
    """What an Ultralytics distill_model= run leaves in last.pt mid-run: an EMA DistillationModel, teacher stripped."""
    args = get_cfg(overrides={"imgsz": 64, "data": str(data), "distill_model": str(teacher_pt)})
    student = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    student.args = args
    ema = ModelEMA(DistillationModel(teacher_model=load_teacher(teacher_pt, nc=8), student_model=student)).ema
    torch.save({"epoch": 0, "model": None, "ema": deepcopy(ema).half(), "optimizer": None, "train_args": vars(args)},
               path)
    return ema


def _ikd_model_checkpoint(path: Path, teacher_pt: Path, data: Path) -> nn.Module:
    """A checkpoint whose model is our own training wrapper (e.g. someone saved trainer.model)."""
    student = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    teacher = load_teacher(teacher_pt, nc=8)
    cfg = resolve_distill_config({"distill": "ikd-mgd"})  # its distiller holds a stream record too
    model = IKDModel(student, FeatureDistiller(level_channels(student, detect_input_layers(student)),
                                               level_channels(teacher, detect_input_layers(teacher)), cfg))
    model.args = {"task": "detect", "imgsz": 64}
    torch.save({"model": deepcopy(model).half(), "train_args": {"task": "detect", "imgsz": 64}}, path)
    return model


@pytest.mark.parametrize("wrapper, entry", [("DistillationModel", "YOLO"), ("DistillationModel", "IKDTrainer"),
                                            ("IKDModel", "YOLO")])
def test_student_checkpoint_holding_a_distillation_wrapper_trains_its_student(wrapper, entry, tmp_path, synthetic_data,
                                                                              teacher_pt, ultralytics_log):
    path = tmp_path / "student.pt"
    make = _distillation_model_checkpoint if wrapper == "DistillationModel" else _ikd_model_checkpoint
    expected = wrapped_student(make(path, teacher_pt, synthetic_data)).half().float().state_dict()
    kwargs = dict(teacher=str(teacher_pt), data=str(synthetic_data), distill="fgd", **train_kwargs(tmp_path, "wrapped"))
    if entry == "YOLO":
        model = YOLO(path)
        model.add_callback("on_train_start", stop)
        with pytest.raises(Stop):
            model.train(trainer=IKDTrainer, **kwargs)
        trainer = model.trainer
    else:
        trainer = IKDTrainer(overrides={"model": str(path), **kwargs})
        trainer.add_callback("on_train_start", stop)
        with pytest.raises(Stop):
            trainer.train()
    student = trainer.model.student.state_dict()
    assert type(trainer.model.student) is DetectionModel
    assert all(torch.equal(student[k], v) for k, v in expected.items())  # every weight came over, not 0/499
    assert (f"ikd-yolo: the student checkpoint holds a {wrapper}: training its student, without the saved "
            "teacher or distillation layers") in [re.sub(r"\x1b\[[0-9;]*m", "", m) for m in ultralytics_log]


def test_resume_from_a_foreign_distillation_checkpoint_says_how_to_resume_it(tmp_path, synthetic_data, teacher_pt):
    path = tmp_path / "last.pt"
    _distillation_model_checkpoint(path, teacher_pt, synthetic_data)
    with pytest.raises(InputError) as e:
        IKDTrainer(overrides={"model": str(path), "resume": str(path), "teacher": str(teacher_pt)})
    assert str(e.value) == (f"'{path}' holds no ikd-yolo state: resume runs started with ikd-yolo, "
                            "or resume this one with 'yolo train resume'")


# ---- 5. export of a checkpoint written mid-epoch, in a process without ikd_yolo ------------------------------------
# Ultralytics runs ONNX files through ONNX Runtime, which is not a test dependency: the exported graph is run with
# onnx's own reference evaluator instead and compared with the PyTorch model. simplify=False for the same reason
# (onnxslim). Unproven here: `YOLO("last.onnx").predict()` through Ultralytics' AutoBackend.

EXPORT_SCRIPT = textwrap.dedent("""
    import json, sys
    import numpy as np
    import onnx
    import torch
    from onnx.reference import ReferenceEvaluator
    from ultralytics import YOLO

    ckpt = sys.argv[1]
    path = YOLO(ckpt).export(format="onnx", imgsz=64, simplify=False, dynamic=False, verbose=False)
    graph = onnx.load(path)
    onnx.checker.check_model(graph)
    x = np.random.default_rng(0).random((1, 3, 64, 64), dtype=np.float32)
    (out,) = ReferenceEvaluator(graph).run(None, {"images": x})
    model = YOLO(ckpt).model.float().fuse().eval()
    with torch.no_grad():
        ref = model(torch.from_numpy(x))[0].numpy()
    meta = {p.key: p.value for p in graph.metadata_props}
    print(json.dumps({
        "shape": list(out.shape), "max_err": float(np.abs(out - ref).max()), "scale": float(np.abs(ref).max()),
        "task": meta.get("task"), "names": meta.get("names"),
        "ikd_modules": [m for m in sys.modules if m.split(".")[0] == "ikd_yolo"],
    }))
""")


def test_checkpoint_written_mid_epoch_exports_to_onnx_without_ikd_yolo(tmp_path, killed_run):
    ckpt = tmp_path / "mid_epoch.pt"
    shutil.copy(killed_run["mid_epoch"], ckpt)
    proc = subprocess.run([sys.executable, "-c", EXPORT_SCRIPT, str(ckpt)], capture_output=True, text=True,
                          timeout=300, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out["ikd_modules"] == []  # the checkpoint unpickles without our package
    assert out["shape"] == [1, 4 + 8, 8 * 8 + 4 * 4 + 2 * 2] and out["task"] == "detect" and "disc" in out["names"]
    assert out["max_err"] <= 1e-3 * max(out["scale"], 1.0)
