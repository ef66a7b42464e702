"""Fixtures of the storage conformance suite, and its report at the end of the run.

The suite uses the project's ``mongo_url`` fixture (``puskesos_shared.testing.plugin``): with
``PUSKESOS_MONGO_URL`` pointing at a MongoDB, the same tests qualify it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import suppress

import pytest
from puskesos_shared.testing.servers import ServerHandle
from pymongo import MongoClient
from pymongo.database import Database

from tests.storage.support import KNOWN_DIFFERENCES, Document, Engine, detect_engine, new_client, observed_keys

_engine: list[Engine] = []  # the engine this run talked to, for the terminal summary


@pytest.fixture(scope="session", autouse=True)
def engine(mongo_server: ServerHandle) -> Engine:
    client = new_client(mongo_server.url)
    try:
        found = detect_engine(client)
    finally:
        client.close()
    if not _engine:
        _engine.append(found)
    return found


@pytest.fixture
def client(mongo_url: str) -> Iterator[MongoClient[Document]]:
    made = new_client(mongo_url, pool=16)
    yield made
    made.close()


@pytest.fixture
def db(client: MongoClient[Document], db_prefix: str) -> Iterator[Database[Document]]:
    """A database of this test's own, dropped afterwards."""
    database = client[f"{db_prefix}_storage"]
    yield database
    with suppress(Exception):
        client.drop_database(database.name)


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, exitstatus: int, config: pytest.Config) -> None:
    if not _engine:
        return  # no storage test ran
    engine = _engine[0]
    seen = observed_keys()
    write = terminalreporter.write_line
    terminalreporter.section("storage conformance: known differences from MongoDB")
    write(f"engine: {engine.describe()}")
    if engine.kind == "mongodb":
        write("MongoDB itself: the suite's assertions are MongoDB's behaviour; no known differences.")
        return
    for difference in KNOWN_DIFFERENCES:
        if difference.fixed_by_launcher:
            mark = "fixed by our launcher; MongoDB's behaviour verified" if difference.key in seen else \
                "fixed by our launcher; not exercised"
        else:
            mark = "observed in this run" if difference.key in seen else "not exercised in this run"
        write(f"- [{mark}] {difference.title} ({difference.key})")
        write(f"    MongoDB: {difference.mongodb}")
        write(f"    this engine: {difference.engine}")
        write(f"    where: {difference.where}")
    write("details: docs/storage-conformance.md")
