"""Routes as a user writes them: large routes kept in utterance files, a new route of a few
examples beside them, keyboard mash. Each test builds with ``scripts/build_index.py`` and
serves the result through the real app, the way a user adds a route."""

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from conftest import REPO_ROOT, SMALL_ROUTES, run_build_script
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config.routes import RouteSetError, load_route_set
from service.config.settings import Settings
from service.encoding.encoder import BaseEncoder
from service.index.fingerprint import fingerprint

SHIPPED_DATA = REPO_ROOT / "routes" / "data"
# Eight example prompts: the size of a route a user writes by hand in a few minutes.
COOKING = [
    *SMALL_ROUTES["cooking"]["utterances"],
    "best way to caramelise onions without burning them",
    "how much rice and water for a risotto for four people",
]
COOKING_PROMPTS = [
    "what temperature should I roast a chicken at",
    "how do I make fluffy pancakes",
    "can I freeze homemade tomato sauce",
    "quelle est la recette de la ratatouille",
    "how many minutes to soft boil an egg",
]
MASH = [
    "qwzx plonk 7 vrrm?",
    "asdfgh jkl",
    "zzxcv bnm,,",
    "hjkl hjkl hjkl",
    "gfdsa trewq 99",
    "asdfghjkl",
    "jjjjjjj kkkk",
    "eeeeeee uuuuu",
    "zxcvbnm,./",
    "XkQpTzWvRb hGtWq",
    "a8f3k2j9 x7q",
]
CHAT = ["hi", "ok thanks", "hmm ok", "你好", "สวัสดีครับ", "안녕하세요"]


def _route(name: str, description: str, **fields: Any) -> dict[str, Any]:
    return {"name": name, "description": description, "model": "openai/gpt-4.1-mini", **fields}


def _copy_head(source: Path, target: Path, lines: int) -> None:
    head = source.read_text(encoding="utf-8").splitlines()[:lines]
    target.write_text("\n".join(head) + "\n", encoding="utf-8")


