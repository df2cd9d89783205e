"""Benchmark the IKD augmentation ops: PyTorch reference vs fused kernels, on every available device.

For each op and mode, shape and dtype: median wall time over interleaved repeats (reference, fused and floor run in
turn, so a busy machine slows all of them alike), the speedup, effective GB/s (the minimal bytes the op must move:
spectral ops read x (and source) and write y; adv_step reads x_adv, x_clean, momentum and grad twice (norm, update)
and writes x_adv and momentum) and, for spectral mixing, the ratio to the FFT floor, a bare rfft2 + irfft2 pair of
the same batch (with the fp32 casts for fp16/bf16 input, which cuFFT needs for sizes that are not powers of two).
Bandwidth is also given as a share of a measured device copy (and, on CUDA, of the nominal peak).

Examples:
    python benchmarks/bench_kernels.py --quick
    python benchmarks/bench_kernels.py --shapes 16x3x640x640 --devices cpu --threads 2
    python benchmarks/bench_kernels.py --devices cuda --out /tmp/gpu_check
Writes <out>/kernels_<device>.json (default out: benchmarks/results), merged with the rows already there.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))

import _timing as T  # noqa: E402

from ikd_yolo import ops  # noqa: E402
from ikd_yolo.ops import _loader  # noqa: E402

FULL_SHAPES = ["16x3x640x640", "64x3x320x320"]
QUICK_SHAPES = ["8x3x160x160", "4x3x97x131"]
RESULTS = Path(__file__).parent / "results"


def timed(fns: dict, device: str, repeats: int, min_time: float) -> dict[str, tuple[float, float]]:
    """(median, min) seconds per call of each fn, the fns interleaved (the shared timer of benchmarks/_timing.py)."""
    sync = torch.cuda.synchronize if device == "cuda" else None
    times = T.interleaved(fns, rounds=repeats, warmup=1, sync=sync, min_time=min_time)
    return {name: (statistics.median(v), min(v)) for name, v in times.items()}


def copy_bandwidth(device: str, nbytes: int) -> float:
    """Achievable copy bandwidth (GB/s, read + write) of the device for a buffer of nbytes."""
    x = torch.empty(nbytes // 4, device=device)
    y = torch.empty_like(x)
    t = timed({"copy": lambda: y.copy_(x)}, device, 7, 0.02)["copy"][0]
    return 2 * nbytes / t / 1e9


def nominal_bandwidth(device: str) -> float | None:
    """Nominal peak memory bandwidth (GB/s) of the CUDA device, when torch reports clock and bus width."""
    if device != "cuda":
        return None
    p = torch.cuda.get_device_properties(0)
    clock, bus = getattr(p, "memory_clock_rate", None), getattr(p, "memory_bus_width", None)
    return 2 * clock * 1e3 * bus / 8 / 1e9 if clock and bus else None


def with_backend(name: str, fn):
    def call():
        ops.set_backend(name)
        return fn()

    return call


def bands(batch: int, device: str, kind: str):
    """Per-sample band as the IKD policy sets it (alternating high band / low band), or the full band (worst case)."""
    if kind == "full":
        return 0.0, 2.0
    hi_band = torch.arange(batch, device=device) % 2 == 0
    lo = torch.where(hi_band, 0.5, 0.0).double()
    hi = torch.where(hi_band, 2.0, 0.25).double()
    return lo, hi


def spectral_cases(x: torch.Tensor, band_kinds: list[str]):
    """(op, mode, band, fn(), bytes) for the three spectral ops."""
    b = x.shape[0]
    src = torch.rand_like(x)
    perm = torch.randperm(b, device=x.device)
    # CPU: a seeded generator; CUDA: the default generators (reference: torch.randn on the GPU; fused: the seed from
    # the CPU generator), as training runs them -- a CPU generator would make the reference copy noise to the GPU
    gen = torch.Generator().manual_seed(0) if x.device.type == "cpu" else None
    n = x.numel() * x.element_size()
    for band in band_kinds:
        lo, hi = bands(b, x.device.type, band)
        for mode in ("complex", "amplitude"):
            yield "spectral_mix_noise", mode, band, lambda m=mode, lo=lo, hi=hi: ops.spectral_mix_noise(
                x, 0.08, lo, hi, 1.0, m, generator=gen), 2 * n
            yield "spectral_mix_shuffle", mode, band, lambda m=mode, lo=lo, hi=hi: ops.spectral_mix_shuffle(
                x, perm, lo, hi, 0.7, m), 2 * n
            yield "spectral_mix", mode, band, lambda m=mode, lo=lo, hi=hi: ops.spectral_mix(
                x, src, lo, hi, 0.7, m), 3 * n


def fft_floor(x: torch.Tensor):
    h, w = x.shape[-2:]
    if x.dtype in (torch.float16, torch.bfloat16):
        return lambda: torch.fft.irfft2(torch.fft.rfft2(x.float()), s=(h, w)).to(x.dtype)
    return lambda: torch.fft.irfft2(torch.fft.rfft2(x), s=(h, w))


def bench_device(device: str, shapes: list[str], repeats: int, band_kinds: list[str], op_filter: list[str] | None):
    records = []
    dtypes = [torch.float32] + ([torch.float16, torch.bfloat16] if device == "cuda" else [])
    min_time = 0.02 if device == "cuda" else 0.0
    for shape_s in shapes:
        shape = tuple(int(v) for v in shape_s.split("x"))
        for dtype in dtypes:
            x = torch.rand(shape, device=device).to(dtype)
            floor_t = None
            cases = list(spectral_cases(x, band_kinds))
            xc, grad = x.clone(), torch.randn_like(x)
            mom = torch.zeros_like(x)
            n = x.numel() * x.element_size()
            cases.append(("adv_step", "-", "-", lambda: ops.adv_step(x, xc, grad, mom, 2 / 255, 8 / 255), 7 * n))
            for op, mode, band, fn, nbytes in cases:
                if op_filter and op not in op_filter:
                    continue
                fns = {"reference": with_backend("reference", fn), "fused": with_backend("fused", fn)}
                if op != "adv_step":
                    fns["floor"] = fft_floor(x)
                stats = timed(fns, device, repeats, min_time)
                ops.set_backend("auto")
                t = {k: v[0] for k, v in stats.items()}  # medians
                if "floor" in t:
                    floor_t = t["floor"]
                rec = {
                    "op": op, "mode": mode, "band": band, "shape": shape_s, "dtype": str(dtype).removeprefix("torch."),
                    "device": device, "reference_ms": t["reference"] * 1e3, "fused_ms": t["fused"] * 1e3,
                    "speedup": t["reference"] / t["fused"], "fused_gbps": nbytes / t["fused"] / 1e9,
                    "reference_gbps": nbytes / t["reference"] / 1e9,
                    "floor_ms": t["floor"] * 1e3 if "floor" in t else None,
                    "vs_floor": t["fused"] / t["floor"] if "floor" in t else None,
                    **{f"{k}_min_ms": v[1] * 1e3 for k, v in stats.items()},  # best case, for a busy machine
                }
                records.append(rec)
                print(row(rec), flush=True)
            del floor_t
    return records


HEADER = (f"{'op':<21}{'mode':<10}{'band':<7}{'shape':<14}{'dtype':<9}{'ref ms':>9}{'fused ms':>10}{'speedup':>8}"
          f"{'GB/s':>8}{'floor ms':>10}{'/floor':>7}  |{'min: speedup':>13}{'/floor':>7}")


def row(r: dict) -> str:
    """Medians, then the same ratios from the fastest repeat of each (robust to a busy machine)."""
    floor = f"{r['floor_ms']:>10.2f}{r['vs_floor']:>7.2f}" if r["floor_ms"] else f"{'-':>10}{'-':>7}"
    best = f"{r['reference_min_ms'] / r['fused_min_ms']:>12.2f}x"
    best += f"{r['fused_min_ms'] / r['floor_min_ms']:>7.2f}" if r.get("floor_min_ms") else f"{'-':>7}"
    return (f"{r['op']:<21}{r['mode']:<10}{r['band']:<7}{r['shape']:<14}{r['dtype']:<9}{r['reference_ms']:>9.2f}"
            f"{r['fused_ms']:>10.2f}{r['speedup']:>7.2f}x{r['fused_gbps']:>8.1f}{floor}  |{best}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"small shapes {QUICK_SHAPES}, fewer repeats")
    parser.add_argument("--shapes", nargs="+", help=f"BxCxHxW shapes (default {FULL_SHAPES})")
    parser.add_argument("--devices", nargs="+", help="cpu and/or cuda (default: every available one)")
    parser.add_argument("--ops", nargs="+", help="only these ops")
    parser.add_argument("--bands", nargs="+", default=["policy", "full"], help="policy (per-sample high/low), full")
    parser.add_argument("--repeats", type=int, help="timed repeats per variant (default 9, quick 5)")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads(), help="CPU threads for both paths")
    parser.add_argument("--out", type=Path, default=RESULTS,
                        help=f"folder of kernels_<device>.json (default {RESULTS})")
    args = parser.parse_args()

    torch.set_num_threads(args.threads)  # the same for reference and fused
    if _loader.load() is None:
        raise SystemExit(f"fused extension unavailable: {_loader.error()}")
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    shapes = args.shapes or (QUICK_SHAPES if args.quick else FULL_SHAPES)
    repeats = args.repeats or (5 if args.quick else 9)
    args.out.mkdir(parents=True, exist_ok=True)
    for device in devices:
        env = T.environment(device)
        name = env["gpu"] if device == "cuda" else env["cpu"]
        big = max(int(torch.tensor([int(v) for v in s.split("x")]).prod()) for s in shapes) * 4
        copy_gbps, peak = copy_bandwidth(device, big), nominal_bandwidth(device)
        print(f"\n{device}: {name}, torch {env['torch']}, threads {env['torch_threads']}, "
              f"copy {copy_gbps:.1f} GB/s" + (f", nominal {peak:.0f} GB/s" if peak else "")
              + f", load average {env['load_avg_1m']:.1f} on {env['cpu_count']} CPUs")
        print(HEADER)
        records = bench_device(device, shapes, repeats, args.bands, args.ops)
        for r in records:
            r["pct_of_copy_bw"] = 100 * r["fused_gbps"] / copy_gbps
            r["pct_of_nominal_bw"] = 100 * r["fused_gbps"] / peak if peak else None
        meta = {"device": device, "device_name": name, "threads": env["torch_threads"], "copy_gbps": copy_gbps,
                "nominal_gbps": peak, "repeats": repeats, "quick": args.quick, "environment": env}
        print(f"-> {save(args.out / f'kernels_{device}.json', meta, records)}")


def save(out: Path, meta: dict, records: list[dict]) -> Path:
    """Merge into `out` (kernels_<device>.json): a new run replaces the rows of the same configuration."""
    for r in records:
        r.update(threads=meta["threads"], device_name=meta["device_name"],
                 loadavg_1min=meta["environment"]["load_avg_1m"])
    old = json.loads(out.read_text()).get("results", []) if out.exists() else []
    key = lambda r: (r["op"], r["mode"], r["band"], r["shape"], r["dtype"], r.get("threads"))  # noqa: E731
    fresh = {key(r) for r in records}
    merged = [r for r in old if key(r) not in fresh] + records
    out.write_text(json.dumps({"last_run": meta, "results": merged}, indent=1))
    return out


if __name__ == "__main__":
    main()
