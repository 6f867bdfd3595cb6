"""Reading ``{"text": ..., "label": ...}`` JSON-lines files, shared by every labelled-data reader.

Route calibration, evaluation data and the complexity examples all use this format; each
reader turns a line's problem into its own error type, this module only parses.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any


def text_rows(text: str) -> Iterator[tuple[int, dict[str, Any] | None, str | None]]:
    """(line number, row, problem) for every non-blank line; row is None when problem is set.

    A row is an object with a string ``text`` (possibly blank: callers decide); the label,
    and whether it may be missing, is the caller's business.
    """
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as error:
            yield number, None, f"not JSON ({error.msg})"
            continue
        if not isinstance(row, dict) or not isinstance(row.get("text"), str):
            yield number, None, "expected an object with a 'text' string"
            continue
        yield number, row, None
