"""The `.pt` files ikd-yolo reads and writes: one reader that runs no code from a file, atomic writes, and the resume
state a saved student carries.

Reading: a checkpoint is a pickle, and a pickle can run any code while it is loaded. `load_pt` therefore rebuilds
only what an Ultralytics detection checkpoint is made of (torch and Ultralytics model layers, ikd-yolo's own modules,
tensors, numpy scalars, plain containers) with `torch.load(weights_only=True)`, and refuses anything else in one line
naming the type. Model classes may only be created the way `torch.save` writes them (allocated, then their attributes
set), never called: calling `DetectionModel(cfg)` with a crafted cfg would evaluate code. `trust_checkpoints=True`
loads a file the user trusts as plain `torch.load` does, unless Ultralytics' `ULTRALYTICS_SAFE_LOAD` asks every load
of the process to stay restricted.

Writing: `staged_writes` lets a writer (Ultralytics' `save_model`, its optimizer stripping) write complete files into
a hidden folder beside the targets and then renames them over the targets, so a full disk or a kill mid-write leaves
the previous `last.pt` / `best.pt` intact.

Resume state: the student a run saves carries the distiller's weights and the settings as a plain dict under the
attribute `STATE_ATTR` (`attach_state`, `read_state`, `strip_state`).
"""

from __future__ import annotations

import _compat_pickle
import errno
import io
import os
import pickle
import pickletools
import shutil
import uuid
import zipfile
from contextlib import contextmanager
from functools import lru_cache
from pathlib import Path
from typing import Any, Iterator

import torch
from torch import nn

from .errors import InputError
from .file_values import TRUST_KEY

__all__ = ["STATE_ATTR", "TRUST_KEY", "UntrustedCheckpoint", "atomic_save", "atomic_strip_optimizer", "attach_state",
           "load_pt", "read_state", "remove_state", "staged_writes", "strip_state"]

STATE_ATTR = "ikd_state"  # attribute of a saved student holding what resume needs (plain dict of tensors)

# Packages whose nn.Module classes a checkpoint may hold (the classes are created without their __init__)
MODULE_PACKAGES = ("torch.nn.modules.", "ultralytics.nn.modules.", "ultralytics.nn.tasks",
                   "ultralytics.nn.distill_model", "ikd_yolo.")
# Modules whose plain classes a checkpoint may hold (a loss criterion left on a saved model, the feature hooks and
# stream records of a saved DistillationModel or IKDModel)
CLASS_MODULES = ("ultralytics.utils.loss", "ultralytics.utils.tal", "ultralytics.nn.distill_model", "ikd_yolo.hooks",
                 "ikd_yolo.streams")
# Modules whose nn.Module classes a checkpoint may hold beyond torch's and Ultralytics' own: ikd-yolo's training
# wrapper (someone saved trainer.model). Named, not imported here: they are imported when a checkpoint is read.
WRAPPER_MODULES = ("ikd_yolo.model",)


class UntrustedCheckpoint(InputError):
    """A checkpoint holds something that loading it would have to run or rebuild outside the allow-list."""


# ---- reading --------------------------------------------------------------------------------------------------------
def load_pt(path: str | Path, trust: bool = False, key: str | None = None) -> Any:
    """The object a `torch.save` file holds, rebuilt from allow-listed types only unless `trust` (and Ultralytics'
    ULTRALYTICS_SAFE_LOAD is not set); raises UntrustedCheckpoint naming `key=path` and the type otherwise."""
    path = Path(path)
    if trust and not safe_load_forced():
        return torch.load(path, map_location="cpu", weights_only=False)
    where = f"{key}={path}" if key else f"'{path}'"
    pkl = _pickle_bytes(path)
    allowed = allowed_globals()
    if pkl is not None:
        needed, called = _scan(pkl)
        unknown = sorted(n for n in needed if n not in allowed and n not in _torch_default_globals())
        if unknown:
            raise UntrustedCheckpoint(refusal(where, _foreign(unknown[0]), trust))
        if called := sorted(called & set(model_classes())):
            what = f"call {called[0]} with arguments from the file, where a model class may only be rebuilt"
            raise UntrustedCheckpoint(refusal(where, what, trust))
        entries = [(allowed[n], n) for n in needed if n in allowed] + _dtype_classes()
    else:  # not a zip archive (pre-1.6 torch format, or not a checkpoint): torch's own types only
        entries = [(obj, name) for name, obj in data_globals().items()] + _dtype_classes()
    try:
        with torch.serialization.safe_globals(entries):
            return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        name = _refused_name(str(e))
        if name is None or pkl is None:  # a damaged file, or bytes that only look like a pickle: not a refusal
            raise
        raise UntrustedCheckpoint(refusal(where, _foreign(name), trust)) from None


