"""The development channel: appends what would be sent to a JSON-lines file.

It behaves like a provider with idempotency keys: a notification id already in the file is not
written again. Phone numbers are written masked (``0812****7890``): the file is for developers.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
from pathlib import Path

from puskesos_shared.contracts.notification import NotificationChannel

from ..formatting import mask_phone
from .base import OutgoingMessage, SendReceipt


class LocalFileChannel:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._seen: set[str] | None = None
        self._lock = asyncio.Lock()

    @property
    def kind(self) -> NotificationChannel:
        return NotificationChannel.LOCAL_FILE

    def _load(self) -> set[str]:
        seen: set[str] = set()
        if self.path.exists():
            with self.path.open("rb+") as f:  # a line cut short by a crash must not swallow the next one
                if f.seek(0, os.SEEK_END) and (f.seek(-1, os.SEEK_END), f.read(1))[1] != b"\n":
                    f.write(b"\n")
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    seen.add(str(json.loads(line)["notification_id"]))
                except (ValueError, KeyError, TypeError):
                    continue  # a line cut short by a crash
        return seen

    def _append(self, line: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
            f.flush()
            os.fsync(f.fileno())

    async def send(self, message: OutgoingMessage) -> SendReceipt:
        key = str(message.notification_id)
        async with self._lock:
            if self._seen is None:
                self._seen = await asyncio.to_thread(self._load)
            if key in self._seen:
                return SendReceipt(provider_message_id=f"local:{key}", attempts=1, replayed=True)
            line = json.dumps({
                "notification_id": key, "to": mask_phone(message.to), "text": message.text,
                "template_id": message.template_id, "template_version": message.template_version,
                "written_at": dt.datetime.now(dt.UTC).isoformat(),
            }, ensure_ascii=False)
            await asyncio.to_thread(self._append, line)
            self._seen.add(key)
        return SendReceipt(provider_message_id=f"local:{key}", attempts=1)

    async def close(self) -> None:
        return None
