#!/usr/bin/env python
"""Adversarial cache at a user's image sizes: bytes per image against the source images', before (format 2, a PNG of
each attacked image) and after (format 3, what the attack changed), and how fast it is built and read.

For each size in --sizes: the synthetic shapes set drawn at that size and saved as JPEG (quality 95, as
`make_synthetic_dataset` writes it; --n training images), attacked by the teacher (--teacher, else an untrained
--teacher-model) with the ikd-score preset's attack at --steps steps (2, the preset's; 5, the authors'), through
`open_cache` + `build_cache` as training builds it, into a fresh folder. Per size:

    source KB/img   the JPEG files
    format 2        each entry as format 2 stored it (`cache_format2.encode_png_entry` of the same pixels)
    format 3        the entries on disk (`cache_entry`)
    build img/s     images / wall seconds of `build_cache` (attack, encode, write; the plan's first batch included)
    read img/s      `CachedImages` (the clean image letterboxed again, the entry added back and checked) against
                    decoding the format-2 PNG, interleaved image by image (a ratio on a shared machine)

Usage:
    python benchmarks/bench_cache.py --teacher benchmarks/results/quick27/teacher-yolo11s.pt
    python benchmarks/bench_cache.py --sizes 640 --steps 5 --n 8
    python benchmarks/bench_cache.py --device 0 --sizes 640 --n 256 --batch 32 --out OUT/cache_gpu.json  # a GPU

Prints a Markdown table and writes benchmarks/results/cache_cpu.json (--out to change).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402


def load_frozen_teacher(path: Path, data: dict, device):
    """The frozen teacher model of `path` on `device`, with Ultralytics' default args (its criterion's gains)."""
    from ultralytics.cfg import get_cfg

    from ikd_yolo.teacher import FrozenTeacher, load_teacher

    teacher = FrozenTeacher(load_teacher(str(path), nc=data["nc"], names=data["names"])).model.to(device)
    teacher.args = get_cfg()
    return teacher


def read_rates(cache, pngs: list[bytes], rounds: int = 3) -> tuple[float, float]:
    """Images/s of reading the cache's entries (`CachedImages`) and of decoding their format-2 PNGs, interleaved."""
    from ikd_yolo.augment.cache_format2 import decode_png_entry
    from ikd_yolo.augment.image_stream import CachedImages

    images = CachedImages(cache, fliplr=0.0)
    now, then = [], []
    for _ in range(rounds):
        for i, png in enumerate(pngs):
            t0 = time.perf_counter()
            _, bad = images[i]
            t1 = time.perf_counter()
            decode_png_entry(png, cache.image_ids[i], cache.imgsz)
            t2 = time.perf_counter()
            assert bad == -1
            now.append(t1 - t0)
            then.append(t2 - t1)
    return 1 / statistics.median(now), 1 / statistics.median(then)


