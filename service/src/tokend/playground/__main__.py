"""`python -m tokend.playground` — the playground alone, without the gRPC server.

    python -m tokend.playground --port 8080                 # embedded default registry, 127.0.0.1:8080
    python -m tokend.playground --registry ./models --host 0.0.0.0

Flags are the settings of `tokend serve` that the playground uses (same names, help and `TOKEND_*`
variables, see DEVELOPERS.md), with `--port` for `--playground-port` and `--host` for `--playground-host`
(default 127.0.0.1: this machine only); `--port 0` picks a free port, and the log line
"token playground serving on http://HOST:PORT/" says which.
"""

from __future__ import annotations

import argparse
import sys

from tokend.logs import configure_logging
from tokend.settings import Settings, SettingsError, add_setting_flags, setting_flags

from .server import serve_playground

_SETTINGS = ("playground_host", "playground_port", "registry", "reload_interval", "unload_unused_after",
             "max_pinned_versions", "max_batch_items", "max_request_bytes", "max_message_bytes", "log_level")  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m tokend.playground", description=__doc__.splitlines()[0])
    add_setting_flags(parser, _SETTINGS, aliases={"playground_port": "--port", "playground_host": "--host"})
    flags = setting_flags(parser.parse_args(argv))
    try:
        # Alone, nothing else listens: the gRPC and metrics ports are not this process's.
        settings = Settings.load(flags={**flags, "port": 0, "metrics_port": 0, "workers": 1})
    except SettingsError as exc:
        print(f"python -m tokend.playground: {exc}", file=sys.stderr)
        return 2
    configure_logging(settings.log_level)
    serve_playground(settings)
    return 0


if __name__ == "__main__":
    sys.exit(main())
