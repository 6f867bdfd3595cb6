"""Reading JSON-lines files: one parser for the decision log, conversations and labelled data.

Route calibration, evaluation data and the complexity examples use ``{"text": ..., "label":
...}`` rows (``text_rows``); the decision log and multi-turn sets hold other objects
(``json_lines``). Each reader turns a line's problem into its own error type (or skips the
line); this module only parses.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from typing import Any


def json_lines(lines: Iterable[str]) -> Iterator[tuple[int, Any, str | None]]:
    """(line number, value, problem) for every non-blank line; value is None when problem is set.

    ``lines`` may be an open file, so a large log is read one line at a time.
    """
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            yield number, json.loads(line), None
        except json.JSONDecodeError as error:
            yield number, None, f"not JSON ({error.msg})"


def text_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row, problem) for every non-blank line; row is None when problem is set.

    A row is an object with a string ``text`` (possibly blank: callers decide); the label,
    and whether it may be missing, is the caller's business.
    """
    for number, row, problem in json_lines(text.splitlines()):
        if problem is not None:
            yield number, None, problem
        elif not isinstance(row, dict) or not isinstance(row.get("text"), str):
            yield number, None, "expected an object with a 'text' string"
        else:
            yield number, row, None
