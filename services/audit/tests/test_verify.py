"""Verification pinpoints each kind of tampering (pure: chunks built in memory)."""

from __future__ import annotations

import dataclasses
from typing import Any

from puskesos_audit.chain import GENESIS, Record, chunk_document, make_record
from puskesos_audit.verify import ChainVerifier, VerifyReport


def chain(n: int, start: int = 1, prev: str = GENESIS) -> list[Record]:
    out = []
    for seq in range(start, start + n):
        r = make_record(seq=seq, ts=seq * 1_000, subject="ns.events.x.y.v1", headers=b'{"Nats-Msg-Id":"%d"}' % seq,
                        body=b'{"n":%d}' % seq, prev=prev)
        out.append(r)
        prev = r.hash
    return out


def chunks(records: list[Record], size: int = 10) -> list[dict[str, Any]]:
    return [chunk_document(i, records[o:o + size], written_at=None) for i, o in enumerate(range(0, len(records), size))]


def verify(docs: list[dict[str, Any] | None], *, head: int | None = None, checkpoints: dict[int, str] | None = None,
           ) -> VerifyReport:
    v = ChainVerifier(from_start=True, checkpoints=checkpoints)
    for n, doc in enumerate(docs):
        if doc is None:
            v.chunk_missing(n)
        else:
            v.feed(doc)
    return v.finish(head_seq=head)


def kinds(report: VerifyReport) -> list[tuple[str, int | None]]:
    return [(f.kind, f.seq) for f in report.findings]


def test_an_intact_log_verifies() -> None:
    records = chain(35)
    report = verify(chunks(records), head=35, checkpoints={20: records[19].hash, 35: records[34].hash})
    assert report.ok and report.records == 35 and report.checkpoints_checked == 2 and report.findings == []


def test_a_changed_record_is_pinpointed() -> None:
    records = chain(30)
    records[16] = dataclasses.replace(records[16], body=b'{"n":"paid twice"}')
    assert kinds(verify(chunks(records), head=30)) == [("altered", 17)]


def test_a_changed_record_with_a_recomputed_hash_breaks_the_next_link() -> None:
    records = chain(30)
    forged = make_record(seq=17, ts=17_000, subject="ns.events.x.y.v1", headers=records[16].headers,
                         body=b'{"n":"forged"}', prev=records[15].hash)
    records[16] = forged
    assert kinds(verify(chunks(records), head=30)) == [("relinked", 18)]


def test_a_deleted_record_is_pinpointed() -> None:
    records = chain(30)
    del records[11]
    report = verify(chunks(records), head=30)
    assert kinds(report) == [("deleted", 12)]
    assert report.findings[0].last_seq == 12


def test_swapped_records_are_pinpointed() -> None:
    records = chain(30)
    records[5], records[6] = records[6], records[5]
    report = verify(chunks(records), head=30)
    assert kinds(report) == [("reordered", 6)]
    assert "out of order" in report.findings[0].detail


def test_a_record_moved_to_a_later_chunk_is_reordered_not_deleted() -> None:
    records = chain(30)
    moved = records.pop(3)
    records.insert(25, moved)
    assert kinds(verify(chunks(records), head=30)) == [("reordered", 4)]


def test_a_deleted_chunk_is_pinpointed() -> None:
    docs: list[dict[str, Any] | None] = list(chunks(chain(30)))
    docs[1] = None
    report = verify(docs, head=30)
    assert kinds(report) == [("chunk_missing", None), ("deleted", 11)]
    assert report.findings[1].last_seq == 20


def test_a_cut_log_is_truncated_against_its_head_and_checkpoints() -> None:
    records = chain(30)
    report = verify(chunks(records[:25]), head=30, checkpoints={30: records[29].hash})
    assert ("truncated", 26) in kinds(report) and ("truncated", 30) in kinds(report)


def test_a_rewritten_history_disagrees_with_a_kept_checkpoint() -> None:
    records = chain(30)
    kept = {20: records[19].hash}
    rewritten = chain(10) + chain(20, start=11, prev="f" * 64)  # every later hash recomputed
    rewritten[10] = make_record(seq=11, ts=1, subject="s", headers=b"{}", body=b"x", prev=rewritten[9].hash)
    prev = rewritten[10].hash
    for i in range(11, 30):
        rewritten[i] = make_record(seq=i + 1, ts=1, subject="s", headers=b"{}", body=b"x", prev=prev)
        prev = rewritten[i].hash
    assert kinds(verify(chunks(rewritten), head=30, checkpoints=kept)) == [("checkpoint_mismatch", 20)]


def test_a_garbled_chunk_is_unreadable() -> None:
    docs: list[dict[str, Any] | None] = list(chunks(chain(20)))
    assert docs[0] is not None
    docs[0] = {**docs[0], "blob": b"garbage"}
    report = verify(docs, head=20)
    assert ("chunk_unreadable", None) in kinds(report) and ("deleted", 1) in kinds(report)
    assert not report.ok
