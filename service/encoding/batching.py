"""An asyncio micro-batcher: concurrent requests share one call of a CPU-bound function.

Each request puts ``(item, future)`` on a queue and awaits its future; one worker task takes
what is queued (at most ``max_batch`` items), runs ``process`` on the whole batch in an
executor so the event loop never blocks, and resolves every future with its own result.

The worker only waits (at most ``max_wait_ms``) for more items when the previous batch held
more than one, i.e. when requests are arriving concurrently: a lone request is never
delayed, and under load batches fill while the previous one is being computed anyway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any, Generic, TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


@dataclass(frozen=True)
class BatchLimits:
    """How many requests one batch may hold, and how long it may wait for more."""

    max_batch: int = 16
    max_wait_ms: float = 2.0


DEFAULT_LIMITS = BatchLimits()


class BatcherClosedError(RuntimeError):
    """The batcher was shut down before (or while) the request was served."""


class MicroBatcher(Generic[Item, Result]):
    """Gathers concurrent ``submit`` calls into batches for ``process``.

    ``process`` takes a list of items and returns one result per item, in order. If it raises,
    every request of that batch gets the exception, except when it raises for only some items:
    a batch that fails is retried item by item, so one bad request cannot fail its neighbours.
    """

    def __init__(
        self,
        process: Callable[[list[Item]], Sequence[Result]],
        executor: Executor | None = None,
        max_batch: int = 16,
        max_wait_ms: float = 2.0,
    ):
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._process = process
        self._executor = executor
        self.max_batch = max_batch
        self.max_wait = max(0.0, max_wait_ms) / 1000
        self._queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]] | None = None
        self._worker: asyncio.Task[None] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._closed = False
        self._last_size = 0
        self.batches = 0
        self.items = 0
        self.largest = 0

    async def submit(self, item: Item) -> Result:
        """Queue ``item`` and wait for its result (or its exception)."""
        if self._closed:
            raise BatcherClosedError("the batcher is closed")
        queue = self._ensure_worker()
        future: asyncio.Future[Result] = asyncio.get_running_loop().create_future()
        await queue.put((item, future))
        return await future

    def _ensure_worker(self) -> asyncio.Queue[tuple[Item, asyncio.Future[Result]]]:
        """The queue of the running loop, starting its worker on first use.

        The worker is bound to one event loop; a caller on another loop (tests run one loop per
        test) gets a fresh queue and worker.
        """
        loop = asyncio.get_running_loop()
        if (
            self._queue is None
            or self._loop is not loop
            or self._worker is None
            or self._worker.done()
        ):
            self._loop = loop
            self._queue = asyncio.Queue()
            self._worker = loop.create_task(self._run(self._queue), name="semroute-batcher")
        return self._queue

    async def _run(self, queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]]) -> None:
        loop = asyncio.get_running_loop()
        while True:
            batch = [await queue.get()]
            try:
                await self._fill(queue, batch, loop)
                live = [(item, future) for item, future in batch if not future.done()]
                if not live:
                    continue
                self._last_size = len(live)
                self.batches += 1
                self.items += len(live)
                self.largest = max(self.largest, len(live))
                await self._serve(live, loop)
            except asyncio.CancelledError:
                for _, future in batch:
                    if not future.done():
                        future.set_exception(BatcherClosedError("the batcher was shut down"))
                raise

    async def _fill(
        self,
        queue: asyncio.Queue[tuple[Item, asyncio.Future[Result]]],
        batch: list[tuple[Item, asyncio.Future[Result]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        while len(batch) < self.max_batch and not queue.empty():
            batch.append(queue.get_nowait())
        if self._last_size <= 1 or self.max_wait <= 0:
            return
        deadline = loop.time() + self.max_wait
        while len(batch) < self.max_batch:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return
            try:
                batch.append(await asyncio.wait_for(queue.get(), remaining))
            except TimeoutError:
                return

    async def _serve(
        self,
        batch: list[tuple[Item, asyncio.Future[Result]]],
        loop: asyncio.AbstractEventLoop,
    ) -> None:
        items = [item for item, _ in batch]
        try:
            results = await loop.run_in_executor(self._executor, self._process, items)
            if len(results) != len(items):
                raise RuntimeError(
                    f"process returned {len(results)} results for {len(items)} items"
                )
        except Exception as error:
            if len(batch) == 1:
                _settle(batch[0][1], error=error)
                return
            for pair in batch:  # find which request failed; the others still get answers
                await self._serve([pair], loop)
            return
        for (_, future), result in zip(batch, results, strict=True):
            _settle(future, result=result)

    def close(self) -> None:
        """Stop the worker; queued and in-flight requests fail with BatcherClosedError.

        Safe to call from any thread: the cancellation runs on the worker's own loop.
        """
        self._closed = True
        worker, queue = self._worker, self._queue
        self._worker = self._queue = None
        if worker is None or worker.done():
            return
        loop = worker.get_loop()
        if loop.is_closed():
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is loop:
            _shutdown(worker, queue)
        else:
            loop.call_soon_threadsafe(_shutdown, worker, queue)


def _shutdown(
    worker: asyncio.Task[None], queue: asyncio.Queue[tuple[Any, asyncio.Future[Any]]] | None
) -> None:
    if queue is not None:
        while not queue.empty():
            _, future = queue.get_nowait()
            _settle(future, error=BatcherClosedError("the batcher was shut down"))
    worker.cancel()


def _settle(
    future: asyncio.Future[Result], result: Result | None = None, error: BaseException | None = None
) -> None:
    if future.done():  # the caller went away (cancelled); nobody waits for this answer
        return
    if error is not None:
        future.set_exception(error)
    else:
        future.set_result(result)  # type: ignore[arg-type]
