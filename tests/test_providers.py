"""Where each model string is served, and which credentials it still needs."""

import pytest
from llm_fixtures import API_ROUTES, write_route_folder

from service.completion.providers import LOCAL_API_KEY, Endpoints
from service.config.routes import ModelParams, load_route_set


@pytest.fixture
def no_provider_keys(monkeypatch):
    for name in ("OPENAI_API_KEY", "ANTHROPIC_API_KEY", "SEMROUTE_TEST_KEY"):
        monkeypatch.delenv(name, raising=False)


def models_table(tmp_path, models):
    """The ``models`` table as router.yaml declares it, loaded the way the service loads it."""
    router = {"default_route": "chitchat", "models": models}
    return load_route_set(write_route_folder(tmp_path / "routes", API_ROUTES, router)).config.models


# resolve


def test_a_model_without_settings_is_called_as_written():
    assert Endpoints().resolve("openai/gpt-4.1") == ("openai/gpt-4.1", {})


def test_the_override_api_base_serves_every_model_with_a_placeholder_key():
    endpoints = Endpoints(override_api_base="http://127.0.0.1:9/v1")
    assert endpoints.resolve("anthropic/claude-sonnet-4-5") == (
        "anthropic/claude-sonnet-4-5",
        {"api_base": "http://127.0.0.1:9/v1", "api_key": LOCAL_API_KEY},
    )


def test_the_override_api_key_replaces_the_placeholder():
    endpoints = Endpoints(override_api_base="http://127.0.0.1:9/v1", override_api_key="secret")
    assert endpoints.resolve("openai/gpt-4.1")[1]["api_key"] == "secret"


def test_the_override_model_replaces_every_model():
    endpoints = Endpoints(override_model="openai/smollm2", override_api_base="http://h/v1")
    assert endpoints.resolve("openai/gpt-4.1")[0] == "openai/smollm2"
    assert endpoints.resolve("anthropic/claude-sonnet-4-5")[0] == "openai/smollm2"


def test_the_override_api_base_wins_over_the_models_table():
    endpoints = Endpoints(
        models={"openai/gpt-4.1": ModelParams(api_base="http://table/v1", api_key_env="X")},
        override_api_base="http://override/v1",
    )
    assert endpoints.resolve("openai/gpt-4.1")[1] == {
        "api_base": "http://override/v1",
        "api_key": LOCAL_API_KEY,
    }


def test_the_models_table_of_router_yaml_sets_api_base_and_key_per_model(tmp_path, monkeypatch):
    monkeypatch.setenv("SEMROUTE_TEST_KEY", "sk-from-env")
    models = models_table(
        tmp_path,
        {
            "openai/gpt-4.1": {
                "api_base": "https://proxy.example/v1",
                "api_key_env": "SEMROUTE_TEST_KEY",
            },
            "openai/gpt-4.1-mini": {"api_base": "https://mini.example/v1"},
        },
    )
    endpoints = Endpoints(models=models)
    assert endpoints.resolve("openai/gpt-4.1") == (
        "openai/gpt-4.1",
        {"api_base": "https://proxy.example/v1", "api_key": "sk-from-env"},
    )
    # A self-hosted server without a key variable gets a placeholder, never OPENAI_API_KEY.
    assert endpoints.resolve("openai/gpt-4.1-mini") == (
        "openai/gpt-4.1-mini",
        {"api_base": "https://mini.example/v1", "api_key": LOCAL_API_KEY},
    )
    assert endpoints.missing_keys("openai/gpt-4.1-mini") == []
    assert endpoints.resolve("openai/gpt-4.1-nano") == ("openai/gpt-4.1-nano", {})


def test_an_unset_api_key_env_sends_no_key(tmp_path, no_provider_keys):
    models = models_table(tmp_path, {"openai/gpt-4.1": {"api_key_env": "SEMROUTE_TEST_KEY"}})
    assert Endpoints(models=models).resolve("openai/gpt-4.1") == ("openai/gpt-4.1", {})


# missing_keys


def test_openai_without_its_key_names_openai_api_key(no_provider_keys):
    assert Endpoints().missing_keys("openai/gpt-4.1") == ["OPENAI_API_KEY"]


def test_anthropic_without_its_key_names_anthropic_api_key(no_provider_keys):
    assert Endpoints().missing_keys("anthropic/claude-sonnet-4-5") == ["ANTHROPIC_API_KEY"]


def test_nothing_is_missing_once_the_provider_key_is_set(no_provider_keys, monkeypatch):
    monkeypatch.setenv("OPENAI_API_KEY", "sk-test")
    assert Endpoints().missing_keys("openai/gpt-4.1") == []


def test_nothing_is_missing_with_the_override_api_base(no_provider_keys):
    endpoints = Endpoints(override_api_base="http://127.0.0.1:9/v1")
    assert endpoints.missing_keys("openai/gpt-4.1") == []


def test_the_models_table_names_its_own_key_variable_when_unset(tmp_path, no_provider_keys):
    models = models_table(tmp_path, {"openai/gpt-4.1": {"api_key_env": "SEMROUTE_TEST_KEY"}})
    assert Endpoints(models=models).missing_keys("openai/gpt-4.1") == ["SEMROUTE_TEST_KEY"]


def test_a_key_from_the_models_table_satisfies_the_model(tmp_path, no_provider_keys, monkeypatch):
    monkeypatch.setenv("SEMROUTE_TEST_KEY", "sk-from-env")
    models = models_table(tmp_path, {"openai/gpt-4.1": {"api_key_env": "SEMROUTE_TEST_KEY"}})
    assert Endpoints(models=models).missing_keys("openai/gpt-4.1") == []
