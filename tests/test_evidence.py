"""bench-distill evidence code: COCO ground truth + COCOeval on hand cases, the summary arithmetic and writers on
fabricated results, and resumability (a finished run is never trained again). No real training here."""

from __future__ import annotations

import hashlib
import json
import math
import os
import subprocess
import sys
import time
from pathlib import Path

import cv2
import numpy as np
import pytest

from ikd_yolo.cli import main
from ikd_yolo.config import DISTILL_KEYS, DistillConfigError
from ikd_yolo.evidence import bench, method_args, parse_methods, parse_seeds, resolve_settings, run_benchmark, run_one
from ikd_yolo.evidence.bench import distill_config
from ikd_yolo.errors import InputError
from ikd_yolo.evidence.coco import coco_eval, coco_ground_truth, match_predictions
from ikd_yolo.evidence.report import format_table, summarize, write_outputs

# One 200x160 image with a small (20x20), a medium (50x40) and a large (120x100) box of class 0 and a clipped box of
# class 2; one image with an empty label file; one image without a label file.
LABELS = (
    "0 0.15 0.125 0.1 0.125\n"    # x 20..40,  y 10..30   -> [20, 10, 20, 20],  area 400 (small)
    "0 0.375 0.5 0.25 0.25\n"     # x 50..100, y 60..100  -> [50, 60, 50, 40],  area 2000 (medium)
    "0 0.6 0.6875 0.6 0.625\n"    # x 60..180, y 60..160  -> [60, 60, 120, 100], area 12000 (large)
    "2 0.95 0.1 0.2 0.1\n"        # x 170..210 clipped to 200, y 8..24 -> [170, 8, 30, 16], area 480
)


