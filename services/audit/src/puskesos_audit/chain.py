"""The hash chain and the chunk format of the audit log (pure: no I/O).

Every message that was on the events stream becomes one *record*, in stream order:

* ``seq``: the stream sequence; ``ts``: the stream's timestamp (nanoseconds since the epoch);
* ``subject``, ``headers`` (canonical JSON of the message headers) and ``body`` (the raw bytes,
  kept byte for byte even when they are not a valid event);
* ``kind``: ``MESSAGE``, or ``GAP`` when the stream no longer had messages ``seq .. seq+span-1``
  when the audit log reached them (purged); a gap is written into the chain, never skipped.

Two hashes per record (SHA-256):

* ``leaf = SHA-256(meta || headers || body)`` where ``meta`` is the canonical JSON
  (``puskesos_shared.canonical``) of ``{"body_len", "headers_len", "kind", "seq", "span",
  "subject", "ts"}``: the lengths make the concatenation unambiguous;
* ``hash = SHA-256(prev || leaf)`` with the raw 32-byte digests, ``prev`` being the previous
  record's ``hash`` (``GENESIS`` before the first): the chain.

A chunk (one stored document: a run of consecutive records, packed and compressed with zstd)
keeps the full chain hash before its first record (``prev``) and after its last (``head``);
each record keeps the first 8 bytes of its ``leaf`` and of its ``hash``. Verification recomputes
everything: the full chain (and the signed checkpoints) carry the cryptographic guarantee; the
8-byte values pinpoint which record was changed (a change that kept them would need 2^64 tries
and still breaks the chunk's full head). A million records fit in about a thousand documents of
~120 KB: the storage's cost is per document and per byte, and fewer, denser documents read in
one ordered query are what make verification fast.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from enum import IntEnum

import zstandard

GENESIS = "0" * 64
CODEC = "zstd1"  # packed records, zstandard frame
SHORT = 8  # bytes of leaf and hash kept per record

# seq, ts, span, kind, subject length, headers length, body length, leaf[:8], hash[:8]
HEADER = struct.Struct(">QQIBHII8s8s")
_COMPRESSOR = zstandard.ZstdCompressor(level=6)
_DECOMPRESSOR = zstandard.ZstdDecompressor()


class RecordKind(IntEnum):
    MESSAGE = 0
    GAP = 1


class ChunkFormatError(ValueError):
    """A chunk's bytes cannot be read as records (corrupted or tampered with)."""


@dataclass(frozen=True, slots=True)
class Record:
    seq: int
    ts: int
    subject: str
    headers: bytes
    body: bytes
    prev: str  # full chain hash before this record (hex)
    hash: str  # full chain hash after this record (hex)
    leaf: str  # hex
    kind: RecordKind = RecordKind.MESSAGE
    span: int = 1

    @property
    def last_seq(self) -> int:
        """The last stream sequence this record covers (a gap covers several)."""
        return self.seq + self.span - 1


_SUBJECTS: dict[str, bytes] = {}


def subject_json(subject: str) -> bytes:
    encoded = _SUBJECTS.get(subject)
    if encoded is None:
        encoded = json.dumps(subject, ensure_ascii=False).encode()
        if len(_SUBJECTS) < 10_000:
            _SUBJECTS[subject] = encoded
    return encoded


def meta_format(subject: str) -> bytes:
    """``leaf_meta`` with the subject filled in: ``fmt % (body_len, headers_len, kind, seq, span, ts)``."""
    return b'{"body_len":%%d,"headers_len":%%d,"kind":%%d,"seq":%%d,"span":%%d,"subject":%s,"ts":%%d}' % (
        subject_json(subject).replace(b"%", b"%%"),)


def leaf_meta(*, seq: int, ts: int, subject: str, headers_len: int, body_len: int, kind: int, span: int) -> bytes:
    """The canonical JSON the leaf hash starts with (keys sorted, no spaces; see the tests)."""
    return b'{"body_len":%d,"headers_len":%d,"kind":%d,"seq":%d,"span":%d,"subject":%s,"ts":%d}' % (
        body_len, headers_len, kind, seq, span, subject_json(subject), ts)


def leaf_digest(*, seq: int, ts: int, subject: str, headers: bytes, body: bytes, kind: int, span: int) -> bytes:
    h = hashlib.sha256(leaf_meta(seq=seq, ts=ts, subject=subject, headers_len=len(headers), body_len=len(body),
                                 kind=kind, span=span))
    h.update(headers)
    h.update(body)
    return h.digest()


def chain_digest(prev: bytes, leaf: bytes) -> bytes:
    return hashlib.sha256(prev + leaf).digest()


