"""End to end with the bundled local model: llama.cpp serving SmolLM2 and a real uvicorn service.

Asserts structure, usage, attempts and routing; never the small model's wording.
"""

import json
import sys
import urllib.error
import urllib.request
from pathlib import Path

import litellm
import pytest
from conftest import run_build_script, write_route_folder
from service_process import free_port, running_service, start, stop, wait_until_ok

from service.tools.local_llm import ALIAS

pytestmark = pytest.mark.e2e

ROOT = Path(__file__).resolve().parent.parent
LLM_START_TIMEOUT_S = 120

ROUTES = {
    "geography": {
        "description": "Countries, capitals, rivers and maps.",
        "model": "openai/gpt-4.1-mini",
        "utterances": [
            "what is the capital of France",
            "what is the capital city of Japan",
            "which country has the capital Canberra",
        ],
    },
    "cooking": {
        "description": "Recipes, ingredients and kitchen techniques.",
        "model": "openai/gpt-4.1-mini",
        "utterances": [
            "give me a recipe for vegetarian lasagna",
            "give me a recipe for chocolate chip cookies",
            "how do I cook a recipe for tomato soup",
        ],
    },
}
ROUTER = {
    "default_route": "cooking",
    "scoring": "knn",
    "default_threshold": 0.3,
    # The small model on a busy CPU is slow; these bounds only stop a hung test.
    "completion": {"attempt_timeout_s": 90, "deadline_s": 120},
}


def post_json(url, payload, timeout):
    request = urllib.request.Request(
        url, data=json.dumps(payload).encode(), headers={"content-type": "application/json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read())


@pytest.fixture(scope="session")
def local_stack(tmp_path_factory):
    """The local LLM (``scripts/local_llm.py``) and ``python -m service`` sending every model
    to it, each on a free port; yields (LLM api_base, service URL).

    The index is built while the LLM loads; both processes are always terminated.
    """
    base = tmp_path_factory.mktemp("local_stack")
    llm_port = free_port()
    llm_log, service_log = base / "llm.log", base / "service.log"
    llm_api_base = f"http://127.0.0.1:{llm_port}/v1"
    llm = start(
        [sys.executable, str(ROOT / "scripts" / "local_llm.py"), "--port", str(llm_port)], llm_log
    )
    try:
        routes = write_route_folder(base / "routes", ROUTES, ROUTER)
        index = base / "index"
        built = run_build_script("--routes", routes, "--index", index, "--quiet", timeout=300)
        assert built.returncode == 0, built.stderr
        env = {
            "SEMROUTE_ROUTES_DIR": str(routes),
            "SEMROUTE_INDEX_DIR": str(index),
            "SEMROUTE_MODEL_OVERRIDE": f"openai/{ALIAS}",
            "SEMROUTE_LLM_API_BASE": llm_api_base,
        }
        with running_service(service_log, "--log-level", "warning", **env) as service_url:
            wait_until_ok(f"http://127.0.0.1:{llm_port}/health", llm, llm_log, LLM_START_TIMEOUT_S)
            yield llm_api_base, service_url
    finally:
        stop(llm)


@pytest.fixture(scope="session")
def local_llm(local_stack):
    return local_stack[0]


@pytest.fixture(scope="session")
def local_service(local_stack):
    return local_stack[1]


async def test_litellm_gets_an_answer_and_usage_from_the_local_model(local_llm):
    response = await litellm.acompletion(
        model=f"openai/{ALIAS}",
        api_base=local_llm,
        api_key="x",
        messages=[{"role": "user", "content": "Name a colour."}],
        max_tokens=16,
        timeout=90,
    )
    assert response.choices[0].message.content.strip()
    assert response.usage.prompt_tokens > 0
    assert 0 < response.usage.completion_tokens <= 16
    assert response.usage.total_tokens > 0


def test_the_service_answers_a_routed_prompt_with_the_local_model(local_service):
    status, body = post_json(
        f"{local_service}/complete",
        {"prompt": "what is the capital of Italy", "max_tokens": 24},
        timeout=150,
    )
    assert status == 200, body
    assert body["answer"].strip()
    assert body["decision"]["route"] == "geography"
    assert body["decision"]["method"] == "semantic"
    assert body["decision"]["model"] == "openai/gpt-4.1-mini", "the route's own model string"
    [attempt] = body["attempts"]
    assert (attempt["role"], attempt["outcome"]) == ("primary", "ok")
    assert body["usage"]["total_tokens"] > 0
    assert 0 < body["usage"]["completion_tokens"] <= 24
    assert body["cost_usd"] is None, "the local model has no price"
