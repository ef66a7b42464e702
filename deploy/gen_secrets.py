#!/usr/bin/env python3
"""Generates every credential the Puskesos deployment needs (stdlib only; nothing is committed).

    python3 deploy/gen_secrets.py env --output deploy/.env          # docker compose
    python3 deploy/gen_secrets.py k8s --namespace puskesos | kubectl apply -f -   # Kubernetes
    python3 deploy/gen_secrets.py subscribers --current current.json | kubectl apply -f -  # subscribers changed

``env`` writes ``NAME=value`` lines for compose's ``${NAME:?}`` interpolation (file mode 0600,
never overwrites). ``k8s`` prints the Secrets that the manifests in deploy/k8s reference with
``secretKeyRef``, ``envFrom`` or a volume. Values are random hex (URL-safe: they go into connection
strings) and the MongoDB key file is base64 (what mongod accepts). Run it once per environment and
keep the output in your secret store; rotating a value means re-running the provisioning (docs/runbook.md).

External subscribers come from deploy/nats/subscribers.json (the same file render_accounts.py and
the notification service read): a NATS subscriber gets a password (``NATS_<NAME>_PASSWORD``, in the
Secret ``puskesos-nats-subscribers`` that the NATS servers take whole with ``envFrom``), a webhook
subscriber a signing secret (``subscriber-secrets.json`` in ``puskesos-subscriber-secrets``, mounted
into the notification service only). ``subscribers`` prints just those two Secrets after the file
changed, keeping the values of the subscribers already in ``--current`` (the output of
``kubectl -n puskesos get secret puskesos-nats-subscribers puskesos-subscriber-secrets -o json``) and
dropping revoked ones.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import secrets
import sys
from pathlib import Path
from typing import Any

SERVICES = ("intake", "referral", "distribution", "notification", "audit")
#: production's external subscribers (the SubscriberBook format: ``{"subscribers": [...]}``)
SUBSCRIBERS_FILE = Path(__file__).resolve().parent / "nats" / "subscribers.json"
#: the NATS passwords of the feed subscribers: one key per environment variable (taken whole by envFrom)
SUBSCRIBER_NATS_SECRET = "puskesos-nats-subscribers"  # noqa: S105 - a Secret's name
#: the webhook signing secrets, one JSON file (``puskesos_shared.subscribers.SubscriberSecrets``)
SUBSCRIBER_SECRETS_SECRET = "puskesos-subscriber-secrets"  # noqa: S105 - a Secret's name
SUBSCRIBER_SECRETS_KEY = "subscriber-secrets.json"


def load_subscribers(path: Path = SUBSCRIBERS_FILE) -> list[dict[str, Any]]:
    data = json.loads(path.read_text()) if path.exists() else {}
    return list(data.get("subscribers", []))


def password_variable(user: str) -> str:
    """As deploy/nats/render_accounts.py names it: ``NATS_RSUD_SOEBANDI_PASSWORD``."""
    return f"NATS_{user.upper().replace('-', '_')}_PASSWORD"


def nats_subscribers(path: Path = SUBSCRIBERS_FILE) -> list[str]:
    return [s["name"] for s in load_subscribers(path) if not s.get("webhook_url")]


def webhook_subscribers(path: Path = SUBSCRIBERS_FILE) -> list[str]:
    return [s["name"] for s in load_subscribers(path) if s.get("webhook_url")]


#: environment variable -> (Kubernetes Secret, key in it)
SECRETS: dict[str, tuple[str, str]] = {
    "NATS_ROUTE_PASSWORD": ("puskesos-nats", "route-password"),
    "NATS_SYS_PASSWORD": ("puskesos-nats", "sys-password"),
    "NATS_ADMIN_PASSWORD": ("puskesos-nats", "admin-password"),
    "NATS_OPERATOR_PASSWORD": ("puskesos-nats", "operator-password"),
    **{f"NATS_{s.upper()}_PASSWORD": ("puskesos-nats", f"{s}-password") for s in SERVICES},
    **{password_variable(s): (SUBSCRIBER_NATS_SECRET, password_variable(s)) for s in nats_subscribers()},
    "MONGO_ROOT_PASSWORD": ("puskesos-mongo", "root-password"),
    "MONGO_KEYFILE": ("puskesos-mongo", "keyfile"),
    **{f"MONGO_{s.upper()}_PASSWORD": ("puskesos-mongo", f"{s}-password") for s in SERVICES},
    "PUSKESOS_AUTH_SECRET": ("puskesos-app", "auth-secret"),
    "PUSKESOS_INTAKE_NIK_HASH_KEY": ("puskesos-app", "intake-nik-hash-key"),
    "PUSKESOS_NOTIFY_HASH_SECRET": ("puskesos-app", "notify-hash-secret"),
    "PUSKESOS_AUDIT_INDEX_KEY": ("puskesos-app", "audit-index-key"),
    "PUSKESOS_AUDIT_CHECKPOINT_KEY": ("puskesos-app", "audit-checkpoint-key"),
}

#: Secrets that come from third parties, not from this script (Kubernetes only; compose runs
#: rehearsals with the local-file notification channel). Create them at provisioning:
#:   kubectl -n puskesos create secret generic puskesos-notify \
#:     --from-literal=webhook-url=https://... --from-literal=webhook-token=...
PROVIDED: dict[str, tuple[str, str]] = {
    "PUSKESOS_NOTIFY_WEBHOOK_URL": ("puskesos-notify", "webhook-url"),
    "PUSKESOS_NOTIFY_WEBHOOK_TOKEN": ("puskesos-notify", "webhook-token"),
}


def generate() -> dict[str, str]:
    values = {name: secrets.token_hex(24) for name in SECRETS}
    values["MONGO_KEYFILE"] = base64.b64encode(secrets.token_bytes(756)).decode()
    values["PUSKESOS_AUTH_SECRET"] = secrets.token_hex(32)
    return values


def generate_webhook_secrets(current: dict[str, dict[str, str]] | None = None) -> dict[str, dict[str, str]]:
    """Per webhook subscriber, its signing secret (kept from ``current`` when it has one)."""
    current = current or {}
    return {name: {"webhook_secret": current.get(name, {}).get("webhook_secret") or secrets.token_hex(32)}
            for name in webhook_subscribers()}


def env_file(values: dict[str, str]) -> str:
    lines = ["# Generated by deploy/gen_secrets.py. Secret: never commit, never paste in a ticket."]
    lines += [f"{name}={value}" for name, value in values.items()]
    return "\n".join(lines) + "\n"


def _secret(name: str, namespace: str, data: dict[str, str]) -> str:
    return json.dumps({
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": {"name": name, "namespace": namespace, "labels": {"app.kubernetes.io/part-of": "puskesos"}},
        "stringData": data,
    }, indent=2)


def _subscriber_secret(webhooks: dict[str, dict[str, str]], namespace: str) -> str:
    return _secret(SUBSCRIBER_SECRETS_SECRET, namespace, {SUBSCRIBER_SECRETS_KEY: json.dumps(webhooks, indent=2)})


def k8s_secrets(values: dict[str, str], namespace: str, webhooks: dict[str, dict[str, str]] | None = None) -> str:
    grouped: dict[str, dict[str, str]] = {SUBSCRIBER_NATS_SECRET: {}}
    for name, (secret, key) in SECRETS.items():
        grouped.setdefault(secret, {})[key] = values[name]
    docs = [_secret(secret, namespace, data) for secret, data in grouped.items()]
    docs.append(_subscriber_secret(generate_webhook_secrets() if webhooks is None else webhooks, namespace))
    return "\n---\n".join(docs) + "\n"


def current_subscriber_values(path: Path | None) -> tuple[dict[str, str], dict[str, dict[str, str]]]:
    """The subscriber values already in the cluster: ``kubectl get secret ... -o json`` (a List or one Secret)."""
    if path is None:
        return {}, {}
    doc = json.loads(path.read_text())
    passwords: dict[str, str] = {}
    webhooks: dict[str, dict[str, str]] = {}
    for item in doc.get("items", [doc]):
        data = {k: base64.b64decode(v).decode() for k, v in (item.get("data") or {}).items()}
        data |= item.get("stringData") or {}
        if item["metadata"]["name"] == SUBSCRIBER_NATS_SECRET:
            passwords |= data
        elif item["metadata"]["name"] == SUBSCRIBER_SECRETS_SECRET:
            webhooks |= json.loads(data.get(SUBSCRIBER_SECRETS_KEY) or "{}")
    return passwords, webhooks


def subscriber_secrets(namespace: str, current: Path | None = None) -> str:
    """The two subscriber Secrets for deploy/nats/subscribers.json as it is now: a declared subscriber keeps
    its current values, a new one gets fresh ones, a revoked one is left out."""
    passwords, webhooks = current_subscriber_values(current)
    nats = {password_variable(name): passwords.get(password_variable(name)) or secrets.token_hex(24)
            for name in nats_subscribers()}
    return "\n---\n".join([_secret(SUBSCRIBER_NATS_SECRET, namespace, nats),
                           _subscriber_secret(generate_webhook_secrets(webhooks), namespace)]) + "\n"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="target", required=True)
    env = sub.add_parser("env", help="NAME=value lines for docker compose (deploy/.env)")
    env.add_argument("--output", type=Path, help="write here (mode 0600) instead of stdout; never overwrites")
    k8s = sub.add_parser("k8s", help="Kubernetes Secret manifests (pipe to kubectl apply -f -)")
    k8s.add_argument("--namespace", default="puskesos")
    subs = sub.add_parser("subscribers", help="only the subscribers' Secrets, after deploy/nats/subscribers.json "
                                              "changed (pipe to kubectl apply -f -)")
    subs.add_argument("--namespace", default="puskesos")
    subs.add_argument("--current", type=Path, help="kubectl get secret ... -o json of the current subscriber "
                                                  "Secrets: their values are kept")
    args = parser.parse_args(argv)

    if args.target == "subscribers":
        sys.stdout.write(subscriber_secrets(args.namespace, args.current))
        return 0
    values = generate()
    if args.target == "k8s":
        sys.stdout.write(k8s_secrets(values, args.namespace))
        provided = sorted({secret for secret, _ in PROVIDED.values()})
        print(f"also create, from the providers' values: {', '.join(provided)} (see deploy/gen_secrets.py)",
              file=sys.stderr)
        return 0
    text = env_file(values)
    if args.output is None:
        sys.stdout.write(text)
        return 0
    if args.output.exists():
        print(f"{args.output} exists: refusing to overwrite live credentials (rotate on purpose, see the runbook)",
              file=sys.stderr)
        return 1
    fd = os.open(args.output, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as out:
        out.write(text)
    print(f"wrote {len(values)} secrets to {args.output}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
