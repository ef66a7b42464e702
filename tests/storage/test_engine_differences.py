"""Where the engine is known to differ from MongoDB: the engine's actual behaviour, asserted.

If the engine changes (a new mongo-java-server, another engine), these fail and the difference
list in docs/storage-conformance.md must follow.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from pymongo import MongoClient
from pymongo.database import Database
from pymongo.errors import ConfigurationError, OperationFailure

from tests.storage.support import KNOWN_DIFFERENCES, Document, Engine, new_client, observed

DOC = Path(__file__).resolve().parents[2] / "docs" / "storage-conformance.md"


def _is_replica_set(client: MongoClient[Document]) -> bool:
    return "setName" in client.admin.command("isMaster")


def test_sessions_and_transactions(client: MongoClient[Document], db: Database[Document], engine: Engine) -> None:
    if engine.is_mongo_java_server:
        with pytest.raises(ConfigurationError, match="Sessions are not supported"), client.start_session() as session:
            db.t.insert_one({"_id": 1}, session=session)
        assert db.t.count_documents({}) == 0
        observed("no-sessions")
        return
    if not _is_replica_set(client):
        pytest.skip("MongoDB standalone: transactions need a replica set (sessions work)")
    with client.start_session() as session, session.start_transaction():
        db.t.insert_one({"_id": 1}, session=session)
        db.t.insert_one({"_id": 2}, session=session)
    assert db.t.count_documents({}) == 2


def test_change_streams(client: MongoClient[Document], db: Database[Document], engine: Engine) -> None:
    db.w.insert_one({"_id": 0})
    if engine.is_mongo_java_server:
        with pytest.raises(OperationFailure), db.w.watch():
            pass
        observed("no-change-streams")
        return
    if not _is_replica_set(client):
        pytest.skip("MongoDB standalone: change streams need a replica set")
    with db.w.watch(max_await_time_ms=2000) as stream:
        db.w.insert_one({"_id": 1})
        change = stream.next()
    assert change["operationType"] == "insert" and change["documentKey"] == {"_id": 1}


def test_reported_version(client: MongoClient[Document], engine: Engine) -> None:
    is_master = client.admin.command("isMaster")
    assert is_master["maxWireVersion"] >= 9, "PyMongo 4.x needs MongoDB 4.2 or newer"
    if engine.is_mongo_java_server:
        assert engine.version == "4.4.0" and is_master["maxWireVersion"] == 9
        with pytest.raises(OperationFailure, match="no such command: 'hello'"):  # PyMongo falls back to isMaster
            client.admin.command("hello")
        observed("wire-version")
    else:
        assert client.admin.command("hello")["maxWireVersion"] == is_master["maxWireVersion"]


def test_restart_starts_empty(engine: Engine, tmp_path: Path) -> None:
    """The local engine keeps data in memory: a restart on the same port starts empty. Proven on a
    separate engine process, so the suite's own server keeps running."""
    if not engine.is_mongo_java_server:
        pytest.skip(f"{engine.kind}: durability across restarts is the server's own (not started here)")
    from puskesos_shared.localstack import start_mongo_server
    from puskesos_shared.localstack.binaries import find_mongo_server_jar

    jar = find_mongo_server_jar()
    if jar is None:
        pytest.skip("the engine answering is not a local build (no jar to start a second one from)")
    process = start_mongo_server(jar, tmp_path / "engine.log", heap="256m")
    try:
        client = new_client(process.url)
        client.keep.k.insert_one({"_id": 1})
        assert client.keep.k.count_documents({}) == 1
        client.close()
        process.stop()
        process = start_mongo_server(jar, tmp_path / "engine-again.log", port=process.port, heap="256m")
        client = new_client(process.url)
        assert "keep" not in client.list_database_names()
        assert client.keep.k.count_documents({}) == 0
        client.close()
    finally:
        process.stop()
    observed("memory-only")


def test_every_known_difference_is_documented() -> None:
    text = DOC.read_text(encoding="utf-8")
    missing = [d.key for d in KNOWN_DIFFERENCES if f"`{d.key}`" not in text]
    assert not missing, f"docs/storage-conformance.md does not describe {missing}"
