"""Every rendered object is a valid Kubernetes object (kubernetes-validate's schemas, strict mode).

Validated against the newest Kubernetes the installed kubernetes-validate ships and against the oldest
we support (1.30: the preStop `sleep` action is beta and on by default from 1.30; gRPC probes, topology
`matchLabelKeys` and the PDB's `unhealthyPodEvictionPolicy` are older).

Not validated by schema: the Prometheus Operator's custom resources (ServiceMonitor, PrometheusRule);
kubernetes-validate ships core schemas only. Their metadata is checked against the core ObjectMeta
schema here, their fields by tests/deploy/test_monitoring_objects.py, and the rule groups by promtool
(tests/deploy/test_alert_rules.py).
"""

from __future__ import annotations

import kubernetes_validate
import pytest
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

from .conftest import TARGETS

OLDEST_SUPPORTED = "1.30.0"
PROMETHEUS_OPERATOR_KINDS = {("monitoring.coreos.com/v1", "ServiceMonitor"), ("monitoring.coreos.com/v1", "PrometheusRule")}
VERSIONS = [OLDEST_SUPPORTED, latest_version()]


@pytest.mark.parametrize("version", VERSIONS)
@pytest.mark.parametrize("target", TARGETS)
def test_every_rendered_object_validates(rendered, target, version):
    objects = rendered[target]
    assert objects, f"{target} rendered no objects"
    for obj in objects:
        what = f"{target}: {obj.get('kind')}/{obj.get('metadata', {}).get('name')}"
        if (obj["apiVersion"], obj["kind"]) in PROMETHEUS_OPERATOR_KINDS:
            # Custom resource: validate its metadata as the ObjectMeta of a core object.
            probe = {"apiVersion": "v1", "kind": "ConfigMap", "metadata": obj["metadata"]}
            kubernetes_validate.validate(probe, version, strict=True)
            assert set(obj) == {"apiVersion", "kind", "metadata", "spec"}, f"{what}: unexpected top-level keys"
            continue
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except SchemaNotFoundError as exc:
            pytest.fail(f"{what}: no schema for {obj['apiVersion']} {obj['kind']} in Kubernetes {version}: {exc.message}")
        except kubernetes_validate.ValidationError as exc:
            pytest.fail(f"{what} is invalid for Kubernetes {version} at {list(exc.path)}: {exc.message}")


def test_strict_validation_rejects_a_misspelt_field():
    # Guards the test above: strict mode must catch an unknown field, or "validates" would mean little.
    bad = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "x"},
        "spec": {"ports": [{"port": 1, "targetPrt": 1}]},
    }
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(bad, latest_version(), strict=True)


def test_all_deployable_targets_are_rendered():
    assert "base" in TARGETS
    assert {"overlays/dev", "overlays/prod"} <= set(TARGETS)
    assert {"overlays/prod+models-from-volume", "overlays/prod+models-from-http"} <= set(TARGETS)
