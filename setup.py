"""Build the C++/CUDA extension of ikd-yolo (ikd_yolo._C, and the tests' ikd_yolo._C_emulated); the project's
metadata is in pyproject.toml.

Developer install (uses the torch already installed; see README):
    pip install -c constraints.txt torch torchvision ninja
    pip install --no-build-isolation -c constraints.txt -e ".[test]"

GPU targets of the CUDA kernels: TORCH_CUDA_ARCH_LIST when set (CI sets "9.0" to compile once); else the GPUs this
machine has (torch's choice: their compute capabilities, PTX for the newest); else DEFAULT_CUDA_ARCHS.
"""

import os
import re
import shutil
from pathlib import Path

from setuptools import setup

ROOT = Path(__file__).parent

# The GPUs the CUDA 13 wheels of torch are built for (torch.cuda.get_arch_list(): Turing T4/RTX 20, A100, RTX 30/A10,
# H100/H200, B200, RTX 50), with PTX for newer ones. An arch's machine code runs on the later ones of its major
# version (8.0's on an RTX 40 or L4, 8.9), so listing a major's first arch covers it; a GPU none of these runs gets
# the PyTorch reference ops with one warning (ikd_yolo/ops/_arch.py).
DEFAULT_CUDA_ARCHS = "7.5;8.0;8.6;9.0;10.0;12.0+PTX"


def nvcc_arch_flags() -> list[str]:
    """nvcc's -gencode flags for the GPU targets (see the module docstring), as torch's extension builder makes them."""
    from torch.utils import cpp_extension

    import torch

    if not os.environ.get("TORCH_CUDA_ARCH_LIST") and not torch.cuda.is_available():
        os.environ["TORCH_CUDA_ARCH_LIST"] = DEFAULT_CUDA_ARCHS
    return cpp_extension._get_cuda_arch_flags()  # the flags BuildExtension would add itself


def compiled_archs(flags: list[str]) -> str:
    """The code nvcc emits for `flags`, comma-separated by arch (sm_90,sm_120,compute_120): what ikd_yolo._C says it
    holds (torch.ops.ikd._cuda_archs)."""
    codes = {code for flag in flags for code in re.findall(r",code=(\w+)", flag)}
    return ",".join(sorted(codes, key=lambda code: (int(re.sub(r"\D", "", code)), code.startswith("compute"))))


def _find_cuda_home() -> str | None:
    """CUDA_HOME / CUDA_PATH, else the toolkit of the nvcc on PATH (symlinks resolved) or /usr/local/cuda, else None."""
    for var in ("CUDA_HOME", "CUDA_PATH"):
        if os.environ.get(var):
            return os.environ[var]
    nvcc = shutil.which("nvcc")
    candidates = [Path(nvcc).resolve().parents[1]] if nvcc else []
    candidates.append(Path("/usr/local/cuda"))
    for home in candidates:
        if (home / "include" / "cuda_runtime_api.h").exists() and (home / "bin" / "nvcc").exists():
            return str(home)
    return None


def extension_modules() -> tuple[list, dict]:
    """Return (ext_modules, cmdclass) for the fused ops in csrc/: the modules ikd_yolo._C and ikd_yolo._C_emulated.

    ikd_yolo._C is what ikd_yolo.ops loads. Its CPU kernels are always built; the CUDA kernels join it when nvcc and a
    CUDA build of torch are present (or IKD_FORCE_CUDA=1; IKD_NO_CUDA=1 skips them). TORCH_CUDA_ARCH_LIST picks the
    GPU targets. ikd_yolo._C_emulated holds the test-only ops ikd::_emulated_* (the CUDA kernels' device code run on
    the host, no nvcc needed): only the tests import it, so a user's torch.ops.ikd holds the real ops alone.
    """
    cuda_home = _find_cuda_home()
    if cuda_home:
        os.environ.setdefault("CUDA_HOME", cuda_home)  # read by torch.utils.cpp_extension at import
    import torch
    from torch.utils import cpp_extension

    if cuda_home:
        cpp_extension.CUDA_HOME = cuda_home
    with_cuda = os.environ.get("IKD_NO_CUDA", "0") != "1" and (
        os.environ.get("IKD_FORCE_CUDA", "0") == "1" or (cuda_home is not None and torch.version.cuda is not None)
    )
    csrc = Path("csrc")
    ops = csrc / "ops"  # named by op, as torchvision's csrc/ops
    # ikd_module.cpp: the module init; ops/<op>.cpp: each op family's schemas; ops/cpu/<op>_kernel.cpp: its CPU kernels
    sources = [str(csrc / "ikd_module.cpp"), *(str(p) for d in (ops, ops / "cpu") for p in sorted(d.glob("*.cpp")))]
    # -fno-math-errno / -fno-trapping-math let the float loops vectorise (torch builds with them too); -g0 drops the
    # debug info Python's CFLAGS ask for (a third of the compile time)
    cxx = ["-O3", "-g0", "-fno-math-errno", "-fno-trapping-math"]
    include_dirs = [str(ROOT / "csrc")]  # every #include of the project is rooted at csrc/ ("ops/device/adv_step.h")
    # ops/emulated/: the CUDA kernels' device code run on the host, its schemas and module init (for the tests)
    emulated = cpp_extension.CppExtension(
        "ikd_yolo._C_emulated",
        sorted(str(p) for p in (ops / "emulated").glob("*.cpp")),
        extra_compile_args={"cxx": list(cxx)},
        include_dirs=list(include_dirs),
    )
    kwargs = {"extra_compile_args": {"cxx": cxx}, "include_dirs": include_dirs}
    if with_cuda:
        arch_flags = nvcc_arch_flags()
        # ops/cuda/: <op>_kernel.cu, ATen-free kernels (nvcc, once per architecture); <op>_cuda.cpp, their ATen glue
        sources += sorted(str(p) for p in (ops / "cuda").glob("*.cu"))
        sources += sorted(str(p) for p in (ops / "cuda").glob("*.cpp"))
        # --fmad=false: no multiply-add contraction, so the device rounds every operation as written, as the host
        # emulation of the kernels (csrc/ops/emulated, tested on CPU) and the reference's separate torch ops do;
        # the arch flags given here are the ones built (BuildExtension adds its own only when none are given)
        kwargs["extra_compile_args"]["nvcc"] = ["-O3", "--expt-relaxed-constexpr", "--fmad=false", *arch_flags]
        kwargs["define_macros"] = [("IKD_WITH_CUDA", None), ("IKD_CUDA_ARCHS", compiled_archs(arch_flags))]
        ext = cpp_extension.CUDAExtension("ikd_yolo._C", sources, **kwargs)
    else:
        ext = cpp_extension.CppExtension("ikd_yolo._C", sources, **kwargs)
    return [ext, emulated], {"build_ext": cpp_extension.BuildExtension}


if __name__ == "__main__":  # pip's build backend runs this file as __main__; the tests import its functions
    ext_modules, cmdclass = extension_modules()
    setup(ext_modules=ext_modules, cmdclass=cmdclass)  # everything else is in pyproject.toml
