"""deploy/nats/*.conf checked by nats-server itself (``-t``: parse, validate, exit), with the very
environment compose and Kubernetes give each node."""

from __future__ import annotations

import importlib.util
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.compose_model import environment, resolved_compose
from tests.deploy.support import NATS_ACCOUNTS as ACCOUNTS
from tests.deploy.support import NATS_CONF as CONF
from tests.deploy.support import gen_secrets, nats_server, pod_spec, render_kustomization


def check_config(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(nats_server()), "-c", str(CONF), "-t"], env={"PATH": "/usr/bin:/bin", **env},
                          capture_output=True, text=True, timeout=30, check=False)


@pytest.fixture(scope="module")
def secrets_env() -> dict[str, str]:
    values: dict[str, str] = gen_secrets().generate()
    return values


@pytest.mark.parametrize("node", ["nats-1", "nats-2", "nats-3"])
def test_config_is_valid_with_the_compose_environment(secrets_env: dict[str, str], node: str) -> None:
    env = environment(resolved_compose(secrets_env)["services"][node])
    proc = check_config(env)
    assert proc.returncode == 0, proc.stderr + proc.stdout
    assert "is valid" in proc.stderr + proc.stdout


def _k8s_env(container: dict[str, Any], pod: str, namespace: str, secrets_env: dict[str, str]) -> dict[str, str]:
    """What the kubelet would give the container: envFrom a Secret, secretKeyRef, fieldRef and $(VAR) expansion."""
    by_ref = {ref: name for name, ref in gen_secrets().SECRETS.items()}
    fields = {"metadata.name": pod, "metadata.namespace": namespace}
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):  # every key of the Secret, before env (which wins)
        secret = source["secretRef"]["name"]
        env |= {key: secrets_env[name] for name, (s, key) in gen_secrets().SECRETS.items() if s == secret}
    for item in container["env"]:
        if "value" in item:
            env[item["name"]] = re.sub(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", lambda m: env[m.group(1)], item["value"])
        elif "secretKeyRef" in item["valueFrom"]:
            ref = item["valueFrom"]["secretKeyRef"]
            env[item["name"]] = secrets_env[by_ref[(ref["name"], ref["key"])]]
        else:
            env[item["name"]] = fields[item["valueFrom"]["fieldRef"]["fieldPath"]]
    return env


def test_config_is_valid_with_the_kubernetes_environment(secrets_env: dict[str, str]) -> None:
    rendered = render_kustomization()
    nats = rendered.get("StatefulSet", "nats")
    container = pod_spec(nats)["containers"][0]
    assert container["args"] == ["-c", "/etc/nats/nats.conf"]
    assert rendered.generated_config_maps["nats-config"] == [CONF, ACCOUNTS]
    for i in range(nats["spec"]["replicas"]):
        env = _k8s_env(container, f"nats-{i}", rendered.namespace, secrets_env)
        assert env["SERVER_NAME"] == f"nats-{i}"
        proc = check_config(env)
        assert proc.returncode == 0, proc.stderr + proc.stdout


def test_a_missing_password_is_refused(secrets_env: dict[str, str]) -> None:
    env = environment(resolved_compose(secrets_env)["services"]["nats-1"])
    del env["NATS_AUDIT_PASSWORD"]
    proc = check_config(env)
    assert proc.returncode != 0
    assert "NATS_AUDIT_PASSWORD" in proc.stderr


def test_the_validator_catches_a_bad_setting(tmp_path: Path, secrets_env: dict[str, str]) -> None:
    env = environment(resolved_compose(secrets_env)["services"]["nats-1"])
    (tmp_path / "accounts.conf").write_text(ACCOUNTS.read_text())
    bad = tmp_path / "nats.conf"
    bad.write_text(CONF.read_text().replace("sync_interval: always", "sync_interval: sometimes"))
    proc = subprocess.run([str(nats_server()), "-c", str(bad), "-t"], env=env, capture_output=True, text=True,
                          timeout=30, check=False)
    assert proc.returncode != 0 and "sync_interval" in proc.stderr


def test_durability_and_secrets_settings() -> None:
    conf = CONF.read_text()
    assert re.search(r"^\s*sync_interval:\s*always\s*$", conf, re.M), "fsync every write (BRIEF §4)"
    assert re.search(r'^\s*store_dir:\s*"/data/jetstream"', conf, re.M)
    assert re.search(r"^\s*no_advertise:\s*true", conf, re.M)
    for text in (conf, ACCOUNTS.read_text()):
        for value in re.findall(r"password:\s*(\S+)", text):
            assert value.startswith("$"), f"a literal password is committed: {value[:3]}..."


def test_accounts_file_is_the_rendering_of_the_shared_permissions() -> None:
    path = ACCOUNTS.with_name("render_accounts.py")
    spec = importlib.util.spec_from_file_location("puskesos_deploy_render_accounts", path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    assert ACCOUNTS.read_text() == module.render(), (
        "deploy/nats/accounts.conf is stale: uv run python deploy/nats/render_accounts.py > deploy/nats/accounts.conf")
