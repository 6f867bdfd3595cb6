"""Is a model's reply usable? Pure checks on the text, the finish reason and the asked format.

A provider can answer 200 with nothing useful in it; these checks turn such replies into a
reason to try the next model instead of handing them to the application.
"""

from __future__ import annotations

import json
from typing import Any


def wants_json(response_format: Any) -> bool:
    """True when the request asked for a JSON object or a JSON schema."""
    if isinstance(response_format, dict):
        return response_format.get("type") in {"json_object", "json_schema"}
    return False


def _strip_fence(text: str) -> str:
    """Models often wrap JSON in a Markdown code fence even when asked not to."""
    stripped = text.strip()
    if stripped.startswith("```") and stripped.endswith("```"):
        body = stripped[3:-3]
        first_line, _, rest = body.partition("\n")
        return rest if first_line.strip().isalpha() or not first_line.strip() else body
    return stripped


def problem_with(
    content: str | None,
    finish_reason: str | None,
    response_format: Any = None,
    has_tool_calls: bool = False,
    min_truncated_chars: int = 20,
) -> str | None:
    """The reason the reply is bad ("empty", "truncated", "invalid_json"), or None if usable."""
    if has_tool_calls:
        return None
    text = (content or "").strip()
    if not text:
        return "empty"
    if finish_reason == "length" and len(text) < min_truncated_chars:
        return "truncated"
    if wants_json(response_format):
        try:
            parsed = json.loads(_strip_fence(text))
        except ValueError:
            return "invalid_json"
        if response_format.get("type") == "json_object" and not isinstance(parsed, dict):
            return "invalid_json"
    return None
