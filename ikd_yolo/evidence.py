"""`ikd-yolo bench-distill`: matched students per (method, seed), scored by two independent evaluators.

Every run trains the same student on the same data with the same teacher, epochs and image size; only the
distillation method and the seed change (see `experiments.train_student`). Each finished run's best.pt is validated
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

import contextlib
import io
import json
import math
import os
import platform
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.models.yolo.detect import DetectionValidator
from ultralytics.utils import LOGGER, colorstr

from .config import DISTILL_KEYS, DistillConfigError, preset_names
from .experiments import cache_dir, cached_teacher, config_hash, train_student

PREFIX = colorstr("bench-distill:")
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
    # the user's own data (data= required) with Ultralytics' default recipe and IKD's default attack; the teacher is
    # a COCO-pretrained yolo11m fine-tuned once on that data unless teacher= is given
    "full": dict(
        teacher_model="yolo11m.pt", teacher_epochs=100, student="yolo11n.yaml", epochs=100, imgsz=640, batch=16,
        seeds=3, device=None, workers=8, methods=ALL_METHODS, train_args={}, ikd_args={},
    ),
}
SCORES = ("map50_95", "map50", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "seconds_per_epoch")
TABLE_SCORES = ("map50_95", "map50", "AP", "AP50", "AP_S", "AP_M", "AP_L")
COCO_STATS = {"AP": 0, "AP50": 1, "AP75": 2, "AP_S": 3, "AP_M": 4, "AP_L": 5, "AR100": 8}
UNHASHED = {"device", "workers", "verbose", "plots"}  # train arguments that do not change what a run measures


# ----------------------------------------------------------------------------------------- COCO ground truth + eval
def coco_ground_truth(data_yaml: str | Path, split: str = "val") -> dict[str, Any]:
    """COCO-format ground truth of a YOLO detection split, built from its label files.

    Boxes are in pixels of the original image (size read from the file), category_id = class + 1 (what Ultralytics'
    `pred_to_json` writes for non-COCO data), area = box w * h, iscrowd 0. Images without labels are kept (their
    detections are false positives). Image ids are 1..N in sorted file order; `file_name` is the image's name, which
    is how predictions are matched to images (see `match_predictions`).
    """
    from PIL import Image
    from ultralytics.data.utils import IMG_FORMATS, check_det_dataset, exif_size, img2label_paths

    data = check_det_dataset(str(data_yaml))  # split paths resolved exactly as Ultralytics' val resolves them
    names = [data["names"][i] for i in sorted(data["names"])]
    images = []
    for entry in data[split] if isinstance(data[split], list) else [data[split]]:
        path = Path(entry)
        if path.is_dir():
            images += [p for p in path.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS]
        else:  # a .txt list of image paths, relative to the list's folder when relative
            images += [(path.parent / line.strip()).resolve() for line in path.read_text().splitlines() if line.strip()]
    images = sorted(set(images))
    gt = {"images": [], "annotations": [], "categories": [{"id": i + 1, "name": n} for i, n in enumerate(names)]}
    for image_id, (img, label) in enumerate(zip(images, img2label_paths([str(p) for p in images])), 1):
        with Image.open(img) as im:
            w, h = exif_size(im)
        gt["images"].append({"id": image_id, "file_name": img.name, "width": w, "height": h})
        rows = np.loadtxt(label, ndmin=2) if Path(label).is_file() and Path(label).stat().st_size else np.zeros((0, 5))
        for cls, cx, cy, bw, bh in rows[:, :5]:
            x0, y0 = max(cx - bw / 2, 0.0) * w, max(cy - bh / 2, 0.0) * h
            x1, y1 = min(cx + bw / 2, 1.0) * w, min(cy + bh / 2, 1.0) * h
            box = [x0, y0, x1 - x0, y1 - y0]
            gt["annotations"].append({
                "id": len(gt["annotations"]) + 1, "image_id": image_id, "category_id": int(cls) + 1,
                "bbox": [round(float(v), 3) for v in box], "area": float(box[2] * box[3]), "iscrowd": 0,
            })
    if len({im["file_name"] for im in gt["images"]}) != len(images):
        raise ValueError(f"{data_yaml} '{split}' has images with the same file name: predictions could not be matched")
    return gt


def match_predictions(gt: dict[str, Any], predictions: list[dict]) -> list[dict]:
    """Predictions from Ultralytics' predictions.json with image_id replaced by the ground truth's id (by file name)."""
    ids = {im["file_name"]: im["id"] for im in gt["images"]}
    return [{**p, "image_id": ids[p["file_name"]]} for p in predictions]


def coco_eval(gt: dict[str, Any], predictions: list[dict], area_scale: float = 1.0) -> dict[str, float | None]:
    """pycocotools COCOeval (bbox) of `predictions` against `gt`: AP, AP50, AP75, AP_S, AP_M, AP_L, AR100.

    `area_scale` multiplies COCO's small/medium/large area limits (32², 96² px); 1.0 is standard COCO. A size range
    without ground truth gives None. No predictions at all gives 0 everywhere (None for empty ranges).
    """
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    with contextlib.redirect_stdout(io.StringIO()):  # pycocotools prints its progress
        api = COCO()
        api.dataset = json.loads(json.dumps(gt))
        api.createIndex()
        if not predictions:
            scores = dict.fromkeys(COCO_STATS, 0.0)
            for key, (lo, hi) in zip(("AP_S", "AP_M", "AP_L"), _area_ranges(area_scale)[1:]):
                if not any(lo <= a["area"] < hi for a in gt["annotations"]):
                    scores[key] = None
            return scores
        evaluator = COCOeval(api, api.loadRes(json.loads(json.dumps(predictions))), "bbox")
        evaluator.params.areaRng = _area_ranges(area_scale)
        evaluator.evaluate()
        evaluator.accumulate()
        evaluator.summarize()
    return {k: (float(evaluator.stats[i]) if evaluator.stats[i] >= 0 else None) for k, i in COCO_STATS.items()}


def _area_ranges(scale: float) -> list[list[float]]:
    """COCOeval's areaRng (all, small, medium, large) with the 32² and 96² limits times `scale`."""
    small, large = 32**2 * scale, 96**2 * scale
    return [[0.0, 1e10], [0.0, small], [small, large], [large, 1e10]]


