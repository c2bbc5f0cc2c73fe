"""Split patterns outside the native compiler's subset (tokend.engine.splitting refuses them, naming the
construct: lookbehind, backreferences, ...), run by the `regex` module: the fallback of the pre-tokenizer
(pre_tokenizer.compile_step_splitter), with the same two methods as the native `Splitter`.

Two ways to cut text with one pattern:
- `findall`: only the matches are pieces, text between them is dropped (tiktoken; no OpenAI pattern leaves
  any gap). Whole matches, also for a pattern with groups (where `regex.findall` would give the groups).
- `split_isolated`: matches and the text between them are pieces, in order (Hugging Face's
  `Split(behavior="Isolated")`, llama.cpp's regex splitting).

>>> splitter = compile_regex_splitter(r"\\p{N}{1,3}", dialect="oniguruma")
>>> splitter.findall("ab12345c")
['123', '45']
>>> splitter.split_isolated("ab12345c")
['ab', '123', '45', 'c']

Known difference: Hugging Face runs tokenizer.json patterns with Oniguruma, whose `$` also matches before
every newline (the `regex` module's only before a final one) and whose Unicode tables are older; none of
the patterns of the families tokend imports uses `$` where it matters, and the tests hold every imported
model to its reference library on text of many scripts. `dialect` records which engine a pattern was
written for (the native compiler implements both; this fallback only the `regex` module's reading).
"""

from __future__ import annotations

import contextvars
import time
from collections.abc import Callable
from typing import Any

import regex

from ..errors import ModelFormatError
from .splitting.nodes import Dialect
from .splitting.pattern_bounds import check_pattern_bounds

__all__ = ["RegexSplitter", "RegexTime", "compile_regex_splitter", "shared_regex_time"]


# The `regex` module backtracks, and a pattern outside the native subset (a backreference, a lookbehind) can
# take exponential time on a short text: "(a|aa)+\\1b" on 41 "a"s runs for minutes, holding a worker. Every
# call is bounded by a time linear in the text and lets other threads run while it matches. The module counts
# the process's CPU time (measured: another busy thread of the process uses it up too), so the bound is far
# above what a real pattern needs (5-20 MB/s, 0.05-0.2 us a character): a legitimate call fails only if it
# gets under 1/25 of the CPU its process burns meanwhile.
BASE_SECONDS = 0.5
SECONDS_PER_CHAR = 10e-6
# A call still matching after this much (the module's clock) starts again on the request's runner when it has
# one. Real patterns split a text in far less (0.05-0.2 us a character), so nearly every call stays on its
# thread; the one that backtracks spends at most this at the caller's priority, the rest where the service
# puts it (a low-priority thread: it then delays no other call's core), and a hop costs no call that is fast.
INLINE_SECONDS = 0.002


class RegexTime:
    """The fallback's time shared by every text of one request (``shared_regex_time``): BASE_SECONDS once,
    plus SECONDS_PER_CHAR per character of the texts split so far, as the sum of those texts' calls' thread
    CPU time. Without it each text has its own bound, and a batch of texts that each backtrack for just under
    theirs cost ~0.4 s an item (1,024 items: minutes). Two clocks: what a call spent is charged in its
    thread's CPU time, while `regex` stops a call on the process's CPU time (its timeout), so in a busy
    process a call is stopped before its share is spent, never after. Not thread-safe: one request's texts
    are split one after another (on its handler thread, or a bulk-lane thread that carries its context).
    `most_chars`: the request's own characters, for operations that split parts of their text again (a
    chunking's windows, a truncation's retries, a chunk overlap): the characters charged never pass it, so
    re-splitting the same text earns no more time.

        >>> RegexTime(most_chars=1000).allowed("x" * 5000) == BASE_SECONDS + SECONDS_PER_CHAR * 1000
        True

    `runner`: where a call that is still matching after INLINE_SECONDS starts again: ``runner(fn)`` returns
    ``fn()`` run elsewhere (the service gives its low-priority lane, service/bulk_lane), None: on the caller's
    thread to the end.
    """

    __slots__ = ("chars", "spent", "most_chars", "runner")

    def __init__(self, most_chars: int | None = None, runner: Callable[[Callable[[], Any]], Any] | None = None) -> None:
        self.chars = 0
        self.spent = 0.0
        self.most_chars = most_chars
        self.runner = runner

    def charged_chars(self, text: str) -> int:
        """The characters the request's time is for, with `text` split too."""
        chars = self.chars + len(text)
        return chars if self.most_chars is None else min(chars, self.most_chars)

    def allowed(self, text: str) -> float:
        """Seconds a call on `text` may take now."""
        return BASE_SECONDS + SECONDS_PER_CHAR * self.charged_chars(text) - self.spent


_SHARED: contextvars.ContextVar[RegexTime | None] = contextvars.ContextVar("tokend_regex_time", default=None)


