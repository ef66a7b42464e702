"""Signed checkpoints of the chain head: what an outside party keeps to detect a rewritten log.

A checkpoint says "after stream sequence ``seq`` the chain's head hash was ``hash``" and is
signed with HMAC-SHA256 (the audit checkpoint key, see settings). Whoever keeps exported
checkpoints can later hand them to ``audit verify --checkpoints FILE``: a log rewritten from
an earlier point (every later hash recomputed) no longer matches them, and a log cut short
ends before them.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
from collections.abc import Iterable, Mapping
from typing import Any

from puskesos_shared.canonical import canonical_json
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

FORMAT = "puskesos.audit-checkpoint/1"


class Checkpoint(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    format: str = FORMAT
    seq: int = Field(ge=0)
    hash: str = Field(pattern=r"^[0-9a-f]{64}$")
    chunk: int
    records: int = Field(ge=0, description="Records in the chain up to and including seq")
    taken_at: AwareDatetime
    stream: str
    key_id: str = Field(description="First 16 hex digits of SHA-256 of the signing key")
    signature: str = ""

    def payload(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude={"signature"})


def key_id(key: bytes) -> str:
    return hashlib.sha256(b"puskesos-audit-key-id:" + key).hexdigest()[:16]


def sign(checkpoint: Checkpoint, key: bytes) -> Checkpoint:
    signature = hmac.new(key, canonical_json(checkpoint.payload()), hashlib.sha256).hexdigest()
    return checkpoint.model_copy(update={"signature": signature})


def signature_ok(checkpoint: Checkpoint, key: bytes) -> bool:
    expected = hmac.new(key, canonical_json(checkpoint.payload()), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, checkpoint.signature)


def new_checkpoint(*, seq: int, hash_: str, chunk: int, records: int, stream: str, now: dt.datetime,
                   key: bytes) -> Checkpoint:
    return sign(Checkpoint(seq=seq, hash=hash_, chunk=chunk, records=records, taken_at=now, stream=stream,
                           key_id=key_id(key)), key)


def to_document(cp: Checkpoint) -> dict[str, Any]:
    from .store import checkpoint_id

    return {"_id": checkpoint_id(cp.seq), **cp.model_dump(mode="json")}


def from_document(doc: Mapping[str, Any]) -> Checkpoint:
    return Checkpoint.model_validate({k: v for k, v in doc.items() if k != "_id"})


def check_all(checkpoints: Iterable[Checkpoint], key: bytes | None) -> tuple[dict[int, str], list[str]]:
    """The (seq -> hash) map to verify the chain against, and the problems with the checkpoints themselves.

    Without the key (an outside party) signatures are not checked; the hashes still are.
    """
    by_seq: dict[int, str] = {}
    problems: list[str] = []
    for cp in checkpoints:
        if key is not None and not signature_ok(cp, key):
            problems.append(f"checkpoint at {cp.seq} has an invalid signature (forged, altered, or another key)")
            continue
        if cp.seq in by_seq and by_seq[cp.seq] != cp.hash:
            problems.append(f"two checkpoints at {cp.seq} disagree")
            continue
        by_seq[cp.seq] = cp.hash
    return by_seq, problems