class JsonOnlyValidator(DetectionValidator):
    """Ultralytics' detection validator that writes predictions.json but does not score it: pycocotools does that
    here (Ultralytics would run faster-coco-eval on custom data, and try to pip-install it when missing)."""

    def eval_json(self, stats: dict[str, Any]) -> dict[str, Any]:
        """Return the Ultralytics stats unchanged."""
        return stats


def validate_twice(
    weights: str | Path, data: str | Path, gt: dict, area_scale: float, save_dir: Path, **val_args: Any
) -> dict[str, float | None]:
    """Ultralytics val of `weights` with save_json=True, then COCOeval of the same predictions; both score sets."""
    from ultralytics import YOLO

    args = {"workers": 0, "batch": 16, **val_args}
    metrics = YOLO(str(weights)).val(
        validator=JsonOnlyValidator, data=str(data), save_json=True, plots=False, verbose=False,
        project=str(save_dir.parent), name=save_dir.name, exist_ok=True, **args,
    )
    pred_file = Path(metrics.save_dir) / "predictions.json"
    predictions = json.loads(pred_file.read_text()) if pred_file.exists() else []  # no file when nothing was found
    coco = coco_eval(gt, match_predictions(gt, predictions), area_scale)
    return {"map50_95": float(metrics.box.map), "map50": float(metrics.box.map50), **coco}


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
        profile=profile, name=name, settings=_jsonable(s), data=str(data), teacher=str(teacher),
        teacher_scores=teacher_scores, area_scale=area_scale, coco_area_ranges=_area_ranges(area_scale)[1:],
        method_args={m: method_args(m, s) for m in s["methods"]}, environment=environment(),
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
    from .data import make_synthetic_dataset

    n_train, n_val, size = s["n_train"], s["n_val"], s["data_imgsz"]
    folder = cache_dir() / "bench-data" / f"synthetic-{n_train}-{n_val}-{size}px"
    return make_synthetic_dataset(folder, n_train=n_train, n_val=n_val, imgsz=size, seed=0), (size / 256) ** 2


def method_args(method: str, s: dict[str, Any]) -> dict[str, Any]:
    """Exactly what `train_student` receives for `method` (distillation keys go to ikd-yolo presets only)."""
    args = dict(epochs=s["epochs"], imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"],
                plots=False, verbose=False, **s["train_args"])
    return {**args, **s["ikd_args"]} if method in preset_names() else args


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
                    train_args=_jsonable(args), curve=curve, weights=r["weights"], save_dir=r["save_dir"])

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


# ------------------------------------------------------------------------------------------------ summary + report
def summarize(runs: list[dict], methods: list[str]) -> dict[str, Any]:
    """Mean, sample std (n-1; None for one seed) and values per method and score; deltas of means vs none / UL KD."""
    stats = {}
    for m in methods:
        rows = [r["scores"] for r in runs if r["method"] == m]
        stats[m] = {}
        for k in SCORES:
            vals = [r[k] for r in rows if r.get(k) is not None]
            mean = float(np.mean(vals)) if vals else None
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
            stats[m][k] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
    deltas = {m: {ref: {k: _delta(stats, m, ref, k) for k in SCORES} for ref in ("none", "ultralytics") if ref in stats}
              for m in methods}
    return {"runs": runs, "methods": methods, "stats": stats, "deltas": deltas, "ranking": ranking_agreement(stats)}


