"""Segment, pose and obb students and teachers: synthetic labels per task, the trainer each task gets, training with a
feature and a head-aware base loss, resume, plain checkpoints, and the refused pairs (one line, no run folder)."""

from __future__ import annotations

import hashlib
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml
from ultralytics import YOLO
from ultralytics.nn.tasks import OBBModel, PoseModel, SegmentationModel

from helpers import Stop, stop, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.cli import main
from ikd_yolo.data import make_synthetic_dataset
from ikd_yolo.errors import StudentError
from ikd_yolo.hooks import FeatureRecorder, detect_input_layers, head_outputs, training_outputs
from ikd_yolo.model import boxes_per_image
from ikd_yolo.trainer import IKDOBBTrainer, IKDPoseTrainer, IKDSegmentationTrainer, ikd_trainer_for, run_task

SUFFIX = {"segment": "-seg", "pose": "-pose", "obb": "-obb"}
TRAINER = {"segment": IKDSegmentationTrainer, "pose": IKDPoseTrainer, "obb": IKDOBBTrainer}


@pytest.fixture(scope="module")
def task_setup(tmp_path_factory):
    """Per task: (data.yaml of 16 / 4 images at 64 px, a teacher of that task trained for one epoch), built lazily."""
    made = {}

    def get(task: str) -> tuple[Path, Path]:
        if task not in made:
            root = tmp_path_factory.mktemp(task)
            data = make_synthetic_dataset(root / "data", n_train=16, n_val=4, imgsz=64, seed=0, task=task)
            YOLO(f"yolo11n{SUFFIX[task]}.yaml").train(data=str(data), **train_kwargs(root, "t", val=False, amp=False))
            made[task] = data, root / "t" / "weights" / "last.pt"
        return made[task]

    return get


# ---- synthetic labels --------------------------------------------------------------------------------------------
def test_detect_labels_stay_byte_identical_and_images_are_shared_by_every_task(tmp_path):
    """The detect labels of a seed are what they were before tasks existed (evidence runs depend on them); the other
    tasks label the very same images."""
    data = make_synthetic_dataset(tmp_path / "det", n_train=12, n_val=4, imgsz=96, seed=3)
    labels = b"".join(p.read_bytes() for p in sorted((data.parent / "labels").glob("*/*.txt")))
    assert hashlib.sha256(labels).hexdigest() == "98ac7116bf56d5e1ad99b5a9498ff74fd625118fca6267cd1cee9abc02319518"
    assert "task" not in (data.parent / "synthetic.json").read_text()
    seg = make_synthetic_dataset(tmp_path / "seg", n_train=12, n_val=4, imgsz=96, seed=3, task="segment")
    for img in (data.parent / "images" / "train").iterdir():
        assert img.read_bytes() == (seg.parent / "images" / "train" / img.name).read_bytes()


@pytest.mark.parametrize("task, columns", [("segment", None), ("pose", 5 + 12), ("obb", 9)])
def test_task_labels_have_ultralytics_format(task, columns, tmp_path):
    data = make_synthetic_dataset(tmp_path / task, n_train=6, n_val=2, imgsz=64, seed=1, task=task)
    det = make_synthetic_dataset(tmp_path / "det", n_train=6, n_val=2, imgsz=64, seed=1)
    for file in sorted((data.parent / "labels" / "train").glob("*.txt")):
        rows = [line.split() for line in file.read_text().splitlines()]
        det_rows = [line.split() for line in (det.parent / "labels" / "train" / file.name).read_text().splitlines()]
        assert [r[0] for r in rows] == [r[0] for r in det_rows]  # one label per object, same classes
        for row in rows:
            values = [float(v) for v in row[1:]]
            assert len(row) == columns if columns else (len(values) % 2 == 0 and len(values) >= 6)
            assert all(-1e-6 <= v <= 1 + 1e-6 for v in values if v != 2.0)
    cfg = yaml.safe_load(data.read_text())
    if task == "pose":
        assert cfg["kpt_shape"] == [4, 3] and cfg["flip_idx"] == [0, 3, 2, 1]


