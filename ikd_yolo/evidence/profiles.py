"""The benchmark's profiles: the regime every run of a profile shares (data, teacher, student, recipe, attack).

`bench-distill profile=NAME` starts from one of these; any key can be overridden (`epochs=3`, `data=my.yaml`, ...).

Examples:
    >>> sorted(PROFILES)
    ['full', 'gpu', 'quick', 'quick160']
    >>> PROFILES["quick"]["imgsz"], PROFILES["quick"]["epochs"]
    (96, 15)
"""

from __future__ import annotations

from typing import Any

from .methods import ALL_METHODS

# Profile keys: the synthetic set (n_train, n_val, data_imgsz, clutter, min_side; ignored when data= is given), the
# teacher trained when teacher= is not given (teacher_model, teacher_epochs, teacher_args; teacher_init: a .pt it
# starts from), the students, `train_args` (the Ultralytics recipe of the teacher and every student) and `jobs` (runs
# at once; None: one per CPU core on CPU). A profile sets the regime, never a method's settings: a row named after a
# preset runs exactly what `distill=NAME` runs (a variant says its settings in brackets, `ikd-score[adv_steps=5]`).

# quick, 2 CPU cores: data drawn at the 96 px the models train at, no background clutter, no box side under 8 px; a
# yolo11s teacher trained 18 epochs (once, cached, on every core), yolo11n students 15 epochs, two at a time.
# nbs=8: an optimizer step per batch of 8 (Ultralytics' nbs=64 would step every 8th batch, 8x fewer updates:
# in 12 epochs a yolo11n reached mAP50-95 0.16 with nbs=8 vs 0.06 with nbs=64). Final validation only.
# what each profile key means (`bench-distill --help`); every profile holds these keys
PROFILE_KEYS: dict[str, str] = {
    "data": "your dataset YAML (default: the profile's synthetic set, drawn once and cached)",
    "teacher": "your trained teacher .pt (default: one trained on the data, once per settings, and cached)",
    "teacher_init": "a .pt whose weights the profile's teacher starts from (refused beside teacher=)",
    "teacher_model": "model YAML of the teacher trained when teacher= is not given",
    "teacher_epochs": "epochs of that teacher",
    "teacher_args": "more Ultralytics train arguments of that teacher, as a mapping",
    "student": "model YAML (or .pt) every student starts from",
    "task": "detect, segment, pose or obb (default: the student's)",
    "methods": "what trains, comma-separated (below)",
    "seeds": "a count (3: seeds 0, 1, 2) or distinct seeds (0,4,7); every method trains once per seed",
    "epochs": "epochs of every student",
    "imgsz": "image size of every run",
    "batch": "batch size of every run",
    "device": "cpu, or a GPU (0, 0,1, ...); None: a GPU when torch sees one",
    "workers": "dataloader workers of every run",
    "jobs": "runs trained at once; None: one per CPU core on CPU",
    "n_train": "synthetic set: training images",
    "n_val": "synthetic set: validation images",
    "data_imgsz": "synthetic set: image side in pixels (>= 64)",
    "clutter": "synthetic set: share of background distractors, in [0, 1]",
    "min_side": "synthetic set: smallest box side in pixels",
    "n_unlabeled": "synthetic set: images drawn like the training ones but kept without labels (what unlabeled= "
                   "distils on)",
    "unlabeled": "your images nobody labelled (a folder, .txt list or glob): given to the methods whose brackets ask "
                 "for them, e.g. ikd-score[stream_source=both] (default: the synthetic set's, with n_unlabeled)",
}

QUICK: dict[str, Any] = dict(
    n_train=800, n_val=300, data_imgsz=96, clutter=0.0, min_side=8, n_unlabeled=0, unlabeled=None,
    teacher_model="yolo11s.yaml",
    teacher_epochs=18, teacher_args={}, teacher_init=None,
    student="yolo11n.yaml", task=None, epochs=15, imgsz=96, batch=8, seeds=3,
    device="cpu", workers=0, jobs=None,
    # the default (score) costs 1.01x the built-in's step, so the built-in's own 15 epochs are its wall time; the
    # built-in is also given 16 (7% more); score-stream's wall time is 20 epochs of the built-in (docs/evidence.md)
    methods=("none", "ultralytics", "ultralytics[epochs=16]", "score", "score-stream", "ikd-score"),
    train_args=dict(optimizer="AdamW", lr0=0.002, warmup_epochs=1, nbs=8, val=False),
)

PROFILES: dict[str, dict[str, Any]] = {
    "quick": QUICK,
    # the quick profile at 160 px, where the frequency bands hold enough bins to mean something (at 96 px the high
    # band is a handful): half the images and 12 epochs. Measured two at a time: a plain student 3.7 min, ikd-score
    # 6.2 (a quick run: 5.6 and 10.9). The evidence's teacher starts from the quick one (docs/evidence.md).
    "quick160": {**QUICK, "n_train": 400, "data_imgsz": 160, "epochs": 12, "imgsz": 160, "seeds": 2,
                 # the default (score) at 1.02x the built-in's step: its 12 epochs are the built-in's 12, given 13 too
                 "methods": ("none", "ultralytics", "ultralytics[epochs=13]", "score", "score-stream", "ikd-score")},
    # one H100/H200 in <= 8 minutes: ESTIMATED until run there (no GPU has been lent to size it). 6 runs at once on
    # the device, 600 train images at 160 px, students 20 epochs, the teacher 40.
    "gpu": dict(
        n_train=600, n_val=300, data_imgsz=160, clutter=0.0, min_side=8, n_unlabeled=0, unlabeled=None,
        teacher_model="yolo11s.yaml",
        teacher_epochs=40, teacher_args={}, teacher_init=None,
        student="yolo11n.yaml", task=None, epochs=20, imgsz=160, batch=32, seeds=3,
        device="0", workers=4, jobs=6, methods=("none", "ultralytics", "score", "ikd-score"),
        train_args=dict(optimizer="AdamW", lr0=0.002, warmup_epochs=1, nbs=32, val=False),
    ),
    # the user's own data (data= required) with Ultralytics' default recipe; pass your trained
    # teacher= (otherwise a yolo11m is trained from scratch on that data: nothing is downloaded)
    "full": dict(
        unlabeled=None, teacher_model="yolo11m.yaml", teacher_epochs=100, teacher_args={}, teacher_init=None,
        student="yolo11n.yaml",
        task=None, epochs=100, imgsz=640, batch=16, seeds=3, device=None, workers=8, jobs=1, methods=ALL_METHODS,
        train_args={},
    ),
}
