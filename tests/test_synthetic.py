"""Tests for the procedural synthetic dataset: layout, determinism, balance, caching and Ultralytics loading."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import yaml

from ikd_yolo.data import CLASS_NAMES, dataset_stats, make_synthetic_dataset, size_bucket
from ikd_yolo.data import draw, synthetic
from ikd_yolo.errors import DataError

IMGSZ = 256


@pytest.fixture(scope="module")
def full(tmp_path_factory) -> Path:
    """data.yaml of the default 200 + 50 image dataset."""
    return make_synthetic_dataset(tmp_path_factory.mktemp("full"), n_train=200, n_val=50, imgsz=IMGSZ, seed=0)


@pytest.fixture(scope="module")
def stats(full) -> dict:
    """dataset_stats of the default dataset."""
    return dataset_stats(full)


def read_tree(root: Path) -> dict[str, bytes]:
    """Return {relative path: bytes} of every image and label file under root."""
    return {str(p.relative_to(root)): p.read_bytes() for d in ("images", "labels") for p in (root / d).rglob("*.*")}


def read_boxes(root: Path, split: str) -> list[tuple[Path, np.ndarray]]:
    """Return (image path, label rows N x 5) for every image of a split."""
    out = []
    for img in sorted((root / "images" / split).glob("*.jpg")):
        text = (root / "labels" / split / f"{img.stem}.txt").read_text()
        rows = np.array([line.split() for line in text.splitlines()], float).reshape(-1, 5)
        out.append((img, rows))
    return out


def knn_accuracy(x_train, y_train, x_test, y_test, k: int = 15) -> float:
    """Accuracy of a k-nearest-neighbour vote (Euclidean) trained on (x_train, y_train)."""
    d = ((x_test[:, None] - x_train[None]) ** 2).sum(-1)
    votes = y_train[np.argsort(d, 1)[:, :k]]
    pred = np.array([np.bincount(v, minlength=len(CLASS_NAMES)).argmax() for v in votes])
    return float((pred == y_test).mean())


def box_features(root: Path, split: str) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per labelled box: mean BGR of the box crop, a normalised 12x12 edge-magnitude thumbnail, and the class."""
    colours, shapes, classes = [], [], []
    for img_file, rows in read_boxes(root, split):
        img = cv2.imread(str(img_file)).astype(np.float32)
        for c, x, y, w, h in rows:
            x0, y0, x1, y1 = (round(v * IMGSZ) for v in (x - w / 2, y - h / 2, x + w / 2, y + h / 2))
            crop = img[y0:y1, x0:x1]
            grey = cv2.cvtColor(cv2.resize(crop, (24, 24), interpolation=cv2.INTER_AREA), cv2.COLOR_BGR2GRAY)
            edges = np.hypot(cv2.Sobel(grey, cv2.CV_32F, 1, 0), cv2.Sobel(grey, cv2.CV_32F, 0, 1))
            edges = cv2.resize(edges, (12, 12), interpolation=cv2.INTER_AREA).ravel()
            colours.append(crop.mean((0, 1)))
            shapes.append(edges / (np.linalg.norm(edges) + 1e-6))
            classes.append(int(c))
    return np.array(colours), np.array(shapes), np.array(classes)


def test_layout_and_yaml(full):
    data = full
    root = data.parent
    assert data.name == "data.yaml" and data.is_absolute()
    cfg = yaml.safe_load(data.read_text())
    assert Path(cfg["path"]) == root and (cfg["train"], cfg["val"]) == ("images/train", "images/val")
    assert cfg["nc"] == len(CLASS_NAMES) >= 6 and list(cfg["names"].values()) == list(CLASS_NAMES)
    for split, n in (("train", 200), ("val", 50)):
        assert len(list((root / "images" / split).glob("*.jpg"))) == n
        assert len(list((root / "labels" / split).glob("*.txt"))) == n
    img = cv2.imread(str(next((root / "images" / "val").glob("*.jpg"))))
    assert img.shape == (IMGSZ, IMGSZ, 3)


def test_generation_runs_opencv_on_one_thread_and_restores_it(tmp_path, monkeypatch):
    """Small images are drawn on one OpenCV thread (its pool costs more than it saves), and the caller's count is back
    afterwards, also when generation fails half way."""
    seen = []
    render = synthetic.render_image
    monkeypatch.setattr(synthetic, "render_image",
                        lambda *a, **kw: (seen.append(cv2.getNumThreads()), render(*a, **kw))[1])
    before = cv2.getNumThreads()
    cv2.setNumThreads(3)
    try:
        make_synthetic_dataset(tmp_path / "ok", n_train=3, n_val=1, imgsz=64, seed=0)
        assert seen == [1] * 4 and cv2.getNumThreads() == 3
        monkeypatch.setattr(synthetic, "render_image", lambda *a, **kw: 1 / 0)
        with pytest.raises(ZeroDivisionError):
            make_synthetic_dataset(tmp_path / "broken", n_train=3, n_val=1, imgsz=64, seed=0)
        assert cv2.getNumThreads() == 3
    finally:
        cv2.setNumThreads(before)


