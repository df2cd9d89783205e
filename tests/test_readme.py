"""The README's test command is exactly what CI runs, and its demo command installs the same way, without the test
extras, not editable and for the user's GPU (no arch pinned)."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def readme_commands() -> list[str]:
    return re.findall(r"```bash\n(.+?)\n```", (ROOT / "README.md").read_text(), flags=re.S)


def test_ci_runs_the_readme_test_command():
    test_command = next(c for c in readme_commands() if c.rstrip().endswith("python -m pytest tests -q"))
    ci_lines = [line for line in (ROOT / ".ci" / "run").read_text().splitlines() if line and not line.startswith("#")]
    assert test_command in ci_lines


def test_demo_command_installs_like_the_tests():
    commands = readme_commands()
    demo = next(c for c in commands if c.endswith("ikd-yolo demo"))
    test = next(c for c in commands if c.endswith("python -m pytest tests -q"))
    def installs(command: str) -> list[str]:
        return [step.strip() for step in command.replace(" -q", "").split("&&") if "install" in step]

    # the same steps, without the test extras and not editable: a user's install is what the package needs to run,
    # copied into the environment (an editable one breaks when the clone moves or is deleted); and for the user's GPU:
    # no arch list (setup.py builds for the GPU found, else for those torch's wheels run on), where CI compiles one
    user = [step.replace('-e ".[test]"', ".").replace("TORCH_CUDA_ARCH_LIST=9.0 ", "") for step in installs(test)]
    assert installs(demo) == user and len(installs(test)) == 2
    assert " -e " not in demo and installs(demo)[-1].endswith(" .") and "TORCH_CUDA_ARCH_LIST" not in demo


def test_an_installed_copy_reads_the_presets_it_ships(tmp_path):
    """What a non-editable install copies (setup.py build_py: the packages and their data) finds configs/ inside the
    package, even with another package's configs/ beside it in site-packages."""
    import subprocess
    import sys

    site = tmp_path / "site-packages"
    build = subprocess.run([sys.executable, "setup.py", "-q", "build_py", "--build-lib", str(site)], cwd=ROOT,
                           capture_output=True, text=True, timeout=300)
    assert build.returncode == 0, build.stderr[-2000:]
    (site / "configs").mkdir()
    (site / "configs" / "default.yaml").write_text("someone_elses: 1\n")
    probe = ("import ikd_yolo.config as c; from ikd_yolo.cli import main; "
             "print(c.CONFIGS_DIR, c.DEFAULTS['distill'], len(c.preset_names())); main(['train', '--help'])")
    run = subprocess.run([sys.executable, "-c", probe], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                         env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(site), "HOME": str(tmp_path)})
    assert run.returncode == 0, run.stderr[-2000:]
    folder, distill, presets = next(line for line in run.stdout.splitlines() if line.startswith(str(site))).split()
    assert folder == str(site / "ikd_yolo" / "configs") and distill == "score"
    assert int(presets) == len(list((ROOT / "configs").glob("*.yaml"))) - 1  # every preset but default.yaml
