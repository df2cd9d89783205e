"""Datasets for ikd-yolo: a procedural synthetic shapes dataset for offline tests and benchmarks."""

from .synthetic import CLASS_NAMES, LARGE_AREA, SMALL_AREA, dataset_stats, make_synthetic_dataset, size_bucket

__all__ = ["CLASS_NAMES", "LARGE_AREA", "SMALL_AREA", "dataset_stats", "make_synthetic_dataset", "size_bucket"]