def test_synth_task_from_the_command_line(tmp_path, capsys):
    assert main(["synth", f"out={tmp_path / 'p'}", "n_train=2", "n_val=1", "imgsz=64", "task=pose"]) == 0
    assert "kpt_shape" in Path(capsys.readouterr().out.strip()).read_text()
    assert main(["synth", f"out={tmp_path / 'c'}", "task=classify"]) == 2
    assert "task='classify' is not a task the synthetic data labels" in capsys.readouterr().err


# ---- pieces --------------------------------------------------------------------------------------------------------
def test_each_task_gets_its_trainer():
    assert run_task(overrides={"model": "yolo11n-seg.yaml"}) == "segment"
    assert run_task(overrides={"model": "yolo11n-obb.yaml", "task": "pose"}) == "pose"  # an explicit task wins
    assert run_task(overrides={"model": "yolo11n.yaml"}) == "detect"
    assert ikd_trainer_for("detect") is IKDTrainer
    assert all(ikd_trainer_for(t) is c and issubclass(c, IKDTrainer) for t, c in TRAINER.items())
    with pytest.raises(StudentError, match="^task=classify cannot be distilled with ikd-yolo: a classifier has no "):
        ikd_trainer_for("classify")


@pytest.mark.parametrize("model_class, yaml_name", [(SegmentationModel, "yolo11n-seg.yaml"),
                                                    (PoseModel, "yolo11n-pose.yaml"), (OBBModel, "yolo11n-obb.yaml")])
def test_head_outputs_are_the_detection_branch_of_a_task_head(model_class, yaml_name):
    """The teacher-side head pass equals the class and box outputs of the model's own training forward."""
    model = model_class(yaml_name, nc=3, verbose=False).train()
    with FeatureRecorder(detect_input_layers(model)).capture(model) as maps:
        preds = model.predict(torch.rand(2, 3, 64, 64))
    ours, theirs = head_outputs(model, maps), training_outputs(preds)
    assert set(ours) == {"scores", "boxes"}
    torch.testing.assert_close(ours["scores"], theirs["scores"])
    torch.testing.assert_close(ours["boxes"], theirs["boxes"])


def test_rotated_boxes_give_their_axis_aligned_extent():
    batch = {"img": torch.zeros(2, 3, 8, 8), "batch_idx": torch.tensor([0.0, 1.0]),
             "bboxes": torch.tensor([[0.5, 0.5, 0.2, 0.1, math.pi / 2], [0.5, 0.5, 0.2, 0.2, math.pi / 4]])}
    first, second = boxes_per_image(batch)
    torch.testing.assert_close(first, torch.tensor([[0.45, 0.4, 0.55, 0.6]]))
    half = 0.2 * math.sqrt(2) / 2
    torch.testing.assert_close(second, torch.tensor([[0.5 - half, 0.5 - half, 0.5 + half, 0.5 + half]]))


