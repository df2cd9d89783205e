"""Everything an IKD run is checked for before Ultralytics prints, downloads or creates anything.

`preflight` resolves the distillation settings (or, on resume, the checkpoint's), checks the student, reads the
dataset, and loads and checks the teacher against both. A refused start therefore leaves no run folder behind and
prints one line (through the CLI) instead of a banner, an argument dump and a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import nn
from ultralytics.nn.tasks import DetectionModel
from ultralytics.utils import LOGGER

from .checkpoints import STATE_ATTR, TRUST_KEY, read_state
from .cache import cache_dir, unwritable
from .config import (
    DistillConfigError, adversarial_term_on, check_value, keypoints_distilled, resolve_distill_config,
    restore_saved_config, stream_attack, stream_images,
)
from .errors import DataError, StudentError, TeacherError
from .file_values import check_size
from .hooks import detect_head, detect_input_layers
from .inputs import (
    InputError, check_pretrained, check_student, check_task_labels, checkpoint_model, load_data, model_task,
    read_checkpoint, wrapped_student,
)
from .teacher import check_compatible, check_teacher_path, load_teacher

__all__ = ["STATE_ATTR", "check_device", "preflight", "resume_checkpoint", "run_folder"]  # STATE_ATTR: old importers


def preflight(overrides: dict[str, Any], explicit: dict[str, Any]) -> tuple[dict[str, Any], DetectionModel, list[Path]]:
    """(validated distillation settings, loaded and checked teacher, the readable unlabelled images of unlabeled=)
    for a trainer's Ultralytics `overrides` and distillation keys `explicit`; raises a one-line InputError /
    DistillConfigError otherwise."""
    check_device(overrides.get("device"))
    check_train_args(overrides)
    trust = check_value(TRUST_KEY, explicit.get(TRUST_KEY, False))  # needed before any file is read
    resume = overrides.get("resume")
    ckpt = None
    if resume:
        path = resume_checkpoint(resume)
        ckpt = read_checkpoint(path, "resume", InputError, trust)
        distill = saved_distill_config(ckpt, path, explicit)
        train_args = ckpt.get("train_args") or {}
        data_arg, single_cls = overrides.get("data") or train_args.get("data"), bool(train_args.get("single_cls"))
        student = checkpoint_model(ckpt)
        folder = run_folder({**train_args, "save_dir": overrides.get("save_dir") or train_args.get("save_dir"),
                             "resume": True})
    else:
        distill = resolve_distill_config(explicit)
        check_teacher_path(distill["teacher"])  # the cheapest check first: before the data is read
        folder = run_folder(overrides)
        check_not_inside(overrides.get("model"), "model", folder, StudentError)
        student = check_student(overrides.get("model"), trust)
        check_pretrained(overrides.get("pretrained"), trust)
        data_arg, single_cls = overrides.get("data"), bool(overrides.get("single_cls"))
    if problem := unwritable(folder):
        raise InputError(f"the run folder {folder} cannot be written ({problem}): pass project= (and name=) a folder "
                         "you can write")
    if adversarial_term_on(distill) and stream_attack(distill) == "cached":
        cache_dir()  # where the adversarial images are kept: a file in its place is refused before the data is read
    check_not_inside(check_teacher_path(distill["teacher"]), "teacher", folder, TeacherError)
    data = load_data(data_arg)
    nc, names = (1, None) if single_cls else (data["nc"], data["names"])
    teacher = load_teacher(distill["teacher"], nc=nc, names=names, single_cls=single_cls, trust=trust)
    if student is not None:
        check_student_task(wrapped_student(student) or student, overrides.get("task") or "detect", distill)
        check_compatible(teacher, wrapped_student(student) or student)
        check_keypoint_pair(teacher, wrapped_student(student) or student, distill, data)
    if (overrides.get("task") or "detect") == "pose" and "kpt_shape" not in data:
        raise DataError(f"data={data_arg} has no kpt_shape: a pose student needs a keypoint dataset (kpt_shape and "
                        "flip_idx in its YAML; ikd-yolo synth task=pose writes one)")
    check_task_labels(data, data_arg, overrides.get("task") or "detect")
    if ckpt is not None:
        check_saved_teacher_width(read_state(ckpt), student, teacher, distill["teacher"], path)
    return distill, teacher, checked_unlabeled(distill, data, teacher)


def checked_unlabeled(distill: dict[str, Any], data: dict[str, Any], teacher: nn.Module) -> list[Path]:
    """The readable images of unlabeled= (none when the stream reads only the training split), refused in one line
    when empty, unreadable, the training split or sharing an image with the validation split; an obb teacher's
    rotated detections are not labels the attack can take."""
    if stream_images(distill) == "train":
        return []
    from .data.unlabeled import unlabeled_images

    if stream_attack(distill) != "none" and model_task(teacher) == "obb":
        raise TeacherError(f"unlabeled={distill['unlabeled']} with an attack: the attack ascends the teacher's class "
                           "loss on its own detections, which an obb teacher gives as rotated boxes: use "
                           "adv_mode=clean")
    if stream_attack(distill) == "cached":
        raise DistillConfigError(f"unlabeled={distill['unlabeled']} with adv_mode=cached: the cache holds the training "
                                 "split; attack the unlabelled images online (adv_mode=online) or not (adv_mode=clean)")
    return unlabeled_images(distill["unlabeled"], data)


def check_keypoint_pair(teacher: nn.Module, student: nn.Module, distill: dict[str, Any], data: dict[str, Any]) -> None:
    """score_kpt distils a pose head's keypoints: teacher and student must both be pose models, the teacher of the
    data's keypoint layout (the student takes the data's: Ultralytics' pose trainer builds it so)."""
    if not keypoints_distilled(distill):
        return
    tasks = model_task(teacher), model_task(student)
    if tasks != ("pose", "pose"):
        raise StudentError(f"score_kpt={distill['score_kpt']} distils keypoints, but the teacher is a {tasks[0]} and "
                           f"the student a {tasks[1]} model: use pose models for both, or leave score_kpt out")
    theirs, ours = list(detect_head(teacher).kpt_shape), list(data.get("kpt_shape") or [])
    if theirs != ours:
        raise StudentError(f"score_kpt needs one keypoint layout: the teacher's kpt_shape is {theirs}, the data's "
                           f"{ours}")


