"""The baseline the service benchmark compares against: a small FastAPI/uvicorn HTTP wrapper around
tiktoken, written the way many teams write one. Benchmark-only (bench/requirements.txt); never shipped.

Endpoints (JSON in, JSON out):
- ``POST /encode``  ``{"model": "cl100k_base", "texts": ["..."]}`` → ``{"results": [[ids]], "total_tokens": n}``
- ``POST /count``   ``{"model": "cl100k_base", "texts": ["..."]}`` → ``{"counts": [n], "total": n}``
- ``GET /healthz``  → ``{"status": "ok"}`` once the encodings are loaded

What "typical" means here, deliberately: plain ``def`` endpoints (FastAPI runs them in its thread pool,
the documented way for blocking code), pydantic request models, ``tiktoken.Encoding.encode_batch`` for
``/encode`` (tiktoken's own thread pool; the Rust core releases the GIL) and ``encode`` per text for
``/count`` (one short text: a thread pool per call would only cost), tiktoken's default special-token
policy (a special token in the text is a 400, as tokend's INVALID_ARGUMENT), and
``uvicorn --workers N`` with N equal to tokend's worker count, uvloop and httptools when installed
(``uvicorn[standard]``). Nothing is tuned beyond that: it is the baseline, not a competitor.

Not handled: decode, model versions, limits, metrics — the things tokend adds.

    python -m bench.http_wrapper --port 8123 --workers 2     # blocks; SIGTERM/SIGINT stops it
"""

from __future__ import annotations

import argparse
import os

from fastapi import FastAPI, HTTPException
from pydantic import BaseModel

from bench._oracle import tiktoken_encoding

MODELS = ("cl100k_base", "o200k_base")


class TextsRequest(BaseModel):
    model: str = "cl100k_base"
    texts: list[str]


app = FastAPI(title="tiktoken HTTP wrapper (benchmark baseline)")
# Loaded at import, i.e. once per uvicorn worker process, before it accepts connections.
_encodings = {name: tiktoken_encoding(name) for name in MODELS}


def _encoding(model: str):
    try:
        return _encodings[model]
    except KeyError:
        raise HTTPException(status_code=404, detail=f"unknown model {model!r}; available: {', '.join(MODELS)}") from None


@app.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@app.post("/encode")
def encode(request: TextsRequest) -> dict[str, object]:
    encoding = _encoding(request.model)
    try:
        results = encoding.encode_batch(request.texts)
    except ValueError as exc:  # a disallowed special token, as tiktoken reports it
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"results": results, "total_tokens": sum(len(ids) for ids in results)}


@app.post("/count")
def count(request: TextsRequest) -> dict[str, object]:
    encoding = _encoding(request.model)
    try:
        # Not encode_batch: it builds a thread pool per call, a poor trade for one short text.
        counts = [len(encoding.encode(text)) for text in request.texts]
    except ValueError as exc:
        raise HTTPException(status_code=400, detail=str(exc)) from None
    return {"counts": counts, "total": sum(counts)}


def main(argv: list[str] | None = None) -> int:
    import uvicorn

    parser = argparse.ArgumentParser(prog="python -m bench.http_wrapper", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8123)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)
    # The workers import this module by name; make sure they find `bench` from the repository root.
    os.environ["PYTHONPATH"] = os.pathsep.join(
        filter(None, [os.path.dirname(os.path.dirname(os.path.abspath(__file__))), os.environ.get("PYTHONPATH")])
    )
    uvicorn.run("bench.http_wrapper:app", host=args.host, port=args.port, workers=args.workers, log_level="warning", access_log=False)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
