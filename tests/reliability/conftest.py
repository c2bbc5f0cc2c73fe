"""Fixtures for the reliability tests: golden ids from tiktoken, the texts the load is made of.

Every test module here starts its own real `tokend serve` (tests/support/server.py) on free loopback
ports, because each one does something to its server (loads it, kills a worker, stops it, corrupts
its registry); test_loadgen.py checks the benchmark's load generator without a server. Sizes are bounded so the whole directory runs in well under three minutes on 2 cores; the
full-size soak is marked ``slow``.
"""

from __future__ import annotations

import pytest

from reliability.load import GoldenTexts


@pytest.fixture(scope="session")
def golden() -> GoldenTexts:
    """~150 varied texts (english, code, multilingual, edge cases) with tiktoken's ids for both models."""
    return GoldenTexts.build(limit_bytes=30_000)
