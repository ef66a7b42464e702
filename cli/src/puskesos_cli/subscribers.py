"""``puskesos subscribers``: external systems that receive events (local stack).

``add`` declares a subscriber in the stack's ``subscribers.json``, gives it a NATS user (or a webhook signing
secret), writes its credentials (0600) under ``subscribers/``, reloads nats-server with the new users and
tells the notification service, which starts relaying its events (from ``--since`` / ``--from-seq``, or new
ones). ``revoke`` undoes all of that and purges its feed; ``replay`` sends its events again from a point in
time; ``list`` shows each feed's state. Only local configuration is edited, never a checked-in file:
production declares its subscribers in ``deploy/nats/subscribers.json`` (see deploy/README.md).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import secrets
from pathlib import Path
from typing import Annotated, Any

import nats
import nats.errors
import typer
from puskesos_notification.feeds.supervisor import parse_since
from puskesos_shared.commands import send_command
from puskesos_shared.contracts.pseudonymous import PiiLevel
from puskesos_shared.settings import ServiceSettings
from puskesos_shared.subscribers import (
    DeliveryKind,
    Subscriber,
    SubscriberBook,
    SubscriberSecrets,
    credentials,
)
from pydantic import ValidationError
from rich.console import Console
from rich.table import Table

from . import state

app = typer.Typer(help="External subscribers (hospitals, banks, ministry systems): who receives which events.",
                  no_args_is_help=True)
console = Console()

#: The option of ``subscribers add`` that sets each field (so errors name the option).
ADD_OPTIONS = {"name": "NAME", "events": "--events", "pii": "--pii", "webhook_url": "--webhook",
               "referral_target": "--referral-target", "description": "--description"}


def book() -> SubscriberBook:
    return SubscriberBook(state.subscribers_file())


def secrets_file() -> SubscriberSecrets:
    return SubscriberSecrets(state.subscriber_secrets_file())


def credentials_path(name: str) -> Path:
    return state.stack_dir() / "subscribers" / f"{name}.json"


def _write_private(path: Path, data: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as out:
        json.dump(data, out, indent=2)
    path.chmod(0o600)


def _settings() -> ServiceSettings:
    return ServiceSettings()


async def _request(name: str, body: dict[str, Any], *, timeout: float = 10.0) -> dict[str, Any] | None:
    """Sends a notification command as the stack's admin; None when the service is not running."""
    settings = _settings()
    nc = await nats.connect(settings.nats_servers, user=settings.nats_user, password=settings.nats_password,
                            name="puskesos-subscribers-cli", max_reconnect_attempts=2, connect_timeout=5)
    try:
        reply = await send_command(nc, settings.topology().command_subject("notification", name), body,
                                   timeout=timeout)
    except nats.errors.NoRespondersError:
        return None
    finally:
        await nc.drain()
    if not reply.ok:
        error = reply.error or {}
        console.print(f"[red]{error.get('code')}[/red]: {error.get('message')}")
        raise typer.Exit(1)
    return reply.result or {}


def _tell_service(what: str, later: str) -> None:
    try:
        result = asyncio.run(_request("subscribers_changed", {}))
    except (OSError, nats.errors.Error):
        result = None
    if result is None:
        console.print(f"[yellow]the notification service is not running[/yellow]: {later} when it starts "
                      "(`puskesos services up`)")
    else:
        console.print(f"the notification service {what} (feeds running: {', '.join(result['running']) or 'none'})")


def reload_nats() -> bool:
    """Renders the stack's NATS users again and has nats-server reload them; False if NATS is not running."""
    from . import stack  # the stack renders the users (services, admin, subscribers)

    return stack.reload_nats_users()


def _validated(**fields: Any) -> Subscriber:
    try:
        return Subscriber.model_validate(fields)
    except ValidationError as exc:
        for error in exc.errors():
            field = str(error["loc"][0]) if error["loc"] else ""
            console.print(f"[red]{ADD_OPTIONS.get(field, field or 'subscriber')}[/red]: {error['msg']}")
        raise typer.Exit(2) from None