def check_student_task(student: nn.Module, task: str, distill: dict[str, Any]) -> None:
    """The student's task must be the trainer's (a `.pt` student given to `IKDTrainer` without `task=` runs as
    detect), and freq_mode=paper, which crops images and moves boxes only, trains detection students only."""
    ours = model_task(student)
    if ours != task:
        raise StudentError(f"the student is a {ours} model but this run trains task={task}: pass task={ours} (or "
                           f"trainer=ikd_trainer_for('{ours}'); ikd-yolo train picks it by itself)")
    if task != "detect" and distill.get("freq_mode") == "paper":
        raise StudentError(f"freq_mode=paper crops images and moves their boxes but not the {task} labels (masks, "
                           "keypoints, angles): use freq_mode=spectral or off for this student")


def run_folder(overrides: dict[str, Any]) -> Path:
    """The folder Ultralytics will write this run into (runs/<task>/<name>, numbered unless exist_ok; a resumed run's
    own folder), worked out from the same arguments without creating it."""
    from types import SimpleNamespace

    from ultralytics.cfg import get_save_dir
    from ultralytics.utils import DEFAULT_CFG_DICT

    keys = ("project", "name", "task", "exist_ok", "save_dir")
    args = {k: overrides.get(k, DEFAULT_CFG_DICT.get(k)) for k in keys}
    if not overrides.get("resume"):
        args["save_dir"] = overrides.get("save_dir")  # a new run takes save_dir only from an explicit argument
    return get_save_dir(SimpleNamespace(**args, mode="train"))


def check_not_inside(file: Any, key: str, folder: Path, error: type[InputError]) -> None:
    """Refuse a run whose folder holds the `key=` file it reads: the run would overwrite or mix with it (a student
    project/name pointing at the teacher's run with exist_ok=True replaced the teacher's best.pt)."""
    if not isinstance(file, (str, Path)) or not str(file).endswith(".pt") or not Path(file).is_file():
        return
    if Path(file).resolve().is_relative_to(folder):
        raise error(f"{key}={file} lies inside {folder}, the folder this run would write its weights and results "
                    f"into: pass another project= or name= (or move the {key} checkpoint out)")


