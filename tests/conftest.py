"""Shared fixtures: one real encoder per session, small real route folders and indexes.

The environment is made offline before anything imports litellm or the Hugging Face hub.
"""

import os
import sys
from pathlib import Path

os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["TRANSFORMERS_OFFLINE"] = "1"
os.environ["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
# The wide encoder (multilingual-e5) is off for the suite: every index it builds would embed
# its utterances twice. tests/test_wide_path.py turns it on where it is what is tested.
os.environ["SEMROUTE_WIDE_ENCODER"] = "none"
sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # `service` without installing

import shutil
import subprocess
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np
import pytest
import yaml
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.config.routes import RouteSet, load_route_set
from service.config.settings import Settings
from service.encoding.encoder import BaseEncoder, Encoder, load_encoder
from service.index.store import build_index

REPO_ROOT = Path(__file__).resolve().parent.parent

SMALL_ROUTES: dict[str, dict[str, Any]] = {
    "coding": {
        "description": "Writing, reviewing or debugging code in any programming language.",
        "model": "openai/gpt-4.1",
        "fallbacks": ["anthropic/claude-sonnet-4-5"],
        "threshold": 0.25,
        "utterances": [
            "write a python function that parses ISO dates",
            "fix the null pointer exception in my Java class",
            "refactor this JavaScript loop into a map call",
            "why does my SQL query with a LEFT JOIN return duplicate rows",
            "add type hints and unit tests to this Python module",
            "explain this Rust borrow checker compile error",
        ],
    },
    "cooking": {
        "description": "Recipes, ingredients and kitchen techniques.",
        "model": "openai/gpt-4.1-mini",
        "utterances": [
            "how long should I roast a whole chicken in the oven",
            "give me a recipe for vegetarian lasagna",
            "what can I use instead of eggs when baking a cake",
            "how do I make a sourdough starter from scratch",
            "what spices go well in a lentil curry",
            "how do I keep pasta from sticking together when boiling it",
        ],
    },
    "greetings": {
        "description": "Small talk, greetings and thanks.",
        "model": "openai/gpt-4.1-nano",
        "utterances": [
            "hello there, how are you today",
            "good morning to you",
            "hi, nice to meet you",
            "thanks a lot, have a great day",
            "hey, what's up",
        ],
    },
}
SMALL_ROUTER: dict[str, Any] = {
    "default_route": "greetings",
    "scoring": "knn",  # the pipeline tests steer decisions with cosine thresholds
    "default_threshold": 0.2,
}

# Prompts reused across modules so the encoder's prompt cache embeds each of them once.
CODING_PROMPT = "fix the type error in my python code"
COOKING_PROMPT = "give me a recipe for banana bread"
FAR_PROMPT = "quarterly corporate tax filing deadline"

WriteRoutes = Callable[..., Path]


def write_route_folder(
    folder: Path,
    routes: dict[str, Any],
    router: dict[str, Any] | str | None = None,
) -> Path:
    """Write ``<stem>.yaml`` per entry of ``routes`` and ``router.yaml``; return ``folder``.

    A dict value is dumped as YAML, a str value is written verbatim (for malformed files);
    ``router=None`` writes no ``router.yaml``.
    """
    folder.mkdir(parents=True, exist_ok=True)
    for stem, content in routes.items():
        text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
        (folder / f"{stem}.yaml").write_text(text, encoding="utf-8")
    if router is not None:
        text = router if isinstance(router, str) else yaml.safe_dump(router, sort_keys=False)
        (folder / "router.yaml").write_text(text, encoding="utf-8")
    return folder


@pytest.fixture(scope="session")
def encoder() -> BaseEncoder:
    """The encoder the service loads by default (multilingual USE, int8 ONNX), once per run.

    Every in-process app, router and index of the suite embeds with it, as the service and
    ``scripts/build_index.py`` do; ``minilm_encoder`` is the sentence-transformers one."""
    return load_encoder()


@pytest.fixture(scope="session")
def minilm_encoder() -> Encoder:
    """English MiniLM through sentence-transformers (``SEMROUTE_ENCODER_BACKEND=torch``), once."""
    return Encoder()


def semroute_environment() -> dict[str, str]:
    return {key: value for key, value in os.environ.items() if key.startswith("SEMROUTE_")}


@pytest.fixture(autouse=True)
def settings_environment_is_left_as_found() -> Iterator[None]:
    """Settings are read from SEMROUTE_* variables: one left changed by a test would change
    the settings of every later test, so each test must leave them as it found them."""
    before = semroute_environment()
    yield
    assert semroute_environment() == before, "a test left SEMROUTE_* changed: use monkeypatch"


@pytest.fixture
def write_routes() -> WriteRoutes:
    """``write_routes(folder, routes, router)`` -> the folder, holding those route files."""
    return write_route_folder


@pytest.fixture
def small_routes(tmp_path: Path, write_routes: WriteRoutes) -> Path:
    """A valid folder: coding, cooking and greetings (the default route)."""
    return write_routes(tmp_path / "routes", SMALL_ROUTES, SMALL_ROUTER)


@pytest.fixture
def small_route_set(small_routes: Path) -> RouteSet:
    return load_route_set(small_routes)


@pytest.fixture(scope="session")
def small_index_template(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index of ``SMALL_ROUTES``, built once: embedding is the slow part of every build."""
    base = tmp_path_factory.mktemp("small")
    route_set = load_route_set(write_route_folder(base / "routes", SMALL_ROUTES, SMALL_ROUTER))
    build_index(route_set, encoder, base / "index")
    return base / "index"


@pytest.fixture
def small_index(small_index_template: Path, tmp_path: Path) -> Path:
    """A real index of ``small_routes`` in this test's own folder (a copy of the template)."""
    return Path(shutil.copytree(small_index_template, tmp_path / "index"))


COMPLEXITY_EXAMPLES = REPO_ROOT / "routes" / "complexity.jsonl"


def add_complexity_examples(folder: Path) -> Path:
    """Copy the shipped complexity examples into the route folder ``folder``; return it."""
    shutil.copy(COMPLEXITY_EXAMPLES, folder / "complexity.jsonl")
    return folder


@pytest.fixture(scope="session")
def complexity_index_template(encoder: Encoder, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index of ``SMALL_ROUTES`` plus the shipped complexity examples, built once.

    Models are not part of the fingerprint, so it also fits any variant of those routes
    that only adds tiered ``models``.
    """
    base = tmp_path_factory.mktemp("complexity")
    folder = add_complexity_examples(
        write_route_folder(base / "routes", SMALL_ROUTES, SMALL_ROUTER)
    )
    build_index(load_route_set(folder), encoder, base / "index")
    return base / "index"


@pytest.fixture
def complexity_index(complexity_index_template: Path, tmp_path: Path) -> Path:
    """A copy of ``complexity_index_template`` in this test's own folder."""
    return Path(shutil.copytree(complexity_index_template, tmp_path / "complexity-index"))


@pytest.fixture
def settings(small_routes: Path, small_index: Path) -> Settings:
    return Settings(routes_dir=small_routes, index_dir=small_index)


@pytest.fixture
def client(settings: Settings, encoder: Encoder) -> Iterator[TestClient]:
    """The real ASGI app with its lifespan run, sharing the session's encoder."""
    with TestClient(create_app(settings, encoder=encoder)) as test_client:
        yield test_client


# -- subprocesses -------------------------------------------------------------------------------

BUILD_SCRIPT = REPO_ROOT / "scripts" / "build_index.py"


def offline_env(**extra: str) -> dict[str, str]:
    """The environment of a child process: offline, no SEMROUTE_ setting inherited but the
    suite's (no wide encoder) unless ``extra`` says otherwise."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("SEMROUTE_")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", LITELLM_LOCAL_MODEL_COST_MAP="True")
    env.update(SEMROUTE_WIDE_ENCODER="none")
    env.update(extra)
    return env


def run_script(
    script: Path, *args: str | Path, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """A script of ``scripts/`` run as a user runs it: its own process, offline, from the repo."""
    return subprocess.run(
        [sys.executable, str(script), *map(str, args)],
        cwd=REPO_ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def run_build_script(*args: str | Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return run_script(BUILD_SCRIPT, *args, timeout=timeout)


@dataclass(frozen=True)
class CliBuild:
    routes: Path
    index: Path
    result: subprocess.CompletedProcess[str]


@pytest.fixture(scope="session")
def cli_build(tmp_path_factory: pytest.TempPathFactory) -> CliBuild:
    """``scripts/build_index.py`` run once on the small routes; shared by CLI and e2e tests.

    Read-only for its users: a test that edits routes works on its own copy.
    """
    base = tmp_path_factory.mktemp("cli")
    routes = write_route_folder(base / "routes", SMALL_ROUTES, SMALL_ROUTER)
    result = run_build_script("--routes", routes, "--index", base / "index", "--quiet")
    return CliBuild(routes=routes, index=base / "index", result=result)


def count_embedded(encoder: BaseEncoder, monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every text the real encoder's model is asked to embed from now on."""
    embedded: list[str] = []
    embed = encoder._embed

    def counting(texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        embedded.extend(texts)
        return embed(texts, batch_size, progress)

    monkeypatch.setattr(encoder, "_embed", counting)
    return embedded
