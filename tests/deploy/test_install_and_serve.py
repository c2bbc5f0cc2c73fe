"""Build and run tokend the way the Dockerfile does, without Docker, and talk to it over gRPC.

No Docker engine runs on our build machines. This test reads the Dockerfile and performs its builder
stage on the host: COPY (honouring .dockerignore's exclusions), WORKDIR, ENV and every RUN command, with
the image's absolute paths (/opt/..., /build) moved under tmp_path. The one RUN it does not perform is the
apt-get install of the C toolchain: it checks instead that the host has those Debian packages (the wheel
compiles the native core, tokend.engine._native, with them). Then it starts the final stage's
ENTRYPOINT (`tokend serve` from the new virtual environment) with the prod overlay's ConfigMap as its
environment, on free loopback ports, and checks what Kubernetes and the operators rely on: health,
an Encode checked against tiktoken, the packaged default registry, the Docker HEALTHCHECK script, the
metrics the dashboard and alerts read, writes confined to TMPDIR, and a clean exit 0 on SIGTERM.

One deliberate difference: the builder's PIP_NO_CACHE_DIR is dropped, so pip reuses this machine's
cache (an image layer has no use for a cache; a test run has).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import grpc
import pytest
import yaml
from support.server import TokendServer

from .conftest import REPO, one
from .promql_names import contract_sample_names, metric_names
from .test_dockerfile import stages
from .test_grafana_dashboard import DASHBOARD, dashboard_queries

# Series that exist only after an event this test does not cause (a model that fails to load).
EVENT_ONLY = {"tokend_model_load_failures_total"}
# Made by Prometheus itself, not by the server.
SCRAPE_MADE = {"up"}
BUILD_TIMEOUT = 300


def _image_path(root: Path, text: str) -> str:
    """The Dockerfile's absolute /opt/... and /build paths, moved under ``root``."""
    return re.sub(r"(?<![\w/.-])/(opt|build)(?=/|\s|$|\*)", lambda m: f"{root}/{m.group(1)}", text)


def _dockerignored(name: str) -> bool:
    # The exclusions .dockerignore makes inside the copied trees (checked against it below). A native core
    # built in place (editable installs) must not ride along: the wheel compiles its own.
    return name == "__pycache__" or name.endswith((".pyc", ".pyo", ".egg-info", ".so")) or name in {"build", "dist"}


def _require_host_packages(command: str) -> None:
    """Instead of running the builder's `apt-get install`: the host must already have those packages."""
    install = re.search(r"apt-get install ([^&]*)", command).group(1).split()
    packages = [word for word in install if not word.startswith("-")]
    assert packages, f"no packages found in {command!r}"
    for package in packages:
        status = subprocess.run(
            ["dpkg-query", "--show", "--showformat=${Status}", package], capture_output=True, text=True, timeout=30,
            check=False,
        ).stdout  # fmt: skip
        if status != "install ok installed":
            raise AssertionError(f"the image's builder installs {package}; this host lacks it: apt-get install {package}")


def _env_values(text: str) -> dict[str, str]:
    return dict(re.findall(r"(\w+)=(\S+)", text))


