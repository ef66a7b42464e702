"""The sample flow of the audit package, with the rule set the tests use."""

from __future__ import annotations

import json
from pathlib import Path

from puskesos_audit import samples
from puskesos_audit.samples import OTHER_KK, VILLAGE, Flow, assessment_inputs, family

RULES_DIR = Path(__file__).parent / "data" / "rules"
RULE_SET = json.loads((RULES_DIR / "assessment@1.json").read_text())

__all__ = ["OTHER_KK", "RULES_DIR", "RULE_SET", "VILLAGE", "Flow", "assessment_inputs", "build_flow", "family"]


def build_flow(seed: int = 0) -> Flow:
    return samples.build_flow(seed, RULE_SET)
