"""The generated gRPC stubs are fresh, and the client distribution stands alone (tokend-api, grpcio,
protobuf and googleapis-common-protos only).

- `python protos/generate.py --check` regenerates the stubs from `protos/` into a temporary directory and
  fails on any difference with the committed ones (in the tokend-api distribution, the only copy).
- `tokend-client` must not import the server distribution (`tokend`) or anything beyond the API package,
  grpcio, protobuf and the standard library: checked statically (every import statement of its sources) and
  at run time (importing and using it in a fresh interpreter where those modules cannot be imported).
"""

from __future__ import annotations

import ast
import re
import subprocess
import sys
import textwrap
import tomllib

import pytest
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLIENT_SOURCES = ROOT / "client" / "src" / "tokend_client"
ALLOWED_THIRD_PARTY = {"grpc", "google.protobuf", "tokend_api"}
# Imported inside the one method that needs it (encode_to_numpy, as tiktoken does), never at import time:
# the distribution does not depend on it.
IMPORTED_ON_CALL = {"numpy"}


def test_generated_stubs_are_fresh():
    result = subprocess.run(
        [sys.executable, str(ROOT / "protos" / "generate.py"), "--check"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert result.returncode == 0, f"stale stubs: run `python protos/generate.py`\n{result.stdout}{result.stderr}"


def _absolute_imports(path: Path) -> set[tuple[str, bool]]:
    """(module name, imported inside a function) for every absolute import of `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    in_functions = {
        id(inner)
        for node in ast.walk(tree)
        if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
        for inner in ast.walk(node)
    }
    names: set[tuple[str, bool]] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update((alias.name, id(node) in in_functions) for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add((node.module, id(node) in in_functions))
    return names


def test_client_sources_import_only_grpc_protobuf_and_the_standard_library():
    sources = sorted(CLIENT_SOURCES.rglob("*.py"))
    assert len(sources) > 5
    offending = {}
    for path in sources:
        for name, on_call in _absolute_imports(path):
            top = name.split(".")[0]
            if top in sys.stdlib_module_names or top == "tokend_client" or name == "__future__":
                continue
            if any(name == allowed or name.startswith(allowed + ".") for allowed in ALLOWED_THIRD_PARTY):
                continue
            if on_call and top in IMPORTED_ON_CALL:
                continue
            offending.setdefault(str(path.relative_to(ROOT)), []).append(name)
    assert not offending, offending


def test_client_works_where_the_server_distribution_cannot_be_imported():
    # A fresh interpreter in which `tokend` and the server's other dependencies refuse to import.
    script = textwrap.dedent(
        """
        import importlib.abc, sys

        BLOCKED = ("tokend", "regex", "pydantic", "prometheus_client", "grpc_status",
                   "grpc_health", "grpc_reflection", "tiktoken")

        class Block(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path=None, target=None):
                if any(name == blocked or name.startswith(blocked + ".") for blocked in BLOCKED):
                    raise ImportError(f"{name} is not available to the client")
                return None

        sys.meta_path.insert(0, Block())
        import tokend_client
        from tokend_api.status_details import parse_status_details

        with tokend_client.TokendClient("127.0.0.1:1", timeout=1, retries=0) as client:
            try:
                client.list_models()
            except tokend_client.ServiceUnavailableError:
                pass
        assert parse_status_details(b"").field_violations == []
        leaked = sorted(name for name in sys.modules if name.split(".")[0] in ("tokend", "regex", "pydantic"))
        assert not leaked, leaked
        print("ok")
        """
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120, cwd=ROOT / "client"
    )
    assert result.returncode == 0 and result.stdout.strip() == "ok", result.stderr


def test_client_distribution_declares_only_the_api_grpcio_and_protobuf():
    project = tomllib.loads((ROOT / "client" / "pyproject.toml").read_text())["project"]
    names = sorted(re.split(r"[<>=!~ ;\[]", requirement)[0] for requirement in project["dependencies"])
    assert names == ["grpcio", "protobuf", "tokend-api"]
    api = tomllib.loads((ROOT / "api" / "pyproject.toml").read_text())["project"]
    names = sorted(re.split(r"[<>=!~ ;\[]", requirement)[0] for requirement in api["dependencies"])
    assert names == ["googleapis-common-protos", "grpcio", "protobuf"]  # nothing of the server


def _least(requirement_name: str, pyproject: Path) -> tuple[int, ...]:
    """The least version of ``requirement_name`` a distribution declares (its ">=X" bound)."""
    dependencies = tomllib.loads(pyproject.read_text())["project"]["dependencies"]
    for requirement in dependencies:
        found = re.fullmatch(rf"{re.escape(requirement_name)}\s*>=\s*([0-9.]+)(,.*)?", requirement.strip())
        if found:
            return tuple(int(part) for part in found.group(1).split("."))
    raise AssertionError(f"{pyproject} declares no {requirement_name}>=X")


@pytest.mark.parametrize("stub, pyproject", [
    ("api/src/tokend_api/v1/tokenizer_pb2.py", "api/pyproject.toml"),
    ("api/src/tokend_api/v1/tokenizer_pb2.py", "client/pyproject.toml"),
    ("service/src/tokend/engine/sentencepiece/tokend_sentencepiece_model_pb2.py", "service/pyproject.toml"),
])  # fmt: skip
def test_the_protobuf_a_stub_demands_at_import_is_one_its_distribution_allows(stub, pyproject):
    """A generated module refuses, at import, a protobuf runtime older than the protoc that generated it
    (ValidateProtobufRuntimeVersion: "Runtime version cannot be older than the linked gencode version"): the
    stubs made by protoc 7.35.1 would not import under protobuf 7.35.0, which every distribution declared it
    accepts. The grpc stubs' GRPC_GENERATED_VERSION is the declared least grpcio already (protos/generate.py)."""
    text = (ROOT / stub).read_text()
    found = re.search(r"ValidateProtobufRuntimeVersion\(\s*_runtime_version\.Domain\.PUBLIC,\s*(\d+),\s*(\d+),\s*(\d+),", text)
    assert found, stub
    demanded = tuple(int(part) for part in found.groups())
    assert demanded <= _least("protobuf", ROOT / pyproject), (demanded, pyproject)  # (7, 35, 1) vs (7, 35, 0) before
