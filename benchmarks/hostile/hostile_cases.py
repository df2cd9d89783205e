#!/usr/bin/env python
"""Hostile inputs tried beyond the test suite, as a user or an attacker would type them: each through `ikd-yolo`'s
entry point in one process, printing its exit code and last stderr line, then whether a pickled payload ran.

    python benchmarks/hostile/hostile_cases.py            # about 2 minutes on 2 CPU cores (trains a 1-epoch teacher)

Every case is expected to stop with exit code 2 and one line before any work; the last line must say the marker file
(written by the payload of `evil.pt` if it is ever unpickled) does not exist.
"""

from __future__ import annotations

import contextlib
import io
import os
import sys
import tempfile
import zipfile
from pathlib import Path


class Payload:
    """Pickled inside a checkpoint: unpickling it runs `touch <marker>`."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return os.system, (f"touch {self.marker}",)


def make_inputs(root: Path) -> dict[str, Path]:
    """A tiny dataset, a 1-epoch teacher and the hostile files, under `root`."""
    import torch
    from ultralytics import YOLO
    from ultralytics.nn.tasks import DetectionModel

    from ikd_yolo.data import make_synthetic_dataset

    data = make_synthetic_dataset(root / "data", n_train=16, n_val=8, imgsz=64, seed=0)
    YOLO("yolo11n.yaml").train(data=str(data), epochs=1, imgsz=64, batch=8, workers=0, device="cpu", plots=False,
                               val=False, project=str(root), name="t", exist_ok=True, verbose=False)
    files = {"data": data, "teacher": root / "t" / "weights" / "last.pt", "marker": root / "PWNED"}
    model = DetectionModel("yolo11n.yaml", nc=8, verbose=False)
    torch.save({"model": model, "x": Payload(files["marker"])}, root / "evil.pt")
    (root / "empty.pt").write_bytes(b"")
    torch.save(torch.zeros(3), root / "tensor.pt")
    with zipfile.ZipFile(root / "badzip.pt", "w") as z:
        z.writestr("archive/data.pkl", b"\x80\x02garbage")
    (root / "dir with space").mkdir()
    (root / "loop.yaml").write_text("extends: loop.yaml\n")
    (root / "list.yaml").write_text("- a\n- b\n")
    return files


def cases(root: Path, f: dict[str, Path]) -> list[list[str]]:
    """The command lines tried (train runs get epochs=1, in case one is wrongly accepted)."""
    d, t, evil = f"data={f['data']}", f"teacher={f['teacher']}", root / "evil.pt"
    return [
        ["train", f"teacher={evil}", d],
        ["train", t, f"model={evil}", d],
        ["train", "resume", f"model={evil}"],
        ["attack", f"teacher={evil}", d, "imgsz=64"],
        ["bench-distill", f"teacher={evil}", d, "methods=fgd", "seeds=1", "epochs=1", "imgsz=64", f"out={root}/o",
         f"project={root}/p"],
        ["val", f"model={evil}", d],
        ["predict", f"model={evil}", f"source={root}"],
        ["train", f"teacher={root / 'empty.pt'}", d],
        ["train", f"teacher={root / 'tensor.pt'}", d],
        ["train", f"teacher={root / 'badzip.pt'}", d],
        ["train", f"teacher={root / 'dir with space'}", d],
        ["train", t, d, f"distill={root / 'loop.yaml'}"],
        ["train", t, d, f"distill={root / 'list.yaml'}"],
        ["train", t, d, "trust_checkpoints=maybe"],
        ["train", t, "data=/etc/passwd"],
        ["train", t, f"data={root}"],
        ["train", "resume", f"model={f['teacher']}"],
        ["train", t, d, "kd_loss=score", "score_temp=0"],
        ["train", t, d, "distill=score", "adv_distill=heads"],
        ["train", t, d, "distill=score", "score_cls=-1"],
        ["train", t, d, f"project={root}", "name=t", "exist_ok=True"],
        ["show-aug", f"data={root}", "distill=ikd-fgd-full"],
        ["bench-distill", "seeds=[1,1]"],
        ["bench-distill", "methods=score[score_cls=x]", "seeds=1"],
    ]


def run(words: list[str]) -> tuple[str, str]:
    """(exit code or what escaped, the last stderr line) of `ikd-yolo <words>`."""
    from ikd_yolo.cli import main

    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            code = str(main(words))
        except BaseException as e:  # noqa: BLE001  (what a user would see as a traceback)
            code = f"TRACEBACK {type(e).__name__}"
    lines = [line for line in err.getvalue().splitlines() if line.strip()]
    return code, lines[-1] if lines else ""


def main() -> int:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        files = make_inputs(root)
        os.chdir(root)
        bad = 0
        for words in cases(root, files):
            if words[0] == "train" and not any(w.startswith("epochs=") for w in words):
                words = [*words, "epochs=1"]
            code, line = run(words)
            bad += code != "2"
            print(f"{code} | ikd-yolo {' '.join(words).replace(str(root), '~')} | {line.replace(str(root), '~')}")
        ran = files["marker"].exists()
        print(f"payload ran: {ran}; cases not refused with exit 2: {bad}")
        return int(ran or bad > 0)


if __name__ == "__main__":
    sys.exit(main())
