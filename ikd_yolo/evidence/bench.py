"""`ikd-yolo bench-distill`: matched students per (method, seed), scored by two independent evaluators.

Every run trains the same student on the same data with the same teacher, epochs and image size; only the
distillation method and the seed change (see `runs.train_student`). Each finished run's best.pt is validated
once more by Ultralytics with `save_json=True`; its mAP50-95 / mAP50 are one evaluator, and pycocotools' COCOeval on
the very same predictions.json (against a COCO ground truth built here from the YOLO label files) is the other:
AP, AP50, AP75, AP_S, AP_M, AP_L. Results, one JSON per finished run, make the command resumable.

Outputs under `<out>/<name>/`: bench_distill.md (mean ± std over seeds, deltas vs no-KD and vs Ultralytics KD),
summary.json (every number), bars.png and curves.png; Ultralytics runs under `<project>/<name>/<method>-s<seed>/`.

Examples:
    >>> from ikd_yolo.evidence import run_benchmark
    >>> summary = run_benchmark(profile="quick")  # trains a teacher and 3 seeds of 4 students  # doctest: +SKIP
    >>> summary = run_benchmark(  # needs a dataset and a trained teacher.pt  # doctest: +SKIP
    ...     profile="full", data="data.yaml", teacher="teacher.pt", methods="none,fgd,ikd-fgd")
"""

from __future__ import annotations

import json
import os
import time
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
from ultralytics.utils import LOGGER

from ..cache import cache_dir
from ..checkpoints import TRUST_KEY
from ..config import (DISTILL_KEYS, DistillConfigError, check_value, closest_key, resolve_distill_config,
                      split_distill_args)
from ..data.unlabeled import file_digest
from ..errors import InputError
from ..cache import unwritable
from .coco import area_ranges, check_evaluator, coco_ground_truth, validate_twice
from .machine import environment
from .methods import Method, parse_methods, parse_seeds, run_label
from .paths import portable
from .parallel import Jobs, cpu_threads, set_threads
from .profiles import PROFILE_KEYS, PROFILES
from .progress import watch
from .report import PREFIX, jsonable, summarize, write_outputs
from .runs import cached_teacher, config_hash, train_student
from .tasks import task_models

UNHASHED = {"device", "workers", "verbose", "plots"}  # train arguments that do not change what a run measures
PATH_KEYS = ("unlabeled",)  # method arguments that are paths: recorded and keyed as `portable` writes them
UNHASHED_DISTILL = {"distill", "trust_checkpoints"}  # settings that do not either: a label, a permission to read
# settings added after finished runs were keyed: part of a run's key only when set away from this value (which is
# what those runs trained with), so the evidence keeps its runs
KEYED_OFF_DEFAULT = {"freq_apply": "replace", "freq_weight": 1.0, "score_kpt": 0.0, "stream_source": "train",
                     "unlabeled": None, "stream_aug": "none"}
# profile keys that are whole numbers, with their smallest value (the synthetic set's own lower bounds included)
WHOLE_NUMBERS = {"n_train": 1, "n_val": 1, "n_unlabeled": 0, "data_imgsz": 64, "min_side": 0, "teacher_epochs": 1,
                 "epochs": 1, "imgsz": 32, "batch": 1, "workers": 0}
BENCH_KEYS = ("profile", "name", "out", "project", "report")  # run_benchmark's own, beside the profile keys


