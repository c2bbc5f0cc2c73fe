"""The token playground: a web page that shows how registered models split text, and its JSON API.

`serve_playground(settings)` is what `tokend serve` runs (own child process, own port); `PlaygroundServer`
runs it in a thread (tests, embedding); `python -m tokend.playground` runs it alone. See docs/playground.md.
"""

from .api import PlaygroundApi, PlaygroundLimits
from .http_error import HttpError
from .server import PlaygroundServer, serve_playground

__all__ = ["HttpError", "PlaygroundApi", "PlaygroundLimits", "PlaygroundServer", "serve_playground"]