@app.command("add")
def add(
    name: Annotated[str, typer.Argument(help="Lower-case letters, digits and '-' (rsud-soebandi)")],
    events: Annotated[list[str], typer.Option(
        "--events", help="Events it may read, relative to puskesos.events.: referral.>, "
                         "intake.complaint_filed.v1, '>' for all; repeat or separate with commas")],
    pii: Annotated[PiiLevel, typer.Option(help="Personal data it may receive (UU PDP): none, pseudonymous "
                                               "(keyed pseudonyms for NIK/KK/phone) or full")] = PiiLevel.NONE,
    webhook: Annotated[str | None, typer.Option(help="Deliver as signed CloudEvents POSTs to this https URL "
                                                     "(no NATS user)")] = None,
    referral_target: Annotated[str | None, typer.Option(help="It may answer the referrals issued to this "
                                                             "target code (e.g. RSD-SOEBANDI)")] = None,
    description: Annotated[str, typer.Option(help="Who it is, for the list")] = "",
    since: Annotated[str | None, typer.Option(help="Also send the events stored since this date or time "
                                                   "(2026-11-01 is midnight WIB)")] = None,
    from_seq: Annotated[int | None, typer.Option(min=1, help="Also send the events from this stream sequence")] = None,
) -> None:
    """Declare a subscriber: its NATS user or webhook secret, its credentials file, its feed."""
    patterns = [p.strip() for item in events for p in item.split(",") if p.strip()]
    subscriber = _validated(name=name, events=patterns, pii=pii, webhook_url=webhook, referral_target=referral_target,
                            description=description, added_at=dt.datetime.now(dt.UTC).replace(microsecond=0))
    start = _start(since, from_seq)
    declared = book().load()
    if any(s.name == name for s in declared):
        console.print(f"[red]{name}[/red] is already a subscriber: `puskesos subscribers revoke {name}` first")
        raise typer.Exit(1)
    secret = secrets.token_urlsafe(32)
    stored = secrets_file().load()
    stored[name] = {"nats_password": secret} if subscriber.delivery is DeliveryKind.NATS else {"webhook_secret": secret}
    secrets_file().save(stored)
    book().save([*declared, subscriber])
    settings = _settings()
    creds = credentials(subscriber, settings.topology(), nats_url=settings.nats_url,
                        password=stored[name].get("nats_password"), webhook_secret=stored[name].get("webhook_secret"))
    _write_private(credentials_path(name), creds)
    console.print(f"[green]added[/green] {name}: {subscriber.delivery.value}, pii {subscriber.pii.value}, "
                  f"events {', '.join(subscriber.events)}")
    console.print(f"credentials (0600): {credentials_path(name)}")
    if subscriber.delivery is DeliveryKind.NATS:
        reloaded = reload_nats()
        console.print("nats-server reloaded with its user" if reloaded
                      else "[yellow]NATS is not running[/yellow]: its user exists once `puskesos stack up` runs")
    _tell_service("relays its events", "its feed starts")
    if start is not None:
        _replay(name, start)


def _start(since: str | None, from_seq: int | None) -> dict[str, Any] | None:
    if since is not None and from_seq is not None:
        console.print("[red]--since[/red]: give --since or --from-seq, not both")
        raise typer.Exit(2)
    if since is not None:
        try:
            return {"since": parse_since(since).isoformat()}
        except ValueError as exc:
            console.print(f"[red]--since[/red]: {exc}")
            raise typer.Exit(2) from None
    return {"from_seq": from_seq} if from_seq is not None else None


def _replay(name: str, start: dict[str, Any]) -> None:
    try:
        result = asyncio.run(_request("feed_replay", {"subscriber": name, **start}))
    except (OSError, nats.errors.Error) as exc:
        console.print(f"[red]cannot reach NATS[/red]: {type(exc).__name__}")
        raise typer.Exit(1) from None
    if result is None:
        console.print("[red]the notification service is not running[/red]: start it (`puskesos services up`), "
                      f"then `puskesos subscribers replay {name}`")
        raise typer.Exit(1)
    console.print(f"replaying to {name} from {result['start']} (generation {result['generation']}); "
                  "repeats carry the same event id")


@app.command("replay")
def replay(
    name: Annotated[str, typer.Argument(help="The subscriber")],
    since: Annotated[str | None, typer.Option(help="From this date or time (2026-11-01 is midnight WIB)")] = None,
    from_seq: Annotated[int | None, typer.Option(min=1, help="From this events-stream sequence")] = None,
) -> None:
    """Send a subscriber its events again from a point in time (default: from the first event)."""
    if book().get(name) is None:
        console.print(f"[red]{name}[/red] is not a subscriber (`puskesos subscribers list`)")
        raise typer.Exit(1)
    _replay(name, _start(since, from_seq) or {"from_seq": 1})


@app.command("revoke")
def revoke(name: Annotated[str, typer.Argument(help="The subscriber")]) -> None:
    """Remove a subscriber: its NATS user, credentials, feed and consumer."""
    declared = book().load()
    subscriber = next((s for s in declared if s.name == name), None)
    if subscriber is None:
        console.print(f"[red]{name}[/red] is not a subscriber (`puskesos subscribers list`)")
        raise typer.Exit(1)
    book().save([s for s in declared if s.name != name])
    stored = secrets_file().load()
    stored.pop(name, None)
    secrets_file().save(stored)
    credentials_path(name).unlink(missing_ok=True)
    console.print(f"[green]revoked[/green] {name}: declaration, secret and credentials removed")
    if subscriber.delivery is DeliveryKind.NATS and reload_nats():
        console.print("nats-server reloaded without its user (its connections are closed)")
    _tell_service("stopped its feed and purged it", "its feed is stopped and purged")


@app.command("list")
def list_command() -> None:
    """The declared subscribers and the state of their feeds."""
    declared = book().load()
    if not declared:
        console.print("no subscribers (`puskesos subscribers add NAME --events ...`)")
        return
    try:
        result = asyncio.run(_request("feed_status", {}))
    except (OSError, nats.errors.Error):
        result = None
    feeds = {row["subscriber"]: row for row in (result or {}).get("feeds", [])}
    table = Table("subscriber", "delivery", "pii", "events", "feed from", "relayed", "pending", "dead letters",
                  "webhook deliveries", title="External subscribers")
    for s in declared:
        row = feeds.get(s.name, {})
        deliveries = ", ".join(f"{k} {v}" for k, v in sorted((row.get("deliveries") or {}).items()))
        table.add_row(s.name, s.delivery.value + (f" ({s.referral_target})" if s.referral_target else ""),
                      s.pii.value, ", ".join(s.events), str(row.get("start") or "-"), str(row.get("relayed", "-")),
                      str(row.get("pending", "-")), str(row.get("dead_lettered", "-")), deliveries or "-")
    console.print(table)
    if result is None:
        console.print("[yellow]the notification service is not running: feed state unknown[/yellow]")
