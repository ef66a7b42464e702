"""HTTP calls to the services, with the retries an officer's app would make, and a bounded pool.

A retry resends the same request (the same ``Idempotency-Key`` or ``command_id`` where the API
takes one), so a request whose answer was lost is applied once. Retried: connection errors,
timeouts, 5xx, the 409s that mean "not yet" (a projection that has not caught up, a
concurrent change) and 429 (over the officer's rate limit: resent after its ``Retry-After``).
Every other 4xx is a bug in the scenario and fails loudly.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any, TypeVar, cast

import httpx
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn

T = TypeVar("T")
R = TypeVar("R")

#: 409 codes that clear up by themselves (a projection catching up, a concurrent writer).
RETRYABLE_CONFLICTS = frozenset({"household_unknown", "concurrent_update", "complaint_in_progress", "work_pending",
                                 "still_draining"})


#: 429 answers one call waits out before it gives up (each wait is the server's ``Retry-After``).
MAX_THROTTLED_WAITS = 120


class ApiError(RuntimeError):
    def __init__(self, method: str, url: str, status: int, body: str) -> None:
        super().__init__(f"{method} {url}: HTTP {status}: {body[:600]}")
        self.status, self.body = status, body


def _code(response: httpx.Response) -> str | None:
    """The stable error code of the services' problem details (``application/problem+json``: ``code``)."""
    try:
        body = response.json()
    except ValueError:
        return None
    code = body.get("code") if isinstance(body, dict) else None
    return code if isinstance(code, str) else None


def _retry_after(response: httpx.Response) -> float:
    """Seconds the server asked to wait (``Retry-After``), between 0.1 and 30."""
    try:
        seconds = float(response.headers.get("retry-after", "1"))
    except ValueError:
        seconds = 1.0
    return min(max(seconds, 0.1), 30.0)


class Api:
    """One service's HTTP edge."""

    def __init__(self, client: httpx.AsyncClient, base_url: str, *, attempts: int = 30) -> None:
        self.client, self.base_url, self.attempts = client, base_url.rstrip("/"), attempts

    async def call(self, method: str, path: str, *, headers: dict[str, str], json: Any = None,
                   params: dict[str, Any] | None = None, ok: Sequence[int] = (200, 201),
                   retry_conflicts: Iterable[str] = RETRYABLE_CONFLICTS) -> Any:
        url = f"{self.base_url}{path}"
        retry_on = frozenset(retry_conflicts)
        delay = 0.1
        attempt, throttled = 1, 0
        while True:
            last = attempt >= self.attempts
            try:
                response = await self.client.request(method, url, headers=headers, json=json, params=params)
            except (httpx.TransportError, httpx.TimeoutException):
                if last:
                    raise
            else:
                if response.status_code in ok:
                    return response.json() if response.content else None
                if response.status_code == 429 and throttled < MAX_THROTTLED_WAITS:
                    # over the rate limit, not a failure: wait as told; not counted as an attempt
                    throttled += 1
                    await asyncio.sleep(_retry_after(response))
                    continue
                transient = response.status_code >= 500 or (response.status_code == 409 and
                                                             _code(response) in retry_on)
                if not transient or last:
                    raise ApiError(method, url, response.status_code, response.text)
            await asyncio.sleep(delay)
            delay = min(delay * 1.6, 2.0)
            attempt += 1

    async def get(self, path: str, *, headers: dict[str, str], params: dict[str, Any] | None = None,
                  ok: Sequence[int] = (200,)) -> Any:
        return await self.call("GET", path, headers=headers, params=params, ok=ok)

    async def post(self, path: str, body: Any, *, headers: dict[str, str], ok: Sequence[int] = (200, 201),
                   retry_conflicts: Iterable[str] = RETRYABLE_CONFLICTS) -> Any:
        return await self.call("POST", path, headers=headers, json=body, ok=ok, retry_conflicts=retry_conflicts)


def new_client(concurrency: int) -> httpx.AsyncClient:
    logging.getLogger("httpx").setLevel(logging.WARNING)  # a line per request is noise, not information
    limits = httpx.Limits(max_connections=concurrency * 2, max_keepalive_connections=concurrency * 2)
    return httpx.AsyncClient(timeout=httpx.Timeout(60.0, connect=10.0), limits=limits)


def progress_bar(console: Console) -> Progress:
    return Progress(TextColumn("  {task.description:<34}"), BarColumn(), MofNCompleteColumn(), TaskProgressColumn(),
                    TimeElapsedColumn(), console=console, transient=False)


async def run_pool(items: Sequence[T], work: Callable[[T], Awaitable[R]], *, concurrency: int, console: Console,
                   label: str, size: Callable[[T], int] | None = None) -> tuple[list[R], float]:
    """Runs ``work`` over ``items`` with at most ``concurrency`` at once, with a progress bar.

    The bar counts items, or what ``size`` says each item holds (the rows of a chunk).
    Returns the results in the items' order and the seconds it took; the first failure stops the pool.
    """
    weight = size or (lambda _: 1)
    results: list[R | None] = [None] * len(items)
    queue: asyncio.Queue[int] = asyncio.Queue()
    for i in range(len(items)):
        queue.put_nowait(i)
    started = time.monotonic()
    with progress_bar(console) as progress:
        task = progress.add_task(label, total=sum(weight(item) for item in items))

        async def worker() -> None:
            while True:
                try:
                    i = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                results[i] = await work(items[i])
                progress.advance(task, weight(items[i]))

        workers = [asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(items))))]
        try:
            await asyncio.gather(*workers)
        finally:
            for w in workers:
                w.cancel()
    return cast(list[R], results), time.monotonic() - started
