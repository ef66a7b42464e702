"""The ``puskesos`` command."""

from __future__ import annotations

import typer

from . import contracts, demo, services, stack, token

app = typer.Typer(help="Puskesos platform: local stack, services, contracts, demo.", no_args_is_help=True)
app.add_typer(stack.app, name="stack")
app.add_typer(services.app, name="services")
app.add_typer(contracts.app, name="contracts")
app.command("demo")(demo.demo)
app.command("token")(token.token)


if __name__ == "__main__":
    app()
