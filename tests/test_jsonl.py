"""One JSON-lines parser: line numbers for errors, blank lines skipped, a cut last line found."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from service.config.jsonl import json_lines
from service.tools.dynamic_eval import read_conversations
from service.tools.feedback import read_records


def test_lines_are_numbered_from_one_and_blank_lines_skipped() -> None:
    lines = ['{"a": 1}', "", "   ", "[1, 2]", '{"cut": ']
    parsed = list(json_lines(lines))
    assert parsed[:2] == [(1, {"a": 1}, None), (4, [1, 2], None)]
    number, value, problem = parsed[2]
    assert (number, value) == (5, None) and problem is not None and problem.startswith("not JSON")


def test_a_decision_log_line_cut_short_by_a_crash_is_skipped(tmp_path: Path) -> None:
    log = tmp_path / "decisions.jsonl"
    log.write_text('{"type": "decision", "decision_id": "a"}\n[1]\n{"type": "feedb', "utf-8")
    assert list(read_records(log)) == [{"type": "decision", "decision_id": "a"}]


def test_a_broken_conversation_line_is_named_by_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "multiturn.jsonl"
    good = json.dumps({"id": "c1", "turns": [{"text": "hi", "label": "greetings"}]})
    path.write_text(f"{good}\n\n{{broken\n", encoding="utf-8")
    with pytest.raises(ValueError, match=rf"{path.name}:3: not JSON"):
        read_conversations(path)
    path.write_text(f"{good}\n", encoding="utf-8")
    assert read_conversations(path) == [[("hi", "greetings")]]
