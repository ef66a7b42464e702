"""pytest plugin (registered through the ``pytest11`` entry point): real servers for tests.

Session fixtures start one nats-server and one Mongo-compatible server (see ``servers``); the opt-in
``nats_cluster`` fixture starts a 3-node NATS cluster of the test's own (``servers.NatsCluster``).
Every test gets its own namespace (subjects and streams) and its own database names, so
tests do not see each other's messages or documents; both are removed afterwards.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import suppress
from pathlib import Path

import nats
import pytest
import pytest_asyncio
from nats.aio.client import Client as NatsClient
from nats.js import JetStreamContext
from pymongo import AsyncMongoClient

from ..messaging.streams import ensure_streams
from ..settings import nats_servers
from ..topology import Topology
from .servers import NatsCluster, ServerHandle, resolve_mongo, resolve_nats


@pytest.fixture(scope="session")
def servers_workdir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("servers")


@pytest.fixture(scope="session")
def nats_server(servers_workdir: Path) -> Iterator[ServerHandle]:
    handle = resolve_nats(servers_workdir)
    yield handle
    handle.close()


@pytest.fixture(scope="session")
def mongo_server(servers_workdir: Path) -> Iterator[ServerHandle]:
    handle = resolve_mongo(servers_workdir)
    yield handle
    handle.close()


@pytest.fixture
def nats_cluster(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NatsCluster]:
    """A NATS cluster of this test's own (3 nodes; ``@pytest.mark.parametrize("nats_cluster", [5],
    indirect=True)`` for another size), production's settings (``sync_interval: always``); stopped afterwards."""
    cluster = NatsCluster.start(tmp_path / "nats-cluster", size=getattr(request, "param", 3))
    yield cluster
    cluster.close()


@pytest.fixture
def nats_url(nats_server: ServerHandle) -> str:
    return nats_server.url


@pytest.fixture
def mongo_url(mongo_server: ServerHandle) -> str:
    return mongo_server.url


@pytest.fixture
def namespace() -> str:
    """A namespace of its own for this test's subjects and streams."""
    return f"t{uuid.uuid4().hex[:12]}"


@pytest.fixture
def topology(namespace: str) -> Topology:
    return Topology(namespace=namespace)


@pytest.fixture
def db_prefix(namespace: str) -> str:
    """Prefix of this test's database names; every database starting with it is dropped afterwards."""
    return namespace


@pytest_asyncio.fixture
async def nats_client(nats_url: str) -> AsyncIterator[NatsClient]:
    nc = await nats.connect(nats_servers(nats_url), name="pytest")
    yield nc
    with suppress(Exception):
        await nc.drain()


@pytest_asyncio.fixture
async def jetstream(nats_client: NatsClient, topology: Topology) -> AsyncIterator[JetStreamContext]:
    """JetStream with this test's streams created; they are deleted after the test."""
    js = nats_client.jetstream()
    await ensure_streams(js, topology)
    yield js
    for config in topology.stream_configs():
        with suppress(Exception):
            await js.delete_stream(config.name or "")


@pytest_asyncio.fixture
async def mongo_client(mongo_url: str, db_prefix: str) -> AsyncIterator[AsyncMongoClient[dict[str, object]]]:
    client: AsyncMongoClient[dict[str, object]] = AsyncMongoClient(
        mongo_url, tz_aware=True, uuidRepresentation="standard", serverSelectionTimeoutMS=5000
    )
    yield client
    with suppress(Exception):
        for name in await client.list_database_names():
            if name.startswith(db_prefix):
                await client.drop_database(name)
    await client.close()


# -- personal data in logs ----------------------------------------------------------------------
CAPTURED_LOG_NAME = "captured-logs.jsonl"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "scan_logs: runs after every other test (scans the logs the whole run produced)"
    )


def pytest_collection_modifyitems(session: pytest.Session, config: pytest.Config, items: list[pytest.Item]) -> None:
    last = [item for item in items if item.get_closest_marker("scan_logs")]
    if last:
        items[:] = [item for item in items if not item.get_closest_marker("scan_logs")] + last


@pytest.fixture(scope="session", autouse=True)
def _capture_every_log_line(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """Every log line of the in-process code, formatted and masked as in production, into one file."""
    import logging

    from ..logging import configure_logging

    path = tmp_path_factory.getbasetemp() / CAPTURED_LOG_NAME
    handler = logging.FileHandler(path, encoding="utf-8")
    handler.puskesos_capture = True  # type: ignore[attr-defined]
    logging.getLogger().addHandler(handler)
    configure_logging("info", json=True, force=True)
    yield path
    logging.getLogger().removeHandler(handler)
    handler.close()