def _build_like_the_dockerfile(root: Path, copied_leftovers: list[Path]) -> dict[str, str]:
    """Perform the builder stage under ``root``; returns the final stage's ENV (paths moved).

    ``copied_leftovers`` receives the build/cache leftovers found in copied trees right after each COPY
    (there should be none: .dockerignore keeps them out of the context).
    """
    builder, final = stages()
    env = {key: value for key, value in os.environ.items() if not key.startswith(("TOKEND_", "PIP_NO_CACHE"))}
    cwd = root
    for keyword, rest in builder[1:]:
        if keyword == "ENV":
            values = _env_values(rest)
            values.pop("PIP_NO_CACHE_DIR", None)
            env.update(values)
        elif keyword == "WORKDIR":
            cwd = Path(_image_path(root, rest))
            cwd.mkdir(parents=True, exist_ok=True)
        elif keyword == "COPY":
            options = [part for part in rest.split() if part.startswith("--")]
            *sources, destination = [part for part in rest.split() if not part.startswith("--")]
            destination = _image_path(root, destination)
            target = Path(destination) if destination.startswith("/") else cwd / destination
            for source in sources:
                source_path = REPO / source.rstrip("/")
                if source_path.is_dir():
                    shutil.copytree(source_path, target, ignore=lambda _, names: [n for n in names if _dockerignored(n)])
                    copied_leftovers += [p for p in target.rglob("*") if _dockerignored(p.name)]
                else:
                    if destination.endswith("/") or len(sources) > 1:
                        target.mkdir(parents=True, exist_ok=True)
                        shutil.copy(source_path, target / source_path.name)
                    else:
                        target.parent.mkdir(parents=True, exist_ok=True)
                        shutil.copy(source_path, target)
                    if "--chmod=0755" in options:
                        target.chmod(0o755)
        elif keyword == "RUN" and rest.startswith("apt-get "):
            _require_host_packages(rest)
        elif keyword == "RUN":
            command = _image_path(root, rest)
            # `python` is the base image's interpreter: here, the one running the tests.
            command = re.sub(r"(?<![\w/.-])python(?= -m venv)", sys.executable, command)
            result = subprocess.run(
                ["/bin/sh", "-c", command], cwd=cwd, env=env, capture_output=True, text=True,
                timeout=BUILD_TIMEOUT, check=False,
            )  # fmt: skip
            if result.returncode != 0:
                raise AssertionError(f"RUN {command}\nexited {result.returncode}\n{result.stdout[-5000:]}\n{result.stderr[-5000:]}")
        elif keyword not in {"FROM", "ARG", "LABEL"}:
            raise AssertionError(f"the builder stage uses {keyword}, which this test does not perform: teach it")
    final_env = {}
    for keyword, rest in final:
        if keyword == "ENV":
            final_env.update({key: _image_path(root, value) for key, value in _env_values(rest).items()})
    return final_env


@pytest.fixture(scope="module")
def image(tmp_path_factory) -> dict:
    """The "image": a root directory with the installed venv, and the final stage's environment."""
    root = tmp_path_factory.mktemp("image")
    leftovers: list[Path] = []
    final_env = _build_like_the_dockerfile(root, leftovers)
    venv = root / "opt" / "tokend"
    return {"root": root, "venv": venv, "env": final_env, "leftovers": leftovers}


@pytest.fixture(scope="module")
def prod_settings(rendered) -> dict[str, str]:
    """The prod overlay's ConfigMap: the environment a production pod gets."""
    deployment = one(rendered["overlays/prod"], "Deployment", "tokend")
    (env_from,) = deployment["spec"]["template"]["spec"]["containers"][0]["envFrom"]
    return one(rendered["overlays/prod"], "ConfigMap", env_from["configMapRef"]["name"])["data"]


@pytest.fixture(scope="module")
def served(image, prod_settings, tmp_path_factory):
    tmpdir = tmp_path_factory.mktemp("pod-tmp")  # the pod's emptyDir at /tmp
    venv = image["venv"]
    # The final stage's ENV, with its /tmp (the pod's emptyDir) moved under tmp_path.
    image_env = {key: value.replace("/tmp", str(tmpdir)) for key, value in image["env"].items()}
    env = {
        **prod_settings,
        "PATH": f"{venv / 'bin'}{os.pathsep}{os.environ['PATH']}",
        "PYTHONDONTWRITEBYTECODE": image_env["PYTHONDONTWRITEBYTECODE"],
        "TMPDIR": image_env["TMPDIR"],
        "XDG_CACHE_HOME": image_env["XDG_CACHE_HOME"],
    }
    (entrypoint,) = [rest for keyword, rest in stages()[-1] if keyword == "ENTRYPOINT"]
    program, *arguments = json.loads(entrypoint)
    before = sorted(str(p.relative_to(venv)) for p in venv.rglob("*"))
    server = TokendServer(
        workers=2,
        env=env,
        reload_interval=None,  # from the ConfigMap
        grace_period=None,  # from the ConfigMap
        drain_flush=None,  # the server's default
        command=[str(venv / "bin" / program), *arguments],  # the image's ENTRYPOINT, from its PATH
        start_timeout=120,
    )
    server.start()
    try:
        yield {"server": server, "tmpdir": tmpdir, "venv_files_before": before, "settings": prod_settings}
    finally:
        server.stop()