class shared_regex_time:  # noqa: N801 - used as a function: ``with shared_regex_time():``
    """Within it, the fallback's calls share one RegexTime: the outermost one opened in this context, else
    ``regex_time`` when given (a request's own, entered again for work it does later: a ChunkStream's chunks
    are encoded as the client reads them, after the call that opened it returned), else a new one.

    >>> with shared_regex_time() as shared:
    ...     compile_regex_splitter(r"(?<=a)b").findall("abab")
    ['b', 'b']
    >>> shared.chars
    4
    >>> with shared_regex_time(shared) as again:
    ...     again is shared
    True
    """

    __slots__ = ("_token", "_time", "_most_chars", "_runner")

    def __init__(self, regex_time: RegexTime | None = None, *, most_chars: int | None = None,
                 runner: Callable[[Callable[[], Any]], Any] | None = None) -> None:  # fmt: skip
        """``most_chars``, ``runner``: a new RegexTime's (see RegexTime)."""
        self._time = regex_time
        self._most_chars = most_chars
        self._runner = runner

    def __enter__(self) -> RegexTime:
        existing = _SHARED.get()
        if existing is not None:
            self._token = None
            return existing
        if self._time is None:
            self._time = RegexTime(self._most_chars, self._runner)
        self._token = _SHARED.set(self._time)
        return self._time

    def __exit__(self, *exc_info: object) -> None:
        if self._token is not None:
            _SHARED.reset(self._token)


class RegexSplitter:
    """One compiled split pattern (immutable; safe to share between threads)."""

    def __init__(self, pattern: str, dialect: Dialect) -> None:
        self.pattern = pattern
        self.dialect = dialect
        self._compiled = regex.compile(pattern)
        self._split = None
        if self._compiled.groups == 0:
            # One C call: splitting on the whole pattern as one capturing group yields gaps and matches in
            # turn (2-3x faster than finditer). A pattern with groups of its own (or global flags, which
            # cannot move inside a group) keeps the loop.
            try:
                self._split = regex.compile(f"({pattern})").split
            except regex.error:
                pass

    def findall(self, text: str) -> list[str]:
        """The matches (whole matches, also for a pattern with groups)."""
        if self._compiled.groups == 0:
            return self._run(text, lambda timeout: self._compiled.findall(text, concurrent=True, timeout=timeout))
        return self._run(text, lambda timeout: [
            match.group() for match in self._compiled.finditer(text, concurrent=True, timeout=timeout)])  # fmt: skip

    def split_isolated(self, text: str) -> list[str]:
        """The matches and the text between them, in order."""
        return self._run(text, lambda timeout: self._split_isolated(text, timeout))

    def _split_isolated(self, text: str, timeout: float) -> list[str]:
        if self._split is not None:
            return [piece for piece in self._split(text, concurrent=True, timeout=timeout) if piece]
        pieces: list[str] = []
        end = 0
        for match in self._compiled.finditer(text, concurrent=True, timeout=timeout):
            start = match.start()
            if start > end:
                pieces.append(text[end:start])
            if match.end() > start:
                pieces.append(match.group())
            end = match.end()
        if end < len(text):
            pieces.append(text[end:])
        return pieces

    def _run(self, text: str, match: Callable[[float], list[str]]) -> list[str]:
        """``match(timeout)`` within this call's bound and the request's shared time (charged with the thread
        CPU time it took and the text's characters, once); first here, then, past INLINE_SECONDS, again on the
        request's runner with what is left of the bound."""
        shared = _SHARED.get()
        timeout = _seconds(text)
        if shared is not None:
            timeout = min(timeout, shared.allowed(text))
            if timeout <= 0:
                raise self._too_slow(text, shared)
        runner = None if shared is None else shared.runner
        try:
            if runner is None or timeout <= INLINE_SECONDS:
                return _timed(match, timeout, shared)
            started = time.thread_time()
            try:
                return _timed(match, INLINE_SECONDS, shared)
            except TimeoutError:
                left = timeout - (time.thread_time() - started)
            if left <= 0:
                raise TimeoutError
            return runner(lambda: _timed(match, left, shared))
        except TimeoutError:
            raise self._too_slow(text, shared) from None
        finally:
            if shared is not None:
                shared.chars += len(text)

    def _too_slow(self, text: str, shared: RegexTime | None) -> ModelFormatError:
        if shared is not None and shared.allowed(text) < _seconds(text):
            chars = shared.charged_chars(text)
            return ModelFormatError(
                f"split pattern {self.pattern[:80]!r} (outside the native subset, run by the regex module) took longer than "
                f"the {BASE_SECONDS + SECONDS_PER_CHAR * chars:.2g} s one request's texts may take together ({chars:,} "
                f"characters so far): it backtracks on such text"
            )
        return ModelFormatError(
            f"split pattern {self.pattern[:80]!r} (outside the native subset, run by the regex module) took longer than "
            f"{_seconds(text):.2g} s on a text of {len(text):,} characters: it backtracks on such text"
        )

    def __repr__(self) -> str:
        return f"RegexSplitter({self.pattern!r}, dialect={self.dialect!r})"


def _timed(match: Callable[[float], list[str]], timeout: float, shared: RegexTime | None) -> list[str]:
    """``match(timeout)``, its thread CPU time charged to ``shared`` (on the thread that runs it)."""
    started = time.thread_time()
    try:
        return match(timeout)
    finally:
        if shared is not None:
            shared.spent += time.thread_time() - started


def _seconds(text: str) -> float:
    return BASE_SECONDS + SECONDS_PER_CHAR * len(text)


def compile_regex_splitter(pattern: str, *, dialect: Dialect = "python-regex") -> RegexSplitter:
    """Compile `pattern`; a pattern that does not compile raises ModelFormatError naming it."""
    check_pattern_bounds(pattern)
    try:
        return RegexSplitter(pattern, dialect)
    except RecursionError:  # the bounds keep real nesting shallow; this is the last guard
        raise ModelFormatError(f"split pattern {pattern[:200]!r} nests too deeply to compile") from None
    except regex.error as error:
        raise ModelFormatError(f"split pattern {pattern[:200]!r} does not compile: {error}") from None
