"""Routing quality: the calibrated classifier in the router, the `undecided` policy, the
accuracy of the shipped routes, and scripts/evaluate.py.
"""

import copy
import json
import subprocess
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from conftest import (
    CODING_PROMPT,
    COOKING_PROMPT,
    REPO_ROOT,
    SMALL_ROUTER,
    SMALL_ROUTES,
    WriteRoutes,
    run_script,
)

from service.config.routes import Route, RouteSetError, load_route_set
from service.encoding.encoder import Encoder
from service.index.fingerprint import fingerprint
from service.index.store import build_index, load_index
from service.routing.router import NO_ROUTE, Router
from service.routing.types import RouteRequest
from service.tools.evaluation import read_examples

UNRELATED_PROMPT = "the quarterly tax filing deadline for sole proprietors"
CLASSIFIER_ROUTER: dict[str, Any] = {"default_route": "greetings"}  # scoring: the default

MakeRouter = Callable[..., Router]


class FakeTiebreaker:
    """Answers with a fixed route name, NO_ROUTE, or None (could not decide)."""

    def __init__(self, answer: str | None):
        self.answer = answer
        self.calls: list[str] = []

    async def choose(self, text: str, candidates: Sequence[Route]) -> str | None:
        self.calls.append(text)
        return self.answer


@pytest.fixture
def make_router(
    tmp_path: Path, write_routes: WriteRoutes, small_index: Path, encoder: Encoder
) -> Iterator[MakeRouter]:
    """``make_router(router_yaml, **kwargs)``: a Router over the small index.

    The index holds a fitted classifier whatever ``scoring`` says, and neither scoring nor
    thresholds are part of the fingerprint, so every variant shares it.
    """
    routers: list[Router] = []
    loaded = load_index(small_index)

    def make(router_yaml: dict[str, Any], **kwargs: Any) -> Router:
        folder = write_routes(
            tmp_path / f"routes-{len(routers)}", copy.deepcopy(SMALL_ROUTES), router_yaml
        )
        router = Router(load_route_set(folder), loaded, encoder, **kwargs)
        routers.append(router)
        return router

    yield make
    for router in routers:
        router.close()


# -- the classifier in the router -------------------------------------------------------------


async def test_clear_prompt_is_accepted_by_the_classifier_with_a_confidence(
    make_router: MakeRouter,
) -> None:
    router = make_router(CLASSIFIER_ROUTER)
    assert router.route_set.config.scoring == "classifier"

    decision = await router.decide(RouteRequest(prompt=CODING_PROMPT))

    assert decision.route == "coding"
    assert decision.method == "semantic"
    assert decision.reason is None
    assert decision.confidence is not None
    assert 0.0 < decision.confidence < 1.0
    scores = [candidate.score for candidate in decision.candidates]
    assert decision.candidates[0].route == "coding"
    assert scores == sorted(scores, reverse=True)
    assert all(0.0 <= score <= 1.0 for score in scores)
    assert sum(scores) <= 1.0 + 1e-5  # route probabilities
    assert decision.score == scores[0]


async def test_unrelated_prompt_gets_less_confidence_than_a_clear_one(
    make_router: MakeRouter,
) -> None:
    router = make_router(CLASSIFIER_ROUTER)

    clear = router.semantic.score_prompt(CODING_PROMPT)
    unrelated = router.semantic.score_prompt(UNRELATED_PROMPT)

    assert clear.confidence is not None and unrelated.confidence is not None
    assert unrelated.confidence < clear.confidence
    assert unrelated.evidence < clear.evidence


def test_knn_scoring_reports_no_confidence(make_router: MakeRouter) -> None:
    router = make_router(SMALL_ROUTER)

    assert router.semantic.score_prompt(CODING_PROMPT).confidence is None


@pytest.mark.parametrize("router_yaml", [CLASSIFIER_ROUTER, SMALL_ROUTER])
async def test_held_keys_go_to_the_default_route_with_no_confidence(
    make_router: MakeRouter, router_yaml: dict[str, Any]
) -> None:
    router = make_router(router_yaml)

    decision = await router.decide(RouteRequest(prompt="jjjjjjj kkkkkk", tiebreak=False))

    assert (decision.route, decision.method) == ("greetings", "default")
    assert decision.reason == "out_of_scope" and decision.confidence == 0.0


