"""Browser test infrastructure: Debian's chromium driven by Playwright (PyPI, pinned in the dev group),
axe-core (npm) injected into every page, the services and the console as real processes.

Nothing is downloaded by Playwright itself (no ``playwright install``): the browser is Debian's
``chromium`` package, installed with apt-get when missing (the machines run as root), and Playwright
launches it through ``executable_path``. axe-core is installed once with npm into ``.local/node/axe``.
"""

from __future__ import annotations

import asyncio
import fcntl
import json
import os
import shutil
import subprocess
import sys
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from pathlib import Path
from typing import Any

import nats
import pytest
from puskesos_shared.localstack.binaries import local_dir
from puskesos_shared.testing.processes import ServiceProcess, free_port
from puskesos_shared.testing.servers import ServerHandle
from puskesos_shared.topology import Topology
from pymongo import MongoClient

from console.tests.browser import ConsoleStack, Screen

AXE_PACKAGE = "axe-core"
AXE_VERSION = "4.14.1"
SERVICES = ("intake", "referral", "distribution", "notification", "audit")
READY_TIMEOUT = 120.0


def _install_chromium() -> str:
    """``apt-get update`` then ``apt-get install -y chromium`` (Debian's package), under a lock."""
    lock_path = local_dir() / "chromium-install.lock"
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    with lock_path.open("w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if found := shutil.which("chromium"):
            return found
        if shutil.which("apt-get") is None:
            pytest.fail("Debian's chromium is needed for the browser tests and apt-get is not available: install "
                        "the chromium package (or put a `chromium` on PATH)", pytrace=False)
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        for argv in (["apt-get", "update"], ["apt-get", "install", "-y", "--no-install-recommends", "chromium"]):
            result = subprocess.run(argv, capture_output=True, text=True, check=False, env=env)
            if result.returncode != 0:
                pytest.fail(f"installing Debian's chromium failed at `{' '.join(argv)}` (exit {result.returncode}; "
                            f"the browser tests need root and Debian's package archive):\n{result.stderr[-2000:]}",
                            pytrace=False)
    found = shutil.which("chromium")
    if found is None:
        pytest.fail("apt-get installed chromium but no `chromium` is on PATH", pytrace=False)
    return found


@pytest.fixture(scope="session")
def chromium_path() -> str:
    return shutil.which("chromium") or _install_chromium()


def _installed_version(package_dir: Path) -> str | None:
    with suppress(OSError, ValueError):
        found = json.loads((package_dir / "package.json").read_text(encoding="utf-8")).get("version")
        return found if isinstance(found, str) else None
    return None


@pytest.fixture(scope="session")
def axe_source() -> str:
    """axe-core's ``axe.min.js``, installed at the pinned version with npm once into ``.local/node/axe``."""
    prefix = local_dir() / "node" / "axe"
    package_dir = prefix / "node_modules" / AXE_PACKAGE
    if _installed_version(package_dir) != AXE_VERSION:
        npm = shutil.which("npm")
        if npm is None:
            pytest.fail(f"npm is needed to install {AXE_PACKAGE} for the accessibility checks: "
                        "`apt-get install nodejs npm`", pytrace=False)
        prefix.mkdir(parents=True, exist_ok=True)
        with (prefix / ".install.lock").open("w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if _installed_version(package_dir) != AXE_VERSION:
                spec = f"{AXE_PACKAGE}@{AXE_VERSION}"
                result = subprocess.run([npm, "install", "--prefix", str(prefix), "--no-audit", "--no-fund",
                                         "--save-exact", spec], capture_output=True, text=True, check=False)
                if result.returncode != 0 or _installed_version(package_dir) != AXE_VERSION:
                    pytest.fail(f"installing {spec} failed (npm install, exit {result.returncode}):\n"
                                f"{result.stderr[-2000:]}", pytrace=False)
    return (package_dir / "axe.min.js").read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def console_stack(nats_server: ServerHandle, mongo_server: ServerHandle,
                  tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleStack]:
    """The five services on a namespace of their own (distribution paying through the simulated bank, a process
    too), and the console calling them, as processes."""
    namespace = f"t{uuid.uuid4().hex[:12]}"
    log_dir = tmp_path_factory.mktemp("console-logs")
    # the simulated bank, so that a round can pay and close (accounts starting 0000 are declined)
    bank_port = free_port()
    gateway = ServiceProcess(argv=[sys.executable, "-m", "puskesos_distribution.gateway_sim", "--port", str(bank_port),
                                   "--ledger", str(log_dir / "bank-ledger.jsonl")],
                             port=bank_port, log_path=log_dir / "gateway.log", name="gateway")
    extra = {"distribution": {"PUSKESOS_GATEWAY_URL": gateway.base_url}}
    services = {name: ServiceProcess.for_service(name, nats_url=nats_server.url, mongo_url=mongo_server.url,
                                                 namespace=namespace, db_prefix=namespace, log_dir=log_dir,
                                                 extra_env=extra.get(name))
                for name in SERVICES}
    env = {f"PUSKESOS_CONSOLE_{name.upper()}_URL": process.base_url for name, process in services.items()}
    console = ServiceProcess("puskesos_console", log_path=log_dir / "console.log", name="console",
                             env={**env, "PUSKESOS_CONSOLE_SECRET": "console-test-secret-" + "x" * 24})
    try:
        gateway.start()
        gateway.wait_ready(READY_TIMEOUT, path="/health")
        for process in [*services.values(), console]:
            process.start()
        for process in services.values():
            process.wait_ready(READY_TIMEOUT)
        console.wait_ready(READY_TIMEOUT)
        yield ConsoleStack(console, services)
    finally:
        for process in [console, *services.values(), gateway]:
            process.stop()
        # a thread of its own: the session's event loop may be running here
        with ThreadPoolExecutor(max_workers=1) as pool:
            pool.submit(asyncio.run, _drop_streams(nats_server.url, namespace)).result()
        client: MongoClient[dict[str, Any]] = MongoClient(mongo_server.url)
        try:
            for name in client.list_database_names():
                if name.startswith(namespace):
                    client.drop_database(name)
        finally:
            client.close()


async def _drop_streams(nats_url: str, namespace: str) -> None:
    nc = await nats.connect(nats_url, name="pytest-cleanup")
    try:
        for config in Topology(namespace=namespace).stream_configs():
            with suppress(Exception):
                await nc.jetstream().delete_stream(config.name or "")
    finally:
        await nc.close()


@pytest.fixture(scope="module")
def browser(chromium_path: str) -> Iterator[Any]:
    """Per module: Playwright's sync API runs an event loop on the main thread while it is started, and a
    later test of the session calling ``asyncio.run`` would fail under it."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        # root cannot use Chromium's sandbox; the pages are our own, served locally
        launched = playwright.chromium.launch(executable_path=chromium_path, headless=True, args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def tab(browser: Any, console_stack: ConsoleStack, axe_source: str) -> Iterator[Any]:
    contexts: list[Any] = []

    def open_tab() -> Screen:
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="id-ID",
                                      timezone_id="Asia/Jakarta")
        contexts.append(context)
        return Screen(context.new_page(), console_stack.url, axe_source)

    yield open_tab
    for context in contexts:
        context.close()
