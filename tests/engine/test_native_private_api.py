"""The native core's private type is reachable from Python, so every way of misusing it must raise, never crash.

`BpeCore` is built by `Encoding`, but anyone can call `BpeCore.__new__(BpeCore)` (no `__init__`), keep a core
whose `__init__` failed, or hand it a vocabulary the Python checks would have refused. Each case runs in its own
interpreter: a segfault or an out-of-bounds read that aborts must fail that test, not end the test run.

    >>> core = BpeCore.__new__(BpeCore)
    >>> core.encode_piece(b"ab")
    Traceback (most recent call last):
    RuntimeError: BpeCore is not initialised: ...
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest

_PRELUDE = """
from tokend.engine._native import BpeCore
SINGLE = {bytes([b]): b for b in range(256)}
def big_vocabulary(seed, size=300_000):
    # The 256 bytes and random tokens of 3-12 bytes up to `size` (ranks in order): a fill of ~30 ms.
    import random
    rng = random.Random(seed)
    vocabulary = dict(SINGLE)
    while len(vocabulary) < size:
        vocabulary.setdefault(bytes(rng.randrange(256) for _ in range(rng.randrange(3, 13))), len(vocabulary))
    return vocabulary
def expect(error_type, call, needle):
    try:
        result = call()
    except error_type as error:
        assert needle in str(error), f"{error_type.__name__} without {needle!r}: {error}"
        return
    raise AssertionError(f"no {error_type.__name__}; returned {result!r}")