# -- calibration.jsonl ------------------------------------------------------------------------

CALIBRATION = [
    {"text": "debug this segfault in my C program", "label": "coding"},
    {"text": "my Go test fails with a nil map panic", "label": "coding"},
    {"text": "how many minutes to boil an egg", "label": "cooking"},
    {"text": "a good marinade for grilled tofu", "label": "cooking"},
    {"text": "hey there, good evening", "label": "greetings"},
    {"text": "thank you so much", "label": "greetings"},
    {"text": "what is the population of Brazil", "label": "none"},
    {"text": "who won the football world cup in 1998", "label": "oos"},
    {"text": "explain the causes of the French revolution", "label": "none"},
]


def write_calibration(folder: Path, rows: list[dict[str, Any]]) -> None:
    lines = [json.dumps(row) for row in rows]
    (folder / "calibration.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")


def test_calibration_label_that_is_not_a_route_is_rejected_naming_file_and_line(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    folder = write_routes(tmp_path / "routes", SMALL_ROUTES, CLASSIFIER_ROUTER)
    write_calibration(folder, [*CALIBRATION[:2], {"text": "book me a flight", "label": "travel"}])

    with pytest.raises(RouteSetError) as caught:
        load_route_set(folder)

    assert len(caught.value.problems) == 1
    message = str(caught.value)
    assert str(folder / "calibration.jsonl") in message
    assert "line 3.label" in message
    assert "'travel' is not a route" in message


def test_calibration_prompts_are_loaded_with_out_of_scope_as_none(
    tmp_path: Path, write_routes: WriteRoutes
) -> None:
    folder = write_routes(tmp_path / "routes", SMALL_ROUTES, CLASSIFIER_ROUTER)
    write_calibration(folder, CALIBRATION)

    route_set = load_route_set(folder)

    assert route_set.calibration[0] == ("debug this segfault in my C program", "coding")
    assert [label for _, label in route_set.calibration[-3:]] == [None, None, None]


def test_calibration_file_changes_the_fingerprint(
    tmp_path: Path, write_routes: WriteRoutes, encoder: Encoder
) -> None:
    folder = write_routes(tmp_path / "routes", SMALL_ROUTES, CLASSIFIER_ROUTER)
    without = fingerprint(load_route_set(folder), encoder.model_id)

    write_calibration(folder, CALIBRATION)
    with_file = fingerprint(load_route_set(folder), encoder.model_id)
    write_calibration(folder, CALIBRATION[:-1])

    assert with_file != without
    assert fingerprint(load_route_set(folder), encoder.model_id) not in {without, with_file}


async def test_index_calibrated_on_out_of_scope_prompts_sends_unrelated_ones_to_default(
    tmp_path: Path, write_routes: WriteRoutes, encoder: Encoder
) -> None:
    folder = write_routes(tmp_path / "routes", SMALL_ROUTES, CLASSIFIER_ROUTER)
    write_calibration(folder, CALIBRATION)
    route_set = load_route_set(folder)
    manifest = build_index(route_set, encoder, tmp_path / "index")
    router = Router(route_set, load_index(tmp_path / "index"), encoder)

    try:
        unrelated = await router.decide(RouteRequest(prompt=UNRELATED_PROMPT))
        clear = await router.decide(RouteRequest(prompt=CODING_PROMPT))
    finally:
        router.close()

    assert manifest["calibration"]["source"] == "calibration"
    assert manifest["calibration"]["held_out"] == 6
    assert (unrelated.route, unrelated.method, unrelated.reason) == (
        "greetings",
        "default",
        "below_threshold",
    )
    assert (clear.route, clear.method) == ("coding", "semantic")


# -- undecided: top or default ----------------------------------------------------------------

# Two ways to make the semantic stage abstain on COOKING_PROMPT, whose top route is cooking.
WEAK_MATCHES = {
    "knn-below-threshold": ({"scoring": "knn", "default_threshold": 0.9}, "below_threshold"),
    "classifier-close-margin": ({"min_margin": 2.0}, "close_margin"),
}


@pytest.fixture(params=list(WEAK_MATCHES))
def weak_match(request: pytest.FixtureRequest) -> tuple[dict[str, Any], str]:
    return WEAK_MATCHES[request.param]


async def test_undecided_top_keeps_the_semantic_top_route_when_the_tiebreaker_fails(
    make_router: MakeRouter, weak_match: tuple[dict[str, Any], str]
) -> None:
    policy, reason = weak_match
    tiebreaker = FakeTiebreaker(None)
    router = make_router({**CLASSIFIER_ROUTER, **policy, "undecided": "top"}, tiebreaker=tiebreaker)

    decision = await router.decide(RouteRequest(prompt=COOKING_PROMPT))

    assert tiebreaker.calls == [COOKING_PROMPT]
    assert decision.route == "cooking" == decision.candidates[0].route
    assert decision.method == "semantic"
    assert decision.reason == f"{reason}; tie-breaker failed"


async def test_undecided_default_sends_a_weak_match_to_the_default_route(
    make_router: MakeRouter, weak_match: tuple[dict[str, Any], str]
) -> None:
    policy, reason = weak_match
    tiebreaker = FakeTiebreaker(None)
    router = make_router(
        {**CLASSIFIER_ROUTER, **policy, "undecided": "default"}, tiebreaker=tiebreaker
    )

    decision = await router.decide(RouteRequest(prompt=COOKING_PROMPT))

    assert tiebreaker.calls == [COOKING_PROMPT]
    assert decision.route == "greetings"
    assert decision.method == "default"
    assert decision.reason == reason
    assert decision.confidence is None


def test_undecided_defaults_to_the_default_route(make_router: MakeRouter) -> None:
    assert make_router(CLASSIFIER_ROUTER).route_set.config.undecided == "default"


@pytest.mark.parametrize("undecided", ["top", "default"])
async def test_tiebreaker_answering_no_route_always_gives_the_default_route(
    make_router: MakeRouter, weak_match: tuple[dict[str, Any], str], undecided: str
) -> None:
    policy, reason = weak_match
    router = make_router(
        {**CLASSIFIER_ROUTER, **policy, "undecided": undecided},
        tiebreaker=FakeTiebreaker(NO_ROUTE),
    )

    decision = await router.decide(RouteRequest(prompt=COOKING_PROMPT))

    assert decision.route == "greetings"
    assert decision.method == "default"
    assert decision.reason == reason


async def test_undecided_top_without_a_tiebreaker_says_so(make_router: MakeRouter) -> None:
    policy, reason = WEAK_MATCHES["knn-below-threshold"]
    router = make_router({**CLASSIFIER_ROUTER, **policy, "undecided": "top"})

    decision = await router.decide(RouteRequest(prompt=COOKING_PROMPT))

    assert (decision.route, decision.method) == ("cooking", "semantic")
    assert decision.reason == f"{reason}; no tie-breaker"


async def test_undecided_top_when_the_request_skips_the_tiebreaker(
    make_router: MakeRouter,
) -> None:
    policy, reason = WEAK_MATCHES["knn-below-threshold"]
    tiebreaker = FakeTiebreaker("coding")
    router = make_router({**CLASSIFIER_ROUTER, **policy, "undecided": "top"}, tiebreaker=tiebreaker)

    decision = await router.decide(RouteRequest(prompt=COOKING_PROMPT, tiebreak=False))

    assert tiebreaker.calls == []
    assert (decision.route, decision.method) == ("cooking", "semantic")
    assert decision.reason == f"{reason}; no tie-breaker"


# -- the shipped route set --------------------------------------------------------------------

SHIPPED_ROUTES = REPO_ROOT / "routes"
HOLDOUT = REPO_ROOT / "tests" / "data" / "default_routes_holdout.jsonl"


@pytest.fixture(scope="module")
def shipped_router(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Router]:
    """The shipped routes/ (with its calibration.jsonl), indexed into a temporary folder."""
    route_set = load_route_set(SHIPPED_ROUTES)
    index_dir = tmp_path_factory.mktemp("shipped") / "index"
    build_index(route_set, encoder, index_dir)
    router = Router(route_set, load_index(index_dir), encoder)
    yield router
    router.close()


def test_every_shipped_route_has_a_description_and_at_least_30_utterances() -> None:
    route_set = load_route_set(SHIPPED_ROUTES)

    assert len(route_set.routes) >= 2
    for route in route_set.routes:
        assert route.description.strip(), route.name
        assert len(route.utterances) >= 30, route.name


def top_route_accuracy(router: Router, path: Path) -> float:
    """The share of the file's prompts whose semantic top route is their label."""
    examples = read_examples(path)
    assert {example.label for example in examples} <= set(router.route_set.names)
    results = router.semantic.score_many([example.text for example in examples])
    names = router.index.route_names
    hits = [
        names[int(result.ranked.positions[0])] == example.label
        for example, result in zip(examples, results, strict=True)
    ]
    return sum(hits) / len(hits)


def test_shipped_routes_route_the_holdout_prompts_to_their_label(shipped_router: Router) -> None:
    accuracy = top_route_accuracy(shipped_router, HOLDOUT)

    assert accuracy >= 0.88, f"top-route accuracy {accuracy:.3f} on {HOLDOUT.name}"
    assert shipped_router.index.calibration is not None
    assert shipped_router.index.calibration.source == "calibration"


@pytest.mark.parametrize(("benchmark", "floor"), [("gsm8k.jsonl", 0.93), ("humaneval.jsonl", 0.95)])
def test_shipped_routes_route_public_benchmarks_they_never_saw(
    shipped_router: Router, benchmark: str, floor: float
) -> None:
    """GSM8K's word problems and HumanEval's stubs (tests/data/SOURCES.md) are in no route
    file: the routes trained on hand-written utterances alone sent them to math and coding
    about half and three quarters of the time."""
    path = REPO_ROOT / "tests" / "data" / benchmark

    accuracy = top_route_accuracy(shipped_router, path)

    assert len(read_examples(path)) >= 150
    assert accuracy >= floor, f"top-route accuracy {accuracy:.3f} on {benchmark}"


# -- scripts/evaluate.py ----------------------------------------------------------------------

EVALUATE = REPO_ROOT / "scripts" / "evaluate.py"

TRAIN = {
    "coding": [
        "write a python function that reverses a list",
        "fix the null pointer exception in my Java class",
        "why does my SQL join return duplicate rows",
        "explain this Rust borrow checker error",
        "add unit tests to this JavaScript module",
        "my C++ program segfaults when I free the pointer",
        "refactor this loop into a list comprehension",
        "how do I undo the last git commit",
    ],
    "cooking": [
        "how long should I roast a whole chicken",
        "give me a recipe for vegetarian lasagna",
        "what can I use instead of eggs when baking",
        "how do I make a sourdough starter",
        "what spices go well in a lentil curry",
        "how do I keep pasta from sticking together",
        "best way to caramelise onions",
        "how long do I boil an egg for a runny yolk",
    ],
    "travel": [
        "what should I pack for a week in Iceland",
        "cheapest way to get from Paris to Rome",
        "do I need a visa to visit Japan",
        "best time of year to visit Thailand",
        "plan a three day itinerary for Lisbon",
        "which airport is closest to the Swiss Alps",
        "how early should I arrive for an international flight",
        "is the Eurail pass worth it for two weeks",
    ],
}
CALIBRATION_LINES = [
    ("my python script raises a KeyError", "coding"),
    ("write a bash script that renames files", "coding"),
    ("how do I make fluffy pancakes", "cooking"),
    ("a quick tomato soup recipe", "cooking"),
    ("things to see in Barcelona in two days", "travel"),
    ("can I bring a power bank on a plane", "travel"),
    ("what is the capital of Australia", "oos"),
    ("how do I fix a flat bicycle tyre", "none"),
]
TEST_LINES = [
    ("fix the type error in my python code", "coding"),
    ("write a regex that matches email addresses", "coding"),
    ("give me a recipe for banana bread", "cooking"),
    ("how do I cook rice without a rice cooker", "cooking"),
    ("what to do in Tokyo for a weekend", "travel"),
    ("do I need travel insurance for Mexico", "travel"),
    ("who painted the Mona Lisa", "oos"),
    ("how many moons does Jupiter have", ""),
]
REPORT_KEYS = {
    "overall_accuracy",
    "in_scope_accuracy",
    "oos_precision",
    "oos_recall",
    "oos_f1",
    "auroc",
    "macro_f1",
    "n_test",
    "decisions_per_second",
    "method",
}


def write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(json.dumps({"text": text, "label": label}) + "\n" for text, label in rows),
        encoding="utf-8",
    )
    return path


