#!/usr/bin/env python
"""How much does the attack change what the teacher sees? Its mAP and class scores on x_adv against x.

For each attack setting, the training split is letterboxed to `imgsz` (the images the adversarial stream distils),
attacked with the same `AdversarialAttack` training runs (against the teacher's class loss on the ground truth), and
the teacher is scored on the clean and on the attacked copies:

    mAP50-95 / mAP50   Ultralytics val of the teacher on both sets (the same labels, 8-bit PNGs of both)
    score shift        mean |sigmoid(t_adv) - sigmoid(t)| of the teacher's top class score, at the positions the
                       distillation weights most (each image's 1% of positions with the highest clean score)
    score KL           mean Bernoulli KL(teacher on x || teacher on x_adv) of the class scores at those positions
    |delta| x255       mean absolute pixel change, and its maximum (the budget reached)

Usage:
    python benchmarks/attack_diagnostic.py teacher=benchmarks/results/quick27/teacher-yolo11s.pt profile=quick \
        "settings=[eps=0.0313725;steps=2;step_size=0.0078431],[eps=0.0627451;steps=10;step_size=0.0078431]"
    python benchmarks/attack_diagnostic.py teacher=t.pt data=data.yaml imgsz=160 n=200 "settings=[steps=5]"

Keys: teacher (required), data= or profile= (the bench-distill profile's synthetic set), imgsz (default the profile's),
n (images, default 300), batch (16), settings (bracketed attack settings, keys without their adv_ prefix: eps, steps,
step_size, decay, di_p; each over the default's), out (the JSON, default
benchmarks/results/attack_diagnostic_<profile or data name>_<imgsz>.json).
"""

from __future__ import annotations

import json
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))  # run from a checkout without installing
sys.path.insert(0, str(ROOT / "benchmarks"))

import cv2  # noqa: E402
import numpy as np  # noqa: E402
import torch  # noqa: E402

from _timing import recorded  # noqa: E402
from ikd_yolo.config import parse_key_values, resolve_distill_config, section  # noqa: E402

TOP_FRACTION = 0.01  # the positions a score-weighted distillation weighs most


def parse_settings(text: str) -> list[dict]:
    """'[eps=0.03;steps=2],[steps=5]' -> [{'eps': 0.03, 'steps': 2}, {'steps': 5}] (values as the command line)."""
    from ikd_yolo.config import parse_cli_value

    out = []
    for chunk in filter(None, (c.strip().strip(",") for c in text.split("]"))):
        body = chunk.lstrip("[")
        out.append({k: parse_cli_value(v) for k, _, v in (item.partition("=") for item in body.split(";") if item)})
    return out


def attack_settings(overrides: dict):
    """The AttackSettings of the default config with `overrides` (keys without adv_), validated as training does."""
    from ikd_yolo.augment.attack import AttackSettings

    cfg = resolve_distill_config({f"adv_{k}": v for k, v in overrides.items()})
    return section(AttackSettings, cfg)


def top_positions(scores: torch.Tensor) -> torch.Tensor:
    """(B, N) boolean mask of each image's TOP_FRACTION positions by the teacher's top class score."""
    top = scores.amax(1)  # (B, N) max over classes of the logits
    k = max(1, int(TOP_FRACTION * top.shape[1]))
    idx = top.topk(k, dim=1).indices
    return torch.zeros_like(top, dtype=torch.bool).scatter_(1, idx, True)


def score_change(clean: torch.Tensor, adv: torch.Tensor) -> tuple[float, float]:
    """(mean |Δ top class probability|, mean Bernoulli KL over classes) at the clean scores' top positions."""
    mask = top_positions(clean)
    p, q = clean.float().sigmoid(), adv.float().sigmoid()
    shift = (p.amax(1) - q.amax(1)).abs()[mask].mean()
    eps = 1e-7
    kl = (p * ((p + eps) / (q + eps)).log() + (1 - p) * ((1 - p + eps) / (1 - q + eps)).log()).mean(1)[mask].mean()
    return float(shift), float(kl)


