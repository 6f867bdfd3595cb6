"""Route files: loading a folder, validation messages that name file and field, fingerprint."""

import copy
from pathlib import Path
from typing import Any

import pytest
from conftest import SMALL_ROUTER, SMALL_ROUTES, WriteRoutes

from service.config.routes import RouteSetError, load_route_set
from service.config.settings import MULTILINGUAL_MODEL
from service.index.fingerprint import fingerprint

EMBEDDING_MODEL = MULTILINGUAL_MODEL


def _routes() -> dict[str, Any]:
    return copy.deepcopy(SMALL_ROUTES)


def _problem_lines(error: RouteSetError) -> list[str]:
    return [line for line in str(error).splitlines() if line.startswith("  - ")]


# -- a valid folder -------------------------------------------------------------------------


def test_valid_folder_loads_every_route_in_file_order(small_routes: Path) -> None:
    route_set = load_route_set(small_routes)

    assert route_set.names == ("coding", "cooking", "greetings")
    assert route_set.default.name == "greetings"
    coding = route_set.get("coding")
    assert coding is not None
    assert coding.model == "openai/gpt-4.1"
    assert coding.fallbacks == ("anthropic/claude-sonnet-4-5",)
    assert coding.utterances == tuple(SMALL_ROUTES["coding"]["utterances"])
    assert route_set.get("cooking").fallbacks == ()  # type: ignore[union-attr]
    assert route_set.get("nope") is None


def test_route_name_defaults_to_the_file_stem(tmp_path: Path, write_routes: WriteRoutes) -> None:
    routes = _routes()
    assert "name" not in routes["cooking"]
    routes["kitchen"] = routes.pop("cooking")
    route_set = load_route_set(write_routes(tmp_path / "routes", routes, SMALL_ROUTER))

    assert "kitchen" in route_set.names
    assert "cooking" not in route_set.names


def test_explicit_name_wins_over_the_file_stem(tmp_path: Path, write_routes: WriteRoutes) -> None:
    routes = _routes()
    routes["some-file"] = dict(routes.pop("cooking"), name="cooking")
    route_set = load_route_set(write_routes(tmp_path / "routes", routes, SMALL_ROUTER))

    assert "cooking" in route_set.names
    assert "some-file" not in route_set.names


def test_threshold_is_the_routes_own_or_else_the_router_default(small_routes: Path) -> None:
    route_set = load_route_set(small_routes)

    assert route_set.threshold("coding") == pytest.approx(0.25)
    assert route_set.threshold("cooking") == pytest.approx(SMALL_ROUTER["default_threshold"])
    assert route_set.threshold("unknown") == pytest.approx(SMALL_ROUTER["default_threshold"])