# ---- training ------------------------------------------------------------------------------------------------------
def _plain_load_and_predict(best: Path, image: Path) -> str:
    """The task of `best` as a fresh process without ikd_yolo reads it, after a prediction and a validation-free
    load (the checkpoint is a plain Ultralytics model)."""
    code = ("import sys; from ultralytics import YOLO; m = YOLO(sys.argv[1]); m.predict(sys.argv[2], imgsz=64, "
            "verbose=False); assert 'ikd_yolo' not in sys.modules; print(m.task, type(m.model).__name__)")
    proc = subprocess.run([sys.executable, "-c", code, str(best), str(image)], capture_output=True, text=True,
                          timeout=300, cwd=best.parent, env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout.strip().splitlines()[-1]


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
@pytest.mark.parametrize("distill", ["fgd", "ikd-score"])
def test_task_student_trains_and_saves_a_plain_checkpoint(task, distill, task_setup, tmp_path):
    """fgd (features) and ikd-score (score-weighted features, class and box distillation, the online attack on the
    teacher's detection-branch class loss): the student's own task loss is in the columns beside the terms."""
    data, teacher = task_setup(task)
    model = YOLO(f"yolo11n{SUFFIX[task]}.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher), data=str(data), distill=distill, adv_steps=1,
                **train_kwargs(tmp_path, "run", amp=False))
    assert type(model.trainer) is TRAINER[task]
    columns = (tmp_path / "run" / "results.csv").read_text().splitlines()[0]
    own = {"segment": "train/seg_loss", "pose": "train/pose_loss", "obb": "train/angle_loss"}[task]
    assert own in columns and f"train/{'fgd' if distill == 'fgd' else 'score'}_loss" in columns
    if distill == "fgd":
        image = next((data.parent / "images" / "val").iterdir())
        expected = {"segment": "SegmentationModel", "pose": "PoseModel", "obb": "OBBModel"}[task]
        assert _plain_load_and_predict(tmp_path / "run" / "weights" / "best.pt", image) == f"{task} {expected}"


@pytest.mark.parametrize("task, attack", [("segment", "clean"), ("pose", "clean"), ("obb", "clean"),
                                          ("segment", "online"), ("pose", "online")])
def test_task_student_distils_on_unlabelled_images(task, attack, task_setup, tmp_path):
    """unlabeled= for every task: the stream reads only the raw images (no labels, no detection loss on them), clean
    or attacked online against the teacher's own detections (not for obb: its detections are rotated boxes, refused
    in one line before any work), beside the student's own task loss."""
    data, teacher = task_setup(task)
    other = make_synthetic_dataset(tmp_path / "other", n_train=1, n_val=1, imgsz=64, seed=7, n_unlabeled=8)
    model = YOLO(f"yolo11n{SUFFIX[task]}.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher), data=str(data), distill="score-stream", adv_mode=attack,
                adv_steps=1, adv_every=1, ikd_phase=1.0, stream_source="unlabeled",
                unlabeled=str(other.parent / "images" / "unlabeled"), **train_kwargs(tmp_path, "run", amp=False))
    trainer = model.trainer
    (stream,) = trainer.streams
    assert type(trainer) is TRAINER[task] and len(trainer.unlabeled) == 8 and stream.images == "unlabeled"
    assert trainer.loaders[stream.name].drawn == len(trainer.train_loader)  # one stream batch a step
    header, row = (tmp_path / "run" / "results.csv").read_text().splitlines()[:2]
    values = dict(zip((c.strip() for c in header.split(",")), (float(v) for v in row.split(","))))
    own = {"segment": "train/seg_loss", "pose": "train/pose_loss", "obb": "train/angle_loss"}[task]
    assert own in values and values[f"train/{stream.term}"] > 0


def test_a_stopped_segment_run_resumes_with_its_trainer_and_distiller(task_setup, tmp_path):
    data, teacher = task_setup("segment")
    model = YOLO("yolo11n-seg.yaml")
    model.add_callback("on_model_save", stop)
    with pytest.raises(Stop):
        model.train(trainer=IKDTrainer, teacher=str(teacher), data=str(data), distill="score",
                    **train_kwargs(tmp_path, "run", epochs=2, amp=False, val=False))
    last = tmp_path / "run" / "weights" / "last.pt"
    resumed = YOLO(last)
    resumed.train(trainer=IKDTrainer, resume=True)
    assert type(resumed.trainer) is IKDSegmentationTrainer and resumed.trainer.start_epoch == 1
    assert len((tmp_path / "run" / "results.csv").read_text().splitlines()) == 3  # header, epoch 1, epoch 2


def test_a_detect_teacher_teaches_a_segment_student(task_setup, teacher_pt, tmp_path):
    """A detect teacher on the same classes: features, classes and axis-aligned boxes are distilled into the
    segment student's detection branch; its masks learn from the labels alone."""
    data, _ = task_setup("segment")
    model = YOLO("yolo11n-seg.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher_pt), data=str(data), distill="score",
                **train_kwargs(tmp_path, "run", amp=False, val=False))
    assert (tmp_path / "run" / "weights" / "last.pt").is_file()


def test_refused_pairs_and_settings_are_one_line_without_a_run_folder(task_setup, teacher_pt, tmp_path, capsys):
    seg_data, seg_teacher = task_setup("segment")
    obb_data, obb_teacher = task_setup("obb")
    common = ["epochs=1", "imgsz=64", "device=cpu", f"project={tmp_path}", "name=refused"]
    cases = [
        (["model=yolo11n-obb.yaml", f"teacher={teacher_pt}", f"data={obb_data}"],
         "the teacher (task=detect) and the student (task=obb) predict different boxes (axis-aligned vs rotated): "
         "use a teacher trained with task=obb"),
        (["model=yolo11n-seg.yaml", f"teacher={obb_teacher}", f"data={seg_data}"],
         "the teacher (task=obb) and the student (task=segment) predict different boxes (rotated vs axis-aligned): "
         "use a teacher trained with task=detect or segment or pose"),
        (["model=yolo11n-seg.yaml", f"teacher={seg_teacher}", f"data={seg_data}", "freq_mode=paper"],
         "freq_mode=paper crops images and moves their boxes but not the segment labels"),
        (["model=yolo11n-cls.yaml", f"teacher={seg_teacher}", f"data={seg_data}"],
         "model=yolo11n-cls.yaml is a classify model (Classify head): ikd-yolo distils YOLO students of task detect, "
         "segment, pose, obb"),
        (["model=rtdetr-l.yaml", f"teacher={seg_teacher}", f"data={seg_data}"], "is a RTDETRDecoder detector"),
        (["model=yoloe-11s-seg.yaml", f"teacher={seg_teacher}", f"data={seg_data}"], "model=yoloe-11s-seg.yaml is a"),
    ]
    for words, message in cases:
        assert main(["train", *words, *common]) == 2
        err = capsys.readouterr().err.strip()
        assert len(err.splitlines()) == 1 and message in err, err
        assert not (tmp_path / "refused").exists()


def test_a_pt_student_given_to_the_detect_trainer_is_refused_in_one_line(task_setup, tmp_path):
    data, teacher = task_setup("pose")
    with pytest.raises(StudentError, match=r"^the student is a pose model but this run trains task=detect: pass "
                                           r"task=pose"):
        IKDTrainer(overrides={"model": str(teacher), "teacher": str(teacher), "data": str(data),
                              **train_kwargs(tmp_path, "run")})
    assert not (tmp_path / "run").exists()


# ---- evidence per task -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_bench_distill_scores_each_task_with_its_own_metric(task, task_setup, tmp_path):
    """bench-distill task=...: the profile's student becomes the task's model, every run is validated by the task's
    validator, and the table shows the task's metric (mask / pose mAP; an obb mAP is over rotated boxes, so there
    is no COCOeval of axis-aligned boxes)."""
    from ikd_yolo.evidence import run_benchmark
    from ikd_yolo.evidence.paths import local

    data, teacher = task_setup(task)
    summary = run_benchmark(profile="quick", task=task, data=data, teacher=teacher, methods="none,score", seeds=1,
                            epochs=1, imgsz=64, batch=8, jobs=1, out=tmp_path / "out", project=tmp_path / "runs")
    assert summary["task"] == task and summary["settings"]["student"] == f"yolo11n{SUFFIX[task]}.yaml"
    for run in summary["runs"]:
        scores = run["scores"]
        assert 0 <= scores["map50_95"] <= scores["map50"] <= 1
        if task == "obb":
            assert "task_map50_95" not in scores and scores["AP"] is None
        else:
            assert 0 <= scores["task_map50_95"] <= scores["task_map50"] <= 1 and 0 <= scores["AP"] <= 1
        assert YOLO(local(run["weights"], tmp_path / "runs")).task == task  # recorded as <project>/...
    table = (tmp_path / "out" / "quick" / "bench_distill.md").read_text()
    header = table.splitlines()[2]
    metric = {"segment": "mask mAP50-95", "pose": "pose mAP50-95", "obb": None}[task]
    assert (metric in header) if metric else ("| AP |" not in header and "AP_S" not in header)
    assert f"task={task}" not in header and "Δ" + (metric or "mAP50-95") in table


def test_bench_distill_refuses_a_student_of_another_task_in_one_line(tmp_path):
    from ikd_yolo.config import DistillConfigError
    from ikd_yolo.evidence import resolve_settings

    with pytest.raises(DistillConfigError, match=r"^student=yolo11n-pose.yaml is a pose model but task=segment"):
        resolve_settings("quick", task="segment", student="yolo11n-pose.yaml")
    with pytest.raises(DistillConfigError, match="task=classify is not one bench-distill measures"):
        resolve_settings("quick", task="classify")
    assert resolve_settings("quick", student="yolo11n-obb.yaml")["task"] == "obb"  # inferred from the student


@pytest.mark.parametrize("task", ["segment", "pose", "obb"])
def test_the_cached_attack_builds_on_task_data_and_training_reads_it(task, task_setup, tmp_path, monkeypatch):
    """adv_mode=cached on a segment / pose / obb teacher and its data (as bench-distill's quick profile runs it): every
    training image attacked once, inside the eps ball of its clean image, and the stream serves them."""
    from ikd_yolo.augment.adv_cache import attack_dataset, label_task, open_attack_cache
    from ikd_yolo.augment.image_stream import CachedImages, ImageStream
    from ikd_yolo.augment.attack import AttackSettings
    from ikd_yolo.config import resolve_distill_config, section
    from ikd_yolo.inputs import load_data
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    data, teacher_pt = task_setup(task)
    data_dict = load_data(data)
    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=data_dict["nc"], names=data_dict["names"])).model
    settings = section(AttackSettings, resolve_distill_config({"adv_mode": "cached", "adv_steps": 1}))
    cache, stats = open_attack_cache(teacher, data_dict, 64, settings, "cpu", 8, progress=False)
    assert stats["total"] == 16 and stats["images"] == 16 and label_task(teacher, data_dict) == (
        "detect" if task == "segment" else task)  # segment labels attack as their boxes
    dataset = attack_dataset(data_dict, 64, 8, label_task(teacher, data_dict))
    for i in range(len(cache.im_files)):
        clean = dataset[i]["img"].permute(1, 2, 0).numpy().astype(int)
        adv = cache.read(i).astype(int)
        assert abs(adv - clean).max() <= round(settings.eps * 255)  # inside the budget, on the 8-bit grid
    images = ImageStream(CachedImages(cache, fliplr=0.0), workers=0, seed=0).next(4, torch.device("cpu"))
    assert images.shape == (4, 3, 64, 64) and 0 <= images.min() and images.max() <= 1