def test_the_build_matches_dockerignore(image):
    # The copy rule above must exclude what .dockerignore excludes inside service/.
    rules = (REPO / ".dockerignore").read_text()
    patterns = ("**/__pycache__", "**/*.py[cod]", "service/build", "service/dist", "service/src/*.egg-info", "service/src/**/*.so")
    for pattern in patterns:
        assert pattern in rules
    assert (image["root"] / "build" / "service" / "pyproject.toml").is_file()
    assert image["leftovers"] == [], "the copy must leave out what .dockerignore leaves out"


def test_the_venv_holds_tokend_and_no_pip(image):
    venv = image["venv"]
    python = venv / "bin" / "python"
    where = subprocess.run(
        [str(python), "-c", "import tokend, sys; print(tokend.__file__); print(sys.prefix)"],
        capture_output=True, text=True, timeout=60, check=True, cwd=image["root"],
    ).stdout.split()  # fmt: skip
    # Installed from the wheel into the venv, not the editable checkout.
    assert Path(where[0]).is_relative_to(venv) and Path(where[1]) == venv
    assert not (venv / "bin" / "pip").exists(), "the image's venv has no pip"
    # Byte-compiled at install time: with a read-only root nothing could be cached at run time.
    assert list(venv.glob("lib/python3*/site-packages/tokend/supervisor/__pycache__/supervisor.*.pyc"))
    installers = [p.name for p in venv.glob("lib/python3*/site-packages/*") if p.name.split("-")[0] in {"pip", "setuptools"}]
    assert installers == [], "the image's venv keeps no installers"
    registry = next(venv.glob("lib/python3*/site-packages/tokend/registry/default/index.json"))
    assert set(json.loads(registry.read_text())["models"]) >= {"cl100k_base", "o200k_base"}


def test_the_venv_holds_the_native_core(image):
    # Compiled from service/native/ while the wheel built (not copied from the checkout), and it works:
    # the C merge and pre-split give tiktoken's ids for cl100k_base with the packaged ranks.
    import tiktoken

    text = "Native core, built in the image's builder stage: 123456 tokens… ünïcödé 🚀\n\n  done"
    program = (
        "import json, sys, tokend, tokend.engine._native as native\n"
        "ranks = tokend.get_encoding('cl100k_base')._mergeable_ranks\n"
        "core = native.BpeCore(dict(ranks), 'cl100k')\n"
        "print(json.dumps([native.__file__, core.encode(sys.argv[1])]))\n"
    )
    result = subprocess.run(
        [str(image["venv"] / "bin" / "python"), "-c", program, text],
        capture_output=True, text=True, timeout=120, check=False, cwd=image["root"],
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    where, ids = json.loads(result.stdout)
    assert Path(where).is_relative_to(image["venv"] / "lib") and Path(where).name.startswith("_native.")
    assert ids == tiktoken.get_encoding("cl100k_base").encode_ordinary(text)


def test_serving_with_the_prod_settings(served):
    server = served["server"]
    assert server.health_status("") == "SERVING"
    assert server.health_status("tokend.v1.Tokenizer") == "SERVING"
    # Reflection is off in prod (TOKEND_REFLECTION=false): grpcurl-style discovery is refused.
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    stub = reflection_pb2_grpc.ServerReflectionStub(server.channel())
    with pytest.raises(grpc.RpcError) as refused:
        list(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10))
    assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED


