"""POST /feedback, the decision log it is stored in, and the script that mines corrections."""

from __future__ import annotations

import json
import subprocess
import sys

import yaml
from conftest import REPO_ROOT, offline_env
from llm_fixtures import (  # noqa: F401
    api_index_fixture,
    fake_fixture,
    fake_server_fixture,
    make_client_fixture,
)

from service.tools.feedback import corrections, utterance_snippets

MATHS = "what is 12 times 7"
HELLO = "hello there, how are you today"
PERCENT = "how much is twenty percent of eighty"
SCRIPT = REPO_ROOT / "scripts" / "feedback_to_utterances.py"


def records(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def decide(client, prompt: str) -> dict:
    response = client.post("/route", json={"prompt": prompt})
    assert response.status_code == 200
    return response.json()


# Feedback


def test_feedback_on_a_recent_decision_is_recorded(make_client, tmp_path):
    log = tmp_path / "decisions.jsonl"
    client = make_client(decision_log=log)
    decision = decide(client, MATHS)
    response = client.post("/feedback", json={"decision_id": decision["decision_id"], "rating": 1})
    assert response.status_code == 200
    assert response.json() == {
        "decision_id": decision["decision_id"],
        "route": "math",
        "recorded": True,
    }
    feedback = [r for r in records(log) if r["type"] == "feedback"]
    assert feedback == [
        {
            "type": "feedback",
            "decision_id": decision["decision_id"],
            "route": "math",
            "rating": 1.0,
            "correct_route": None,
            "ts": feedback[0]["ts"],
        }
    ]


def test_feedback_on_an_unknown_decision_is_404(make_client):
    response = make_client().post("/feedback", json={"decision_id": "f" * 32, "rating": 0})
    assert response.status_code == 404
    assert response.json()["error"]["type"] == "unknown_decision"


def test_only_the_most_recent_decisions_are_remembered(make_client):
    client = make_client(recent_decisions=2)
    first, second, third = (decide(client, p) for p in (MATHS, HELLO, PERCENT))
    for kept in (second, third):
        body = {"decision_id": kept["decision_id"], "rating": 1}
        assert client.post("/feedback", json=body).status_code == 200
    body = {"decision_id": first["decision_id"], "rating": 1}
    assert client.post("/feedback", json=body).status_code == 404


def test_a_correction_must_name_a_known_route(make_client):
    client = make_client()
    decision = decide(client, MATHS)
    body = {"decision_id": decision["decision_id"], "rating": 0, "correct_route": "nope"}
    response = client.post("/feedback", json=body)
    assert response.status_code == 400
    assert "known routes" in response.json()["error"]["message"]


def test_a_rating_outside_zero_to_one_is_refused(make_client):
    client = make_client()
    decision = decide(client, MATHS)
    body = {"decision_id": decision["decision_id"], "rating": 5}
    assert client.post("/feedback", json=body).status_code == 422


def test_stats_report_quality_per_route(make_client):
    client = make_client()
    good, bad = decide(client, MATHS), decide(client, HELLO)
    client.post("/feedback", json={"decision_id": good["decision_id"], "rating": 1})
    client.post(
        "/feedback",
        json={"decision_id": bad["decision_id"], "rating": 0, "correct_route": "math"},
    )
    client.post("/feedback", json={"decision_id": bad["decision_id"], "rating": 0.5})
    routes = client.get("/stats").json()["routes"]
    assert (routes["math"]["feedback"], routes["math"]["mean_rating"]) == (1, 1.0)
    assert routes["math"]["corrections"] == 0
    chat = routes["chitchat"]
    assert (chat["feedback"], chat["mean_rating"], chat["corrections"]) == (2, 0.25, 1)


# The decision log


def test_the_log_holds_no_prompt_text_unless_asked(make_client, tmp_path):
    log = tmp_path / "decisions.jsonl"
    client = make_client(decision_log=log)
    decide(client, MATHS)
    assert client.post("/complete", json={"prompt": MATHS}).status_code == 200
    logged = records(log)
    assert [r["type"] for r in logged] == ["decision", "decision", "completion"]
    assert MATHS not in log.read_text()
    assert logged[0]["route"] == "math"
    assert logged[0]["endpoint"] == "route"
    assert logged[2]["decision_id"] == logged[1]["decision_id"]
    assert logged[2]["attempts"][0]["outcome"] == "ok"


def test_prompts_are_logged_when_enabled(make_client, tmp_path):
    log = tmp_path / "decisions.jsonl"
    decide(make_client(decision_log=log, log_prompts=True), MATHS)
    assert records(log)[0]["prompt"] == MATHS


def test_no_log_file_is_written_by_default(make_client, tmp_path):
    client = make_client()
    decide(client, MATHS)
    assert not list(tmp_path.glob("**/*.jsonl"))


# From corrections to candidate utterances


def test_corrections_group_prompts_by_the_route_they_belonged_to():
    logged = [
        {"type": "decision", "decision_id": "a", "route": "chitchat", "prompt": PERCENT},
        {"type": "decision", "decision_id": "b", "route": "math", "prompt": MATHS},
        {"type": "decision", "decision_id": "c", "route": "chitchat"},
        {"type": "feedback", "decision_id": "a", "route": "chitchat", "correct_route": "math"},
        {"type": "feedback", "decision_id": "b", "route": "math", "correct_route": "math"},
        {"type": "feedback", "decision_id": "c", "route": "chitchat", "correct_route": "math"},
    ]
    found, missing = corrections(logged)
    assert found == {"math": [PERCENT]}
    assert missing == 1, "decision c was logged without its prompt"
    assert utterance_snippets(found, known=[PERCENT.upper()]) == ""


def test_the_script_prints_a_yaml_snippet_per_corrected_route(make_client, tmp_path):
    log = tmp_path / "decisions.jsonl"
    client = make_client(decision_log=log, log_prompts=True)
    decision = decide(client, PERCENT)
    assert decision["route"] != "cooking"
    body = {"decision_id": decision["decision_id"], "rating": 0, "correct_route": "cooking"}
    assert client.post("/feedback", json=body).status_code == 200

    result = subprocess.run(
        [sys.executable, str(SCRIPT), str(log)],
        cwd=REPO_ROOT,
        env=offline_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("# routes/cooking.yaml")
    assert yaml.safe_load(result.stdout) == {"utterances": [PERCENT]}


def test_ratings_become_outcome_rows_the_build_accepts(make_client, tmp_path):
    from service.config.outcomes import parse_outcomes
    from service.tools.feedback import outcome_rows

    log = tmp_path / "decisions.jsonl"
    client = make_client(decision_log=log, log_prompts=True)
    rated = decide(client, MATHS)
    unrated = decide(client, HELLO)
    assert unrated["decision_id"] != rated["decision_id"]
    body = {"decision_id": rated["decision_id"], "rating": 0.5}
    assert client.post("/feedback", json=body).status_code == 200

    rows, missing = outcome_rows(records(log))

    assert missing == 0
    assert rows == [{"prompt": MATHS, "outcomes": {rated["model"]: 0.5}, "route": "math"}]
    parsed, problems = parse_outcomes("\n".join(json.dumps(r) for r in rows), "f.jsonl")
    assert problems == [] and parsed[0].outcomes == {rated["model"]: 0.5}


def test_the_model_that_answered_is_the_one_rated():
    from service.tools.feedback import outcome_rows

    log = [
        {"type": "decision", "decision_id": "d", "route": "math", "model": "a", "prompt": "p"},
        {"type": "completion", "decision_id": "d", "ok": True, "model": "fallback-b"},
        {"type": "feedback", "decision_id": "d", "route": "math", "rating": 1.0},
        {"type": "feedback", "decision_id": "unknown", "route": "math", "rating": 0.0},
    ]

    rows, missing = outcome_rows(log)

    assert rows == [{"prompt": "p", "outcomes": {"fallback-b": 1.0}, "route": "math"}]
    assert missing == 1
