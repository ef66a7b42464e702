"""The auditor's tools, run as the auditor runs them: ``python -m puskesos_audit.cli verify`` and ``trace``."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from dataclasses import dataclass
from typing import Any

from .env import ScenarioEnv

CLI_TIMEOUT = 300.0


@dataclass(frozen=True)
class CliResult:
    returncode: int
    stdout: str
    stderr: str


async def audit_cli(env: ScenarioEnv, *args: str) -> CliResult:
    """Runs the audit CLI against the scenario's audit database (working directory: the scratch dir,
    so that no developer's ``.local/stack/stack.env`` is read instead)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("PUSKESOS_")}
    env.work_dir.mkdir(parents=True, exist_ok=True)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "puskesos_audit.cli", *args, cwd=env.work_dir,
        env={**base, **env.audit_cli_env(), "COLUMNS": "160", "NO_COLOR": "1", "TERM": "dumb"},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), timeout=CLI_TIMEOUT)
    return CliResult(int(proc.returncode or 0), out.decode(errors="replace"), err.decode(errors="replace"))


async def verify(env: ScenarioEnv) -> dict[str, Any]:
    result = await audit_cli(env, "verify", "--json")
    try:
        report: dict[str, Any] = json.loads(result.stdout)
    except ValueError:
        return {"ok": False, "error": (result.stderr or result.stdout)[-2000:], "returncode": result.returncode}
    report["returncode"] = result.returncode
    return report


def verify_summary(report: dict[str, Any]) -> str:
    if "error" in report:
        return f"audit verify could not run (exit {report.get('returncode')}):\n{report['error']}"
    lines = [f"result:   {'intact' if report.get('ok') else 'TAMPERED OR DAMAGED'} (exit {report.get('returncode')})",
             f"records:  {report.get('records'):,} in {report.get('chunks'):,} chunks "
             f"(seq {report.get('first_seq')}..{report.get('last_seq')})",
             f"head:     {report.get('head_hash')}",
             f"speed:    {float(report.get('records_per_second') or 0):,.0f} records/s"]
    for finding in report.get("findings") or ():
        lines.append(f"finding:  {finding.get('kind')} seq {finding.get('seq')}: {finding.get('detail')}")
    return "\n".join(lines)


async def trace(env: ScenarioEnv, kind: str, value: str) -> tuple[str, str]:
    """(tree text, Mermaid diagram) of one trace; personal data stays masked."""
    tree, diagram = await asyncio.gather(audit_cli(env, "trace", kind, value, "--format", "tree"),
                                         audit_cli(env, "trace", kind, value, "--format", "mermaid"))
    if tree.returncode != 0:
        return f"audit trace {kind} failed (exit {tree.returncode}):\n{(tree.stderr or tree.stdout)[-2000:]}", ""
    return tree.stdout, diagram.stdout if diagram.returncode == 0 else ""