# ------------------------------------------------------------------------------------------------------- the runs
def run_benchmark(
    profile: str = "quick",
    name: str | None = None,
    out: str | Path = "benchmarks/results",
    project: str | Path = "runs/bench-distill",
    report: str | None = None,
    **overrides: Any,
) -> dict[str, Any]:
    """Train (or reuse) every (method, seed) run of a profile, then write the table, JSON and plots; return the summary.

    Args:
        profile (str): "quick" (2 CPU cores), "quick160" (the same at 160 px, for the frequency bands), "gpu" (one
            GPU, sized for 8 minutes: an estimate until run) or "full" (your data and epochs).
        name (str | None): Sub-folder of `out` and `project` for this benchmark (default: the profile).
        out (str | Path): Folder of the summaries; finished runs are kept as JSON in `<out>/<name>/runs/` and are
            reused while their settings hash (`run_key`: seed, train arguments, the effective distillation settings
            as the presets and defaults read now, data and teacher PATHS as `paths.portable` writes them,
            ultralytics version) matches, under any label: after changing a dataset or teacher in place, use a new
            `name` or delete that folder. Every path the results record is `portable` (no machine's folders).
        project (str | Path): Folder of the Ultralytics runs.
        report (str | None): Sub-folder of `out` for this invocation's table, JSON and plots (default: `name`), so
            comparisons of different method sets can share the finished runs of one `name`.
        **overrides: Any profile key (data, teacher, student, methods, seeds, epochs, imgsz, batch, device, n_train,
            n_val, data_imgsz, teacher_model, teacher_epochs, teacher_init, workers), any distillation key (given to
            the ikd-yolo methods only) or any Ultralytics train argument (given to every student).
    """
    start = time.time()
    s = resolve_settings(profile, **overrides)
    check_inputs(s)
    name = str(name or profile)
    out_dir, run_root = Path(out) / name, Path(project) / name
    check_output_folders(out=out_dir, project=run_root)
    data, area_scale = prepare_data(s)
    threads_all = cpu_threads(1)
    set_threads(threads_all)
    teacher = Path(s["teacher"]) if s.get("teacher") else cached_teacher(  # first, alone, on every core
        data, s["teacher_model"], s["teacher_epochs"], s["imgsz"], s["batch"], s["device"], 0, threads=threads_all,
        **teacher_train_args(s),
    )
    gt = coco_ground_truth(data, task=s["task"])
    val_args = dict(imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"])
    teacher_file, teacher_sha = out_dir / "runs" / "teacher.json", file_digest(teacher)
    check_same_teacher(teacher_file, teacher_sha)
    teacher_scores = _cached_json(
        teacher_file, config_hash(dict(teacher=portable(teacher), data=portable(data), **val_args)),
        lambda: {**validate_twice(teacher, data, gt, area_scale, run_root / "teacher-val", threads_all,
                                  task=s["task"], **val_args), "teacher_sha256": teacher_sha},
    )
    build_attack_caches(s, data, teacher)  # once per teacher, before runs of every seed and method read them
    order = [(method, seed) for method in s["methods"] for seed in s["seeds"]]
    parallel = s["jobs"] > 1 and len(order) > 1
    names = {run_label(m, seed): (m, seed) for m, seed in order}
    logs = {name: run_root / "logs" / f"{name}.log" for name in names}
    if parallel:
        LOGGER.info(f"{PREFIX} {len(order)} runs, {s['jobs']} at a time; each run's output goes to "
                    f"{run_root / 'logs'}/<run>.log")
    with Jobs(s["jobs"]) as jobs:
        futures = {name: jobs.submit(
            run_one, m, seed, s, data, teacher, gt, area_scale, out_dir / "runs", run_root,
            threads=cpu_threads(min(s["jobs"], len(order))), log=logs[name] if parallel else None)
            for name, (m, seed) in names.items()}
        if parallel:
            watch(futures, run_root, logs, {name: method_args(m, s)["epochs"] for name, (m, _) in names.items()})
        runs = [f.result() for f in futures.values()]
    labels = [m.label for m in s["methods"]]
    summary = summarize(runs, labels)
    summary.update(
        profile=profile, name=name, task=s["task"],
        settings=jsonable({**s, "methods": labels, **{k: portable(s.get(k)) for k in ("data", "teacher",
                                                                                     "teacher_init", "unlabeled")}}),
        data=portable(data), teacher=portable(teacher),
        teacher_scores=teacher_scores, area_scale=area_scale, cocoarea_ranges=area_ranges(area_scale)[1:],
        method_args={m.label: recorded(method_args(m, s)) for m in s["methods"]}, environment=environment(s["device"]),
        wall_seconds=time.time() - start,
    )
    write_outputs(summary, Path(out) / str(report or name))
    return summary


def check_output_folders(**folders: Path) -> None:
    """One line, before any work, for a folder the benchmark writes into (at its end too) that cannot be written."""
    for key, folder in folders.items():
        if problem := unwritable(folder):
            raise InputError(f"{key}={folder}: {problem}: pass a folder you can write")


def check_same_teacher(teacher_file: Path, sha: str) -> None:
    """One line, before any run, when the finished runs of this benchmark were trained with another teacher than the
    one at the same path now (a profile teacher trained again is not the same weights: CPU training is not
    bit-reproducible), which run keys (they name the teacher by path) would otherwise reuse."""
    try:
        recorded_sha = json.loads(teacher_file.read_text()).get("teacher_sha256")
    except (OSError, ValueError):
        return
    if recorded_sha and recorded_sha != sha:
        raise InputError(f"{teacher_file.parent}: its runs were trained with another teacher (sha256 "
                         f"{recorded_sha[:12]}, now {sha[:12]}): pass name= a new name, or move that folder away")


def teacher_train_args(s: dict[str, Any]) -> dict[str, Any]:
    """The Ultralytics arguments a profile's teacher trains with besides data, model, epochs, imgsz and batch (they
    are part of its cache key)."""
    init = {"pretrained": str(Path(s["teacher_init"]).resolve())} if s["teacher_init"] else {}
    return dict(workers=s["workers"], **s["train_args"], **s["teacher_args"], **init)


def build_attack_caches(s: dict[str, Any], data: Path, teacher: Path) -> None:
    """The adversarial cache of every method that trains with adv_mode=cached, built here once (parallel runs would
    each attack the same images)."""
    from ..augment.adv_cache import open_attack_cache
    from ..augment.attack import AttackSettings
    from ..config import section
    from ..inputs import load_data
    from ..teacher import FrozenTeacher, load_teacher

    settings = {section(AttackSettings, cfg) for cfg in cached_attack_configs(s)}
    if not settings:
        return
    from ultralytics.utils.torch_utils import select_device

    data_dict = load_data(data)
    model = FrozenTeacher(load_teacher(teacher, nc=data_dict["nc"], names=data_dict["names"], trust=s[TRUST_KEY])).model
    device = select_device(s["device"], verbose=False)
    set_threads(cpu_threads(1))
    for attack in settings:
        open_attack_cache(model, data_dict, s["imgsz"], attack, device, s["batch"])


def cached_attack_configs(s: dict[str, Any]) -> list[dict[str, Any]]:
    """The distillation settings of every method that trains on cached adversarial images (adv_mode=cached)."""
    from ..streams import streams_of

    configs = [distill_config(m, s) for m in s["methods"]]
    return [cfg for cfg in configs if cfg is not None and any(st.attack == "cached" for st in streams_of(cfg))]


def resolve_settings(profile: str, **overrides: Any) -> dict[str, Any]:
    """Profile defaults with `overrides` on top; methods parsed (`Method`) and seeds normalised to lists; unknown
    keys refused."""
    if profile not in PROFILES:
        raise DistillConfigError(f"profile='{profile}' is not known: use one of {', '.join(PROFILES)}")
    from ultralytics.utils import DEFAULT_CFG_KEYS

    s = {"data": None, "teacher": None, TRUST_KEY: False, **PROFILES[profile]}
    extra = dict(s.pop("train_args"))
    s["teacher_args"] = dict(s["teacher_args"])
    for k, v in overrides.items():
        if k in s:
            s[k] = v
        elif k in DISTILL_KEYS - {"teacher", "distill"}:
            raise DistillConfigError(f"'{k}' is a distillation setting, which a benchmark gives no method by "
                                     "itself: a preset's row runs exactly what distill=NAME runs; give it to the "
                                     f"methods it changes, in brackets: methods=ikd-score,ikd-score[{k}={v}]")
        elif k in DEFAULT_CFG_KEYS:
            extra[k] = v
        else:
            valid = {*s, *PROFILE_KEYS, *BENCH_KEYS, *DEFAULT_CFG_KEYS}
            raise DistillConfigError(f"'{k}' is not a bench-distill or Ultralytics argument."
                                     f"{closest_key(k, valid)} See ikd-yolo bench-distill --help")
    if profile == "full" and not s["data"]:
        raise DistillConfigError("profile=full needs your dataset: data=path/to/data.yaml")
    s["methods"], s["seeds"] = parse_methods(s["methods"]), parse_seeds(s["seeds"])
    s["task"], s["student"], s["teacher_model"] = task_models(s["task"], s["student"], s["teacher_model"])
    if s["device"] is None:
        s["device"] = "0" if _has_cuda() else "cpu"
    if s["jobs"] is None:
        s["jobs"] = (os.cpu_count() or 1) if s["device"] == "cpu" else 1
    if isinstance(s["jobs"], bool) or not isinstance(s["jobs"], int) or s["jobs"] < 1:
        raise DistillConfigError(f"jobs={s['jobs']!r} must be a whole number >= 1 (runs trained at once)")
    s[TRUST_KEY], s["train_args"] = check_value(TRUST_KEY, s[TRUST_KEY]), extra
    if s.get("n_unlabeled") and not s["data"] and not s.get("unlabeled"):  # the synthetic set's unlabelled images
        s["unlabeled"] = str(synthetic_folder(s) / "images" / "unlabeled")
    check_values(s)
    return s


def check_values(s: dict[str, Any]) -> None:
    """Refuse, in one line, a value that would otherwise stop the benchmark after data, teacher or runs were made."""
    from ultralytics.cfg import get_cfg

    for key, lowest in WHOLE_NUMBERS.items():
        v = s.get(key)
        if key in s and (isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < lowest):
            raise DistillConfigError(f"{key}={v!r} must be a whole number >= {lowest}")
    clutter = s.get("clutter", 0.0)
    if isinstance(clutter, bool) or not isinstance(clutter, (int, float)) or not 0 <= clutter <= 1:
        raise DistillConfigError(f"clutter={clutter!r} must be a number in [0, 1]")
    try:  # Ultralytics' own type checks of every train argument a run will get
        get_cfg(overrides=dict(s["train_args"]))
    except (TypeError, ValueError, SyntaxError) as e:
        raise DistillConfigError(str(e).strip().splitlines()[0]) from None
    for m in s["methods"]:
        try:
            distill_config(m, s)  # every distillation setting of every method, validated together
        except DistillConfigError as e:
            raise DistillConfigError(f"method '{m.label}': {e}") from None


def check_inputs(s: dict[str, Any]) -> None:
    """Refuse, in one line, a device, evaluator, cache folder, dataset, teacher or model that this machine cannot use,
    before any work."""
    from ..inputs import (InputError, TeacherError, check_pretrained, check_student, check_task_labels,
                          checkpoint_model, find_weights, load_data, read_checkpoint)
    from ..preflight import check_device
    from ..teacher import check_task_pair

    check_device(s["device"])
    check_evaluator()
    # the synthetic set, the teacher and the adversarial images are made there
    cache_dir(writable=not (s["data"] and s["teacher"]) or bool(cached_attack_configs(s)))
    trust = s[TRUST_KEY]
    models = {}
    for key in ("student", "teacher_model"):  # a .pt is read by the safe reader before Ultralytics unpickles it
        try:
            models[key] = check_student(s[key], trust, tasks=(s["task"],))
        except InputError as e:  # its line names the student's key, model=
            raise InputError(str(e).replace(f"model={s[key]}", f"{key}={s[key]}", 1)) from None
    if s["data"]:
        check_task_labels(load_data(s["data"]), s["data"], s["task"])
    if s["teacher_init"] and s["teacher"]:
        raise DistillConfigError(f"teacher_init={s['teacher_init']} starts the profile's teacher training, and "
                                 f"teacher={s['teacher']} is already trained: give one of them")
    if s["teacher_init"]:  # the starting weights of the teacher this benchmark trains: Ultralytics unpickles them
        read_checkpoint(find_weights(s["teacher_init"], "teacher_init", TeacherError), "teacher_init", TeacherError,
                        trust)
    for args in (*(method_args(m, s) for m in s["methods"]), teacher_train_args(s)):  # Ultralytics unpickles it
        check_pretrained(args.get("pretrained"), trust)
    if s["teacher"]:  # validated by Ultralytics before any run: it must pass the safe reader first
        saved = read_checkpoint(find_weights(s["teacher"], "teacher", TeacherError), "teacher", TeacherError, trust)
        if models["student"] is not None:
            check_task_pair(checkpoint_model(saved), models["student"])


def prepare_data(s: dict[str, Any]) -> tuple[Path, float]:
    """The data.yaml to use (the profile's synthetic set, generated once, unless data= is given) and its area scale.

    The synthetic set's size buckets are relative to the image side (COCO's 32² / 96² px at 256 px), so COCO's area
    limits are scaled by (data_imgsz / 256)² to keep AP_S/M/L on the generator's buckets; user data keeps COCO's.
    """
    if s["data"]:
        return Path(s["data"]).resolve(), 1.0
    from ..data import make_synthetic_dataset

    n_train, n_val, size, clutter, min_side = (s[k] for k in ("n_train", "n_val", "data_imgsz", "clutter", "min_side"))
    data = make_synthetic_dataset(synthetic_folder(s), n_train=n_train, n_val=n_val, imgsz=size, seed=0,
                                  clutter=clutter, min_side=min_side, task=s["task"],
                                  n_unlabeled=s.get("n_unlabeled", 0))
    return data, (size / 256) ** 2


def synthetic_folder(s: dict[str, Any]) -> Path:
    """The cache folder of a profile's synthetic set (its parameters in the name)."""
    n_train, n_val, size, clutter, min_side = (s[k] for k in ("n_train", "n_val", "data_imgsz", "clutter", "min_side"))
    task = "" if s["task"] == "detect" else f"-{s['task']}"  # the detection set keeps the folder it always had
    unlabeled = f"-u{s['n_unlabeled']}" if s.get("n_unlabeled") else ""
    name = f"synthetic-{n_train}-{n_val}-{size}px-c{clutter:g}-m{min_side}{task}{unlabeled}"
    return cache_dir() / "bench-data" / name


def method_args(method: Method | str, s: dict[str, Any]) -> dict[str, Any]:
    """Exactly what `train_student` receives for `method`: the profile's recipe, then the Ultralytics arguments of the
    label's brackets (any method); for a preset, its own distillation settings of the brackets (a bare preset name
    is the preset as distill=NAME runs it) and the benchmark's trust_checkpoints."""
    method = Method.of(method)
    args = {**dict(epochs=s["epochs"], imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"],
                   plots=False, verbose=False), **s["train_args"], **method.recipe}
    if not method.is_preset:
        return args
    trust = {TRUST_KEY: True} if s[TRUST_KEY] else {}
    wants = method.settings.get("stream_source") in ("unlabeled", "both")  # only a label that asks for them
    unlabeled = {"unlabeled": str(s["unlabeled"])} if wants and s.get("unlabeled") else {}
    return {**args, **trust, **unlabeled, **method.settings}


def recorded(args: dict[str, Any]) -> dict[str, Any]:
    """A run's arguments as results record them: paths `portable`."""
    return {k: portable(v) if k in PATH_KEYS else v for k, v in args.items()}


def distill_config(method: Method | str, s: dict[str, Any]) -> dict[str, Any] | None:
    """Every distillation setting an ikd-yolo `method` trains with (its preset as the file reads now, defaults and
    the label's settings); None for the methods that are not ikd-yolo presets."""
    method = Method.of(method)
    if not method.is_preset:
        return None
    return resolve_distill_config({**split_distill_args(method_args(method, s))[0], "distill": method.preset})


def run_key(method: Method | str, seed: int, s: dict, data: Path, teacher: Path, area_scale: float) -> str:
    """The reuse key of one run: what it trains with, not what it is called (`run_settings`, hashed)."""
    method = Method.of(method)
    train_args = split_distill_args({**method_args(method, s), "seed": seed})[1]  # distillation keys are in cfg
    return config_hash(run_settings(method.preset, train_args, distill_config(method, s), data, s["student"], teacher,
                                    area_scale))


def run_settings(preset: str, train_args: dict[str, Any], cfg: dict[str, Any] | None, data: str | Path,
                 student: str, teacher: str | Path, area_scale: float) -> dict[str, Any]:
    """What a run trains with, as its key hashes it: the Ultralytics arguments other than their defaults (and those
    that change nothing measured), the method ("none", "ultralytics" or, for a preset, its effective settings: the
    presets and defaults as they read now, so an edited preset is a new run, and two labels of equal settings are one
    run), the data, student and teacher as `portable` writes them (the same key on every machine) and the area
    scale."""
    from ultralytics.utils import DEFAULT_CFG_DICT

    from ..config import effective_settings

    key = {k: v for k, v in train_args.items() if k not in UNHASHED and DEFAULT_CFG_DICT.get(k, object()) != v}
    distill = None
    if cfg is not None:
        distill = {k: portable(v) if k in PATH_KEYS else v for k, v in effective_settings(cfg).items()
                   if k not in UNHASHED_DISTILL and (k not in KEYED_OFF_DEFAULT or v != KEYED_OFF_DEFAULT[k])}
    key.update(method=preset if cfg is None else "ikd-yolo", data=portable(data), student=student,
               teacher=portable(teacher) if preset != "none" else None, area_scale=area_scale, distill=distill)
    return key


def run_one(method: Method | str, seed: int, s: dict, data: Path, teacher: Path, gt: dict, area_scale: float,
            result_dir: Path, run_root: Path, threads: int | None = None) -> dict[str, Any]:
    """One (method, seed) run: reuse its JSON (or that of another label with the same settings) when it finished,
    else train and score it."""
    method = Method.of(method)
    args = {**method_args(method, s), "seed": seed}
    key = run_key(method, seed, s, data, teacher, area_scale)
    label = run_label(method, seed)
    file = result_dir / f"{label}.json"

    def train_and_score() -> dict[str, Any]:
        twin = _finished_with(result_dir, key, besides=file)
        if twin is not None:
            LOGGER.info(f"{PREFIX} {label} has the settings of {twin['method']}-s{seed}, reusing its result")
            return {**{k: v for k, v in twin.items() if k not in ("settings_hash", "finished")},
                    "method": method.label}
        LOGGER.info(f"{PREFIX} training {label} ({s['epochs']} epochs)")
        r = train_student(method.preset, data, teacher, s["student"], run_root, label, threads=threads,
                          **args)
        curve = r["curve"]
        scores = validate_twice(r["weights"], data, gt, area_scale, Path(r["save_dir"]) / "coco-val", threads,
                                imgsz=s["imgsz"], batch=s["batch"], device=s["device"], workers=s["workers"],
                                task=s["task"])
        train_s = curve[-1]["time"] / len(curve) if curve else r["seconds_per_epoch"]
        return dict(method=method.label, seed=seed, scores={**scores, "seconds_per_epoch": train_s},
                    wall_seconds_per_epoch=r["seconds_per_epoch"], train_final_map50_95=r["map50_95"],
                    train_args=jsonable(recorded(args)), curve=curve, weights=portable(r["weights"], run_root.parent),
                    save_dir=portable(r["save_dir"], run_root.parent))

    return _cached_json(file, key, train_and_score)


def _finished_with(result_dir: Path, key: str, besides: Path) -> dict[str, Any] | None:
    """A finished run in `result_dir` other than `besides` whose settings hash is `key`, or None."""
    for other in sorted(result_dir.glob("*.json")):
        if other != besides:
            try:
                done = json.loads(other.read_text())
            except (OSError, ValueError):
                continue
            if done.get("settings_hash") == key:
                return done
    return None


def _cached_json(file: Path, key: str, make) -> dict[str, Any]:
    """Load `file` if it holds a result for `key`; otherwise call `make()`, stamp it and write it atomically."""
    try:
        done = json.loads(file.read_text())
        if done.get("settings_hash") == key:
            LOGGER.info(f"{PREFIX} {file.stem} already finished, reusing {file}")
            return done
        LOGGER.info(f"{PREFIX} {file.stem}: settings changed since {file} was written, running it again")
    except (OSError, ValueError):
        pass
    result = {**make(), "settings_hash": key, "finished": datetime.now(timezone.utc).isoformat(timespec="seconds")}
    file.parent.mkdir(parents=True, exist_ok=True)
    tmp = file.with_suffix(".tmp")
    tmp.write_text(json.dumps(result, indent=2))
    os.replace(tmp, file)
    return result


def _has_cuda() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()

