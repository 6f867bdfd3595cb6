"""Outcome files: the format, every bad line named, and how the build treats them."""

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from conftest import SMALL_ROUTER, SMALL_ROUTES, WriteRoutes, run_build_script

from service.config.outcomes import (
    OutcomeDataError,
    parse_outcomes,
    read_outcome_files,
    unlisted_models,
)
from service.config.routes import RouteSetError, load_route_set
from service.index import quality
from service.index.fingerprint import fingerprint
from service.index.store import read_manifest


def test_a_good_row_keeps_its_scores_and_ignores_other_keys() -> None:
    line = json.dumps(
        {"prompt": " hi ", "outcomes": {"a/x": 1, "b/y": 0.25}, "route": "r", "tokens": 9}
    )

    rows, problems = parse_outcomes(line, "f.jsonl")

    assert problems == []
    assert rows[0].prompt == "hi" and dict(rows[0].outcomes) == {"a/x": 1.0, "b/y": 0.25}


def test_every_bad_line_is_named_with_every_problem_of_it() -> None:
    text = "\n".join(
        [
            "{not json",
            json.dumps({"outcomes": {"a": 1}}),
            json.dumps({"prompt": "p", "outcomes": {"a": 1.5, "b": -0.1, "c": True}}),
            json.dumps({"prompt": "p", "outcomes": {}}),
            "",
            json.dumps({"prompt": "fine", "outcomes": {"a": 0}}),
            json.dumps(["prompt"]),
        ]
    )

    rows, problems = parse_outcomes(text, "o.jsonl")

    assert [row.prompt for row in rows] == ["fine"]
    shown = [str(problem) for problem in problems]
    assert shown[0].startswith("o.jsonl: line 1: not JSON")
    assert "o.jsonl: line 2: needs a non-empty 'prompt' string" in shown
    assert "o.jsonl: line 3: outcomes.a: 1.5 is not a score in [0, 1]" in shown
    assert "o.jsonl: line 3: outcomes.b: -0.1 is not a score in [0, 1]" in shown
    assert "o.jsonl: line 3: outcomes.c: True is not a score in [0, 1]" in shown
    assert any(s.startswith("o.jsonl: line 4: needs 'outcomes'") for s in shown)
    assert any(s.startswith("o.jsonl: line 7: expected a JSON object") for s in shown)


def test_reading_files_lists_the_problems_of_all_of_them(tmp_path: Path) -> None:
    first, second = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    first.write_text('{"prompt": "x", "outcomes": {"m": 7}}\n', encoding="utf-8")
    second.write_text("oops\n", encoding="utf-8")

    with pytest.raises(OutcomeDataError) as caught:
        read_outcome_files([first, second])

    assert [p.file for p in caught.value.problems] == [str(first), str(second)]


def test_models_no_route_lists_are_reported_with_their_counts() -> None:
    rows, _ = parse_outcomes(
        "\n".join(
            json.dumps({"prompt": f"p{i}", "outcomes": {"openai/gpt-4.1": 1, "typo/gpt": 0}})
            for i in range(3)
        ),
        "o.jsonl",
    )

    assert unlisted_models(rows, ["openai/gpt-4.1"]) == {"typo/gpt": 3}


def outcome_lines(count: int, models: dict[str, float]) -> str:
    return "".join(
        json.dumps({"prompt": f"question number {i}", "outcomes": models}) + "\n"
        for i in range(count)
    )


def test_outcome_files_load_with_the_routes_and_enter_the_fingerprint(
    small_routes: Path,
) -> None:
    before = fingerprint(load_route_set(small_routes), "m")
    (small_routes / "outcomes").mkdir()
    (small_routes / "outcomes" / "a.jsonl").write_text(
        outcome_lines(2, {"openai/gpt-4.1": 1}), encoding="utf-8"
    )

    route_set = load_route_set(small_routes)

    assert len(route_set.outcomes) == 2
    assert fingerprint(route_set, "m") != before


def test_an_estimator_fitted_another_way_changes_the_fingerprint(
    small_routes: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (small_routes / "outcomes").mkdir()
    (small_routes / "outcomes" / "a.jsonl").write_text(
        outcome_lines(2, {"openai/gpt-4.1": 1}), encoding="utf-8"
    )
    route_set = load_route_set(small_routes)
    before = fingerprint(route_set, "m")

    monkeypatch.setattr(quality, "SCHEME", quality.SCHEME + " changed")

    assert fingerprint(route_set, "m") != before


def test_a_bad_outcome_file_stops_loading_the_routes_naming_file_and_line(
    small_routes: Path,
) -> None:
    (small_routes / "outcomes").mkdir()
    path = small_routes / "outcomes" / "bad.jsonl"
    path.write_text('{"prompt": "", "outcomes": {"m": 1}}\n', encoding="utf-8")

    with pytest.raises(RouteSetError) as caught:
        load_route_set(small_routes)

    assert f"{path}: line 1: needs a non-empty 'prompt' string" in str(caught.value)


def test_a_bad_outcome_file_fails_the_build_and_keeps_the_previous_index(
    tmp_path: Path, write_routes: WriteRoutes, cli_build
) -> None:
    routes = Path(shutil.copytree(cli_build.routes, tmp_path / "routes"))
    index = Path(shutil.copytree(cli_build.index, tmp_path / "index"))
    before = read_manifest(index)
    (routes / "outcomes").mkdir()
    (routes / "outcomes" / "o.jsonl").write_text(
        outcome_lines(1, {"openai/gpt-4.1": 1}) + '{"prompt": "x", "outcomes": {"m": 2}}\n',
        encoding="utf-8",
    )

    result = run_build_script("--routes", routes, "--index", index, "--quiet")

    assert result.returncode == 2
    assert "o.jsonl: line 2: outcomes.m: 2 is not a score in [0, 1]" in result.stderr
    assert read_manifest(index) == before


def test_the_build_fits_listed_models_and_reports_the_others(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = write_routes(tmp_path / "routes", SMALL_ROUTES, SMALL_ROUTER)
    (routes / "outcomes").mkdir()
    rng = np.random.default_rng(0)
    lines = [
        json.dumps(
            {
                "prompt": f"{'debug my code' if i % 2 else 'bake a cake'} variant {i}",
                "outcomes": {
                    "openai/gpt-4.1": float(rng.random() < 0.8),
                    "openai/gpt-4.1-nano": float(i % 2 == 0),
                    "someone/else": 1.0,
                },
            }
        )
        for i in range(40)
    ]
    (routes / "outcomes" / "o.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")

    result = run_build_script("--routes", routes, "--index", tmp_path / "index", "--quiet")

    assert result.returncode == 0, result.stderr
    assert "outcomes score 'someone/else' (40 rows), which no route lists" in result.stdout
    summary = read_manifest(tmp_path / "index")["quality"]
    assert set(summary["models"]) == {"openai/gpt-4.1", "openai/gpt-4.1-nano"}
    assert summary["unlisted_models"] == {"someone/else": 40}
    assert any(p.name.startswith("quality-") for p in (tmp_path / "index").iterdir())
