"""Evidence that distillation works: matched (method, seed) student runs, two evaluators, paired comparisons.

`bench.run_benchmark` runs a profile (`ikd-yolo bench-distill`, `ikd-yolo demo`); `runs` trains one student or a
cached teacher; `coco` is the second evaluator; `report` summarises and plots; `machine` describes the hardware.

Examples:
    >>> from ikd_yolo.evidence import run_benchmark
    >>> summary = run_benchmark(profile="quick")  # 3 seeds x none, ultralytics, fgd, ikd-fgd on 2 CPU cores
"""

from .bench import PROFILES, method_args, parse_methods, parse_seeds, resolve_settings, run_benchmark, run_one

__all__ = ["PROFILES", "method_args", "parse_methods", "parse_seeds", "resolve_settings", "run_benchmark", "run_one"]
