"""`python -m tokend.playground` — the playground alone, without the gRPC server.

    python -m tokend.playground --port 8080                 # embedded default registry, 127.0.0.1:8080
    python -m tokend.playground --registry ./models --host 0.0.0.0

Flags default to the matching `TOKEND_*` settings of `tokend serve` (see DEVELOPERS.md); `--port 0` picks
a free port, and the log line "token playground serving on http://HOST:PORT/" says which.
"""

from __future__ import annotations

import argparse
import logging
import os
from types import SimpleNamespace

from .server import serve_playground


def main(argv: list[str] | None = None) -> None:
    env = os.environ.get
    parser = argparse.ArgumentParser(prog="python -m tokend.playground", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1", help="interface to listen on (default 127.0.0.1)")
    parser.add_argument("--port", type=int, default=int(env("TOKEND_PLAYGROUND_PORT", "8080")))
    parser.add_argument("--registry", default=env("TOKEND_REGISTRY") or None,
                        help="registry directory or http(s) URL (default: the embedded registry)")
    parser.add_argument("--reload-interval", type=float, default=float(env("TOKEND_RELOAD_INTERVAL", "30")))
    parser.add_argument("--max-request-bytes", type=int, default=int(env("TOKEND_MAX_REQUEST_BYTES", "8388608")))
    parser.add_argument("--max-batch-items", type=int, default=int(env("TOKEND_MAX_BATCH_ITEMS", "1024")))
    parser.add_argument("--log-level", default=env("TOKEND_LOG_LEVEL", "info"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    serve_playground(SimpleNamespace(
        host=args.host, playground_port=args.port, registry=args.registry, reload_interval=args.reload_interval,
        max_request_bytes=args.max_request_bytes, max_batch_items=args.max_batch_items,
    ))


if __name__ == "__main__":
    main()
