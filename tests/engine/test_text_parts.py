"""Text given as parts (`tokend.engine.text_parts`): the native walk (one C call) and the walk through the engine
contract give tiktoken's ids for each part (the oracle: tiktoken's encode_ordinary of every text part, the
special token's id for a SpecialText), per run; bad arguments are refused, never read out of bounds."""

from __future__ import annotations

import random
import threading

import pytest
import tiktoken

import tokend
from tokend.engine import text_parts
from tokend.engine.text_parts import SpecialText, count_parts, encode_parts

EOT = SpecialText("<|endoftext|>")
PARTS = ["Hello", " world", EOT, "", "naïve café 日本語 🤖", EOT, EOT, "\n\n  indented\n", "<|endoftext|> as text", "x" * 5000]
ENDS = [2, 3, 3, 7, 10]  # runs: [Hello, world] [EOT] [] [ "", text, EOT, EOT ] [...]


def _expected(encoding_name):
    oracle = tiktoken.get_encoding(encoding_name)
    ids, counts, start = [], [], 0
    for end in ENDS:
        before = len(ids)
        for part in PARTS[start:end]:
            ids += [oracle.eot_token] if type(part) is SpecialText else oracle.encode_ordinary(part)
        counts.append(len(ids) - before)
        start = end
    return ids, counts


@pytest.mark.parametrize("encoding_name", ["cl100k_base", "o200k_base"])
@pytest.mark.parametrize("walk", ["native", "contract"])
def test_parts_give_tiktokens_ids_per_run(encoding_name, walk, monkeypatch):
    if walk == "contract":
        monkeypatch.setattr(text_parts, "native_core", lambda encoding: None)
    encoding = tokend.get_encoding(encoding_name)
    ids, counts = _expected(encoding_name)
    assert encode_parts(encoding, PARTS, ENDS) == (ids, counts)
    assert count_parts(encoding, PARTS, ENDS) == counts


@pytest.mark.parametrize("encoding_name", ["cl100k_base", "o200k_base"])
def test_big_parts_first_in_a_run_and_after_other_ids(encoding_name):
    """Parts of 64 KiB or more are encoded without the GIL into an array of their own, which becomes the
    run's ids when nothing came before it and is appended to the ids before it otherwise."""
    big = " ".join("".join(random.Random(i).choices("etaoinshrdlu", k=6)) for i in range(12_000))  # ~84 KB
    parts = [big, "hello", big, EOT, big[:70_000], "x" * 70_000, EOT]
    ends = [1, 7]
    oracle = tiktoken.get_encoding(encoding_name)
    runs = [[oracle.eot_token] if type(part) is SpecialText else oracle.encode_ordinary(part) for part in parts]
    ids = [token for run in runs for token in run]
    counts = [len(runs[0]), len(ids) - len(runs[0])]
    encoding = tokend.get_encoding(encoding_name)
    assert encode_parts(encoding, parts, ends) == (ids, counts)
    assert count_parts(encoding, parts, ends) == counts


def test_text_that_is_not_unicode_scalars_is_repaired_as_tiktoken_repairs_it():
    encoding = tokend.get_encoding("cl100k_base")
    parts = ["a\ud800b", EOT]
    assert count_parts(encoding, parts, [2]) == [encoding.count_ordinary("a\ud800b") + 1]
    assert encode_parts(encoding, parts, [2])[0] == encoding.encode_ordinary("a\ud800b") + [encoding.eot_token]


def test_a_pattern_without_a_native_scanner_goes_through_the_contract():
    cl100k = tiktoken.get_encoding("cl100k_base")
    # a lookbehind (which never matches here) is outside the native splitter's subset: the `regex` module splits
    pattern = r"(?<=\x00\x01)\x02|\w+|\s+|[^\w\s]+"
    oracle = tiktoken.Encoding("custom", pat_str=pattern, mergeable_ranks=cl100k._mergeable_ranks,
                               special_tokens={"<|endoftext|>": 100257})  # fmt: skip
    ours = tokend.Encoding("custom", pat_str=pattern, mergeable_ranks=cl100k._mergeable_ranks,
                           special_tokens={"<|endoftext|>": 100257})  # fmt: skip
    assert ours._native_splitter is None and text_parts.native_core(ours) is None
    parts = ["Alice was", " beginning to get", EOT, "très fatiguée"]
    expected = oracle.encode_ordinary(parts[0]) + oracle.encode_ordinary(parts[1]) + [100257] + oracle.encode_ordinary(parts[3])
    first = len(oracle.encode_ordinary(parts[0]))
    assert encode_parts(ours, parts, [1, 4]) == (expected, [first, len(expected) - first])
    assert count_parts(ours, parts, [1, 4]) == [first, len(expected) - first]


@pytest.mark.parametrize(
    ("parts", "ends", "error"),
    [
        (["a", "b"], [1], ValueError),  # does not finish at len(parts)
        (["a", "b"], [2, 1], ValueError),  # not ascending
        (["a"], [3], ValueError),  # past the end
        (["a", 7], [2], TypeError),  # not a str
        ([SpecialText("<|nope|>")], [1], KeyError),  # not a special token of the encoding (encode only)
        ("ab", [2], TypeError),  # not a list
    ],
)
def test_malformed_arguments_are_refused(parts, ends, error):
    core = tokend.get_encoding("cl100k_base")._core
    with pytest.raises(error):
        core.encode_parts(parts, ends, tokend.get_encoding("cl100k_base")._special_tokens)
    if error is not KeyError:
        with pytest.raises(error):
            core.count_parts(parts, ends)


def test_a_list_changed_by_another_thread_during_a_long_part_is_never_read_out_of_bounds():
    encoding = tokend.get_encoding("cl100k_base")
    parts = ["word " * 200_000, "tail"] * 4
    stop = threading.Event()

    def shrink():
        while not stop.is_set():
            if len(parts) > 1:
                parts.pop()

    thread = threading.Thread(target=shrink)
    thread.start()
    try:
        for _ in range(3):
            try:
                counts = count_parts(encoding, parts, [len(parts)])
            except (RuntimeError, ValueError):
                continue  # the list changed under the walk: refused, not misread
            assert counts[0] > 0
    finally:
        stop.set()
        thread.join()
