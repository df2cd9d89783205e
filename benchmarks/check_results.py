#!/usr/bin/env python
"""Results bookkeeping: what ships is what the recorded results decided. Exits 1 naming each mismatch.

Checks benchmarks/results/tuning/defaults.json (the tuning record) against the code:
    - the preset it names resolves to exactly the settings it records (an edited preset or record is a mismatch);
    - every setting benchmarks/tune_ikd.py screens is one the record pins (else its default could drift from what
      the screen measured).

    python benchmarks/check_results.py
Run it after a tuning run or an edit of a preset or of the record.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
RECORD = ROOT / "benchmarks" / "results" / "tuning" / "defaults.json"
sys.path.insert(0, str(ROOT))


def mismatches() -> list[str]:
    """One line per way the shipped settings and the tuning record disagree; empty when they agree."""
    from ikd_yolo.config import resolve_distill_config

    sys.path.insert(0, str(ROOT / "benchmarks"))
    from tune_ikd import SCREEN

    record = json.loads(RECORD.read_text())
    rel = RECORD.relative_to(ROOT)
    if not record.get("settings"):
        return [f"{rel} names no settings: the record must say which settings it decided"]
    shipped = resolve_distill_config({"distill": record["preset"]})
    problems = [f"{record['preset']} ships {k}={shipped.get(k)!r}, {rel} records {k}={v!r}"
                for k, v in record["settings"].items() if shipped.get(k) != v]
    screened = sorted({part.split("=")[0] for s in SCREEN for part in s.split(";")} - set(record["settings"]))
    problems += [f"tune_ikd.py screens {k}, which {rel} does not pin" for k in screened]
    return problems


def main() -> int:
    problems = mismatches()
    for line in problems:
        print(f"check_results: {line}", file=sys.stderr)
    if not problems:
        print(f"check_results: the shipped presets match {RECORD.relative_to(ROOT)}")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
