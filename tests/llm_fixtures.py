"""Shared pieces of the completion tests: a fake provider server, a scripted litellm call,
and a small routed app whose models all live on the fake server.

A module imports the fixtures it uses explicitly, by their ``*_fixture`` function names
(``from llm_fixtures import fake_fixture, fake_server_fixture  # noqa: F401``), and requests
them by their fixture names (``fake``, ``fake_server``, ...); the two differ so that a test's
parameter does not shadow the import.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

import litellm
import pytest
from conftest import write_route_folder
from fake_openai import FakeOpenAI
from fastapi.testclient import TestClient

from service.api.app import create_app
from service.completion.chain import Call
from service.config.routes import load_route_set
from service.config.settings import Settings
from service.index.store import build_index

SLOW_SECONDS = 3.0
"""How long the fake's slow-* models take: far beyond every timeout used in these tests."""


def user(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


class ScriptedCall:
    """Stands in for ``litellm.acompletion`` and records every call it receives.

    A model named in ``answers`` is answered by litellm's own ``mock_response`` (a string, or
    an exception instance that litellm raises); any other model goes to litellm for real,
    which in these tests means the fake server.
    """

    def __init__(self, answers: dict[str, Any] | None = None):
        self.answers: dict[str, Any] = dict(answers or {})
        self.calls: list[dict[str, Any]] = []

    async def __call__(self, **kwargs: Any) -> Any:
        self.calls.append(kwargs)
        if kwargs["model"] in self.answers:
            return await litellm.acompletion(**kwargs, mock_response=self.answers[kwargs["model"]])
        return await litellm.acompletion(**kwargs)

    def models(self) -> list[str]:
        return [call["model"] for call in self.calls]


@pytest.fixture(scope="module", name="fake_server")
def fake_server_fixture() -> Iterator[FakeOpenAI]:
    with FakeOpenAI(slow_seconds=SLOW_SECONDS) as server:
        yield server


@pytest.fixture(name="fake")
def fake_fixture(fake_server: FakeOpenAI) -> FakeOpenAI:
    """The module's fake provider, with the requests of earlier tests forgotten."""
    fake_server.reset()
    return fake_server


# A routed app whose every model is a behaviour of the fake server (see fake_openai.py).

API_ROUTES: dict[str, dict[str, Any]] = {
    "chitchat": {
        "description": "Greetings, thanks and small talk.",
        "model": "openai/ok-chat",
        "utterances": [
            "hello there, how are you today",
            "good morning to you",
            "thanks a lot, have a great day",
        ],
    },
    "math": {
        "description": "Arithmetic, algebra, equations and calculus.",
        "model": "openai/ok-math",
        "utterances": [
            "what is 12 times 7",
            "solve the equation 2x + 3 = 11 for x",
            "compute the derivative of x cubed",
            "what is the square root of 144",
        ],
    },
    "cooking": {
        "description": "Recipes, ingredients and kitchen techniques.",
        "model": "openai/e500-cook",
        "fallbacks": ["openai/ok-cook"],
        "utterances": [
            "give me a recipe for vegetarian lasagna",
            "how long should I roast a whole chicken",
            "what can I use instead of eggs when baking a cake",
        ],
    },
    "broken": {
        "description": "A route whose every model fails.",
        "model": "openai/e500-b",
        "fallbacks": ["openai/garbage-b", "openai/empty-b"],
        "utterances": ["route me to the broken models please"],
    },
    "sluggish": {
        "description": "A route whose every model is too slow.",
        "model": "openai/slow-1",
        "fallbacks": ["openai/slow-2", "openai/slow-3", "openai/slow-4", "openai/slow-5"],
        "utterances": ["route me to the slow models please"],
    },
    "blanks": {
        "description": "A route whose model answers with whitespace.",
        "model": "openai/blank-t",
        "fallbacks": ["openai/ok-t"],
        "utterances": ["route me to the blank model please"],
    },
}
API_ROUTER: dict[str, Any] = {
    "default_route": "chitchat",
    "scoring": "knn",  # tests steer the tie-breaker with cosine thresholds
    "default_threshold": 0.4,
    "tiebreaker": {"model": "openai/ok-tb", "timeout_s": 2},
    "completion": {"attempt_timeout_s": 0.5, "deadline_s": 1.25},
}


@pytest.fixture(scope="module", name="api_index")
def api_index_fixture(encoder: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The index of API_ROUTES, built once per module.

    The fingerprint covers route names and utterances only, so folders that change models,
    fallbacks, thresholds or router policy share this index.
    """
    base = tmp_path_factory.mktemp("api")
    route_set = load_route_set(write_route_folder(base / "routes", API_ROUTES, API_ROUTER))
    build_index(route_set, encoder, base / "index")
    return base / "index"


MakeClient = Callable[..., TestClient]


@pytest.fixture(name="make_client")
def make_client_fixture(
    encoder: Any, api_index: Path, fake: FakeOpenAI, tmp_path: Path
) -> Iterator[MakeClient]:
    """``make_client(routes=..., router=..., llm_call=..., **settings)`` -> a started TestClient.

    Every model goes to the fake server unless ``llm_api_base=None`` is passed.
    """
    counter = itertools.count()
    with ExitStack() as stack:

        def make(
            routes: dict[str, dict[str, Any]] = API_ROUTES,
            router: dict[str, Any] = API_ROUTER,
            llm_call: Call | None = None,
            **settings: Any,
        ) -> TestClient:
            folder = write_route_folder(tmp_path / f"routes{next(counter)}", routes, router)
            options: dict[str, Any] = {
                "routes_dir": folder,
                "index_dir": api_index,
                "llm_api_base": fake.api_base,
                "model_override": None,
                "llm_api_key": None,
                **settings,
            }
            app = create_app(Settings(**options), encoder=encoder, llm_call=llm_call)
            return stack.enter_context(TestClient(app))

        yield make
