"""The `>>>` examples in ikd_yolo's docstrings run as doctests (those that need a trained teacher, a dataset or a
training run are marked `# doctest: +SKIP` with what they need)."""

from __future__ import annotations

import doctest
import importlib
import pkgutil

import pytest

import ikd_yolo

MODULES = ["ikd_yolo"] + sorted(m.name for m in pkgutil.walk_packages(ikd_yolo.__path__, "ikd_yolo.")
                                if m.name not in ("ikd_yolo._C", "ikd_yolo._C_emulated"))


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS, report=True)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples of {name} failed (see stdout)"


def test_examples_run_where_they_can():
    """Every module with examples is collected, and most of its examples run (not skipped)."""
    ran = skipped = 0
    for name in MODULES:
        for test in doctest.DocTestFinder().find(importlib.import_module(name)):
            for example in test.examples:
                skip = example.options.get(doctest.SKIP, False)
                ran, skipped = ran + (not skip), skipped + skip
    assert ran >= 50 and ran > 2 * skipped, (ran, skipped)
