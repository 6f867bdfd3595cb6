"""The micro-batcher: concurrent requests share one call, errors reach their own caller,
shutdown fails what is left; and the router decides through it, with the prompt cache."""

import asyncio
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
from conftest import CODING_PROMPT, COOKING_PROMPT

from service.config.routes import load_route_set
from service.encoding.batching import BatcherClosedError, BatchLimits, MicroBatcher
from service.encoding.encoder import Encoder
from service.index.store import load_index
from service.routing.router import Router
from service.routing.types import RouteRequest


@pytest.fixture
def executor() -> Iterator[ThreadPoolExecutor]:
    pool = ThreadPoolExecutor(max_workers=1)
    yield pool
    pool.shutdown(wait=True, cancel_futures=True)


class SlowDoubler:
    """Doubles numbers, records the batches it saw, and takes a while so requests pile up."""

    def __init__(self, delay: float = 0.05):
        self.delay = delay
        self.batches: list[list[int]] = []

    def __call__(self, items: list[int]) -> list[int]:
        self.batches.append(list(items))
        threading.Event().wait(self.delay)
        if any(item < 0 for item in items):
            raise ValueError(f"negative item in {items}")
        return [2 * item for item in items]


async def test_concurrent_requests_are_served_in_fewer_calls(executor: ThreadPoolExecutor) -> None:
    process = SlowDoubler()
    batcher = MicroBatcher(process, executor, max_batch=8, max_wait_ms=5)

    results = await asyncio.gather(*(batcher.submit(i) for i in range(20)))

    assert results == [2 * i for i in range(20)]
    assert len(process.batches) < 20
    assert max(len(batch) for batch in process.batches) > 1
    assert sorted(item for batch in process.batches for item in batch) == list(range(20))
    batcher.close()


async def test_batches_never_exceed_max_batch(executor: ThreadPoolExecutor) -> None:
    process = SlowDoubler()
    batcher = MicroBatcher(process, executor, max_batch=3, max_wait_ms=5)

    await asyncio.gather(*(batcher.submit(i) for i in range(10)))

    assert all(len(batch) <= 3 for batch in process.batches)
    assert batcher.largest <= 3
    batcher.close()


async def test_a_lone_request_is_served_alone(executor: ThreadPoolExecutor) -> None:
    process = SlowDoubler(delay=0)
    batcher = MicroBatcher(process, executor, max_batch=8, max_wait_ms=1000)

    assert await batcher.submit(4) == 8
    assert await batcher.submit(5) == 10

    assert process.batches == [[4], [5]]
    batcher.close()


async def test_an_exception_reaches_only_the_caller_that_caused_it(
    executor: ThreadPoolExecutor,
) -> None:
    process = SlowDoubler()
    batcher = MicroBatcher(process, executor, max_batch=8, max_wait_ms=5)

    results = await asyncio.gather(
        *(batcher.submit(i) for i in (1, 2, -3, 4)), return_exceptions=True
    )

    assert results[0] == 2 and results[1] == 4 and results[3] == 8
    assert isinstance(results[2], ValueError)
    assert "-3" in str(results[2])
    assert await batcher.submit(6) == 12  # the worker survived
    batcher.close()


async def test_close_fails_queued_requests_and_refuses_new_ones(
    executor: ThreadPoolExecutor,
) -> None:
    release = threading.Event()

    def blocked(items: list[int]) -> list[int]:
        release.wait(5)
        return items

    batcher = MicroBatcher(blocked, executor, max_batch=1, max_wait_ms=0)
    pending = [asyncio.ensure_future(batcher.submit(i)) for i in range(3)]
    await asyncio.sleep(0.05)  # the first is in the executor, the others are queued

    batcher.close()
    results = await asyncio.gather(*pending, return_exceptions=True)
    release.set()

    assert all(isinstance(result, BatcherClosedError) for result in results)
    with pytest.raises(BatcherClosedError):
        await batcher.submit(9)


async def test_a_cancelled_caller_does_not_stop_the_others(executor: ThreadPoolExecutor) -> None:
    batcher = MicroBatcher(SlowDoubler(), executor, max_batch=8, max_wait_ms=5)
    doomed = asyncio.ensure_future(batcher.submit(1))
    kept = asyncio.ensure_future(batcher.submit(2))
    await asyncio.sleep(0)
    doomed.cancel()

    assert await kept == 4
    batcher.close()


@pytest.fixture
def router(small_routes: Path, small_index: Path, encoder: Encoder) -> Iterator[Router]:
    built = Router(
        load_route_set(small_routes),
        load_index(small_index),
        encoder,
        batching=BatchLimits(max_batch=16),
    )
    yield built
    built.close()


async def test_concurrent_decisions_match_one_at_a_time_decisions(router: Router) -> None:
    prompts = [CODING_PROMPT, COOKING_PROMPT] * 6 + [f"{CODING_PROMPT} ({i})" for i in range(6)]

    together = await asyncio.gather(
        *(router.decide(RouteRequest(prompt=p, tiebreak=False)) for p in prompts)
    )
    alone = [await router.decide(RouteRequest(prompt=p, tiebreak=False)) for p in prompts]

    assert [d.route for d in together] == [d.route for d in alone]
    assert [d.score for d in together] == pytest.approx([d.score for d in alone], abs=1e-5)
    assert router.semantic.batcher.largest > 1


async def test_repeated_prompts_are_served_from_the_encoder_cache(
    router: Router, encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    prompt = "a prompt only this test sends: fry an egg in a cast iron pan"
    first = await router.decide(RouteRequest(prompt=prompt, tiebreak=False))

    def no_model(*args: object) -> np.ndarray:
        raise AssertionError("a cached prompt reached the model")

    monkeypatch.setattr(encoder, "_embed", no_model)
    again = await asyncio.gather(
        *(router.decide(RouteRequest(prompt=prompt, tiebreak=False)) for _ in range(5))
    )

    assert {d.route for d in again} == {first.route}
    assert {d.score for d in again} == {first.score}


def test_encode_cached_embeds_each_distinct_prompt_once(
    encoder: Encoder, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[list[str]] = []
    embed = encoder._embed

    def counting(texts: list[str], batch_size: int, progress: bool) -> np.ndarray:
        seen.append(list(texts))
        return embed(texts, batch_size, progress)

    monkeypatch.setattr(encoder, "_embed", counting)
    texts = ["batch cache alpha", "batch cache beta", "batch cache alpha"]

    vectors = encoder.encode_cached(texts)

    assert vectors.shape == (3, encoder.dimension)
    assert np.allclose(vectors[0], vectors[2])
    assert seen == [["batch cache alpha", "batch cache beta"]]
    assert np.allclose(vectors, encoder.encode(texts), atol=1e-5)