# ---- keypoint distillation (score_kpt) ---------------------------------------------------------------------------
def test_keypoint_discrepancy_by_hand():
    from ikd_yolo.losses.score import keypoint_discrepancy

    # two keypoints (x, y, visibility logit) at one position: the first seen by the teacher, the second not
    teacher = torch.tensor([0.5, 0.0, 30.0, 0.0, 0.0, -30.0]).view(1, 6, 1, 1)
    student = torch.tensor([0.0, 0.0, 30.0, 3.0, 3.0, -30.0]).view(1, 6, 1, 1).requires_grad_()
    d = keypoint_discrepancy(teacher, student, kpt_dim=3)
    # first keypoint: x off by 2 * 0.5 = 1 stride, smooth L1 0.5, mean over x, y 0.25; the unseen one does not count
    assert torch.allclose(d, torch.tensor(0.25).view(1, 1, 1, 1), atol=1e-6)
    d.sum().backward()
    assert student.grad[0, 3:5].abs().max() < 1e-12  # the teacher does not see it: no pull on its position
    assert keypoint_discrepancy(teacher, teacher.clone(), 3).abs().max() < 1e-6
    assert torch.allclose(keypoint_discrepancy(teacher[:, [0, 1]], student.detach()[:, [0, 1]], kpt_dim=2),
                          torch.tensor(0.25).view(1, 1, 1, 1))  # no visibility: a plain mean


