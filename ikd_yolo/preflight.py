"""Everything an IKD run is checked for before Ultralytics prints, downloads or creates anything.

`preflight` resolves the distillation settings (or, on resume, the checkpoint's), checks the student, reads the
dataset, and loads and checks the teacher against both. A refused start therefore leaves no run folder behind and
prints one line (through the CLI) instead of a banner, an argument dump and a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER

from .config import resolve_distill_config, restore_saved_config
from .inputs import InputError, check_student, checkpoint_model, load_data, read_checkpoint, wrapped_student
from .teacher import check_compatible, check_teacher_path, load_teacher

STATE_ATTR = "ikd_state"  # attribute of a saved student holding what resume needs (plain dict of tensors)


def preflight(overrides: dict[str, Any], explicit: dict[str, Any]) -> tuple[dict[str, Any], DetectionModel]:
    """(validated distillation settings, loaded and checked teacher) for a trainer's Ultralytics `overrides` and
    distillation keys `explicit`; raises a one-line InputError / DistillConfigError otherwise."""
    check_device(overrides.get("device"))
    resume = overrides.get("resume")
    if resume:
        path = resume_checkpoint(resume)
        ckpt = read_checkpoint(path, "resume", InputError)
        distill = saved_distill_config(ckpt, path, explicit)
        train_args = ckpt.get("train_args") or {}
        data_arg, single_cls = overrides.get("data") or train_args.get("data"), bool(train_args.get("single_cls"))
        student = checkpoint_model(ckpt)
    else:
        distill = resolve_distill_config(explicit)
        check_teacher_path(distill["teacher"])  # the cheapest check first: before the data is read
        student = check_student(overrides.get("model"))
        data_arg, single_cls = overrides.get("data"), bool(overrides.get("single_cls"))
    data = load_data(data_arg)
    nc, names = (1, None) if single_cls else (data["nc"], data["names"])
    teacher = load_teacher(distill["teacher"], nc=nc, names=names, channels=data.get("channels", 3),
                           single_cls=single_cls)
    if student is not None:
        check_compatible(teacher, wrapped_student(student) or student)
    return distill, teacher


def check_device(device: Any) -> None:
    """Refuse a GPU device when torch sees none (Ultralytics would stop with a multi-line traceback)."""
    import torch

    if device is None or str(device).lower() in {"", "cpu", "mps"} or torch.cuda.is_available():
        return
    raise InputError(f"device={device} asks for a GPU, but torch {torch.__version__} sees none on this machine: "
                     "use device=cpu")


def resume_checkpoint(resume: Any) -> Path:
    """The checkpoint a resume reads: the path given, else the newest last*.pt below the working folder (as Ultralytics)."""
    from ultralytics.utils.files import get_latest_run

    if isinstance(resume, (str, Path)) and Path(resume).exists():
        return Path(resume)
    latest = get_latest_run()
    if not latest:
        raise InputError("nothing to resume: pass the checkpoint, e.g. ikd-yolo train resume model=runs/detect/train/"
                         "weights/last.pt")
    return Path(latest)


def saved_distill_config(ckpt: dict[str, Any], path: Path, explicit: dict[str, Any]) -> dict[str, Any]:
    """On resume the checkpoint's settings win, as Ultralytics does for its own keys; only `teacher` may move."""
    state = getattr(ckpt.get("ema"), STATE_ATTR, None)
    if state is None:
        if ckpt.get("epoch", -1) == -1:  # final_eval strips the optimizer and the ikd-yolo state of finished runs
            raise InputError(f"'{path}' is a finished run, there is nothing to resume: to train further, start a new "
                             f"run from its weights, e.g. ikd-yolo train model={path} teacher=... data=... epochs=N")
        raise InputError(f"'{path}' holds no ikd-yolo state: resume runs started with ikd-yolo, "
                         "or resume this one with 'yolo train resume'")
    distill = restore_saved_config(state["config"], f"'{path}'")
    ignored = [k for k, v in explicit.items() if k != "teacher" and v != distill.get(k)]
    if ignored:
        LOGGER.warning(f"Resume ignores {ignored}, using checkpoint values. Start a new run to change them.")
    if explicit.get("teacher"):
        distill["teacher"] = str(explicit["teacher"])
    return distill
