"""bench-distill summaries: mean ± std over seeds, paired differences with 95% intervals and their verdicts, evaluator
agreement, the Markdown tables and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import LOGGER, colorstr

from ..errors import UserError
from .stats import paired_difference

PREFIX = colorstr("bench-distill:")

SCORES = ("map50_95", "map50", "task_map50_95", "task_map50", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L",
          "seconds_per_epoch", "train_minutes")
TABLE_SCORES = ("map50_95", "map50", "task_map50_95", "task_map50", "AP", "AP50", "AP_S", "AP_M", "AP_L")
REFERENCES = ("none", "ultralytics", "fgd", "mgd")  # each method is compared with those of these in the run, by seed
REFERENCE_NAMES = {"none": "no KD", "ultralytics": "UL KD", "fgd": "FGD", "mgd": "MGD"}
PAIRED_SCORES = ("map50_95", "task_map50_95", "AP", "AP_S")


def summarize(runs: list[dict], methods: list[str]) -> dict[str, Any]:
    """Mean, sample std (n-1; None for one seed) and values per method and score; paired differences vs the
    references in the run (`references`: none, Ultralytics KD in every variant, FGD, MGD) with 95% intervals and
    verdicts. Each run's training minutes are its seconds per epoch times its epochs (methods may train for more)."""
    runs = [{**r, "scores": {**r["scores"], "train_minutes": train_minutes(r)}} for r in runs]
    stats = {}
    for m in methods:
        rows = [r["scores"] for r in runs if r["method"] == m]
        stats[m] = {}
        for k in SCORES:
            vals = [r[k] for r in rows if r.get(k) is not None]
            mean = float(np.mean(vals)) if vals else None
            std = float(np.std(vals, ddof=1)) if len(vals) > 1 else None
            stats[m][k] = {"mean": mean, "std": std, "n": len(vals), "values": vals}
    paired = {m: {ref: {k: paired_difference(scores_by_seed(runs, m, k), scores_by_seed(runs, ref, k))
                        for k in PAIRED_SCORES}
                  for ref in references(methods) if ref != m} for m in methods}
    return {"runs": runs, "methods": methods, "stats": stats, "paired": paired, "ranking": ranking_agreement(stats)}


def train_minutes(run: dict[str, Any]) -> float | None:
    """A run's training time in minutes: seconds per epoch times the epochs it trained."""
    per_epoch, epochs = run["scores"].get("seconds_per_epoch"), (run.get("train_args") or {}).get("epochs")
    return None if per_epoch is None or epochs is None else per_epoch * epochs / 60


def references(methods: list[str]) -> list[str]:
    """The methods of a run that every other is compared with: no distillation, Ultralytics' built-in in every
    variant it was trained in (`ultralytics[dis=18]`, `ultralytics[epochs=21]`: the bar is the best of them), FGD,
    MGD; in that order."""
    base = {m: m.partition("[")[0] for m in methods}
    return [m for ref in REFERENCES for m in methods
            if base[m] == ref and (m == ref or ref in ("none", "ultralytics"))]


def scores_by_seed(runs: list[dict], method: str, key: str) -> dict[int, float]:
    """{seed: score} of one method."""
    return {r["seed"]: r["scores"][key] for r in runs if r["method"] == method and r["scores"].get(key) is not None}


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
    """The Markdown report: one row per method (mean ± std over seeds, AP x100), then the paired differences with
    their 95% intervals and verdicts, the teacher and the ranking check."""
    stats, task = summary["stats"], summary.get("task", "detect")
    keys = measured(summary, TABLE_SCORES)  # a detection run has no task columns, an obb run no COCOeval columns
    head = ["method", "seeds", *(_column(k, task) for k in keys), "s/epoch", "train min"]
    lines = ["| " + " | ".join(head) + " |", "|---|" + "---:|" * (len(head) - 1)]
    for m in summary["methods"]:
        st = stats[m]
        cells = [m, str(st["map50_95"]["n"])] + [_pm(st[k], 100) for k in keys]
        lines.append("| " + " | ".join(cells + [_pm(st["seconds_per_epoch"], 1, 1), _pm(st["train_minutes"], 1, 1)])
                     + " |")
    lines += ["", *paired_table(summary)]
    t = summary.get("teacher_scores")
    notes = ["", f"mAP50-95 / mAP50: Ultralytics val ({BOX_MEANING[task]}); AP, AP50, AP_S/M/L: pycocotools "
             "COCOeval of the same predictions.json's boxes. All AP figures x100, mean ± sample std over seeds. "
             "Paired: per-seed differences (same seed = same initialisation and data order), their mean and 95% "
             "t-interval (df = seeds - 1); wins / ties / loses say whether the interval lies above 0, holds 0 or "
             "lies below 0."]
    if t:
        shown = ("map50_95", "map50", "task_map50_95", "AP", "AP50", "AP_S")
        notes.append(f"Teacher {summary['teacher']}: "
                     + ", ".join(f"{_column(k, task)} {_x100(t.get(k))}" for k in shown if t.get(k) is not None) + ".")
    if summary.get("area_scale", 1.0) != 1.0:
        notes.append(f"AP_S/M/L area limits: COCO's 32² / 96² px x {summary['area_scale']:.4g} (the synthetic set's "
                     "buckets, defined relative to the image side).")
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


