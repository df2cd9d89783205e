"""The tuning runner (benchmarks/tune_ikd.py): its paired comparison is the evidence code's arithmetic on hand-made
numbers, a screen in parts keeps its earlier rows, a misspelt variant stops before any run. (That the shipped preset is
the recorded winner is a results check: benchmarks/check_results.py.)"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _tune_ikd():
    spec = importlib.util.spec_from_file_location("tune_ikd", ROOT / "benchmarks" / "tune_ikd.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_compare_pairs_seeds_against_the_preset_and_fgd():
    tune = _tune_ikd()
    scores = {("fgd", 0): 0.30, ("fgd", 1): 0.32, ("ikd-fgd", 0): 0.31, ("ikd-fgd", 1): 0.35,
              ("ikd-fgd[freq_p=1.0]", 0): 0.33, ("ikd-fgd[freq_p=1.0]", 1): 0.36}
    runs = [{"method": m, "seed": s, "scores": {"map50_95": v, "AP_S": v / 2}} for (m, s), v in scores.items()]
    methods = ["fgd", "ikd-fgd", "ikd-fgd[freq_p=1.0]"]
    summary = {"runs": runs, "methods": methods, "stats": {m: {"seconds_per_epoch": {"mean": 1.0}} for m in methods}}
    base, variant = tune.compare(summary, ["ikd-fgd", "ikd-fgd[freq_p=1.0]"])
    assert base["vs_preset"] is None
    # per-seed deltas to the preset: +0.02, +0.01 -> mean 0.015; to FGD: +0.03, +0.04 -> mean 0.035
    assert variant["vs_preset"]["mean"] == pytest.approx(0.015)
    assert variant["vs_fgd"]["mean"] == pytest.approx(0.035)
    # std of (0.03, 0.04) = 0.01 / sqrt(2); half width t(0.975, df 1) 12.706 * std / sqrt(2) = 12.706 * 0.005
    assert variant["vs_fgd"]["ci95"] == pytest.approx([0.035 - 0.06353, 0.035 + 0.06353], abs=1e-4)
    assert variant["vs_fgd"]["verdict"] == "ties"
    assert variant["mean"] == pytest.approx(0.345) and variant["AP_S"] == {0: 0.165, 1: 0.18}


def test_a_screen_in_parts_keeps_the_variants_tried_before(tmp_path):
    tune = _tune_ikd()
    record = tmp_path / "screen.json"
    record.write_text(json.dumps({"seeds": [0, 1], "rows": [{"method": "ikd-fgd", "mean": 0.20},
                                                            {"method": "ikd-fgd[freq_p=0.25]", "mean": 0.22}]}))
    fresh = [{"method": "ikd-fgd", "mean": 0.21}, {"method": "ikd-fgd[ikd_phase=0.4]", "mean": 0.23}]
    # the preset's fresh row replaces its old one and leads; the variants keep the order they were tried in
    assert tune.merged(record, [0, 1], fresh) == [fresh[0], {"method": "ikd-fgd[freq_p=0.25]", "mean": 0.22},
                                                  fresh[1]]
    # other seeds are another screen: nothing of the old record is mixed in
    assert tune.merged(record, [0, 1, 2], fresh) == fresh
    assert tune.merged(tmp_path / "absent.json", [0, 1], fresh) == fresh


def test_a_misspelt_screen_variant_stops_before_any_run(monkeypatch, capsys):
    tune = _tune_ikd()
    monkeypatch.setattr(tune, "run", lambda *a: pytest.fail("a screen of nothing must not start"))
    with pytest.raises(SystemExit) as stop:
        tune.main(["screen", "--only", "adv_frac=0.5", "adv_frac=0.7"])
    assert stop.value.code == 2
    assert "--only adv_frac=0.7: not in SCREEN" in capsys.readouterr().err
