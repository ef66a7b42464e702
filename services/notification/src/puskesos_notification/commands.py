"""NATS commands of the notification service (request-reply, ``{ns}.commands.notification.*.v1``).

* ``officer_upsert``: add or change a directory entry (officer id → mobile, role, scope);
* ``officer_remove``: remove an entry;
* ``opt_out``: record that a phone number does (or no longer does) want messages.
"""

from __future__ import annotations

from faststream.nats import NatsBroker
from puskesos_shared.commands import subscribe_command
from puskesos_shared.topology import Topology

from .directory import DirectoryService, OfficerRemove, OfficerUpsert, OptOut


def register_commands(broker: NatsBroker, topology: Topology, service: DirectoryService) -> list[str]:
    return [
        subscribe_command(broker, topology, service="notification", name="officer_upsert", request=OfficerUpsert,
                          handler=service.upsert_officer),
        subscribe_command(broker, topology, service="notification", name="officer_remove", request=OfficerRemove,
                          handler=service.remove_officer),
        subscribe_command(broker, topology, service="notification", name="opt_out", request=OptOut,
                          handler=service.set_opt_out),
    ]
