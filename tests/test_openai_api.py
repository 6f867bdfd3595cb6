"""The OpenAI-compatible API, spoken to by the official ``openai`` client over real HTTP.

A real ``python -m service`` process serves an index built by ``scripts/build_index.py``;
every model lives on the fake provider running in this test process, its name choosing its
behaviour (ok-, e500-, halfdrop-, ...; see fake_openai.py).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import openai
import pytest
from conftest import run_build_script
from fake_openai import FakeOpenAI
from llm_fixtures import (  # noqa: F401
    API_ROUTER,
    API_ROUTES,
    ScriptedCall,
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
    user,
    write_route_folder,
)
from service_process import running_service

pytestmark = pytest.mark.e2e

ROUTES = {
    **API_ROUTES,
    "cooking": {**API_ROUTES["cooking"], "model": "openai/e500-x", "fallbacks": ["openai/ok-y"]},
    "flaky": {
        "description": "A route whose model drops the connection halfway through an answer.",
        "model": "openai/halfdrop-h",
        "fallbacks": ["openai/ok-h"],
        "utterances": ["route me to the flaky streaming model please"],
    },
}
ROUTER = {**API_ROUTER, "completion": {"attempt_timeout_s": 10, "deadline_s": 20}}
MATHS = "what is 12 times 7"
RECIPE = "give me a recipe for vegetarian lasagna"
FLAKY = "route me to the flaky streaming model please"


@dataclass(frozen=True)
class Service:
    base_url: str
    fake: FakeOpenAI
    decision_log: Path

    def client(self) -> openai.OpenAI:
        return openai.OpenAI(base_url=f"{self.base_url}/v1", api_key="unused", max_retries=0)

    def last_request(self) -> dict:
        with self.fake._lock:
            return dict(self.fake.requests[-1])


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    base = tmp_path_factory.mktemp("openai_api")
    routes = write_route_folder(base / "routes", ROUTES, ROUTER)
    built = run_build_script("--routes", routes, "--index", base / "index", "--quiet")
    assert built.returncode == 0, built.stderr
    with (
        FakeOpenAI() as fake,
        running_service(
            base / "service.log",
            SEMROUTE_ROUTES_DIR=str(routes),
            SEMROUTE_INDEX_DIR=str(base / "index"),
            SEMROUTE_LLM_API_BASE=fake.api_base,
            SEMROUTE_DECISION_LOG=str(base / "decisions.jsonl"),
            SEMROUTE_LOG_PROMPTS="true",
        ) as base_url,
    ):
        yield Service(base_url, fake, base / "decisions.jsonl")


# Plain answers


def test_auto_routes_and_the_headers_carry_the_decision(service: Service) -> None:
    raw = service.client().chat.completions.with_raw_response.create(
        model="auto", messages=user(MATHS)
    )
    completion = raw.parse()
    assert completion.choices[0].message.content == "answer from ok-math"
    assert completion.model == "openai/ok-math"
    assert completion.usage is not None and completion.usage.total_tokens == 18
    assert raw.headers["x-semroute-route"] == "math"
    assert raw.headers["x-semroute-model"] == "openai/ok-math"
    assert raw.headers["x-semroute-method"] == "semantic"
    assert raw.headers["x-semroute-confidence"]
    assert len(raw.headers["x-semroute-decision-id"]) == 32


def test_a_route_name_as_model_forces_that_route(service: Service) -> None:
    raw = service.client().chat.completions.with_raw_response.create(
        model="chitchat", messages=user(MATHS)
    )
    assert raw.parse().choices[0].message.content == "answer from ok-chat"
    assert raw.headers["x-semroute-route"] == "chitchat"
    assert raw.headers["x-semroute-method"] == "override"


def test_generation_parameters_pass_through_to_the_model(service: Service) -> None:
    tools = [
        {
            "type": "function",
            "function": {"name": "calc", "parameters": {"type": "object", "properties": {}}},
        }
    ]
    service.client().chat.completions.create(
        model="auto",
        messages=user(MATHS),
        temperature=0.3,
        top_p=0.9,
        max_tokens=50,
        stop=["END"],
        seed=7,
        user="alice",  # accepted; litellm leaves it out for a custom api_base
        tools=tools,  # type: ignore[arg-type]
        tool_choice="auto",
    )
    sent = service.last_request()
    assert sent["model"] == "ok-math"
    assert sent["temperature"] == 0.3
    assert sent["top_p"] == 0.9
    assert sent["max_tokens"] == 50
    assert sent["stop"] == ["END"]
    assert sent["seed"] == 7
    assert sent["tools"] == tools
    assert sent["tool_choice"] == "auto"


def test_a_failing_model_falls_back_within_the_request(service: Service) -> None:
    raw = service.client().chat.completions.with_raw_response.create(
        model="auto", messages=user(RECIPE)
    )
    assert raw.parse().choices[0].message.content == "answer from ok-y"
    assert raw.parse().model == "openai/ok-y", "the body names the model that answered"
    assert raw.headers["x-semroute-route"] == "cooking"
    assert raw.headers["x-semroute-model"] == "openai/e500-x", "the headers name the decision"
    assert raw.headers["x-semroute-served-model"] == "openai/ok-y"


# Streaming


def test_streaming_delivers_the_answer_in_chunks_with_the_decision_in_headers(
    service: Service,
) -> None:
    with service.client().chat.completions.with_streaming_response.create(
        model="auto", messages=user(MATHS), stream=True
    ) as response:
        assert response.headers["x-semroute-route"] == "math"
        assert response.headers["content-type"].startswith("text/event-stream")
        chunks = list(response.parse())
    assert len(chunks) > 2
    text = "".join(c.choices[0].delta.content or "" for c in chunks if c.choices)
    assert text == "answer from ok-math"
    assert {c.model for c in chunks} == {"openai/ok-math"}
    assert chunks[-1].choices[0].finish_reason == "stop"


def test_the_stream_ends_with_done(service: Service) -> None:
    body = {"model": "auto", "messages": user(MATHS), "stream": True}
    with httpx.stream("POST", f"{service.base_url}/v1/chat/completions", json=body) as response:
        events = [line for line in response.iter_lines() if line]
    assert events[-1] == "data: [DONE]"
    assert all(line.startswith("data: ") for line in events)
    first = json.loads(events[0].removeprefix("data: "))
    assert first["object"] == "chat.completion.chunk"


def test_streaming_falls_back_before_the_first_chunk(service: Service) -> None:
    stream = service.client().chat.completions.create(
        model="auto", messages=user(RECIPE), stream=True
    )
    chunks = list(stream)
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == (
        "answer from ok-y"
    )
    assert {c.model for c in chunks} == {"openai/ok-y"}


def test_a_stream_cut_after_its_first_chunk_ends_with_an_error_not_a_fallback(
    service: Service,
) -> None:
    received = []
    stream = service.client().chat.completions.create(
        model="auto", messages=user(FLAKY), stream=True
    )
    with pytest.raises(openai.APIError, match="mid-stream"):
        for chunk in stream:
            received.append(chunk.choices[0].delta.content or "")
    assert "".join(received).startswith("partial answer")
    assert "ok-h" not in service.fake.models_called(), "no fallback once bytes were sent"


def test_a_chain_that_fails_before_streaming_answers_502(service: Service) -> None:
    with pytest.raises(openai.APIStatusError) as caught:
        service.client().chat.completions.create(
            model="broken", messages=user("anything"), stream=True
        )
    assert caught.value.status_code == 502
    assert "every model failed" in caught.value.message


# Requests the router cannot honour


def test_an_unknown_model_is_a_400_that_lists_the_routes(service: Service) -> None:
    with pytest.raises(openai.BadRequestError, match="known routes"):
        service.client().chat.completions.create(model="gpt-5", messages=user(MATHS))


def test_more_than_one_choice_is_refused(service: Service) -> None:
    with pytest.raises(openai.UnprocessableEntityError, match="n > 1"):
        service.client().chat.completions.create(model="auto", messages=user(MATHS), n=2)


def test_models_lists_auto_and_every_route(service: Service) -> None:
    ids = [model.id for model in service.client().models.list()]
    assert ids[0] == "auto"
    assert set(ids[1:]) == set(ROUTES)


# Monitoring of this endpoint


def test_openai_requests_reach_the_decision_log(service: Service) -> None:
    raw = service.client().chat.completions.with_raw_response.create(
        model="auto", messages=user(MATHS)
    )
    decision_id = raw.headers["x-semroute-decision-id"]
    records = [json.loads(line) for line in service.decision_log.read_text().splitlines()]
    mine = [r for r in records if r["decision_id"] == decision_id]
    assert [r["type"] for r in mine] == ["decision", "completion"]
    assert mine[0]["endpoint"] == "openai"
    assert mine[0]["prompt"] == MATHS
    assert mine[1]["ok"] is True
    assert mine[1]["model"] == "openai/ok-math"


# The same endpoint through the ASGI app (no process): fallback cases and bookkeeping


def sse_events(client, **body) -> tuple[dict[str, str], list[str]]:
    with client.stream("POST", "/v1/chat/completions", json={"model": "auto", **body}) as r:
        assert r.status_code == 200, r.read()
        return dict(r.headers), [line for line in r.iter_lines() if line]


def streamed_text(events: list[str]) -> str:
    chunks = [json.loads(e.removeprefix("data: ")) for e in events if e != "data: [DONE]"]
    return "".join(c["choices"][0]["delta"].get("content") or "" for c in chunks if c["choices"])


def test_a_stream_with_only_white_space_falls_back(make_client):
    client = make_client()
    headers, events = sse_events(
        client, messages=user("route me to the blank model please"), stream=True
    )
    assert headers["x-semroute-route"] == "blanks"
    assert streamed_text(events) == "answer from ok-t"
    assert events[-1] == "data: [DONE]"
    attempts = client.get("/stats").json()["models"]
    assert attempts["openai/blank-t"]["success_rate"] == 0.0
    assert attempts["openai/ok-t"]["success_rate"] == 1.0


def test_a_stream_whose_every_model_is_too_slow_is_a_504(make_client):
    response = make_client().post(
        "/v1/chat/completions",
        json={
            "model": "auto",
            "messages": user("route me to the slow models please"),
            "stream": True,
        },
    )
    assert response.status_code == 504
    assert response.json()["error"]["type"] == "deadline_exceeded"


def test_a_finished_stream_is_counted_in_stats_and_metrics(make_client):
    client = make_client()
    sse_events(client, messages=user(MATHS), stream=True)
    maths = client.get("/stats").json()["routes"]["math"]
    assert (maths["decisions"], maths["requests"], maths["success_rate"]) == (1, 1, 1.0)
    metrics = client.get("/metrics").text
    assert (
        'semroute_completions_total{model="openai/ok-math",outcome="ok",role="primary"} 1.0'
        in metrics
    )
    assert 'semroute_decisions_total{endpoint="openai",method="semantic",route="math"} 1.0' in (
        metrics
    )


def test_a_chat_without_a_user_message_is_422(make_client):
    response = make_client().post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": [{"role": "system", "content": "be brief"}]},
    )
    assert response.status_code == 422
    assert "user message" in response.json()["error"]["message"]


def test_streaming_works_with_any_litellm_call(make_client, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    call = ScriptedCall({"openai/ok-math": "four score"})
    client = make_client(llm_call=call, llm_api_base=None)
    headers, events = sse_events(client, messages=user(MATHS), stream=True)
    assert headers["x-semroute-route"] == "math"
    assert streamed_text(events) == "four score"


def test_a_stream_without_any_api_key_says_which_to_set(make_client, monkeypatch):
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    response = make_client(llm_api_base=None).post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": user(MATHS), "stream": True},
    )
    assert response.status_code == 502
    assert response.json()["error"]["type"] == "missing_api_key"
    assert "OPENAI_API_KEY" in response.json()["error"]["message"]


def test_routing_hints_travel_in_the_body_like_openai_extra_body(make_client):
    client = make_client()
    first = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": user(MATHS), "conversation_id": "chat-7"},
    )
    follow_up = client.post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": user("thanks, and now?"), "conversation_id": "chat-7"},
    )
    assert first.headers["x-semroute-route"] == "math"
    assert follow_up.headers["x-semroute-route"] == "math"
    assert follow_up.headers["x-semroute-method"] == "context"


def test_an_unknown_quality_is_422(make_client):
    response = make_client().post(
        "/v1/chat/completions",
        json={"model": "auto", "messages": user(MATHS), "quality": "ultra"},
    )
    assert response.status_code == 422
    assert "quality" in response.json()["error"]["message"]
