"""HTTP routing for the playground: the page's static files, the JSON API, a health check.

    GET  /                       the page (static/index.html)
    GET  /static/<file>          playground.js, playground.css (a fixed list: no path is ever joined)
    GET  /healthz                "ok" once the server runs
    GET  /api/v1/models          every model: names, versions, aliases
    GET  /api/v1/models/<ref>    one model version ("name", "name@7", "name@alias"; URL-encoded)
    POST /api/v1/encode | count | decode   JSON in, JSON out (see api.py)
    POST /api/v1/encode_chat | count_chat   chats in the model's chat format (see chat_api.py)

Every response has a Content-Length (HTTP/1.1 keep-alive works) and defensive headers: a Content Security
Policy that allows only this origin's own script and style (no inline script, so text that reaches the DOM
can never run), nosniff, no framing, no referrer.

Not handled: chunked request bodies (411: send Content-Length), HTTPS (put a proxy in front), compression.
"""

from __future__ import annotations

import json
import logging
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from tokend_api import MAX_REQUEST_BYTES

from .api import PlaygroundApi
from .http_error import HttpError, error_from_exception

logger = logging.getLogger(__name__)

# path -> (package-data file name, content type)
_STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/static/playground.css": ("playground.css", "text/css; charset=utf-8"),
    "/static/chat.js": ("chat.js", "text/javascript; charset=utf-8"),
    "/static/chat.css": ("chat.css", "text/css; charset=utf-8"),
}

_SECURITY_HEADERS = {
    "Content-Security-Policy": (
        "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; img-src 'self' data:; "
        "base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
}

_MODELS_PREFIX = "/api/v1/models/"


def _read_static(name: str) -> bytes:
    return resources.files("tokend.playground").joinpath("static", name).read_bytes()


class PlaygroundRequestHandler(BaseHTTPRequestHandler):
    """One request. `api` is set on a subclass per server (see `handler_for`), not passed per request."""

    api: ClassVar[PlaygroundApi]
    protocol_version = "HTTP/1.1"
    server_version = "tokend-playground"
    sys_version = ""
    # A client that stops sending mid-request frees its thread after this many seconds.
    timeout = 30

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        path = urlsplit(self.path).path
        if path in _STATIC_FILES:
            name, content_type = _STATIC_FILES[path]
            self._send(HTTPStatus.OK, _read_static(name), content_type)
        elif path == "/healthz":
            self._send(HTTPStatus.OK, b"ok\n", "text/plain; charset=utf-8")
        elif path == "/api/v1/models":
            self._answer(self.api.models)
        elif path.startswith(_MODELS_PREFIX) and len(path) > len(_MODELS_PREFIX):
            ref = unquote(path[len(_MODELS_PREFIX):])
            self._answer(lambda: self.api.model(ref))
        elif path in {"/api/v1/encode", "/api/v1/count", "/api/v1/decode", "/api/v1/encode_chat", "/api/v1/count_chat"}:
            self._send_error(HttpError(405, "method_not_allowed", f"{path} takes POST with a JSON body"))
        else:
            self._send_error(HttpError(404, "not_found", f"no such path {path!r}; the API is under /api/v1/"))

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        endpoints = {"/api/v1/encode": self.api.encode, "/api/v1/count": self.api.count, "/api/v1/decode": self.api.decode,
                     "/api/v1/encode_chat": self.api.encode_chat, "/api/v1/count_chat": self.api.count_chat}
        endpoint = endpoints.get(path)
        if endpoint is None:
            self.close_connection = True  # the body was not read
            known = ", ".join(sorted(endpoints))
            self._send_error(HttpError(404, "not_found", f"no POST endpoint {path!r}; there are {known}"))
            return
        try:
            body = self._read_json()
        except HttpError as error:
            self.close_connection = True
            self._send_error(error)
            return
        self._answer(lambda: endpoint(body))

    # -- plumbing ----------------------------------------------------------------------------------------

    def _read_json(self) -> Any:
        length_header = self.headers.get("Content-Length")
        if length_header is None:
            raise HttpError(411, "length_required", "send the JSON body with a Content-Length header")
        try:
            length = int(length_header)
        except ValueError:
            raise HttpError(400, "invalid_argument", f"Content-Length {length_header!r} is not a number") from None
        limit = self.api.limits.max_body_bytes
        if length < 0 or length > limit:
            raise HttpError(
                413, "resource_exhausted",
                f"a request body of {length} bytes exceeds the limit of {limit}; send less per request",
                limit=limit, setting=MAX_REQUEST_BYTES,
            )
        raw = self.rfile.read(length)
        try:
            return json.loads(raw.decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise HttpError(400, "invalid_argument", f"the request body is not UTF-8 JSON: {exc}") from exc

    def _answer(self, produce: Any) -> None:
        try:
            result = produce()
        except Exception as exc:  # noqa: BLE001 — every failure becomes a JSON error, the thread survives
            error = error_from_exception(exc)
            if error.status >= 500:
                logger.exception("playground request %s failed", urlsplit(self.path).path)
            self._send_error(error)
            return
        self._send(HTTPStatus.OK, _json_bytes(result), "application/json")

    def _send_error(self, error: HttpError) -> None:
        self._send(error.status, _json_bytes(error.body()), "application/json")

    def _send(self, status: int, payload: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in _SECURITY_HEADERS.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        # Request lines name paths only (the page keeps the text in the URL fragment, which is never sent).
        logger.debug("%s " + format, self.address_string(), *args)


def _json_bytes(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", errors="surrogatepass")


def handler_for(api: PlaygroundApi) -> type[PlaygroundRequestHandler]:
    """A handler class bound to one API instance (http.server builds one handler object per request)."""
    return type("BoundPlaygroundRequestHandler", (PlaygroundRequestHandler,), {"api": api})
