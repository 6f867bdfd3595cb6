"""The in-process state store: moving averages, bounded state, and litellm-style cooldowns."""

from __future__ import annotations

import litellm
import pytest
from litellm.constants import DEFAULT_ALLOWED_FAILS, DEFAULT_COOLDOWN_TIME_SECONDS
from litellm.router_utils.cooldown_handlers import _is_cooldown_required

from service.config.routes import CooldownPolicy
from service.state.cooldown import CooldownBook, counts_toward_cooldown
from service.state.local import LocalState, moving_average
from service.state.store import Remembered


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_the_moving_average_starts_at_the_first_sample_and_weights_new_ones() -> None:
    assert moving_average(None, 800) == 800
    assert moving_average(800, 1600, alpha=0.5) == pytest.approx(1200)


async def test_local_state_keeps_each_kind_of_state() -> None:
    state = LocalState(max_conversations=10, max_decisions=10)
    await state.keep_conversation_route("c1", "coding")
    await state.observe_latency("m", 100)
    await state.observe_latency("m", 200)
    state.remember_decision("d1", Remembered("coding", "m"))

    assert await state.conversation_route("c1") == "coding"
    assert await state.conversation_route("c2") is None
    assert await state.latencies(["m", "other"]) == {"m": pytest.approx(120)}
    assert await state.recall_decision("d1") == Remembered("coding", "m")
    assert await state.recall_decision("d2") is None


async def test_local_state_keeps_only_the_newest_conversations() -> None:
    state = LocalState(max_conversations=1)
    await state.keep_conversation_route("c1", "coding")
    await state.keep_conversation_route("c2", "cooking")

    assert (await state.conversation_route("c1"), await state.conversation_route("c2")) == (
        None,
        "cooking",
    )


# -- cooldowns ----------------------------------------------------------------------------------


def test_the_default_policy_is_litellm_s() -> None:
    policy = CooldownPolicy()

    assert (policy.allowed_fails, policy.cooldown_s) == (
        DEFAULT_ALLOWED_FAILS,
        DEFAULT_COOLDOWN_TIME_SECONDS,
    )


def test_more_failures_than_allowed_within_the_window_start_a_cooldown() -> None:
    clock = Clock()
    book = CooldownBook(clock)
    policy = CooldownPolicy(allowed_fails=2, window_s=60, cooldown_s=5)

    assert [book.failed("m", policy) for _ in range(3)] == [False, False, True]
    assert book.remaining(["m", "other"]) == {"m": pytest.approx(5)}
    clock.now += 4
    assert book.remaining(["m"]) == {"m": pytest.approx(1)}
    clock.now += 1
    assert book.remaining(["m"]) == {}, "the cooldown is over"
    assert book.failed("m", policy) is False, "the count started over"


def test_failures_spread_wider_than_the_window_never_cool_a_model_down() -> None:
    clock = Clock()
    book = CooldownBook(clock)
    policy = CooldownPolicy(allowed_fails=1, window_s=10, cooldown_s=5)

    for _ in range(5):
        assert book.failed("m", policy) is False
        clock.now += 11

    assert book.remaining(["m"]) == {}


def test_a_zero_cooldown_turns_cooldowns_off() -> None:
    book = CooldownBook(Clock())
    policy = CooldownPolicy(allowed_fails=0, cooldown_s=0)

    assert book.failed("m", policy) is False
    assert book.remaining(["m"]) == {}


async def test_local_state_counts_the_cooldowns_it_starts() -> None:
    state = LocalState()
    policy = CooldownPolicy(allowed_fails=0)

    assert await state.record_failure("m", policy) is True
    assert state.counters.cooldowns_started == {"m": 1}
    assert set(await state.cooldowns(["m", "n"])) == {"m"}


def provider_error(status: int) -> Exception:
    kinds = {
        400: litellm.BadRequestError,
        401: litellm.AuthenticationError,
        404: litellm.NotFoundError,
        408: litellm.Timeout,
        429: litellm.RateLimitError,
        500: litellm.InternalServerError,
        503: litellm.ServiceUnavailableError,
    }
    return kinds[status]("failed", llm_provider="openai", model="m")  # type: ignore[no-any-return]


@pytest.mark.parametrize("status", [400, 401, 404, 408, 429, 500, 503])
def test_which_provider_errors_count_is_litellm_s_rule(status: int) -> None:
    error = provider_error(status)

    assert counts_toward_cooldown(error) == _is_cooldown_required(None, "m", status)  # type: ignore[arg-type]


def test_timeouts_count_and_bad_requests_or_lost_connections_do_not() -> None:
    assert counts_toward_cooldown(TimeoutError())
    assert counts_toward_cooldown(litellm.Timeout("slow", model="m", llm_provider="openai"))
    assert not counts_toward_cooldown(provider_error(400))
    assert not counts_toward_cooldown(
        litellm.APIConnectionError("reset", llm_provider="openai", model="m")
    )
    assert not counts_toward_cooldown(ValueError("not a provider error"))
