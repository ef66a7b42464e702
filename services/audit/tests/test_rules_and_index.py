"""The independent rule evaluator agrees with the referral service's; the index holds no personal data."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from audit_flow import RULE_SET, RULES_DIR, assessment_inputs, build_flow
from hypothesis import given, settings
from hypothesis import strategies as st
from puskesos_audit.extract import extract, kk_key, nik_key
from puskesos_audit.rules import differences, evaluate, load_rule_sets
from puskesos_shared.messaging import event_headers

REFERRAL_RULES = Path(__file__).parents[2] / "referral" / "src" / "puskesos_referral" / "data" / "rules"
KEY = b"k" * 32


def test_rule_sets_load_by_tag() -> None:
    assert set(load_rule_sets([RULES_DIR, Path("/nonexistent")])) == {"assessment@1"}


members = st.lists(st.fixed_dictionaries({
    "age": st.integers(0, 95), "sex": st.sampled_from(["L", "P"]),
    "relationship": st.sampled_from(["kepala_keluarga", "pasangan", "anak", "orang_tua"]),
    "disability": st.sampled_from(["none", "physical", "mental"]),
}), min_size=1, max_size=6)
observation_flags = ["chronic_illness", "needs_hospital_care", "has_health_insurance", "pregnant_member",
                     "child_neglected", "elderly_alone", "homeless", "begging", "disaster_affected",
                     "needs_rehabilitation", "disability_support_needed", "income_verified"]


@st.composite
def inputs(draw: Any) -> dict[str, Any]:
    base = assessment_inputs()
    base["case"]["category"] = draw(st.sampled_from(["aid_not_received", "health_referral", "disability", "other"]))
    base["observations"] = {**{f: draw(st.booleans()) for f in observation_flags},
                            "verified_monthly_income": draw(st.none() | st.integers(0, 5_000_000)),
                            "enrolled_programs": draw(st.sampled_from([[], ["PKH"], ["BPNT", "PKH"]]))}
    if draw(st.booleans()):
        base["household"] = None
    else:
        hh = base["household"]
        hh.update(monthly_income=draw(st.integers(0, 6_000_000)), members=draw(members),
                  floor=draw(st.sampled_from(["tanah", "semen", "keramik"])),
                  electricity=draw(st.sampled_from(["none", "450VA", "1300VA+"])),
                  assets=draw(st.sampled_from([[], ["car"], ["motorcycle", "smartphone"]])))
        hh["members"][0]["relationship"] = "kepala_keluarga"
    return base


@settings(max_examples=150, deadline=None)
@given(recorded=inputs())
def test_the_audit_evaluator_agrees_with_the_referral_service(recorded: dict[str, Any]) -> None:
    referral = pytest.importorskip("puskesos_referral.domain.assessment")
    rules = pytest.importorskip("puskesos_referral.domain.rules")
    documents = load_rule_sets([REFERRAL_RULES]) or {"assessment@1": RULE_SET}
    for document in documents.values():
        theirs = referral.assess(referral.AssessmentInputs.model_validate(recorded),
                                 rules.RuleSet.model_validate(document))
        ours = evaluate(document, recorded)
        assert differences(theirs.model_dump(mode="json"), ours) == []


def test_index_keys_hold_no_personal_data_in_the_clear() -> None:
    flow = build_flow(30)
    for event in flow.events:
        body = event.model_dump_json().encode()
        x = extract(body, event_headers(event), KEY)
        assert x.decoded
        text = json.dumps([x.keys, x.origin_of, x.parents])
        assert flow.ids["nik"] not in text and flow.ids["kk"] not in text
    allocated = next(e for e in flow.events if e.event_type == "AidAllocated")
    x = extract(allocated.model_dump_json().encode(), {}, KEY)
    assert nik_key(KEY, flow.ids["nik"]) in x.keys and kk_key(KEY, flow.ids["kk"]) in x.keys
    assert f"allocation:{flow.ids['allocation_id']}" in x.origin_of
    assert [rel for _, rel in x.parents] == ["caused_by", "based_on"]
    assert nik_key(b"other-key" * 4, flow.ids["nik"]) != nik_key(KEY, flow.ids["nik"])


def test_a_malformed_message_is_indexed_with_its_reason() -> None:
    x = extract(b'{"event_type": "Nope", "schema_version": 9}', {"Nats-Msg-Id": "m-1"}, KEY)
    assert not x.decoded and x.event_id == "m-1" and "unknown event_type" in (x.error or "")
