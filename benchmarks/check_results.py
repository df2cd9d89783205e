#!/usr/bin/env python
"""Results bookkeeping: what ships is what the recorded results measured. Exits 1 naming each mismatch.

Checks, against the code as it reads now:
    - every report under benchmarks/results (a summary.json, outside archive/): each row named after a shipped preset
      (a bare name, `ikd-score`) ran exactly what `distill=NAME` runs with that report's recipe: its runs' keys are
      the keys `bench-distill` gives that preset now (a profile that changed a method's settings, or a preset edited
      since, is a mismatch: name the variant in brackets, or run it again);
    - no committed result or doc names a machine's folders (paths are repo-relative, `<cache>/...` or `<project>/...`);
    - benchmarks/results/tuning/defaults.json (the tuning record): the preset it names resolves to exactly the
      settings it records, and every setting benchmarks/tune_ikd.py screens is one the record pins.

    python benchmarks/check_results.py
Run it after a benchmark, a tuning run or an edit of a preset or of the record. benchmarks/results/archive/ keeps
reports made with earlier presets: history, not held to today's presets.
"""

from __future__ import annotations

import json
import os
import re
import sys
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
RECORD = RESULTS / "tuning" / "defaults.json"
ARCHIVE = RESULTS / "archive"
TEXT = (".json", ".md", ".txt", ".csv")
# an absolute path of a machine: a root folder right after a quote, a space, a bracket or a line start
MACHINE_PATH = re.compile(r"(?:^|[\s\"'(`=\[])(/(?:tmp|work|root|home|Users|mnt|opt|var|srv|private)/[^\s\"'`)]*)")
sys.path.insert(0, str(ROOT))


@contextmanager
def in_folder(folder: Path):
    """Work in `folder` (the results' relative paths are relative to the repository), then go back."""
    before = Path.cwd()
    os.chdir(folder)
    try:
        yield
    finally:
        os.chdir(before)


def tuning_mismatches(record_file: Path = RECORD) -> list[str]:
    """One line per way the shipped settings and the tuning record disagree; empty when they agree."""
    from ikd_yolo.config import resolve_distill_config

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tune_ikd import SCREEN

    record = json.loads(record_file.read_text())
    rel = record_file.relative_to(ROOT) if record_file.is_relative_to(ROOT) else record_file
    if not record.get("settings"):
        return [f"{rel} names no settings: the record must say which settings it decided"]
    shipped = resolve_distill_config({"distill": record["preset"]})
    problems = [f"{record['preset']} ships {k}={shipped.get(k)!r}, {rel} records {k}={v!r}"
                for k, v in record["settings"].items() if shipped.get(k) != v]
    screened = sorted({part.split("=")[0] for s in SCREEN for part in s.split(";")} - set(record["settings"]))
    problems += [f"tune_ikd.py screens {k}, which {rel} does not pin" for k in screened]
    return problems


def preset_row_mismatches(results: Path = RESULTS, archive: Path = ARCHIVE) -> list[str]:
    """One line per report row named after a shipped preset whose runs ran other settings than the preset holds."""
    from ikd_yolo.config import preset_names, split_distill_args
    from ikd_yolo.evidence.bench import distill_config, method_args, run_settings
    from ikd_yolo.evidence.runs import config_hash

    problems = []
    for file in sorted(results.rglob("summary.json")):
        if file.is_relative_to(archive):
            continue
        summary = json.loads(file.read_text())
        s = {"trust_checkpoints": False, **summary["settings"]}
        rel = file.relative_to(results.parent.parent) if file.is_relative_to(results.parent.parent) else file
        for label in summary["methods"]:
            if label not in preset_names():
                continue
            for run in (r for r in summary["runs"] if r["method"] == label):
                train_args = split_distill_args({**method_args(label, s), "seed": run["seed"]})[1]
                key = config_hash(run_settings(label, train_args, distill_config(label, s), summary["data"],
                                               s["student"], summary["teacher"], summary["area_scale"]))
                if key != run.get("settings_hash"):
                    problems.append(f"{rel}: row '{label}' seed {run['seed']} ran other settings than the preset "
                                    f"{label} holds now: name the variant in brackets, or run it again")
    return problems


def machine_paths(folders: tuple[Path, ...] = (RESULTS, ROOT / "docs"), files: tuple[Path, ...] = (
        ROOT / "README.md", ROOT / "CHANGELOG.md")) -> list[str]:
    """One line per committed result or doc that names a machine's folder."""
    found = []
    texts = [f for folder in folders for f in sorted(folder.rglob("*")) if f.suffix in TEXT] + list(files)
    for f in texts:
        for n, line in enumerate(f.read_text(errors="replace").splitlines(), 1):
            if m := MACHINE_PATH.search(line):
                rel = f.relative_to(ROOT) if f.is_relative_to(ROOT) else f
                found.append(f"{rel}:{n} names a machine's folder ({m.group(1)[:60]}): write it repo-relative, "
                             "<cache>/... or <project>/...")
                break  # one line per file is enough to find it
    return found


def mismatches() -> list[str]:
    """Every problem the checks find; empty when the results and the code agree."""
    with in_folder(ROOT):
        return tuning_mismatches() + preset_row_mismatches() + machine_paths()


def main() -> int:
    problems = mismatches()
    for line in problems:
        print(f"check_results: {line}", file=sys.stderr)
    if not problems:
        print("check_results: every preset row ran the preset as it ships, no result names a machine's folder, and the "
              f"shipped presets match {RECORD.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
