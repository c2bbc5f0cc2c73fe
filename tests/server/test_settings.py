"""Settings: defaults, flag > environment > default, validation errors naming flag and variable;
and the CPU count that is the default number of workers (affinity capped by the cgroup quota)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tokend.settings.cpus import available_cpus, cgroup_cpu_limit
from tokend.settings import SETTING_NAMES, Settings, SettingsError, env_name, flag_name


def test_defaults_are_the_documented_ones():
    settings = Settings.load(flags={}, environ={})
    assert (settings.host, settings.port, settings.metrics_port) == ("0.0.0.0", 50051, 9464)
    assert settings.workers == available_cpus() >= 1
    assert settings.registry is None and settings.models is None
    assert settings.reload_interval == 30 and settings.grace_period == 20 and settings.max_connection_age == 300
    assert (settings.unload_unused_after, settings.max_pinned_versions) == (300, 4)
    assert (settings.max_batch_items, settings.max_request_bytes, settings.max_message_bytes) == (1024, 8388608, 16777216)
    assert settings.max_work_bytes == 256 << 20 and settings.answer_room_bytes is None  # None: an eighth of it
    assert (settings.stream_idle_timeout, settings.stream_yield_after, settings.stream_message_rate) == (30, 10, 1000)
    assert (settings.bulk_lane_bytes, settings.bulk_lane_policy) == (1 << 20, "nice")
    # Deny by default: no reflection, the playground on this machine only (`make serve` turns reflection on).
    assert settings.reflection is False and settings.tls is False
    assert (settings.playground_host, settings.playground_port) == ("127.0.0.1", 8080) and settings.log_level == "info"


def test_every_setting_has_a_flag_and_a_variable():
    assert flag_name("max_batch_items") == "--max-batch-items"
    assert env_name("tls_client_ca") == "TOKEND_TLS_CLIENT_CA"
    assert set(SETTING_NAMES) == {
        "host", "port", "metrics_port", "workers", "registry", "models", "reload_interval", "unload_unused_after",
        "max_pinned_versions", "max_batch_items",
        "max_request_bytes", "max_message_bytes", "max_work_bytes", "answer_room_bytes", "bulk_lane_bytes", "bulk_lane_policy", "grace_period", "drain_flush",
        "max_connection_age", "max_connections", "answer_send_seconds", "stream_idle_timeout", "stream_yield_after", "stream_message_rate", "reflection",
        "tls_cert", "tls_key", "tls_client_ca", "playground_host", "playground_port", "log_level",
    }  # fmt: skip


def test_flags_win_over_environment_over_defaults():
    environ = {"TOKEND_PORT": "7000", "TOKEND_WORKERS": "3", "TOKEND_MODELS": "cl100k_base, o200k_base@1",
               "TOKEND_REFLECTION": "false", "TOKEND_LOG_LEVEL": "DEBUG", "UNRELATED": "x"}  # fmt: skip
    settings = Settings.load(flags={"port": 7001, "workers": None}, environ=environ)
    assert settings.port == 7001  # flag
    assert settings.workers == 3  # environment (flag not given)
    assert settings.models == ("cl100k_base", "o200k_base@1")
    assert settings.reflection is False and settings.log_level == "debug"


@pytest.mark.parametrize(
    "flags,environ,fragment",
    [
        ({"workers": 0}, {}, "setting workers (--workers / TOKEND_WORKERS) from flag --workers=0"),
        ({}, {"TOKEND_MAX_BATCH_ITEMS": "lots"}, "setting max_batch_items (--max-batch-items / TOKEND_MAX_BATCH_ITEMS)"),
        ({"port": 70000}, {}, "setting port (--port / TOKEND_PORT)"),
        ({}, {"TOKEND_LOG_LEVEL": "loud"}, "setting log_level (--log-level / TOKEND_LOG_LEVEL)"),
        ({"tls_cert": "/nonexistent/cert.pem", "tls_key": "/nonexistent/key.pem"}, {}, "--tls-cert / TOKEND_TLS_CERT"),
        ({"port": 0, "workers": 2}, {}, "port 0 (an ephemeral port) cannot be shared"),
        ({"metrics_port": 50051}, {}, "metrics_port and port are both 50051"),
        ({"reload_interval": -1}, {}, "--reload-interval / TOKEND_RELOAD_INTERVAL"),
        ({"stream_message_rate": 0.5}, {}, "0.5 is not 0 (no limit) or at least 1 message a second"),
        # all of the work budget left to answers: every large request would wait its 60 s and fail
        ({"max_work_bytes": 64 << 20}, {"TOKEND_ANSWER_ROOM_BYTES": str(64 << 20)},
         "setting answer_room_bytes (--answer-room-bytes / TOKEND_ANSWER_ROOM_BYTES) from environment variable"),
        # more than half: beside a request estimated past the budget, the room's answers grow the worst case by it
        ({"max_work_bytes": 64 << 20, "answer_room_bytes": (32 << 20) + 1}, {}, "more than half of max_work_bytes"),
        # gRPC aborted every worker at start (a CHECK in its connection quota), restarted without end
        ({"max_connections": 2**31 - 1}, {}, "setting max_connections (--max-connections / TOKEND_MAX_CONNECTIONS)"),
    ],
)
def test_bad_settings_name_the_setting(flags, environ, fragment):
    with pytest.raises(SettingsError) as info:
        Settings.load(flags=flags, environ=environ)
    assert fragment in str(info.value)


def test_an_answer_room_set_empty_is_the_default_and_half_the_budget_is_allowed():
    assert Settings.load(flags={}, environ={"TOKEND_ANSWER_ROOM_BYTES": ""}).answer_room_bytes is None
    assert Settings.load(flags={"max_work_bytes": 64 << 20, "answer_room_bytes": 32 << 20}, environ={}).answer_room_bytes == 32 << 20


def test_tls_files_must_come_in_pairs(tmp_path: Path):
    cert = tmp_path / "cert.pem"
    cert.write_text("not checked here")
    with pytest.raises(SettingsError, match="tls_cert and tls_key go together"):
        Settings.load(flags={"tls_cert": str(cert)}, environ={})
    with pytest.raises(SettingsError, match="tls_client_ca .mutual TLS. needs a server certificate"):
        Settings.load(flags={"tls_client_ca": str(cert)}, environ={})
    settings = Settings.load(flags={"tls_cert": str(cert), "tls_key": str(cert), "tls_client_ca": str(cert)}, environ={})
    assert settings.tls and settings.tls_client_ca == cert


def test_unknown_flag_is_refused():
    with pytest.raises(SettingsError, match="unknown setting 'prot'"):
        Settings.load(flags={"prot": 1}, environ={})


def test_settings_log_as_json_values():
    fields = Settings.load(flags={"workers": 1, "models": "a,b"}, environ={}).as_log_fields()
    assert fields["models"] == ["a", "b"] and fields["workers"] == 1 and fields["tls_cert"] is None


def _cgroup(tmp_path: Path, files: dict[str, str], own: str = "/") -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, content in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(content)
    proc = tmp_path / "proc-self-cgroup"
    proc.write_text(f"0::{own}\n")
    return root, proc


@pytest.mark.parametrize(
    "files,own,expected",
    [
        ({"cpu.max": "max 100000\n"}, "/", None),
        ({"cpu.max": "200000 100000\n"}, "/", 2),
        ({"cpu.max": "150000 100000\n"}, "/", 2),  # 1.5 CPUs → 2 workers
        ({"cpu.max": "50000 100000\n"}, "/", 1),
        ({"kubepods/pod1/cpu.max": "300000 100000\n", "cpu.max": "max 100000\n"}, "/kubepods/pod1", 3),
        ({"cpu/cpu.cfs_quota_us": "400000\n", "cpu/cpu.cfs_period_us": "100000\n"}, "/", 4),  # cgroup v1
        ({"cpu/cpu.cfs_quota_us": "-1\n", "cpu/cpu.cfs_period_us": "100000\n"}, "/", None),
        ({}, "/", None),
    ],
)
def test_cgroup_quota(tmp_path, files, own, expected):
    root, proc = _cgroup(tmp_path, files, own)
    assert cgroup_cpu_limit(cgroup_root=root, proc_self_cgroup=proc) == expected


def test_available_cpus_is_affinity_capped_by_quota(tmp_path):
    affinity = len(os.sched_getaffinity(0))
    root, proc = _cgroup(tmp_path, {"cpu.max": "100000 100000\n"})
    assert available_cpus(cgroup_root=root, proc_self_cgroup=proc) == 1
    root, proc = _cgroup(tmp_path / "big", {"cpu.max": "99900000 100000\n"})
    assert available_cpus(cgroup_root=root, proc_self_cgroup=proc) == affinity


def test_the_developers_table_is_generated_from_the_model():
    from tokend.settings import settings_table

    text = (Path(__file__).resolve().parents[2] / "DEVELOPERS.md").read_text()
    start = text.index("<!-- settings table: generated by `python -m tokend.settings` -->\n")
    end = text.index("<!-- end of settings table -->")
    documented = text[start:end].split("\n", 1)[1]
    assert documented == settings_table(), "DEVELOPERS.md's settings table is stale: paste `python -m tokend.settings`"


def test_flags_are_generated_from_the_model():
    import argparse

    from tokend.settings import add_setting_flags, setting_flags

    parser = argparse.ArgumentParser()
    add_setting_flags(parser)
    args = parser.parse_args(["--max-batch-items", "7", "--no-reflection", "--models", "a,b"])
    settings = Settings.load(flags=setting_flags(args), environ={})
    assert (settings.max_batch_items, settings.reflection, settings.models) == (7, False, ("a", "b"))
    assert "[TOKEND_MAX_BATCH_ITEMS]" in parser.format_help() and "(default 1024)" in parser.format_help()
