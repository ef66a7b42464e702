"""Intake's access log (the ``export_log`` collection): who obtained a resident's personal data, when and why.

Two kinds of entries, each written *before* the data is handed out (an entry that cannot be written
refuses the request: 503 ``access_log_unavailable``), refused attempts included:

* a resident's data export (``kind: "resident_export"``; entries written before reveals existed
  have no ``kind``): the NIK's keyed hash, who, the outcome, which services answered (``exports``);
* a household revealed unmasked by ``POST /households/search`` with ``reveal: true``
  (``kind: "household_reveal"``): the KK's keyed hash (and the NIK's, when the search was by NIK),
  who (officer id and role), when, the stated purpose and the outcome (``revealed``,
  ``refused_role``, ``outside_scope``) (``reveals``).

Entries hold no clear NIK or KK; log lines carry the entry's id and the officer, never the numbers.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from puskesos_shared.commands import CommandError
from puskesos_shared.mongo import insert_once

from .context import Context, log

EXPORT = "resident_export"
REVEAL = "household_reveal"


async def record_access(ctx: Context, entry: Mapping[str, Any], *, what: str) -> None:
    """Writes one entry (a retry of the very same entry is no error); raises 503 when the write fails."""
    try:
        await insert_once(ctx.store.export_log, entry)
    except Exception as exc:
        log.error("access_log_write_failed", entry_id=str(entry.get("_id")), kind=entry.get("kind"),
                  error=type(exc).__name__)
        raise CommandError("access_log_unavailable", f"the {what} could not be recorded in the access log, so it "
                           "is not handed out; retry", status=503) from None
