"""Property-based fuzzing of the whole HTTP API against its own OpenAPI schema (schemathesis).

Every operation gets a bounded, derandomised set of generated requests, valid and invalid,
through the in-process ASGI app (no network). Each response must be a documented status with
a body that matches the documented schema, and never a 5xx other than the documented 502/504
of a provider failure; and a request the schema allows is never refused. Models answer
through litellm's ``mock_response``, so /complete needs no provider.

``test_openapi_contract.py`` runs the same checks, and more, over real HTTP.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import litellm
import pytest
import schemathesis
from conftest import SMALL_ROUTER, SMALL_ROUTES, write_route_folder
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.generation.modes import GenerationMode
from schemathesis.python import asgi

from service.api.app import create_app
from service.config.settings import Settings

MAX_EXAMPLES = 30


async def mock_llm(**kwargs: Any) -> Any:
    return await litellm.acompletion(**kwargs, mock_response="a fuzzed answer")


@pytest.fixture(scope="module")
def fuzz_app(
    encoder: Any, small_index_template: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Any]:
    routes = write_route_folder(
        tmp_path_factory.mktemp("fuzz") / "routes", SMALL_ROUTES, SMALL_ROUTER
    )
    app = create_app(
        Settings(routes_dir=routes, index_dir=small_index_template),
        encoder=encoder,
        llm_call=mock_llm,
    )
    with pytest.MonkeyPatch.context() as patch:
        # A key for every provider, so the mocked call is reached instead of a 502.
        patch.setenv("OPENAI_API_KEY", "fuzz-key")
        patch.setenv("ANTHROPIC_API_KEY", "fuzz-key")
        yield app
    asgi.shutdown_lifespans()


@pytest.fixture(scope="module")
def fuzz_schema(fuzz_app: Any) -> Any:
    return schemathesis.openapi.from_asgi("/openapi.json", fuzz_app)


def fuzz(operation: Any, mode: GenerationMode) -> None:
    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    def check(case: Any) -> None:
        response = case.call_and_validate()
        assert response.status_code not in {500, 501, 503}, response.text

    check()


@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE])
def test_every_operation_answers_as_documented(fuzz_schema: Any, mode: GenerationMode) -> None:
    failures = []
    for result in fuzz_schema.get_all_operations():
        operation = result.ok()
        try:
            fuzz(operation, mode)
        except Unsatisfiable:
            assert mode is GenerationMode.NEGATIVE  # no input to get wrong (no parameters)
        except Exception as error:  # collect every operation's failure, then report them all
            failures.append(f"{operation.label}: {error}")
    assert not failures, "\n\n".join(failures)
