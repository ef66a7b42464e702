"""Prometheus metrics of the referral service (exposed at ``/metrics`` with the kit's)."""

from prometheus_client import Counter

ESCALATION_SWEEPS = Counter("puskesos_referral_escalation_sweeps_total",
                            "Escalation sweeps this process completed (successful or not)")
ESCALATIONS = Counter("puskesos_referral_escalations_total",
                      "Escalations this process claimed and wrote (each case level once across replicas)")
CLAIMS_LOST = Counter("puskesos_referral_claims_lost_total",
                      "Case changes retried because another writer claimed the version first")