def check_saved_teacher_width(state: dict[str, Any], student: nn.Module, teacher: nn.Module, teacher_arg: Any,
                              path: Path) -> None:
    """On resume, the teacher must have the widths the saved distiller was built for (its adapters map the student's
    channels to them); another width would stop the restore with a state-dict size mismatch."""
    from .model import level_channels

    student = wrapped_student(student) or student
    saved = saved_teacher_widths(state["distiller"], level_channels(student, detect_input_layers(student)))
    now = level_channels(teacher, detect_input_layers(teacher))
    if saved != now:
        raise TeacherError(f"teacher={teacher_arg} has level widths {now}, but '{path}' was distilled from a teacher "
                           f"with widths {saved}: resume with that run's teacher (saved as "
                           f"teacher={state['config'].get('teacher')})")


def saved_teacher_widths(distiller: dict[str, Any], student_widths: list[int]) -> list[int]:
    """The teacher width of each level that a saved distiller's adapters map onto: the output channels of the level's
    last convolution (a 1x1 conv, or the second conv of an MLP projector); a level without one (an identity, the
    widths were equal) keeps the student's width."""
    widths = []
    for i, width in enumerate(student_widths):
        convs = [v for k, v in distiller.items() if k.startswith(f"adapters.{i}.") and k.endswith("weight")
                 and v.dim() == 4]  # state-dict order: a projector's layers in the order they run
        widths.append(int(convs[-1].shape[0]) if convs else width)
    return widths


def check_train_args(overrides: dict[str, Any]) -> None:
    """Ultralytics' own checks of its train arguments' types and ranges (epochs=0, lr0=abc), made here so that a
    mistake is one line before the run starts rather than a traceback from inside the trainer."""
    from ultralytics.cfg import get_cfg

    try:
        get_cfg(overrides={k: v for k, v in overrides.items() if k != "save_dir"})
    except (TypeError, ValueError, SyntaxError) as e:
        raise InputError(str(e).strip().splitlines()[0]) from None


def check_device(device: Any) -> None:
    """Refuse a GPU device when torch sees none (Ultralytics would stop with a multi-line traceback)."""
    if device is None or str(device).lower() in {"", "cpu", "mps"} or torch.cuda.is_available():
        return
    raise InputError(f"device={device} asks for a GPU, but torch {torch.__version__} sees none on this machine: "
                     "use device=cpu")


def resume_checkpoint(resume: Any) -> Path:
    """The checkpoint a resume reads: the path given, else the newest last*.pt below the working folder (as
    Ultralytics)."""
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
    state = read_state(ckpt)
    if state is None:
        if ckpt.get("epoch", -1) == -1:  # final_eval strips the optimizer and the ikd-yolo state of finished runs
            raise InputError(f"'{path}' is a finished run, there is nothing to resume: to train further, start a new "
                             f"run from its weights, e.g. ikd-yolo train model={path} teacher=... data=... epochs=N")
        raise InputError(f"'{path}' holds no ikd-yolo state: resume runs started with ikd-yolo, "
                         "or resume this one with 'yolo train resume'")
    if not (isinstance(state, dict) and isinstance(state.get("config"), dict)
            and isinstance(state.get("distiller"), dict)
            and all(isinstance(v, torch.Tensor) for v in state["distiller"].values())):
        raise InputError(f"'{path}' holds a damaged ikd-yolo state (it needs the settings and the distiller's "
                         "tensors): resume from another checkpoint of that run, or start a new run from its weights")
    check_size(state["config"], f"the settings saved in '{path}'", InputError)
    distill = restore_saved_config(state["config"], f"'{path}'")
    ignored = [k for k, v in explicit.items() if k not in {"teacher", TRUST_KEY} and v != distill.get(k)]
    if ignored:
        LOGGER.warning(f"Resume ignores {ignored}, using checkpoint values. Start a new run to change them.")
    if explicit.get("teacher"):
        distill["teacher"] = str(explicit["teacher"])
    distill[TRUST_KEY] = check_value(TRUST_KEY, explicit.get(TRUST_KEY, False))  # this command's, not the saved one
    return distill