def test_encode_matches_tiktoken(served):
    import tiktoken
    from tokend_api.v1 import tokenizer_pb2

    text = "Kubernetes rolls tokend out, one pod at a time. 🚀"
    expected = tiktoken.get_encoding("cl100k_base").encode(text)
    response = served["server"].stub().Encode(
        tokenizer_pb2.EncodeRequest(model="cl100k_base", inputs=[tokenizer_pb2.Input(text=text)]), timeout=30
    )
    assert list(response.results[0].ids) == expected
    assert (response.model.name, response.model.version) == ("cl100k_base", 2)  # @1 with the openai-chat format
    assert response.total_tokens == len(expected)


def test_chats_count_out_of_the_box(served):
    """The installed package carries the chat formats of the embedded registry (o200k_base@2: openai-chat)."""
    from tokend_api.v1 import tokenizer_pb2

    conversation = tokenizer_pb2.ChatConversation(messages=[tokenizer_pb2.ChatMessage(role="user", text="Hello")])
    response = served["server"].stub().CountChatTokens(
        tokenizer_pb2.CountChatTokensRequest(model="o200k_base", conversations=[conversation]), timeout=30
    )
    # The cookbook's rule: 3 per message + "user" (1) + "Hello" (1), and 3 for the reply's priming.
    assert (response.results[0].total, response.results[0].estimate, response.model.version) == (8, True, 2)


def test_every_default_model_is_served(served):
    from tokend_api.v1 import tokenizer_pb2

    listed = served["server"].stub().ListModels(tokenizer_pb2.ListModelsRequest(), timeout=30)
    names = {model.name for model in listed.models}
    assert {"cl100k_base", "o200k_base"} <= names


