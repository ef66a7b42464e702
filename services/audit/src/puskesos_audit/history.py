"""Where history replay gets events and live figures from.

* the log (``log_events``): decoded bodies of the logged messages, in stream order;
* the stream itself (``stream_events``): the same messages read straight from JetStream with an
  ordered consumer: a projection from the log must equal one from the stream;
* the live service (``live_round``): the distribution service's own figures for a round
  (``GET {distribution}/rounds/{id}?exact=true``, read with an auditor token).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterator, Mapping
from typing import Any

import httpx
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from puskesos_shared.topology import Topology

from .appender import stream_position
from .reader import LogReader


def decode(body: bytes) -> dict[str, Any] | None:
    try:
        value = json.loads(body)
    except ValueError:
        return None
    return value if isinstance(value, dict) else None


def log_events(reader: LogReader, *, types: frozenset[str] | None = None, from_seq: int | None = None,
               to_seq: int | None = None) -> Iterator[tuple[int, dict[str, Any]]]:
    """(seq, event) for every logged event (of ``types``), in stream order; undecodable bodies are skipped."""
    for record in reader.records(from_seq, to_seq, hashes=False):
        if types is not None and not any(f'"{t}"'.encode() in record.body for t in types):
            continue  # cheap pre-filter before decoding
        event = decode(record.body)
        if event is not None and (types is None or event.get("event_type") in types):
            yield record.seq, event


async def stream_events(js: JetStreamContext, topology: Topology, *, until_seq: int | None = None,
                        batch: int = 1000) -> AsyncIterator[tuple[int, dict[str, Any]]]:
    """Every event in the events stream up to ``until_seq`` (default: its last message now), in order."""
    info = await js.stream_info(topology.events_stream)
    end = min(until_seq if until_seq is not None else info.state.last_seq, info.state.last_seq)
    if end < 1 or info.state.messages == 0:
        return
    config = ConsumerConfig(deliver_policy=DeliverPolicy.ALL, ack_policy=AckPolicy.NONE, mem_storage=True,
                            inactive_threshold=60.0, filter_subject=topology.all_events)
    sub = await js.pull_subscribe(topology.all_events, stream=topology.events_stream, config=config)
    try:
        seq = 0
        while seq < end:
            try:
                msgs = await sub.fetch(batch, timeout=2.0)
            except TimeoutError:
                return
            for m in msgs:
                seq, _ = stream_position(m.reply)
                if seq > end:
                    return
                event = decode(m.data)
                if event is not None:
                    yield seq, event
    finally:
        await sub.unsubscribe()


LIVE_FIELDS = {"allocations": "allocated_count", "rejections": "rejected_count", "disbursements": "disbursed_count"}


def live_comparable(status: Mapping[str, Any]) -> dict[str, Any]:
    """The distribution service's round status in the projection's terms.

    Its ``exact`` counts map to allocated/rejected/disbursed counts; once the round is closed,
    the totals it computed at close are compared field by field as well.
    """
    out: dict[str, Any] = {}
    for name, field in LIVE_FIELDS.items():
        if name in (status.get("exact") or {}):
            out[field] = int(status["exact"][name])
    closed = status.get("closed") or {}
    totals = closed.get("totals") if isinstance(closed, Mapping) else None
    if isinstance(totals, Mapping):
        out.update(totals)
    return out


async def live_round(base_url: str, round_id: str, token: str, *, timeout: float = 10.0) -> dict[str, Any]:
    async with httpx.AsyncClient(base_url=base_url, timeout=timeout) as client:
        response = await client.get(f"/rounds/{round_id}", params={"exact": "true"},
                                    headers={"Authorization": f"Bearer {token}"})
        response.raise_for_status()
        status: dict[str, Any] = response.json()
    return live_comparable(status)
