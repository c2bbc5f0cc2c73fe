"""Moving references — `name` (latest) and `name@alias` — and the loaded version each one serves.

A moving reference switches to a new target only after that target has loaded and verified
(ARCHITECTURE: "a new version is switched to only after it has loaded and verified"). Until then it keeps
serving the version it served before, and the caller learns which version to load in the background:

    >>> moving, loaded, refused = MovingReferences(), {1}, set()   # versions of "m" loaded / known bad
    >>> pick = lambda candidates: moving.pick(("m", None), candidates, is_loaded=loaded.__contains__,
    ...                                       is_refused=refused.__contains__)
    >>> pick([1])                   # "m" means m@1, loaded: serve it
    (1, None)
    >>> pick([2, 1])                # m@2 published: serve m@1, switch once m@2 has loaded
    (1, 2)
    >>> loaded.add(2); pick([2, 1])
    (2, None)
    >>> refused.add(3); pick([3, 2, 1])     # m@3 failed to load: skipped, m@2 stays
    (2, None)

`candidates` are the versions the reference may mean, preferred first: every version newest first for
`name` (so a version known to be bad is skipped and the next one down is used), the alias's one target for
`name@alias` (nothing to fall back to). Not handled here: the catalog, loading (the registry does both).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Collection, Sequence

MovingRef = tuple[str, "str | None"]  # (name, alias); alias None = latest


class MovingReferences:
    """Thread-safe map moving reference -> the loaded version it serves now."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._serving: dict[MovingRef, int] = {}

    def pick(
        self,
        key: MovingRef,
        candidates: Sequence[int],
        *,
        is_loaded: Callable[[int], bool],
        is_refused: Callable[[int], bool],
    ) -> tuple[int, int | None]:
        """(the version `key` serves now, the version it switches to once that has loaded, or None)."""
        serving = self._serving.get(key)
        if serving is not None and not is_loaded(serving):
            serving = None  # it left the source (versions that leave are unloaded)
        target = next((version for version in candidates if not is_refused(version)), None)
        if target is None:
            # Every candidate is known to be bad: keep what was verified, else the first (loading it says why).
            return (serving if serving is not None else candidates[0]), None
        if is_loaded(target):
            if serving != target:
                with self._lock:
                    self._serving[key] = target
            return target, None
        if serving is not None:
            return serving, target
        return target, None

    def serving(self, key: MovingRef) -> int | None:
        """The version `key` served last (it may have been unloaded since: check before use)."""
        return self._serving.get(key)

    def loaded(self, key: MovingRef, version: int, *, is_loaded: Callable[[int], bool]) -> None:
        """`key` just loaded `version`: it serves it, unless it already serves another loaded version."""
        if self._serving.get(key) == version:  # the common case, on every request: no lock
            return
        with self._lock:
            current = self._serving.get(key)
            if current is None or not is_loaded(current):
                self._serving[key] = version

    def keys(self) -> list[MovingRef]:
        with self._lock:
            return list(self._serving)

    def items(self) -> list[tuple[MovingRef, int]]:
        """(reference, the version it served last) of every reference that served one."""
        with self._lock:
            return list(self._serving.items())

    def retain(self, published: Collection[tuple[str, int]]) -> None:
        """Forget references whose served version left the source."""
        with self._lock:
            self._serving = {key: version for key, version in self._serving.items() if (key[0], version) in published}
