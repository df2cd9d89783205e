"""The files a run names (student `model=`, `teacher=`, `data=`, a checkpoint to resume), found and checked before
Ultralytics prints, downloads or creates anything; each problem is one line that says how to fix it.

Nothing is ever downloaded: a `.pt` name is looked up as given, then in Ultralytics' weights folder (where its own
downloads land), and otherwise refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from .checkpoints import TRUST_KEY, UntrustedCheckpoint, load_pt
from .cache import unwritable
from .errors import DataError, InputError, StudentError, TeacherError
from .file_values import check_size
from .model_yaml import config_problem

__all__ = ["TASKS", "DataError", "InputError", "StudentError", "TeacherError", "check_image_path", "check_pretrained",
           "check_student", "check_task_labels", "checkpoint_model", "detection_problem", "find_weights", "load_data",
           "model_task", "read_checkpoint", "read_model_yaml", "read_yaml_file", "split_images", "task_model_class",
           "wrapped_student"]

# the tasks IKD distils: every Ultralytics task whose head is a YOLO Detect head plus a branch (masks, keypoints,
# angles); classify has no detection head, RT-DETR, YOLO-World and YOLOE are other detector families
TASKS = ("detect", "segment", "pose", "obb")
# the head classes of those tasks, by the name a model YAML gives them
TASK_HEADS = {"Detect": "detect", "v10Detect": "detect", "Segment": "segment", "Segment26": "segment",
              "Pose": "pose", "Pose26": "pose", "OBB": "obb", "OBB26": "obb"}
DETECT_HEADS = {name for name, task in TASK_HEADS.items() if task == "detect"}


def weights_dir() -> Path:
    """Ultralytics' weights folder, where `yolo` looks for a bare `.pt` name."""
    from ultralytics.utils import SETTINGS

    return Path(SETTINGS["weights_dir"])


def find_weights(path: str | Path, key: str, error: type[InputError] = InputError) -> Path:
    """The local `.pt` file that `key=path` names: the path itself or the same name in Ultralytics' weights folder."""
    from ultralytics.utils.downloads import GITHUB_ASSETS_NAMES

    p = Path(str(path))
    if p.is_dir():
        best = p / "weights" / "best.pt"
        hint = f"pass {key}={best}" if best.is_file() else "pass the weights/best.pt of a training run"
        raise error(f"{key}={path} is a folder, not a checkpoint: {hint}")
    if p.is_file():
        return p
    if (weights_dir() / p).is_file():
        return weights_dir() / p
    download = " (an Ultralytics download; ikd-yolo never downloads)" if p.name in GITHUB_ASSETS_NAMES else ""
    yaml_hint = f" or build it untrained with {key}={p.stem}.yaml" if download and key == "model" else ""
    raise error(f"{key}={path} not found{download}: pass the path of a local .pt file (also looked in "
                f"{weights_dir()}){yaml_hint}")


def read_checkpoint(path: Path, key: str, error: type[InputError] = InputError, trust: bool = False) -> dict[str, Any]:
    """The checkpoint dict of an Ultralytics `.pt` file, or one line saying why it cannot be read.

    Only model types are rebuilt unless `trust` (see `checkpoints.load_pt`): a file that holds anything else is
    refused, and nothing in it runs."""
    try:
        ckpt = load_pt(path, trust=trust, key=key)
    except UntrustedCheckpoint as e:
        raise error(str(e)) from None
    except Exception as e:  # torch/pickle raise many types for a truncated or foreign file
        raise error(f"{key}={path} cannot be read ({type(e).__name__}): the file is truncated or not a PyTorch "
                    f"checkpoint{_sibling_hint(path)}") from None
    if not isinstance(ckpt, dict) or not isinstance(ckpt.get("ema") or ckpt.get("model"), nn.Module):
        raise error(f"{key}={path} is not an Ultralytics checkpoint (it holds no model): pass the best.pt or "
                    "last.pt of a training run")
    if not trust:  # a trusted file may run code anyway
        configs = [m.yaml for k in ("model", "ema") if isinstance(ckpt.get(k), nn.Module) for m in ckpt[k].modules()
                   if hasattr(m, "yaml")]
        if problem := next(filter(None, map(config_problem, configs)), None):
            raise error(f"{key}={path} is refused: {problem} (Ultralytics rebuilds the model from that config and "
                        f"runs or calls what it names); if you trust this file, pass {TRUST_KEY}=True")
    return ckpt


