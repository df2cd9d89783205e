"""Build and install ikd-yolo.

Developer install (uses the torch already installed; see README):
    pip install -c constraints.txt torch torchvision
    pip install --no-build-isolation -c constraints.txt -e ".[test]"
"""

from pathlib import Path

from setuptools import find_packages, setup

ROOT = Path(__file__).parent


def extension_modules() -> tuple[list, dict]:
    """Return (ext_modules, cmdclass) for the fused ops in csrc/ (filled in by the kernels work)."""
    return [], {}


ext_modules, cmdclass = extension_modules()

setup(
    name="ikd-yolo",
    version="0.1.0",
    description="Inconsistent Knowledge Distillation (IKD, ACM MM 2023) for Ultralytics YOLO detectors",
    long_description=(ROOT / "README.md").read_text(encoding="utf-8") if (ROOT / "README.md").exists() else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["ikd_yolo", "ikd_yolo.*"]) + ["ikd_yolo.configs"],
    package_dir={"ikd_yolo.configs": "configs"},
    package_data={"ikd_yolo.configs": ["*.yaml"]},
    install_requires=[
        "torch>=2.1",
        "torchvision",
        "ultralytics>=8.4.77",
        "numpy",
        "pycocotools",
        "pybind11",
        "ninja",
    ],
    extras_require={"test": ["pytest", "hypothesis", "onnx"]},
    entry_points={"console_scripts": ["ikd-yolo=ikd_yolo.cli:main"]},
    ext_modules=ext_modules,
    cmdclass=cmdclass,
    zip_safe=False,
)
