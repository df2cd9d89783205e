"""One progress line for runs trained at once, whose own output goes to log files.

Two Ultralytics trainings on one terminal interleave their progress bars line by line; with `jobs=N` each run writes
to `<project>/<name>/logs/<run>.log` instead, and this module prints, whenever it changes, one line with every
running run's epoch (read from its results.csv) and how many runs are done.

Examples:
    >>> progress_line({"none-s0": 7, "ultralytics_epochs_21_-s0": 3}, {"none-s0": 15, "ultralytics_epochs_21_-s0": 21},
    ...               done=1, total=4)
    'bench-distill: none-s0 epoch 7/15 · ultralytics_epochs_21_-s0 epoch 3/21 · 1/4 runs done'
"""

from __future__ import annotations

import time
from concurrent.futures import FIRST_COMPLETED, Future, wait
from pathlib import Path

from ultralytics.utils import LOGGER

POLL_SECONDS = 20.0


def epochs_done(run_dir: Path) -> int:
    """Completed epochs of an Ultralytics run, from its results.csv (0 before the first epoch ends)."""
    try:
        lines = (run_dir / "results.csv").read_text().splitlines()
    except OSError:
        return 0
    return sum(1 for line in lines[1:] if line.strip())


def progress_line(epochs_by_run: dict[str, int], epochs: dict[str, int], done: int, total: int) -> str:
    """The line printed for runs that have started and not finished (each with its epochs of `epochs`), with the
    count of finished runs."""
    running = [f"{run} epoch {epoch}/{epochs[run]}" for run, epoch in epochs_by_run.items()]
    return "bench-distill: " + " · ".join([*running, f"{done}/{total} runs done"])


def watch(futures: dict[str, Future], run_root: Path, logs: dict[str, Path], epochs: dict[str, int],
          poll: float = POLL_SECONDS) -> None:
    """Print a progress line whenever a run's epoch or the count of finished runs changes, until all are done.

    `futures` maps each run's folder name under `run_root` to its Future, `logs` to its log file, `epochs` to the
    epochs it trains (a method may set its own); a run counts as
    started once its worker has written to that log since this call (a pool queues calls before it runs them)."""
    start, last = time.time(), ""
    while True:
        finished = [f for f in futures.values() if f.done()]
        started = {run: epochs_done(run_root / run) for run, f in futures.items()
                   if not f.done() and _written_since(logs[run], start)}
        line = progress_line(started, epochs, len(finished), len(futures))
        if line != last:
            LOGGER.info(line)
            last = line
        if len(finished) == len(futures):
            return
        wait([f for f in futures.values() if not f.done()], timeout=poll, return_when=FIRST_COMPLETED)


def _written_since(file: Path, since: float) -> bool:
    try:
        return file.stat().st_mtime >= since
    except OSError:
        return False