def paired_table(summary: dict[str, Any]) -> list[str]:
    """Markdown rows: per method and reference, the paired difference of mAP50-95, AP and AP_S (x100) with its 95%
    interval and verdict."""
    refs = references(summary["methods"])
    keys, task = measured(summary, PAIRED_SCORES), summary.get("task", "detect")
    head = ["method", "vs"] + [f"Δ{_column(k, task)}" for k in keys]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * len(keys)]
    for m in summary["methods"]:
        for r in refs:
            cells = [_paired_cell(summary["paired"][m].get(r, {}).get(k)) for k in keys]
            if any(c != "—" for c in cells):
                lines.append("| " + " | ".join([m, _ref_name(r), *cells]) + " |")
    return lines


def _paired_cell(d: dict | None) -> str:
    """'+1.23 [-0.40, +2.86] ties' (x100), '+1.23 (1 seed)', or '—'."""
    if not d or d["mean"] is None:
        return "—"
    if d["ci95"] is None:
        return f"{100 * d['mean']:+.2f} (1 seed)"
    lo, hi = (100 * v for v in d["ci95"])
    return f"{100 * d['mean']:+.2f} [{lo:+.2f}, {hi:+.2f}] {d['verdict']}"


def measured(summary: dict[str, Any], keys: tuple[str, ...]) -> list[str]:
    """Those of `keys` that some run of the summary has a value for."""
    return [k for k in keys if any(st[k]["n"] for st in summary["stats"].values())]


# what Ultralytics' mAP of each task's model scores
BOX_MEANING = {"detect": "boxes", "segment": "boxes; mask mAP: masks", "pose": "boxes; pose mAP: keypoints by OKS",
               "obb": "rotated boxes"}


def _column(key: str, task: str) -> str:
    """A score's column name: 'mAP50-95', 'mask mAP50-95' (segment), 'pose mAP50' (pose), 'AP_S', ..."""
    if key.startswith("task_"):
        return {"segment": "mask ", "pose": "pose "}.get(task, "task ") + _column(key[5:], task)
    return {"map50_95": "mAP50-95", "map50": "mAP50"}.get(key, key)


def _ref_name(ref: str) -> str:
    """'UL KD', or 'UL KD[dis=18]' for a variant."""
    base, bracket, rest = ref.partition("[")
    return REFERENCE_NAMES[base] + bracket + rest


def _x100(v: float | None) -> str:
    return "—" if v is None else f"{100 * v:.2f}"


def _pm(st: dict, scale: float, digits: int = 2) -> str:
    """'mean ± std' (scaled), 'mean' for one value, '—' for none."""
    if st["mean"] is None:
        return "—"
    text = f"{scale * st['mean']:.{digits}f}"
    return text if st["std"] is None else f"{text} ± {scale * st['std']:.{digits}f}"


def write_outputs(summary: dict[str, Any], out_dir: str | Path) -> dict[str, Path]:
    """Write bench_distill.md, summary.json, bars.png and curves.png under `out_dir`; return their paths.

    A summary without runs is refused (UserError) before anything is written: it would replace a report with nothing.
    """
    out_dir = Path(out_dir)
    if not summary.get("runs") or not summary.get("methods"):
        raise UserError(f"bench-distill: no run to report, so the report in {out_dir} is left as it was")
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {k: out_dir / f for k, f in (("md", "bench_distill.md"), ("json", "summary.json"),
                                          ("bars", "bars.png"), ("curves", "curves.png"))}
    table = format_table(summary)
    paths["md"].write_text(f"# bench-distill: {summary.get('name', '')}\n\n{table}")
    paths["json"].write_text(json.dumps(jsonable(summary), indent=2))
    plot_bars(summary, paths["bars"])
    plot_curves(summary, paths["curves"])
    LOGGER.info(f"\n{table}\n{PREFIX} results saved to {colorstr('bold', out_dir)}")
    return paths


