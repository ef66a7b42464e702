"""The appender: reads the whole events stream in stream order and appends it to the chain.

It does not use a durable consumer's acknowledgements: the log's own head is the position.
On start (and after any error) it recovers the head from the chunks and reads the stream with an
ephemeral ordered consumer starting at
``head + 1`` (no acks: nothing to redeliver out of order). Each fetched batch becomes one or
more chunks; a chunk is committed by inserting ``c:<n>``, so a batch read twice (a restart, or a
second replica) can never append twice: the insert of an existing chunk number is refused and
the appender resumes after what is stored. The trace index is built from committed chunks by
``IndexFollower`` (``indexer.py``), behind the log and off its critical path.

Gaps are not papered over. When the stream delivers sequence ``s`` while ``e < s`` is expected,
the stream is asked for the first message at or after ``e``: if it is older than ``s``, the
delivery skipped messages that still exist, and the appender re-reads from ``e``; if it is ``s``,
the stream no longer has ``e..s-1`` (purged before the audit log read them), and a GAP record
naming the range is written into the chain (an error log line and the
``puskesos_audit_stream_gap_sequences_total`` metric go with it; ``audit verify`` lists it).
If the stream is *behind* the log (recreated, or reset), the appender halts and says so: it
will not append a second history onto the first.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import hashlib
from collections.abc import Callable, Sequence
from contextlib import suppress
from typing import Any

import structlog
from nats.aio.msg import Msg
from nats.js import JetStreamContext
from nats.js.api import AckPolicy, ConsumerConfig, DeliverPolicy
from nats.js.errors import NotFoundError
from prometheus_client import Counter, Gauge
from puskesos_shared.tasks import honour_cancellation
from puskesos_shared.topology import Topology

from .chain import GENESIS, Record, canonical_headers, chunk_document, chunk_records, gap_record, make_record
from .checkpoints import new_checkpoint, to_document
from .errors import describe_error
from .store import AuditStore

log = structlog.get_logger("puskesos.audit.appender")

HEAD = Gauge("puskesos_audit_head_sequence", "Last stream sequence in the audit log")
APPENDED = Counter("puskesos_audit_records_appended_total", "Records appended to the audit chain")
GAPS = Counter("puskesos_audit_stream_gap_sequences_total",
               "Stream sequences the stream no longer had when the audit log reached them")
HALTED = Gauge("puskesos_audit_appender_halted", "1 while the appender refuses to append (see its log)")
ERRORS = Counter("puskesos_audit_append_errors_total", "Append attempts that failed and were retried")
CONFLICTS = Counter("puskesos_audit_chunk_conflicts_total", "Chunks already written by another appender")


class Resume(Exception):
    """Stop reading and resume from the log's head (a conflict or skipped delivery)."""


class StreamBehindLog(Exception):
    """The stream has fewer messages than the log, or other messages at the log's head."""


def stream_position(reply: str) -> tuple[int, int]:
    """(stream sequence, stream timestamp in ns) from a JetStream message's reply subject."""
    tokens = reply.split(".")
    if len(tokens) == 9:  # $JS.ACK.<stream>.<consumer>.<delivered>.<sseq>.<cseq>.<ts>.<pending>
        return int(tokens[5]), int(tokens[7])
    return int(tokens[7]), int(tokens[9])  # with domain and account hash


def split_chunks(records: Sequence[Record], max_records: int, max_bytes: int) -> list[list[Record]]:
    chunks: list[list[Record]] = []
    current: list[Record] = []
    size = 0
    for r in records:
        r_size = len(r.body) + len(r.headers) + len(r.subject) + 100
        if current and (len(current) >= max_records or size + r_size > max_bytes):
            chunks.append(current)
            current, size = [], 0
        current.append(r)
        size += r_size
    if current:
        chunks.append(current)
    return chunks


