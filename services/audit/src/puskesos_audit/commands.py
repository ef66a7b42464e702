"""NATS command of the audit service: ``{ns}.commands.audit.replay.v1`` (auditors only).

The reply comes at once (the replay's subject); the events follow on that subject and end
with ``…._end`` (see ``replay``). The token is an officer token with the auditor role.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from puskesos_shared.auth import forbidden_role, officer_of
from puskesos_shared.contracts.primitives import OfficerRole
from puskesos_shared.service import ServiceRuntime
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from .reader import LogReader
from .replay import publish_replay, replay_prefix

log = structlog.get_logger("puskesos.audit.commands")


#: The largest log sequence number a request may name (MongoDB stores it as a signed 64-bit integer).
MAX_SEQ = 2**63 - 1


class ReplayRequest(BaseModel):
    """What to replay (``POST /audit/replay``; the NATS command adds the token)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    request_id: str = Field(pattern=r"^[A-Za-z0-9_-]{1,64}$")
    from_seq: int | None = Field(default=None, ge=1, le=MAX_SEQ)
    to_seq: int | None = Field(default=None, ge=1, le=MAX_SEQ)
    from_time: AwareDatetime | None = None


class ReplayCommand(ReplayRequest):
    token: str = Field(min_length=10, max_length=4000, repr=False)


def check_auditor(runtime: ServiceRuntime, token: str) -> None:
    officer = officer_of(token, runtime.settings.auth_secret)
    if officer.role is not OfficerRole.AUDITOR:
        raise forbidden_role((OfficerRole.AUDITOR,))


async def start_replay(runtime: ServiceRuntime, *, request_id: str, from_seq: int | None, to_seq: int | None,
                       from_ts_ns: int | None) -> dict[str, Any]:
    """Starts publishing in the background; returns where the events will arrive."""
    nc = runtime.broker.config.connection_state.connection
    reader: LogReader = runtime.state["reader"]  # the service's shared client (see app.py)

    async def run() -> None:
        try:
            result = await publish_replay(nc, reader, namespace=runtime.topology.namespace, request_id=request_id,
                                          from_seq=from_seq, to_seq=to_seq, from_ts_ns=from_ts_ns)
            log.info("audit_replay_done", request_id=request_id, published=result.published)
        except Exception as exc:
            log.error("audit_replay_failed", request_id=request_id, error=f"{type(exc).__name__}: {exc}")

    tasks: set[asyncio.Task[None]] = runtime.state.setdefault("replays", set())
    task = asyncio.create_task(run())
    tasks.add(task)
    task.add_done_callback(tasks.discard)
    prefix = replay_prefix(runtime.topology.namespace, request_id)
    return {"request_id": request_id, "subject": f"{prefix}.>", "end_subject": f"{prefix}._end",
            "from_seq": from_seq, "to_seq": to_seq}


def replay_command_handler(runtime: ServiceRuntime) -> Callable[[ReplayCommand], Awaitable[dict[str, Any]]]:
    async def handle(req: ReplayCommand) -> dict[str, Any]:
        check_auditor(runtime, req.token)
        ts = int(req.from_time.timestamp() * 1_000_000_000) if req.from_time else None
        return await start_replay(runtime, request_id=req.request_id, from_seq=req.from_seq, to_seq=req.to_seq,
                                  from_ts_ns=ts)

    return handle