def test_teacher_keypoint_branch_from_its_neck_maps_equals_its_own_forward():
    from ikd_yolo.hooks import detect_input_layers, head_outputs, neck_features

    model = PoseModel("yolo11n-pose.yaml", verbose=False).eval()
    x = torch.rand(1, 3, 64, 64)
    maps = neck_features(model, x, detect_input_layers(model))
    with torch.no_grad():
        own = model(x)[1]
        ours = head_outputs(model, maps, keypoints=True)
    assert torch.equal(ours["kpts"], own["kpts"]) and "kpts" not in head_outputs(model, maps)


def test_score_kpt_distils_a_pose_students_keypoints(task_setup, tmp_path):
    data, teacher = task_setup("pose")
    model = YOLO("yolo11n-pose.yaml")
    model.train(trainer=IKDTrainer, teacher=str(teacher), data=str(data), distill="score", score_kpt="auto",
                **train_kwargs(tmp_path, "run", amp=False, val=False))
    trainer = model.trainer
    report = trainer.auto_weight_report
    assert report["values"]["score.kpt"] > 0 and trainer.distill["score_kpt"] > 0  # measured like the other parts
    assert trainer.model.distiller.base[0].kpt == trainer.distill["score_kpt"] and trainer.teacher.keypoints


def test_score_kpt_without_a_pose_pair_is_one_line(task_setup, teacher_pt, synthetic_data, tmp_path, capsys):
    words = [f"{k}={v}" for k, v in train_kwargs(tmp_path, "run").items()]
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}", "distill=score",
                 "score_kpt=1.0", *words]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "score_kpt=1.0 distils keypoints, but the teacher is a detect and the student a detect" \
        in err[0] and not (tmp_path / "run").exists()


