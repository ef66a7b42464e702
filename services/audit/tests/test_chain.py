"""The chain's encoding: the fast pre-image is the canonical JSON, records pack and unpack exactly."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from puskesos_audit.chain import (
    GENESIS,
    ChunkFormatError,
    RecordKind,
    canonical_headers,
    chunk_document,
    chunk_records,
    decompress,
    gap_record,
    iter_records,
    leaf_meta,
    make_record,
    meta_format,
)
from puskesos_audit.verify import ChainVerifier
from puskesos_shared.canonical import canonical_json

subjects = st.text(min_size=0, max_size=60)
hexes = st.binary(min_size=32, max_size=32).map(bytes.hex)


@given(seq=st.integers(1, 2**63 - 1), ts=st.integers(0, 2**63 - 1), subject=subjects, lh=st.integers(0, 2**31),
       lb=st.integers(0, 2**31), kind=st.sampled_from([0, 1]), span=st.integers(1, 2**31))
def test_the_leaf_meta_is_canonical_json(seq: int, ts: int, subject: str, lh: int, lb: int, kind: int,
                                         span: int) -> None:
    fast = leaf_meta(seq=seq, ts=ts, subject=subject, headers_len=lh, body_len=lb, kind=kind, span=span)
    slow = canonical_json({"body_len": lb, "headers_len": lh, "kind": kind, "seq": seq, "span": span,
                           "subject": subject, "ts": ts})
    assert fast == slow
    assert meta_format(subject) % (lb, lh, kind, seq, span, ts) == fast


@given(bodies=st.lists(st.binary(max_size=300), min_size=1, max_size=20), subject=subjects)
def test_records_round_trip_through_a_chunk(bodies: list[bytes], subject: str) -> None:
    prev, records = GENESIS, []
    for i, body in enumerate(bodies, start=1):
        r = make_record(seq=i, ts=i * 1000, subject=subject, headers=canonical_headers({"Nats-Msg-Id": str(i)}),
                        body=body, prev=prev)
        records.append(r)
        prev = r.hash
    doc = chunk_document(0, records, written_at=None)
    assert chunk_records(doc) == records
    assert doc["first"] == 1 and doc["last"] == len(bodies) and doc["head"] == records[-1].hash


def test_the_hash_covers_every_field_and_the_previous_hash() -> None:
    base: dict[str, Any] = {"seq": 5, "ts": 10, "subject": "ns.events.a.b.v1", "headers": b"{}", "body": b"x",
                            "prev": GENESIS}
    h = make_record(**base).hash
    for field, other in [("seq", 6), ("ts", 11), ("subject", "ns.events.a.c.v1"), ("headers", b'{"a":"b"}'),
                         ("body", b"y"), ("prev", "1" * 64)]:
        assert make_record(**{**base, field: other}).hash != h, field
    assert make_record(**base, kind=RecordKind.GAP).hash != h
    # the lengths make the concatenation unambiguous: moving bytes between headers and body changes the hash
    assert make_record(**{**base, "headers": b"{}x", "body": b""}).hash != h


def test_a_gap_record_covers_its_range_and_chains() -> None:
    gap = gap_record(first=3, last=9, ts=1, reason="purged", prev=GENESIS)
    assert (gap.seq, gap.last_seq, gap.kind) == (3, 9, RecordKind.GAP)
    nxt = make_record(seq=10, ts=2, subject="s", headers=b"{}", body=b"b", prev=gap.hash)
    verifier = ChainVerifier(from_start=False)
    verifier.feed(chunk_document(0, [gap, nxt], written_at=None))
    report = verifier.finish()
    assert report.ok and [f.kind for f in report.findings] == ["recorded_gap"]


def test_garbled_chunks_are_refused() -> None:
    with pytest.raises(ChunkFormatError):
        decompress(b"not zstd")
    r = make_record(seq=1, ts=1, subject="s", headers=b"{}", body=b"body", prev=GENESIS)
    raw = decompress(chunk_document(0, [r], written_at=None)["blob"])  # type: ignore[arg-type]
    with pytest.raises(ChunkFormatError):
        list(iter_records(raw[:-2]))
