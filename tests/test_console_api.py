"""The console over HTTP, without a browser: its files at /ui, the explorer's endpoints, keys."""

from __future__ import annotations

import dataclasses
import re
import tomllib
from collections.abc import Iterator
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pytest
from conftest import CODING_PROMPT, REPO_ROOT, SMALL_ROUTES
from fastapi.testclient import TestClient
from pydantic import SecretStr

from service.api.app import create_app
from service.api.console import STATIC_DIR
from service.config.settings import Settings
from service.encoding.encoder import Encoder

API_KEY = "console-key"
ADMIN_KEY = "console-admin"
STATIC_FILES = sorted(p.relative_to(STATIC_DIR).as_posix() for p in STATIC_DIR.rglob("*.*"))


@pytest.fixture
def keyed(settings: Settings, encoder: Encoder) -> Iterator[TestClient]:
    secrets = {"api_keys": SecretStr(API_KEY), "admin_key": SecretStr(ADMIN_KEY)}
    with TestClient(create_app(settings.model_copy(update=secrets), encoder=encoder)) as client:
        yield client


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


# -- the page ----------------------------------------------------------------------------------


def test_the_page_is_served_from_the_package_at_ui(client: TestClient) -> None:
    moved = client.get("/ui", follow_redirects=False)
    assert moved.status_code == 307 and moved.headers["location"] == "ui/"

    page = client.get("/ui/")
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert '<script type="module" src="js/main.js"></script>' in page.text
    script = client.get("/ui/js/main.js")
    assert script.status_code == 200
    assert "javascript" in script.headers["content-type"]
    assert client.get("/ui/config.json").json() == {"keys_required": False, "admin_enabled": False}


def test_every_file_the_page_refers_to_is_served_and_none_is_remote(client: TestClient) -> None:
    referred = set(re.findall(r'(?:src|href)="([^"#:]+)"', client.get("/ui/").text))
    for name in STATIC_FILES:
        text = (STATIC_DIR / name).read_text(encoding="utf-8")
        assert not re.search(r"https?://(?!www\.w3\.org/2000/svg)", text), name
        folder = Path(name).parent
        referred |= {(folder / m).as_posix() for m in re.findall(r'from "\./([^"]+)"', text)}
    assert referred >= {"console.css", "js/main.js", "js/api.js", "js/charts.js"}
    for name in sorted(referred):
        assert client.get(f"/ui/{name}").status_code == 200, name


def test_the_wheel_ships_every_console_file() -> None:
    config = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = config["tool"]["setuptools"]["package-data"]["service.api"]
    missing = [f for f in STATIC_FILES if not any(fnmatch(f"static/{f}", p) for p in patterns)]
    assert STATIC_FILES and not missing


# -- explorer data -----------------------------------------------------------------------------


def test_console_routes_give_description_models_threshold_and_utterance_count(
    client: TestClient,
) -> None:
    answer = client.get("/console/routes").json()

    assert answer["scoring"] == "knn" and answer["default_route"] == "greetings"
    by_name = {route["name"]: route for route in answer["routes"]}
    assert list(by_name) == ["coding", "cooking", "greetings"]
    for name, route in SMALL_ROUTES.items():
        assert by_name[name]["description"] == route["description"]
        assert by_name[name]["model"] == route["model"]
        assert by_name[name]["utterances"] == len(route["utterances"])
        assert by_name[name]["accept_threshold"] is None  # knn: the cosine threshold applies
    assert by_name["coding"]["threshold"] == 0.25
    assert by_name["cooking"]["threshold"] == 0.2  # router.yaml's default
    assert set(answer["prices"]) == {
        "openai/gpt-4.1",
        "anthropic/claude-sonnet-4-5",
        "openai/gpt-4.1-mini",
        "openai/gpt-4.1-nano",
    }
    assert answer["prices"]["openai/gpt-4.1"] > answer["prices"]["openai/gpt-4.1-nano"] > 0


def test_the_map_holds_every_utterance_and_the_confusable_pairs(client: TestClient) -> None:
    atlas = client.get("/console/map").json()

    assert atlas["routes"] == ["coding", "cooking", "greetings"]
    assert atlas["total"] == len(atlas["points"]) == 17
    assert {(atlas["routes"][r], text) for _, _, r, text in atlas["points"]} == {
        (name, text) for name, route in SMALL_ROUTES.items() for text in route["utterances"]
    }
    assert atlas["method"] == "discriminant" and 0 < sum(atlas["explained_variance"]) <= 1
    assert len(atlas["confusable"]) == 3
    overlaps = [pair["overlap"] for pair in atlas["confusable"]]
    assert overlaps == sorted(overlaps, reverse=True) and all(0 <= o <= 1 for o in overlaps)


