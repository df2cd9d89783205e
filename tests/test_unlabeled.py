"""unlabeled=: the extra stream distils the teacher on images nobody labelled. A run with them trains, resumes where
its stream stopped and writes a plain checkpoint; a set that cannot be used is one line before any work; a few
unreadable files among many are skipped with one warning."""

from __future__ import annotations

import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch
from ultralytics import YOLO

from helpers import Stop, read_results, stop, train_kwargs
from ikd_yolo import IKDTrainer
from ikd_yolo.cli import main


@pytest.fixture(scope="module")
def raw_images(tmp_path_factory) -> Path:
    """A folder of 12 images of the synthetic shapes that are in no split of the test dataset (another seed), in a
    sub-folder too, with their label files left out."""
    from ikd_yolo.data import make_synthetic_dataset

    other = Path(make_synthetic_dataset(tmp_path_factory.mktemp("other") / "d", n_train=12, n_val=1, imgsz=64,
                                        seed=7)).parent
    raw = tmp_path_factory.mktemp("raw")
    for i, f in enumerate(sorted((other / "images" / "train").iterdir())):
        target = raw / ("deeper" if i % 2 else ".") / f"frame_{i:03d}{f.suffix}"
        target.parent.mkdir(exist_ok=True)
        shutil.copy(f, target)
    return raw


def test_the_unlabelled_images_are_letterboxed_as_validation_reads_images(synthetic_data):
    from ikd_yolo.augment.adv_cache import attack_dataset
    from ikd_yolo.data.unlabeled import UnlabeledImages
    from ikd_yolo.inputs import load_data

    for size in (64, 96, 48):  # as drawn, upscaled, downscaled
        dataset = attack_dataset(load_data(synthetic_data), size, 8)
        images = UnlabeledImages(dataset.im_files[:4], size)
        assert all(torch.equal(images[i]["img"], dataset[i]["img"]) for i in range(4)), size


def test_a_run_with_unlabelled_images_trains_resumes_where_its_stream_stopped_and_is_plain(
        tmp_path, synthetic_data, teacher_pt, raw_images):
    kwargs = dict(teacher=str(teacher_pt), data=str(synthetic_data), distill="ikd-score", adv_mode="clean",
                  adv_every=1, ikd_phase=1.0, unlabeled=str(raw_images), weights="fixed", adv_weight=1.0)
    model = YOLO("yolo11n.yaml")
    model.add_callback("on_model_save", stop)  # stopped once epoch 1 is saved
    with pytest.raises(Stop):
        model.train(trainer=IKDTrainer, **kwargs, **train_kwargs(tmp_path, "run", epochs=2, val=False))
    first = model.trainer
    assert first.streams[0].images == "both" and len(first.unlabeled) == 12  # auto: the training split and these
    steps = len(first.train_loader)
    assert first.loaders["stream"].drawn == steps  # one batch of the stream per step (adv_every=1)
    assert read_results(tmp_path / "run")["train/stream_loss"][0] > 0

    resumed = YOLO(tmp_path / "run" / "weights" / "last.pt")
    started = []
    resumed.add_callback("on_train_start", lambda t: started.append(t.loaders["stream"].drawn))
    resumed.train(trainer=IKDTrainer, resume=True)
    assert started == [steps]  # the stream goes on where it stopped, not from its first batch
    assert resumed.trainer.loaders["stream"].drawn == 2 * steps
    assert read_results(tmp_path / "run")["epoch"] == [1.0, 2.0]
    ckpt = torch.load(tmp_path / "run" / "weights" / "best.pt", weights_only=False)
    assert type(ckpt["model"] or ckpt["ema"]).__name__ == "DetectionModel"  # a plain Ultralytics checkpoint


def test_a_stream_of_unlabelled_images_alone_attacked_online_trains(tmp_path, synthetic_data, teacher_pt, raw_images):
    from ikd_yolo.streams import streams_of

    words = [f"{k}={v}" for k, v in train_kwargs(tmp_path, "online", val=False).items()]
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}",
                 "distill=ikd-score", "adv_mode=online", "adv_steps=1", "adv_every=1", "ikd_phase=1.0",
                 "stream_source=unlabeled", f"unlabeled={raw_images}", *words]) == 0
    from ikd_yolo.config import resolve_distill_config

    (stream,) = streams_of(resolve_distill_config({"adv_mode": "online", "stream_source": "unlabeled",
                                                   "unlabeled": str(raw_images)}))
    assert (stream.name, stream.source, stream.attack, stream.images) == ("adv", "loader", "online", "unlabeled")
    assert read_results(tmp_path / "online")["train/adv_loss"][0] > 0


