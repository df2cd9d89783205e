"""ikd-yolo: Inconsistent Knowledge Distillation for Ultralytics YOLO detectors.

Implements IKD (Liang et al., "Exploring Inconsistent Knowledge Distillation for Object Detection with Data
Augmentation", ACM MM 2023, arXiv:2209.09841) as an Ultralytics trainer subclass.

Examples:
    >>> from ultralytics import YOLO
    >>> from ikd_yolo import IKDTrainer
    >>> YOLO("yolo11n.yaml").train(  # needs a trained teacher.pt and a dataset  # doctest: +SKIP
    ...     trainer=IKDTrainer, teacher="teacher.pt", distill="ikd-fgd", data="data.yaml")
"""

__version__ = "0.1.0"

__all__ = ["IKDTrainer", "__version__"]


def __getattr__(name: str):
    """Import the trainer lazily so `import ikd_yolo.ops` stays light."""
    if name == "IKDTrainer":
        from .trainer import IKDTrainer

        return IKDTrainer
    raise AttributeError(f"module 'ikd_yolo' has no attribute {name!r}")
