"""Several training runs at once (`bench-distill jobs=N`): one process each, with its share of the CPU threads.

Ultralytics trains on one thread on a 2-core machine and gives a run no more; N processes with cores // N threads
each fill the machine (on a GPU, N small students share the device).

Examples:
    >>> with Jobs(2) as jobs:  # two trainings  # doctest: +SKIP
    ...     plain, distilled = jobs.submit(train_plain_student), jobs.submit(train_distilled_student)
    ...     results = plain.result(), distilled.result()
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from concurrent.futures import Executor, Future, ProcessPoolExecutor
from contextlib import contextmanager, redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Callable, Iterator


def cpu_threads(jobs: int) -> int:
    """Torch threads for each of `jobs` processes sharing this machine's cores."""
    return max(1, (os.cpu_count() or 1) // max(jobs, 1))


def set_threads(threads: int) -> None:
    """Use `threads` torch threads in this process (Ultralytics' device selection would reset it to its own)."""
    import torch

    torch.set_num_threads(threads)


def _call_with_threads(threads: int, fn: Callable[..., Any], args: tuple, kwargs: dict, log: Path | None = None) -> Any:
    set_threads(threads)
    if log is None:
        return fn(*args, **kwargs)
    with output_to(log):
        return fn(*args, **kwargs)


@contextmanager
def output_to(log: Path) -> Iterator[None]:
    """Send this process's output to the file `log`, appended, until the block ends: file descriptors 1 and 2 (so
    Ultralytics' logger and progress bars, which hold the original streams, too) and sys.stdout / sys.stderr."""
    log.parent.mkdir(parents=True, exist_ok=True)
    sys.stdout.flush()
    sys.stderr.flush()
    saved = os.dup(1), os.dup(2)
    with open(log, "ab") as f, open(f.fileno(), "w", buffering=1, closefd=False) as text:
        os.dup2(f.fileno(), 1)
        os.dup2(f.fileno(), 2)
        try:
            with redirect_stdout(text), redirect_stderr(text):  # where sys.stdout is not fd 1 (a notebook, pytest)
                yield
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os.dup2(saved[0], 1)
            os.dup2(saved[1], 2)
            os.close(saved[0])
            os.close(saved[1])


def _die_with_parent(parent: int) -> None:
    """A worker's initializer: on Linux, end this worker when the process that started it ends (killed or not), so
    a stopped benchmark leaves no orphan training into its run folders. Elsewhere a no-op."""
    if not sys.platform.startswith("linux"):
        return
    import ctypes
    import signal

    pr_set_pdeathsig = 1
    ctypes.CDLL(None, use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)
    if os.getppid() != parent:  # the parent ended before the line above took effect
        os._exit(1)


class Jobs:
    """Run callables in `n` worker processes (spawned: CUDA and torch threads start clean), or here when n is 1.

    Every call gets `cpu_threads(n)` torch threads; `threads` tells the callable how many, so it can hold them
    against Ultralytics (see `runs.keep_threads`).
    """

    def __init__(self, n: int) -> None:
        self.n = max(int(n), 1)
        self.threads = cpu_threads(self.n)
        self._pool: Executor | None = None

    def __enter__(self) -> Jobs:
        if self.n > 1:
            self._pool = ProcessPoolExecutor(self.n, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_die_with_parent, initargs=(os.getpid(),))
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=exc[0] is not None)

    def submit(self, fn: Callable[..., Any], *args: Any, threads: int | None = None, log: Path | None = None,
               **kwargs: Any) -> Future:
        """Start `fn(*args, threads=..., **kwargs)`, with this pool's share of threads unless `threads` is given; its
        Future (already done when n is 1). With `log`, a worker's output goes to that file (runs at once would
        interleave their progress bars on one terminal); a call made here keeps the terminal."""
        threads = threads or self.threads
        kwargs = {**kwargs, "threads": threads}
        if self._pool is not None:
            return self._pool.submit(_call_with_threads, threads, fn, args, kwargs, log)
        done: Future = Future()
        try:
            done.set_result(_call_with_threads(threads, fn, args, kwargs))
        except BaseException as e:  # noqa: BLE001  (handed to the caller through the future, as a pool would)
            done.set_exception(e)
        return done
