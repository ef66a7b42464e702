"""The Kubernetes manifests, validated offline and cross-checked.

* every built-in object against the Kubernetes JSON schemas (strict: unknown fields fail), from
  the ``kubernetes-validate`` package, which ships them (no download, no cluster);
* the KEDA ScaledObject against the pydantic models generated from KEDA's CRD
  (``cloudcoil-models-keda``, run in an isolated environment), unknown fields rejected too;
* references between objects: Secrets, ConfigMaps, Services, PodDisruptionBudgets, probes,
  Prometheus annotations, ``$(VAR)`` expansions.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import (
    K8S,
    K8S_VERSION,
    SERVICES,
    Doc,
    Rendered,
    gen_secrets,
    pod_spec,
    render_kustomization,
    workloads,
)

CRD_KINDS = {"ScaledObject"}


@pytest.fixture(scope="module")
def rendered() -> Rendered:
    return render_kustomization()


def _label(obj: Doc) -> str:
    return f"{obj['kind']}/{obj['metadata']['name']}"


def test_builtin_objects_match_the_kubernetes_schemas(rendered: Rendered) -> None:
    errors = []
    for obj in rendered.objects:
        if obj["kind"] in CRD_KINDS:
            continue
        try:
            kubernetes_validate.validate(obj, K8S_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            path = ".".join(str(p) for p in exc.path)
            errors.append(f"{_label(obj)}: {path}: {exc.message}")
        except kubernetes_validate.SchemaNotFoundError as exc:
            errors.append(f"{_label(obj)}: {exc.message}")
    assert not errors, "\n".join(errors)


def test_the_validator_rejects_what_a_cluster_would(rendered: Rendered) -> None:
    """The schema check has teeth: a typo'd field and a wrong type both fail."""
    deployment = rendered.get("Deployment", "intake")
    typo = {**deployment, "spec": {**deployment["spec"], "replica": 2}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(typo, K8S_VERSION, strict=True)
    wrong = {**deployment, "spec": {**deployment["spec"], "replicas": "two"}}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, K8S_VERSION, strict=True)


# ---- KEDA -------------------------------------------------------------------------------------

KEDA_MODELS = "cloudcoil-models-keda==2.16.1.0"
CHECKER = Path(__file__).with_name("keda_crd_check.py")


def keda_problems(*paths: Path) -> list[str]:
    """Runs keda_crd_check.py in an isolated uv environment (see its docstring for why)."""
    uv = shutil.which("uv")
    assert uv, "uv is needed to validate KEDA objects against KEDA's CRD models"
    proc = subprocess.run(
        [uv, "run", "--isolated", "--no-project", "--quiet", "--with", KEDA_MODELS, "--with", "pyyaml",
         "python", str(CHECKER), *map(str, paths)],
        capture_output=True, text=True, timeout=240, check=False,
    )
    assert proc.returncode == 0, f"the KEDA check crashed:\n{proc.stderr[-3000:]}"
    result: list[str] = json.loads(proc.stdout.strip().splitlines()[-1])
    return result


def test_scaled_object_matches_the_keda_crd(tmp_path: Path) -> None:
    assert keda_problems(*K8S.glob("*.yaml")) == []
    # ... and the check has teeth: a misspelt field, a missing target and a number where KEDA wants a string
    broken = tmp_path / "broken.yaml"
    broken.write_text(yaml.safe_dump({
        "apiVersion": "keda.sh/v1alpha1", "kind": "ScaledObject", "metadata": {"name": "x"},
        "spec": {"scaleTargetRef": {"nam": "x"}, "maxReplicas": 3,
                 "triggers": [{"type": "nats-jetstream", "metadata": {"lagThreshold": 10}}]},
    }))
    found = " ".join(keda_problems(broken))
    assert "unknown field .spec.scaleTargetRef.nam" in found
    assert "spec.scaleTargetRef.name: Field required" in found
    assert "unknown field .spec.maxReplicas" in found
    assert "lagThreshold must be a string" in found


