"""Verification of the hash chain (pure: chunks in, findings out).

``ChainVerifier`` is fed chunk documents in chunk order (and told about chunk numbers that are
missing) and pinpoints, per stream sequence:

* ``altered``: the record's content no longer hashes to its stored hash;
* ``relinked``: the record is intact but does not chain to the record before it, i.e. the one
  before was rewritten *and* re-hashed (or a chunk does not continue the previous chunk's chain);
* ``deleted``: sequences that should be there and are not (inside a chunk or a whole chunk);
* ``reordered``: a record stored after a later one (a swap shows as the pair);
* ``duplicated``: a sequence stored twice;
* ``chunk_missing`` / ``chunk_unreadable`` / ``chunk_header``: the chunk documents themselves;
* ``checkpoint_mismatch`` / ``truncated``: the chain disagrees with a signed checkpoint, or ends
  before the recorded head or a checkpoint;
* ``recorded_gap`` (a warning, not a failure): the stream had no messages for a range when the
  log reached it (purged before the audit service read them); written into the chain on purpose.

Missing sequences are first held as "missing"; one that turns up later becomes ``reordered``,
the rest are reported ``deleted`` when the run ends. After the first break inside a chunk its
chain cannot be followed further (the full hash of a changed record is unknown): the rest of the
chunk is still checked record by record (content, order), and the next chunk starts again from
its own stored full hash, which must equal the previous chunk's head.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel, ConfigDict

from .chain import GENESIS, HEADER, ChunkFormatError, decompress, meta_format

MAX_FINDINGS = 1000

FAILURES = frozenset({"altered", "relinked", "deleted", "reordered", "duplicated", "chunk_missing",
                      "chunk_unreadable", "chunk_header", "checkpoint_mismatch", "truncated"})


class Finding(BaseModel):
    model_config = ConfigDict(frozen=True)

    kind: str
    seq: int | None = None
    last_seq: int | None = None
    chunk: int | None = None
    detail: str

    @property
    def failure(self) -> bool:
        return self.kind in FAILURES


class VerifyReport(BaseModel):
    ok: bool
    first_seq: int | None
    last_seq: int | None
    head_hash: str | None
    records: int
    chunks: int
    findings: list[Finding]
    findings_total: int
    warnings: int
    checkpoints_checked: int
    seconds: float
    records_per_second: float

    def failures(self) -> list[Finding]:
        return [f for f in self.findings if f.failure]


@dataclass
class _Missing:
    ranges: list[list[int]] = field(default_factory=list)  # [first, last, chunk]

    def add(self, first: int, last: int, chunk: int) -> None:
        self.ranges.append([first, last, chunk])

    def take(self, seq: int) -> bool:
        for i, (first, last, chunk) in enumerate(self.ranges):
            if first <= seq <= last:
                del self.ranges[i]
                if first < seq:
                    self.ranges.append([first, seq - 1, chunk])
                if seq < last:
                    self.ranges.append([seq + 1, last, chunk])
                return True
        return False


class ChainVerifier:
    """Checks records chunk by chunk; ``anchor`` says where the run starts.

    From the beginning of the log (``from_start=True``) the first record must be sequence 1
    and chain to ``GENESIS``; a range run accepts its first record's ``prev`` as the anchor.
    """

    def __init__(self, *, from_start: bool, checkpoints: Mapping[int, str] | None = None) -> None:
        self.expected: int | None = 1 if from_start else None
        self.last_hash: bytes | None = bytes.fromhex(GENESIS) if from_start else None
        self._head: bytes | None = self.last_hash  # the stored head of the previous chunk
        self.last_seq: int | None = None
        self.first_seq: int | None = None
        self.records = 0
        self.chunks = 0
        self.checkpoints = dict(checkpoints or {})
        self.checkpoints_checked = 0
        self.findings: list[Finding] = []
        self.findings_total = 0
        self.warnings = 0
        self._missing = _Missing()
        self.failures_total = 0
        self._started = time.perf_counter()
        self._skip_link = 0  # records whose link to the previous one is not checked (after an anomaly)

    # -- reporting ---------------------------------------------------------------------------
    def _report(self, kind: str, detail: str, *, seq: int | None = None, last_seq: int | None = None,
                chunk: int | None = None) -> None:
        self.findings_total += 1
        if kind in FAILURES:
            self.failures_total += 1
        else:
            self.warnings += 1
        if len(self.findings) < MAX_FINDINGS:
            self.findings.append(Finding(kind=kind, seq=seq, last_seq=last_seq, chunk=chunk, detail=detail))

    def report_checkpoint_problem(self, problem: str) -> None:
        self._report("checkpoint_mismatch", problem)

    def chunk_missing(self, number: int) -> None:
        self._report("chunk_missing", f"chunk {number} is missing from the log", chunk=number)
        self._skip_link = 1

    # -- the hot loop ----------------------------------------------------------------------------
    def feed(self, doc: Mapping[str, Any]) -> None:
        number = int(doc.get("n", -1))
        self.chunks += 1
        try:
            raw = decompress(bytes(doc["blob"]), str(doc.get("codec", "")))
            anchor = bytes.fromhex(str(doc["prev"]))
            if len(anchor) != 32:
                raise ChunkFormatError("its prev is not a SHA-256 digest")
        except (ChunkFormatError, KeyError, TypeError, ValueError) as exc:
            self._report("chunk_unreadable", f"chunk {number} cannot be read ({exc}); its header claims "
                         f"sequences {doc.get('first')}..{doc.get('last')}", chunk=number)
            self._skip_link = 1
            self._head = None
            return
        if self._head is not None and anchor != self._head and not self._skip_link:
            self._report("relinked", f"chunk {number} does not continue the chain where chunk {number - 1} "
                         "ended: a chunk was rewritten", seq=doc.get("first"), chunk=number)
        chain_ok = True
        c = anchor
        sha256 = hashlib.sha256
        checkpoints = self.checkpoints
        unpack, size = HEADER.unpack_from, HEADER.size
        formats: dict[bytes, bytes] = {}
        off, end, count, first, last = 0, len(raw), 0, None, 0
        expected = self.expected
        try:
            while off < end:
                if end - off < size:
                    raise ChunkFormatError(f"truncated record header at byte {off}")
                seq, ts, span, kind, ls, lh, lb, leaf8, hash8 = unpack(raw, off)
                off += size
                stop = off + ls + lh + lb
                if stop > end:
                    raise ChunkFormatError(f"truncated record {seq}")
                subject = raw[off:off + ls]
                fmt = formats.get(subject)
                if fmt is None:
                    fmt = formats[subject] = meta_format(subject.decode("utf-8", "replace"))
                h = sha256(fmt % (lb, lh, kind, seq, span, ts))
                h.update(raw[off + ls:stop])
                off = stop
                leaf = h.digest()
                count += 1
                if first is None:
                    first = seq
                if expected is not None and seq != expected:
                    self.expected = expected
                    self._sequence_anomaly(seq, expected, number)
                    chain_ok = False
                if leaf[:8] != leaf8:
                    self._report("altered", f"record {seq} does not hash to its stored hash: its content, time or "
                                 "subject was changed", seq=seq, chunk=number)
                    chain_ok = False
                elif chain_ok:
                    c = sha256(c + leaf).digest()
                    if c[:8] != hash8:
                        self._report("relinked", f"record {seq} is intact but does not chain to the record before "
                                     "it: that record was rewritten and re-hashed (or this one was re-hashed)",
                                     seq=seq, chunk=number)
                        chain_ok = False
                last = seq + span - 1
                if kind:
                    self._report("recorded_gap", f"the stream had no messages {seq}..{last} when the log "
                                 "reached them (purged or deleted before the audit service read them)",
                                 seq=seq, last_seq=last, chunk=number)
                if expected is None or seq >= expected:
                    expected = last + 1
                if checkpoints and last in checkpoints and chain_ok:
                    self.checkpoints_checked += 1
                    if checkpoints.pop(last) != c.hex():
                        self._report("checkpoint_mismatch", f"the chain at record {last} differs from the signed "
                                     "checkpoint taken at that sequence", seq=last, chunk=number)
        except ChunkFormatError as exc:
            self._report("chunk_unreadable", f"chunk {number} is garbled after record {last}: {exc}", chunk=number)
            chain_ok = False
        self.expected = expected
        if first is not None and self.first_seq is None:
            self.first_seq = first
        self.last_seq = max(self.last_seq or 0, last)
        self.records += count
        self._skip_link = 0
        head = doc.get("head")
        if chain_ok and c.hex() != head:
            self._report("chunk_header", f"chunk {number}'s head hash does not match its records", chunk=number,
                         seq=first)
        elif (doc.get("first"), doc.get("last"), doc.get("count")) != (first, last, count):
            self._report("chunk_header", f"chunk {number}'s summary {(doc.get('first'), doc.get('last'))} does not "
                         f"describe its records {(first, last)}", chunk=number, seq=first)
        self._head = bytes.fromhex(head) if isinstance(head, str) and len(head) == 64 else None
        self.last_hash = self._head

    def _sequence_anomaly(self, seq: int, expected: int, chunk: int) -> None:
        if seq > expected:
            self._missing.add(expected, seq - 1, chunk)
        elif self._missing.take(seq):
            self._report("reordered", f"record {seq} is stored out of order (after record {expected - 1}); "
                         "records were swapped or moved", seq=seq, chunk=chunk)
        else:
            self._report("duplicated", f"record {seq} is stored a second time (after record {expected - 1})",
                         seq=seq, chunk=chunk)

    # -- end of run ------------------------------------------------------------------------------
    def finish(self, *, head_seq: int | None = None) -> VerifyReport:
        for first, last, chunk in sorted(self._missing.ranges):
            what = f"record {first} is" if first == last else f"records {first}..{last} are"
            self._report("deleted", f"{what} missing from the log", seq=first, last_seq=last, chunk=chunk)
        end = self.last_seq or 0
        if head_seq is not None and head_seq > end:
            self._report("truncated", f"the log ends at {end} but its head says {head_seq}", seq=end + 1,
                         last_seq=head_seq)
        for seq in sorted(s for s in self.checkpoints if s > end):
            self._report("truncated", f"a signed checkpoint exists for record {seq}, after the log's end ({end})",
                         seq=seq)
        seconds = time.perf_counter() - self._started
        return VerifyReport(
            ok=self.failures_total == 0, first_seq=self.first_seq, last_seq=self.last_seq,
            head_hash=self.last_hash.hex() if self.last_hash else None, records=self.records, chunks=self.chunks,
            findings=self.findings, findings_total=self.findings_total, warnings=self.warnings,
            checkpoints_checked=self.checkpoints_checked, seconds=round(seconds, 3),
            records_per_second=round(self.records / seconds, 1) if seconds > 0 else 0.0,
        )
