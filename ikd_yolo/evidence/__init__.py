"""Evidence that distillation works: matched (method, seed) student runs, two evaluators, paired comparisons.

`bench.run_benchmark` runs a profile (`ikd-yolo bench-distill`, `ikd-yolo demo`); `methods` parses what it runs;
`tasks` fits it to a task; `runs` trains one student or a cached teacher; `parallel` and `progress` run several at
once; `coco` is the second evaluator; `report` summarises and plots; `machine` describes the hardware.

Examples:
    >>> from ikd_yolo.evidence import run_benchmark
    >>> summary = run_benchmark(profile="quick")  # trains a teacher and 3 seeds of 4 students  # doctest: +SKIP
"""

from .bench import method_args, resolve_settings, run_benchmark, run_one
from .methods import Method, parse_methods, parse_seeds
from .profiles import PROFILES

__all__ = ["PROFILES", "Method", "method_args", "parse_methods", "parse_seeds", "resolve_settings", "run_benchmark",
           "run_one"]