def test_labels_valid(full):
    root = full.parent
    for split in ("train", "val"):
        for _, rows in read_boxes(root, split):
            assert rows.shape[1] == 5
            cls, xy, wh = rows[:, 0], rows[:, 1:3], rows[:, 3:5]
            assert np.all(cls == cls.astype(int)) and np.all((cls >= 0) & (cls < len(CLASS_NAMES)))
            assert np.all((rows[:, 1:] >= 0) & (rows[:, 1:] <= 1)) and np.all(wh > 0)
            assert np.all(xy - wh / 2 >= -1e-6) and np.all(xy + wh / 2 <= 1 + 1e-6)  # clipped to the image
            assert np.all(wh * IMGSZ >= 2)  # no degenerate slivers


def test_size_buckets_balanced(stats):
    n = stats["instances"]
    shares = {k: v / n for k, v in stats["per_size"].items()}
    assert n == sum(stats["per_size"].values()) == sum(stats["per_class"].values())
    assert all(0.20 <= s <= 0.47 for s in shares.values()), shares


def test_all_classes_present(stats):
    counts = stats["per_class"]
    assert list(counts) == list(CLASS_NAMES) and len(counts) >= 6
    assert min(counts.values()) >= 0.5 * stats["instances"] / len(counts), counts  # roughly balanced


def test_only_small_and_empty_images(stats):
    assert stats["images"] == 250
    assert 0.10 <= stats["only_small"] / 250 <= 0.15, stats["only_small"]
    assert 0.05 <= stats["empty"] / 250 <= 0.10, stats["empty"]
    splits = stats["splits"]
    assert set(splits) == {"train", "val"} and splits["train"]["images"] + splits["val"]["images"] == 250
    assert sum(s["empty"] for s in splits.values()) == stats["empty"]


def test_size_bucket_thresholds():
    assert size_bucket(31 / 256, 31 / 256) == "small"
    assert size_bucket(32 / 256, 32 / 256) == "medium"
    assert size_bucket(96 / 256, 96 / 256) == "medium"
    assert size_bucket(97 / 256, 96 / 256) == "large"
    assert size_bucket(200 / 640, 20 / 640) == "small"  # relative area: 4000 px^2 of 640^2 < (80 / 640)^2


def test_deterministic_for_seed(tmp_path):
    a = make_synthetic_dataset(tmp_path / "a", n_train=24, n_val=8, seed=3)
    b = make_synthetic_dataset(tmp_path / "b", n_train=24, n_val=8, seed=3)
    tree_a, tree_b = read_tree(a.parent), read_tree(b.parent)
    assert tree_a.keys() == tree_b.keys() and len(tree_a) == 64
    assert tree_a == tree_b  # labels byte-identical; images too, within one set of library versions
    c = make_synthetic_dataset(tmp_path / "c", n_train=24, n_val=8, seed=4)
    tree_c = read_tree(c.parent)
    labels = [k for k in tree_a if k.endswith(".txt")]
    assert sum(tree_a[k] != tree_c[k] for k in labels) > len(labels) // 2
    assert all(tree_a[k] != tree_c[k] for k in tree_a if k.endswith(".jpg"))


def test_idempotent_then_regenerates(tmp_path):
    out = tmp_path / "ds"
    data = make_synthetic_dataset(out, n_train=12, n_val=4, seed=0)
    files = [p for p in out.rglob("*") if p.is_file()]
    for p in files:  # an old stamp, so that any rewrite shows even on a coarse clock
        os.utime(p, ns=(1_000_000_000_000_000_000, 1_000_000_000_000_000_000))
    assert make_synthetic_dataset(out, n_train=12, n_val=4, seed=0) == data
    assert all(p.stat().st_mtime_ns == 1_000_000_000_000_000_000 for p in files)

    make_synthetic_dataset(out, n_train=6, n_val=3, seed=1)  # changed parameters: regenerated cleanly
    fresh = make_synthetic_dataset(tmp_path / "fresh", n_train=6, n_val=3, seed=1)
    assert read_tree(out) == read_tree(fresh.parent)  # same files as a fresh folder, nothing stale left
    assert json.loads((out / "synthetic.json").read_text())["seed"] == 1
    assert dataset_stats(data)["images"] == 9

    (out / "labels" / "train" / "000000.txt").unlink()  # an incomplete dataset is regenerated too
    make_synthetic_dataset(out, n_train=6, n_val=3, seed=1)
    assert (out / "labels" / "train" / "000000.txt").is_file()


