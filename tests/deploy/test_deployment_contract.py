"""The rendered manifests do what deploy/README.md promises, for every deployable target.

Selectors reach the pods, probes ask the gRPC health service, the pod is locked down, the drain fits in
the termination grace period, workers follow the CPU limit, and every setting is one `tokend serve`
understands (checked by loading them with the server's own Settings model).
"""

from __future__ import annotations

import math
import re

import pytest
from tokend.settings import SETTING_NAMES, Settings, env_name

from .conftest import REPO, TARGETS, one

REQUIRED_KINDS = {
    "ServiceAccount", "ConfigMap", "Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget",
    "NetworkPolicy", "ServiceMonitor", "PrometheusRule",
}  # fmt: skip


def _deployment(objects):
    return one(objects, "Deployment", "tokend")


def _container(objects):
    containers = _deployment(objects)["spec"]["template"]["spec"]["containers"]
    assert [c["name"] for c in containers] == ["tokend"]
    return containers[0]


def _settings_data(objects):
    deployment = _deployment(objects)
    (env_from,) = _container(objects)["envFrom"]
    name = env_from["configMapRef"]["name"]
    return one(objects, "ConfigMap", name)["data"], deployment


def _cpu(quantity: str) -> float:
    return float(quantity[:-1]) / 1000 if quantity.endswith("m") else float(quantity)


def _matches(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.items())


@pytest.mark.parametrize("target", TARGETS)
def test_every_required_kind_is_present(rendered, target):
    assert REQUIRED_KINDS <= {o["kind"] for o in rendered[target]}


@pytest.mark.parametrize("target", TARGETS)
def test_selectors_reach_the_pods(rendered, target):
    objects = rendered[target]
    deployment = _deployment(objects)
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert _matches(deployment["spec"]["selector"]["matchLabels"], pod_labels)
    assert "replicas" not in deployment["spec"], "the HPA owns the replica count; a replicas field resets it on apply"
    services = [o for o in objects if o["kind"] == "Service"]
    assert {s["metadata"]["name"] for s in services} == {"tokend", "tokend-headless"}
    container_ports = {p["name"]: p["containerPort"] for p in _container(objects)["ports"]}
    for service in services:
        assert _matches(service["spec"]["selector"], pod_labels), service["metadata"]["name"]
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in container_ports, f"{service['metadata']['name']} port {port['name']}"
            assert port["port"] == container_ports[port["targetPort"]]
    assert one(objects, "Service", "tokend-headless")["spec"]["clusterIP"] == "None"
    assert "clusterIP" not in one(objects, "Service", "tokend")["spec"]
    assert _matches(one(objects, "PodDisruptionBudget")["spec"]["selector"]["matchLabels"], pod_labels)
    for policy in (o for o in objects if o["kind"] == "NetworkPolicy"):
        assert _matches(policy["spec"]["podSelector"]["matchLabels"], pod_labels), policy["metadata"]["name"]
    for constraint in deployment["spec"]["template"]["spec"]["topologySpreadConstraints"]:
        assert _matches(constraint["labelSelector"]["matchLabels"], pod_labels)
    hpa = one(objects, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "tokend"}
    assert [m["resource"]["name"] for m in hpa["spec"]["metrics"]] == ["cpu"]
    assert 1 <= hpa["spec"]["minReplicas"] <= hpa["spec"]["maxReplicas"]


@pytest.mark.parametrize("target", TARGETS)
def test_probes_use_the_grpc_health_service(rendered, target):
    container = _container(rendered[target])
    grpc_port = next(p["containerPort"] for p in container["ports"] if p["name"] == "grpc")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        assert set(container[probe]) & {"grpc", "httpGet", "tcpSocket", "exec"} == {"grpc"}, probe
        assert container[probe]["grpc"]["port"] == grpc_port, probe
        # "" (or absent) = the server's overall status, which turns NOT_SERVING when draining.
        assert container[probe]["grpc"].get("service", "") == "", probe


@pytest.mark.parametrize("target", TARGETS)
def test_pod_runs_restricted(rendered, target):
    objects = rendered[target]
    pod = _deployment(objects)["spec"]["template"]["spec"]
    container = _container(objects)
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    assert pod["automountServiceAccountToken"] is False
    security = container["securityContext"]
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"] == {"drop": ["ALL"]}
    assert security.get("privileged", False) is False
    # The uid the pod asks for is the one the image creates (runAsNonRoot needs a numeric USER).
    dockerfile = (REPO / "Dockerfile").read_text()
    (user,) = re.findall(r"^USER (\d+):(\d+)$", dockerfile, re.MULTILINE)
    assert (str(pod["securityContext"]["runAsUser"]), str(pod["securityContext"]["runAsGroup"])) == user
    # The read-only root needs a writable /tmp (Prometheus multiprocess files, registry cache).
    volumes = {v["name"]: v for v in pod["volumes"]}
    tmp = next(m for m in container["volumeMounts"] if m["mountPath"] == "/tmp")
    assert "emptyDir" in volumes[tmp["name"]]


