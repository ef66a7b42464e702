"""``puskesos demo``: the main job on embedded defaults.

Brings up the local stack and the five services as separate processes, checks that each is
ready, sends one round of every event contract through JetStream with the messaging kit
(de-duplicated by event id), reads the stream back, and stops the services again.
The year-end BLT scenario joins this command as the services gain their domains.
"""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer
from puskesos_shared.contracts.examples import EXAMPLES
from puskesos_shared.localstack import StackError
from puskesos_shared.messaging import EventPublisher
from puskesos_shared.service import build_broker
from puskesos_shared.settings import ServiceSettings
from puskesos_shared.topology import Topology
from rich.console import Console
from rich.table import Table

from . import services, stack
from .stack import nats_passwords

console = Console()


async def _contract_round(nats_url: str) -> tuple[int, int, int]:
    topology = Topology()
    broker = build_broker(ServiceSettings(nats_url=nats_url, nats_user="admin",
                                          nats_password=nats_passwords()["admin"]), "cli")
    await broker.connect()
    try:
        publisher = EventPublisher(broker, topology)
        fresh = duplicates = 0
        for factory in EXAMPLES.values():
            for _ in range(2):  # every event twice: the second is a duplicate the broker drops
                ack = await publisher.publish(factory())
                if ack.duplicate:
                    duplicates += 1
                else:
                    fresh += 1
        info = await broker.config.connection_state.stream.stream_info(topology.events_stream)
        return fresh, duplicates, int(info.state.messages)
    finally:
        await broker.stop()


def demo(
    keep: Annotated[bool, typer.Option(help="Leave the stack and services running afterwards")] = False,
) -> None:
    """Start the local stack and all services, run a contract round, print a summary."""
    try:
        nats_url, mongo_url = stack.up()
        console.print(f"[green]stack up[/green]  NATS {nats_url}  Mongo {mongo_url}")
        with console.status("Starting the five services..."):
            services.up()
    except StackError as exc:
        console.print(f"[red]demo failed:[/red] {exc}")
        raise typer.Exit(1) from None
    try:
        table = Table("service", "url", "ready", "nats", "mongo", title="Services")
        for row in services.health():
            checks = row.get("checks", {})
            table.add_row(row["name"], row["url"], str(row.get("status")), str(checks.get("nats")),
                          str(checks.get("mongo")))
        console.print(table)
        fresh, duplicates, total = asyncio.run(_contract_round(nats_url))
        console.print(
            f"Contract round: {len(EXAMPLES)} event types published twice each: {fresh} stored, "
            f"{duplicates} dropped as duplicates by Nats-Msg-Id; the events stream holds {total} messages."
        )
    finally:
        if not keep:
            services.down()
            stack.down()