def test_refuses_foreign_folder_and_bad_args(tmp_path):
    (tmp_path / "images").mkdir()
    with pytest.raises(DataError, match="not made by make_synthetic_dataset: pass another out="):
        make_synthetic_dataset(tmp_path, n_train=2, n_val=1)
    for kwargs, message in (({"imgsz": 32}, "imgsz=32 must be >= 64"),
                            ({"n_train": 2.5}, "n_train=2.5 must be a whole"),
                            ({"n_train": 0}, "n_train=0 must be >= 1"),
                            ({"n_val": "abc"}, "n_val='abc' must be a whole"),
                            ({"clutter": 1.5}, r"clutter=1.5 must be a number in \[0, 1\]")):
        with pytest.raises(DataError, match=message):
            make_synthetic_dataset(tmp_path / "x", **kwargs)
    assert not (tmp_path / "x").exists()


def test_boxes_tight_and_complete(monkeypatch):
    """On a black background without blur or noise, every drawn pixel lies in a box and every box edge is drawn."""
    monkeypatch.setattr(draw, "_background", lambda rng, s, clutter: np.zeros((s, s, 3), np.float32))
    monkeypatch.setattr(draw, "_camera", lambda rng, img: img)
    n_boxes = 0
    for i in range(40):
        img, labels = draw.render_image(np.random.default_rng([7, i]), IMGSZ, "mixed")
        drawn = img.max(2) > 0
        covered = np.zeros_like(drawn)
        for _, x0, y0, x1, y1 in labels:
            assert 0 <= x0 < x1 <= IMGSZ and 0 <= y0 < y1 <= IMGSZ
            box = drawn[y0:y1, x0:x1]
            assert box[0].any() and box[-1].any() and box[:, 0].any() and box[:, -1].any()  # no slack
            covered[y0:y1, x0:x1] = True
        assert not (drawn & ~covered).any()  # no unlabelled object pixels
        n_boxes += len(labels)
    assert n_boxes > 60


def test_colour_does_not_identify_class(full):
    """A k-NN on the mean colour of each box is near chance, while the same k-NN on box edges is far above it."""
    root = full.parent
    colour_tr, shape_tr, y_tr = box_features(root, "train")
    colour_va, shape_va, y_va = box_features(root, "val")
    chance = 1 / len(CLASS_NAMES)
    colour_acc = knn_accuracy(colour_tr, y_tr, colour_va, y_va)
    shape_acc = knn_accuracy(shape_tr, y_tr, shape_va, y_va)
    assert colour_acc < 2 * chance, colour_acc
    assert shape_acc > 3 * chance, shape_acc  # the check can find class information where there is some
    # every class's mean-colour distribution overlaps the others': class means sit well inside the spread
    colours, classes = np.concatenate([colour_tr, colour_va]), np.concatenate([y_tr, y_va])
    means = np.array([colours[classes == c].mean(0) for c in range(len(CLASS_NAMES))])
    assert np.all(np.ptp(means, 0) < 0.75 * colours.std(0)), (means, colours.std(0))


def test_ultralytics_loads_it(full, monkeypatch):
    from ultralytics.cfg import get_cfg
    from ultralytics.data import build_yolo_dataset
    from ultralytics.data import utils as data_utils

    monkeypatch.setattr(data_utils, "check_font", lambda *a, **k: None)  # offline: no font download
    data = data_utils.check_det_dataset(str(full))
    assert data["nc"] == len(CLASS_NAMES) and data["names"][0] == CLASS_NAMES[0]
    cfg = get_cfg(overrides={"imgsz": IMGSZ, "task": "detect", "workers": 0})
    stats = dataset_stats(full)["splits"]
    for split, mode in (("train", "train"), ("val", "val")):
        dataset = build_yolo_dataset(cfg, data[split], batch=4, data=data, mode=mode)
        assert len(dataset) == stats[split]["images"]
        assert sum(len(lb["cls"]) for lb in dataset.labels) == stats[split]["instances"]
        sample = dataset[0]
        assert sample["img"].shape[0] == 3 and sample["bboxes"].shape[-1] == 4
        assert len(sample["cls"]) == len(sample["bboxes"])
