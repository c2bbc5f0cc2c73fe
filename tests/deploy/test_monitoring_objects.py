"""The Prometheus Operator objects (ServiceMonitor, PrometheusRule) are well formed and wired up.

kubernetes-validate has no schemas for these custom resources, so this checks the fields we use against
the monitoring.coreos.com/v1 API by hand (names from the Prometheus Operator's API reference), and that
the ServiceMonitor selects exactly the one Service that exposes the metrics port.
"""

from __future__ import annotations

import re

import pytest

from .conftest import TARGETS, one

SERVICE_MONITOR_SPEC_FIELDS = {"jobLabel", "selector", "endpoints", "namespaceSelector", "targetLabels", "podTargetLabels", "sampleLimit"}
ENDPOINT_FIELDS = {"port", "path", "scheme", "interval", "scrapeTimeout", "honorLabels", "relabelings", "metricRelabelings"}
RULE_FIELDS = {"alert", "record", "expr", "for", "labels", "annotations", "keep_firing_for"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


@pytest.mark.parametrize("target", TARGETS)
def test_service_monitor_scrapes_each_pod_once(rendered, target):
    objects = rendered[target]
    monitor = one(objects, "ServiceMonitor", "tokend")
    spec = monitor["spec"]
    assert set(spec) <= SERVICE_MONITOR_SPEC_FIELDS, sorted(set(spec) - SERVICE_MONITOR_SPEC_FIELDS)
    wanted = spec["selector"]["matchLabels"]
    selected = [
        o for o in objects
        if o["kind"] == "Service" and all(o["metadata"].get("labels", {}).get(k) == v for k, v in wanted.items())
    ]  # fmt: skip
    # Two selected Services would scrape every pod twice.
    assert [s["metadata"]["name"] for s in selected] == ["tokend"]
    port_names = {p["name"] for p in selected[0]["spec"]["ports"]}
    for endpoint in spec["endpoints"]:
        assert set(endpoint) <= ENDPOINT_FIELDS, sorted(set(endpoint) - ENDPOINT_FIELDS)
        assert endpoint["port"] == "metrics" and endpoint["port"] in port_names
        assert DURATION.match(endpoint["interval"]) and DURATION.match(endpoint["scrapeTimeout"])
    # job="tokend" in every alert and panel comes from this label of the Service.
    assert selected[0]["metadata"]["labels"][spec["jobLabel"]] == "tokend"


@pytest.mark.parametrize("target", TARGETS)
def test_prometheus_rule_fields(rendered, target):
    rule_object = one(rendered[target], "PrometheusRule", "tokend")
    assert set(rule_object["spec"]) == {"groups"}
    for group in rule_object["spec"]["groups"]:
        assert set(group) <= {"name", "interval", "rules"}
        recorded = {rule["record"] for rule in group["rules"] if "record" in rule}
        for rule in group["rules"]:
            assert set(rule) <= RULE_FIELDS, sorted(set(rule) - RULE_FIELDS)
            assert ("alert" in rule) != ("record" in rule)
            if "for" in rule:
                assert DURATION.match(rule["for"])
            # Only tokend's own series: job="tokend", directly or through a recording rule of this group.
            assert 'job="tokend"' in rule["expr"] or any(name in rule["expr"] for name in recorded), (
                f"{rule.get('alert') or rule.get('record')} must select job=\"tokend\""
            )
