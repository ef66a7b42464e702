"""``puskesos stack up --nats-cluster 3``: the local stack with NATS as production runs it (issue 18).

Three nodes with the stack's users, the streams at R3, the URL list and the replicas in ``stack.env``;
``stack status`` shows the nodes, the meta leader and each stream's leader and replicas; a node that
died comes back with ``stack up``; ``stack down`` stops every node.
"""

from __future__ import annotations

import asyncio
import os
import signal
from pathlib import Path

import nats
import pytest
from puskesos_shared.localstack import LocalNatsCluster, NatsNode

from tests.localstack.support import cli, process, stack_state, wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]


def _env(stack_dir: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in (stack_dir / "stack.env").read_text().splitlines() if "=" in line)


async def _replicas(env: dict[str, str]) -> dict[str, int]:
    nc = await nats.connect(env["PUSKESOS_NATS_URL"].split(","), user=env["PUSKESOS_NATS_USER"],
                            password=env["PUSKESOS_NATS_PASSWORD"])
    try:
        js = nc.jetstream()
        return {name: (await js.stream_info(name)).config.num_replicas or 0
                for name in ("PUSKESOS_EVENTS", "PUSKESOS_DLQ")}
    finally:
        await nc.close()


def test_stack_up_with_a_nats_cluster(stack_home: dict[str, str]) -> None:
    stack_dir = Path(stack_home["PUSKESOS_HOME"]) / ".local" / "stack"
    up = cli(stack_home, "stack", "up", "--nats-cluster", "3")
    assert up.returncode == 0, up.stderr
    servers = stack_state(stack_dir)["servers"]
    nodes = [NatsNode.from_json(servers[key]) for key in servers["nats"]["nodes"]]
    assert [node.name for node in nodes] == ["n1", "n2", "n3"] and all(node.alive() for node in nodes)
    urls = [node.url for node in nodes]
    assert servers["nats"]["url"] == ",".join(urls) and servers["nats"]["replicas"] == 3

    env = _env(stack_dir)
    assert env["PUSKESOS_NATS_URL"] == ",".join(urls) and env["PUSKESOS_STREAM_REPLICAS"] == "3"
    assert asyncio.run(_replicas(env)) == {"PUSKESOS_EVENTS": 3, "PUSKESOS_DLQ": 3}  # as the stack's admin user

    status = cli(stack_home, "stack", "status")
    assert status.returncode == 0, status.stderr
    leader = LocalNatsCluster("puskesos-local", nodes).meta_leader()
    assert f"meta leader {leader}" in status.stdout
    for node in nodes:
        assert node.url in status.stdout and node.monitor_url in status.stdout
    for stream in ("PUSKESOS_EVENTS", "PUSKESOS_DLQ"):
        row = next(line for line in status.stdout.splitlines() if stream in line)
        assert "R3: 3/3 current" in row, status.stdout

    # a node that died comes back on its ports with its data; the others kept running
    os.kill(nodes[1].pid, signal.SIGKILL)
    wait_until(lambda: not nodes[1].alive(), "n2 gone")
    assert "down" in next(line for line in cli(stack_home, "stack", "status").stdout.splitlines() if "n2" in line)
    again = cli(stack_home, "stack", "up")
    assert again.returncode == 0, again.stderr
    assert "restarted NATS node n2" in again.stderr
    servers = stack_state(stack_dir)["servers"]
    assert NatsNode.from_json(servers["nats-n2"]).url == urls[1] and servers["nats-n1"]["pid"] == nodes[0].pid

    down = cli(stack_home, "stack", "down")
    assert down.returncode == 0, down.stderr
    restarted = [NatsNode.from_json(servers[key]) for key in ("nats-n1", "nats-n2", "nats-n3")]
    assert not any(node.alive() for node in restarted)
    assert not process(servers["mongo"]).alive()
    assert stack_state(stack_dir)["servers"] == {}


async def _messages(env: dict[str, str], publish: bool) -> int:
    nc = await nats.connect(env["PUSKESOS_NATS_URL"].split(","), user=env["PUSKESOS_NATS_USER"],
                            password=env["PUSKESOS_NATS_PASSWORD"])
    try:
        js = nc.jetstream()
        if publish:
            await js.publish("puskesos.events.intake.complaint_filed.v1", b"{}", headers={"Nats-Msg-Id": "probe"})
        return int((await js.stream_info("PUSKESOS_EVENTS")).state.messages)
    finally:
        await nc.close()


def test_the_watchdog_stops_every_node_and_the_cluster_starts_empty_again(stack_home: dict[str, str]) -> None:
    stack_dir = Path(stack_home["PUSKESOS_HOME"]) / ".local" / "stack"
    assert cli(stack_home, "stack", "up", "--nats-cluster", "3").returncode == 0
    servers = stack_state(stack_dir)["servers"]
    nodes = [NatsNode.from_json(servers[key]) for key in servers["nats"]["nodes"]]
    assert asyncio.run(_messages(_env(stack_dir), publish=True)) == 1

    os.kill(int(servers["mongo"]["pid"]), signal.SIGKILL)
    wait_until(lambda: not any(node.alive() for node in nodes) and (stack_dir / "engine-stopped.txt").exists(),
               "the watchdog to stop every NATS node")

    again = cli(stack_home, "stack", "up")  # a cluster comes back as a cluster, empty with the engine
    assert again.returncode == 0, again.stderr
    assert "reset NATS streams" in again.stderr
    env = _env(stack_dir)
    assert len(env["PUSKESOS_NATS_URL"].split(",")) == 3 and env["PUSKESOS_STREAM_REPLICAS"] == "3"
    assert asyncio.run(_messages(env, publish=False)) == 0
    assert asyncio.run(_replicas(env)) == {"PUSKESOS_EVENTS": 3, "PUSKESOS_DLQ": 3}
    assert cli(stack_home, "stack", "down").returncode == 0
