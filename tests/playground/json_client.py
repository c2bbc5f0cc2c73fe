"""A few lines of HTTP for the playground tests: JSON in, (status, headers, JSON or bytes) out.

urllib raises on 4xx/5xx; the tests want to look at error bodies, so this returns them instead.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Any


@dataclass
class Reply:
    status: int
    headers: dict[str, str]
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)

    @property
    def error(self) -> dict[str, Any]:
        return self.json()["error"]


class JsonClient:
    def __init__(self, base_url: str) -> None:
        self.base_url = base_url.rstrip("/")

    def get(self, path: str) -> Reply:
        return self._open(urllib.request.Request(self.base_url + path))

    def post(self, path: str, body: Any) -> Reply:
        data = body if isinstance(body, bytes) else json.dumps(body).encode("utf-8")
        request = urllib.request.Request(
            self.base_url + path, data=data, headers={"Content-Type": "application/json"}, method="POST",
        )
        return self._open(request)

    def raw(self, request_bytes: bytes) -> bytes:
        """Send bytes as they are (for requests urllib cannot make, e.g. without Content-Length)."""
        host, port = self.base_url.removeprefix("http://").split(":")
        with socket.create_connection((host, int(port)), timeout=10) as sock:
            sock.sendall(request_bytes)
            chunks = []
            while chunk := sock.recv(65536):
                chunks.append(chunk)
        return b"".join(chunks)

    @staticmethod
    def _open(request: urllib.request.Request) -> Reply:
        try:
            with urllib.request.urlopen(request, timeout=30) as response:
                return Reply(response.status, dict(response.headers), response.read())
        except urllib.error.HTTPError as error:
            return Reply(error.code, dict(error.headers), error.read())


def parse_reply(raw: bytes) -> Reply:
    """The first HTTP/1.1 response in ``raw`` (status line, headers, Content-Length body)."""
    head, _, rest = raw.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(":")
        headers[name.strip()] = value.strip()
    length = int(headers.get("Content-Length", len(rest)))
    return Reply(status, headers, rest[:length])