def test_scaled_object_targets_the_distribution_deployment(rendered: Rendered) -> None:
    (scaled,) = rendered.of_kind("ScaledObject")
    target = scaled["spec"]["scaleTargetRef"]
    assert target.get("kind", "Deployment") == "Deployment"
    deployment = rendered.get("Deployment", target["name"])
    assert deployment["spec"]["template"]["spec"]["containers"][0]["command"][-1] == "puskesos_distribution"
    assert "replicas" not in deployment["spec"], "KEDA owns the replica count; `replicas` would fight it on apply"
    assert 1 <= scaled["spec"]["minReplicaCount"] < scaled["spec"]["maxReplicaCount"]


def test_scaled_object_monitoring_endpoint_reaches_every_nats_server(rendered: Rendered) -> None:
    """The scaler asks <server_name>.<host>: the host must be the StatefulSet's headless service."""
    (scaled,) = rendered.of_kind("ScaledObject")
    nats = rendered.get("StatefulSet", "nats")
    headless = rendered.get("Service", nats["spec"]["serviceName"])
    assert headless["spec"]["clusterIP"] == "None"
    monitor_ports = {p["port"] for p in headless["spec"]["ports"] if p["name"] == "monitor"}
    server_name = next(e for e in pod_spec(nats)["containers"][0]["env"] if e["name"] == "SERVER_NAME")
    assert server_name["valueFrom"]["fieldRef"]["fieldPath"] == "metadata.name"
    for trigger in scaled["spec"]["triggers"]:
        assert trigger["type"] == "nats-jetstream"
        meta = trigger["metadata"]
        host, port = meta["natsServerMonitoringEndpoint"].rsplit(":", 1)
        assert host == f"{headless['metadata']['name']}.{rendered.namespace}.svc.cluster.local"
        assert int(port) in monitor_ports
        int(meta["lagThreshold"])
        int(meta.get("activationLagThreshold", "0"))


# ---- references -------------------------------------------------------------------------------


def _containers(workload: Doc) -> list[Doc]:
    spec = pod_spec(workload)
    return list(spec.get("initContainers", [])) + list(spec["containers"])


def test_secrets_are_referenced_not_committed(rendered: Rendered) -> None:
    assert rendered.of_kind("Secret") == [], "Secrets are created at provisioning (deploy/gen_secrets.py k8s)"
    module = gen_secrets()
    provided = set(module.SECRETS.values()) | set(module.PROVIDED.values())
    made = {secret for secret, _ in provided} | {module.SUBSCRIBER_NATS_SECRET, module.SUBSCRIBER_SECRETS_SECRET}
    for workload in workloads(rendered):
        for volume in pod_spec(workload).get("volumes", []):
            if "secret" in volume:
                assert volume["secret"]["secretName"] in made, f"{_label(workload)} mounts an unknown Secret"
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                if "secretRef" in source:
                    assert source["secretRef"]["name"] in made, f"{_label(workload)} reads an unknown Secret"
            for env in container.get("env", []):
                ref = env.get("valueFrom", {}).get("secretKeyRef")
                if ref:
                    assert (ref["name"], ref["key"]) in provided, (
                        f"{_label(workload)} {env['name']} reads {ref['name']}/{ref['key']}, "
                        "which deploy/gen_secrets.py neither creates nor lists as provided")


def test_config_maps_exist(rendered: Rendered) -> None:
    names = rendered.names("ConfigMap")
    for workload in workloads(rendered):
        spec = pod_spec(workload)
        for volume in spec.get("volumes", []):
            if "configMap" in volume:
                assert volume["configMap"]["name"] in names, _label(workload)
        for container in _containers(workload):
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    assert source["configMapRef"]["name"] in names, _label(workload)


def test_env_expansions_refer_to_defined_variables(rendered: Rendered) -> None:
    for workload in workloads(rendered):
        for container in _containers(workload):
            defined: set[str] = set()
            for source in container.get("envFrom", []):
                if "configMapRef" in source:
                    defined |= set(rendered.get("ConfigMap", source["configMapRef"]["name"])["data"])
            for env in container.get("env", []):
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", env.get("value", "")):
                    assert ref in defined, f"{_label(workload)}: {env['name']} uses $({ref}) before it is defined"
                defined.add(env["name"])
            for arg in [*container.get("command", []), *container.get("args", [])]:
                for ref in re.findall(r"\$\(([A-Za-z_][A-Za-z0-9_]*)\)", arg):
                    assert ref in defined, f"{_label(workload)}: command uses $({ref}), which is not defined"


