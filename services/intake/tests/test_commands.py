"""The NATS request-reply door: same domain, error replies instead of HTTP statuses."""

from __future__ import annotations

import pytest
from intake_testkit import Replica, command, complaint, household, member, nik
from nats.aio.client import Client as NatsClient
from puskesos_shared.topology import Topology

pytestmark = pytest.mark.integration
BOT = {"kind": "system", "id": "whatsapp-bot"}
SYNC = {"kind": "external", "id": "dtks-sync"}


async def test_commands_register_file_and_answer_status(app: Replica, nats_client: NatsClient,
                                                        topology: Topology) -> None:
    head = nik()
    hh = household(members=[member(head, "kepala_keluarga")])
    reply = await command(nats_client, topology, "register_household", {"actor": SYNC, "household": hh})
    assert reply.ok and reply.result is not None and reply.result["outcome"] == "registered"

    body = {"actor": BOT, "idempotency_key": "wa-msg-1", "complaint": complaint(nik_=head, phone="0811-2222-333")}
    filed = await command(nats_client, topology, "file_complaint", body)
    assert filed.ok and filed.result is not None and filed.result["created"] is True
    case_number = filed.result["complaint"]["case_number"]
    assert filed.result["complaint"]["complainant"]["kk_number"] == hh["kk_number"]
    again = await command(nats_client, topology, "file_complaint", body)
    assert again.ok and again.result is not None and again.result["created"] is False

    status = await command(nats_client, topology, "complaint_status", {"actor": BOT, "case_number": case_number})
    assert status.ok and status.result is not None
    public = status.result
    assert public["status"] == "filed" and public["village_name"] == "Balearjosari"
    assert set(public) == {"case_number", "status", "category", "village_code", "village_name", "filed_at",
                           "updated_at", "history"}
    for secret in (head, hh["kk_number"], "811", "Belum menerima"):
        assert secret not in str(public)


async def test_command_errors_are_replies_not_silence(app: Replica, nats_client: NatsClient,
                                                      topology: Topology) -> None:
    subject = topology.command_subject("intake", "file_complaint")
    raw = await nats_client.request(subject, b"{not json", timeout=10)
    assert b'"ok":false' in raw.data and b"malformed_json" in raw.data

    bad = await command(nats_client, topology, "file_complaint",
                        {"actor": BOT, "complaint": complaint(nik_="3573013213900003")})
    assert not bad.ok and bad.error is not None and bad.error["code"] == "invalid_request"
    assert any(f["loc"] == ["complaint", "complainant", "nik"] for f in bad.error["fields"])
    assert "3573013213900003" not in str(bad.error)

    unknown_village = await command(nats_client, topology, "register_household",
                                    {"actor": SYNC, "household": household(village="35.73.01.9999")})
    assert not unknown_village.ok and unknown_village.error is not None
    assert unknown_village.error["code"] == "unknown_village"

    no_actor = await command(nats_client, topology, "complaint_status", {"case_number": "3573011001/2026/00001"})
    assert not no_actor.ok and no_actor.error is not None and no_actor.error["fields"][0]["loc"] == ["actor"]

    missing = await command(nats_client, topology, "complaint_status",
                            {"actor": BOT, "case_number": "3573011001/2026/00077"})
    assert not missing.ok and missing.error is not None and missing.error["code"] == "complaint_not_found"

    taken = nik()
    await command(nats_client, topology, "register_household",
                  {"actor": SYNC, "household": household(members=[member(taken, "kepala_keluarga")])})
    clash = await command(nats_client, topology, "register_household",
                          {"actor": SYNC, "household": household(members=[member(taken, "kepala_keluarga")])})
    assert not clash.ok and clash.error is not None and clash.error["code"] == "nik_in_other_household"
