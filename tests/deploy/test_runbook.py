"""docs/runbook.md cites real commands: each non-cluster command it shows exists, with every flag.

Checked: ``python -m puskesos_…`` (wherever it appears: after ``ops``, ``kubectl exec --``, ``uv
run``), ``uv run puskesos …``, ``python3 deploy/….py …`` and the NATS CLI (``nats …``). Each is
run with ``--help`` at the cited sub-command and each ``--flag`` on the line must appear in that
help. Commands that need a cluster or a Docker engine (``docker``, ``kubectl``, ``curl``) are not
run. A command that does not exist fails its case with the runbook line in the message.

Run it late, once every CLI it cites is written: ``pytest -m runbook tests/deploy``. The NATS CLI
comes from the Go module proxy (``go install github.com/nats-io/natscli/nats@v0.5.1``); set
``PUSKESOS_NATS_CLI`` to its path when it is not on PATH or in ``.local/bin``.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import typer
from puskesos_shared.localstack import StackError
from puskesos_shared.localstack.binaries import ensure_nats_cli
from typer.testing import CliRunner

from tests.deploy.support import ROOT, RUNBOOK

pytestmark = [pytest.mark.runbook, pytest.mark.e2e, pytest.mark.timeout(900)]  # a first NATS CLI build

_OPERATORS = {"|", "||", "&&", ";", ">", ">>", "<", "&"}
_ANSI = re.compile(r"\x1b\[[0-9;]*[A-Za-z]")


@dataclass
class Cited:
    program: str  # "python-module", "puskesos", "script", "nats"
    target: str  # module, script path or ""
    words: tuple[str, ...]  # sub-command path (and positional arguments) before the first flag
    flags: set[str] = field(default_factory=set)
    lines: list[str] = field(default_factory=list)

    @property
    def key(self) -> str:
        return " ".join([self.program, self.target, *self.words])


def shell_lines(markdown: str) -> list[str]:
    lines: list[str] = []
    for block in re.findall(r"```sh\n(.*?)```", markdown, re.S):
        lines += [line.strip() for line in block.replace("\\\n", " ").splitlines() if line.strip()]
    return lines


def segments(line: str) -> list[list[str]]:
    lexer = shlex.shlex(line, posix=True, punctuation_chars=True)
    lexer.whitespace_split = True
    lexer.commenters = "#"
    out: list[list[str]] = [[]]
    for token in lexer:
        if token in _OPERATORS:
            out.append([])
        else:
            out[-1].append(token)
    return [s for s in out if s]


def cited(tokens: list[str]) -> Cited | None:
    rest: list[str]
    for i, token in enumerate(tokens):
        if token in ("python", "python3") and tokens[i + 1:i + 2] == ["-m"] and i + 2 < len(tokens):
            module = tokens[i + 2]
            if module.startswith("puskesos_"):
                program, target, rest = "python-module", module, tokens[i + 3:]
                break
        if token in ("python", "python3") and i + 1 < len(tokens) and tokens[i + 1].startswith("deploy/"):
            program, target, rest = "script", tokens[i + 1], tokens[i + 2:]
            break
        if token == "puskesos" and tokens[max(0, i - 2):i] == ["uv", "run"]:
            program, target, rest = "puskesos", "", tokens[i + 1:]
            break
        if token == "nats" and i == 0:
            program, target, rest = "nats", "", tokens[1:]
            break
    else:
        return None
    words: list[str] = []
    for token in rest:
        if token.startswith("-"):
            break
        words.append(token)
    flags = {t.split("=", 1)[0] for t in rest if t.startswith("--")}
    return Cited(program, target, tuple(words), flags)


def runbook_commands() -> list[Cited]:
    found: dict[str, Cited] = {}
    for line in shell_lines(RUNBOOK.read_text()):
        if line.startswith("alias "):
            continue
        for tokens in segments(line):
            command = cited(tokens)
            if command is None:
                continue
            entry = found.setdefault(command.key, command)
            entry.flags |= command.flags
            entry.lines.append(line)
    return list(found.values())


def nats_cli() -> str:
    """Found, or built once with Go into .local/bin (a few minutes the first time)."""
    try:
        return str(ensure_nats_cli())
    except StackError as exc:
        pytest.fail(f"the runbook cites the NATS CLI, which is not installed and could not be built: {exc}")


def argv(command: Cited) -> list[str]:
    if command.program == "python-module":
        return [sys.executable, "-m", command.target, *command.words, "--help"]
    if command.program == "puskesos":
        return [sys.executable, "-m", "puskesos_cli.main", *command.words, "--help"]
    if command.program == "script":
        return [sys.executable, str(ROOT / command.target), *command.words, "--help"]
    return [nats_cli(), *command.words, "--help"]


COMMANDS = runbook_commands()


def test_the_runbook_cites_the_operations_it_must() -> None:
    keys = {c.key for c in COMMANDS}
    for needed in ("round open", "round import", "round status", "round close", "puskesos_audit.cli verify",
                   "gen_secrets.py env", "stream subjects PUSKESOS_DLQ"):
        assert any(needed in k for k in keys), f"the runbook no longer shows `{needed}`"


def typer_app(command: Cited) -> Any | None:
    """The typer application behind a ``python -m`` / ``puskesos`` command, to ask it in-process."""
    module = {"python-module": command.target, "puskesos": "puskesos_cli.main"}.get(command.program)
    if module is None:
        return None
    try:
        app = getattr(importlib.import_module(module), "app", None)
    except ModuleNotFoundError:
        return None  # the subprocess then reports the missing module in the runbook's terms
    return app if isinstance(app, typer.Typer) else None


def help_of(command: Cited, cwd: Path) -> tuple[int, str]:
    app = typer_app(command)
    if app is not None:
        result = CliRunner().invoke(app, [*command.words, "--help"], env={"COLUMNS": "250", "NO_COLOR": "1"})
        return result.exit_code, result.output
    env = {**os.environ, "COLUMNS": "250", "NO_COLOR": "1", "TERM": "dumb"}
    proc = subprocess.run(argv(command), capture_output=True, text=True, timeout=120, cwd=cwd, env=env, check=False)
    return proc.returncode, proc.stdout + proc.stderr


@pytest.mark.parametrize("command", COMMANDS, ids=[c.key for c in COMMANDS])
def test_cited_command_exists_with_its_flags(command: Cited, tmp_path: Path) -> None:
    if command.program == "python-module" and typer_app(command) is not None:
        spec = importlib.util.find_spec(command.target)
        assert spec is not None and spec.origin is not None
        runs = 'if __name__ == "__main__"' in Path(spec.origin).read_text()
        assert runs, f"`python -m {command.target}` runs nothing"
    code, output = help_of(command, tmp_path)
    output = _ANSI.sub("", output)
    where = f"docs/runbook.md: {command.lines[0]}"
    assert code == 0, f"`{command.key} --help` failed (exit {code}); {where}\n{output[-2000:]}"
    missing = sorted(flag for flag in command.flags if not re.search(rf"{re.escape(flag)}\b", output))
    assert missing == [], f"flags not offered by `{command.key}`: {missing}; {where}"
