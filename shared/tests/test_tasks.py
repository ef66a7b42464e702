"""Stopping background tasks whose cancellation a library swallowed (nats-py's fetch on Python 3.11)."""

from __future__ import annotations

import asyncio

from puskesos_shared.tasks import honour_cancellation, stop_tasks, supervised


async def test_a_task_that_swallowed_one_cancellation_is_cancelled_again() -> None:
    swallowed = asyncio.Event()

    async def fetch_loop() -> None:
        while True:
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                if swallowed.is_set():
                    raise
                swallowed.set()  # what a lost cancellation looks like to the loop: carry on

    task = asyncio.create_task(fetch_loop())
    await asyncio.sleep(0)  # let it reach its wait
    await stop_tasks([task], grace=10, every=0.05)
    assert swallowed.is_set() and task.cancelled()


async def test_a_loop_that_sees_a_timeout_instead_of_its_cancellation_stops() -> None:
    laps = 0

    async def loop() -> None:
        nonlocal laps
        while True:
            laps += 1
            try:
                try:
                    await asyncio.Event().wait()
                except asyncio.CancelledError:
                    raise TimeoutError from None  # what the library does: the cancellation becomes a timeout
            except TimeoutError:
                honour_cancellation()

    task = asyncio.create_task(loop())
    await asyncio.sleep(0)
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.cancelled() and laps >= 1


async def test_a_task_that_never_stops_is_given_up_after_the_grace_period() -> None:
    release = asyncio.Event()

    async def stubborn() -> None:
        while not release.is_set():
            try:
                await asyncio.Event().wait()
            except asyncio.CancelledError:
                continue

    task = asyncio.create_task(stubborn())
    await asyncio.sleep(0)
    await stop_tasks([task], grace=0.2, every=0.05)  # returns instead of hanging
    assert not task.done()
    release.set()
    task.cancel()
    await asyncio.wait([task], timeout=5)
    assert task.done()


async def test_tasks_that_ended_with_an_error_do_not_block_the_stop() -> None:
    async def failed() -> None:
        raise RuntimeError("boom")

    task = asyncio.create_task(failed())
    await asyncio.wait([task])
    await stop_tasks([task])
    assert isinstance(task.exception(), RuntimeError)


async def test_a_background_loop_that_fails_is_run_again_until_it_ends() -> None:
    runs: list[int] = []

    async def flaky() -> None:  # a fetch loop that died of a leader election twice, then ran to its end
        runs.append(len(runs))
        if len(runs) < 3:
            raise RuntimeError("no response from stream")

    await asyncio.wait_for(supervised(flaky, name="flaky", backoff=0.01), timeout=5)
    assert runs == [0, 1, 2]


async def test_a_supervised_loop_stops_when_cancelled() -> None:
    async def forever() -> None:
        await asyncio.Event().wait()

    task = asyncio.create_task(supervised(forever, name="forever"))
    await asyncio.sleep(0)
    await stop_tasks([task], grace=5)
    assert task.cancelled()
