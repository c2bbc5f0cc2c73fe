"""The `.model` file: what loads, what is refused (with errors that say why), and what we write back."""

from __future__ import annotations

import doctest
import importlib
import sys

import pytest

from tokend.engine.sentencepiece import (
    PieceType,
    SentencePieceEncoding,
    dump_sentencepiece_model,
    load_sentencepiece_model,
)
from tokend.engine.sentencepiece.charsmap import PrecompiledCharsMap
from tokend.errors import ModelFormatError
from tokend.server.worker import GIL_SWITCH_SECONDS

from tests.engine.sentencepiece.models import MODEL_NAMES, model_bytes, oracle


def _proto(name: str):
    from sentencepiece import sentencepiece_model_pb2

    proto = sentencepiece_model_pb2.ModelProto()
    proto.ParseFromString(model_bytes(name))
    return proto


def test_word_and_char_models_are_refused_with_a_clear_error():
    for model_type in ("WORD", "CHAR"):
        proto = _proto("botchan_unigram")
        proto.trainer_spec.model_type = getattr(proto.trainer_spec, model_type)
        with pytest.raises(ModelFormatError, match=f"{model_type.lower()} model; tokend implements sentencepiece BPE and Unigram"):
            SentencePieceEncoding.from_model_file("edited", proto.SerializeToString())


def test_unigram_scores_must_be_finite():
    proto = _proto("botchan_unigram")
    proto.pieces[10].score = float("-inf")
    with pytest.raises(ModelFormatError, match="infinities in Unigram models"):
        load_sentencepiece_model(proto.SerializeToString())


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda p: p.pieces[0].__setattr__("type", p.pieces[0].NORMAL), "0 pieces of type UNKNOWN"),
        (lambda p: p.pieces[5].__setattr__("piece", p.pieces[6].piece), "defined twice"),
        (lambda p: p.pieces[5].__setattr__("piece", ""), "is empty"),
        (lambda p: p.pieces[5].__setattr__("score", float("nan")), "score of nan"),
        (lambda p: p.trainer_spec.__setattr__("byte_fallback", False), "byte_fallback is off"),
        (lambda p: p.pieces[3].__setattr__("type", p.pieces[3].NORMAL), "255 of the 256 byte pieces"),
        (lambda p: p.denormalizer_spec.__setattr__("precompiled_charsmap", b"\x08\0\0\0" + b"\0" * 9), "denormalizer"),
        (lambda p: p.normalizer_spec.__setattr__("precompiled_charsmap", b"\xff\xff\0\0abc"), "charsmap is broken"),
        (lambda p: p.pieces[5].__setattr__("piece", "x" * 5000), "5000 bytes long; tokend accepts up to 256"),
    ],
)
def test_inconsistent_models_are_refused(edit, fragment):
    proto = _proto("mistral_v1")
    edit(proto)
    with pytest.raises(ModelFormatError, match=fragment):
        SentencePieceEncoding.from_model_file("edited", proto.SerializeToString())


@pytest.mark.parametrize("data", [b"", b"not a model", b"\x0a\x05\x0a\x01", bytes(range(256)) * 4])
def test_garbage_is_a_format_error(data):
    with pytest.raises(ModelFormatError):
        load_sentencepiece_model(data, what="garbage.model")


def test_invalid_utf8_piece_is_named():
    proto = _proto("mistral_v1")
    proto.pieces[100].piece = "x"
    data = proto.SerializeToString().replace(b"\n\x01x", b"\n\x01\xff", 1)
    with pytest.raises(ModelFormatError, match="piece 100 .* not valid UTF-8"):
        load_sentencepiece_model(data)


@pytest.mark.parametrize("name", MODEL_NAMES)
def test_dump_round_trips_through_sentencepiece(name):
    import sentencepiece

    model = load_sentencepiece_model(model_bytes(name))
    written = dump_sentencepiece_model(model)
    assert load_sentencepiece_model(written) == model
    theirs = sentencepiece.SentencePieceProcessor(model_proto=written)
    text = "Hello  wörld!\n\t12345 😀 foobar <tool> [INST] ｆｕｌｌ"
    assert theirs.encode(text) == oracle(name).encode(text)
    assert theirs.decode(theirs.encode(text)) == oracle(name).decode(oracle(name).encode(text))


