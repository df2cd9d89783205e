"""Errors a user can fix, reported as one line by the command line (and by the benchmark scripts) instead of a trace."""

from __future__ import annotations

import sys
from typing import Any, Callable


class UserError(ValueError):
    """Something the user asked for cannot work; the message names the problem and the fix on one line."""


class InputError(UserError):
    """A file or dataset the run names cannot be used."""


class StudentError(InputError):
    """The student (`model=`) cannot be distilled."""


class TeacherError(InputError):
    """The teacher cannot be used."""


class DataError(InputError):
    """The dataset (`data=`) cannot be read or made."""


def report_user_errors(command: str, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> int:
    """Run `fn(*args, **kwargs)`; return 0, or 2 after printing a UserError (or a missing file) as one line."""
    try:
        fn(*args, **kwargs)
    except (UserError, FileNotFoundError) as e:
        print(f"{command}: error: {e}", file=sys.stderr)
        return 2
    return 0
