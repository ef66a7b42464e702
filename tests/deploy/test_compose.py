"""deploy/compose.yaml without a Docker engine: parsed, interpolated as compose would, cross-checked."""

from __future__ import annotations

import re
from typing import Any

import pytest
from pymongo.uri_parser import parse_uri

from tests.deploy.compose_model import MissingVariable, environment, interpolate, resolved_compose
from tests.deploy.support import COMPOSE_FILE, DEPLOY, SERVICES, compose_variables, gen_secrets, load_compose

#: containers that run once and exit, or only on demand
ONE_SHOT = {"mongo-init", "ops"}
NATS_NODES = ("nats-1", "nats-2", "nats-3")
MONGO_MEMBERS = ("mongo-1", "mongo-2", "mongo-3")


@pytest.fixture(scope="module")
def secrets_env() -> dict[str, str]:
    values: dict[str, str] = gen_secrets().generate()
    return values


@pytest.fixture(scope="module")
def compose(secrets_env: dict[str, str]) -> dict[str, Any]:
    return resolved_compose(secrets_env)


def test_every_variable_is_documented_and_secrets_are_required() -> None:
    documented = set(re.findall(r"^([A-Z][A-Z0-9_]*)=", (DEPLOY / ".env.example").read_text(), re.M))
    used = compose_variables()
    assert set(used) - documented == set(), "undocumented variables (add them to deploy/.env.example)"
    assert documented - set(used) == set(), "deploy/.env.example documents variables compose no longer reads"
    secret_names = set(gen_secrets().SECRETS)
    for name, modifier in used.items():
        if name in secret_names:
            assert modifier.startswith(":?"), f"${{{name}}} is a secret: it must have no default (use :?)"
        else:
            assert modifier.startswith(":-"), f"${{{name}}} is a setting: give it a default (:-)"
    assert {n for n in secret_names if n not in used} == set(), "gen_secrets.py makes secrets compose never reads"


def test_compose_refuses_to_start_without_secrets(secrets_env: dict[str, str]) -> None:
    with pytest.raises(MissingVariable, match="NATS_ROUTE_PASSWORD"):
        resolved_compose({})
    for name in gen_secrets().SECRETS:
        with pytest.raises(MissingVariable, match=name):
            resolved_compose({k: v for k, v in secrets_env.items() if k != name})
    assert interpolate("a $$b ${X:-1} ${Y-2} ${Z}", {"Z": "z"}) == "a $b 1 2 z"


def test_no_secret_value_is_committed() -> None:
    text = COMPOSE_FILE.read_text()
    assert not re.search(r"(?i)(password|secret|keyfile)\s*[:=]\s*['\"]?[A-Za-z0-9+/]{12,}", text)
    assert ".env" in (DEPLOY / ".gitignore").read_text().split()


def test_references_are_valid(compose: dict[str, Any]) -> None:
    services = compose["services"]
    volumes = set(compose.get("volumes") or {})
    for name, svc in services.items():
        assert "image" in svc, f"{name} has no image"
        for dep, cond in (svc.get("depends_on") or {}).items():
            assert dep in services, f"{name} depends on unknown service {dep}"
            condition = cond["condition"]
            if condition == "service_healthy":
                assert "healthcheck" in services[dep] and not services[dep]["healthcheck"].get("disable"), \
                    f"{name} waits for {dep} to be healthy, but {dep} has no healthcheck"
            elif condition == "service_completed_successfully":
                assert services[dep].get("restart") == "no", f"{dep} is awaited to complete: restart must be 'no'"
            else:
                assert condition == "service_started"
        for mount in svc.get("volumes") or []:
            source = mount.split(":", 1)[0]
            if source.startswith("."):
                assert (DEPLOY / source).exists() or source == "./ops", f"{name} mounts missing {source}"
            else:
                assert source in volumes, f"{name} mounts undeclared volume {source}"


def test_every_long_running_container_has_a_healthcheck(compose: dict[str, Any]) -> None:
    for name, svc in compose["services"].items():
        if name in ONE_SHOT:
            continue
        check = svc.get("healthcheck")
        assert check and not check.get("disable") and check["test"][0] in ("CMD", "CMD-SHELL"), name
        assert svc.get("restart") == "unless-stopped", name