def run_evaluate(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return run_script(EVALUATE, *args, timeout=180)


@pytest.fixture(scope="module")
def dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    folder = tmp_path_factory.mktemp("evaluate")
    train = [(text, label) for label, texts in TRAIN.items() for text in texts]
    write_jsonl(folder / "train.jsonl", train)
    write_jsonl(folder / "calibration.jsonl", CALIBRATION_LINES)
    write_jsonl(folder / "test.jsonl", TEST_LINES)
    return folder


def evaluate_args(folder: Path, report: str, *extra: str) -> list[str | Path]:
    return [
        "--train",
        folder / "train.jsonl",
        "--calibration",
        folder / "calibration.jsonl",
        "--test",
        folder / "test.jsonl",
        "--report",
        folder / report,
        *extra,
    ]


@pytest.fixture(scope="module")
def classifier_run(dataset: Path) -> subprocess.CompletedProcess[str]:
    return run_evaluate(
        *evaluate_args(dataset, "REPORT.json", "--png", str(dataset / "plot.png")),
        "--rows-out",
        dataset / "rows.jsonl",
        "--embedding-store",
        dataset / "vectors",
    )


def test_evaluate_writes_a_report_of_every_metric(
    dataset: Path, classifier_run: subprocess.CompletedProcess[str]
) -> None:
    assert classifier_run.returncode == 0, classifier_run.stderr

    report = json.loads((dataset / "REPORT.json").read_text(encoding="utf-8"))

    assert REPORT_KEYS - report.keys() == set()
    assert report["method"] == "classifier"
    assert report["n_test"] == len(TEST_LINES)
    assert report["n_oos"] == 2
    assert report["routes"] == len(TRAIN)
    assert report["calibration_examples"] == len(CALIBRATION_LINES)
    assert report["calibration_source"] == "calibration"
    assert report["decisions_per_second"] > 0
    for key in ("overall_accuracy", "in_scope_accuracy", "oos_f1", "auroc", "macro_f1"):
        assert 0.0 <= report[key] <= 1.0, key
    assert report["top_route_accuracy"] >= 5 / 6
    assert "overall_accuracy" in classifier_run.stdout


def test_evaluate_draws_a_png_when_asked(
    dataset: Path, classifier_run: subprocess.CompletedProcess[str]
) -> None:
    assert classifier_run.returncode == 0, classifier_run.stderr

    assert (dataset / "plot.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert str(dataset / "plot.png") in classifier_run.stdout


def test_evaluate_writes_one_row_per_test_prompt_with_its_route(
    dataset: Path, classifier_run: subprocess.CompletedProcess[str]
) -> None:
    assert classifier_run.returncode == 0, classifier_run.stderr

    lines = (dataset / "rows.jsonl").read_text(encoding="utf-8").splitlines()
    rows = [json.loads(line) for line in lines]
    report = json.loads((dataset / "REPORT.json").read_text(encoding="utf-8"))

    assert [row["text"] for row in rows] == [text for text, _ in TEST_LINES]
    assert [row["label"] for row in rows] == [
        None if label in ("oos", "") else label for _, label in TEST_LINES
    ]
    assert all(row["top"] in TRAIN for row in rows)
    right = [row["route"] == row["label"] for row in rows]
    assert sum(right) / len(rows) == pytest.approx(report["overall_accuracy"])


def test_evaluate_keeps_its_vectors_for_the_next_run(
    dataset: Path, classifier_run: subprocess.CompletedProcess[str]
) -> None:
    assert classifier_run.returncode == 0, classifier_run.stderr

    stored = list((dataset / "vectors").glob("*.npz"))

    assert len(stored) >= 1
    with np.load(stored[0]) as data:
        texts = {text for lines in TRAIN.values() for text in lines} | {t for t, _ in TEST_LINES}
        assert len(data["keys"]) >= len(texts)


def test_evaluate_with_the_knn_method(dataset: Path) -> None:
    result = run_evaluate(*evaluate_args(dataset, "REPORT-knn.json", "--method", "knn"))

    assert result.returncode == 0, result.stderr
    report = json.loads((dataset / "REPORT-knn.json").read_text(encoding="utf-8"))
    assert report["method"] == "knn"
    assert report["n_test"] == len(TEST_LINES)
    assert REPORT_KEYS - report.keys() == set()


def test_evaluate_with_a_missing_test_file_exits_2_naming_it(dataset: Path) -> None:
    missing = dataset / "no-such-test.jsonl"

    result = run_evaluate(
        "--train", dataset / "train.jsonl", "--test", missing, "--report", dataset / "R.json"
    )

    assert result.returncode == 2
    assert "cannot evaluate" in result.stderr
    assert f"{missing}: no such file" in result.stderr
    assert not (dataset / "R.json").exists()


def test_evaluate_routes_only_the_languages_asked_for(dataset: Path) -> None:
    rows = [
        {"text": "give me a recipe for banana bread", "label": "cooking", "lang": "en"},
        {"text": "dame una receta de pan de plátano", "label": "cooking", "lang": "es"},
        {"text": "qué ver en Tokio en un fin de semana", "label": "travel", "lang": "es"},
        {"text": "write a regex that matches email addresses", "label": "coding", "lang": "en"},
    ]
    test = dataset / "languages.jsonl"
    test.write_text("".join(json.dumps(row) + "\n" for row in rows), encoding="utf-8")
    base = ["--train", dataset / "train.jsonl", "--test", test, "--rows-out"]

    spanish = run_evaluate(
        *base, dataset / "es.jsonl", "--report", dataset / "es.json", "--langs", "es"
    )
    none = run_evaluate(
        *base, dataset / "de.jsonl", "--report", dataset / "de.json", "--langs", "de,fr"
    )

    assert spanish.returncode == 0, spanish.stderr
    report = json.loads((dataset / "es.json").read_text(encoding="utf-8"))
    routed = [json.loads(line) for line in (dataset / "es.jsonl").read_text("utf-8").splitlines()]
    assert report["n_test"] == 2 and {row["lang"] for row in routed} == {"es"}
    assert none.returncode == 2 and "no example" in none.stderr


GARDEN_AS_TRAVEL = [
    "when should I plant tomato seedlings outside",
    "how often do I water a cactus",
    "why are the leaves on my rose bush turning yellow",
    "how deep do I plant tulip bulbs",
    "what grows well in a shady garden bed",
    "how do I get rid of aphids on my plants",
]


def test_evaluate_learn_folds_lets_a_set_s_own_rows_teach_the_routes(dataset: Path) -> None:
    # A labelling the routes cannot know (garden questions counted as travel): alone the
    # routes miss it; routed fold by fold with the other folds' rows as utterances, they learn it.
    test = write_jsonl(dataset / "garden.jsonl", [(t, "travel") for t in GARDEN_AS_TRAVEL])
    base = ["--train", dataset / "train.jsonl", "--test", test, "--embedding-store"]

    alone = run_evaluate(*base, dataset / "vectors", "--report", dataset / "alone.json")
    folds = run_evaluate(
        *base, dataset / "vectors", "--report", dataset / "folds.json", "--learn-folds", "2"
    )
    both = run_evaluate(
        *base,
        dataset / "vectors",
        "--report",
        dataset / "x.json",
        "--learn-folds",
        "2",
        "--leave-sources-out",
        "2",
    )

    assert alone.returncode == 0, alone.stderr
    assert folds.returncode == 0, folds.stderr
    before = json.loads((dataset / "alone.json").read_text(encoding="utf-8"))
    after = json.loads((dataset / "folds.json").read_text(encoding="utf-8"))
    assert after["n_test"] == before["n_test"] == len(GARDEN_AS_TRAVEL)
    assert after["learn_folds"] == 2 and before["learn_folds"] is None
    assert after["top_route_accuracy"] > before["top_route_accuracy"]
    assert after["top_route_accuracy"] >= 4 / 6
    assert both.returncode == 2 and "not both" in both.stderr