def read_model_yaml(name: str, key: str, error: type[InputError] = InputError) -> dict[str, Any]:
    """The model config of a `key=x.yaml` (Ultralytics' own YAMLs by name too), or one line when it is missing or is
    not one Ultralytics builds without running what it names (`model_yaml.config_problem`)."""
    from ultralytics.nn.tasks import yaml_model_load

    read_yaml_file(Path(name), key, error)  # a local file: before Ultralytics' reader sees it
    try:
        cfg = yaml_model_load(name)
    except FileNotFoundError:
        raise error(f"{key}={name} not found: pass a model YAML such as yolo11n.yaml or a trained .pt") from None
    except ValueError as e:  # Ultralytics' reader: not YAML, not a mapping
        raise error(f"{key}={name} cannot be read as a model YAML: {str(e).strip().splitlines()[0]}") from None
    if problem := config_problem(cfg):
        raise error(f"{key}={name} is refused: {problem}; ikd-yolo builds only configs shaped as Ultralytics' own, "
                    "since Ultralytics runs or calls what a config names")
    return cfg


def checkpoint_model(ckpt: dict[str, Any]) -> nn.Module:
    """The fp32 model of a checkpoint read by `read_checkpoint` (its EMA when saved), with Ultralytics' `args` and
    `task` set as `ultralytics.nn.tasks.load_checkpoint` sets them."""
    from ultralytics.nn.tasks import guess_model_task
    from ultralytics.utils import DEFAULT_CFG_DICT

    model = (ckpt.get("ema") or ckpt["model"]).float()
    model.args = {**DEFAULT_CFG_DICT, **(ckpt.get("train_args") or {})}
    model.task = guess_model_task(model)
    return model


def _sibling_hint(path: Path) -> str:
    """', use best.pt or epoch5.pt beside it instead' when such checkpoints exist next to `path`."""
    others = [p for p in (path.parent / "best.pt", *sorted(path.parent.glob("epoch*.pt"), key=_epoch, reverse=True))
              if p != path and p.is_file()]
    return f"; use {', or '.join(str(p) for p in others[:2])} instead" if others else ""


def _epoch(p: Path) -> int:
    digits = p.stem.removeprefix("epoch")
    return int(digits) if digits.isdigit() else -1


def detection_problem(model: nn.Module | dict, tasks: tuple[str, ...] = TASKS) -> str | None:
    """None for a YOLO model of one of `tasks` built on a detection head (or its YAML dict), else what it is:
    'a classify model (ClassificationModel)', 'a RTDETRDetectionModel, not a YOLO DetectionModel'."""
    from ultralytics.nn.tasks import guess_model_task

    if isinstance(model, dict):
        head = str(model["head"][-1][2])
        task = guess_model_task(model)
        if head in TASK_HEADS and TASK_HEADS[head] in tasks:
            return None
        if task in (None, "detect"):  # RT-DETR's decoder names no task
            return f"a {head} detector, not a YOLO Detect model"
        return f"{_article(task)} {task} model ({head} head)"
    task = guess_model_task(getattr(model, "yaml", None) or model)  # the architecture, not a stored label
    if task not in tasks:
        return f"{_article(task)} {task} model ({type(model).__name__})"
    if type(model) is not task_model_class(task):  # RT-DETR, YOLO-World, YOLOE: not a plain detection head
        return f"a {type(model).__name__}, not a YOLO {task_model_class(task).__name__}"
    return None


def task_model_class(task: str) -> type[nn.Module]:
    """Ultralytics' model class of a task IKD distils: DetectionModel, SegmentationModel, PoseModel or OBBModel."""
    from ultralytics.nn import tasks as models

    return {"detect": models.DetectionModel, "segment": models.SegmentationModel, "pose": models.PoseModel,
            "obb": models.OBBModel}[task]


