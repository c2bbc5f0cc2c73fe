"""HTTP routing for the playground: the page's static files, the JSON API, a health check.

    GET  /                       the page (static/index.html)
    GET  /static/<file>          token_view.js, playground.js, playground.css, ... (a fixed list: no path is ever joined)
    GET  /healthz                "ok" once the server runs
    GET  /api/v1/models          every model: names, versions, aliases
    GET  /api/v1/models/<ref>    one model version ("name", "name@7", "name@alias"; URL-encoded)
    POST /api/v1/encode | count | decode   JSON in, JSON out (see api.py)
    POST /api/v1/truncate | chunk          token budgets (see budget_api.py)
    POST /api/v1/encode_chat | count_chat   chats in the model's chat format (see chat_api.py)

HEAD is GET without the body. Every response has a Content-Length (HTTP/1.1 keep-alive works) and defensive
headers: a Content Security Policy that allows only this origin's own script and style (no inline script, so
text that reaches the DOM can never run), nosniff, no framing, no referrer. Every refusal — of the API, of a
method the page does not serve (405), of HTTP that does not parse (the stdlib's ``send_error``: 400, 414,
431) — is the JSON error of ``http_error.py`` with a 4xx and those headers. Bodies: a Content-Length of
digits only (else 400), at most ``max_body_bytes`` (413), objects, lists and commas that count at most
``max_structure_bytes`` (413, found before the parse: json_structure.py), JSON nested at most ~1,000 levels
and numbers of at most 4,300 digits (Python's bounds; else 400).

Not handled: chunked request bodies (411: send Content-Length), HTTPS (put a proxy in front), compression.
"""

from __future__ import annotations

import io
import json
import logging
import time
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler
from importlib import resources
from typing import Any, ClassVar
from urllib.parse import unquote, urlsplit

from tokend_api import MAX_REQUEST_BYTES

from tokend.service.admission import NOTHING_RESERVED, WorkAdmission
from tokend.service.call_record import recording
from tokend.service.errors import ServiceUnavailable, echo

from .api import PlaygroundApi
from .http_error import HttpError, error_from_exception
from .json_structure import CONTAINER_BYTES, ENTRY_BYTES, structure_bytes
from .large_bodies import LARGE_BODY_BYTES, body_read_seconds, large_body_places
from .refusal_log import RefusalLog

logger = logging.getLogger(__name__)