def test_docker_healthcheck_script(image, served):
    python = str(image["venv"] / "bin" / "python")
    script = str(image["venv"] / "bin" / "tokend-healthcheck")
    env = {"PATH": os.environ["PATH"], "TOKEND_PORT": str(served["server"].port)}
    ok = subprocess.run([python, script], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert ok.returncode == 0, ok.stderr
    # Under TLS it can only check that the port accepts connections (documented in the script).
    tls = subprocess.run(
        [python, script], env={**env, "TOKEND_TLS_CERT": "/etc/tokend/tls/tls.crt"}, capture_output=True, text=True,
        timeout=30, check=False,
    )  # fmt: skip
    assert tls.returncode == 0, tls.stderr
    from support.server import free_port

    env["TOKEND_PORT"] = str(free_port())  # nothing listens there
    down = subprocess.run([python, script], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert down.returncode == 1 and "UNAVAILABLE" in down.stderr
    env["TOKEND_TLS_CERT"] = "/etc/tokend/tls/tls.crt"
    down_tls = subprocess.run([python, script], env=env, capture_output=True, text=True, timeout=30, check=False)
    assert down_tls.returncode == 1 and "does not accept connections" in down_tls.stderr


def _sample_names(exposition: str) -> dict[str, set[str]]:
    """sample name -> the grpc_code values seen on it (empty set when it has no grpc_code label)."""
    samples: dict[str, set[str]] = {}
    for line in exposition.splitlines():
        if line and not line.startswith("#"):
            name = re.match(r"[a-zA-Z_:][a-zA-Z0-9_:]*", line).group(0)
            codes = samples.setdefault(name, set())
            code = re.search(r'grpc_code="([^"]*)"', line)
            if code:
                codes.add(code.group(1))
    return samples


def test_metrics_scrape_serves_what_dashboard_and_alerts_read(served, rendered):
    from tokend_api.v1 import tokenizer_pb2

    server = served["server"]
    stub = server.stub()
    # A word of several tokens, twice in one request: a piece cache miss, then a hit, in whichever worker
    # answers (pieces that are one whole token skip the cache, so "one" and "two words" alone would not).
    repeated = tokenizer_pb2.Input(text="antidisestablishmentarianism")
    inputs = [tokenizer_pb2.Input(text="one"), tokenizer_pb2.Input(text="two words"), repeated, repeated]
    stub.Encode(tokenizer_pb2.EncodeRequest(model="o200k_base", inputs=inputs), timeout=30)
    stub.CountTokens(tokenizer_pb2.CountTokensRequest(model="cl100k_base", inputs=inputs), timeout=30)
    with pytest.raises(grpc.RpcError) as missing:
        stub.Encode(tokenizer_pb2.EncodeRequest(model="no_such_model", inputs=inputs), timeout=30)
    assert missing.value.code() == grpc.StatusCode.NOT_FOUND
    samples = _sample_names(server.scrape_metrics())

    # Every metric DEVELOPERS.md promises is scraped, except those that need an event we did not cause.
    contract = contract_sample_names(REPO / "DEVELOPERS.md")
    absent = contract - set(samples) - EVENT_ONLY
    assert not absent, f"promised in DEVELOPERS.md but not scraped: {sorted(absent)}"

    dashboard = json.loads(DASHBOARD.read_text())
    for where, expr in dashboard_queries(dashboard):
        unknown = metric_names(expr) - set(samples) - EVENT_ONLY
        assert not unknown, f"dashboard {where} reads {sorted(unknown)}, which the server does not export"
    groups = one(rendered["overlays/prod"], "PrometheusRule", "tokend")["spec"]["groups"]
    recorded = {rule["record"] for group in groups for rule in group["rules"] if "record" in rule}
    for group in groups:
        for rule in group["rules"]:
            unknown = metric_names(rule["expr"]) - set(samples) - EVENT_ONLY - SCRAPE_MADE - recorded
            assert not unknown, f"rule {rule.get('alert') or rule.get('record')} reads {sorted(unknown)}, not exported"
            # The alerts' status-code vocabulary is the server's: codes spelt as it labels them.
            for codes in re.findall(r'grpc_code=~"([^"]*)"', rule["expr"]):
                assert set(codes.split("|")) <= {code.name for code in grpc.StatusCode}
    assert {"OK", "NOT_FOUND"} <= samples["grpc_server_handled_total"]


def test_sigterm_drains_and_exits_zero(served):
    # Last in this module: it stops the shared server.
    server = served["server"]
    worker_pids = server.worker_pids()
    assert len(worker_pids) == 2
    metrics_dirs = list(served["tmpdir"].glob("tokend-metrics-*"))
    assert len(metrics_dirs) == 1, "Prometheus multiprocess files go under TMPDIR (the pod's emptyDir)"
    grace = float(served["settings"]["TOKEND_GRACE_PERIOD"])
    started = time.monotonic()
    server.process.send_signal(signal.SIGTERM)
    code = server.process.wait(timeout=grace + 15)
    took = time.monotonic() - started
    assert code == 0, server.stderr_text()[-5000:]
    # An idle server does not wait out its grace period (bounded by it, with generous slack).
    assert took < grace, f"idle server took {took:.1f} s to stop"
    # No orphans: the supervisor (PID 1 in the container) reaped every worker before exiting.
    survivors = [pid for pid in worker_pids if Path(f"/proc/{pid}").exists()]
    assert not survivors, f"workers outlived the supervisor: {survivors}"
    assert not list(served["tmpdir"].glob("tokend-metrics-*")), "the supervisor removes its metrics dir"
    # The root filesystem is read-only in Kubernetes: serving wrote nothing into the venv.
    venv = served["server"].command[0].rsplit("/bin/", 1)[0]
    after = sorted(str(p.relative_to(venv)) for p in Path(venv).rglob("*"))
    assert after == served["venv_files_before"]
    events = [entry.get("event") for entry in server.logs()]
    assert "draining" in events and events[-1] == "stopped"
