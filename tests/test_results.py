"""The committed results say what ships: every row named after a preset ran that preset as it ships, and no result
names a machine's folders (benchmarks/check_results.py)."""

from __future__ import annotations

import copy
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "benchmarks"))

import check_results  # noqa: E402


def test_the_committed_results_pass_every_check():
    assert check_results.mismatches() == []


def report_with_a_preset_row(tmp_path: Path) -> tuple[Path, dict]:
    """A copy of a committed report whose rows include the shipped default preset, in a results folder of its own."""
    from ikd_yolo.config import DEFAULTS

    source = next(f for f in sorted((ROOT / "benchmarks" / "results").glob("*/summary.json"))
                  if DEFAULTS["distill"] in json.loads(f.read_text())["methods"])
    summary = json.loads(source.read_text())
    folder = tmp_path / "results" / "report"
    folder.mkdir(parents=True)
    return folder / "summary.json", summary


def test_a_preset_row_that_ran_other_settings_is_named(tmp_path):
    from ikd_yolo.config import DEFAULTS

    file, summary = report_with_a_preset_row(tmp_path)
    file.write_text(json.dumps(summary))
    with check_results.in_folder(ROOT):
        assert check_results.preset_row_mismatches(file.parent.parent, tmp_path / "archive") == []
        # the same runs, as if a profile had changed the preset's attack: their keys are another method's
        changed = copy.deepcopy(summary)
        for run in changed["runs"]:
            if run["method"] == DEFAULTS["distill"]:
                run["settings_hash"] = "0" * 12
        file.write_text(json.dumps(changed))
        problems = check_results.preset_row_mismatches(file.parent.parent, tmp_path / "archive")
        assert problems and all(f"row '{DEFAULTS['distill']}'" in p for p in problems)
        # under archive/ a report is history: not held to today's presets
        archived = tmp_path / "results" / "archive" / "report"
        archived.mkdir(parents=True)
        file.rename(archived / "summary.json")
        assert check_results.preset_row_mismatches(file.parent.parent, tmp_path / "results" / "archive") == []


def test_a_machine_path_in_a_result_is_named(tmp_path):
    (tmp_path / "fine.json").write_text('{"teacher": "benchmarks/results/quick27/teacher-yolo11s.pt", '
                                        '"data": "<cache>/bench-data/x/data.yaml", "url": "https://arxiv.org/abs/2209"}')
    assert check_results.machine_paths((tmp_path,), ()) == []
    (tmp_path / "bad.md").write_text("ok line\n| run | /tmp/runs27/quick27/none-s0 |\n")
    (found,) = check_results.machine_paths((tmp_path,), ())
    assert found.startswith(f"{tmp_path / 'bad.md'}:2 names a machine's folder (/tmp/runs27/quick27/none-s0)")
