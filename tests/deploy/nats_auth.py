"""A real nats-server running deploy/nats/accounts.conf (one node, JetStream, monitoring port)."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path

import httpx
import nats
from nats.aio.client import Client as NatsClient
from puskesos_shared.localstack import ManagedProcess, free_port

from tests.deploy.support import NATS_ACCOUNTS as ACCOUNTS
from tests.deploy.support import nats_server


@dataclass
class AuthServer:
    url: str
    monitor_url: str
    passwords: dict[str, str]
    process: ManagedProcess

    def password(self, user: str) -> str:
        return self.passwords[f"NATS_{user.upper().replace('-', '_')}_PASSWORD"]

    @asynccontextmanager
    async def connect(self, user: str, password: str | None = None, *,
                      inbox_prefix: str | None = None) -> AsyncIterator[tuple[NatsClient, list[str]]]:
        """A client logged in as ``user``; the list collects the server's asynchronous errors. An external
        subscriber connects with its ``inbox_prefix`` (its permissions allow no other inbox)."""
        errors: list[str] = []

        async def on_error(exc: Exception) -> None:
            errors.append(str(exc))

        nc = await nats.connect(self.url, user=user, password=password or self.password(user), name=f"test-{user}",
                                error_cb=on_error, max_reconnect_attempts=0, connect_timeout=5,
                                allow_reconnect=False, **({"inbox_prefix": inbox_prefix} if inbox_prefix else {}))
        try:
            yield nc, errors
        finally:
            with suppress(Exception):
                await nc.close()


@contextmanager
def auth_server(workdir: Path, passwords: dict[str, str], accounts: Path = ACCOUNTS) -> Iterator[AuthServer]:
    """``accounts``: the committed accounts file, or one rendered for a test (``render_accounts.render``)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if accounts != workdir / "accounts.conf":
        shutil.copy(accounts, workdir / "accounts.conf")
    conf = workdir / "server.conf"
    conf.write_text("include ./accounts.conf\n")
    port, monitor = free_port(), free_port()
    log = workdir / "nats.log"
    env = {**os.environ, **passwords}
    argv = [str(nats_server()), "-c", str(conf), "-a", "127.0.0.1", "-p", str(port), "-m", str(monitor),
            "-js", "-sd", str(workdir / "js"), "--server_name", "deploy-test"]
    with log.open("ab") as out:
        popen = subprocess.Popen(argv, env=env, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True)
    proc = ManagedProcess("nats-auth", popen.pid, port, f"nats://127.0.0.1:{port}", log)
    monitor_url = f"http://127.0.0.1:{monitor}"
    deadline = time.monotonic() + 20
    while True:
        assert proc.alive(), f"nats-server exited: {log.read_text()[-2000:]}"
        with suppress(httpx.HTTPError):
            if httpx.get(f"{monitor_url}/healthz?js-enabled-only=true", timeout=1).status_code == 200:
                break
        assert time.monotonic() < deadline, f"nats-server not ready: {log.read_text()[-2000:]}"
        time.sleep(0.1)
    try:
        yield AuthServer(proc.url, monitor_url, passwords, proc)
    finally:
        proc.stop()