"""

_CALLS = {
    "encode": "core.encode('hello world')",
    "count": "core.count('hello world')",
    "count_unless": "core.count_unless('hello world', ('<|',))",
    "encode_unless": "core.encode_unless('hello world', ('<|',))",
    "encode_buffer": "core.encode_buffer('hello world')",
    "split": "core.split('hello world')",
    "encode_pieces": "core.encode_pieces(['hello', ' world'])",
    "count_pieces": "core.count_pieces(['hello'])",
    "encode_piece": "core.encode_piece(b'ab')",
    "merge": "core.merge(b'ab')",
    "cache_stats": "core.cache_stats()",
    "short_table_places": "core.short_table_places([b'ab'])",
}


def _run(body: str) -> subprocess.CompletedProcess[str]:
    """Run `body` (after the prelude) in a fresh interpreter; a crash shows as a negative return code."""
    code = _PRELUDE + textwrap.dedent(body) + "\nprint('survived')\n"
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def _assert_survived(done: subprocess.CompletedProcess[str]) -> None:
    how = f"killed by signal {-done.returncode}" if done.returncode < 0 else f"exit status {done.returncode}"
    assert done.returncode == 0 and "survived" in done.stdout, f"{how}\n{done.stderr[-2000:]}"


@pytest.mark.parametrize("method", sorted(_CALLS))
def test_every_method_of_a_core_that_was_never_initialised_raises(method):
    done = _run(
        f"""
        core = BpeCore.__new__(BpeCore)
        expect(RuntimeError, lambda: {_CALLS[method]}, "not initialised")
        """
    )
    _assert_survived(done)


@pytest.mark.parametrize("method", sorted(_CALLS))
def test_every_method_of_a_core_whose_init_failed_raises_and_init_can_be_retried(method):
    # The failure comes late in __init__ (after the tables were allocated and partly filled): the byte 0x7f
    # has no rank. The core must end up as if __init__ had never run.
    done = _run(
        f"""
        core = BpeCore.__new__(BpeCore)
        lacking = {{key: rank for key, rank in SINGLE.items() if key != b"\\x7f"}}
        expect(ValueError, lambda: core.__init__(lacking, "cl100k"), "0x7f")
        expect(RuntimeError, lambda: {_CALLS[method]}, "not initialised")
        core.__init__(SINGLE | {{b"ab": 256}}, "cl100k")
        assert core.encode_piece(b"ab") == [256], core.encode_piece(b"ab")
        expect(TypeError, lambda: core.__init__(SINGLE, "cl100k"), "already initialised")
        assert core.merge(b"aab") == [97, 256]
        """
    )
    _assert_survived(done)


def test_failures_at_every_stage_of_init_leave_no_half_built_core():
    # Wrong types in the first pass, too sparse, a missing byte in the second: same outcome each time.
    done = _run(
        """
        core = BpeCore.__new__(BpeCore)
        expect(TypeError, lambda: core.__init__(SINGLE | {"str": 300}, None), "non-empty bytes")
        expect(ValueError, lambda: core.__init__(SINGLE | {b"ab": 2**32 - 2}, None), "too sparse")
        expect(ValueError, lambda: core.__init__(SINGLE, "nope"), "pattern")
        expect(ValueError, lambda: core.__init__(SINGLE | {b"ab": 5}, None), "rank 5")
        expect(RuntimeError, lambda: core.encode_piece(b"ab"), "not initialised")
        core.__init__(SINGLE, None)
        assert core.encode_piece(b"ab") == [97, 98]
        """
    )
    _assert_survived(done)


@pytest.mark.parametrize(
    "tokens",
    [
        {b"abcdefghij": 300, b"klmnopqrst": 300},  # both longer than 8 bytes: one byte array slot, overwritten
        {b"abcdefghij": 300, b"xyz": 300},  # a long and a short token
        {b"ab": 300, b"cd": 300},  # two 2-byte tokens (direct table)
        {b"zz": 65},  # a multi-byte token reusing a single byte's rank ("A")
    ],
    ids=["long-long", "long-short", "pair-pair", "pair-byte"],
)
def test_two_tokens_with_one_rank_are_refused_in_c(tokens):
    # Encoding's Python check refuses this too; the core must not rely on it (a shared rank would let one
    # token's lookup compare against the other's bytes).
    done = _run(
        f"""
        core = BpeCore.__new__(BpeCore)
        expect(ValueError, lambda: core.__init__(SINGLE | {tokens!r}, None), "distinct")
        expect(RuntimeError, lambda: core.encode_piece(b"abcdefghij"), "not initialised")
        """
    )
    _assert_survived(done)


def test_long_tokens_with_distinct_ranks_still_work():
    done = _run(
        """
        core = BpeCore(SINGLE | {b"abcdefghij": 300, b"klmnopqrst": 301}, None)
        assert core.encode_piece(b"abcdefghij") == [300]
        assert core.encode_piece(b"klmnopqrst") == [301]
        """
    )
    _assert_survived(done)


def test_a_failed_init_with_a_merge_list_frees_its_pair_table_and_can_be_retried():
    # The pair-priority path (merges=, ignore_merges=) fails last, in the merge list, after the pair table was
    # allocated and filled: every failed __init__ must free it (30 leaked tables would be ~500 MiB), leave a
    # core whose methods refuse, and a retry must build a working pair-rule core.
    done = _run(
        f"""
        import resource
        from array import array
        merges = array("I", [97, 98, 256]) * 500_000  # one pair again and again: a table sized for 500,000
        merges[-1] = 999  # the last merge yields no token of the vocabulary
        vocabulary = SINGLE | {{b"ab": 256, b"bc": 257}}
        core = BpeCore.__new__(BpeCore)
        expect(ValueError, lambda: core.__init__(vocabulary, "cl100k", merges=merges), "not a token")
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        for _ in range(30):
            expect(ValueError, lambda: core.__init__(vocabulary, None, merges=merges, ignore_merges=False), "not a token")
        grown_mib = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
        assert grown_mib < 100, f"peak RSS grew {{grown_mib:.0f}} MiB over 30 failed inits: the pair table leaks"
        for call in {list(_CALLS.values())!r}:
            expect(RuntimeError, lambda: eval(call), "not initialised")
        expect(TypeError, lambda: core.__init__(vocabulary, None, merges=array("H", [1, 2, 3])), "array")
        expect(RuntimeError, lambda: core.merge(b"abc"), "not initialised")
        core.__init__(vocabulary, "cl100k", merges=array("I", [98, 99, 257, 97, 98, 256]), ignore_merges=False)
        assert core.merge(b"abc") == [97, 257], core.merge(b"abc")  # the pair rule: (b, c) comes first
        assert core.encode("ab abc") == [256, 32, 97, 257], core.encode("ab abc")
        expect(TypeError, lambda: core.__init__(vocabulary, None), "already initialised")
        """
    )
    _assert_survived(done)


def test_a_second_init_while_the_first_fills_its_table_without_the_gil_is_refused():
    # __init__ fills the rank table with the GIL released (a server worker loading a model keeps serving): a
    # second __init__ of the same core from another thread meanwhile must be refused, not free that table.
    # Fresh cores until one second __init__ lands inside the first's fill (the first try, nearly always).
    done = _run(
        """
        import threading, time
        big = big_vocabulary(5)
        long_token = next(key for key in big if len(key) > 8)
        overlapped = False
        for attempt in range(20):
            core = BpeCore.__new__(BpeCore)
            outcome, entering = [], threading.Event()

            def first():
                entering.set()
                try:
                    outcome.append(core.__init__(big, None))
                except TypeError as error:  # the second got in before it started
                    outcome.append(str(error))

            thread = threading.Thread(target=first)
            thread.start()
            entering.wait()
            time.sleep(0.001)  # let it into __init__
            refused = set()
            while thread.is_alive():
                try:
                    core.__init__(SINGLE, None)
                except TypeError as error:
                    refused.add(str(error))
                try:
                    core.encode_piece(b"ab")
                except RuntimeError as error:
                    assert "not initialised" in str(error), error
            thread.join()
            assert refused <= {"BpeCore is being initialised by another thread", "BpeCore is already initialised"}, refused
            if outcome == [None]:  # the big vocabulary won: whole and working
                assert core.encode_piece(long_token) == [big[long_token]]
            assert core.encode_piece(b"ab") == [97, 98]
            if "BpeCore is being initialised by another thread" in refused:
                overlapped = True
                break
        assert overlapped, "no second __init__ ever ran during a first one's fill"
        """
    )
    _assert_survived(done)


def test_a_vocabulary_changed_by_another_thread_while_the_table_fills_is_not_read_again():
    # After the GIL-free fill, the merge list's index and the tokens merging to themselves are built from the
    # tokens listed before it, never from the dict, which another thread may have changed meanwhile (a new
    # key with a rank past every table, or a non-bytes key, read as listed would write out of bounds).
    done = _run(
        """
        import threading, time
        from array import array
        merges = array("I", [97, 98, 256])
        ranks = {key: rank for key, rank in big_vocabulary(6).items() if rank != 256} | {b"ab": 256}
        built = 0
        for attempt in range(10):
            vocabulary, calling = dict(ranks), threading.Event()

            def meddle():
                calling.wait()
                time.sleep(0.002)
                vocabulary[b"\\x00mutant"] = 4_000_000_000
                vocabulary["not bytes"] = 5

            meddler = threading.Thread(target=meddle)
            meddler.start()
            calling.set()
            try:
                core = BpeCore(vocabulary, None, merges=merges, ignore_merges=False)
            except (TypeError, ValueError) as error:  # on a loaded machine the meddler may get in first
                assert "non-empty bytes to int" in str(error) or "too sparse" in str(error), error
                continue
            finally:
                meddler.join()
            built += 1
            assert core.merge(b"abab") == [256, 256], core.merge(b"abab")
        assert built, "every attempt was refused: the meddler changed the dict before every build"
        """
    )
    _assert_survived(done)