def test_the_teachers_detections_are_labels_the_criterion_reads(teacher_pt):
    from ikd_yolo.augment.pseudo_labels import teacher_labels
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    teacher = FrozenTeacher(load_teacher(teacher_pt, nc=8)).model
    labels = teacher_labels(teacher, torch.rand(3, 3, 64, 64), conf=0.0)  # every box NMS keeps
    n = labels["cls"].shape[0]
    assert n > 0 and labels["bboxes"].shape == (n, 4) and labels["batch_idx"].shape == (n,)
    assert set(labels["batch_idx"].tolist()) <= {0.0, 1.0, 2.0}
    assert ((labels["bboxes"] >= 0) & (labels["bboxes"] <= 1)).all()
    assert ((labels["cls"] >= 0) & (labels["cls"] < 8)).all()


def _refused(capsys, tmp_path, synthetic_data, teacher_pt, unlabeled, *extra) -> str:
    words = [f"{k}={v}" for k, v in train_kwargs(tmp_path, "refused", val=False).items()]
    code = main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}", "distill=ikd-score",
                 "adv_mode=clean", f"unlabeled={unlabeled}", *extra, *words])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and not (tmp_path / "refused").exists(), err
    return err[0]


def test_unusable_unlabelled_sets_are_one_line_before_any_work(capsys, tmp_path, synthetic_data, teacher_pt,
                                                               raw_images):
    empty = tmp_path / "empty"
    (empty / "notes").mkdir(parents=True)
    (empty / "notes" / "readme.txt").write_text("no images here")
    assert "holds no image" in _refused(capsys, tmp_path, synthetic_data, teacher_pt, empty)
    broken = tmp_path / "broken"
    broken.mkdir()
    for i in range(3):
        (broken / f"{i}.jpg").write_bytes(b"not a jpeg")
    assert "none of its 3 images can be read" in _refused(capsys, tmp_path, synthetic_data, teacher_pt, broken)
    train = synthetic_data.parent / "images" / "train"
    assert "is the training split itself" in _refused(capsys, tmp_path, synthetic_data, teacher_pt, train)
    leaky = tmp_path / "leaky"
    shutil.copytree(raw_images, leaky)
    val_image = sorted((synthetic_data.parent / "images" / "val").iterdir())[0]
    shutil.copy(val_image, leaky / "renamed_copy.jpg")  # another name, the same bytes
    line = _refused(capsys, tmp_path, synthetic_data, teacher_pt, leaky)
    assert "shares 1 image(s) with the validation split" in line and "renamed_copy.jpg" in line
    assert "no unlabeled= is given" in _refused(capsys, tmp_path, synthetic_data, teacher_pt, raw_images,
                                                  "stream_source=both", "unlabeled=null")
    assert "is off in this run (distill=score)" in _refused(capsys, tmp_path, synthetic_data, teacher_pt, raw_images,
                                                             "distill=score", "adv_mode=off")  # the default's


def test_a_corrupt_image_among_many_is_skipped_with_one_warning(tmp_path, synthetic_data, teacher_pt, raw_images,
                                                                ultralytics_log):
    folder = tmp_path / "some_bad"
    shutil.copytree(raw_images, folder)
    (folder / "truncated.jpg").write_bytes((folder / "frame_000.jpg").read_bytes()[:40])
    cv2.imwrite(str(folder / "fine.png"), np.full((50, 70, 3), 200, np.uint8))  # another size and format: read
    words = [f"{k}={v}" for k, v in train_kwargs(tmp_path, "skips", val=False).items()]
    assert main(["train", "model=yolo11n.yaml", f"teacher={teacher_pt}", f"data={synthetic_data}",
                 "distill=ikd-score", "adv_mode=clean", f"unlabeled={folder}", *words]) == 0
    warnings = [m for m in ultralytics_log if "cannot be read and are skipped" in m]
    assert len(warnings) == 1 and "1 of the 14 unlabelled images" in warnings[0] and "truncated.jpg" in warnings[0]


def test_a_list_file_and_a_glob_name_the_same_images(tmp_path, raw_images):
    from ikd_yolo.data.unlabeled import list_images

    folder = list_images(raw_images)
    listed = tmp_path / "frames.txt"
    listed.write_text("\n".join(str(p.relative_to(tmp_path)) if p.is_relative_to(tmp_path) else str(p)
                                for p in folder) + "\n\n")
    assert len(folder) == 12 and list_images(listed) == folder
    assert sorted(list_images(f"{raw_images}/**/*.jpg")) == sorted(p for p in folder if p.suffix == ".jpg")
