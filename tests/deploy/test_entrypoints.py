"""The containers start the services exactly as the local stack does (`puskesos services up`).

The local stack's command line is taken from ``puskesos_cli.services.start_service`` itself
(its ``Popen`` is intercepted), so a change there without the same change in compose and in
Kubernetes fails here.
"""

from __future__ import annotations

import importlib
import importlib.util
import os
import re
import subprocess
import sys
import tomllib
import typing
from pathlib import Path
from typing import Any

import pytest

from tests.deploy.support import (
    GATEWAY_MODULE,
    ROOT,
    SERVICES,
    gen_secrets,
    load_compose,
    pod_spec,
    render_kustomization,
)


def local_stack_launch(name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[list[str], dict[str, str]]:
    from puskesos_cli import services as cli_services

    seen: dict[str, Any] = {}

    class FakePopen:
        pid = 999_999

        def __init__(self, argv: list[str], **kwargs: Any) -> None:
            seen["argv"], seen["env"] = list(argv), dict(kwargs.get("env") or {})

    monkeypatch.setattr("puskesos_cli.services.subprocess.Popen", FakePopen)
    monkeypatch.setattr("puskesos_cli.state.stack_dir", lambda: tmp_path)
    cli_services.start_service(name, 0, {"PUSKESOS_NATS_URL": "nats://x:4222", "PUSKESOS_MONGO_URL": "mongodb://x/"})
    return seen["argv"], seen["env"]


def container_command(argv: list[str]) -> list[str]:
    """The local argv with the interpreter as the image names it (the venv's python is on PATH)."""
    assert argv[0] == sys.executable
    return ["python", *argv[1:]]


@pytest.mark.parametrize("name", SERVICES)
def test_compose_and_kubernetes_run_what_the_local_stack_runs(name: str, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    argv, env = local_stack_launch(name, tmp_path, monkeypatch)
    expected = container_command(argv)
    assert expected == ["python", "-m", f"puskesos_{name}"]
    compose = load_compose()["services"][name]
    assert compose["command"] == expected
    deployment = render_kustomization().get("Deployment", name)
    (container,) = pod_spec(deployment)["containers"]
    assert container["command"] == expected
    assert "args" not in container
    # the settings the local stack sets on top of the servers' URLs are set in the containers too
    set_by_cli = {k for k in env if k.startswith("PUSKESOS_") and os.environ.get(k) != env[k]}
    local_settings = set_by_cli - {"PUSKESOS_NATS_URL", "PUSKESOS_MONGO_URL"}
    k8s_env = {e["name"] for e in container["env"]} | set(render_kustomization().get(
        "ConfigMap", "puskesos-config")["data"])
    assert local_settings <= set(compose["environment"]) and local_settings <= k8s_env
    assert env["PUSKESOS_LOG_JSON"] == compose["environment"]["PUSKESOS_LOG_JSON"] == "true"


@pytest.mark.parametrize("name", SERVICES)
def test_each_module_is_runnable(name: str) -> None:
    spec = importlib.util.find_spec(f"puskesos_{name}.__main__")
    assert spec is not None, f"python -m puskesos_{name} would fail: no __main__"


def test_ports_agree_with_the_services_defaults() -> None:
    from puskesos_cli.services import DEFAULT_PORTS

    compose = load_compose()["services"]
    rendered = render_kustomization()
    for name in SERVICES:
        settings_module = importlib.import_module(f"puskesos_{name}.settings")
        settings_cls = next(v for k, v in vars(settings_module).items() if k.endswith("Settings")
                            and getattr(v, "SERVICE_NAME", None) == name)
        port = settings_cls.DEFAULT_HTTP_PORT
        assert port == DEFAULT_PORTS[name]
        assert compose[name]["environment"]["PUSKESOS_HTTP_PORT"] == str(port)
        env = {e["name"]: e.get("value") for e in pod_spec(rendered.get("Deployment", name))["containers"][0]["env"]}
        assert env["PUSKESOS_HTTP_PORT"] == str(port)
        assert rendered.get("Service", name)["spec"]["ports"][0]["port"] == port


def test_the_gateway_simulator_is_started_the_same_way_everywhere() -> None:
    """Same module, same options in compose and Kubernetes; every option is one the simulator has."""
    assert importlib.util.find_spec(GATEWAY_MODULE) is not None, (
        f"{GATEWAY_MODULE} does not exist: compose and Kubernetes start it (deploy/ must follow the "
        "distribution service's simulated gateway module)")
    compose = load_compose()["services"]["gateway"]["command"]
    (container,) = pod_spec(render_kustomization().get("StatefulSet", "gateway"))["containers"]
    for command in (compose, container["command"]):
        assert command[:3] == ["python", "-m", GATEWAY_MODULE]
        options = dict(zip(command[3::2], command[4::2], strict=True))
        assert options["--host"] == "0.0.0.0" and options["--ledger"].startswith("/data/")
    assert set(compose[3::2]) == set(container["command"][3::2])
    help_text = subprocess.run([sys.executable, "-m", GATEWAY_MODULE, "--help"], capture_output=True, text=True,
                               timeout=60, check=True).stdout
    for option in compose[3::2]:
        assert option in help_text, f"the simulator has no {option}"
    distribution = render_kustomization().get("Deployment", "distribution")
    env = pod_spec(distribution)["containers"][0]["env"]
    url = next(e["value"] for e in env if e["name"] == "PUSKESOS_GATEWAY_URL")
    assert url == f"http://gateway:{options['--port']}"
    assert load_compose()["services"]["distribution"]["environment"]["PUSKESOS_GATEWAY_URL"] == url


def test_the_image_installs_every_workspace_member() -> None:
    dockerfile = (ROOT / "Dockerfile").read_text()
    workspace = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["uv"]["workspace"]["members"]
    members = [p.parent.relative_to(ROOT).as_posix() for pattern in workspace
               for p in sorted(ROOT.glob(f"{pattern}/pyproject.toml"))]
    assert len(members) == 3 + len(SERVICES)  # shared, cli, the console and the services
    for member in members:
        assert f"COPY {member}/pyproject.toml {member}/pyproject.toml" in dockerfile, member
        assert f"COPY {member}/src {member}/src" in dockerfile, member
    syncs = re.findall(r"uv sync ([^\n]*)", dockerfile)
    assert syncs and all("--locked" in s and "--no-dev" in s for s in syncs)
    runtime = dockerfile.split("AS runtime", 1)[1]
    assert re.search(r"^USER 10001:10001$", runtime, re.M), "the runtime stage must not run as root"
    assert "PATH=/opt/puskesos/venv/bin:$PATH" in runtime  # `python` is the environment's interpreter


def test_named_volumes_of_the_image_are_writable_by_its_user() -> None:
    """A new named volume copies the owner of the image's directory: it must exist, owned by 10001."""
    dockerfile = (ROOT / "Dockerfile").read_text()
    compose = load_compose()
    for name, svc in compose["services"].items():
        if not str(svc.get("image", "")).startswith("${PUSKESOS_IMAGE"):
            continue
        for mount in svc.get("volumes") or []:
            source, target = mount.split(":")[:2]
            if source in (compose.get("volumes") or {}):
                assert re.search(rf"mkdir -p {re.escape(target)}\b.*chown 10001:10001 {re.escape(target)}",
                                 dockerfile), f"{name} writes to {target}: create it in the image for user 10001"


def test_dockerignore_keeps_secrets_and_local_state_out_of_the_image() -> None:
    ignored = {line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")}
    assert {".git", ".venv", ".local", "deploy/.env", "**/.env"} <= ignored
    assert not ({"uv.lock", "pyproject.toml", "shared", "services", "cli"} & ignored)


def test_generated_secrets_are_distinct_and_strong() -> None:
    module = gen_secrets()
    first, second = module.generate(), module.generate()
    assert first.keys() == set(module.SECRETS)
    assert len(set(first.values())) == len(first), "no two credentials alike"
    assert all(first[k] != second[k] for k in first), "random per run"
    assert all(len(v) >= 48 and re.fullmatch(r"[0-9a-f]+", v) for k, v in first.items() if k != "MONGO_KEYFILE")
    assert 6 <= len(first["MONGO_KEYFILE"]) <= 1024 and re.fullmatch(r"[A-Za-z0-9+/=]+", first["MONGO_KEYFILE"])


def _secret_fields(name: str) -> list[str]:
    """PUSKESOS_* variables of the service's settings that hold secrets (SecretStr fields)."""
    from pydantic import SecretStr

    module = importlib.import_module(f"puskesos_{name}.settings")
    cls = next(v for k, v in vars(module).items() if k.endswith("Settings") and getattr(v, "SERVICE_NAME", "") == name)
    return [f"PUSKESOS_{field.upper()}" for field, info in cls.model_fields.items()
            if SecretStr in typing.get_args(info.annotation) or info.annotation is SecretStr]


@pytest.mark.parametrize("name", SERVICES)
def test_every_secret_setting_is_provided_in_production(name: str) -> None:
    """A secret left unset falls back to a development value: production must set each one."""
    compose_env = load_compose()["services"][name]["environment"]
    container = pod_spec(render_kustomization().get("Deployment", name))["containers"][0]
    k8s_env = {e["name"]: e for e in container["env"]}
    for variable in _secret_fields(name):
        assert variable in compose_env, f"compose does not set {variable} for {name}"
        assert variable in k8s_env, f"Kubernetes does not set {variable} for {name}"
        assert "secretKeyRef" in k8s_env[variable].get("valueFrom", {}), f"{variable} must come from a Secret"