def test_route_threshold_of_zero_is_kept_not_replaced_by_the_default(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    routes = _routes()
    routes["cooking"]["threshold"] = 0.0
    route_set = load_route_set(write_routes(tmp_path / "routes", routes, SMALL_ROUTER))

    assert route_set.threshold("cooking") == 0.0


def test_router_defaults_apply_when_router_yaml_only_names_the_default_route(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    folder = write_routes(tmp_path / "routes", _routes(), {"default_route": "cooking"})
    route_set = load_route_set(folder)

    assert route_set.default.name == "cooking"
    assert route_set.config.min_margin == 0.0
    assert route_set.threshold("cooking") == route_set.config.default_threshold


def test_utterances_are_stripped(tmp_path: Path, write_routes: WriteRoutes) -> None:
    routes = _routes()
    routes["greetings"]["utterances"][0] = "   hello there, how are you today  "
    route_set = load_route_set(write_routes(tmp_path / "routes", routes, SMALL_ROUTER))

    assert route_set.get("greetings").utterances[0] == "hello there, how are you today"  # type: ignore[union-attr]


# -- malformed folders: every message names the file and the field or problem --------------


def _case_invalid_yaml(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"] = "name: coding\nmodel: [unclosed\n"


def _case_top_level_list(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"] = "- write code\n- fix code\n"


def _case_empty_file(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"] = ""


def _case_missing_model(routes: dict[str, Any], router: dict[str, Any]) -> None:
    del routes["coding"]["model"]


def _case_missing_utterances(routes: dict[str, Any], router: dict[str, Any]) -> None:
    del routes["coding"]["utterances"]


def _case_empty_utterance_list(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["utterances"] = []


def _case_blank_utterance(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["utterances"][1] = "   "


def _case_utterances_as_string(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["utterances"] = "write a python function"


def _case_unknown_key(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["colour"] = "blue"


def _case_bad_name_pattern(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["name"] = "Coding Route"


def _case_model_with_spaces(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["model"] = "gpt 4.1"


def _case_fallbacks_as_string(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["fallbacks"] = "anthropic/claude-sonnet-4-5"


def _case_threshold_out_of_range(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["coding"]["threshold"] = 1.5


def _case_duplicate_name_across_files(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["zz-copy"] = dict(routes["cooking"], name="coding", utterances=["a distinct prompt"])


def _case_duplicate_utterance_within_route(routes: dict[str, Any], router: dict[str, Any]) -> None:
    first = routes["coding"]["utterances"][0]
    routes["coding"]["utterances"].append("  " + first.upper() + " ")


def _case_same_utterance_in_two_routes(routes: dict[str, Any], router: dict[str, Any]) -> None:
    routes["cooking"]["utterances"].append(routes["coding"]["utterances"][0])


def _case_router_yaml_missing(routes: dict[str, Any], router: dict[str, Any]) -> None:
    router.clear()


def _case_default_route_unknown(routes: dict[str, Any], router: dict[str, Any]) -> None:
    router["default_route"] = "weather"


def _case_router_unknown_key(routes: dict[str, Any], router: dict[str, Any]) -> None:
    router["colour"] = "blue"


def _case_router_threshold_out_of_range(routes: dict[str, Any], router: dict[str, Any]) -> None:
    router["default_threshold"] = -3


MALFORMED = [
    pytest.param(_case_invalid_yaml, "coding.yaml", ["not valid YAML", "line"], id="invalid-yaml"),
    pytest.param(_case_top_level_list, "coding.yaml", ["mapping", "list"], id="top-level-list"),
    pytest.param(_case_empty_file, "coding.yaml", ["mapping", "empty"], id="empty-file"),
    pytest.param(_case_missing_model, "coding.yaml", ["model", "required"], id="missing-model"),
    pytest.param(
        _case_missing_utterances, "coding.yaml", ["utterances", "required"], id="no-utterances"
    ),
    pytest.param(
        _case_empty_utterance_list, "coding.yaml", ["utterances", "at least 1"], id="empty-list"
    ),
    pytest.param(_case_blank_utterance, "coding.yaml", ["utterances", "blank"], id="blank-item"),
    pytest.param(
        _case_utterances_as_string,
        "coding.yaml",
        ["utterances", "list of example prompts"],
        id="utterances-string",
    ),
    pytest.param(_case_unknown_key, "coding.yaml", ["colour", "unknown key"], id="unknown-key"),
    pytest.param(_case_bad_name_pattern, "coding.yaml", ["name", "[a-z0-9_-]+"], id="bad-name"),
    pytest.param(_case_model_with_spaces, "coding.yaml", ["model", "spaces"], id="model-spaces"),
    pytest.param(
        _case_fallbacks_as_string,
        "coding.yaml",
        ["fallbacks", "list of model strings"],
        id="fallbacks-string",
    ),
    pytest.param(
        _case_threshold_out_of_range, "coding.yaml", ["threshold", "1"], id="threshold-range"
    ),
    pytest.param(
        _case_duplicate_name_across_files,
        "zz-copy.yaml",
        ["name", "'coding' is already used by", "coding.yaml"],
        id="duplicate-name",
    ),
    pytest.param(
        _case_duplicate_utterance_within_route,
        "coding.yaml",
        ["utterances.6", "duplicate utterance"],
        id="duplicate-utterance",
    ),
    pytest.param(
        _case_same_utterance_in_two_routes,
        "cooking.yaml",
        ["utterances.6", "also belongs to route 'coding'"],
        id="utterance-in-two-routes",
    ),
    pytest.param(_case_router_yaml_missing, "router.yaml", ["missing"], id="router-missing"),
    pytest.param(
        _case_default_route_unknown,
        "router.yaml",
        ["default_route", "'weather' is not a route", "coding, cooking, greetings"],
        id="default-route-unknown",
    ),
    pytest.param(
        _case_router_unknown_key, "router.yaml", ["colour", "unknown key"], id="router-unknown-key"
    ),
    pytest.param(
        _case_router_threshold_out_of_range,
        "router.yaml",
        ["default_threshold", "greater than"],
        id="router-threshold-range",
    ),
]


@pytest.mark.parametrize(("break_it", "file_name", "expected"), MALFORMED)
def test_malformed_folder_is_rejected_naming_the_file_and_the_problem(
    tmp_path: Path,
    write_routes: WriteRoutes,
    break_it: Any,
    file_name: str,
    expected: list[str],
) -> None:
    routes, router = _routes(), dict(SMALL_ROUTER)
    break_it(routes, router)
    folder = write_routes(tmp_path / "routes", routes, router or None)

    with pytest.raises(RouteSetError) as caught:
        load_route_set(folder)

    lines = _problem_lines(caught.value)
    assert len(lines) == len(caught.value.problems) == 1, str(caught.value)
    line = lines[0]
    assert f"{folder / file_name}:" in line
    for text in expected:
        assert text in line


def test_every_problem_is_reported_at_once(tmp_path: Path, write_routes: WriteRoutes) -> None:
    routes, router = _routes(), dict(SMALL_ROUTER)
    del routes["coding"]["model"]
    routes["cooking"]["utterances"] = []
    routes["greetings"]["colour"] = "blue"
    router["min_margin"] = -1
    folder = write_routes(tmp_path / "routes", routes, router)

    with pytest.raises(RouteSetError) as caught:
        load_route_set(folder)

    message = str(caught.value)
    assert "4 problem(s)" in message
    assert f"{folder / 'coding.yaml'}: model: is required" in message
    assert f"{folder / 'cooking.yaml'}: utterances:" in message
    assert f"{folder / 'greetings.yaml'}: colour: unknown key" in message
    assert f"{folder / 'router.yaml'}: min_margin:" in message
    assert [problem.file for problem in caught.value.problems] == [
        str(folder / "coding.yaml"),
        str(folder / "cooking.yaml"),
        str(folder / "greetings.yaml"),
        str(folder / "router.yaml"),
    ]


def test_folder_without_route_files_is_rejected(tmp_path: Path, write_routes: WriteRoutes) -> None:
    folder = write_routes(tmp_path / "routes", {}, SMALL_ROUTER)

    with pytest.raises(RouteSetError, match="no route files"):
        load_route_set(folder)


def test_missing_folder_is_rejected(tmp_path: Path) -> None:
    with pytest.raises(RouteSetError, match="is not a folder"):
        load_route_set(tmp_path / "nowhere")


# -- fingerprint ------------------------------------------------------------------------------


def _fingerprint_of(tmp_path: Path, write_routes: WriteRoutes, routes: dict[str, Any]) -> str:
    folder = write_routes(
        tmp_path / f"routes-{len(list(tmp_path.iterdir()))}", routes, SMALL_ROUTER
    )
    return fingerprint(load_route_set(folder), EMBEDDING_MODEL)


def test_fingerprint_changes_when_an_utterance_changes(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    before = _fingerprint_of(tmp_path, write_routes, _routes())
    edited = _routes()
    edited["cooking"]["utterances"][2] = "how do I poach an egg"

    assert _fingerprint_of(tmp_path, write_routes, edited) != before


def test_fingerprint_changes_with_the_embedding_model(small_routes: Path) -> None:
    route_set = load_route_set(small_routes)

    assert fingerprint(route_set, EMBEDDING_MODEL) != fingerprint(route_set, "other/model")


def test_fingerprint_ignores_model_fallbacks_threshold_and_description(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    before = _fingerprint_of(tmp_path, write_routes, _routes())
    edited = _routes()
    edited["coding"]["model"] = "anthropic/claude-opus-4-1"
    edited["coding"]["fallbacks"] = []
    edited["coding"]["threshold"] = 0.8
    edited["cooking"]["description"] = "Anything about food."

    assert _fingerprint_of(tmp_path, write_routes, edited) == before


# -- wide-only utterances ---------------------------------------------------------------------

GREEK_RECIPES = ["δώσε μου μια συνταγή για μουσακά", "πώς φτιάχνω τζατζίκι στο σπίτι"]


def _with_wide_file(tmp_path: Path, write_routes: WriteRoutes, lines: list[str]) -> Path:
    routes = _routes()
    routes["cooking"]["wide_utterances_file"] = "data/wide/cooking.jsonl"
    folder = write_routes(tmp_path / "routes", routes, SMALL_ROUTER)
    (folder / "data" / "wide").mkdir(parents=True)
    (folder / "data" / "wide" / "cooking.jsonl").write_text(
        "".join(line + "\n" for line in lines), encoding="utf-8"
    )
    return folder


def test_wide_utterances_are_read_from_their_file_and_kept_apart(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    rows = [f'{{"text": "{text}", "label": "cooking", "lang": "el"}}' for text in GREEK_RECIPES]
    route_set = load_route_set(_with_wide_file(tmp_path, write_routes, rows))
    cooking = next(route for route in route_set.routes if route.name == "cooking")

    assert cooking.wide_utterances == tuple(GREEK_RECIPES)
    assert cooking.utterances == tuple(SMALL_ROUTES["cooking"]["utterances"])


@pytest.mark.parametrize(
    ("lines", "problem"),
    [
        (['{"text": "δώσε μου μια συνταγή"}', "not json"], r"cooking\.jsonl: line 2: "),
        (['{"text": "πώς φτιάχνω τζατζίκι", "label": "coding"}'], r"line 1\.label: 'coding' is"),
        (['{"text": "write a python function that parses ISO dates"}'], "also belongs to"),
    ],
)
def test_a_bad_wide_utterance_file_is_named_by_file_and_line(
    tmp_path: Path, write_routes: WriteRoutes, lines: list[str], problem: str
) -> None:
    with pytest.raises(RouteSetError, match=problem):
        load_route_set(_with_wide_file(tmp_path, write_routes, lines))


def test_a_missing_wide_utterance_file_is_named(tmp_path: Path, write_routes: WriteRoutes) -> None:
    folder = _with_wide_file(tmp_path, write_routes, ['{"text": "δώσε μου μια συνταγή"}'])
    (folder / "data" / "wide" / "cooking.jsonl").unlink()

    with pytest.raises(RouteSetError, match=r"cooking\.yaml: wide_utterances_file: .* not exist"):
        load_route_set(folder)


def test_wide_utterances_enter_the_fingerprint_only_with_a_wide_encoder(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    plain = load_route_set(write_routes(tmp_path / "plain", _routes(), SMALL_ROUTER))
    routes = _routes()
    routes["cooking"]["wide_utterances"] = GREEK_RECIPES
    wide = load_route_set(write_routes(tmp_path / "wide", routes, SMALL_ROUTER))

    assert fingerprint(wide, EMBEDDING_MODEL) == fingerprint(plain, EMBEDDING_MODEL)
    assert fingerprint(wide, EMBEDDING_MODEL, "e5") != fingerprint(plain, EMBEDDING_MODEL, "e5")