def model_task(model: nn.Module) -> str:
    """The task of a model IKD accepted (`detection_problem` is None): detect, segment, pose or obb."""
    from ultralytics.nn.tasks import guess_model_task

    return guess_model_task(getattr(model, "yaml", None) or model)


def _article(word: str) -> str:
    return "an" if word[:1] in "aeiou" else "a"


def check_student(model: Any, trust: bool = False, tasks: tuple[str, ...] = TASKS) -> nn.Module | None:
    """The student `model=` names (built from its YAML, or read from its `.pt`), refused in one line when it is not a
    YOLO model of one of `tasks` (classify, RT-DETR, World, YOLOE never are); None for a name that is neither.

    A `.pt` student is looked up (never downloaded) and read as `read_checkpoint` reads it (`trust`); a wrapped one
    (a distillation run's checkpoint) is checked by the student it holds.
    """
    if model is None or isinstance(model, nn.Module):
        return model
    name = str(model)
    if name.endswith((".yaml", ".yml")):
        cfg = read_model_yaml(name, "model", StudentError)
        problem, student = detection_problem(cfg, tasks), None
        if problem is None:
            student = task_model_class(TASK_HEADS[str(cfg["head"][-1][2])])(cfg, verbose=False)
    elif name.endswith(".pt"):
        path = find_weights(name, "model", StudentError)
        saved = checkpoint_model(read_checkpoint(path, "model", StudentError, trust))
        student = wrapped_student(saved) or saved
        problem = detection_problem(student, tasks)
    else:
        return None  # Ultralytics' own formats (exported models, hub names) are for its other commands
    if problem:
        what = "detection students (task=detect); use a detect model" if tasks == ("detect",) else (
            f"students of task {', '.join(tasks)} (a YOLO detection head); use a model")
        raise StudentError(f"model={name} is {problem}: ikd-yolo distils YOLO {what} such as yolo11n.yaml")
    return student


def wrapped_student(weights: Any) -> nn.Module | None:
    """The detector inside a saved training wrapper (Ultralytics' DistillationModel or an IKDModel), else None."""
    from ultralytics.nn.distill_model import DistillationModel

    if isinstance(weights, DistillationModel):
        return weights.student_model
    is_ikd_model = isinstance(getattr(weights, "student", None), nn.Module) and hasattr(weights, "distiller")
    return weights.student if is_ikd_model else None


def load_data(data: Any) -> dict[str, Any]:
    """The dataset dict of `data=` (Ultralytics' `check_det_dataset`), or one line naming the problem.

    Nothing is fetched: a URL is refused, and so are missing images that the YAML's `download:` would fetch (a URL,
    a shell command or Python code, which Ultralytics runs)."""
    from ultralytics.data.utils import check_det_dataset

    if not data:
        raise DataError("no dataset given: pass data=path/to/data.yaml (ikd-yolo synth writes one)")
    if "://" in str(data):
        raise DataError(f"data={data} is a URL (ikd-yolo never downloads): download the dataset yourself and pass "
                        "data=path/to/data.yaml")
    path = Path(str(data))
    if not path.exists():
        from ultralytics.utils import ROOT

        yaml_name = path.name if path.suffix in {".yaml", ".yml"} else f"{path.name}.yaml"  # coco8 means coco8.yaml
        if (ROOT / "cfg" / "datasets" / yaml_name).is_file():  # also Ultralytics' default when none given
            raise DataError(f"data={data} is an Ultralytics dataset that would be downloaded (ikd-yolo never "
                            "downloads): pass your own data=path/to/data.yaml (ikd-yolo synth writes one)")
        if path.suffix in {".yaml", ".yml"}:
            raise DataError(f"data={data} not found: pass the path of a dataset YAML (ikd-yolo synth writes one)")
    described = read_yaml_file(path, "data", DataError)
    described = described if isinstance(described, dict) else None
    if described is not None:
        check_size(described, f"data={data}", DataError)
    try:
        return check_det_dataset(str(data), autodownload=False)
    except (FileNotFoundError, SyntaxError, KeyError, ValueError, AssertionError, TypeError) as e:  # it asserts too
        first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
        if isinstance(e, FileNotFoundError) and "images not found" in first and (described or {}).get("download"):
            raise DataError(f"data={data}: {first}, and ikd-yolo never runs a data YAML's download: (a URL, shell "
                            "command or Python code): fetch the dataset yourself, then run again") from None
        raise DataError(f"data={data} cannot be used: {first}") from None