# path -> (package-data file name, content type)
_STATIC_FILES = {
    "/": ("index.html", "text/html; charset=utf-8"),
    "/static/token_view.js": ("token_view.js", "text/javascript; charset=utf-8"),
    "/static/playground.js": ("playground.js", "text/javascript; charset=utf-8"),
    "/static/playground.css": ("playground.css", "text/css; charset=utf-8"),
    "/static/budgets.js": ("budgets.js", "text/javascript; charset=utf-8"),
    "/static/budgets.css": ("budgets.css", "text/css; charset=utf-8"),
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

# path -> the PlaygroundApi method that answers a POST there (the route table)
_POST_ENDPOINTS = {
    "/api/v1/encode": "encode",
    "/api/v1/count": "count",
    "/api/v1/decode": "decode",
    "/api/v1/truncate": "truncate",
    "/api/v1/chunk": "chunk",
    "/api/v1/encode_chat": "encode_chat",
    "/api/v1/count_chat": "count_chat",
}

_MODELS_PREFIX = "/api/v1/models/"
# An answer of at most this many bytes goes out in the same write as its headers (``_send``).
_ONE_WRITE_BYTES = 64 * 1024
_ALLOWED_METHODS = "GET, HEAD, POST"


def _read_static(name: str) -> bytes:
    return resources.files("tokend.playground").joinpath("static", name).read_bytes()


class PlaygroundRequestHandler(BaseHTTPRequestHandler):
    """One request. `api` is set on a subclass per server (see `handler_for`), not passed per request."""

    api: ClassVar[PlaygroundApi]
    large_bodies: ClassVar[WorkAdmission]
    refusals: ClassVar[RefusalLog]
    protocol_version = "HTTP/1.1"
    server_version = "tokend-playground"
    sys_version = ""
    # A client that stops sending mid-request frees its thread after this many seconds.
    timeout = 30
    # TCP_NODELAY: an answer's last part is sent at once, not held until the client acknowledges the part before
    # (Nagle), which a client delays up to 40 ms (delayed ACK) while it waits for the rest: with headers and
    # body written apart, each keep-alive request sent right after the last answer took ~44 ms (``_send``).
    disable_nagle_algorithm = True

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
        elif path in _POST_ENDPOINTS:
            self._send_error(HttpError(405, "method_not_allowed", f"{path} takes POST with a JSON body"))
        else:
            self._send_error(HttpError(404, "not_found", f"no such path {path!r}; the API is under /api/v1/"))

    def do_HEAD(self) -> None:  # noqa: N802 (GET's status and headers; ``_send`` leaves out the body)
        self.do_GET()

    def do_POST(self) -> None:  # noqa: N802
        path = urlsplit(self.path).path
        method_name = _POST_ENDPOINTS.get(path)
        if method_name is None:
            self.close_connection = True  # the body was not read
            known = ", ".join(sorted(_POST_ENDPOINTS))
            self._send_error(HttpError(404, "not_found", f"no POST endpoint {path!r}; there are {known}"))
            return
        leave = NOTHING_RESERVED
        try:
            try:
                length = self._body_length()
                if length >= LARGE_BODY_BYTES:
                    # large_bodies.py: the body waits unread (in the socket) for a place, then must arrive in time
                    leave = self.large_bodies.reserve(1, call=None)
                    raw = self._read_body(length, time.monotonic() + body_read_seconds(length))
                else:
                    raw = self._read_body(length)
                body = self._parse_json(raw)
            except (HttpError, ServiceUnavailable) as error:
                self.close_connection = True  # the body may be unread, or read in part
                self._send_error(error if isinstance(error, HttpError) else error_from_exception(error))
                return
            del raw  # the parsed body is what the call holds
            endpoint = getattr(self.api, method_name)
            self._answer(lambda: endpoint(body))
        finally:
            # The body's bytes and parsed values freed before the place is given back: the last place out
            # returns the freed memory to the system (large_bodies.py), which it cannot while a frame holds them.
            raw = body = None
            leave()

    # -- plumbing ----------------------------------------------------------------------------------------

    def _body_length(self) -> int:
        """The body's length from its headers, refused (HttpError) by them or by its size before it is read."""
        if self.headers.get("Transfer-Encoding") is not None:
            raise HttpError(411, "length_required", "send the JSON body with a Content-Length header, not Transfer-Encoding")
        lengths = self.headers.get_all("Content-Length") or []
        if not lengths:
            raise HttpError(411, "length_required", "send the JSON body with a Content-Length header")
        if len(lengths) > 1:
            raise HttpError(400, "invalid_argument", "send one Content-Length header, not several")
        length_text = lengths[0].strip()
        if not (length_text.isascii() and length_text.isdigit()):  # int() would take "-1", "+5", "1_0"
            raise HttpError(
                400, "invalid_argument", f"Content-Length {echo(length_text)!r} is not a byte count (digits only)"
            )
        limit = self.api.limits.max_body_bytes
        length = int(length_text) if len(length_text) <= 18 else limit + 1
        if length > limit:
            raise HttpError(
                413, "resource_exhausted",
                f"a request body of {length_text} bytes exceeds the limit of {limit}; send less per request",
                limit=limit, setting=MAX_REQUEST_BYTES,
            )
        return length

    def _read_body(self, length: int, deadline: float | None = None) -> bytes | bytearray:
        """The body's bytes (by ``deadline``, a ``time.monotonic()``, when given: else 408), refused (HttpError)
        by its structure before any parse."""
        if deadline is None:
            raw = self.rfile.read(length)
        else:
            raw = self._read_by(length, deadline)
        self.server.request_read(self.connection)  # the whole request is here (http_listener: never closed now)
        self._check_structure(raw)
        return raw

    def _read_by(self, length: int, deadline: float) -> bytearray:
        # Into one buffer, each wait for the socket bounded by what is left: a body that holds a place must
        # not keep it by trickling in (large_bodies.py).
        buffer = bytearray(length)
        view, read = memoryview(buffer), 0
        try:
            while read < length:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError
                self.connection.settimeout(min(left, self.timeout))
                # At most the reader's buffer a time: asked for more, it reads the socket even with bytes buffered,
                # and a timeout there would lose the count of the bytes it had already copied.
                got = self.rfile.readinto1(view[read:read + io.DEFAULT_BUFFER_SIZE])
                if not got:
                    break  # the client closed: the short body is refused by its parse
                read += got
        except TimeoutError:
            raise HttpError(
                408, "deadline_exceeded",
                f"the request body did not arrive in time ({read:,} of {length:,} bytes within "
                f"{body_read_seconds(length):.0f} s); send it at 1 MiB/s or more",
            ) from None
        finally:
            view.release()
            self.connection.settimeout(self.timeout)
        return buffer if read == length else buffer[:read]

    @staticmethod
    def _parse_json(raw: bytes | bytearray) -> Any:
        try:
            return json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            raise HttpError(400, "invalid_argument", f"the request body is not UTF-8 JSON: {exc}") from None
        except RecursionError:
            raise HttpError(
                400, "invalid_argument",
                "the JSON body is nested too deeply for the parser; the API's requests nest four levels at most",
            ) from None
        except ValueError as exc:  # json.JSONDecodeError, or an integer over Python's 4,300 digits
            if isinstance(exc, json.JSONDecodeError):
                raise HttpError(400, "invalid_argument", f"the request body is not UTF-8 JSON: {exc}") from None
            raise HttpError(
                400, "invalid_argument",
                "a number in the JSON body has more than 4,300 digits; token ids and options are small integers",
            ) from None

    def _check_structure(self, raw: bytes | bytearray) -> None:
        """413 naming max_request_bytes when the body's objects, lists and commas count more than any
        acceptable request's (json_structure.py): refused before json.loads builds them."""
        limits = self.api.limits
        limit = limits.max_structure_bytes
        if len(raw) * CONTAINER_BYTES <= limit:  # a byte counts 8 at most: no body this small can be over
            return
        charge = structure_bytes(raw)
        if charge > limit:
            raise HttpError(
                413, "resource_exhausted",
                f"the JSON body's objects, lists and commas count {charge:,} bytes ({CONTAINER_BYTES} an object or "
                f"list, {ENTRY_BYTES} a comma), over the {limit:,} that a request within max_request_bytes "
                f"({limits.max_request_bytes:,}) and max_batch_items ({limits.max_batch_items:,}) can hold; "
                "send fewer items per request",
                limit=limit, setting=MAX_REQUEST_BYTES,
            )  # fmt: skip

    def _answer(self, produce: Any) -> None:
        # One call record: the service's memory reservation lasts until the JSON answer has been written. A
        # client that does not read holds its answer for up to the socket's timeout (30 s), and 256 connections
        # may: written outside the reservation, 40 decodes of 15 MiB answers whose clients never read held
        # +1.1 GiB of the playground; inside it, large answers wait for room like large requests.
        with recording():
            try:
                payload = _json_bytes(produce())
            except Exception as exc:  # noqa: BLE001 — every failure becomes a JSON error, the thread survives
                error = error_from_exception(exc)
                if error.status == 500:  # a broken model or a bug: the traceback is for the operator
                    logger.exception("playground request %s failed", urlsplit(self.path).path)
                elif error.status > 500:  # busy, loading, deadline: the client retries; a line now and then is enough
                    self.refusals.refused(urlsplit(self.path).path, error.status, error.message)
                self._send_error(error)
                return
            self._send(HTTPStatus.OK, payload, "application/json")

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """The stdlib's own refusals (a request line or headers that do not parse, a method without a
        ``do_<METHOD>``) as JSON errors with the security headers, instead of its HTML page."""
        self.close_connection = True
        if not str(self.request_version).startswith("HTTP/1."):
            self.request_version = "HTTP/1.1"  # unparsed (the stdlib would answer HTTP/0.9-style, without headers)
        if code == HTTPStatus.NOT_IMPLEMENTED:  # no do_<METHOD>
            method = echo(str(self.command))
            self._send_error(
                HttpError(405, "method_not_allowed", f"method {method!r} is not served here; use {_ALLOWED_METHODS}"),
                {"Allow": _ALLOWED_METHODS},
            )
            return
        status = code if 400 <= code < 500 else HTTPStatus.BAD_REQUEST  # 505: an HTTP version other than 1.x
        reason = message or HTTPStatus(code).phrase
        self._send_error(HttpError(status, "invalid_argument", f"the request is not HTTP/1.1 this server reads: {reason}"))

    def _send_error(self, error: HttpError, headers: dict[str, str] | None = None) -> None:
        self._send(error.status, _json_bytes(error.body()), "application/json", headers)

    def _send(self, status: int, payload: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in {**_SECURITY_HEADERS, **(headers or {})}.items():
            self.send_header(name, value)
        if self.close_connection:
            self.send_header("Connection", "close")
        if self.command != "HEAD" and self.request_version != "HTTP/0.9" and len(payload) <= _ONE_WRITE_BYTES:
            # Headers and body in one write (the stdlib's end_headers, the body joined to its buffer of headers):
            # each socket write gives up the GIL, and while a chat template renders, getting it back takes up to a
            # switch interval (server.py: GIL_SWITCH_SECONDS); and two small writes met Nagle and the client's
            # delayed ACK (``disable_nagle_algorithm``). A larger body is not copied to be joined.
            self._headers_buffer.extend((b"\r\n", payload))
            self.flush_headers()
            return
        self.end_headers()  # (HTTP/0.9: no headers are written)
        if self.command != "HEAD":
            self.wfile.write(payload)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (http.server's signature)
        # Request lines name paths only (the page keeps the text in the URL fragment, which is never sent).
        logger.debug("%s " + format, self.address_string(), *args)


def _json_bytes(value: Any) -> bytes:
    # A text the caller sent with a lone surrogate (JSON "\ud800") comes back in a chunk's or a truncation's
    # text, or a token's: UTF-8 has no bytes for it (surrogatepass wrote ED A0 80, which no strict JSON reader
    # accepts and a browser reads as three U+FFFD), so it goes back as the same JSON escape. Surrogates occur
    # only inside JSON strings, and backslashreplace writes exactly "\udXXX" for them.
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode("utf-8", errors="backslashreplace")


def overload_response() -> bytes:
    """The complete 503 a connection over the server's bound gets (JSON, security headers, then closed)."""
    payload = _json_bytes(HttpError(503, "unavailable", "too many connections to the playground; retry shortly").body())
    head = [
        "HTTP/1.1 503 Service Unavailable", "Content-Type: application/json", f"Content-Length: {len(payload)}",
        *(f"{name}: {value}" for name, value in _SECURITY_HEADERS.items()), "Retry-After: 1", "Connection: close",
    ]  # fmt: skip
    return ("\r\n".join(head) + "\r\n\r\n").encode("ascii") + payload


def handler_for(api: PlaygroundApi, large_bodies: WorkAdmission | None = None) -> type[PlaygroundRequestHandler]:
    """A handler class bound to one API instance, one gate of large bodies (large_bodies.py; None: a new one)
    and one log of retried refusals (refusal_log.py) — http.server builds one handler object per request."""
    places = large_bodies if large_bodies is not None else large_body_places()
    return type(
        "BoundPlaygroundRequestHandler", (PlaygroundRequestHandler,),
        {"api": api, "large_bodies": places, "refusals": RefusalLog(logger)},
    )  # fmt: skip
