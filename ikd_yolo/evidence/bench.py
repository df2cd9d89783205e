"""`ikd-yolo bench-distill`: matched students per (method, seed), scored by two independent evaluators.

Every run trains the same student on the same data with the same teacher, epochs and image size; only the
distillation method and the seed change (see `runs.train_student`). Each finished run's best.pt is validated
once more by Ultralytics with `save_json=True`; its mAP50-95 / mAP50 are one evaluator, and pycocotools' COCOeval on
the very same predictions.json (against a COCO ground truth built here from the YOLO label files) is the other:
AP, AP50, AP75, AP_S, AP_M, AP_L. Results, one JSON per finished run, make the command resumable.

Outputs under `<out>/<name>/`: bench_distill.md (mean ± std over seeds, deltas vs no-KD and vs Ultralytics KD),
summary.json (every number), bars.png and curves.png; Ultralytics runs under `<project>/<name>/<method>-s<seed>/`.

Examples:
    >>> from ikd_yolo.evidence import run_benchmark
    >>> summary = run_benchmark(profile="quick")  # 3 seeds x none, ultralytics, fgd, ikd-fgd on 2 CPU cores
    >>> summary = run_benchmark(profile="full", data="data.yaml", teacher="teacher.pt", methods="none,fgd,ikd-fgd")
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import LOGGER

from ..config import DISTILL_KEYS, DistillConfigError, load_preset, preset_names

from .coco import area_ranges, coco_ground_truth, validate_twice
from .machine import environment
from .report import PREFIX, jsonable, summarize, write_outputs
from ..cache import cache_dir
from .runs import cached_teacher, config_hash, train_student

ALL_METHODS = ("none", "ultralytics", "fgd", "mgd", "ikd-fgd", "ikd-mgd", "ikd-fgd-freq", "ikd-fgd-adv")
ALIASES = {"no-kd": "none", "freq-only": "ikd-fgd-freq", "adv-only": "ikd-fgd-adv"}
# Profile keys: the synthetic set (n_train, n_val, data_imgsz; ignored when data= is given), the teacher trained when
# teacher= is not given (teacher_model, teacher_epochs), the students, and `train_args`: the Ultralytics recipe shared
# by the teacher and every student. `ikd_args` go to the ikd-yolo methods only.
# quick: sized from runs measured on the 2 shared CPU cores (load average 3.5-6 from other users; Ultralytics trains
# with 1 torch thread there), 240 train / 60 val images, imgsz 128, batch 16, train + per-epoch val, s/epoch:
#   teacher yolo11s 8.8 | none 4.2-6.1 | ultralytics 11 | fgd 9.5 | ikd-fgd (adv_steps 2, adv_every 2) 19 in its
#   IKD phase (first 8 of 12 epochs), 11 after; adv_steps 5, adv_every 1 costs 40-64 in the phase.
#   => teacher 40 epochs ~6 min, one seed of the 4 methods ~9 min, 3 seeds ~27 min: ~34 min in all, 45 at 1.3x load.
# AdamW lr0=0.005 without warmup: in 12 epochs from scratch it reached mAP50-95 0.0036 vs 0.0006 with Ultralytics'
# default (auto optimizer, warmup of at least 100 iterations = 7 of the 12 epochs here). Absolute scores stay tiny.
# gpu: ESTIMATED, not measured (no GPU was lent to size it): for one H100, ~2 s/epoch for yolo11n at 320 px on 1000
# images (data loading bound, 8 workers), IKD ~2x, ~20 s setup + val per run: 24 runs + teacher ~20-25 min. Check
# `wall_seconds` in summary.json after the first run and adjust epochs.
PROFILES: dict[str, dict[str, Any]] = {
    "quick": dict(
        n_train=240, n_val=60, data_imgsz=256, teacher_model="yolo11s.yaml", teacher_epochs=40,
        student="yolo11n.yaml", epochs=12, imgsz=128, batch=16, seeds=3, device="cpu", workers=0,
        methods=("none", "ultralytics", "fgd", "ikd-fgd"),
        train_args=dict(optimizer="AdamW", lr0=0.005, warmup_epochs=0),
        # a cheaper attack, and loss weights measured at this profile's 128 px with benchmarks/calibrate_weights.py
        # (the defaults are measured at 640 px; terms summed over positions are smaller at 128 px)
        ikd_args=dict(adv_steps=2, adv_every=2, mse_weight=0.004, cwd_weight=0.3, mgd_alpha=4e-7, fgd_alpha=8e-7,
                      fgd_beta=3e-6, fgd_gamma=5e-4, fgd_lambda=4e-7, adv_weight=4e-7),
    ),
    "gpu": dict(
        n_train=1000, n_val=200, data_imgsz=320, teacher_model="yolo11s.yaml", teacher_epochs=40,
        student="yolo11n.yaml", epochs=15, imgsz=320, batch=32, seeds=3, device="0", workers=8,
        methods=ALL_METHODS, train_args=dict(optimizer="AdamW", lr0=0.005, warmup_epochs=1),
        ikd_args=dict(adv_steps=3),
    ),
    # the user's own data (data= required) with Ultralytics' default recipe and IKD's default attack; pass your trained
    # teacher= (otherwise a yolo11m is trained from scratch on that data: nothing is downloaded)
    "full": dict(
        teacher_model="yolo11m.yaml", teacher_epochs=100, student="yolo11n.yaml", epochs=100, imgsz=640, batch=16,
        seeds=3, device=None, workers=8, methods=ALL_METHODS, train_args={}, ikd_args={},
    ),
}
UNHASHED = {"device", "workers", "verbose", "plots"}  # train arguments that do not change what a run measures


# ------------------------------------------------------------------------------------------------------- the runs
def run_benchmark(
    profile: str = "quick",
    name: str | None = None,
    out: str | Path = "benchmarks/results",
    project: str | Path = "runs/bench-distill",
    **overrides: Any,
) -> dict[str, Any]:
    """Train (or reuse) every (method, seed) run of a profile, then write the table, JSON and plots; return the summary.

    Args:
        profile (str): "quick" (2 CPU cores), "gpu" (one GPU, 25 min) or "full" (your data and epochs).
        name (str | None): Sub-folder of `out` and `project` for this benchmark (default: the profile).
        out (str | Path): Folder of the summaries; finished runs are kept as JSON in `<out>/<name>/runs/` and are
            reused while their settings hash (method, seed, train arguments, data and teacher PATHS, ultralytics
            version) matches: after changing a dataset or teacher in place, use a new `name` or delete that folder.
        project (str | Path): Folder of the Ultralytics runs.
        **overrides: Any profile key (data, teacher, student, methods, seeds, epochs, imgsz, batch, device, n_train,
            n_val, data_imgsz, teacher_model, teacher_epochs, workers), any distillation key (given to the ikd-yolo
            methods only) or any Ultralytics train argument (given to every student).
    """
    start = time.time()
    s = resolve_settings(profile, **overrides)
    name = str(name or profile)
    out_dir, run_root = Path(out) / name, Path(project) / name
    data, area_scale = prepare_data(s)
    teacher = Path(s["teacher"]) if s.get("teacher") else cached_teacher(
        data, s["teacher_model"], s["teacher_epochs"], s["imgsz"], s["batch"], s["device"], 0,
        workers=s["workers"], **s["train_args"],
    )
    gt = coco_ground_truth(data)
    val_args = dict(imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"])
    teacher_scores = _cached_json(
        out_dir / "runs" / "teacher.json", config_hash(dict(teacher=str(teacher), data=str(data), **val_args)),
        lambda: validate_twice(teacher, data, gt, area_scale, run_root / "teacher-val", **val_args),
    )
    runs = []
    for method in s["methods"]:
        for seed in s["seeds"]:
            runs.append(run_one(method, seed, s, data, teacher, gt, area_scale, out_dir / "runs", run_root))
    summary = summarize(runs, s["methods"])
    summary.update(
        profile=profile, name=name, settings=jsonable(s), data=str(data), teacher=str(teacher),
        teacher_scores=teacher_scores, area_scale=area_scale, cocoarea_ranges=area_ranges(area_scale)[1:],
        method_args={m: method_args(m, s) for m in s["methods"]}, environment=environment(s["device"]),
        wall_seconds=time.time() - start,
    )
    write_outputs(summary, out_dir)
    return summary


def resolve_settings(profile: str, **overrides: Any) -> dict[str, Any]:
    """Profile defaults with `overrides` on top; methods and seeds normalised to lists; unknown keys refused."""
    if profile not in PROFILES:
        raise DistillConfigError(f"profile='{profile}' is not known: use one of {', '.join(PROFILES)}")
    from ultralytics.utils import DEFAULT_CFG_KEYS

    s = {"data": None, "teacher": None, **PROFILES[profile]}
    extra, ikd = dict(s.pop("train_args")), dict(s.pop("ikd_args"))
    for k, v in overrides.items():
        if k in s:
            s[k] = v
        elif k in DISTILL_KEYS - {"teacher", "distill"}:
            ikd[k] = v
        elif k in DEFAULT_CFG_KEYS:
            extra[k] = v
        else:
            raise DistillConfigError(f"'{k}' is not a bench-distill, ikd-yolo or Ultralytics argument")
    if profile == "full" and not s["data"]:
        raise DistillConfigError("profile=full needs your dataset: data=path/to/data.yaml")
    s["methods"], s["seeds"] = parse_methods(s["methods"]), parse_seeds(s["seeds"])
    if s["device"] is None:
        s["device"] = "0" if _has_cuda() else "cpu"
    s["ikd_args"], s["train_args"] = ikd, extra
    return s


def parse_methods(methods: Any) -> list[str]:
    """Method names from a list or a comma-separated string, aliases resolved (freq-only, adv-only, no-kd)."""
    words = methods.split(",") if isinstance(methods, str) else list(methods)
    names = [ALIASES.get(str(m).strip(), str(m).strip()) for m in words if str(m).strip()]
    valid = {"none", "ultralytics", *preset_names()}
    for m in names:
        if m not in valid:
            choices = ", ".join(["none", "ultralytics", *preset_names(), *ALIASES])
            raise DistillConfigError(f"method '{m}' is not known: use one of {choices}")
    return list(dict.fromkeys(names))


def parse_seeds(seeds: Any) -> list[int]:
    """seeds=3 means seeds 0, 1, 2; a list or "0,4,7" gives those seeds."""
    if isinstance(seeds, bool):
        raise DistillConfigError(f"seeds={seeds} is not valid: give a count (seeds=3) or a list (seeds=[0,4,7])")
    if isinstance(seeds, (int, np.integer)):
        return list(range(int(seeds)))
    words = seeds.split(",") if isinstance(seeds, str) else list(seeds)
    return [int(w) for w in words]


def prepare_data(s: dict[str, Any]) -> tuple[Path, float]:
    """The data.yaml to use (the profile's synthetic set, generated once, unless data= is given) and its area scale.

    The synthetic set's size buckets are relative to a 256 px image, so COCO's area limits are scaled by
    (data_imgsz / 256)² to keep AP_S/M/L on the generator's buckets; user data keeps COCO's absolute limits.
    """
    if s["data"]:
        return Path(s["data"]).resolve(), 1.0
    from ..data import make_synthetic_dataset

    n_train, n_val, size = s["n_train"], s["n_val"], s["data_imgsz"]
    folder = cache_dir() / "bench-data" / f"synthetic-{n_train}-{n_val}-{size}px"
    return make_synthetic_dataset(folder, n_train=n_train, n_val=n_val, imgsz=size, seed=0), (size / 256) ** 2


def method_args(method: str, s: dict[str, Any]) -> dict[str, Any]:
    """Exactly what `train_student` receives for `method`.

    Distillation keys go to ikd-yolo presets only, and never over a key the preset sets itself: a profile's weights
    tune the methods, but must not switch on a part a preset switches off (adv_weight > 0 would turn `fgd` into
    FGD + adversarial, and `ikd-fgd-freq` into the full IKD).
    """
    args = dict(epochs=s["epochs"], imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"],
                plots=False, verbose=False, **s["train_args"])
    if method not in preset_names():
        return args
    own = load_preset(method)
    return {**args, **{k: v for k, v in s["ikd_args"].items() if k not in own}}


def run_one(method: str, seed: int, s: dict, data: Path, teacher: Path, gt: dict, area_scale: float,
            result_dir: Path, run_root: Path) -> dict[str, Any]:
    """One (method, seed) run: reuse its JSON when it finished with the same settings, else train and score it."""
    args = {**method_args(method, s), "seed": seed}
    key = {k: v for k, v in args.items() if k not in UNHASHED}
    key.update(method=method, data=str(data), teacher=str(teacher), student=s["student"], area_scale=area_scale)
    label = f"{method}-s{seed}"

    def train_and_score() -> dict[str, Any]:
        LOGGER.info(f"{PREFIX} training {label} ({s['epochs']} epochs)")
        r = train_student(method, data, teacher, s["student"], run_root, label, **args)
        curve = r["curve"]
        scores = validate_twice(r["weights"], data, gt, area_scale, Path(r["save_dir"]) / "coco-val",
                                imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"])
        train_s = curve[-1]["time"] / len(curve) if curve else r["seconds_per_epoch"]
        return dict(method=method, seed=seed, scores={**scores, "seconds_per_epoch": train_s},
                    wall_seconds_per_epoch=r["seconds_per_epoch"], train_final_map50_95=r["map50_95"],
                    train_args=jsonable(args), curve=curve, weights=r["weights"], save_dir=r["save_dir"])

    return _cached_json(result_dir / f"{label}.json", config_hash(key), train_and_score)


def _cached_json(file: Path, key: str, make) -> dict[str, Any]:
    """Load `file` if it holds a result for `key`; otherwise call `make()`, stamp it and write it atomically."""
    try:
        done = json.loads(file.read_text())
        if done.get("settings_hash") == key:
            LOGGER.info(f"{PREFIX} {file.stem} already finished, reusing {file}")
            return done
        LOGGER.info(f"{PREFIX} {file.stem}: settings changed since {file} was written, running it again")
    except (OSError, ValueError):
        pass
    result = {**make(), "settings_hash": key, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, file)
    return result


def _has_cuda() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()

