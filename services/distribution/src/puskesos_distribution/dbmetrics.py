"""Time spent in the database, by command and collection (``/metrics``): where a slow round waits."""

from __future__ import annotations

from prometheus_client import Counter
from pymongo import monitoring

DB_SECONDS = Counter("puskesos_distribution_db_seconds", "Time in database commands", ["command", "collection"])
DB_COMMANDS = Counter("puskesos_distribution_db_commands", "Database commands", ["command", "collection"])
_WATCHED = {"insert", "find", "update", "delete", "count", "aggregate", "findAndModify", "getMore"}


class _Listener(monitoring.CommandListener):
    def __init__(self) -> None:
        self._collections: dict[int, str] = {}

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in _WATCHED:
            target = event.command.get(event.command_name)
            self._collections[event.request_id] = target if isinstance(target, str) else "?"

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        self._done(event.request_id, event.command_name, event.duration_micros)

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        self._done(event.request_id, event.command_name, event.duration_micros)

    def _done(self, request_id: int, command: str, micros: int) -> None:
        collection = self._collections.pop(request_id, None)
        if collection is not None:
            DB_SECONDS.labels(command, collection).inc(micros / 1e6)
            DB_COMMANDS.labels(command, collection).inc()


_registered = False


def register() -> None:
    """Registers the listener for every client created afterwards (once per process)."""
    global _registered
    if not _registered:
        monitoring.register(_Listener())
        _registered = True