def canonical_headers(headers: Mapping[str, str] | None) -> bytes:
    """Message headers as canonical JSON (sorted keys); ``b"{}"`` when there are none."""
    return json.dumps(dict(headers or {}), sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def make_record(*, seq: int, ts: int, subject: str, headers: bytes, body: bytes, prev: str,
                kind: RecordKind = RecordKind.MESSAGE, span: int = 1) -> Record:
    leaf = leaf_digest(seq=seq, ts=ts, subject=subject, headers=headers, body=body, kind=kind, span=span)
    h = chain_digest(bytes.fromhex(prev), leaf)
    return Record(seq=seq, ts=ts, subject=subject, headers=headers, body=body, prev=prev, hash=h.hex(),
                  leaf=leaf.hex(), kind=kind, span=span)


def gap_record(*, first: int, last: int, ts: int, reason: str, prev: str) -> Record:
    """A record saying the stream had no messages ``first..last`` when the log reached them."""
    body = json.dumps({"gap_first": first, "gap_last": last, "reason": reason}, sort_keys=True,
                      separators=(",", ":")).encode()
    return make_record(seq=first, ts=ts, subject="", headers=b"{}", body=body, prev=prev, kind=RecordKind.GAP,
                       span=last - first + 1)


# packing --------------------------------------------------------------------------------------
def pack_record(r: Record) -> bytes:
    subject = r.subject.encode()
    return HEADER.pack(r.seq, r.ts, r.span, int(r.kind), len(subject), len(r.headers), len(r.body),
                       bytes.fromhex(r.leaf)[:SHORT], bytes.fromhex(r.hash)[:SHORT]) + subject + r.headers + r.body


def pack_records(records: Sequence[Record]) -> bytes:
    return b"".join(pack_record(r) for r in records)


def compress(raw: bytes) -> bytes:
    return _COMPRESSOR.compress(raw)


def decompress(blob: bytes, codec: str = CODEC) -> bytes:
    if codec != CODEC:
        raise ChunkFormatError(f"unknown chunk codec {codec!r}")
    try:
        return _DECOMPRESSOR.decompress(blob)
    except zstandard.ZstdError as exc:
        raise ChunkFormatError(f"chunk does not decompress: {exc}") from None


@dataclass(frozen=True, slots=True)
class RawRecord:
    """A record as stored: the 8-byte leaf and hash only."""

    seq: int
    ts: int
    span: int
    kind: int
    subject: str
    headers: bytes
    body: bytes
    leaf8: bytes
    hash8: bytes


def iter_records(raw: bytes) -> Iterator[RawRecord]:
    """Unpacks concatenated records; raises ``ChunkFormatError`` on truncated or garbled data."""
    off, end, size, unpack = 0, len(raw), HEADER.size, HEADER.unpack_from
    while off < end:
        if end - off < size:
            raise ChunkFormatError(f"truncated record header at byte {off}")
        seq, ts, span, kind, ls, lh, lb, leaf8, hash8 = unpack(raw, off)
        off += size
        if off + ls + lh + lb > end:
            raise ChunkFormatError(f"truncated record {seq} at byte {off}")
        subject = raw[off:off + ls].decode("utf-8", "replace")
        headers = raw[off + ls:off + ls + lh]
        body = raw[off + ls + lh:off + ls + lh + lb]
        off += ls + lh + lb
        yield RawRecord(seq, ts, span, kind, subject, headers, body, leaf8, hash8)


def chunk_id(number: int) -> str:
    """A chunk's ``_id``: zero-padded, so ``_id`` order is chunk order."""
    return f"c:{number:010d}"


def chunk_document(number: int, records: Sequence[Record], *, written_at: object) -> dict[str, object]:
    """The stored form of a chunk. Its summary fields are cross-checked by verification."""
    if not records:
        raise ValueError("a chunk holds at least one record")
    raw = pack_records(records)
    return {
        "_id": chunk_id(number), "n": number, "first": records[0].seq, "last": records[-1].last_seq,
        "count": len(records), "prev": records[0].prev, "head": records[-1].hash,
        "first_ts": records[0].ts, "last_ts": records[-1].ts, "codec": CODEC, "raw_bytes": len(raw),
        "blob": compress(raw), "written_at": written_at,
    }


def chunk_records(doc: Mapping[str, object], *, hashes: bool = True) -> list[Record]:
    """The records of a chunk; full hashes are recomputed from the chunk's ``prev`` (``hashes=False``: left
    empty, for scans that only read the messages)."""
    blob = doc.get("blob")
    if not isinstance(blob, bytes | bytearray):
        raise ChunkFormatError("chunk has no blob")
    prev = bytes.fromhex(str(doc.get("prev", GENESIS)))
    out = []
    for r in iter_records(decompress(bytes(blob), str(doc.get("codec", CODEC)))):
        if hashes:
            leaf = leaf_digest(seq=r.seq, ts=r.ts, subject=r.subject, headers=r.headers, body=r.body, kind=r.kind,
                               span=r.span)
            h = chain_digest(prev, leaf)
            out.append(Record(r.seq, r.ts, r.subject, r.headers, r.body, prev.hex(), h.hex(), leaf.hex(),
                              RecordKind(r.kind), r.span))
            prev = h
        else:
            out.append(Record(r.seq, r.ts, r.subject, r.headers, r.body, "", "", "", RecordKind(r.kind), r.span))
    return out


def rebuild_chunk(doc: Mapping[str, object], records: Sequence[Record]) -> dict[str, object]:
    """The same chunk document with other records (used by tamper tests and repair tooling)."""
    number = int(doc["n"])  # type: ignore[call-overload]
    return chunk_document(number, records, written_at=doc.get("written_at"))
