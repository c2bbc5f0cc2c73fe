"""The metric-name extraction used to check the dashboard and alerts, on hand-checked expressions."""

from __future__ import annotations

import pytest

from .conftest import REPO
from .promql_names import contract_sample_names, metric_names

CASES = [
    ('sum by (model, version) (rate(tokend_tokens_total{job="tokend", model=~"$model"}[$__rate_interval]))', {"tokend_tokens_total"}),
    ('histogram_quantile(0.99, sum by (le) (rate(grpc_server_handling_seconds_bucket{grpc_code!="OK"}[5m]))) > 1', {"grpc_server_handling_seconds_bucket"}),
    ("a_total / ignoring(code) group_left b_total", {"a_total", "b_total"}),
    ('(x unless x offset 10m) or increase(y[10m])', {"x", "y"}),
    ('absent(up{job="tokend"} == 1) or sum(z) == 0', {"up", "z"}),
    ('sum without (pid) (rate(q[1m])) * 1e3 > bool 2', {"q"}),
    ('label_values(tokend_model_info{job="tokend", namespace=~"$namespace"}, model)', {"tokend_model_info"}),
    ('tokend:grpc_server_errors:ratio_rate5m > 0.05', {"tokend:grpc_server_errors:ratio_rate5m"}),
]  # fmt: skip


@pytest.mark.parametrize(("expr", "expected"), CASES)
def test_metric_names(expr, expected):
    assert metric_names(expr) == expected


def test_contract_names_from_developers_md():
    names = contract_sample_names(REPO / "DEVELOPERS.md")
    # Hand-picked from the DEVELOPERS.md table: a counter, a histogram (as scraped), gauges.
    assert {"grpc_server_handled_total", "tokend_ready", "tokend_workers", "tokend_worker_restarts_total"} <= names
    assert {"tokend_batch_items_bucket", "tokend_batch_items_sum", "tokend_batch_items_count"} <= names
    assert "tokend_batch_items" not in names
    assert "tokend_piece_cache_misses_total" in names
