"""ikd-yolo: Inconsistent Knowledge Distillation for Ultralytics YOLO detectors.

Implements IKD (Liang et al., "Exploring Inconsistent Knowledge Distillation for Object Detection with Data
Augmentation", ACM MM 2023, arXiv:2209.09841) as an Ultralytics trainer subclass.

Examples:
    >>> from ultralytics import YOLO
    >>> from ikd_yolo import IKDTrainer
    >>> YOLO("yolo11n.yaml").train(  # needs a trained teacher.pt and a dataset  # doctest: +SKIP
    ...     trainer=IKDTrainer, teacher="teacher.pt", distill="ikd-score", data="data.yaml")
"""

from ._version import __version__

__all__ = ["IKDOBBTrainer", "IKDPoseTrainer", "IKDSegmentationTrainer", "IKDTrainer", "__version__", "ikd_trainer_for"]
_TRAINER_NAMES = {"IKDTrainer", "IKDSegmentationTrainer", "IKDPoseTrainer", "IKDOBBTrainer", "ikd_trainer_for"}


def __getattr__(name: str):
    """Import the trainers lazily so `import ikd_yolo.ops` stays light."""
    if name in _TRAINER_NAMES:
        from . import trainer

        return getattr(trainer, name)
    raise AttributeError(f"module 'ikd_yolo' has no attribute {name!r}")