def test_keypoints_are_off_until_asked_for_even_with_auto_weights():
    from ikd_yolo.config import resolve_distill_config

    assert resolve_distill_config({"distill": "ikd-score"})["score_kpt"] == 0.0  # weights=auto leaves it off
    assert resolve_distill_config({"distill": "score", "score_kpt": "auto"})["score_kpt"] == "auto"
    assert resolve_distill_config({"distill": "score"})["score_cls"] == "auto"  # the other parts are measured


def test_a_task_teacher_can_start_from_a_detect_teachers_weights(teacher_pt, tmp_path):
    """teacher_init: the benchmark's task teacher trains from a detect teacher's weights (Ultralytics' pretrained=),
    which is part of its cache key; without it the key stays what it was; contradictions are one line."""
    from ikd_yolo.config import DistillConfigError
    from ikd_yolo.evidence import bench, resolve_settings
    from ikd_yolo.inputs import TeacherError

    s = resolve_settings("quick", task="segment", teacher_init=str(teacher_pt))
    assert bench.teacher_train_args(s)["pretrained"] == str(Path(teacher_pt).resolve())
    assert "pretrained" not in bench.teacher_train_args(resolve_settings("quick", task="segment"))
    with pytest.raises(DistillConfigError, match=r"^teacher_init=\S+ starts the profile's teacher training, and "
                                                 r"teacher=\S+ is already trained"):
        bench.check_inputs(resolve_settings("quick", teacher_init=str(teacher_pt), teacher=str(teacher_pt)))
    with pytest.raises(TeacherError, match="teacher_init"):
        bench.check_inputs(resolve_settings("quick", teacher_init=str(tmp_path / "missing.pt")))
