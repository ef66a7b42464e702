"""Turning many concurrent single operations into one bulk operation (the DataLoader pattern).

Each work item is handled on its own (its own ack, retry and dead letter), yet a replica handles
dozens at once; their inserts, reads and payments are gathered for a moment and sent as one bulk
request. Each caller still gets its own result or its own exception.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from typing import Generic, TypeVar

In = TypeVar("In")
Out = TypeVar("Out")

#: A bulk operation: one result (or exception) per input, in order.
Bulk = Callable[[list[In]], Awaitable[Sequence[Out | BaseException]]]


class Coalescer(Generic[In, Out]):
    """``await coalescer(x)`` runs ``bulk([x, ...others waiting])`` and returns x's result."""

    def __init__(self, bulk: Bulk[In, Out], *, max_batch: int = 256, linger: float = 0.002) -> None:
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._bulk, self._max_batch, self._linger = bulk, max_batch, linger
        self._pending: list[tuple[In, asyncio.Future[Out]]] = []
        self._timer: asyncio.TimerHandle | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    async def __call__(self, item: In) -> Out:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Out] = loop.create_future()
        self._pending.append((item, future))
        if len(self._pending) >= self._max_batch:
            self._flush()
        elif self._timer is None:
            self._timer = loop.call_later(self._linger, self._flush)
        return await future

    def _flush(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        batch, self._pending = self._pending, []
        if batch:
            task = asyncio.get_running_loop().create_task(self._run(batch))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _run(self, batch: list[tuple[In, asyncio.Future[Out]]]) -> None:
        try:
            results = await self._bulk([item for item, _ in batch])
            if len(results) != len(batch):
                raise RuntimeError(f"bulk operation returned {len(results)} results for {len(batch)} inputs")
        except BaseException as exc:  # every waiting caller gets the error (and retries on its own)
            for _, future in batch:
                if not future.done():
                    future.set_exception(exc if isinstance(exc, Exception) else RuntimeError(repr(exc)))
            if not isinstance(exc, Exception):
                raise
            return
        for (_, future), result in zip(batch, results, strict=True):
            if future.done():
                continue
            if isinstance(result, BaseException):
                future.set_exception(result)
            else:
                future.set_result(result)
