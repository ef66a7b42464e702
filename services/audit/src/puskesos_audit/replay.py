"""Replaying logged events to a subscriber that joined late.

The subscriber picks a request id, subscribes to ``{ns}.replay.{request_id}.>`` (core NATS),
then asks for a replay (the ``audit.replay`` command, the HTTP API or the CLI). Each logged
event is published to ``{ns}.replay.{request_id}.{producer}.{event}.v{n}`` (the original
subject's tail), byte for byte, with its original headers plus ``Puskesos-Replay-Seq`` (the
stream sequence) and ``Puskesos-Replay-Hash`` (its chain hash). A final message on
``{ns}.replay.{request_id}._end`` carries the count and the range, so the subscriber knows it
has everything (or asks again for what it missed). Replay subjects are outside
``{ns}.events.>``: a replayed event never re-enters the events stream.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from typing import Any

from nats.aio.client import Client as NatsClient

from .chain import Record
from .reader import LogReader

REQUEST_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
SEQ_HEADER = "Puskesos-Replay-Seq"
HASH_HEADER = "Puskesos-Replay-Hash"


def replay_prefix(namespace: str, request_id: str) -> str:
    if not REQUEST_ID.fullmatch(request_id):
        raise ValueError("request_id: 1-64 letters, digits, '-' or '_'")
    return f"{namespace}.replay.{request_id}"


def replay_subject(prefix: str, namespace: str, original: str) -> str:
    events = f"{namespace}.events."
    tail = original[len(events):] if original.startswith(events) else "unknown"
    return f"{prefix}.{tail or 'unknown'}"


@dataclass
class ReplayResult:
    request_id: str
    subject: str
    published: int
    first_seq: int | None
    last_seq: int | None

    def as_dict(self) -> dict[str, Any]:
        return {"request_id": self.request_id, "subject": f"{self.subject}.>", "published": self.published,
                "first_seq": self.first_seq, "last_seq": self.last_seq}


async def publish_replay(nc: NatsClient, reader: LogReader, *, namespace: str, request_id: str,
                         from_seq: int | None = None, to_seq: int | None = None, from_ts_ns: int | None = None,
                         flush_every: int = 500) -> ReplayResult:
    prefix = replay_prefix(namespace, request_id)
    if from_ts_ns is not None:
        from_seq = max(from_seq or 1, await asyncio.to_thread(reader.seq_at_time, from_ts_ns))
    records = reader.records(from_seq, to_seq)
    published, first, last = 0, None, None
    while True:
        batch: list[Record] = await asyncio.to_thread(_take, records, flush_every)
        if not batch:
            break
        for r in batch:
            headers = _headers(r)
            await nc.publish(replay_subject(prefix, namespace, r.subject), r.body, headers=headers)
            first = r.seq if first is None else first
            last = r.seq
            published += 1
        await nc.flush()  # paces the replay to what the server has taken
    end = {"published": published, "first_seq": first, "last_seq": last, "request_id": request_id}
    await nc.publish(f"{prefix}._end", json.dumps(end).encode())
    await nc.flush()
    return ReplayResult(request_id, prefix, published, first, last)


def _take(records: Any, n: int) -> list[Record]:
    out: list[Record] = []
    for r in records:
        out.append(r)
        if len(out) >= n:
            break
    return out


def _headers(r: Record) -> dict[str, str]:
    try:
        original = json.loads(r.headers)
    except ValueError:
        original = {}
    headers = {str(k): str(v) for k, v in original.items()} if isinstance(original, dict) else {}
    headers.pop("Nats-Msg-Id", None)  # not a JetStream publish; keep it under another name
    if "Nats-Msg-Id" in original:
        headers["Puskesos-Original-Msg-Id"] = str(original["Nats-Msg-Id"])
    headers[SEQ_HEADER] = str(r.seq)
    headers[HASH_HEADER] = r.hash
    return headers