def test_the_map_samples_each_route_when_asked_for_fewer_points(client: TestClient) -> None:
    atlas = client.get("/console/map", params={"points": 3}).json()
    assert atlas["total"] == 17
    assert {route for _, _, route, _ in atlas["points"]} == {0, 1, 2}
    assert client.get("/console/map", params={"points": 0}).status_code == 422


def test_a_prompt_lands_where_its_embedding_projects_among_its_route(
    client: TestClient, encoder: Encoder
) -> None:
    at = client.post("/console/locate", json={"prompt": CODING_PROMPT}).json()
    engine = client.app.state.engine  # type: ignore[attr-defined]
    projection = engine.index.route_map

    expected = projection.project(encoder.encode_one(CODING_PROMPT)[None, :])[0]
    assert [at["x"], at["y"]] == pytest.approx(expected.tolist(), abs=1e-4)
    centres = [
        projection.coords[engine.index.labels == route].mean(axis=0)
        for route in range(len(engine.index.route_names))
    ]
    distances = [float(np.linalg.norm(expected - centre)) for centre in centres]
    assert engine.index.route_names[int(np.argmin(distances))] == "coding"


def test_locate_refuses_what_it_cannot_place(settings: Settings, encoder: Encoder) -> None:
    small = settings.model_copy(update={"max_prompt_chars": 50})
    with TestClient(create_app(small, encoder=encoder)) as client:
        for body in ({"prompt": ""}, {}, {"prompt": "x", "extra": 1}):
            response = client.post("/console/locate", json=body)
            assert response.status_code == 422, body
        too_long = client.post("/console/locate", json={"prompt": "x" * 51})
        assert too_long.status_code == 413
        assert too_long.json()["error"]["type"] == "prompt_too_large"


def test_an_index_without_a_route_map_says_how_to_get_one(client: TestClient) -> None:
    app = client.app
    engine = app.state.engine  # type: ignore[attr-defined]
    index = dataclasses.replace(engine.index, route_map=None)
    app.state.engine = dataclasses.replace(engine, index=index)  # type: ignore[attr-defined]
    try:
        for response in (
            client.get("/console/map"),
            client.post("/console/locate", json={"prompt": CODING_PROMPT}),
        ):
            assert response.status_code == 404
            assert response.json()["error"]["type"] == "no_route_map"
            assert "scripts/build_index.py" in response.json()["error"]["message"]
    finally:
        app.state.engine = engine  # type: ignore[attr-defined]


def test_openapi_documents_the_console_endpoints(client: TestClient) -> None:
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/console/routes", "/console/map", "/console/locate", "/admin/status"} <= set(paths)
    assert "/ui/config.json" in paths
    assert "404" in paths["/console/map"]["get"]["responses"]


# -- keys --------------------------------------------------------------------------------------


def test_with_keys_the_page_loads_without_one_but_no_data_does(keyed: TestClient) -> None:
    assert keyed.get("/ui/").status_code == 200
    assert keyed.get("/ui/js/api.js").status_code == 200
    assert keyed.get("/ui/config.json").json() == {"keys_required": True, "admin_enabled": True}
    for path in ("/console/routes", "/console/map", "/stats", "/ui/../stats", "/ui/../routes"):
        response = keyed.get(path)
        assert response.status_code in {401, 404}, path
        assert "coding" not in response.text, path
    assert keyed.post("/console/locate", json={"prompt": "hi"}).status_code == 401
    routes = keyed.get("/console/routes", headers=bearer(API_KEY))
    assert routes.status_code == 200 and len(routes.json()["routes"]) == 3


def test_admin_status_needs_the_admin_key(keyed: TestClient) -> None:
    assert keyed.get("/admin/status").status_code == 401
    assert keyed.get("/admin/status", headers=bearer(API_KEY)).status_code == 401
    status = keyed.get("/admin/status", headers=bearer(ADMIN_KEY)).json()
    assert status["routes"] == 3 and status["vectors"] == 17
    assert len(status["index_fingerprint"]) == 64 and status["index_built_at"]
