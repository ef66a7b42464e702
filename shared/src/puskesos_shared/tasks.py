"""Background tasks that stop when told to, even when a library swallowed the cancellation.

Python 3.11's ``asyncio.wait_for`` (used inside nats-py's ``fetch``) can lose a cancellation that
coincides with its timeout: the caller then sees a ``TimeoutError``, treats it as "no messages"
and fetches again, and a shutdown that awaits the task waits forever. Loops around ``fetch``
call ``honour_cancellation()`` where they handle the timeout; ``stop_tasks`` cancels again until
the tasks end, and gives up (logging which) after a grace period rather than hang.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection
from contextlib import suppress

import structlog

log = structlog.get_logger("puskesos.tasks")


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