def measure(size: int, n: int, steps: int, batch: int, device, teacher_file: Path | None, teacher_model: str) -> dict:
    """The cache of the synthetic set at `size` px: bytes per image (source, format 2, format 3), build and read
    rates."""
    import torch

    from ikd_yolo.augment.adv_cache import CacheJob, attack_dataset, build_cache, label_task, open_cache
    from ikd_yolo.augment.attack import AdversarialAttack, AttackSettings
    from ikd_yolo.augment.cache_format2 import encode_png_entry
    from ikd_yolo.config import resolve_distill_config, section
    from ikd_yolo.inputs import load_data

    data = load_data(T.bench_data(size, n))
    teacher = load_frozen_teacher(teacher_file or T.bench_teacher(nc=data["nc"], cfg=teacher_model), data, device)
    settings = section(AttackSettings, resolve_distill_config({"distill": "ikd-score", "adv_steps": steps}))
    dataset = attack_dataset(data, size, batch, label_task(teacher, data))
    workers = 4 if device.type == "cuda" else 0
    job = CacheJob(teacher, AdversarialAttack(settings), device, batch, progress=False, workers=workers)
    with tempfile.TemporaryDirectory() as folder:
        cache = open_cache(Path(folder), teacher, dataset, size, settings, 0)
        t0 = time.perf_counter()
        stats = build_cache(cache, dataset, job)
        if device.type == "cuda":
            torch.cuda.synchronize()
        build_s = time.perf_counter() - t0
        assert stats["images"] == n and cache.missing() == []
        pngs = [encode_png_entry(cache.read(i), cache.image_ids[i]) for i in range(n)]
        read_now, read_then = read_rates(cache, pngs)
        format3 = cache.size_bytes() / n
    source = sum(Path(f).stat().st_size for f in dataset.im_files) / n
    format2 = sum(map(len, pngs)) / n
    return {"imgsz": size, "images": n, "source_kb": source / 1e3, "format2_kb": format2 / 1e3,
            "format3_kb": format3 / 1e3, "format2_vs_source": format2 / source, "format3_vs_source": format3 / source,
            "format2_vs_format3": format2 / format3, "build_images_per_s": n / build_s,
            "read_images_per_s": read_now, "read_format2_images_per_s": read_then}


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark, print the table, write the JSON; return the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--sizes", default="160,320,640", help="image sizes in px, comma-separated")
    p.add_argument("--n", type=int, default=16, help="training images per size")
    p.add_argument("--steps", type=int, default=2, help="attack steps (the ikd-score preset's attack otherwise)")
    p.add_argument("--batch", type=int, default=8, help="images attacked at once")
    p.add_argument("--device", default="cpu", help="cpu, or a CUDA device such as 0")
    p.add_argument("--teacher", type=Path, help="a trained teacher .pt (default: an untrained --teacher-model)")
    p.add_argument("--teacher-model", default="yolo11s.yaml", help="model YAML of the untrained teacher")
    p.add_argument("--out", type=Path, default=T.RESULTS / "cache_cpu.json")
    a = p.parse_args(argv)
    import torch
    from ultralytics.utils.torch_utils import select_device

    from ikd_yolo.evidence.paths import portable

    device = torch.device("cpu") if a.device == "cpu" else select_device(a.device, verbose=False)
    t0 = time.perf_counter()
    with T.quiet():
        rows = [measure(int(s), a.n, a.steps, a.batch, device, a.teacher, a.teacher_model) for s in a.sizes.split(",")]
    env = T.environment(a.device)
    report = {
        "benchmark": "adversarial_cache",
        "command": ("python benchmarks/bench_cache.py " + " ".join(sys.argv[1:] if argv is None else argv)).strip(),
        "config": {"steps": a.steps, "batch": a.batch, "device": a.device,
                   "teacher": portable(a.teacher) if a.teacher else f"{a.teacher_model} (untrained)",
                   "data": "synthetic shapes drawn at each size, JPEG quality 95"},
        "environment": env,
        "wall_s": round(time.perf_counter() - t0, 1),
        "results": rows,
    }
    table = [[r["imgsz"], r["images"], f"{r['source_kb']:.1f}",
              f"{r['format2_kb']:.1f} ({r['format2_vs_source']:.2f}x)",
              f"{r['format3_kb']:.1f} ({r['format3_vs_source']:.2f}x)", f"{r['format2_vs_format3']:.2f}x",
              f"{r['build_images_per_s']:.2f}", f"{r['read_images_per_s']:.0f} / {r['read_format2_images_per_s']:.0f}"]
             for r in rows]
    print(f"\nAdversarial cache, {a.steps}-step attack, teacher {report['config']['teacher']}, device {a.device}, "
          f"batch {a.batch}\n")
    print(T.markdown_table(["px", "images", "source KB/img", "format 2 KB/img (vs source)",
                            "format 3 KB/img (vs source)", "format 2 / format 3", "build img/s",
                            "read img/s (format 3 / format 2)"], table))
    print(f"\nwrote {T.write_json(a.out, report)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