def refusal(where: str, what: str, trust: bool) -> str:
    """The one line that refuses `where` (e.g. 'teacher=a.pt') because loading it would do `what`."""
    if trust:  # trust_checkpoints=True was given but Ultralytics' process-wide switch forbids it
        fix = "ULTRALYTICS_SAFE_LOAD is set, which trust_checkpoints=True does not override: unset it to load this file"
    else:
        fix = f"if you trust this file, pass {TRUST_KEY}=True"
    return f"{where} is refused: loading it would {what} (a pickle can run code while it loads); {fix}"


def _foreign(name: str) -> str:
    return f"unpickle {name}, which is not a type of an Ultralytics / torch model checkpoint"


def safe_load_forced() -> bool:
    """True when Ultralytics' ULTRALYTICS_SAFE_LOAD asks for restricted loading in this process."""
    from ultralytics.utils import SAFE_LOAD

    return bool(SAFE_LOAD)


@lru_cache(maxsize=1)
def model_classes() -> dict[str, type]:
    """{pickled name: class} of the nn.Module classes a checkpoint may hold: torch's layers, Ultralytics' layers and
    models, ikd-yolo's modules (found from nn.Module's subclasses once those packages are imported)."""
    import ultralytics.nn.distill_model  # noqa: F401  (import so their classes are registered as subclasses)
    import ultralytics.nn.tasks  # noqa: F401

    for name in WRAPPER_MODULES:
        __import__(name)
    found, todo = {}, [nn.Module]
    while todo:
        cls = todo.pop()
        todo.extend(cls.__subclasses__())
        if cls.__module__.startswith(MODULE_PACKAGES) and "<locals>" not in cls.__qualname__:
            found[f"{cls.__module__}.{cls.__qualname__}"] = cls
    for name in CLASS_MODULES:
        module = __import__(name, fromlist=["_"])
        found.update({f"{name}.{k}": v for k, v in vars(module).items()
                      if isinstance(v, type) and v.__module__ == name})
    found.update(_legacy_classes())
    return found


def _legacy_classes() -> dict[str, type]:
    """Names older Ultralytics checkpoints pickled for classes that now live elsewhere."""
    from ultralytics.nn.tasks import DetectionModel
    from ultralytics.utils.loss import E2EDetectLoss

    return {"ultralytics.nn.modules.block.Silence": nn.Identity,  # YOLOv9e
            "ultralytics.nn.tasks.YOLOv10DetectionModel": DetectionModel,
            "ultralytics.utils.loss.v10DetectLoss": E2EDetectLoss}


@lru_cache(maxsize=1)
def data_globals() -> dict[str, Any]:
    """{pickled name: object} of the non-model types a checkpoint's metadata uses; these may be called when loading
    (numpy scalars, dtypes, paths, Ultralytics' argument namespace), and calling them runs no user code."""
    import numpy as np
    from ultralytics.utils import IterableSimpleNamespace

    scalar = np.float64(0).__reduce__()[0]  # numpy's scalar rebuilder, pickled under numpy.core or numpy._core
    path = type(Path())
    return {
        "numpy.core.multiarray.scalar": scalar, "numpy._core.multiarray.scalar": scalar, "numpy.dtype": np.dtype,
        "ultralytics.utils.IterableSimpleNamespace": IterableSimpleNamespace,
        "ultralytics.yolo.utils.IterableSimpleNamespace": IterableSimpleNamespace,  # before Ultralytics 8.0.44
        **{f"{m}.{c}": path for m in ("pathlib", "pathlib._local") for c in ("PosixPath", "WindowsPath")},
    }


