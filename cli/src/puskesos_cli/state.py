"""Where the local stack keeps its state: ``.local/stack/`` under the repository root, or
``PUSKESOS_STACK_DIR`` (``puskesos --stack-dir``; the demo runs a stack of its own this way)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from puskesos_shared.localstack import ManagedProcess, stack_dir

__all__ = ["env_file", "load", "process_from", "save", "stack_dir", "state_file", "subscriber_secrets_file",
           "subscribers_file"]


def state_file() -> Path:
    return stack_dir() / "state.json"


def env_file() -> Path:
    return stack_dir() / "stack.env"


def subscribers_file() -> Path:
    """The stack's external subscribers (``puskesos subscribers``), read by the notification service."""
    return stack_dir() / "subscribers.json"


def subscriber_secrets_file() -> Path:
    """Their NATS passwords and webhook signing secrets (0600)."""
    return stack_dir() / "subscriber-secrets.json"


def load() -> dict[str, Any]:
    path = state_file()
    if not path.exists():
        return {}
    data: dict[str, Any] = json.loads(path.read_text())
    return data


def save(data: dict[str, Any]) -> None:
    state_file().parent.mkdir(parents=True, exist_ok=True)
    tmp = state_file().with_suffix(".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n")
    tmp.replace(state_file())


def process_from(entry: dict[str, Any]) -> ManagedProcess:
    return ManagedProcess(entry["name"], int(entry["pid"]), int(entry["port"]), entry["url"], Path(entry["log"]))