def plot_bars(summary: dict[str, Any], file: Path) -> None:
    """Bars per method: mAP50-95 (Ultralytics) next to AP (COCOeval) and AP_S/M/L, with std error bars; and the
    paired differences of mAP50-95 vs each reference with their 95% intervals."""
    plt = _pyplot()
    methods, stats = summary["methods"], summary["stats"]
    x = np.arange(len(methods))
    refs = references(methods)
    # paired intervals need two seeds: with one, the third panel would be bars without an interval
    paired = len({r["seed"] for r in summary["runs"]}) > 1 and refs
    fig, axes = plt.subplots(1, 3 if paired else 2, figsize=(max(12 if paired else 8, 2.4 * len(methods)), 4),
                             constrained_layout=True)
    task = summary.get("task", "detect")
    for ax, keys, title in ((axes[0], ("map50_95", "task_map50_95", "AP"), "mAP50-95 (Ultralytics) vs AP (COCOeval)"),
                            (axes[1], ("AP_S", "AP_M", "AP_L"), "COCOeval AP by object size")):
        keys = measured(summary, keys) or keys[:1]
        width = 0.8 / len(keys)
        for i, k in enumerate(keys):
            mean = [100 * (stats[m][k]["mean"] or 0) for m in methods]
            std = [100 * (stats[m][k]["std"] or 0) for m in methods]
            label = {"map50_95": "mAP50-95 (Ultralytics)", "AP": "AP (COCOeval)"}.get(k, _column(k, task))
            ax.bar(x + (i - (len(keys) - 1) / 2) * width, mean, width, yerr=std, capsize=3, label=label)
        if "map50_95" in keys and summary.get("teacher_scores"):
            ax.axhline(100 * summary["teacher_scores"]["map50_95"], color="gray", ls="--", lw=1, label="teacher")
        ax.set(xticks=x, title=title, ylabel="AP x100")
        ax.set_xticklabels(methods, rotation=30, ha="right")
        ax.legend(fontsize=8)
    if not paired:
        fig.savefig(file, dpi=120)
        plt.close(fig)
        return
    width = 0.8 / max(len(refs), 1)
    for i, ref in enumerate(refs):
        diffs = [summary["paired"][m].get(ref, {}).get("map50_95") for m in methods]
        mean = [100 * d["mean"] if d and d["mean"] is not None else np.nan for d in diffs]
        ci = [(100 * (d["mean"] - d["ci95"][0]), 100 * (d["ci95"][1] - d["mean"])) if d and d["ci95"] else (0, 0)
              for d in diffs]
        axes[2].bar(x + (i - (len(refs) - 1) / 2) * width, mean, width, yerr=np.array(ci).T, capsize=3,
                    label=f"vs {_ref_name(ref)}")
    axes[2].axhline(0, color="black", lw=0.8)
    axes[2].set(xticks=x, title="Paired ΔmAP50-95, 95% interval", ylabel="AP x100")
    axes[2].set_xticklabels(methods, rotation=30, ha="right")
    axes[2].legend(fontsize=8)
    fig.savefig(file, dpi=120)
    plt.close(fig)


def plot_curves(summary: dict[str, Any], file: Path) -> None:
    """Per epoch, mean over seeds with a ± std band: the training classification loss, and the validation mAP50-95
    of the epochs that were validated."""
    plt = _pyplot()
    panels = [("cls_loss", "train cls_loss")]
    if any(sum((p.get("map50_95") or 0) > 0 for p in r["curve"]) > 1 for r in summary["runs"]):
        panels.append(("map50_95", "val mAP50-95 x100"))  # only where more than the final epoch was validated
    fig, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4), constrained_layout=True, squeeze=False)
    for ax, (key, label) in zip(axes[0], panels):
        for m in summary["methods"]:
            runs = [r for r in summary["runs"] if r["method"] == m and r["curve"]]
            curves = [[p.get(key, np.nan) for p in r["curve"]] for r in runs]
            if not curves:
                continue
            n = min(map(len, curves))
            y = np.array([c[:n] for c in curves], dtype=float) * (100 if key == "map50_95" else 1)
            epochs = np.arange(1, n + 1)
            if key == "map50_95":  # epochs without validation hold 0
                keep = (y > 0).any(0)
                y, epochs = y[:, keep], epochs[keep]
            mean, std = y.mean(0), y.std(0, ddof=1) if len(y) > 1 else np.zeros(y.shape[1])
            ax.plot(epochs, mean, marker="o", ms=3, label=f"{m} (n={len(y)})")
            ax.fill_between(epochs, mean - std, mean + std, alpha=0.2)
        ax.set(xlabel="epoch", ylabel=label, title=f"{label} (mean ± std over seeds)")
        ax.legend(fontsize=7)
    fig.savefig(file, dpi=120)
    plt.close(fig)


def _pyplot():
    """matplotlib.pyplot on the Agg backend (no display, no font downloads)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def jsonable(obj: Any) -> Any:
    """obj with Paths, tuples, numpy scalars and NaN made JSON-safe (NaN -> None)."""
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, Path):
        return str(obj)
    if isinstance(obj, (np.floating, float)):
        return None if math.isnan(obj) else float(obj)
    if isinstance(obj, np.integer):
        return int(obj)
    return obj
