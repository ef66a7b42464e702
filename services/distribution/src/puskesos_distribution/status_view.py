"""Rendering a round's status (live, with rate and ETA) and its closing report for operators."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any

from lokal import format_rupiah
from rich.console import Console, Group
from rich.live import Live
from rich.table import Table

Fetch = Callable[[], Awaitable[dict[str, Any]]]


def _decided(status: dict[str, Any]) -> tuple[int, int]:
    live = status["live"]
    rejected = sum(int(v) for k, v in live.items() if k.startswith("rejected_"))
    return int(live.get("allocated", 0)) + rejected, int(live.get("disbursed", 0)) + int(live.get("failed", 0))


def quota_choice(config: dict[str, Any]) -> str:
    """The round's village quotas and what it does with the other villages, in words."""
    quotas = config.get("village_quotas") or []
    if not quotas:
        return "none: every village shares the budget"
    others = config.get("villages_without_quota") or "excluded"
    said = ("unlimited (they share the budget)" if others == "unlimited"
            else "excluded (rejected as " + ("no_village_quota)" if config.get("villages_without_quota")
                                             else "not_eligible, rule blt-eligibility@1)"))
    return f"{len(quotas):,} villages with a quota; every other village {said}"


def status_table(status: dict[str, Any], rates: tuple[float, float] | None) -> Table:
    live, config, pending = status["live"], status["config"], status["pending"]
    table = Table(title=f"{status['key']} ({config['program']}, {config['funding_source']}): {status['status']}",
                  show_header=False, title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    budget_slots = config["budget_cap"] // config["amount_per_family"]
    table.add_row("village quotas", quota_choice(config))
    table.add_row("candidates imported", f"{status['candidates']:,}")
    table.add_row("allocated", f"{live.get('allocated', 0):,} of {budget_slots:,} the budget covers")
    rejected = {k.removeprefix("rejected_"): v for k, v in live.items() if k.startswith("rejected_")}
    table.add_row("rejected", f"{sum(rejected.values()):,}" + (
        " (" + ", ".join(f"{k} {v:,}" for k, v in sorted(rejected.items())) + ")" if rejected else ""))
    table.add_row("disbursed", f"{live.get('disbursed', 0):,} ({format_rupiah(int(live.get('disbursed_amount', 0)))})")
    table.add_row("failed (final)", f"{live.get('failed', 0):,} ({live.get('failed_attempts', 0):,} retried attempts)")
    table.add_row("queued", f"{pending['allocate']:,} to allocate, {pending['disburse']:,} to disburse")
    replicas = status.get("replicas")
    table.add_row("replicas running", "unknown (no answer to the presence request)" if replicas is None
                  else f"{replicas} ({', '.join(status.get('instances') or [])})")
    lag = status["consumers"]
    table.add_row("consumer lag", ", ".join(
        f"{kind}: {c['pending']:,} waiting, {c['ack_pending']:,} in progress, {c['redelivered']:,} redelivered"
        for kind, c in lag.items()))
    if rates is not None:
        decide_rate, pay_rate = rates
        table.add_row("rate", f"{decide_rate:,.0f} decisions/s, {pay_rate:,.0f} payouts/s")
        todo_decide, todo_pay = pending["allocate"], pending["disburse"] + pending["allocate"]
        eta = max(todo_decide / decide_rate if decide_rate else 0, todo_pay / pay_rate if pay_rate else 0)
        if todo_pay and not (decide_rate or pay_rate):
            table.add_row("ETA", "stalled (no progress since the last refresh)")
        else:
            table.add_row("ETA", f"{eta:,.0f} s" if todo_pay else "done")
    if status.get("exact"):
        table.add_row("records (exact)", ", ".join(f"{k} {v:,}" for k, v in status["exact"].items()))
    table.caption = "live counters (a killed replica may lose its last second); the totals at close are exact"
    return table


async def watch_status(fetch: Fetch, *, watch: bool, interval: float, console: Console) -> None:
    status = await fetch()
    if not watch:
        console.print(status_table(status, None))
        return
    previous = (time.monotonic(), *_decided(status))
    rates: tuple[float, float] | None = None
    with Live(status_table(status, rates), console=console, refresh_per_second=4) as live:
        while True:
            await asyncio.sleep(interval)  # a refresh period, not a wait for correctness
            status = await fetch()
            now, decided, paid = time.monotonic(), *_decided(status)
            elapsed = max(now - previous[0], 1e-6)
            rates = ((decided - previous[1]) / elapsed, (paid - previous[2]) / elapsed)
            previous = (now, decided, paid)
            live.update(status_table(status, rates))
            if status["status"] == "closed" or not any(status["pending"].values()):
                break


def render_close(result: dict[str, Any], console: Console) -> None:
    totals, rec = result["totals"], result["reconciliation"]
    table = Table(title=f"round {result['round_id']} closed by {result['closed_by']}", show_header=False,
                  title_justify="left")
    table.add_column(style="bold")
    table.add_column(justify="right")
    table.add_row("allocated", f"{totals['allocated_count']:,} ({format_rupiah(totals['allocated_amount'])})")
    table.add_row("rejected", f"{totals['rejected_count']:,} " + ", ".join(
        f"{k} {v:,}" for k, v in sorted(totals["rejected_by_reason"].items())))
    table.add_row("disbursed", f"{totals['disbursed_count']:,} ({format_rupiah(totals['disbursed_amount'])})")
    table.add_row("failed", f"{totals['failed_count']:,}")
    left, cap = format_rupiah(totals["budget_remaining"]), format_rupiah(totals["budget_cap"])
    table.add_row("budget left", f"{left} of {cap}")
    table.add_row("gateway executed", f"{rec['gateway_executed_count']:,} "
                  f"({format_rupiah(rec['gateway_executed_amount'])})")
    table.add_row("reconciliation", "[green]matched exactly[/green]" if rec["matched"] else
                  f"[red]{len(rec['mismatches'])} mismatches[/red]")
    parts: list[Any] = [table]
    if not rec["matched"]:
        parts += [f"  {m}" for m in rec["mismatches"][:50]]
    console.print(Group(*parts))
