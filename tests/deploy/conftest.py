"""Fixtures for the deployment tests: the repository's paths and the rendered Kubernetes manifests.

Rendering runs `kubectl kustomize` (the kustomize built into kubectl) once per target per session.
Targets are the base, every overlay, and every component applied on top of the prod overlay (a component
is not deployable on its own).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
K8S = REPO / "deploy" / "k8s"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir() if (path / "kustomization.yaml").is_file())
COMPONENTS = sorted(path.name for path in (K8S / "components").iterdir() if (path / "kustomization.yaml").is_file())
# What an operator can deploy: an overlay, or the prod overlay plus one component.
TARGETS = ["base", *(f"overlays/{name}" for name in OVERLAYS), *(f"overlays/prod+{name}" for name in COMPONENTS)]


def kubectl() -> str:
    path = shutil.which("kubectl")
    if path is None:
        raise RuntimeError("kubectl is not on PATH: install it (the deployment tests render with `kubectl kustomize`)")
    return path


def render(target: str, scratch: Path) -> list[dict]:
    """The objects `kubectl kustomize` renders for ``target`` ("base", "overlays/dev", "overlays/prod+NAME")."""
    directory = K8S / target
    if "+" in target:
        overlay, component = target.split("+")
        # kustomize wants relative paths; a throwaway kustomization combines the overlay and the component.
        directory = scratch / target.replace("/", "_").replace("+", "_")
        directory.mkdir(parents=True)
        (directory / "kustomization.yaml").write_text(
            yaml.safe_dump(
                {
                    "apiVersion": "kustomize.config.k8s.io/v1beta1",
                    "kind": "Kustomization",
                    "resources": [os.path.relpath(K8S / overlay, directory)],
                    "components": [os.path.relpath(K8S / "components" / component, directory)],
                }
            )
        )
    result = subprocess.run(
        [kubectl(), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if result.returncode != 0:
        raise AssertionError(f"`kubectl kustomize {target}` failed:\n{result.stderr}")
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


@pytest.fixture(scope="session")
def rendered(tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict]]:
    """target -> rendered objects, for every target in TARGETS."""
    scratch = tmp_path_factory.mktemp("kustomize")
    return {target: render(target, scratch) for target in TARGETS}


def one(objects: list[dict], kind: str, name: str | None = None) -> dict:
    """The single object of ``kind`` (and ``name``) among ``objects``."""
    found = [o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]
    if len(found) != 1:
        names = [f"{o['kind']}/{o['metadata']['name']}" for o in objects]
        raise AssertionError(f"expected exactly one {kind} {name or ''}, found {len(found)} among {names}")
    return found[0]