@pytest.fixture(scope="module")
def user_routes(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Two large routes from utterance files, calibration with junk rows, a new small route."""
    folder = tmp_path_factory.mktemp("user") / "routes"
    (folder / "data").mkdir(parents=True)
    for name in ("coding", "math", "chitchat"):
        _copy_head(SHIPPED_DATA / f"{name}.jsonl", folder / "data" / f"{name}.jsonl", 120)
        route = _route(
            name,
            f"{name} prompts",
            utterances=[f"an example {name} request"],
            utterances_file=f"data/{name}.jsonl",
        )
        (folder / f"{name}.yaml").write_text(yaml.safe_dump(route), encoding="utf-8")
    cooking = _route("cooking", "Recipes, ingredients and kitchen techniques.", utterances=COOKING)
    (folder / "cooking.yaml").write_text(yaml.safe_dump(cooking), encoding="utf-8")
    (folder / "router.yaml").write_text(
        yaml.safe_dump({"default_route": "chitchat", "undecided": "top"}), encoding="utf-8"
    )
    shipped = (REPO_ROOT / "routes" / "calibration.jsonl").read_text(encoding="utf-8")
    rows = [json.loads(line) for line in shipped.splitlines() if line.strip()]
    kept = [r for r in rows if r["label"] in ("coding", "math", "chitchat", "none")]
    (folder / "calibration.jsonl").write_text(
        "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in kept), encoding="utf-8"
    )
    return folder


@pytest.fixture(scope="module")
def served(
    user_routes: Path, tmp_path_factory: pytest.TempPathFactory, encoder: BaseEncoder
) -> Iterator[TestClient]:
    index = tmp_path_factory.mktemp("user-index") / "index"
    result = run_build_script("--routes", user_routes, "--index", index, "--quiet", timeout=600)
    assert result.returncode == 0, result.stderr
    settings = Settings(routes_dir=user_routes, index_dir=index)
    with TestClient(create_app(settings, encoder=encoder)) as client:
        yield client


def _route_of(client: TestClient, prompt: str) -> dict[str, Any]:
    response = client.post("/route", json={"prompt": prompt})
    assert response.status_code == 200, response.text
    return dict(response.json())


def test_utterance_files_are_joined_to_the_inline_utterances(user_routes: Path) -> None:
    route_set = load_route_set(user_routes)
    coding = route_set.get("coding")

    assert coding is not None and len(coding.utterances) == 1 + 120
    assert coding.utterances[0] == "an example coding request"


def test_the_fingerprint_covers_the_utterance_files(user_routes: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(user_routes, tmp_path / "routes"))
    before = fingerprint(load_route_set(copy), "m")
    with (copy / "data" / "math.jsonl").open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"text": "what is seven squared"}) + "\n")

    assert fingerprint(load_route_set(copy), "m") != before


def test_a_route_of_eight_utterances_wins_the_prompts_of_its_kind(served: TestClient) -> None:
    routes = [_route_of(served, prompt)["route"] for prompt in COOKING_PROMPTS]

    assert routes.count("cooking") >= len(COOKING_PROMPTS) - 1, routes


def test_keyboard_mash_goes_to_the_default_route_with_a_reason(served: TestClient) -> None:
    for mash in MASH:
        decision = _route_of(served, mash)

        assert decision["route"] == "chitchat", (mash, decision)
        assert decision["method"] == "default"
        assert decision["reason"] == "out_of_scope"
        assert decision["confidence"] is not None and decision["confidence"] < 0.5


def test_short_chat_in_any_script_is_not_taken_for_junk(served: TestClient) -> None:
    junk = [text for text in CHAT if _route_of(served, text)["reason"] == "out_of_scope"]

    assert junk == []


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("not json", "line 2: not JSON"),
        ('{"label": "math"}', "line 2: expected an object with a 'text' string"),
        ('{"text": "  "}', "line 2: has an empty 'text'"),
        ('{"text": "sort a list", "label": "coding"}', "line 2.label: 'coding' is not this"),
    ],
)
def test_a_malformed_utterance_file_is_named_by_file_and_line_and_the_index_is_kept(
    user_routes: Path, tmp_path: Path, line: str, problem: str
) -> None:
    copy = Path(shutil.copytree(user_routes, tmp_path / "routes"))
    bad = copy / "data" / "math.jsonl"
    first = bad.read_text(encoding="utf-8").splitlines()[0]
    bad.write_text(f"{first}\n{line}\n", encoding="utf-8")
    index = tmp_path / "index"
    index.mkdir()
    (index / "manifest.json").write_text("{}", encoding="utf-8")

    with pytest.raises(RouteSetError, match=problem):
        load_route_set(copy)
    result = run_build_script("--routes", copy, "--index", index, "--quiet")

    assert result.returncode == 2
    assert f"{bad}: {problem}" in result.stderr
    assert (index / "manifest.json").read_text(encoding="utf-8") == "{}"


def test_a_broken_route_file_is_reported_once_not_again_by_what_names_its_route(
    user_routes: Path, tmp_path: Path
) -> None:
    """The calibration rows, the default route and a rule that name a route whose file
    failed are not "unknown routes" too: the one real problem is not buried under them."""
    copy = Path(shutil.copytree(user_routes, tmp_path / "routes"))
    (copy / "router.yaml").write_text(
        yaml.safe_dump(
            {
                "default_route": "math",
                "rules": [{"name": "sums", "when": {"regex": "^sum "}, "route": "math"}],
            }
        ),
        encoding="utf-8",
    )
    bad = copy / "data" / "math.jsonl"
    bad.write_text(bad.read_text(encoding="utf-8") + "not json\n", encoding="utf-8")
    calibration = (copy / "calibration.jsonl").read_text(encoding="utf-8")
    assert '"label": "math"' in calibration

    with pytest.raises(RouteSetError) as raised:
        load_route_set(copy)

    assert len(raised.value.problems) == 1
    assert str(raised.value.problems[0]).startswith(f"{bad}: line 121: ")


def test_a_missing_utterance_file_is_named(user_routes: Path, tmp_path: Path) -> None:
    copy = Path(shutil.copytree(user_routes, tmp_path / "routes"))
    (copy / "data" / "math.jsonl").unlink()

    with pytest.raises(RouteSetError, match=r"math\.yaml: utterances_file: .*math\.jsonl does not"):
        load_route_set(copy)