class Appender:
    def __init__(self, *, js: JetStreamContext, store: AuditStore, topology: Topology,
                 checkpoint_key: bytes, clock: Callable[[], dt.datetime], max_records: int = 1024,
                 max_bytes: int = 4 * 1024 * 1024, fetch_timeout: float = 1.0,
                 checkpoint_every_records: int = 10_000, checkpoint_every_seconds: float = 300.0) -> None:
        self.js, self.store, self.topology = js, store, topology
        self.committed = asyncio.Event()  # set on every commit (the index follower waits on it)
        self.clock = clock
        self._cp_key = checkpoint_key
        self.max_records, self.max_bytes, self.fetch_timeout = max_records, max_bytes, fetch_timeout
        self.cp_every_records, self.cp_every_seconds = checkpoint_every_records, checkpoint_every_seconds
        self.chunk = -1
        self.next_seq = 1
        self.last_hash = GENESIS
        self.total = 0
        self.last_body_sha: str | None = None
        self.cp_seq = 0
        self.cp_at: dt.datetime | None = None
        self.status: dict[str, Any] = {"state": "starting"}

    # -- recovery --------------------------------------------------------------------------------
    async def recover(self) -> None:
        number, doc = await self.store.last_chunk()
        if doc is not None:
            records = chunk_records(doc)
            self.chunk, self.next_seq, self.last_hash = number, int(doc["last"]) + 1, str(doc["head"])
            self.total = int(doc.get("total", 0))
            last = records[-1]
            self.last_body_sha = hashlib.sha256(last.body).hexdigest() if last.kind == 0 else None
            await self.store.advance_head(number, last.last_seq, last.hash, self.clock())  # if a crash left it behind
        checkpoints = await self.store.list_checkpoints()
        if checkpoints:
            self.cp_seq = int(checkpoints[-1]["seq"])
            self.cp_at = dt.datetime.fromisoformat(str(checkpoints[-1]["taken_at"]))
        HEAD.set(self.next_seq - 1)

    async def check_stream(self) -> None:
        """Refuses a stream that is behind the log or holds another message at the log's head."""
        info = await self.js.stream_info(self.topology.events_stream)
        head_seq = self.next_seq - 1
        if head_seq and info.state.last_seq < head_seq:
            raise StreamBehindLog(f"the stream ends at {info.state.last_seq} but the log at {head_seq}: "
                                  "was the stream recreated? the log will not append a second history")
        if head_seq and self.last_body_sha is not None:
            with suppress(NotFoundError):
                msg = await self.js.get_msg(self.topology.events_stream, head_seq)
                if hashlib.sha256(msg.data or b"").hexdigest() != self.last_body_sha:
                    raise StreamBehindLog(f"the stream's message {head_seq} differs from the logged one: "
                                          "the stream was recreated; the log will not append a second history")

    # -- the loop --------------------------------------------------------------------------------
    async def run(self) -> None:
        delay = 0.5
        while True:
            try:
                await self.recover()
                await self.check_stream()
                HALTED.set(0)
                self.status = {"state": "appending"}
                await self._read()
            except asyncio.CancelledError:
                raise
            except Resume:
                delay = 0.5
                continue
            except StreamBehindLog as exc:
                HALTED.set(1)
                self.status = {"state": "halted", "reason": str(exc)}
                log.error("audit_appender_halted", reason=str(exc))
                delay = 30.0
            except Exception as exc:
                ERRORS.inc()
                self.status = {"state": "retrying", "error": describe_error(exc)}
                log.warning("audit_append_failed", error=describe_error(exc), retry_in=delay)
                delay = min(delay * 2, 30.0)
            await asyncio.sleep(delay)  # back-off before retrying a failing dependency

    async def _read(self) -> None:
        stream = self.topology.events_stream
        name = f"audit-log-{self.clock().strftime('%H%M%S%f')}-{self.next_seq}"
        config = ConsumerConfig(name=name, deliver_policy=DeliverPolicy.BY_START_SEQUENCE,
                                opt_start_seq=self.next_seq, ack_policy=AckPolicy.NONE,
                                filter_subject=self.topology.all_events, inactive_threshold=120.0,
                                mem_storage=True, num_replicas=1)
        await self.js.add_consumer(stream, config)
        sub = await self.js.pull_subscribe_bind(consumer=name, stream=stream)
        try:
            while True:
                try:
                    msgs = await sub.fetch(self.max_records, timeout=self.fetch_timeout)
                except TimeoutError:
                    honour_cancellation()
                    msgs = []
                if msgs:
                    await self.append(msgs)
                await self.maybe_checkpoint()
        finally:
            with suppress(Exception):
                await sub.unsubscribe()
            with suppress(Exception):
                await self.js.delete_consumer(stream, name)

    # -- appending ---------------------------------------------------------------------------------
    async def append(self, msgs: Sequence[Msg]) -> None:
        records: list[Record] = []
        expected, prev = self.next_seq, self.last_hash
        skipped_delivery = False
        for m in msgs:
            seq, ts = stream_position(m.reply)
            if seq < expected:
                continue  # already in the log
            if seq > expected:
                if await self._delivery_skipped(expected, seq):
                    skipped_delivery = True
                    break
                gap = gap_record(first=expected, last=seq - 1, ts=ts, prev=prev,
                                 reason="the stream no longer had these messages when the audit log reached them")
                log.error("audit_stream_gap", first=expected, last=seq - 1, count=seq - expected)
                GAPS.inc(seq - expected)
                records.append(gap)
                prev = gap.hash
            record = make_record(seq=seq, ts=ts, subject=m.subject, headers=canonical_headers(m.headers),
                                 body=m.data, prev=prev)
            records.append(record)
            prev, expected = record.hash, seq + 1
        for chunk in split_chunks(records, self.max_records, self.max_bytes):
            await self._commit(chunk)
        if skipped_delivery:
            log.warning("audit_delivery_skipped", expected=self.next_seq)
            raise Resume

    async def _delivery_skipped(self, expected: int, delivered: int) -> bool:
        """Whether the stream still has a message between ``expected`` and ``delivered``."""
        try:
            msg = await self.js.get_msg(self.topology.events_stream, expected, subject=self.topology.all_events,
                                        next=True)
        except NotFoundError:
            return False
        return msg.seq is not None and msg.seq < delivered

    async def _commit(self, records: list[Record]) -> None:
        number = self.chunk + 1
        now = self.clock()
        doc = chunk_document(number, records, written_at=now)
        total = self.total + len(records)
        doc["total"] = total
        if not await self.store.insert_chunk(doc):
            CONFLICTS.inc()
            log.info("audit_chunk_conflict", chunk=number)
            raise Resume
        last = records[-1]
        await self.store.advance_head(number, last.last_seq, last.hash, now)
        self.chunk, self.next_seq, self.last_hash, self.total = number, last.last_seq + 1, last.hash, total
        self.last_body_sha = hashlib.sha256(last.body).hexdigest() if last.kind == 0 else None
        APPENDED.inc(len(records))
        HEAD.set(last.last_seq)
        self.committed.set()

    async def maybe_checkpoint(self, *, force: bool = False) -> dict[str, Any] | None:
        head_seq = self.next_seq - 1
        if head_seq <= self.cp_seq:
            return None
        now = self.clock()
        due = (head_seq - self.cp_seq >= self.cp_every_records
               or self.cp_at is None or (now - self.cp_at).total_seconds() >= self.cp_every_seconds)
        if not (due or force):
            return None
        cp = new_checkpoint(seq=head_seq, hash_=self.last_hash, chunk=self.chunk, records=self.total,
                            stream=self.topology.events_stream, now=now, key=self._cp_key)
        await self.store.insert_checkpoint(to_document(cp))
        self.cp_seq, self.cp_at = head_seq, now
        log.info("audit_checkpoint", seq=head_seq, hash=self.last_hash)
        return cp.model_dump(mode="json")