def _delta(stats: dict, method: str, ref: str, key: str) -> float | None:
    """Mean of `method` minus mean of `ref` for score `key` (None if either is missing)."""
    a, b = stats[method][key]["mean"], stats[ref][key]["mean"]
    return None if a is None or b is None else a - b


def ranking_agreement(stats: dict) -> dict[str, Any]:
    """Do Ultralytics' mAP50-95 / mAP50 and COCOeval's AP / AP50 order the methods the same way? Kendall tau too."""
    result = {}
    for ul, coco in (("map50_95", "AP"), ("map50", "AP50")):
        ms = [m for m in stats if stats[m][ul]["mean"] is not None and stats[m][coco]["mean"] is not None]
        a = {m: stats[m][ul]["mean"] for m in ms}
        b = {m: stats[m][coco]["mean"] for m in ms}
        pairs = [(x, y) for i, x in enumerate(ms) for y in ms[i + 1:]]
        concordant = sum(np.sign(a[x] - a[y]) == np.sign(b[x] - b[y]) for x, y in pairs)
        swapped = [
            {"methods": [x, y], ul: a[x] - a[y], coco: b[x] - b[y],
             "within_std": bool(abs(a[x] - a[y]) <= max(stats[x][ul]["std"] or 0, stats[y][ul]["std"] or 0))}
            for x, y in pairs if np.sign(a[x] - a[y]) != np.sign(b[x] - b[y])
        ]
        result[f"{ul}_vs_{coco}"] = {
            "ultralytics_order": _order(a), "coco_order": _order(b), "agree": not swapped,
            "kendall_tau": (2 * concordant / len(pairs) - 1) if pairs else 1.0, "swapped_pairs": swapped,
        }
    return result


def _order(means: dict[str, float]) -> str:
    """Methods from best to worst, '>' between them, '=' between equal means: 'fgd > none = ultralytics'."""
    ms = sorted(means, key=lambda m: -means[m])
    return "".join(f"{' = ' if means[p] == means[m] else ' > '}{m}" if i else m
                   for i, (p, m) in enumerate(zip([None, *ms], ms)))


def format_table(summary: dict[str, Any]) -> str:
    """The Markdown report: one row per method (mean ± std over seeds, AP x100), deltas, teacher and ranking check."""
    stats, deltas = summary["stats"], summary["deltas"]
    refs = [r for r in ("none", "ultralytics") if r in stats]
    head = ["method", "seeds", "mAP50-95", "mAP50", "AP", "AP50", "AP_S", "AP_M", "AP_L"]
    head += [f"Δ{k} vs {'no-KD' if r == 'none' else 'UL KD'}" for r in refs for k in ("mAP50-95", "AP")] + ["s/epoch"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for m in summary["methods"]:
        st = stats[m]
        cells = [m, str(st["AP"]["n"])] + [_pm(st[k], 100) for k in TABLE_SCORES]
        cells += [_signed(deltas[m][r][k]) for r in refs for k in ("map50_95", "AP")]
        lines.append("| " + " | ".join(cells + [_pm(st["seconds_per_epoch"], 1, 1)]) + " |")
    t = summary.get("teacher_scores")
    notes = ["", "mAP50-95 / mAP50: Ultralytics val; AP, AP50, AP_S/M/L: pycocotools COCOeval on the same "
             "predictions.json. All AP figures x100, mean ± sample std over seeds; Δ = difference of means."]
    if t:
        notes.append(f"Teacher {summary['teacher']}: mAP50-95 {100 * t['map50_95']:.2f}, "
                     f"AP {100 * t['AP']:.2f}, AP50 {100 * t['AP50']:.2f}.")
    if summary.get("area_scale", 1.0) != 1.0:
        notes.append(f"AP_S/M/L area limits: COCO's 32² / 96² px x {summary['area_scale']:.4g} (synthetic set's "
                     "buckets, defined relative to 256 px images).")
    for key, r in summary["ranking"].items():
        ul, coco = key.split("_vs_")
        if r["agree"]:
            notes.append(f"Ranking {ul} vs {coco}: same order ({r['coco_order']}).")
        else:
            pairs = "; ".join(f"{x} vs {y}" + (" (within one std: a tie)" if p["within_std"] else "")
                              for p in r["swapped_pairs"] for x, y in [p["methods"]])
            notes.append(f"Ranking {ul} vs {coco}: DIFFERS, Kendall tau {r['kendall_tau']:.2f}; swapped: {pairs}. "
                         "The evaluators differ in max detections (COCO 100, Ultralytics 300) and in how precision "
                         "is interpolated and averaged over classes, so near-equal methods can swap.")
    if "wall_seconds" in summary:
        notes.append(f"Wall time of this invocation: {summary['wall_seconds'] / 60:.1f} min (reused runs cost none).")
    return "\n".join(lines + notes) + "\n"


def _pm(st: dict, scale: float, digits: int = 2) -> str:
    """'mean ± std' (scaled), 'mean' for one value, '—' for none."""
    if st["mean"] is None:
        return "—"
    text = f"{scale * st['mean']:.{digits}f}"
    return text if st["std"] is None else f"{text} ± {scale * st['std']:.{digits}f}"


def _signed(value: float | None) -> str:
    """A delta x100 with its sign, '—' if missing."""
    return "—" if value is None else f"{100 * value:+.2f}"


def write_outputs(summary: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write bench_distill.md, summary.json, bars.png and curves.png under `out_dir`; return their paths."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f for k, f in (("md", "bench_distill.md"), ("json", "summary.json"),
                                          ("bars", "bars.png"), ("curves", "curves.png"))}
    table = format_table(summary)
    paths["md"].write_text(f"# bench-distill: {summary.get('name', '')}\n\n{table}")
    paths["json"].write_text(json.dumps(_jsonable(summary), indent=2))
    plot_bars(summary, paths["bars"])
    plot_curves(summary, paths["curves"])
    LOGGER.info(f"\n{table}\n{PREFIX} results saved to {colorstr('bold', out_dir)}")
    return paths