def write_split(folder: Path, name: str, images: list[np.ndarray], labels: list[Path]) -> None:
    """PNG images (RGB uint8) and copies of their label files as an Ultralytics split folder."""
    (folder / "images" / name).mkdir(parents=True, exist_ok=True)
    (folder / "labels" / name).mkdir(parents=True, exist_ok=True)
    for i, (img, label) in enumerate(zip(images, labels)):
        cv2.imwrite(str(folder / "images" / name / f"{i:06d}.png"), img[..., ::-1])
        target = folder / "labels" / name / f"{i:06d}.txt"
        if label.is_file():
            shutil.copy(label, target)
        else:
            target.write_text("")


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_key_values([w for w in argv if not w.startswith("settings=")])
    raw = [w.partition("=")[2] for w in argv if w.startswith("settings=")]  # brackets as typed, not read as YAML
    from ultralytics import YOLO
    from ultralytics.data.utils import img2label_paths

    from ikd_yolo.augment.adv_cache import attack_dataset, label_task
    from ikd_yolo.augment.attack import AdversarialAttack, class_loss_criterion
    from ikd_yolo.evidence.bench import prepare_data, resolve_settings
    from ikd_yolo.inputs import load_data
    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    profile = str(args.get("profile", "quick"))
    s = resolve_settings(profile, **({"data": args["data"]} if "data" in args else {}))
    imgsz = int(args.get("imgsz", s["imgsz"]))
    data_path, _ = prepare_data(s)
    data = load_data(data_path)
    n, batch = int(args.get("n", 300)), int(args.get("batch", 16))
    settings = parse_settings(raw[-1] if raw else "") or [{}]
    bad = {k for o in settings for k in o} - {"steps", "eps", "step_size", "decay", "di_p"}
    if bad:
        raise SystemExit(f"attack_diagnostic: settings take steps, eps, step_size, decay, di_p (got {sorted(bad)})")
    torch.set_num_threads(1)
    model = load_teacher(args["teacher"], nc=data["nc"], names=data["names"])
    teacher = FrozenTeacher(model)
    teacher.model.args = __import__("ultralytics.cfg", fromlist=["get_cfg"]).get_cfg()
    criterion = class_loss_criterion(teacher.model)
    dataset = attack_dataset(data, imgsz, batch, label_task(teacher.model, data))
    n = min(n, len(dataset))
    labels = [Path(p) for p in img2label_paths(dataset.im_files[:n])]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        clean_images, adv_sets = [], [[] for _ in settings]
        shifts, kls, deltas, reached = ([[] for _ in settings] for _ in range(4))
        loader = torch.utils.data.DataLoader(torch.utils.data.Subset(dataset, range(n)), batch_size=batch,
                                             shuffle=False, collate_fn=dataset.collate_fn)
        attacks = [AdversarialAttack(attack_settings(o)) for o in settings]
        for b in loader:
            b["img"] = b["img"].float() / 255
            clean_images += [im for im in (b["img"] * 255).round().byte().permute(0, 2, 3, 1).numpy()]
            clean_scores = teacher.head(teacher.features(b["img"]))["scores"]
            for j, attack in enumerate(attacks):
                g = torch.Generator().manual_seed(0)
                x_adv = attack(teacher.model, criterion, b, generator=g)
                x8 = (x_adv * 255).round() / 255  # what a cache stores and training reads
                adv_scores = teacher.head(teacher.features(x8))["scores"]
                shift, kl = score_change(clean_scores, adv_scores)
                shifts[j].append(shift)
                kls[j].append(kl)
                delta = (x8 - b["img"]).abs() * 255
                deltas[j].append(float(delta.mean()))
                reached[j].append(float(delta.amax()))
                adv_sets[j] += [im for im in (x8 * 255).round().byte().permute(0, 2, 3, 1).numpy()]
        val = dict(imgsz=imgsz, batch=batch, device="cpu", workers=0, plots=False, verbose=False, split="val")

        def score(images: list[np.ndarray], name: str) -> tuple[float, float]:
            folder = root / name
            write_split(folder, "val", images, labels)
            yaml = folder / "data.yaml"
            yaml.write_text(json.dumps({"path": str(folder), "train": "images/val", "val": "images/val",
                                        "names": data["names"]}))
            m = YOLO(args["teacher"]).val(data=str(yaml), project=str(root / "runs"), name=name, **val)
            return float(m.box.map), float(m.box.map50)

        clean_map = score(clean_images, "clean")
        for j, o in enumerate(settings):
            adv_map = score(adv_sets[j], f"adv{j}")
            rows.append({"settings": asdict(attacks[j].settings), "given": o,
                         "teacher_map50_95": {"clean": clean_map[0], "adv": adv_map[0]},
                         "teacher_map50": {"clean": clean_map[1], "adv": adv_map[1]},
                         "score_shift": float(np.mean(shifts[j])), "score_kl": float(np.mean(kls[j])),
                         "delta_mean_x255": float(np.mean(deltas[j])), "delta_max_x255": float(np.max(reached[j]))})
    name = Path(args["data"]).stem if "data" in args else profile
    out = Path(args.get("out", ROOT / "benchmarks" / "results" / f"attack_diagnostic_{name}_{imgsz}.json"))
    teacher_arg = Path(str(args["teacher"]))
    teacher_shown = str(teacher_arg.resolve().relative_to(ROOT)) if teacher_arg.resolve().is_relative_to(ROOT) \
        else teacher_arg.name
    report = {"command": "python benchmarks/attack_diagnostic.py " + " ".join(argv),
              "teacher": teacher_shown, "profile": None if "data" in args else profile, "imgsz": imgsz, "images": n,
              "split": "train (letterboxed, as the adversarial stream reads it)", "rows": rows}
    out.write_text(json.dumps(recorded(report), indent=1) + "\n")
    print("| eps x255 | steps | step x255 | teacher mAP50-95 clean -> adv | mAP50 clean -> adv | top-score shift | "
          "score KL | mean abs delta x255 | max abs delta x255 |")
    print("|---:|---:|---:|---|---|---:|---:|---:|---:|")
    for r in rows:
        st = r["settings"]
        print(f"| {st['eps'] * 255:.0f} | {st['steps']} | {st['step_size'] * 255:.0f} | "
              f"{100 * r['teacher_map50_95']['clean']:.2f} -> {100 * r['teacher_map50_95']['adv']:.2f} | "
              f"{100 * r['teacher_map50']['clean']:.2f} -> {100 * r['teacher_map50']['adv']:.2f} | "
              f"{r['score_shift']:.4f} | {r['score_kl']:.4f} | {r['delta_mean_x255']:.2f} | "
              f"{r['delta_max_x255']:.0f} |")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