def split_images(data: dict[str, Any], split: str) -> list[Path]:
    """The image files of split `split` of a dataset dict (`load_data`'s), sorted: its folders searched through,
    its .txt lists read (a relative path from the list's folder)."""
    from ultralytics.data.utils import IMG_FORMATS

    images = []
    for entry in data[split] if isinstance(data[split], list) else [data[split]]:
        path = Path(entry)
        if path.is_dir():
            images += [p for p in path.rglob("*.*") if p.suffix[1:].lower() in IMG_FORMATS]
        else:
            images += [(path.parent / line.strip()).resolve() for line in path.read_text().splitlines() if line.strip()]
    return sorted(set(images))


# what a label row of each task with more than a box holds (Ultralytics reads a row of more than 6 values so)
SHAPE_LABELS = {"segment": "polygons (class x1 y1 x2 y2 x3 y3 ...)",
                "obb": "rotated boxes as four corners (class x1 y1 x2 y2 x3 y3 x4 y4)"}


def check_task_labels(data: dict[str, Any], data_arg: Any, task: str) -> None:
    """A segment or obb student needs polygons or corners in its labels: one line when the first labelled training
    image holds plain boxes (Ultralytics would stop only once the run folder exists)."""
    from ultralytics.data.utils import img2label_paths

    if task not in SHAPE_LABELS:
        return
    for label in map(Path, img2label_paths([str(p) for p in split_images(data, "train")])):
        try:
            rows = [line.split() for line in label.read_text(encoding="utf-8").splitlines() if line.strip()]
        except (OSError, UnicodeDecodeError):  # missing or unreadable: Ultralytics skips it too
            continue
        if rows:
            if all(len(row) <= 6 for row in rows):
                raise DataError(f"data={data_arg} holds plain boxes ({label}: {len(rows[0])} values a row), and a "
                                f"{task} student needs {SHAPE_LABELS[task]}: pass a {task} dataset (ikd-yolo synth "
                                f"task={task} writes one)")
            return


def check_pretrained(value: Any, trust: bool = False) -> None:
    """`pretrained=` a checkpoint (Ultralytics loads its weights into the student with plain torch.load, or downloads
    one it knows by name) is looked up and read as `read_checkpoint` reads it; True / False need nothing."""
    if isinstance(value, (str, Path)) and str(value).lower() not in {"true", "false", ""}:
        read_checkpoint(find_weights(value, "pretrained", StudentError), "pretrained", StudentError, trust)


def check_image_path(out: Path, key: str) -> None:
    """One line unless a figure can be saved at `key=out`: a format matplotlib writes, in a folder that can be written
    (made when missing)."""
    from matplotlib.backend_bases import FigureCanvasBase

    formats = FigureCanvasBase.get_supported_filetypes()
    if out.suffix and out.suffix[1:].lower() not in formats:
        raise InputError(f"{key}={out}: '{out.suffix}' is not an image format matplotlib writes: use .png "
                         f"(or {', '.join(sorted(formats))})")
    if out.is_dir():
        raise InputError(f"{key}={out} is a folder: pass the image file to write, e.g. {key}={out / 'grid.png'}")
    if problem := unwritable(out.parent):
        raise InputError(f"{key}={out}: {problem}: pick another path")


def read_yaml_file(path: Path, key: str, error: type[InputError]) -> Any:
    """What the YAML file `key=path` holds, read by PyYAML's Python reader, or None when it is not one (a folder, a
    bare name, not YAML: Ultralytics then says what is wrong); one line when its brackets nest so deep that the C
    reader Ultralytics uses would crash the process."""
    import yaml

    try:
        return yaml.safe_load(path.read_text(encoding="utf-8")) if path.suffix in {".yaml", ".yml"} else None
    except (OSError, ValueError, yaml.YAMLError):
        return None
    except RecursionError:
        raise error(f"{key}={path} nests brackets too deeply to be read: write a plain YAML") from None
