"""Where ikd-yolo keeps what it makes once and reuses (synthetic datasets, trained teachers, adversarial images), and
whether a folder it is to write into can be written."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import InputError

ENV = "IKD_YOLO_CACHE"


def cache_dir(writable: bool = False) -> Path:
    """The cache folder (IKD_YOLO_CACHE when set and not empty, else ~/.cache/ikd-yolo), made if missing; one line
    when it cannot be a folder, or (`writable`) when nothing can be written into it."""
    value = os.environ.get(ENV, "").strip()  # empty means unset, never the working folder
    path = Path(value or Path.home() / ".cache" / "ikd-yolo").expanduser().resolve()
    where = f"{ENV}={value}" if value else f"the cache folder {path} (set {ENV} to choose another)"
    try:
        path.mkdir(parents=True, exist_ok=True)
        problem = unwritable(path) if writable else None
        what = f"cannot be written ({problem})" if problem else None
    except OSError as e:
        what = {FileExistsError: "is a file, not a folder", NotADirectoryError: "lies under a file, not a folder"}.get(
            type(e), f"cannot be made ({e.strerror})")
    if what:
        raise InputError(f"{where} {what}: ikd-yolo keeps its datasets, teachers and adversarial images there; "
                         f"set {ENV} to a writable folder")
    return path


def unwritable(folder: Path) -> str | None:
    """Why files cannot be written into `folder` (made when missing), or None: the nearest folder that exists is tried
    with a temporary file, gone again at once."""
    import tempfile

    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        return f"{existing} is a file, not a folder"
    try:
        with tempfile.TemporaryFile(dir=existing):
            return None
    except OSError as e:
        return e.strerror or type(e).__name__