@pytest.fixture
def tiny_yolo(tmp_path) -> Path:
    """A hand-made YOLO dataset whose COCO ground truth is known exactly."""
    for split in ("images/val", "labels/val"):
        (tmp_path / split).mkdir(parents=True)
    cv2.imwrite(str(tmp_path / "images/val/000007.jpg"), np.zeros((160, 200, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images/val/empty.png"), np.zeros((64, 96, 3), np.uint8))
    cv2.imwrite(str(tmp_path / "images/val/nolabel.jpg"), np.zeros((32, 32, 3), np.uint8))
    (tmp_path / "labels/val/000007.txt").write_text(LABELS)
    (tmp_path / "labels/val/empty.txt").write_text("")
    yaml_file = tmp_path / "data.yaml"
    yaml_file.write_text(f"path: {tmp_path}\ntrain: images/val\nval: images/val\nnames: {{0: a, 1: b, 2: c}}\n")
    return yaml_file


def as_predictions(gt: dict, keep=lambda a: True, score: float = 0.9) -> list[dict]:
    """Ground-truth boxes as Ultralytics would write them in predictions.json (image_id from the file stem)."""
    names = {im["id"]: im["file_name"] for im in gt["images"]}
    out = []
    for a in filter(keep, gt["annotations"]):
        stem = Path(names[a["image_id"]]).stem
        out.append({"image_id": int(stem) if stem.isnumeric() else stem, "file_name": names[a["image_id"]],
                    "category_id": a["category_id"], "bbox": a["bbox"], "score": score})
    return out


def test_ground_truth_boxes_sizes_and_ids(tiny_yolo):
    gt = coco_ground_truth(tiny_yolo)
    assert [(im["file_name"], im["width"], im["height"]) for im in gt["images"]] == [
        ("000007.jpg", 200, 160), ("empty.png", 96, 64), ("nolabel.jpg", 32, 32)]
    assert [c["id"] for c in gt["categories"]] == [1, 2, 3]  # class + 1, as pred_to_json writes
    anns = gt["annotations"]
    assert [a["bbox"] for a in anns] == [[20, 10, 20, 20], [50, 60, 50, 40], [60, 60, 120, 100], [170, 8, 30, 16]]
    assert [a["area"] for a in anns] == pytest.approx([400, 2000, 12000, 480])
    assert [a["category_id"] for a in anns] == [1, 1, 1, 3]
    assert {a["image_id"] for a in anns} == {1} and all(a["iscrowd"] == 0 for a in anns)
    assert len({a["id"] for a in anns}) == 4


def test_predictions_equal_to_ground_truth_score_one(tiny_yolo):
    gt = coco_ground_truth(tiny_yolo)
    preds = match_predictions(gt, as_predictions(gt))
    assert {p["image_id"] for p in preds} == {1}  # stem 000007 -> image_id 7 in the file, remapped by file name
    scores = coco_eval(gt, preds)
    for k in ("AP", "AP50", "AP75", "AP_S", "AP_M", "AP_L", "AR100"):
        assert scores[k] == pytest.approx(1.0), k


def test_one_missed_small_box(tiny_yolo):
    gt = coco_ground_truth(tiny_yolo)
    missed = {1}  # the 20x20 box of class 0
    scores = coco_eval(gt, match_predictions(gt, as_predictions(gt, keep=lambda a: a["id"] not in missed)))
    # class 0: 2 of 3 found with precision 1 -> precision 1 at the 67 recall points 0.00..0.66 of 101, 0 after;
    # class 2 (area 480 -> small) found -> 1.0; class 1 has no ground truth and is left out of the mean.
    assert scores["AP"] == pytest.approx((67 / 101 + 1.0) / 2)
    assert scores["AP50"] == pytest.approx((67 / 101 + 1.0) / 2)
    assert scores["AP_S"] == pytest.approx((0.0 + 1.0) / 2)  # class 0's small box missed, class 2's found
    assert scores["AP_M"] == pytest.approx(1.0) and scores["AP_L"] == pytest.approx(1.0)  # only class 0 has these


def test_area_scale_moves_the_buckets_and_empty_ranges_are_none(tiny_yolo):
    gt = coco_ground_truth(tiny_yolo)
    # x 1/16 (a 64 px synthetic set): limits 64 and 576 px -> 400 and 480 are medium, 2000 and 12000 large
    scores = coco_eval(gt, match_predictions(gt, as_predictions(gt)), area_scale=1 / 16)
    assert scores["AP_S"] is None and scores["AP_M"] == pytest.approx(1.0) and scores["AP_L"] == pytest.approx(1.0)
    empty = coco_eval(gt, [], area_scale=1 / 16)
    assert empty["AP"] == 0.0 and empty["AP_S"] is None and empty["AP_M"] == 0.0


def test_duplicate_file_names_are_refused(tiny_yolo):
    (tiny_yolo.parent / "images/val/sub").mkdir()
    cv2.imwrite(str(tiny_yolo.parent / "images/val/sub/empty.png"), np.zeros((8, 8, 3), np.uint8))
    with pytest.raises(ValueError, match="same file name"):
        coco_ground_truth(tiny_yolo)


# ----------------------------------------------------------------------------------- summary on fabricated results
def fake_run(method: str, seed: int, ap: float, map_: float, secs: float = 10.0) -> dict:
    scores = dict(map50_95=map_, map50=map_ + 0.2, AP=ap, AP50=ap + 0.2, AP75=ap, AP_S=ap / 2, AP_M=ap, AP_L=None,
                  seconds_per_epoch=secs)
    curve = [{"epoch": e, "map50_95": map_ * e / 3, "map50": 0.0, "time": secs * e} for e in (1, 2, 3)]
    return {"method": method, "seed": seed, "scores": scores, "curve": curve, "train_args": {"epochs": 3}}


FAKE = [
    fake_run("none", 0, 0.10, 0.11), fake_run("none", 1, 0.12, 0.13), fake_run("none", 2, 0.14, 0.15),
    fake_run("ultralytics", 0, 0.13, 0.14, 12), fake_run("ultralytics", 1, 0.15, 0.16, 14),
    fake_run("ultralytics", 2, 0.17, 0.18, 16),
    fake_run("fgd", 0, 0.16, 0.20), fake_run("fgd", 1, 0.18, 0.22),  # two seeds only
    fake_run("ikd-fgd", 0, 0.16, 0.30),  # one seed; ranks above fgd by mAP50-95 but below it by AP
]


def test_mean_std_and_deltas_by_hand():
    s = summarize(FAKE, ["none", "ultralytics", "fgd", "ikd-fgd"])
    st = s["stats"]
    assert st["none"]["AP"]["mean"] == pytest.approx(0.12) and st["none"]["AP"]["std"] == pytest.approx(0.02)
    assert st["ultralytics"]["seconds_per_epoch"]["mean"] == pytest.approx(14) and \
        st["ultralytics"]["seconds_per_epoch"]["std"] == pytest.approx(2)
    assert st["fgd"]["AP"]["std"] == pytest.approx(np.sqrt(2) * 0.01)  # two values 0.16, 0.18
    assert st["ikd-fgd"]["AP"]["std"] is None and st["ikd-fgd"]["AP"]["n"] == 1
    assert st["none"]["AP_L"] == {"mean": None, "std": None, "n": 0, "values": []}
    d = s["paired"]
    assert d["ultralytics"]["none"]["AP"]["per_seed"] == pytest.approx({0: 0.03, 1: 0.03, 2: 0.03})
    assert d["fgd"]["none"]["map50_95"]["n"] == 2 and d["fgd"]["none"]["map50_95"]["mean"] == pytest.approx(0.09)
    assert d["fgd"]["ultralytics"]["AP"]["per_seed"] == pytest.approx({0: 0.03, 1: 0.03})  # paired by seed
    assert d["ikd-fgd"]["fgd"]["AP"]["verdict"] == "n/a"  # one common seed: no interval
    assert "none" not in d["none"] and "fgd" in d["none"]


def test_paired_interval_by_hand():
    from ikd_yolo.evidence.stats import paired_difference, t_quantile_975

    # deltas 1, 2, 4: mean 7/3, sample std sqrt(7/3), half width t(2) * std / sqrt(3) with t(2) = 4.303
    spread = paired_difference({0: 1.0, 1: 2.0, 2: 4.0, 3: 9.0}, {0: 0.0, 1: 0.0, 2: 0.0})
    half = 4.303 * math.sqrt(7 / 3) / math.sqrt(3)
    assert spread["n"] == 3 and spread["mean"] == pytest.approx(7 / 3)
    assert spread["ci95"] == pytest.approx([7 / 3 - half, 7 / 3 + half]) and spread["verdict"] == "ties"
    win = paired_difference({0: 1.0, 1: 1.2, 2: 0.8}, {0: 0.0, 1: 0.0, 2: 0.0})
    assert win["ci95"] == pytest.approx([1 - 4.303 * 0.2 / math.sqrt(3), 1 + 4.303 * 0.2 / math.sqrt(3)])
    assert win["verdict"] == "wins"
    assert paired_difference({0: 0.0, 1: 0.0, 2: 0.0}, {0: 1.0, 1: 1.2, 2: 0.8})["verdict"] == "loses"
    assert t_quantile_975(4) == 2.776 and t_quantile_975(35) == pytest.approx(2.030, abs=1e-3)
    assert t_quantile_975(1000) == pytest.approx(1.962, abs=1e-3)


def test_ranking_check_reports_the_swapped_pair():
    rank = summarize(FAKE, ["none", "ultralytics", "fgd", "ikd-fgd"])["ranking"]["map50_95_vs_AP"]
    assert rank["ultralytics_order"] == "ikd-fgd > fgd > ultralytics > none"
    assert rank["coco_order"] == "fgd > ikd-fgd > ultralytics > none"
    assert not rank["agree"] and [p["methods"] for p in rank["swapped_pairs"]] == [["fgd", "ikd-fgd"]]
    assert rank["kendall_tau"] == pytest.approx(2 * 5 / 6 - 1)  # 5 of 6 pairs concordant


def test_ties_are_shown_as_ties():
    tied = [fake_run("none", 0, 0.0, 0.0), fake_run("fgd", 0, 0.0, 0.0), fake_run("mgd", 0, 0.1, 0.1)]
    rank = summarize(tied, ["none", "fgd", "mgd"])["ranking"]["map50_95_vs_AP"]
    assert rank["agree"] and rank["coco_order"] == "mgd > none = fgd"


def test_mgd_is_a_reference_only_when_it_ran():
    runs = [fake_run("mgd", 0, 0.10, 0.20), fake_run("mgd", 1, 0.12, 0.22),
            fake_run("ikd-mgd", 0, 0.11, 0.23), fake_run("ikd-mgd", 1, 0.13, 0.26)]
    d = summarize(runs, ["mgd", "ikd-mgd"])["paired"]
    assert d["ikd-mgd"]["mgd"]["map50_95"]["per_seed"] == pytest.approx({0: 0.03, 1: 0.04})
    assert "mgd" not in summarize(FAKE, ["none", "fgd"])["paired"]["none"]
    assert "| ikd-mgd | MGD |" in format_table(summarize(runs, ["mgd", "ikd-mgd"]))  # its paired row


def test_table_json_and_plots(tmp_path):
    summary = summarize(FAKE, ["none", "ultralytics", "fgd", "ikd-fgd"])
    table = format_table(summary)
    main_rows = [line for line in table.splitlines() if line.startswith("| ")][:5]
    assert "| none | 3 | 13.00 ± 2.00 | 33.00 ± 2.00 | 12.00 ± 2.00 |" in main_rows[1]
    assert main_rows[2].endswith("| 14.0 ± 2.0 | 0.7 ± 0.1 |")  # ultralytics: s/epoch, and minutes for 3 epochs
    assert "| ikd-fgd | 1 | 30.00 | 50.00 | 16.00 |" in main_rows[4]  # one seed: no ± part
    # paired rows: ultralytics - none is +3 AP on every seed: an interval of width 0 above 0
    assert "| ultralytics | no KD | +3.00 [+3.00, +3.00] wins | +3.00 [+3.00, +3.00] wins |" in table
    assert "| ikd-fgd | no KD | +19.00 (1 seed) |" in table  # 0.30 - 0.11 on the one common seed
    assert "| ikd-fgd | FGD | +10.00 (1 seed) |" in table
    assert "DIFFERS" in table and "fgd vs ikd-fgd" in table
    paths = write_outputs(summary, tmp_path / "out")
    saved = json.loads(paths["json"].read_text())
    assert saved["stats"]["fgd"]["map50_95"]["mean"] == pytest.approx(0.21)
    assert len(saved["runs"]) == len(FAKE)
    for k in ("bars", "curves"):
        assert paths[k].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # scores: header + 4 methods; paired: header + each method vs each other reference in the run (none,
    # ultralytics, fgd): 2 + 2 + 2 + 3 rows (separator rows start with |-)
    assert paths["md"].read_text().count("\n| ") == 15


# ------------------------------------------------------------------------------------------------- resumability
@pytest.fixture
def fake_training(monkeypatch, tmp_path):
    """Replace training, validation and the teacher by fakes that count their calls."""
    calls = []

    def fake_train(method, data, teacher, student, project, name, threads=None, **args):
        calls.append((method, args["seed"], args))
        save_dir = Path(project) / name
        return {"method": method, "map50_95": 0.1, "map50": 0.2, "weights": str(save_dir / "weights/best.pt"),
                "seconds_per_epoch": 3.0, "save_dir": str(save_dir),
                "curve": [{"epoch": 1, "map50_95": 0.1, "map50": 0.2, "time": 2.0}]}

    def fake_validate(weights, data, gt, area_scale, save_dir, threads=None, task="detect", **val_args):
        return dict(map50_95=0.1, map50=0.2, AP=0.11, AP50=0.21, AP75=0.1, AP_S=0.0, AP_M=0.1, AP_L=0.2, AR100=0.3)

    monkeypatch.setattr(bench, "train_student", fake_train)
    monkeypatch.setattr(bench, "validate_twice", fake_validate)
    (tmp_path / "teacher.pt").write_bytes(b"the weights of a trained teacher")
    monkeypatch.setattr(bench, "cached_teacher", lambda *a, **k: tmp_path / "teacher.pt")
    monkeypatch.setattr(bench, "build_attack_caches", lambda s, data, teacher: calls.append(("cache", None, {})))
    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    return calls


def test_rerun_skips_finished_runs(fake_training, tmp_path):
    kwargs = dict(profile="quick", name="t", out=tmp_path / "results", project=tmp_path / "runs", n_train=4, n_val=3,
                  data_imgsz=64, methods="none,ikd-score", seeds=2, epochs=1, jobs=1)  # in process: the fakes apply
    first = run_benchmark(**kwargs)
    assert sorted((m, s) for m, s, _ in fake_training) == [
        ("cache", None), ("ikd-score", 0), ("ikd-score", 1), ("none", 0), ("none", 1)]  # the attack cached once first
    fake_training.remove(("cache", None, {}))
    for method in ("ikd-score", "none"):  # the profile's recipe for all; the preset's own settings, nothing added
        args = next(a for m, _, a in fake_training if m == method)
        assert args["optimizer"] == "AdamW" and not set(args) & DISTILL_KEYS
        assert first["method_args"][method] == {k: v for k, v in args.items() if k != "seed"}
    assert first["area_scale"] == pytest.approx(1 / 16)
    files = sorted(p.name for p in (tmp_path / "results/t/runs").iterdir())
    assert files == ["ikd-score-s0.json", "ikd-score-s1.json", "none-s0.json", "none-s1.json", "teacher.json"]
    for f in ("bench_distill.md", "summary.json", "bars.png", "curves.png"):
        assert (tmp_path / "results/t" / f).is_file()

    fake_training.clear()
    second = run_benchmark(**{**kwargs, "seeds": 3})  # seeds 0, 1 finished: only seed 2 runs
    assert sorted((m, s) for m, s, _ in fake_training if m != "cache") == [("ikd-score", 2), ("none", 2)]
    assert second["stats"]["none"]["AP"]["n"] == 3

    fake_training.clear()
    run_benchmark(**{**kwargs, "epochs": 2, "methods": "none", "seeds": 1})  # changed settings: run again
    assert [(m, s) for m, s, _ in fake_training if m != "cache"] == [("none", 0)]


def test_runs_of_another_teacher_at_the_same_path_are_refused(fake_training, tmp_path):
    """A profile's teacher trained again lands at the same cached path with other weights (CPU training is not
    bit-reproducible): the finished runs of the first one must not be reused, or mixed into one table."""
    kwargs = dict(profile="quick", name="t", out=tmp_path / "results", project=tmp_path / "runs", n_train=4, n_val=3,
                  data_imgsz=64, methods="none", seeds=1, epochs=1, jobs=1)
    run_benchmark(**kwargs)
    recorded = json.loads((tmp_path / "results/t/runs/teacher.json").read_text())["teacher_sha256"]
    assert recorded == hashlib.sha256(b"the weights of a trained teacher").hexdigest()
    (tmp_path / "teacher.pt").write_bytes(b"the weights of that teacher trained again")
    fake_training.clear()
    with pytest.raises(InputError, match=r"runs were trained with another teacher .*pass name= a new name"):
        run_benchmark(**{**kwargs, "seeds": 2})
    assert fake_training == []  # refused before any run
    run_benchmark(**{**kwargs, "name": "t2"})  # a new name: a new table on the new teacher
    assert [m for m, _, _ in fake_training if m != "cache"] == ["none"]


def test_run_one_reuses_json_without_training(monkeypatch, tmp_path, fake_training):
    s = resolve_settings("quick", methods="none", seeds=1)
    args = (tmp_path / "data.yaml", tmp_path / "t.pt", {}, 1.0, tmp_path / "runs", tmp_path / "project")
    first = run_one("none", 0, s, *args)
    assert len(fake_training) == 1 and (tmp_path / "runs/none-s0.json").is_file()
    monkeypatch.setattr(bench, "train_student", lambda *a, **k: pytest.fail("a finished run was trained again"))
    assert run_one("none", 0, s, *args) == first


def test_an_edited_preset_is_a_new_run(monkeypatch, tmp_path, fake_training):
    """A run's reuse key holds the preset as it reads now: editing configs/ikd-fgd.yaml retrains, it never reuses."""
    from ikd_yolo import config

    s = resolve_settings("quick", methods="ikd-fgd", seeds=1)
    args = (tmp_path / "data.yaml", tmp_path / "t.pt", {}, 1.0, tmp_path / "runs", tmp_path / "project")
    run_one("ikd-fgd", 0, s, *args)
    run_one("ikd-fgd", 0, s, *args)
    assert len(fake_training) == 1
    shipped = config.load_preset
    monkeypatch.setattr(config, "load_preset", lambda name: {**shipped(name), "freq_mode": "spectral"})
    run_one("ikd-fgd", 0, s, *args)
    assert len(fake_training) == 2


def test_labels_with_the_same_settings_are_one_run(tmp_path, fake_training):
    s = resolve_settings("quick", methods="ikd-fgd", seeds=1)
    args = (tmp_path / "data.yaml", tmp_path / "t.pt", {}, 1.0, tmp_path / "runs", tmp_path / "project")
    adv_only = run_one("ikd-fgd", 0, s, *args)
    same = run_one("ikd-fgd[freq_mode=off]", 0, s, *args)  # the preset's own settings, said again
    assert len(fake_training) == 1
    assert same["method"] == "ikd-fgd[freq_mode=off]" and same["scores"] == adv_only["scores"]
    assert (tmp_path / "runs/ikd-fgd_freq_mode_off_-s0.json").is_file()
    run_one("ikd-fgd[fgd_temp=0.5;freq_p=0.1]", 0, s, *args)  # the default temperature; freq_p of a part that is off
    assert len(fake_training) == 1
    run_one("ikd-fgd-full", 0, s, *args)  # the frequency part on: another run
    assert len(fake_training) == 2
    # a cached attack that changes nothing is the clean stream (adv_mode=clean): one run under either name
    run_one("ikd-score[adv_mode=clean]", 0, s, *args)
    run_one("ikd-score[adv_step_size=0]", 0, s, *args)
    assert len(fake_training) == 3


def test_argument_parsing_and_errors():
    assert [m.label for m in parse_methods("none, freq-only,adv-only,fgd,none")] == [
        "none", "ikd-fgd-freq", "ikd-fgd", "fgd"]
    assert parse_seeds(3) == [0, 1, 2] and parse_seeds("4,7") == [4, 7] and parse_seeds([5]) == [5]
    with pytest.raises(DistillConfigError, match="not known"):
        parse_methods("none,fdg")
    with pytest.raises(DistillConfigError, match="profile"):
        resolve_settings("slow")
    with pytest.raises(DistillConfigError, match="data="):
        resolve_settings("full")
    with pytest.raises(DistillConfigError, match="epohcs"):
        resolve_settings("quick", epohcs=3)
    s = resolve_settings("gpu", methods=["none", "mgd"], lr0=0.02)
    assert s["train_args"] == {"optimizer": "AdamW", "lr0": 0.02, "warmup_epochs": 1, "nbs": 32, "val": False}
    assert resolve_settings("quick")["jobs"] == (os.cpu_count() or 1) and resolve_settings("gpu")["jobs"] == 6
    with pytest.raises(DistillConfigError, match="jobs=0 must be a whole number >= 1"):
        resolve_settings("quick", jobs=0)
    # a preset with settings of its own: trained and reported beside the preset
    assert [m.label for m in parse_methods("ikd-fgd,ikd-fgd[adv_mode=cached],ikd-fgd[freq_p=0.25,adv_eps=0.02]")] == [
        "ikd-fgd", "ikd-fgd[adv_mode=cached]", "ikd-fgd[freq_p=0.25;adv_eps=0.02]"]
    # a range value keeps its own comma: the string the command line gives, and the list a script gives
    for given in ("fgd,ikd-score[freq_mode=spectral;freq_band_high=[0.5,1.415],freq_p=1.0]",
                  ["fgd", "ikd-score[freq_mode=spectral;freq_band_high=[0.5,1.415];freq_p=1.0]"]):
        fgd, ranged = parse_methods(given)
        assert fgd.label == "fgd" and dict(ranged.settings) == {
            "freq_mode": "spectral", "freq_band_high": [0.5, 1.415], "freq_p": 1.0}
    quick = resolve_settings("quick")
    assert method_args("ikd-fgd[adv_steps=1;freq_p=0.25]", quick)["adv_steps"] == 1  # over the preset's 5
    assert method_args("ikd-fgd[freq_p=0.25]", quick)["freq_p"] == 0.25
    for bad, message in (("fgd[fgd_alpah=1]", r"'fgd\[fgd_alpah=1\]': 'fgd_alpah' is neither .* mean 'fgd_alpha'"),
                         ("none[freq_p=0.1]", "only ikd-yolo presets take"),
                         ("ikd-fgd[freq_p=2]", "freq_p=2.0 must lie in"),
                         ("ultralytics[data=x.yaml]", "shared by every run"),
                         ("ultralytics[dis=abc]", r"method 'ultralytics\[dis=abc\]': 'dis=abc' is of invalid type"),
                         ("ultralytics[dis=3", "close its settings"), ("ultralitics", "Did you mean 'ultralytics'")):
        with pytest.raises(DistillConfigError, match=message):
            parse_methods(bad)
    # any method may change the recipe: the built-in tuned, or trained for longer, beside the profile's
    dis, longer, both = parse_methods("ultralytics[dis=18],none[epochs=21],ikd-score[adv_steps=1;epochs=21.0]")
    assert dict(dis.recipe) == {"dis": 18} and not dis.settings and method_args(dis, quick)["dis"] == 18
    assert method_args(longer, quick)["epochs"] == 21 and quick["epochs"] == 15
    assert dict(both.settings) == {"adv_steps": 1} and method_args(both, quick)["epochs"] == 21
    # one label per distinct method: the same settings in another order, or 1 vs 1.0, run once under the first label
    assert [m.label for m in parse_methods("ikd-score[adv_steps=1;adv_every=2],ikd-score[adv_every=2.0;adv_steps=1],"
                                           "ultralytics[epochs=21],ultralytics[epochs=21.0]")] == [
        "ikd-score[adv_steps=1;adv_every=2]", "ultralytics[epochs=21]"]
    assert main(["bench-distill", "profile=nope"]) == 2


def test_methods_reach_parallel_workers_intact():
    # jobs=2 sends each method to a spawned worker by pickling it
    import pickle

    for method in parse_methods("none,ikd-fgd,ikd-score[adv_step_size=0;adv_distill=predictions]"):
        copy = pickle.loads(pickle.dumps(method))
        assert copy == method and dict(copy.settings) == dict(method.settings) and copy.preset == method.preset


WORKERS_SCRIPT = """
import sys, time
from ikd_yolo.evidence.parallel import Jobs

def nap(seconds, threads=None):
    time.sleep(seconds)

if __name__ == "__main__":
    with Jobs(2) as jobs:
        futures = [jobs.submit(nap, 600) for _ in range(2)]
        print(*jobs._pool._processes, flush=True)
        futures[0].result()
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="workers end with their parent on Linux only")
def test_killed_benchmark_leaves_no_worker_training(tmp_path):
    """bench-distill jobs=2 killed (Ctrl-C twice, a job scheduler's SIGKILL): its workers end too, instead of
    training on into the run folders a rerun resumes from."""
    script = tmp_path / "workers.py"
    script.write_text(WORKERS_SCRIPT)
    parent = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, text=True)
    workers = [int(pid) for pid in parent.stdout.readline().split()]
    assert len(workers) == 2
    parent.kill()
    parent.wait()

    def alive(pid: int) -> bool:
        try:
            return "\tZ" not in Path(f"/proc/{pid}/status").read_text().split("State:")[1][:4]
        except (OSError, IndexError):
            return False

    deadline = time.monotonic() + 60
    while any(map(alive, workers)) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(map(alive, workers))


def test_a_preset_row_runs_exactly_what_distill_name_runs():
    from ikd_yolo.config import resolve_distill_config

    with pytest.raises(DistillConfigError, match=r"give it to the methods it changes, in brackets: "
                                                 r"methods=ikd-score,ikd-score\[adv_weight=4e-07\]"):
        resolve_settings("quick", adv_weight=4e-7)  # a setting for every method: refused, it would hide in the labels
    for profile in ("quick", "quick160", "gpu"):
        s = resolve_settings(profile)
        for preset in ("ikd-score", "ikd-fgd", "fgd", "score"):
            assert not set(method_args(preset, s)) & DISTILL_KEYS  # the profile adds no method setting
            assert distill_config(preset, s) == resolve_distill_config({"distill": preset})
    s = resolve_settings("quick", trust_checkpoints=True)  # a permission to read, not a method setting
    assert method_args("ikd-score", s)["trust_checkpoints"] is True
    assert "trust_checkpoints" not in method_args("none", s)


def test_student_runs_land_in_the_project_folder_given(tmp_path, monkeypatch):
    """A relative project= is made absolute: Ultralytics would otherwise nest it under runs/detect/."""
    from ikd_yolo.evidence import runs

    seen = {}

    class FakeYOLO:
        def __init__(self, model):
            self.trainer = None

        def train(self, **kwargs):
            seen.update(kwargs)
            raise RuntimeError("stop")

    monkeypatch.setattr(runs, "YOLO", FakeYOLO)
    monkeypatch.chdir(tmp_path)
    with pytest.raises(RuntimeError, match="stop"):
        runs.train_student("none", "data.yaml", "t.pt", "yolo11n.yaml", "runs/ikd-demo", "none-s0", epochs=1)
    assert seen["project"] == str(tmp_path / "runs" / "ikd-demo")


def test_a_stopped_teacher_run_is_resumed_not_reused(monkeypatch, tmp_path):
    """A teacher killed mid-way leaves best.pt beside a last.pt that still has its epoch: that teacher is resumed;
    only a last.pt with epoch -1 (Ultralytics' finished checkpoint) is reused as it is, and an unreadable one means
    training from the start."""
    import torch

    from ikd_yolo.evidence import runs

    monkeypatch.setattr(runs, "cache_dir", lambda: tmp_path)
    calls = []

    class FakeYOLO:
        def __init__(self, model):
            self.model = str(model)

        def add_callback(self, *_):
            pass

        def train(self, **kw):
            calls.append((Path(self.model).name, kw.get("resume", False)))

    monkeypatch.setattr(runs, "YOLO", FakeYOLO)
    weights = runs.teacher_folder("d.yaml", "yolo11s.yaml", 18, 96, 8) / "weights"
    weights.mkdir(parents=True)
    (weights / "best.pt").write_bytes(b"x")
    torch.save({"epoch": 14}, weights / "last.pt")
    runs.cached_teacher("d.yaml", "yolo11s.yaml", 18, 96, 8, "cpu")
    assert calls == [("last.pt", True)]
    torch.save({"epoch": -1}, weights / "last.pt")
    runs.cached_teacher("d.yaml", "yolo11s.yaml", 18, 96, 8, "cpu")
    assert calls == [("last.pt", True)]  # finished: reused, nothing trained
    (weights / "last.pt").write_bytes(b"cut")  # a checkpoint cut short by the kill: trained again from the start
    runs.cached_teacher("d.yaml", "yolo11s.yaml", 18, 96, 8, "cpu")
    assert calls == [("last.pt", True), ("yolo11s.yaml", False)]


def test_an_empty_summary_never_replaces_a_report(tmp_path):
    """The report writer refuses a summary without runs, so a previous report stays as it was."""
    from ikd_yolo.errors import UserError

    out = tmp_path / "out"
    write_outputs(summarize(FAKE, ["none", "fgd"]), out)
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    for empty in (summarize([], []), summarize([], ["none"]), {**summarize(FAKE, ["none"]), "methods": []}):
        with pytest.raises(UserError, match=f"no run to report, so the report in {out} is left as it was"):
            write_outputs(empty, out)
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before


@pytest.mark.parametrize("words", [["seeds=0"], ["seeds=-2"], ["seeds=[0,0]"], ["methods=,"], ["adv_frac=0"]])
def test_a_refused_benchmark_keeps_the_previous_report(words, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(bench, "prepare_data", lambda s: pytest.fail("the benchmark started work"))
    report = tmp_path / "results" / "quick"
    write_outputs(summarize(FAKE, ["none", "fgd"]), report)
    before = {p.name: p.read_bytes() for p in report.iterdir()}
    assert main(["bench-distill", f"out={tmp_path / 'results'}", f"project={tmp_path / 'runs'}", *words]) == 2
    assert len([line for line in capsys.readouterr().err.splitlines() if line.strip()]) == 1
    assert {p.name: p.read_bytes() for p in report.iterdir()} == before and not (tmp_path / "runs").exists()


def test_seeds_are_distinct_whole_numbers():
    assert parse_seeds(1) == [0] and parse_seeds("0, 4,7") == [0, 4, 7] and parse_seeds((2, 9)) == [2, 9]
    assert parse_seeds(np.int64(2)) == [0, 1]
    for bad, message in ((0, "runs nothing"), (-2, "runs nothing"), ([0, 0], "names seed 0 more than once"),
                         ("1,1", "names seed 1 more than once"), ([], "is not valid"), ([-1], "is not valid"),
                         ("a", "is not valid"), (1.5, "is not valid"), ([True], "is not valid"),
                         (None, "is not valid")):
        with pytest.raises(DistillConfigError, match=message):
            parse_seeds(bad)
