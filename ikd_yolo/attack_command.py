"""`ikd-yolo attack`: build the adversarial cache of a teacher and data, report its cost, draw a preview grid.

The grid shows, per image: the clean image with the teacher's detections, the adversarial image with the teacher's
detections on it, and the perturbation amplified to the full range (mid-grey = unchanged, +-adv_eps = white/black),
so a user sees what the attack does to the teacher.

Examples:
    >>> from ikd_yolo.attack_command import run_attack
    >>> report = run_attack(  # needs a dataset and a trained teacher.pt  # doctest: +SKIP
    ...     data="data.yaml", teacher="teacher.pt", imgsz=128, preview="attack.png")
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .augment.adv_cache import AdversarialCache, attack_dataset, label_task, open_attack_cache
from .augment.attack import AttackSettings
from .cache import cache_dir
from .config import resolve_distill_config, section, split_distill_args
from .errors import InputError
from .inputs import check_image_path, load_data
from .preflight import check_device
from .teacher import FrozenTeacher, load_teacher


def run_attack(
    data: str, teacher: str, imgsz: int = 640, batch: int = 16, device: str = "cpu", seed: int = 0,
    preview: str | None = "ikd_attack.png", n: int = 6, **distill: Any,
) -> dict[str, Any]:
    """Attack every training image once (what `adv_mode=cached` trains on) and return what it cost.

    `distill` takes any adv_* key (and `distill=` for a preset's); the cache is shared with every training run whose
    teacher, data, imgsz and attack settings are the same. imgsz is rounded up to the teacher's stride as training
    rounds it; a bad number or a GPU device on a machine without one is refused in one line before any work. Bad
    cache entries are named in a warning and attacked again.

    Args:
        data (str): Dataset YAML whose training images are attacked.
        teacher (str): The trained teacher checkpoint (.pt) the attack fools.
        imgsz (int): Training image size (rounded up to the teacher's stride); a cache serves runs of this size.
        batch (int): Images attacked at once.
        device (str): cpu, or a GPU (0, 0,1, ...).
        seed (int): Seed of the attack's input diversity (runs of every seed share one cache).
        preview (str | None): PNG of clean, adversarial and amplified-difference images (None: no preview).
        n (int): Images in the preview.
        **distill: adv_* keys (adv_steps, adv_eps, ...), distill= a preset whose attack to use, trust_checkpoints.
    """
    if isinstance(preview, str) and preview.strip().lower() in {"", "none", "null", "false"}:
        preview = None  # `preview=None` on the command line arrives as the word
    check_attack_args(imgsz=imgsz, batch=batch, seed=seed, n=n)
    if preview:
        check_image_path(Path(str(preview)), "preview")
    check_device(device)
    explicit, _ = split_distill_args({**distill, "teacher": teacher})
    cfg = resolve_distill_config(explicit)
    cache_dir()  # where the attacked images go
    data_dict = load_data(data)
    model = FrozenTeacher(load_teacher(cfg["teacher"], nc=data_dict["nc"], names=data_dict["names"],
                                       trust=cfg["trust_checkpoints"])).model
    imgsz = stride_multiple(imgsz, model)
    settings = section(AttackSettings, cfg)
    cache, stats = open_attack_cache(model, data_dict, imgsz, settings, device, batch, seed)
    report = {"cache": str(cache.folder), **stats,
              "images_per_s": stats["images"] / stats["seconds"] if stats["seconds"] else None}
    if preview:
        dataset = attack_dataset(data_dict, imgsz, batch, label_task(model, data_dict))
        report["preview"] = str(write_preview(cache, dataset, model, settings, Path(preview), n))
    print(f"ikd-yolo attack: {stats['total']} images in {cache.folder} ({stats['bytes'] / 1e6:.1f} MB); "
          f"{stats['images']} attacked now"
          + (f", {stats['converted']} converted from format 2" if stats["converted"] else "")
          + f" in {stats['seconds']:.1f}s"
          + (f" ({stats['repaired']} bad entries among them)" if stats["repaired"] else "")
          + (f" ({report['images_per_s']:.1f} images/s)" if report["images_per_s"] else "")
          + (f"; preview {report['preview']}" if preview else ""))
    return report


def check_attack_args(**values: Any) -> None:
    """Refuse an imgsz, batch, seed or preview count that is not a whole number in range, in one line."""
    for key, value in values.items():
        low = 0 if key == "seed" else 1
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            what = "a positive whole number of pixels" if key == "imgsz" else f"a whole number >= {low}"
            example = {"imgsz": 640, "batch": 16, "seed": 0, "n": 6}[key]
            raise InputError(f"{key}={value!r} cannot be used: attack needs {key} to be {what}, e.g. {key}={example}")


def stride_multiple(imgsz: int, model: nn.Module) -> int:
    """`imgsz` rounded up to a multiple of the model's largest stride (at least 32), with Ultralytics' warning: the
    size `ikd-yolo train` trains at, so that training finds this cache."""
    from ultralytics.utils.checks import check_imgsz

    stride = max(int(model.stride.max()) if hasattr(model, "stride") else 32, 32)
    return int(check_imgsz(imgsz, stride=stride, floor=stride, max_dim=1))


@torch.no_grad()
def detections(teacher: nn.Module, img: torch.Tensor, conf: float = 0.25) -> list[torch.Tensor]:
    """The teacher's boxes (n, 6: xyxy, conf, cls) on a batch of images in [0, 1], after NMS."""
    from ultralytics.utils import nms

    out = teacher(img)
    preds = out[0] if isinstance(out, (tuple, list)) else out
    return nms.non_max_suppression(preds, conf, 0.7, end2end=getattr(teacher, "end2end", False))


def write_preview(
    cache: AdversarialCache, dataset: Any, teacher: nn.Module, settings: AttackSettings, out: Path, n: int = 6
) -> Path:
    """A PNG grid: clean + teacher boxes, adversarial + teacher boxes, and the perturbation amplified, per image."""
    from matplotlib.figure import Figure
    from matplotlib.patches import Rectangle

    device = next(teacher.parameters()).device
    idx = list(range(min(n, len(cache.im_files))))
    clean = torch.stack([dataset[i]["img"] for i in idx]).float().div(255).to(device)
    adv = torch.stack([torch.from_numpy(np.ascontiguousarray(cache.read(i))).permute(2, 0, 1) for i in idx])
    adv = adv.float().div(255).to(device)
    boxes = detections(teacher, clean), detections(teacher, adv)
    delta = ((adv - clean) / max(settings.eps, 1e-8) * 0.5 + 0.5).clamp(0, 1)
    rows = ("clean + teacher", "adversarial + teacher", f"perturbation x{0.5 / max(settings.eps, 1e-8):.0f}")
    fig = Figure(figsize=(2.2 * len(idx), 2.3 * len(rows)), dpi=100, layout="constrained")
    axes = fig.subplots(len(rows), len(idx), squeeze=False)
    for c in range(len(idx)):
        for r, (image, found) in enumerate(((clean, boxes[0]), (adv, boxes[1]), (delta, None))):
            ax = axes[r, c]
            ax.imshow(image[c].permute(1, 2, 0).cpu().numpy(), interpolation="nearest")
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(rows[r], fontsize=8)
            if found is not None:
                for x0, y0, x1, y1, score, _ in found[c].tolist():
                    ax.add_patch(Rectangle((x0, y0), x1 - x0, y1 - y0, fill=False, lw=1, ec="lime"))
                ax.set_title(f"{len(found[c])} boxes", fontsize=7)
    fig.suptitle(f"adversarial cache {cache.folder.name}: steps {settings.steps}, eps {settings.eps * 255:.1f}/255",
                 fontsize=8)
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out)
    return out
