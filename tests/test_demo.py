"""`ikd-yolo demo` as a user sees it: a plan before any work, runs that do not share a terminal, one folder, and a
report of detections side by side."""

from __future__ import annotations

import os
from concurrent.futures import Future
from threading import Timer

import numpy as np
import pytest

from ikd_yolo import demo
from ikd_yolo.evidence import progress
from ikd_yolo.evidence.parallel import output_to
from ikd_yolo.evidence.report import summarize, write_outputs


def test_the_demo_is_one_seed_of_the_quick_profile_with_its_plan_printed_first(monkeypatch, tmp_path, capsys):
    """It trains nothing the quick profile would not (its regime, its teacher, two of its methods: none and the
    default preset), says so before any work, and writes everything under one absolute folder."""
    seen = {}

    def fake_benchmark(**kwargs):
        seen.update(kwargs, printed_before=capsys.readouterr().out)
        score = dict(map50_95=0.2, map50=0.35, seconds_per_epoch=9.0)
        return {"runs": [{"method": m, "scores": {**score, "map50_95": 0.2 + 0.01 * i}, "weights": f"{m}.pt"}
                         for i, m in enumerate(demo.DEMO_METHODS)],
                "teacher": "t.pt", "teacher_scores": {"map50_95": 0.33, "map50": 0.52}, "wall_seconds": 600.0}

    monkeypatch.setenv("IKD_YOLO_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(demo, "run_benchmark", fake_benchmark)
    monkeypatch.setattr(demo, "draw_detections", lambda summary, file, project: file)
    monkeypatch.chdir(tmp_path)
    demo.run_demo(out="runs/ikd-demo")
    assert demo.DEMO_METHODS == ("none", "score")  # the default preset of configs/default.yaml
    assert seen["profile"] == "quick" and seen["methods"] == ["none", "score"] and seen["seeds"] == [0]
    assert set(seen) - {"printed_before"} == {"profile", "name", "out", "project", "methods", "seeds"}
    root = tmp_path / "runs" / "ikd-demo"
    assert seen["out"] == seen["project"] == root  # one absolute root: nothing lands under runs/detect/
    plan = seen["printed_before"].strip()
    assert plan.startswith("ikd-yolo demo: yolo11s teacher trained first (18 epochs") and plan.count("\n") == 0
    assert "students none and score (seed 0, 15 epochs at 96 px" in plan and plan.endswith(f"under {root}")
    printed = capsys.readouterr().out
    assert "distilled vs no distillation: +0.0100 mAP50-95" in printed and "teacher t.pt: mAP50-95 0.3300" in printed
    assert f"detections side by side: {root / 'demo' / 'detections.jpg'}" in printed


def test_label_boxes_and_the_images_with_most_objects(tmp_path):
    images, labels = tmp_path / "images" / "val", tmp_path / "labels" / "val"
    images.mkdir(parents=True)
    labels.mkdir(parents=True)
    for name, rows in (("a", ["0 0.5 0.5 0.2 0.4"]), ("b", ["1 0.1 0.1 0.2 0.2"] * 3), ("c", [])):
        (images / f"{name}.jpg").write_bytes(b"")
        (labels / f"{name}.txt").write_text("\n".join(rows))
    np.testing.assert_allclose(demo.yolo_boxes(images / "a.jpg"), [[0.4, 0.3, 0.6, 0.7]])  # xywh -> xyxy by hand
    assert demo.yolo_boxes(images / "c.jpg").shape == (0, 4)
    assert [f.name for f, _ in demo.pick_images(images, 2)] == ["b.jpg", "a.jpg"]


def test_detections_report_draws_every_model_on_the_same_images(synthetic_data, teacher_pt, tmp_path, monkeypatch):
    monkeypatch.setattr(demo, "DEMO_METHODS", ("none", "fgd"))
    runs = [{"method": m, "weights": str(teacher_pt), "scores": {"map50_95": 0.1}} for m in demo.DEMO_METHODS]
    summary = {"data": str(synthetic_data), "settings": {"imgsz": 64}, "teacher": str(teacher_pt),
               "teacher_scores": {"map50_95": 0.2}, "runs": runs}
    titles, pixels, images, boxes = demo.detection_columns(summary, n=3, conf=0.25)
    assert titles == ["labels", "teacher (0.200)", "no distillation (0.100)", "fgd (0.100)"]
    assert pixels.shape == (3, 3, 64, 64) and 0 <= pixels.min() and pixels.max() <= 1
    for r, (image, labels) in enumerate(images):
        np.testing.assert_allclose(boxes[0][r], demo.yolo_boxes(image) * 64)  # the labels, in pixels
        assert len(boxes[0][r]) == len(labels)
        for c in (2, 3):  # the same weights in every model column: the same boxes
            np.testing.assert_array_equal(boxes[c][r], boxes[1][r])
    file = demo.draw_detections(summary, tmp_path / "d" / "detections.jpg", n=3)
    assert file.read_bytes()[:2] == b"\xff\xd8"  # a JPEG


def test_output_of_a_run_goes_to_its_log_not_the_terminal(tmp_path, capfd):
    log = tmp_path / "logs" / "none-s0.log"
    with output_to(log):
        print("from python", flush=True)
        os.write(2, b"from a progress bar\n")
    print("after")
    out, err = capfd.readouterr()
    assert log.read_text() == "from python\nfrom a progress bar\n"
    assert out == "after\n" and err == ""


def test_one_progress_line_per_change_until_every_run_is_done(tmp_path, monkeypatch):
    lines = []
    monkeypatch.setattr(progress.LOGGER, "info", lines.append)
    (tmp_path / "a-s0").mkdir()
    (tmp_path / "a-s0" / "results.csv").write_text("epoch,time\n1,2.0\n2,4.0\n")
    logs = {"a-s0": tmp_path / "logs" / "a-s0.log", "b-s0": tmp_path / "logs" / "b-s0.log"}
    running, queued = Future(), Future()
    running.set_running_or_notify_cancel()
    Timer(0.2, lambda: logs["a-s0"].parent.mkdir() or logs["a-s0"].write_text("started")).start()
    Timer(0.5, lambda: (running.set_result(1), queued.set_result(2))).start()
    progress.watch({"a-s0": running, "b-s0": queued}, tmp_path, logs, epochs={"a-s0": 21, "b-s0": 15}, poll=0.05)
    assert lines == ["bench-distill: 0/2 runs done",  # nothing has written to its log yet
                     "bench-distill: a-s0 epoch 2/21 · 0/2 runs done",  # b-s0 is queued: not shown
                     "bench-distill: 2/2 runs done"]


@pytest.mark.parametrize("seeds", [1, 2])
def test_no_panel_with_a_single_point(seeds, tmp_path, monkeypatch):
    """One seed has no paired interval (the bars' third panel goes); a run validated only at its end has one mAP
    point per method (the curves' second panel goes)."""
    from ikd_yolo.evidence import report

    panels = []
    plt = report._pyplot()
    monkeypatch.setattr(plt, "subplots",
                        lambda rows, cols, **kw: panels.append(cols) or _real_subplots(rows, cols, **kw))
    scores = dict(map50_95=0.2, map50=0.3, AP=0.2, AP50=0.3, AP75=0.2, AP_S=0.1, AP_M=0.2, AP_L=0.3, AR100=0.4,
                  seconds_per_epoch=1.0)
    curve = [{"epoch": e, "map50_95": 0.0 if e < 3 else 0.2, "cls_loss": 3.0 - e} for e in (1, 2, 3)]
    runs = [{"method": m, "seed": s, "scores": {**scores, "map50_95": 0.2 + 0.01 * s + 0.05 * (m == "fgd")},
             "curve": curve} for m in ("none", "fgd") for s in range(seeds)]
    write_outputs(summarize(runs, ["none", "fgd"]), tmp_path)
    assert panels == [3 if seeds > 1 else 2, 1]


_real_subplots = __import__("matplotlib.pyplot", fromlist=["subplots"]).subplots
