"""Paths as the evidence records them: the same on every machine, so a committed result names no machine's folders
and a run's reuse key does not change when the checkout or the cache moves.

    inside the working folder   relative to it          benchmarks/results/quick27/teacher-yolo11s.pt
    inside the cache folder     "<cache>/..."           <cache>/bench-data/synthetic-800-300-96px-c0-m8/data.yaml
    inside the runs' project    "<project>/..."         <project>/quick27/ikd-score-s0/weights/best.pt
    anywhere else               absolute, as given      (the cache folder: IKD_YOLO_CACHE, else ~/.cache/ikd-yolo)

Examples:
    >>> from pathlib import Path
    >>> portable(Path.cwd() / "benchmarks" / "t.pt")
    'benchmarks/t.pt'
    >>> portable("/runs/x/quick/none-s0/weights/best.pt", project="/runs/x")
    '<project>/quick/none-s0/weights/best.pt'
    >>> str(local("<project>/quick/none-s0", project="/runs/x"))
    '/runs/x/quick/none-s0'
"""

from __future__ import annotations

from pathlib import Path

from ..cache import cache_dir

CACHE, PROJECT = "<cache>", "<project>"


def portable(path: str | Path | None, project: str | Path | None = None) -> str | None:
    """`path` as the evidence records it (see the module's table); None, and a path it wrote, stay as they are."""
    if path is None or str(path).startswith((f"{CACHE}/", f"{PROJECT}/")):
        return None if path is None else str(path)
    p = Path(path).resolve()
    anchors = [(Path.cwd().resolve(), None), (cache_dir(), CACHE)]
    if project is not None:
        anchors.insert(0, (Path(project).resolve(), PROJECT))
    for folder, name in anchors:
        if p.is_relative_to(folder):
            rest = p.relative_to(folder).as_posix()
            return rest if name is None else f"{name}/{rest}"
    return str(p)


def local(text: str | Path, project: str | Path | None = None) -> Path:
    """The path on this machine that `portable` wrote as `text`."""
    text = str(text)
    for name, folder in ((CACHE, cache_dir), (PROJECT, lambda: Path(project))):
        if text == name or text.startswith(f"{name}/"):
            return folder() / text[len(name) + 1:]
    return Path(text)
