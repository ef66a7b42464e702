"""Background tasks that stop when told to, even when a library swallowed the cancellation.

Python 3.11's ``asyncio.wait_for`` (used inside nats-py's ``fetch``) can lose a cancellation that
coincides with its timeout: the caller then sees a ``TimeoutError``, treats it as "no messages"
and fetches again, and a shutdown that awaits the task waits forever. Loops around ``fetch``
call ``honour_cancellation()`` where they handle the timeout; ``stop_tasks`` cancels again until
the tasks end, and gives up (logging which) after a grace period rather than hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Collection
from contextlib import suppress

import structlog

log = structlog.get_logger("puskesos.tasks")


async def supervised(loop: Callable[[], Awaitable[None]], *, name: str, backoff: float = 1.0,
                     backoff_max: float = 30.0) -> None:
    """Runs a loop meant to run forever, and runs it again when it fails: a background loop (a work
    queue's fetch loop, say) that died of an unexpected error would otherwise stop that work in
    silence while the service still looks healthy. Each failure is logged with its type; the delay
    before the next run doubles up to ``backoff_max`` and starts again after a run of a minute."""
    delay = backoff
    while True:
        started = asyncio.get_running_loop().time()
        try:
            await loop()
            return
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            if asyncio.get_running_loop().time() - started > 60:
                delay = backoff
            log.exception("background_loop_failed_restarting", loop=name, error=type(exc).__name__,
                          restart_in=delay)
        await asyncio.sleep(delay)
        delay = min(delay * 2, backoff_max)


def honour_cancellation() -> None:
    """Raises CancelledError when the current task has been asked to stop (call after a caught timeout)."""
    task = asyncio.current_task()
    if task is not None and task.cancelling():
        raise asyncio.CancelledError


async def stop_tasks(tasks: Collection[asyncio.Task[None]], *, grace: float = 15.0, every: float = 0.5) -> None:
    """Cancels the tasks and waits for them, cancelling again every ``every`` seconds, at most ``grace``."""
    pending = {task for task in tasks if not task.done()}
    loop = asyncio.get_running_loop()
    deadline = loop.time() + grace
    while pending:
        for task in pending:
            task.cancel()
        _, pending = await asyncio.wait(pending, timeout=min(every, max(deadline - loop.time(), 0.0)))
        if pending and loop.time() >= deadline:
            log.error("background_tasks_did_not_stop", tasks=sorted(t.get_name() for t in pending), grace=grace)
            break
    for task in tasks:
        if task.done() and not task.cancelled():
            with suppress(Exception):
                task.result()  # retrieved, so asyncio does not warn about an unretrieved exception