def _selects(selector: dict[str, str], labels: dict[str, str]) -> bool:
    return all(labels.get(k) == v for k, v in selector.items())


def test_services_select_pods_and_named_ports(rendered: Rendered) -> None:
    pods = [w for w in workloads(rendered) if w["kind"] in ("Deployment", "StatefulSet")]
    for service in rendered.of_kind("Service"):
        selector = service["spec"]["selector"]
        matching = [w for w in pods if _selects(selector, w["spec"]["template"]["metadata"]["labels"])]
        assert matching, f"{_label(service)} selects no pod"
        port_names = {p["name"] for w in matching for c in _containers(w) for p in c.get("ports", [])}
        for port in service["spec"]["ports"]:
            if isinstance(port["targetPort"], str):
                assert port["targetPort"] in port_names, f"{_label(service)} targets unknown port {port['targetPort']}"


def test_every_long_running_workload_is_production_shaped(rendered: Rendered) -> None:
    """Selectors match, resources set, non-root, read-only root where possible, a PDB covers it."""
    pdbs = rendered.of_kind("PodDisruptionBudget")
    for workload in (w for w in workloads(rendered) if w["kind"] in ("Deployment", "StatefulSet")):
        labels = workload["spec"]["template"]["metadata"]["labels"]
        tools = labels.get("app.kubernetes.io/component") == "tools"  # idle until an operator execs in
        assert _selects(workload["spec"]["selector"]["matchLabels"], labels), _label(workload)
        spec = pod_spec(workload)
        # the namespace enforces the "restricted" Pod Security Standard: these are its demands
        assert spec["securityContext"]["runAsNonRoot"] is True, _label(workload)
        assert spec["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, _label(workload)
        assert spec.get("automountServiceAccountToken") is False, _label(workload)
        for container in _containers(workload):
            assert container["resources"]["requests"].keys() >= {"cpu", "memory"}, _label(workload)
            assert "memory" in container["resources"]["limits"], _label(workload)
            assert container["securityContext"]["allowPrivilegeEscalation"] is False
            assert container["securityContext"]["capabilities"]["drop"] == ["ALL"]
            assert "readinessProbe" in container or container["name"] == "metrics" or tools, _label(workload)
        covering = [p for p in pdbs if _selects(p["spec"]["selector"]["matchLabels"], labels)]
        if workload["metadata"]["name"] != "gateway" and not tools:  # gateway: a test double, one replica
            assert len(covering) == 1, f"{_label(workload)} needs exactly one PodDisruptionBudget"


@pytest.mark.parametrize("name", SERVICES)
def test_service_deployment_probes_metrics_and_identity(rendered: Rendered, name: str) -> None:
    deployment = rendered.get("Deployment", name)
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    env = {e["name"]: e for e in container["env"]}
    port = int(env["PUSKESOS_HTTP_PORT"]["value"])
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"http": port}
    assert container["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    annotations = deployment["spec"]["template"]["metadata"]["annotations"]
    assert annotations == {"prometheus.io/scrape": "true", "prometheus.io/port": str(port),
                           "prometheus.io/path": "/metrics"}
    # its own NATS user and its own MongoDB user, nobody else's
    assert env["PUSKESOS_NATS_USER"]["value"] == name
    assert env["PUSKESOS_NATS_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "puskesos-nats",
                                                                          "key": f"{name}-password"}
    assert env["MONGO_PASSWORD"]["valueFrom"]["secretKeyRef"] == {"name": "puskesos-mongo", "key": f"{name}-password"}
    assert env["PUSKESOS_MONGO_URL"]["value"].startswith(f"mongodb://{name}:$(MONGO_PASSWORD)@")
    assert container["envFrom"] == [{"configMapRef": {"name": "puskesos-config"}}]


def test_shared_config_is_production_config(rendered: Rendered) -> None:
    config = rendered.get("ConfigMap", "puskesos-config")["data"]
    assert config["PUSKESOS_STREAM_REPLICAS"] == "3"
    assert config["PUSKESOS_HTTP_HOST"] == "0.0.0.0"
    assert config["PUSKESOS_LOG_JSON"] == "true"
    assert config["PUSKESOS_NATS_URL"] == "nats://nats:4222"
    assert rendered.get("StatefulSet", "nats")["spec"]["replicas"] == 3
    assert rendered.get("StatefulSet", "mongo")["spec"]["replicas"] == 3
    members = config["MONGO_HOSTS"].split(",")
    assert members == [f"mongo-{i}.mongo-headless:27017" for i in range(3)]
    job = rendered.get("Job", "mongo-init")
    env = {e["name"]: e.get("value") for e in pod_spec(job)["containers"][0]["env"]}
    assert env["MONGO_MEMBERS"].split(",") == members


def test_nats_routes_name_every_server(rendered: Rendered) -> None:
    nats = rendered.get("StatefulSet", "nats")
    env = {e["name"]: e.get("value", "") for e in pod_spec(nats)["containers"][0]["env"]}
    routes = sorted(v for k, v in env.items() if k.startswith("NATS_ROUTE_") and k != "NATS_ROUTE_PASSWORD")
    headless = nats["spec"]["serviceName"]
    assert routes == [f"nats://route:$(NATS_ROUTE_PASSWORD)@nats-{i}.{headless}.$(POD_NAMESPACE).svc.cluster.local:6222"
                      for i in range(nats["spec"]["replicas"])]


def test_the_notification_service_gets_the_subscribers_and_their_signing_secrets(rendered: Rendered) -> None:
    """deploy/nats/subscribers.json is mounted (a generated ConfigMap), with the webhook signing secrets
    (deploy/gen_secrets.py), where the settings point; no other workload gets the signing secrets."""
    module = gen_secrets()
    assert rendered.generated_config_maps["puskesos-subscribers"] == [module.SUBSCRIBERS_FILE]
    deployment = rendered.get("Deployment", "notification")
    spec = pod_spec(deployment)
    (container,) = spec["containers"]
    env = {e["name"]: e.get("value") for e in container["env"]}
    volumes = {v["name"]: v for v in spec["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    for variable, source in (("PUSKESOS_SUBSCRIBERS_FILE", {"configMap": {"name": "puskesos-subscribers"}}),
                             ("PUSKESOS_SUBSCRIBER_SECRETS_FILE",
                              {"secret": {"secretName": module.SUBSCRIBER_SECRETS_SECRET}})):
        path = Path(env[variable])
        mount = mounts[str(path.parent)]
        assert mount.get("readOnly") is True
        volume = volumes[mount["name"]]
        kind = next(iter(source))
        assert {k: v for k, v in volume[kind].items() if k != "defaultMode"} == source[kind]
        key = path.name
        if kind == "configMap":
            assert key in rendered.get("ConfigMap", "puskesos-subscribers")["data"]
        else:
            assert key == module.SUBSCRIBER_SECRETS_KEY
            assert volume["secret"]["defaultMode"] & 0o007 == 0, "the signing secrets are not world-readable"
            assert spec["securityContext"]["fsGroup"] == spec["securityContext"]["runAsGroup"]
    for workload in workloads(rendered):
        if workload is not deployment:
            assert not [v for v in pod_spec(workload).get("volumes", [])
                        if v.get("secret", {}).get("secretName") == module.SUBSCRIBER_SECRETS_SECRET]


def test_the_nats_servers_get_every_subscriber_password(rendered: Rendered) -> None:
    module = gen_secrets()
    container = pod_spec(rendered.get("StatefulSet", "nats"))["containers"][0]
    assert {"secretRef": {"name": module.SUBSCRIBER_NATS_SECRET}} in container["envFrom"]
    passwords = {name for name, (secret, _) in module.SECRETS.items() if secret == module.SUBSCRIBER_NATS_SECRET}
    assert passwords == {module.password_variable(n) for n in module.nats_subscribers()}
    assert {k for (s, k) in module.SECRETS.values() if s == module.SUBSCRIBER_NATS_SECRET} == passwords
