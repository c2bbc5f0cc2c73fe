"""``tokend serve``: start the gRPC service (supervisor + workers) with the settings of DEVELOPERS.md.

Every flag has a ``TOKEND_*`` environment variable (flag wins); an unset flag leaves the variable or
the default in force. Bad settings exit with status 2 and a message naming the flag and variable.

    tokend serve --port 50051 --workers 4 --registry /srv/models
    TOKEND_MODELS=cl100k_base,o200k_base tokend serve
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

__all__ = ["add_parser", "run_serve", "build_parser"]

# setting name → (type for argparse, help)
_FLAGS: dict[str, tuple[Any, str]] = {
    "host": (str, "address to listen on (default 0.0.0.0)"),
    "port": (int, "gRPC port shared by all workers (default 50051)"),
    "metrics_port": (int, "Prometheus /metrics port; 0 = off (default 9464)"),
    "workers": (int, "worker processes (default: CPUs available to the process, cgroup-aware)"),
    "registry": (str, "model registry: a directory or an http(s):// URL (default: the embedded registry)"),
    "models": (str, "comma-separated model references loaded before SERVING (default: all, latest of each)"),
    "reload_interval": (float, "seconds between registry refreshes; 0 = off (default 30)"),
    "max_batch_items": (int, "most items per request (default 1024)"),
    "max_request_bytes": (int, "most input bytes per request (default 8388608)"),
    "max_message_bytes": (int, "gRPC max receive/send message size (default 16777216)"),
    "grace_period": (float, "seconds in-flight calls get to finish on SIGTERM (default 20)"),
    "max_connection_age": (float, "seconds before clients are asked to reconnect; 0 = never (default 300)"),
    "tls_cert": (str, "PEM server certificate (with --tls-key turns on TLS)"),
    "tls_key": (str, "PEM private key of --tls-cert"),
    "tls_client_ca": (str, "PEM CA bundle; clients must present a certificate it signed (mutual TLS)"),
    "playground_port": (int, "token playground web page port; 0 = off (default 8080)"),
    "log_level": (str, "debug, info, warning or error (default info)"),
}


def add_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``serve`` on the CLI's subparsers; the parsed namespace's ``func`` runs it."""
    parser = subparsers.add_parser(
        "serve",
        help="run the gRPC tokenizer service",
        description="Run the tokend gRPC service. Every flag can also be set as TOKEND_<FLAG> (e.g. TOKEND_PORT).",
    )
    _add_flags(parser)
    parser.set_defaults(func=run_serve)
    return parser


def build_parser() -> argparse.ArgumentParser:
    """A stand-alone parser with the serve flags (``python -m tokend.server``)."""
    parser = argparse.ArgumentParser(prog="tokend serve", description="Run the tokend gRPC service.")
    _add_flags(parser)
    return parser


def _add_flags(parser: argparse.ArgumentParser) -> None:
    from tokend.server.settings import env_name, flag_name

    for name, (kind, help_text) in _FLAGS.items():
        parser.add_argument(flag_name(name), dest=name, type=kind, default=None, help=f"{help_text} [{env_name(name)}]")
    parser.add_argument(
        "--reflection",
        dest="reflection",
        action=argparse.BooleanOptionalAction,
        default=None,
        help=f"gRPC server reflection, for grpcurl (default on) [{env_name('reflection')}]",
    )


def run_serve(args: argparse.Namespace) -> int:
    """Validate settings and run the supervisor until it is told to stop; returns the exit code."""
    from tokend.server.settings import SETTING_NAMES, Settings, SettingsError
    from tokend.server.supervisor import EXIT_CONFIG_ERROR, Supervisor

    flags = {name: getattr(args, name, None) for name in SETTING_NAMES}
    try:
        settings = Settings.load(flags=flags)
    except SettingsError as exc:
        print(f"tokend serve: {exc}", file=sys.stderr)
        return EXIT_CONFIG_ERROR
    return Supervisor(settings).run()
