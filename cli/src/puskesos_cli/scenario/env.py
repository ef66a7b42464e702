"""Where the scenario's processes are and how they are started: the local stack or a test's servers.

The scenario only talks to the services' public edges (HTTP, NATS commands, the events stream)
and to the simulated payment gateway, so the same runner drives the ``puskesos demo`` stack (NATS
users with passwords) and the system test's fixture servers (no NATS authentication).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path

SERVICES = ("intake", "referral", "distribution", "notification", "audit")
#: The referral service runs under a launcher whose clock the scenario can move forward (see ``clock``).
SERVICE_MODULES = {name: f"puskesos_{name}" for name in SERVICES} | {
    "referral": "puskesos_cli.scenario.referral_clock",
}
CLOCK_FILE_ENV = "PUSKESOS_DEMO_CLOCK_FILE"


@dataclass(frozen=True)
class Endpoints:
    """Base URLs of the services' HTTP edges (any replica) and of the payment gateway."""

    intake: str
    referral: str
    distribution: str
    notification: str
    audit: str
    gateway: str


@dataclass(frozen=True)
class ScenarioEnv:
    endpoints: Endpoints
    nats_url: str
    namespace: str
    auth_secret: str
    mongo_url: str
    audit_database: str
    #: Files the scenario reads: the gateway's ledger (payments where money moves), the notification
    #: service's local channel, and the offset file of the referral service's clock.
    gateway_ledger: Path
    notifications_file: Path
    clock_file: Path
    #: Scratch space for the recipient CSV and the audit CLI's working directory.
    work_dir: Path
    nats_user: str | None = None
    nats_password: str | None = field(default=None, repr=False)

    def audit_cli_env(self) -> dict[str, str]:
        """Environment of ``python -m puskesos_audit.cli`` against this scenario's audit database."""
        env = {"PUSKESOS_NATS_URL": self.nats_url, "PUSKESOS_MONGO_URL": self.mongo_url,
               "PUSKESOS_NAMESPACE": self.namespace, "PUSKESOS_MONGO_DB": self.audit_database,
               "PUSKESOS_AUTH_SECRET": self.auth_secret, "PUSKESOS_LOG_JSON": "true"}
        if self.nats_user and self.nats_password:
            env |= {"PUSKESOS_NATS_USER": self.nats_user, "PUSKESOS_NATS_PASSWORD": self.nats_password}
        return env


def service_env(service: str, *, gateway_url: str, notifications_file: Path, clock_file: Path,
                unregistered_recipients: bool = False) -> dict[str, str]:
    """What the scenario needs from each service beyond the connection settings.

    ``unregistered_recipients``: most families on the recipient list were never registered at a
    Puskesos (the full-scale round), so the notification service need not wait for contacts that
    will not come: it records ``no_contact`` at the first delivery instead of retrying six times;
    and the distribution service pays through the bank's bulk API (50 transfers per request, each
    with its own idempotency key and outcome), as a regency paying 63,335 families does: one
    request per transfer would spend the two cores on HTTP instead of on the round.
    """
    if service == "referral":
        # the SLA step waits for the escalation loop (every 5 s here, 60 s by default); a
        # shorter period would keep the stack busy after the demo (--keep) for nothing
        return {CLOCK_FILE_ENV: str(clock_file), "PUSKESOS_ESCALATION_INTERVAL_SECONDS": "5",
                "PUSKESOS_PENDING_SWEEP_SECONDS": "5"}
    if service == "distribution":
        env = {"PUSKESOS_GATEWAY_URL": gateway_url, "PUSKESOS_GATEWAY_NAME": "bank-sim",
               "PUSKESOS_DISBURSE_MAX_ATTEMPTS": "4", "PUSKESOS_WORK_BACKOFF_INITIAL_SECONDS": "0.2",
               "PUSKESOS_WORK_BACKOFF_MAX_SECONDS": "2"}
        if unregistered_recipients:
            env["PUSKESOS_GATEWAY_BATCH_SIZE"] = "50"
        return env
    if service == "notification":
        env = {"PUSKESOS_NOTIFY_CHANNEL": "local_file", "PUSKESOS_NOTIFY_LOCAL_PATH": str(notifications_file),
               "PUSKESOS_NOTIFY_CONSUMER_BACKOFF_SECONDS": "0.3"}
        if unregistered_recipients:
            env["PUSKESOS_NOTIFY_CONTACT_WAIT_ATTEMPTS"] = "1"
        return env
    return {}


def gateway_argv(port: int, ledger: Path, *, seed: int, failure_rate: float = 0.04,
                 latency_ms: float = 20.0) -> list[str]:
    """The simulated bank: a little latency, some "unavailable" answers (retried), accounts
    starting with 0000 declined (final failures)."""
    return [sys.executable, "-m", "puskesos_distribution.gateway_sim", "--port", str(port),
            "--latency-ms", str(latency_ms), "--failure-rate", str(failure_rate), "--decline-prefix", "0000",
            "--seed", str(seed), "--ledger", str(ledger)]