@pytest.mark.parametrize("name", SERVICES)
def test_service_configuration(compose: dict[str, Any], secrets_env: dict[str, str], name: str) -> None:
    svc = compose["services"][name]
    env = environment(svc)
    assert env["PUSKESOS_STREAM_REPLICAS"] == "3"
    assert env["PUSKESOS_NAMESPACE"] == "puskesos"
    assert env["PUSKESOS_HTTP_HOST"] == "0.0.0.0"
    assert env["PUSKESOS_LOG_JSON"] == "true"
    assert env["PUSKESOS_NATS_URL"] == "nats://nats:4222"
    assert len(env["PUSKESOS_AUTH_SECRET"]) >= 32
    # its own NATS user, its own MongoDB user on the replica set, nobody else's
    assert env["PUSKESOS_NATS_USER"] == name
    assert env["PUSKESOS_NATS_PASSWORD"] == secrets_env[f"NATS_{name.upper()}_PASSWORD"]
    uri = parse_uri(env["PUSKESOS_MONGO_URL"])
    assert uri["username"] == name
    assert uri["password"] == secrets_env[f"MONGO_{name.upper()}_PASSWORD"]
    assert [f"{h}:{p}" for h, p in uri["nodelist"]] == [f"{m}:27017" for m in MONGO_MEMBERS]
    assert uri["options"]["replicaSet"] == "rs0"
    assert uri["options"]["authSource"] == "admin"
    # the healthcheck asks the port the service listens on
    assert "PUSKESOS_HTTP_PORT" in env and "/health/ready" in " ".join(svc["healthcheck"]["test"])
    for port in svc.get("ports") or []:
        assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} beyond loopback"
        assert str(port).endswith(f":{env['PUSKESOS_HTTP_PORT']}")
    assert svc["read_only"] is True and svc["cap_drop"] == ["ALL"]


def test_distribution_scales(compose: dict[str, Any]) -> None:
    """`docker compose up --scale distribution=4` needs no fixed name, hostname or host port."""
    svc = compose["services"]["distribution"]
    for key in ("container_name", "hostname", "ports", "deploy"):
        assert key not in svc, f"distribution sets {key}: replicas would clash"
    for name, other in compose["services"].items():
        assert "container_name" not in other, f"{name}: container_name prevents --scale and parallel stacks"


def test_nats_cluster(compose: dict[str, Any], secrets_env: dict[str, str]) -> None:
    services = compose["services"]
    routes = {f"nats://route:{secrets_env['NATS_ROUTE_PASSWORD']}@{n}:6222" for n in NATS_NODES}
    accounts = (DEPLOY / "nats" / "accounts.conf").read_text()
    needed = set(re.findall(r"password:\s*\$([A-Z][A-Z0-9_]*)", accounts)) | {"SERVER_NAME", "NATS_ROUTE_PASSWORD"}
    for node in NATS_NODES:
        svc = services[node]
        env = environment(svc)
        assert env["SERVER_NAME"] == svc["hostname"] == node
        assert {env["NATS_ROUTE_1"], env["NATS_ROUTE_2"], env["NATS_ROUTE_3"]} == routes
        assert needed <= env.keys(), f"{node} lacks {needed - env.keys()}"
        assert "nats" in svc["networks"]["default"]["aliases"]
        mounts = svc["volumes"]
        assert "./nats/nats.conf:/etc/nats/nats.conf:ro" in mounts
        assert "./nats/accounts.conf:/etc/nats/accounts.conf:ro" in mounts
        assert f"{node}-data:/data" in mounts
        assert svc["command"] == ["-c", "/etc/nats/nats.conf"]


def test_mongo_replica_set(compose: dict[str, Any], secrets_env: dict[str, str]) -> None:
    services = compose["services"]
    for member in MONGO_MEMBERS:
        svc = services[member]
        assert svc["hostname"] == member
        script = svc["command"][0]
        assert "--replSet rs0" in script and "--keyFile" in script
        assert "$MONGO_KEYFILE" in script  # compose's $$ escape, left for the container's shell
        assert environment(svc)["MONGO_KEYFILE"] == secrets_env["MONGO_KEYFILE"]
    init = services["mongo-init"]
    env = environment(init)
    assert env["MONGO_MEMBERS"].split(",") == [f"{m}:27017" for m in MONGO_MEMBERS]
    script = (DEPLOY / "mongo" / "init-replica-set.js").read_text()
    for name in SERVICES:
        assert env[f"MONGO_{name.upper()}_PASSWORD"] == secrets_env[f"MONGO_{name.upper()}_PASSWORD"]
        assert f'"{name}"' in script
    for service in SERVICES:
        assert services[service]["depends_on"]["mongo-init"] == {"condition": "service_completed_successfully"}


def test_raw_file_uses_anchors_for_shared_settings() -> None:
    """One definition of the service defaults: a change reaches every service."""
    raw = load_compose()
    assert {"x-service", "x-service-env", "x-nats", "x-mongo"} <= raw.keys()