@pytest.mark.parametrize("target", TARGETS)
def test_termination_grace_outlasts_prestop_and_drain(rendered, target):
    data, deployment = _settings_data(rendered[target])
    pod = deployment["spec"]["template"]["spec"]
    prestop = _container(rendered[target])["lifecycle"]["preStop"]["sleep"]["seconds"]
    drain = float(data["TOKEND_GRACE_PERIOD"])
    assert prestop >= 1, "a preStop delay lets endpoints drop the pod before the server stops listening"
    # Some slack beyond the drain for the process to exit after its last call.
    assert pod["terminationGracePeriodSeconds"] >= prestop + drain + 5


@pytest.mark.parametrize("target", TARGETS)
def test_workers_follow_the_cpu_limit(rendered, target):
    container = _container(rendered[target])
    (workers,) = [e for e in container["env"] if e["name"] == "TOKEND_WORKERS"]
    source = workers["valueFrom"]["resourceFieldRef"]
    assert source["resource"] == "limits.cpu" and str(source["divisor"]) == "1"
    assert source.get("containerName", "tokend") == "tokend"
    limit = _cpu(str(container["resources"]["limits"]["cpu"]))
    # A fractional limit would round the worker count up past the quota: keep it whole.
    assert limit == math.floor(limit) >= 1
    for resource in ("cpu", "memory"):
        assert resource in container["resources"]["requests"]
        assert resource in container["resources"]["limits"]
    assert _cpu(str(container["resources"]["requests"]["cpu"])) <= limit


@pytest.mark.parametrize("target", TARGETS)
def test_settings_are_ones_the_server_accepts(rendered, target):
    data, _ = _settings_data(rendered[target])
    known = {env_name(name) for name in SETTING_NAMES}
    assert set(data) <= known, f"unknown settings: {sorted(set(data) - known)}"
    container = _container(rendered[target])
    environ = dict(data, TOKEND_WORKERS=str(int(_cpu(str(container["resources"]["limits"]["cpu"])))))
    settings = Settings.load(flags={}, environ=environ)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert settings.port == ports["grpc"]
    assert settings.metrics_port == ports["metrics"]
    if settings.playground_port:
        assert ports.get("playground") == settings.playground_port
    else:
        assert "playground" not in ports
    assert settings.max_connection_age > 0, "clients must be told to reconnect so they re-resolve and reach new pods"
    assert settings.host == "0.0.0.0", "probes and Services reach the pod IP, not loopback"


@pytest.mark.parametrize("target", TARGETS)
def test_network_policy_admits_clients_and_prometheus(rendered, target):
    policy = one(rendered[target], "NetworkPolicy", "tokend")
    assert set(policy["spec"]["policyTypes"]) == {"Ingress", "Egress"}
    allowed = {port["port"] for rule in policy["spec"]["ingress"] for port in rule["ports"]}
    assert allowed == {"grpc", "metrics"}


@pytest.mark.parametrize("overlay", ["overlays/dev", "overlays/prod"])
def test_overlay_namespace_enforces_restricted_pod_security(rendered, overlay):
    objects = rendered[overlay]
    namespace = one(objects, "Namespace")
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    placed = {o["metadata"].get("namespace") for o in objects if o["kind"] != "Namespace"}
    assert placed == {namespace["metadata"]["name"]}, "every object goes to the overlay's namespace"


def test_production_is_not_the_development_setup(rendered):
    dev_data, _ = _settings_data(rendered["overlays/dev"])
    prod_data, _ = _settings_data(rendered["overlays/prod"])
    assert (dev_data["TOKEND_REFLECTION"], prod_data["TOKEND_REFLECTION"]) == ("true", "false")
    assert prod_data["TOKEND_PLAYGROUND_PORT"] == "0"
    assert one(rendered["overlays/prod"], "HorizontalPodAutoscaler")["spec"]["minReplicas"] >= 3
    prod_image = _container(rendered["overlays/prod"])["image"]
    assert ":" in prod_image.rsplit("/", 1)[-1] or "@sha256:" in prod_image, "prod pins the image"
    spread = _deployment(rendered["overlays/prod"])["spec"]["template"]["spec"]["topologySpreadConstraints"]
    by_key = {c["topologyKey"]: c["whenUnsatisfiable"] for c in spread}
    assert len(spread) == len(by_key), "one constraint per topology key (a strategic merge appends duplicates)"
    assert by_key == {"topology.kubernetes.io/zone": "DoNotSchedule", "kubernetes.io/hostname": "ScheduleAnyway"}


def test_model_source_components_point_the_registry_elsewhere(rendered):
    volume_data, deployment = _settings_data(rendered["overlays/prod+models-from-volume"])
    assert volume_data["TOKEND_REGISTRY"] == "/models"
    mount = next(m for m in _container(rendered["overlays/prod+models-from-volume"])["volumeMounts"] if m["name"] == "models")
    assert mount["mountPath"] == "/models" and mount["readOnly"] is True
    http_data, _ = _settings_data(rendered["overlays/prod+models-from-http"])
    assert http_data["TOKEND_REGISTRY"].startswith("https://")
    egress = one(rendered["overlays/prod+models-from-http"], "NetworkPolicy", "tokend-registry-egress")
    assert {p["port"] for rule in egress["spec"]["egress"] for p in rule["ports"]} == {443}
    # The default: models from the image (empty registry = the embedded default).
    assert _settings_data(rendered["overlays/prod"])[0]["TOKEND_REGISTRY"] == ""
