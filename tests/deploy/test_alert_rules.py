"""The PrometheusRule's groups pass `promtool check rules` and behave as the alerts promise.

promtool does not read Kubernetes objects, so the groups are extracted from the rendered PrometheusRule
into a plain rule file. `promtool test rules` runs alert_rules_promtool_test.yaml (synthetic series in,
firing alerts out) against a copy without annotations: the unit tests pin expressions, `for` durations
and labels, not wording.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from .conftest import one

HERE = Path(__file__).resolve().parent
REQUIRED_ALERTS = {"TokendHighErrorRatio", "TokendHighLatency", "TokendNoReadyReplicas", "TokendModelLoadFailures"}


def promtool() -> str:
    path = shutil.which("promtool")
    if path is None:
        raise RuntimeError("promtool is not on PATH: install Debian's `prometheus` package (make system-deps)")
    return path


@pytest.fixture(scope="module")
def groups(rendered):
    return one(rendered["overlays/prod"], "PrometheusRule", "tokend")["spec"]["groups"]


def test_rules_pass_promtool_check(groups, tmp_path):
    rules = tmp_path / "rules.yaml"
    rules.write_text(yaml.safe_dump({"groups": groups}, sort_keys=False))
    result = subprocess.run([promtool(), "check", "rules", str(rules)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


def test_alerts_fire_as_specified(groups, tmp_path):
    bare = [
        {**group, "rules": [{k: v for k, v in rule.items() if k != "annotations"} for rule in group["rules"]]}
        for group in groups
    ]
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump({"groups": bare}, sort_keys=False))
    tests = tmp_path / "alert_rules_promtool_test.yaml"
    shutil.copy(HERE / "alert_rules_promtool_test.yaml", tests)
    result = subprocess.run([promtool(), "test", "rules", str(tests)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_required_alerts_exist_and_are_unit_tested(groups):
    alerts = {rule["alert"] for group in groups for rule in group["rules"] if "alert" in rule}
    assert REQUIRED_ALERTS <= alerts
    unit_tests = yaml.safe_load((HERE / "alert_rules_promtool_test.yaml").read_text())
    tested = {case["alertname"] for test in unit_tests["tests"] for case in test.get("alert_rule_test", [])}
    assert alerts <= tested, f"alerts without a promtool unit test: {sorted(alerts - tested)}"
    for group in groups:
        for rule in group["rules"]:
            if "alert" in rule:
                assert rule["labels"]["severity"] in {"warning", "critical"}, rule["alert"]
                assert {"summary", "description"} <= set(rule["annotations"]), rule["alert"]


def test_every_overlay_ships_the_same_alerts(rendered, groups):
    for target, objects in rendered.items():
        assert one(objects, "PrometheusRule", "tokend")["spec"]["groups"] == groups, target
