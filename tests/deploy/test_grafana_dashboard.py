"""deploy/grafana/tokend.json is a dashboard Grafana can import and every query reads a tokend metric.

"A tokend metric" here means one DEVELOPERS.md promises (the contract the server's metrics module
implements). tests/deploy/test_install_and_serve.py checks the same queries against a real scrape of a
server installed the way the image installs it.
"""

from __future__ import annotations

import json

import pytest

from .conftest import REPO
from .promql_names import contract_sample_names, metric_names

DASHBOARD = REPO / "deploy" / "grafana" / "tokend.json"
# What the issue asks the dashboard to show, as (metric it reads, what for).
REQUIRED = {
    "grpc_server_handled_total": "RPC rate and errors",
    "grpc_server_handling_seconds_bucket": "latency quantiles",
    "tokend_tokens_total": "tokens/s per model and version",
    "tokend_batch_items_bucket": "batch sizes",
    "tokend_rpc_in_flight": "in-flight calls",
}


def dashboard_queries(dashboard: dict) -> list[tuple[str, str]]:
    """(where, expression) for every panel target and every templating query of the dashboard."""
    queries = []
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            queries.append((f"panel {panel['title']!r} target {target['refId']}", target["expr"]))
    for variable in dashboard["templating"]["list"]:
        if variable["type"] == "query":
            query = variable["query"]
            queries.append((f"variable {variable['name']}", query["query"] if isinstance(query, dict) else query))
    return queries


@pytest.fixture(scope="module")
def dashboard() -> dict:
    return json.loads(DASHBOARD.read_text())


def test_dashboard_structure(dashboard):
    assert dashboard["uid"] and dashboard["title"] and isinstance(dashboard["schemaVersion"], int)
    ids = [panel["id"] for panel in dashboard["panels"]]
    assert len(ids) == len(set(ids)), "panel ids must be unique"
    variables = {v["name"] for v in dashboard["templating"]["list"]}
    assert {"datasource", "namespace"} <= variables
    for panel in dashboard["panels"]:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        if panel["type"] == "row":
            continue
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        # Every query goes to the data source the user picks, not a hard-coded one.
        assert panel["datasource"]["uid"] == "${datasource}", panel["title"]
        for target in panel["targets"]:
            assert target["datasource"]["uid"] == "${datasource}", panel["title"]


def test_every_query_reads_only_tokend_metrics(dashboard):
    exported = contract_sample_names(REPO / "DEVELOPERS.md")
    for where, expr in dashboard_queries(dashboard):
        names = metric_names(expr)
        assert names, f"{where}: no metric found in {expr!r}"
        assert names <= exported, f"{where} reads {sorted(names - exported)}, which tokend does not export"
        assert 'job="tokend"' in expr, f"{where} must select job=\"tokend\" (the ServiceMonitor's job)"


def test_call_panels_count_tokenizer_calls_only(dashboard):
    # Kubelet health checks arrive every few seconds per pod; counted as calls they would hide errors.
    for where, expr in dashboard_queries(dashboard):
        if metric_names(expr) & {"grpc_server_handled_total", "grpc_server_started_total", "grpc_server_handling_seconds_bucket"}:
            assert expr.count('grpc_service="tokend.v1.Tokenizer"') == expr.count("grpc_server_"), where


def test_dashboard_shows_what_operators_need(dashboard):
    read = set().union(*(metric_names(expr) for _, expr in dashboard_queries(dashboard)))
    missing = {name: why for name, why in REQUIRED.items() if name not in read}
    assert not missing, f"the dashboard lacks: {missing}"
    per_model = [expr for _, expr in dashboard_queries(dashboard) if "tokend_tokens_total" in expr]
    assert any("by (model, version" in expr for expr in per_model), "tokens/s must be split by model and version"