def test_model_fields():
    model = load_sentencepiece_model(model_bytes("mistral_v3"))
    assert model.model_type == "bpe" and model.byte_fallback and not model.treat_whitespace_as_suffix
    assert model.types[0] == PieceType.UNKNOWN and model.pieces[1] == "<s>" and model.types[3] == PieceType.CONTROL
    assert model.normalizer.name == "identity" and not model.normalizer.precompiled_charsmap
    assert model.trainer_options["split_digits"] is True


def test_charsmap_lookup():
    charsmap = PrecompiledCharsMap(load_sentencepiece_model(model_bytes("botchan_bpe")).normalizer.precompiled_charsmap)
    assert charsmap.longest_match("ｈｉ".encode(), 0) == (3, b"h")
    assert charsmap.longest_match(b"hi", 0) is None


@pytest.mark.parametrize("module_name", ["tokend.engine.sentencepiece.normalizer"])
def test_docstring_examples(module_name):
    result = doctest.testmod(importlib.import_module(module_name))
    assert result.failed == 0 and result.attempted > 0


def test_generated_model_proto_is_current():
    import subprocess
    import sys
    from pathlib import Path

    repo = Path(__file__).resolve().parents[3]
    generator = repo / "protos" / "sentencepiece" / "generate.py"
    result = subprocess.run([sys.executable, str(generator), "--check"], cwd=repo, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, f"{result.stdout}{result.stderr}\nrun: python {generator.relative_to(repo)}"


# ---- crafted models: what they may cost (issue 13) ------------------------------------------------------------
def _one_rule_charsmap(key: int, replacement: bytes) -> bytes:
    """A darts-clone trie with the one key `bytes([key])` whose value is offset 0 of the strings: `replacement`."""
    units = [0] * max(key + 2, 4)
    units[key] = (1 << 10) | 0x100 | key  # label `key`, has a leaf, children at key ^ 1
    trie = b"".join(unit.to_bytes(4, "little") for unit in units)
    return len(trie).to_bytes(4, "little") + trie + replacement + b"\0"


def _with_charsmap(blob: bytes):
    proto = _proto("botchan_bpe")
    proto.normalizer_spec.precompiled_charsmap = blob
    proto.normalizer_spec.add_dummy_prefix = False
    return SentencePieceEncoding.from_model_file("crafted", proto.SerializeToString())


def test_a_rule_that_expands_text_past_sixteen_times_is_refused_before_the_text_is_built():
    # "a" -> 100,000 "b": a 2 KB request became 2.5 GB; nmt_nfkc's largest rule is 11x (U+FDFA -> 33 bytes)
    encoding = _with_charsmap(_one_rule_charsmap(ord("a"), b"b" * 100_000))
    for call in (encoding.encode, encoding.count):
        with pytest.raises(ModelFormatError, match="more than 16 times longer"):
            call("a" * 2000)
    fine = _with_charsmap(_one_rule_charsmap(ord("a"), b"b" * 12))  # within the bound: as sentencepiece normalizes
    assert fine.encode("xa a") == fine.encode("x" + "b" * 12 + " " + "b" * 12)


def _chain_charsmap(depth: int) -> bytes:
    """A darts-clone trie with one key, "a" * depth, whose replacement is "b" (node k's base at 0x100 * (k + 1))."""
    units = [0] * (0x100 * (depth + 2) + 0x100)
    units[0] = 0x100 << 10  # the root's base
    for level in range(depth):
        child = (0x100 * (level + 1)) ^ 0x61
        last = level == depth - 1
        units[child] = 0x61 | (0x100 if last else 0) | ((child ^ (0x100 * (level + 2))) << 10)
    # the leaf's unit (at the last base) holds the value: offset 0 of the strings, "b"
    trie = b"".join(unit.to_bytes(4, "little") for unit in units)
    return len(trie).to_bytes(4, "little") + trie + b"b\0"


def test_charsmap_keys_are_looked_for_up_to_256_bytes_only():
    # a crafted chain of 20,000 nodes made each position's walk 20,000 steps (22 s for 1 MB); keys longer than
    # 256 bytes are not looked for, in the native core and the Python reference alike (real keys: a few bytes)
    from tokend.engine.sentencepiece.charsmap import MAX_KEY_BYTES

    assert MAX_KEY_BYTES == 256
    plain = _with_charsmap(_one_rule_charsmap(ord("z"), b"z"))  # the same model with no rule for "a"
    for depth, replaced in ((MAX_KEY_BYTES, True), (MAX_KEY_BYTES + 1, False)):
        blob = _chain_charsmap(depth)
        assert (PrecompiledCharsMap(blob).longest_match(b"a" * depth, 0) is not None) is replaced
        expected = plain.encode("b" if replaced else "a" * depth)
        assert _with_charsmap(blob).encode("a" * depth) == expected


def _nested_unigram(depth: int) -> bytes:
    """botchan's Unigram model plus the pieces "a", "aa", ... "a" * depth (a crafted file: each byte of "aaa..." is
    the start of `depth` pieces, so sentencepiece's Viterbi, and ours, take `depth` steps there)."""
    proto = _proto("botchan_unigram")
    known = {piece.piece for piece in proto.pieces}
    for length in range(1, depth + 1):
        if "a" * length not in known:
            piece = proto.pieces.add()
            piece.piece, piece.score, piece.type = "a" * length, -5.0 - 0.01 * length, piece.NORMAL
    return proto.SerializeToString()


def test_a_unigram_vocabulary_of_nested_pieces_is_encoded_as_sentencepiece_and_lets_other_threads_run():
    """256 nested pieces (the longest a piece may be) cost 256 trie steps a byte of "aaa...", ~1.7 s of CPU a MB,
    as sentencepiece itself takes (~1.0 s): bounded by the piece length, not refused. A text under 64 KB held the
    GIL throughout (~110 ms for 60 KB, so a batch of such texts stalled the worker's other calls); the walk now
    lets other threads run once it may take 1 Mi steps."""
    import sentencepiece
    from support.gil_ticks import longest_gap_during

    data = _nested_unigram(256)
    encoding, reference = SentencePieceEncoding.from_model_file("nested", data), sentencepiece.SentencePieceProcessor(model_proto=data)
    for text in ("a" * 1000, "a" * 257 + " ba" + "a" * 300, "banana " * 50):
        assert encoding.encode(text, disallowed_special=()) == reference.encode(text)
    text = "a" * 60_000
    gap, seconds = longest_gap_during(lambda: encoding.count(text, disallowed_special=()))
    assert gap < seconds / 2, f"{gap:.3f} s of the call's {seconds:.3f} s without a tick of another thread"


def _long_user_defined_piece(unused_merges: bool = False) -> bytes:
    """botchan's BPE model plus one user-defined piece of 256 bytes, "a" * 255 + "b": every byte of "aaa..." starts
    a walk of 255 steps that finds nothing (in the normalizer and again in the scan). `unused_merges`: one piece
    of two characters made UNUSED, so whole sentences are merged at once (sp_module.c's encode_sentence)."""
    proto = _proto("botchan_bpe")
    if unused_merges:
        next(piece for piece in proto.pieces if len(piece.piece) == 2 and piece.type == piece.NORMAL).type = 5  # UNUSED
    piece = proto.pieces.add()
    piece.piece, piece.score, piece.type = "a" * 255 + "b", 0.0, piece.USER_DEFINED
    return proto.SerializeToString()


@pytest.mark.parametrize("switch_interval", ["CPython's default", "the workers'"])
@pytest.mark.parametrize("crafted", ["user-defined piece", "user-defined piece, UNUSED merges", "charsmap chain"])
@pytest.mark.parametrize("method", ["count", "encode_bytes"])
def test_long_rule_walks_of_a_bpe_model_let_other_threads_run(crafted, method, switch_interval):
    """A 256-byte user-defined piece, or a charsmap key chain walked 256 steps deep, costs 256 steps a byte of
    "aaa...": the normalizer and the scan held the GIL throughout for texts under 64 KB (~190 ms for 60 KB, and
    `encode_bytes` never let go). They now let other threads run once length x the longest walk may reach 1 Mi
    steps, as the Unigram walk does, and at any switch interval (the scan's periodic release is a hand-off now);
    the ids stay sentencepiece's."""
    import sentencepiece
    from support.gil_ticks import longest_gap_with_a_core

    if crafted.startswith("user-defined piece"):
        data = _long_user_defined_piece(unused_merges="UNUSED" in crafted)
        encoding = SentencePieceEncoding.from_model_file("crafted", data)
        assert encoding._core.has_unused_merges == ("UNUSED" in crafted)
        reference = sentencepiece.SentencePieceProcessor(model_proto=data).encode
    else:  # keys longer than 256 bytes are not looked for, so each position walks 256 steps and finds nothing;
        # sentencepiece refuses this blob, so the reference is the same model with a charsmap that has no rule for "a"
        encoding = _with_charsmap(_chain_charsmap(257))
        plain = _with_charsmap(_one_rule_charsmap(ord("z"), b"z"))
        reference = lambda text: plain.encode(text, disallowed_special=())  # noqa: E731
    for text in ("a" * 300 + "b" + "a" * 1000, "x " + "a" * 255 + "b a" * 3):
        assert encoding.encode(text, disallowed_special=()) == reference(text)
    text = "a" * 60_000
    call = ((lambda: encoding.count(text, disallowed_special=())) if method == "count"
            else (lambda: encoding.encode_bytes(text.encode())))
    # At CPython's default 5 ms (a library user's process) and at the workers' 1 ms (worker.py). A waiting thread
    # asks for the GIL only when its timed wait of one interval ends without a switch; the scan's yields, every
    # ~1 Mi steps (~4-6 ms here), each woke it before that, so at 5 ms, on a quiet fast machine, the ticker got no
    # tick for the whole scan (0.071 s of 0.143 s; 2-3 runs of 6 with -n 0). The scan now lets go no sooner than
    # an interval and a quarter after it last did (sp_module.c, gil_hand_off).
    # with UNUSED merges only the symbol scan held the GIL (~40-55% of the call; 4% now): a quarter tells them apart
    share = 4 if "UNUSED" in crafted else 2
    interval = sys.getswitchinterval()
    sys.setswitchinterval(0.005 if switch_interval == "CPython's default" else GIL_SWITCH_SECONDS)
    try:  # measured again only when the call lost its core (2 of 10 runs at load 7 failed so, the calls 2-5x slower)
        gap, seconds = longest_gap_with_a_core(call, lambda gap, seconds: gap < seconds / share)
    finally:
        sys.setswitchinterval(interval)
    assert gap < seconds / share, f"{gap:.3f} s of the call's {seconds:.3f} s without a tick of another thread"


def test_the_normalizer_walk_is_the_longest_rule_so_real_models_keep_the_gil_for_short_texts():
    # real models: 0-18 steps (nmt_nfkc's keys: 12; Mistral v3's user-defined pieces: 18), so a text goes without
    # the GIL from 58 KB at the earliest (64 KB before); the crafted ones above walk 256
    walks = {name: SentencePieceEncoding.from_model_file(name, model_bytes(name))._core.normalizer_walk for name in MODEL_NAMES}
    assert max(walks.values()) <= 18, walks
    assert SentencePieceEncoding.from_model_file("u", _long_user_defined_piece())._core.normalizer_walk == 256
    assert _with_charsmap(_chain_charsmap(257))._core.normalizer_walk == 256
    # (this blob's value unit is 0, which also reads as a node labelled NUL looping to itself: "a"*20 + NULs
    # walks on to the bound, so 256 is its true bound)
    assert _with_charsmap(_chain_charsmap(20))._core.normalizer_walk == 256


def test_user_defined_pieces_with_many_children_a_node_cost_one_probe_a_step():
    """A crafted file of 19,600 user-defined pieces "a" * d + c (d = 0..200, c each of 93 ASCII characters) made
    every node of "aaa..." have 93 children, kept as a list of siblings: each byte of "aaa..." walked 200 nodes
    scanning up to 93 siblings each (79 us a byte; sentencepiece's double array: 1.7 us). Generous bound, the point
    is the order of growth; the ids are sentencepiece's."""
    import time

    import sentencepiece

    proto = _proto("botchan_bpe")
    known = {piece.piece for piece in proto.pieces}
    others = [chr(code) for code in range(0x21, 0x7F) if chr(code) != "a"]
    for depth in range(200, -1, -1):  # deepest first: the child "a" was the last of each node's siblings
        for last in others:
            if "a" * depth + last not in known:
                piece = proto.pieces.add()
                piece.piece, piece.score, piece.type = "a" * depth + last, 0.0, piece.USER_DEFINED
    data = proto.SerializeToString()
    encoding = SentencePieceEncoding.from_model_file("siblings", data)
    text = "a" * 40_000
    started = time.process_time()
    ids = encoding.encode(text, disallowed_special=())
    assert time.process_time() - started < 0.5
    reference = sentencepiece.SentencePieceProcessor(model_proto=data)
    assert ids == reference.encode(text)
    assert encoding.encode("x" + "a" * 150 + "~a", disallowed_special=()) == reference.encode("x" + "a" * 150 + "~a")