def plot_bars(summary: dict[str, Any], file: Path) -> None:
    """Bar chart with std error bars: mAP50-95 (Ultralytics) next to AP (COCOeval), and AP_S/M/L, per method."""
    plt = _pyplot()
    methods, stats = summary["methods"], summary["stats"]
    x = np.arange(len(methods))
    fig, axes = plt.subplots(1, 2, figsize=(max(8, 1.6 * len(methods)), 4), constrained_layout=True)
    for ax, keys, title in ((axes[0], ("map50_95", "AP"), "mAP50-95 (Ultralytics) vs AP (COCOeval)"),
                            (axes[1], ("AP_S", "AP_M", "AP_L"), "COCOeval AP by object size")):
        width = 0.8 / len(keys)
        for i, k in enumerate(keys):
            mean = [100 * (stats[m][k]["mean"] or 0) for m in methods]
            std = [100 * (stats[m][k]["std"] or 0) for m in methods]
            label = {"map50_95": "mAP50-95 (Ultralytics)", "AP": "AP (COCOeval)"}.get(k, k)
            ax.bar(x + (i - (len(keys) - 1) / 2) * width, mean, width, yerr=std, capsize=3, label=label)
        if "map50_95" in keys and summary.get("teacher_scores"):
            ax.axhline(100 * summary["teacher_scores"]["map50_95"], color="gray", ls="--", lw=1, label="teacher")
        ax.set(xticks=x, title=title, ylabel="AP x100")
        ax.set_xticklabels(methods, rotation=30, ha="right")
        ax.legend(fontsize=8)
    fig.savefig(file, dpi=120)
    plt.close(fig)


def plot_curves(summary: dict[str, Any], file: Path) -> None:
    """Validation mAP50-95 per epoch (Ultralytics, during training), mean over seeds with a ± std band."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    for m in summary["methods"]:
        curves = [[p["map50_95"] for p in r["curve"]] for r in summary["runs"] if r["method"] == m and r["curve"]]
        if not curves:
            continue
        n = min(map(len, curves))
        y = 100 * np.array([c[:n] for c in curves])
        epochs, mean, std = np.arange(1, n + 1), y.mean(0), y.std(0, ddof=1) if len(y) > 1 else np.zeros(n)
        ax.plot(epochs, mean, marker="o", ms=3, label=f"{m} (n={len(y)})")
        ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
    ax.set(xlabel="epoch", ylabel="val mAP50-95 x100", title="Learning curves (mean ± std over seeds)")
    ax.legend(fontsize=8)
    fig.savefig(file, dpi=120)
    plt.close(fig)


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display, no font downloads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def environment() -> dict[str, Any]:
    """Versions and hardware the numbers were measured on."""
    import torch
    import ultralytics

    from . import __version__

    return {"ikd_yolo": __version__, "ultralytics": ultralytics.__version__, "torch": torch.__version__,
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None,
            "load_avg": os.getloadavg() if hasattr(os, "getloadavg") else None}


def _has_cuda() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def _jsonable(obj: Any) -> Any:
    """obj with Paths, tuples, numpy scalars and NaN made JSON-safe (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
