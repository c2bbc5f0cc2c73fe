"""Imports run one way: engine ← registry ← service ← {server, playground, cli}, and the client imports no
server code (tests/test_protos.py checks the client; this checks the server distribution).

Every import statement of every module (at top level or inside a function) is read with `ast`; a module
may import tokend packages of its own layer or below only:

    tokend.errors, tokend.logs          leaves (import nothing of tokend)
    tokend.http_listener                the threaded HTTP server of the playground and /metrics (leaf)
    tokend.settings                     the settings model (leaf: pydantic-settings, tokend_api)
    tokend.engine                       errors
    tokend.registry                     engine, errors
    tokend.service                      registry, engine, errors, logs, tokend_api (not its stubs)
    tokend.supervisor                   settings, logs, registry, http_listener: its children are named, not imported
    tokend.server | playground | cli    service and below, settings; none imports another (the playground
                                        also imports http_listener)
    entry points (cli, server.__main__) the supervisor

and nothing below the front-ends imports a wire or serving library (grpc, protobuf, http.server,
prometheus_client). One exception, a file format: sentencepiece's `.model` files are protobuf messages
(ModelProto), which the engine's model-file reader parses with protobuf's runtime (FILE_FORMAT_PROTOBUF).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SOURCES = Path(__file__).resolve().parent.parent / "service" / "src"

BELOW_FRONT_ENDS = {"tokend.errors", "tokend.logs", "tokend.engine", "tokend.registry", "tokend.service", "tokend.settings"}
ALLOWED = {
    "tokend.errors": set(),
    "tokend.logs": set(),
    "tokend.http_listener": set(),
    "tokend.settings": {"tokend.settings", "tokend_api"},
    "tokend.engine": {"tokend.engine", "tokend.errors"},
    "tokend.registry": {"tokend.registry", "tokend.engine", "tokend.errors"},
    "tokend.service": {"tokend.service", "tokend.registry", "tokend.engine", "tokend.errors", "tokend.logs", "tokend_api"},
    "tokend.supervisor": {"tokend.supervisor", "tokend.settings", "tokend.logs", "tokend.registry", "tokend.http_listener"},
    "tokend.server": {"tokend.server", *BELOW_FRONT_ENDS, "tokend_api"},
    "tokend.playground": {"tokend.playground", *BELOW_FRONT_ENDS, "tokend_api", "tokend.http_listener"},
    "tokend.cli": {"tokend.cli", *BELOW_FRONT_ENDS, "tokend.supervisor"},
    "tokend": {"tokend.engine", "tokend.registry", "tokend.errors"},  # the package's own __init__
}
ENTRY_POINTS = {"tokend.server.__main__": {"tokend.supervisor"}}
SERVING_LIBRARIES = ("grpc", "grpc_health", "grpc_reflection", "grpc_status", "google.protobuf", "google.rpc",
                     "http.server", "prometheus_client", "tokend_api.v1", "tokend_api.policy_message",
                     "tokend_api.status_details")  # fmt: skip
# Modules that read a file format defined as a protobuf message (not a wire): protobuf's runtime only.
FILE_FORMAT_PROTOBUF = {"tokend.engine.sentencepiece.model_file": {"google.protobuf.message"},
                        "tokend.engine.sentencepiece.tokend_sentencepiece_model_pb2": {
                            "google.protobuf", "google.protobuf.internal"}}


def _modules() -> list[tuple[str, Path]]:
    found = []
    for path in sorted((SOURCES / "tokend").rglob("*.py")):
        parts = list(path.relative_to(SOURCES).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found.append((".".join(parts), path))
    return found


def _imports(module: str, path: Path) -> set[str]:
    names = set()
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                names.add(".".join(base + ([node.module] if node.module else [])))
            elif node.module:
                names.add(node.module)
    return names


def _layer(module: str) -> str:
    for layer in sorted(ALLOWED, key=len, reverse=True):
        if module == layer or module.startswith(layer + "."):
            return layer
    raise AssertionError(f"{module} belongs to no layer: add it to ALLOWED")


def _within(name: str, prefixes: set[str]) -> bool:
    return any(name == prefix or name.startswith(prefix + ".") for prefix in prefixes)


MODULES = _modules()


def test_every_module_is_read():
    assert len(MODULES) > 60 and {"tokend.service.tokenizer", "tokend.server.servicer"} <= {m for m, _ in MODULES}


@pytest.mark.parametrize("module,path", MODULES, ids=[module for module, _ in MODULES])
def test_imports_point_down(module, path):
    layer = _layer(module)
    allowed = ALLOWED[layer] | ENTRY_POINTS.get(module, set())
    wrong = sorted(
        name for name in _imports(module, path)
        if (name == "tokend" or name.startswith(("tokend.", "tokend_api"))) and not _within(name, allowed | {layer})
    )  # fmt: skip
    assert not wrong, f"{module} ({layer}) imports {wrong}"
    if layer in BELOW_FRONT_ENDS or layer == "tokend.supervisor":
        serving = sorted(name for name in _imports(module, path) if _within(name, set(SERVING_LIBRARIES))
                         and name not in FILE_FORMAT_PROTOBUF.get(module, ()))
        if layer == "tokend.supervisor":  # the metrics endpoint is the supervisor's own
            serving = [name for name in serving if not name.startswith("prometheus_client")]
        assert not serving, f"{module} ({layer}) imports {serving}"
