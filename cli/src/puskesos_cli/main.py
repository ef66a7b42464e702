"""The ``puskesos`` command: one entry point for developers and operators.

``round`` and ``audit`` are the distribution and audit services' own command-line tools,
mounted here (the CLI is a composition root, not a service: it may import services).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer
from puskesos_audit.cli import app as audit_app
from puskesos_distribution.cli import round_app
from puskesos_shared.localstack import STACK_DIR_ENV

from . import contracts, demo, dlq, registry, resident, services, stack, subscribers, token

app = typer.Typer(help="Puskesos platform: local stack, services, contracts, demo, rounds, audit, residents.",
                  no_args_is_help=True)


@app.callback()
def main(stack_dir: Annotated[Path | None, typer.Option(
        "--stack-dir", envvar=STACK_DIR_ENV, file_okay=False,
        help="The local stack to act on (default .local/stack; the demo's own is .local/demo/stack)")] = None) -> None:
    """Puskesos platform: local stack, services, contracts, demo, rounds, audit, residents."""
    if stack_dir is not None:  # children (services, tools) and the settings read it from the environment
        os.environ[STACK_DIR_ENV] = str(stack_dir.resolve())


app.add_typer(stack.app, name="stack")
app.add_typer(services.app, name="services")
app.add_typer(contracts.app, name="contracts")
app.add_typer(round_app, name="round", help="Aid rounds (BLT): open, import recipients, status, close.")
app.add_typer(audit_app, name="audit", help="The audit log: verify, trace, replay, checkpoints.")
app.add_typer(registry.app, name="registry", help="The household registry: bulk CSV import, sample CSVs.")
app.add_typer(resident.app, name="resident", help="Residents' personal data (UU PDP): export on request.")
app.add_typer(dlq.app, name="dlq", help="Dead letters: list, show, re-drive to the consumer that failed them.")
app.add_typer(subscribers.app, name="subscribers",
              help="External subscribers: add, list, replay, revoke (NATS feeds and CloudEvents webhooks).")
app.command("demo")(demo.demo)
app.command("token")(token.token)


if __name__ == "__main__":
    app()
