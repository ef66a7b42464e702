"""Strict writers, tolerant readers: what one release reads of another's events, in both directions.

A newer producer may add an optional field (anywhere) or a value of an open enum: a consumer
still on an older release reads the event and ignores what it does not know. A newer consumer
reads older events that lack the field. Building an event stays strict, and a value a closed
enum does not know is still a contract violation (dead-lettered).
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

import pytest
from faststream.nats import NatsBroker
from nats.js import JetStreamContext
from puskesos_shared.contracts import (
    AidAllocationRejected,
    AidRoundClosed,
    ComplaintFiled,
    Event,
    InvalidMessage,
    UnknownEventVersion,
    decode_event,
)
from puskesos_shared.contracts.distribution import RejectionReason
from puskesos_shared.contracts.examples import example
from puskesos_shared.contracts.intake import Complainant, ComplaintFiledData
from puskesos_shared.messaging import ConsumerPolicy, DeadLetters, Delivery, EventPublisher, subscribe_events
from puskesos_shared.messaging import headers as h
from puskesos_shared.topology import Topology
from pydantic import ValidationError


# a "newer release" of ComplaintFiled v1: optional fields added in the envelope, in data and nested
class NewerComplainant(Complainant):
    email: str | None = None


class NewerComplaintFiledData(ComplaintFiledData):
    complainant: NewerComplainant
    preferred_language: str | None = None


class NewerComplaintFiled(ComplaintFiled):
    trace_id: str | None = None
    data: NewerComplaintFiledData


def current_complaint() -> ComplaintFiled:
    event = example("ComplaintFiled")
    assert isinstance(event, ComplaintFiled)
    return event


def newer_complaint(**update: Any) -> NewerComplaintFiled:
    """The current example as a newer producer builds it, with every added field filled in."""
    raw = current_complaint().model_dump(mode="json")
    raw["trace_id"] = "trace-1"
    raw["data"]["preferred_language"] = "jv"
    raw["data"]["complainant"]["email"] = "warga@example.org"
    raw.update(update)
    return NewerComplaintFiled.model_validate(raw)


def wire(event: Event | dict[str, Any]) -> bytes:
    return event.model_dump_json().encode() if isinstance(event, Event) else json.dumps(event).encode()


# (1) an older consumer reads a newer producer's message -----------------------------------------


def test_an_older_consumer_ignores_fields_a_newer_producer_added_at_every_level() -> None:
    sent = wire(newer_complaint())
    assert b'"preferred_language"' in sent and b'"email"' in sent and b'"trace_id"' in sent

    event = decode_event(sent, [ComplaintFiled])

    assert type(event) is ComplaintFiled
    assert event == current_complaint()  # everything it knows, nothing it does not
    assert "trace_id" not in event.model_dump() and "preferred_language" not in event.model_dump()["data"]


def test_unknown_fields_inside_arrays_and_optional_objects_are_ignored() -> None:
    raw = json.loads(example("HouseholdRegistered").model_dump_json())
    for member in raw["data"]["household"]["members"]:
        member["religion"] = "islam"
    raw["data"]["household"]["address"]["geo"] = {"lat": -7.9, "lon": 112.6}
    raw["actor"]["device"] = "tablet-3"
    event = decode_event(wire(raw))
    assert event == example("HouseholdRegistered")


def test_unknown_fields_do_not_hide_a_real_contract_violation() -> None:
    raw = json.loads(wire(newer_complaint()))
    raw["data"]["urgency"] = "whenever"  # Urgency is closed
    with pytest.raises(InvalidMessage, match=r"data\.urgency"):
        decode_event(wire(raw))


def test_an_unknown_event_type_or_version_is_still_refused() -> None:
    raw = json.loads(wire(newer_complaint()))
    with pytest.raises(UnknownEventVersion, match="unknown schema_version 2 of ComplaintFiled"):
        decode_event(wire({**raw, "schema_version": 2}))
    with pytest.raises(UnknownEventVersion, match="unknown event_type 'ComplaintWithdrawn'"):
        decode_event(wire({**raw, "event_type": "ComplaintWithdrawn"}))


# (2) a newer consumer reads an older message -----------------------------------------------------


def test_a_newer_consumer_reads_an_older_message_without_the_added_fields() -> None:
    older = json.loads(wire(current_complaint()))
    event = NewerComplaintFiled.read(older)
    assert event.trace_id is None and event.data.preferred_language is None and event.data.complainant.email is None
    added: Any = {"trace_id": True, "data": {"preferred_language": True, "complainant": {"email"}}}
    assert event.model_dump(mode="json", exclude=added) == older


# (3) producers stay strict ------------------------------------------------------------------------


def test_building_an_event_rejects_unknown_fields_at_every_level() -> None:
    raw = json.loads(wire(newer_complaint()))
    with pytest.raises(ValidationError) as caught:
        ComplaintFiled.model_validate(raw)
    where = {".".join(map(str, e["loc"])) for e in caught.value.errors() if e["type"] == "extra_forbidden"}
    assert where == {"trace_id", "data.preferred_language", "data.complainant.email"}
    fields = current_complaint().model_dump()
    with pytest.raises(ValidationError, match="trace_id"):
        ComplaintFiled(**fields, trace_id="trace-1")  # type: ignore[call-arg]  # mypy refuses it too


# (4) enums: open ones take values a newer release added, closed ones do not ------------------------


def test_a_reader_keeps_an_unknown_value_of_an_open_enum() -> None:
    raw = json.loads(example("AidAllocationRejected").model_dump_json())
    raw["data"]["reason"] = "income_above_threshold"  # added by a newer distribution release
    event = decode_event(wire(raw))
    assert isinstance(event, AidAllocationRejected)
    reason = event.data.reason
    assert isinstance(reason, RejectionReason) and not reason.known
    assert reason == "income_above_threshold" and reason not in list(RejectionReason)
    assert json.loads(event.model_dump_json())["data"]["reason"] == "income_above_threshold"  # kept as received
    assert RejectionReason.DUPLICATE_KK.known


def test_an_unknown_open_enum_value_as_a_dictionary_key_is_kept() -> None:
    raw = json.loads(example("AidRoundClosed").model_dump_json())
    raw["data"]["totals"]["rejected_by_reason"]["income_above_threshold"] = 4
    event = decode_event(wire(raw))
    assert isinstance(event, AidRoundClosed)
    counts = {str(k): v for k, v in event.data.totals.rejected_by_reason.items()}
    assert counts["income_above_threshold"] == 4


def test_a_producer_cannot_send_a_value_the_enum_does_not_know() -> None:
    event = example("AidAllocationRejected")
    raw = json.loads(event.model_dump_json())
    raw["data"]["reason"] = "income_above_threshold"
    with pytest.raises(ValidationError, match="reason"):
        AidAllocationRejected.model_validate(raw)
    with pytest.raises(ValueError, match="not a valid RejectionReason"):
        RejectionReason("income_above_threshold")


def test_an_unknown_value_of_a_closed_enum_is_a_contract_violation() -> None:
    raw = json.loads(wire(current_complaint()))
    raw["data"]["category"] = "flood_damage"  # ComplaintCategory is closed: a new value is a new version
    with pytest.raises(InvalidMessage, match=r"data\.category"):
        decode_event(wire(raw))


# (5) end to end: the consumer kit against a real nats-server ------------------------------------

FAST = ConsumerPolicy(max_attempts=2, backoff_initial_seconds=0.05, backoff_max_seconds=0.2,
                      ack_wait_seconds=5, fetch_timeout_seconds=0.2)


@pytest.mark.integration
async def test_the_consumer_kit_handles_a_newer_event_and_dead_letters_a_broken_one(
    broker: NatsBroker, topology: Topology, jetstream: JetStreamContext
) -> None:
    publisher = EventPublisher(broker, topology)
    handled: list[Event] = []

    async def handler(event: Event, delivery: Delivery) -> None:
        handled.append(event)

    subscribe_events(broker, topology, DeadLetters(publisher, "probe"), consumer="probe-tolerant",
                     events=[ComplaintFiled], handler=handler, policy=FAST)
    await broker.start()

    subject = topology.event_subject("intake", "complaint_filed", 1)
    newer = newer_complaint(event_id=str(uuid.UUID(int=1)))
    await publisher.publish_raw(subject, wire(newer), {h.MSG_ID: str(newer.event_id)})
    broken = json.loads(wire(newer_complaint(event_id=str(uuid.UUID(int=2)))))
    broken["data"]["category"] = "flood_damage"
    await publisher.publish_raw(subject, wire(broken), {h.MSG_ID: broken["event_id"]})

    async def settled() -> list[Any]:
        while True:
            info = await jetstream.stream_info(topology.dead_letter_stream)
            if handled and info.state.messages:
                return [await jetstream.get_msg(topology.dead_letter_stream, seq)
                        for seq in range(info.state.first_seq, info.state.last_seq + 1)]
            await asyncio.sleep(0.05)

    letters = await asyncio.wait_for(settled(), timeout=15)
    assert [e.event_id for e in handled] == [uuid.UUID(int=1)]
    assert type(handled[0]) is ComplaintFiled
    assert len(letters) == 1 and json.loads(letters[0].data)["event_id"] == str(uuid.UUID(int=2))
    assert "data.category" in letters[0].headers[h.DLQ_REASON]
