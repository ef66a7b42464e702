"""Reading the log in order, fast: verification and whole-log scans (synchronous pymongo).

The chunks are read with one query sorted by ``_id`` (the primary key: chunk order), not one
lookup per chunk; a worker thread fetches the next batch while the caller hashes or decodes.
A range read (``from_seq``) asks only for the chunks that end at or after it. The order is
checked, not assumed: a chunk whose number disagrees with its place is held back until its turn,
and a chunk never seen is reported missing.
"""

from __future__ import annotations

import contextlib
import queue
import threading
from collections.abc import Iterable, Iterator
from typing import Any

from pymongo import MongoClient
from pymongo.database import Database

from .chain import Record, RecordKind, chunk_id, chunk_records
from .checkpoints import Checkpoint, check_all, from_document
from .store import CHECKPOINTS, CHUNKS, HEAD_ID, META
from .verify import ChainVerifier, VerifyReport

Document = dict[str, Any]
_END = object()


class LogReader:
    """Synchronous read access to an audit database."""

    def __init__(self, db: Database[Document]) -> None:
        self.db = db

    @classmethod
    def connect(cls, url: str, database: str) -> tuple[LogReader, MongoClient[Document]]:
        client: MongoClient[Document] = MongoClient(url, tz_aware=True, uuidRepresentation="standard",
                                                    serverSelectionTimeoutMS=5000, appname="puskesos-audit-reader")
        return cls(client[database]), client

    def chunk(self, number: int) -> Document | None:
        return self.db[CHUNKS].find_one({"_id": chunk_id(number)})

    def head(self) -> Document:
        return self.db[META].find_one({"_id": HEAD_ID}) or {"chunk": -1, "seq": 0}

    def checkpoints(self) -> list[Checkpoint]:
        docs = list(self.db[CHECKPOINTS].find({}))
        return sorted((from_document(d) for d in docs), key=lambda c: c.seq)

    def last_chunk_number(self) -> int:
        """The head's chunk, then forward while the next chunk exists."""
        number = int(self.head().get("chunk", -1))
        while self.db[CHUNKS].find_one({"_id": chunk_id(number + 1)}, {"_id": 1}) is not None:
            number += 1
        return number

    def _scan(self, query: Document, batch_size: int) -> Iterator[Document]:
        """The chunk documents matching ``query`` in ``_id`` order, fetched one batch ahead on a worker thread."""
        out: queue.Queue[Any] = queue.Queue(maxsize=2)
        stop = threading.Event()

        def fetch() -> None:
            try:
                for doc in self.db[CHUNKS].find(query, batch_size=batch_size).sort("_id", 1):
                    if stop.is_set():
                        return
                    out.put(doc)
                out.put(_END)
            except BaseException as exc:  # handed to the reading thread
                out.put(exc)

        worker = threading.Thread(target=fetch, name="audit-scan", daemon=True)
        worker.start()
        try:
            while True:
                item = out.get()
                if item is _END:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            stop.set()
            while worker.is_alive():  # unblock a worker waiting on a full queue
                with contextlib.suppress(queue.Empty):
                    out.get(timeout=0.1)

    def chunks(self, *, from_seq: int | None = None, until: int | None = None,
               batch_size: int = 4) -> Iterator[tuple[int, Document | None]]:
        """Chunks in order (None for a missing one), up to ``until`` or the last one found: from chunk 0,
        or from the first chunk that ends at or after ``from_seq``."""
        held: dict[int, Document] = {}
        expected: int | None = None if from_seq is not None else 0
        query: Document = {} if from_seq is None else {"last": {"$gte": from_seq}}
        for doc in self._scan(query, batch_size):
            number = int(doc.get("n", -1))
            if expected is None:
                expected = number
            if number < expected:
                continue  # a second copy of a chunk already read (verification finds what it means)
            held[number] = doc
            while expected in held:
                yield expected, held.pop(expected)
                expected += 1
        if expected is None:
            return
        last = max([*held, expected - 1, until if until is not None else -1])
        for number in range(expected, last + 1):
            yield number, held.pop(number, None)

    def seq_at_time(self, ts_ns: int) -> int:
        """The first stream sequence logged at or after ``ts_ns`` (the log's end + 1 if none)."""
        for _, doc in self.chunks():
            if doc is None or int(doc.get("last_ts", 0)) < ts_ns:
                continue
            for r in chunk_records(doc, hashes=False):
                if r.ts >= ts_ns:
                    return r.seq
        return int(self.head().get("seq", 0)) + 1

    def records(self, from_seq: int | None = None, to_seq: int | None = None,
                *, messages_only: bool = True, hashes: bool = True) -> Iterator[Record]:
        """Records in order within ``from_seq..to_seq`` (both optional); ``hashes=False`` skips recomputing
        the chain hashes (for scans that read the messages only)."""
        for _, doc in self.chunks(from_seq=from_seq):
            if doc is None:
                continue
            if to_seq is not None and int(doc.get("first", 0)) > to_seq:
                return
            for r in chunk_records(doc, hashes=hashes):
                if from_seq is not None and r.last_seq < from_seq:
                    continue
                if to_seq is not None and r.seq > to_seq:
                    return
                if messages_only and r.kind != RecordKind.MESSAGE:
                    continue
                yield r


def verify_log(reader: LogReader, *, from_seq: int | None = None, to_seq: int | None = None,
               external: Iterable[Checkpoint] = (), key: bytes | None = None) -> VerifyReport:
    """Verifies the whole log, or the chunks covering ``from_seq..to_seq``.

    Checkpoints stored in the log (signatures checked with ``key``) and ``external`` ones
    (kept by an outside party) are compared with the chain at their sequences.
    """
    head = reader.head()
    head_seq = int(head.get("seq", 0))
    stored, problems = check_all(reader.checkpoints(), key)
    outside, outside_problems = check_all(external, key)
    checkpoints: dict[int, str] = {**stored}
    for seq, h in outside.items():
        if seq in checkpoints and checkpoints[seq] != h:
            outside_problems.append(f"the stored checkpoint at {seq} differs from the one kept outside")
        checkpoints[seq] = h
    in_range = {s: h for s, h in checkpoints.items()
                if (from_seq is None or s >= from_seq) and (to_seq is None or s <= to_seq)}
    verifier = ChainVerifier(from_start=from_seq is None, checkpoints=in_range)
    for problem in problems + outside_problems:
        verifier.report_checkpoint_problem(problem)
    started = from_seq is None
    for number, doc in reader.chunks(from_seq=from_seq, until=int(head.get("chunk", -1))):
        if doc is not None and to_seq is not None and int(doc.get("first", 0)) > to_seq:
            break
        if doc is None:
            if started:
                verifier.chunk_missing(number)
            continue
        started = True
        verifier.feed(doc)
    whole_tail = to_seq is None or to_seq >= head_seq
    return verifier.finish(head_seq=head_seq if whole_tail else None)

