"""Validation problems that name the file and the place in it, and the error listing them all.

Route folders and outcome files are checked in full before anything is built, so a user fixes
every mistake in one pass instead of one per run; both report through these two types.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass


@dataclass(frozen=True)
class Problem:
    """One validation problem: the file, the place inside it (a field or a line), what is wrong."""

    file: str
    field: str
    message: str

    def __str__(self) -> str:
        where = f"{self.file}: {self.field}" if self.field else self.file
        return f"{where}: {self.message}"


class ProblemsError(ValueError):
    """Input that cannot be used; ``problems`` lists every reason, ``what`` names the input."""

    what = "input"

    def __init__(self, problems: Iterable[Problem]):
        self.problems = list(problems)
        lines = "\n".join(f"  - {problem}" for problem in self.problems)
        super().__init__(f"invalid {self.what} ({len(self.problems)} problem(s)):\n{lines}")
