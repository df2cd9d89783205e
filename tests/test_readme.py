"""The README's test command is exactly what CI runs, and its demo command installs the same way, without the test
extras."""

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

    # the same steps, without the test extras: a user's install is what the package needs to run
    assert installs(demo) == [step.replace('".[test]"', ".") for step in installs(test)] and len(installs(test)) == 2
