"""Is a reply usable? The checks that turn a 200 with nothing useful into a fallback."""

import pytest

from service.completion.answers import problem_with, wants_json

JSON_OBJECT = {"type": "json_object"}
JSON_SCHEMA = {
    "type": "json_schema",
    "json_schema": {"name": "answer", "schema": {"type": "object"}},
}


@pytest.mark.parametrize("content", [None, ""])
def test_missing_or_empty_content_is_empty(content):
    assert problem_with(content, "stop") == "empty"


@pytest.mark.parametrize("content", [" ", "\n\t  \n", "\u00a0\u2003"])
def test_whitespace_only_content_is_empty(content):
    assert problem_with(content, "stop") == "empty"


def test_a_normal_answer_has_no_problem():
    assert problem_with("Paris is the capital of France.", "stop") is None


def test_a_short_answer_that_finished_normally_is_kept():
    assert problem_with("Hi", "stop") is None


def test_a_short_answer_cut_off_by_the_length_limit_is_truncated():
    assert problem_with("Th", "length") == "truncated"


def test_a_long_answer_cut_off_by_the_length_limit_is_kept():
    assert problem_with("A long answer that ran out of tokens half way", "length") is None


def test_the_truncation_limit_is_configurable_and_inclusive():
    assert problem_with("12345", "length", min_truncated_chars=6) == "truncated"
    assert problem_with("123456", "length", min_truncated_chars=6) is None
    assert problem_with("Th", "length", min_truncated_chars=0) is None


def test_surrounding_whitespace_does_not_count_towards_the_truncation_limit():
    assert problem_with("   Th          \n\n         ", "length") == "truncated"


@pytest.mark.parametrize("response_format", [JSON_OBJECT, JSON_SCHEMA])
def test_prose_when_json_was_asked_is_invalid_json(response_format):
    assert problem_with("Sure! Here it is: answer 42", "stop", response_format) == "invalid_json"


@pytest.mark.parametrize("response_format", [JSON_OBJECT, JSON_SCHEMA])
def test_valid_json_when_json_was_asked_is_kept(response_format):
    assert problem_with('{"answer": 42}', "stop", response_format) is None


def test_json_cut_off_by_the_length_limit_is_invalid_json():
    assert problem_with('{"answer": "a long text that never en', "length", JSON_OBJECT) == (
        "invalid_json"
    )


@pytest.mark.parametrize(
    "content",
    [
        '```json\n{"answer": 42}\n```',
        '```\n{"answer": 42}\n```',
        '  ```json\n{"answer": 42}\n```\n',
    ],
)
def test_json_wrapped_in_a_markdown_fence_is_accepted(content):
    assert problem_with(content, "stop", JSON_OBJECT) is None


def test_invalid_json_inside_a_fence_is_still_invalid():
    assert problem_with("```json\nnot json at all\n```", "stop", JSON_OBJECT) == "invalid_json"


@pytest.mark.parametrize("response_format", [None, {"type": "text"}, "json_object"])
def test_prose_is_fine_when_no_json_object_or_schema_was_asked(response_format):
    assert problem_with("plain prose", "stop", response_format) is None


@pytest.mark.parametrize("content", [None, "", "   "])
def test_a_reply_with_tool_calls_is_accepted_without_text(content):
    assert problem_with(content, "tool_calls", JSON_OBJECT, has_tool_calls=True) is None


def test_wants_json_only_for_json_object_and_json_schema():
    assert wants_json(JSON_OBJECT)
    assert wants_json(JSON_SCHEMA)
    assert not wants_json({"type": "text"})
    assert not wants_json(None)
    assert not wants_json("json_object")