def allowed_globals() -> dict[str, Any]:
    """Every name a checkpoint may reference beyond torch's own weights-only set."""
    return {**model_classes(), **data_globals()}


def _dtype_classes() -> list[type]:
    """numpy's per-dtype classes (numpy.dtypes.Float64DType, ...): a dtype is rebuilt as one, but the pickle never
    names it, so no scan finds it."""
    import numpy.dtypes

    return [v for v in vars(numpy.dtypes).values() if isinstance(v, type) and v.__name__.endswith("DType")]


@lru_cache(maxsize=1)
def _torch_default_globals() -> frozenset[str]:
    """The names torch's weights-only unpickler allows by itself (tensor rebuilders, dtypes, OrderedDict, ...)."""
    from torch import _weights_only_unpickler

    return frozenset(_weights_only_unpickler._get_allowed_globals())


def _pickle_bytes(path: Path) -> bytes | None:
    """The main pickle of a `torch.save` zip archive, or None when the file is not one."""
    try:
        with zipfile.ZipFile(path) as archive:
            name = next((n for n in archive.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")), None)
            return archive.read(name) if name else None
    except (zipfile.BadZipFile, OSError):
        return None


class _Global(str):
    """A global's name on the simulated pickle stack."""


_MARK = object()


def _scan(pkl: bytes) -> tuple[set[str], set[str]]:
    """(every global a pickle references, those it calls with REDUCE / OBJ / INST rather than only allocates with
    NEWOBJ), found by following the pickle machine's stack without building anything."""
    stack: list[Any] = []
    memo: dict[Any, Any] = {}
    seen: set[str] = set()
    called: set[str] = set()

    def pop_to_mark() -> list[Any]:
        items = []
        while stack and stack[-1] is not _MARK:
            items.append(stack.pop())
        if stack:
            stack.pop()
        return items[::-1]

    for op, arg, _ in pickletools.genops(io.BytesIO(pkl)):
        name = op.name
        if name == "MARK":
            stack.append(_MARK)
        elif name in {"GLOBAL", "STACK_GLOBAL"}:
            module, attr = arg.split(" ", 1) if name == "GLOBAL" else reversed((stack.pop(), stack.pop()))
            found = _Global(_python3_name(module, attr))
            seen.add(found)
            stack.append(found)
        elif name in {"PUT", "BINPUT", "LONG_BINPUT"}:
            memo[arg] = stack[-1]
        elif name == "MEMOIZE":
            memo[len(memo)] = stack[-1]
        elif name in {"GET", "BINGET", "LONG_BINGET"}:
            stack.append(memo.get(arg))
        elif name == "REDUCE":
            stack.pop()
            func = stack.pop()
            called.add(func if isinstance(func, _Global) else "?")
            stack.append(None)
        elif name == "INST":
            pop_to_mark()
            seen.add(_python3_name(*arg.split(" ", 1)))
            called.add(_python3_name(*arg.split(" ", 1)))
            stack.append(None)
        elif name == "OBJ":
            items = pop_to_mark()
            called.add(items[0] if items and isinstance(items[0], _Global) else "?")
            stack.append(None)
        else:  # every other opcode: only its stack effect matters
            before, after = op.stack_before, op.stack_after
            if pickletools.markobject in before:
                pop_to_mark()
                del stack[len(stack) - before.index(pickletools.markobject):]
            else:
                del stack[len(stack) - len(before):]
            stack.extend([arg if isinstance(arg, str) else None] * len(after))
    return {str(n) for n in seen}, {str(n) for n in called}


def _python3_name(module: str, attr: str) -> str:
    """'module.attr' as Python 3 (and torch's loader) resolves it: protocol-2 pickles use Python 2 names."""
    if (module, attr) in _compat_pickle.NAME_MAPPING:
        module, attr = _compat_pickle.NAME_MAPPING[(module, attr)]
    return f"{_compat_pickle.IMPORT_MAPPING.get(module, module)}.{attr}"


def _refused_name(message: str) -> str | None:
    """The type named by torch's weights-only refusal, e.g. 'posix.system' from 'GLOBAL posix.system was not ...';
    None when the message is not such a refusal."""
    for marker in ("Unsupported global: GLOBAL ", "unsupported GLOBAL ", "unrecognized function ", "but got "):
        if marker in message:
            return message.split(marker, 1)[1].split()[0].strip("<>'\",.")
    return None


# ---- resume state on a saved student -------------------------------------------------------------------------------
def attach_state(student: nn.Module, config: dict[str, Any], distiller: nn.Module) -> None:
    """Put what resume needs on the student about to be saved: the settings and the distiller's weights (CPU copies)."""
    setattr(student, STATE_ATTR, {
        "config": dict(config),
        "distiller": {k: v.detach().cpu().clone() for k, v in distiller.state_dict().items()},
    })


def remove_state(model: nn.Module | None) -> bool:
    """Take the resume state off `model`; True when it had one."""
    return model is not None and model.__dict__.pop(STATE_ATTR, None) is not None


def read_state(ckpt: dict[str, Any]) -> dict[str, Any] | None:
    """The resume state of a checkpoint dict (on its EMA student), or None for a checkpoint ikd-yolo did not write
    mid-run (a finished run's, or a plain Ultralytics one)."""
    return getattr(ckpt.get("ema"), STATE_ATTR, None)


def strip_state(ckpt: dict[str, Any]) -> bool:
    """Take the resume state off every model of a checkpoint dict; True when there was one."""
    removed = [remove_state(ckpt.get(k)) for k in ("ema", "model") if isinstance(ckpt.get(k), nn.Module)]
    return any(removed)


# ---- atomic writes --------------------------------------------------------------------------------------------------
@contextmanager
def staged_writes(folder: Path) -> Iterator[Path]:
    """A hidden folder inside `folder` to write complete files into; on a clean exit each file there replaces the file
    of the same name in `folder` (one rename each), on an error none does. The folder is unique to this call."""
    folder.mkdir(parents=True, exist_ok=True)
    stage = folder / f".saving-{os.getpid()}-{uuid.uuid4().hex[:8]}"  # hidden: a `last*.pt` search skips it
    stage.mkdir()
    try:
        yield stage
        for f in sorted(stage.iterdir()):
            _fsync(f)
            os.replace(f, folder / f.name)
    finally:
        shutil.rmtree(stage, ignore_errors=True)


def _fsync(path: Path) -> None:
    """Flush a written file to the disk, so the rename never publishes a file whose bytes are not there yet."""
    with open(path, "rb") as f:
        os.fsync(f.fileno())


def atomic_save(obj: Any, path: Path) -> None:
    """`torch.save(obj, path)` that leaves the previous `path` whole if the write fails (a full disk is an OSError
    with its errno: torch.save into a file would say only RuntimeError)."""
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    with staged_writes(path.parent) as stage:
        (stage / path.name).write_bytes(buffer.getvalue())


@contextmanager
def atomic_strip_optimizer() -> Iterator[None]:
    """Make Ultralytics' final optimizer stripping (an in-place torch.save of last.pt / best.pt) write a complete
    file beside the target and rename it over the target."""
    import ultralytics.engine.trainer as engine

    strip = engine.strip_optimizer

    def atomic(f, s: str = "", updates: dict | None = None) -> dict:
        target = Path(s or f)
        with staged_writes(target.parent) as stage:
            try:
                return strip(f, str(stage / target.name), updates=updates)
            except RuntimeError as e:  # its torch.save reports a full disk as a RuntimeError without errno
                if shutil.disk_usage(stage).free >= Path(f).stat().st_size:
                    raise
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC)) from e

    engine.strip_optimizer = atomic  # BaseTrainer.final_eval calls it by this module-level name
    try:
        yield
    finally:
        engine.strip_optimizer = strip
