"""bench-distill summaries: mean ± std over seeds, deltas, evaluator agreement, the Markdown table and the plots."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import LOGGER, colorstr

PREFIX = colorstr("bench-distill:")

SCORES = ("map50_95", "map50", "AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "seconds_per_epoch")
TABLE_SCORES = ("map50_95", "map50", "AP", "AP50", "AP_S", "AP_M", "AP_L")


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
    paths["json"].write_text(json.dumps(jsonable(summary), indent=2))
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
