"""`tokend.engine.nfc.nfc` is Hugging Face `tokenizers`' NFC (the reference for a tokenizer.json's normalizer):
on every code point, composition and mark against it, on every code point the scan treats specially in the
contexts where composition and reordering happen, on generated text and on the corpus. (`tokenizers`'
tables are Unicode 9.0's, Python 3.11's unicodedata 14.0's: they differ on 98 marks and one composition.)"""

from __future__ import annotations

import random
import sys
import time
import unicodedata

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tokenizers.normalizers import NFC

from tests.corpus import corpus_texts
from tokend.engine.nfc import _TABLE_END, TOKENIZERS_STARTERS, _classes, nfc

CLASSES = _classes()
SPECIAL = [code for code in range(_TABLE_END) if CLASSES[code]]  # marks, No/Maybe, decomposing starters

# before / after each code point: starters that compose (e, a, Hangul L jamo and LV syllable, Bengali E),
# decomposed and composed letters with marks of lower and higher classes, a mark of each kind
CONTEXTS = [
    ("", ""), ("a", ""), ("e", ""), ("", "a"), ("\u00e9", ""), ("e\u0323", ""), ("\u1100", ""), ("\uac00", ""),
    ("\u09c7", ""), ("", "\u0301"), ("", "\u0323"), ("", "\u0316\u0301"), ("x\u0360", ""), ("o\u0302", "\u0301"),
    ("\u1112", "\u11a8"), ("", "\u1161"),
]


_reference = NFC().normalize_str
_NOT_SURROGATES = [code for code in range(sys.maxunicode + 1) if not 0xD800 <= code <= 0xDFFF]


def test_every_code_point_composition_and_mark_as_tokenizers_normalizes_it():
    # every code point alone; every composition's decomposed form; every mark after a letter, before and after
    # marks of the lowest and a high class (whether it reorders shows the class tokenizers gives it)
    texts = [chr(code) for code in _NOT_SURROGATES]
    texts += [unicodedata.normalize("NFD", chr(code)) for code in _NOT_SURROGATES
              if len(unicodedata.normalize("NFD", chr(code))) > 1]  # fmt: skip
    marks = [chr(code) for code in _NOT_SURROGATES if unicodedata.combining(chr(code))]
    texts += [context.format(mark) for mark in marks for context in ("a{}\u0334", "a\u0301{}", "e{}\u0323", "e\u0323{}")]
    mismatches = [text for text in texts if nfc(text) != _reference(text)]
    assert mismatches == [], [[hex(ord(char)) for char in text] for text in mismatches[:10]]


def test_tokenizers_differs_from_unicodedata_where_the_table_says():
    # the starters' list is what tokenizers' Unicode 9.0 tables do not know: each one matters, and no other
    differ = [code for code in _NOT_SURROGATES if unicodedata.combining(chr(code)) and (
              _reference("a\u0301" + chr(code)) != unicodedata.normalize("NFC", "a\u0301" + chr(code))
              or _reference("a" + chr(code) + "\u0334") != unicodedata.normalize("NFC", "a" + chr(code) + "\u0334"))]
    assert set(differ) | {0x11930} == set(TOKENIZERS_STARTERS)
    assert _reference("\U00011935\U00011930") == "\U00011935\U00011930" != unicodedata.normalize("NFC", "\U00011935\U00011930")


def test_no_code_point_past_the_table_has_a_combining_class_or_a_decomposition():
    # nfc_runs reads every code point past the table as a starter without a decomposition
    for code in range(_TABLE_END, sys.maxunicode + 1):
        char = chr(code)
        assert unicodedata.combining(char) == 0 and unicodedata.decomposition(char) == "", hex(code)


def test_every_special_code_point_in_context():
    mismatches = []
    for code in SPECIAL:
        char = chr(code)
        for before, after in CONTEXTS:
            for text in (before + char + after, before + char + char + after, char + before + char):
                if nfc(text) != _reference(text):
                    mismatches.append(text)
    assert mismatches == []


def test_every_special_code_point_after_every_other_special_one_of_a_sample():
    sample = SPECIAL[::37] + [0x0301, 0x0323, 0x0316, 0x09BE, 0x0D3E, 0x1161, 0x11A8, 0x093C, 0x3099]
    hangul = range(0xAC00, 0xD7A4)
    seconds = [code for code in SPECIAL if code not in hangul] + list(hangul[::97])
    mismatches = [
        chr(first) + chr(second)
        for first in sample
        for second in seconds
        if nfc(chr(first) + chr(second)) != _reference(chr(first) + chr(second))
    ]
    assert mismatches == []


_ALPHABET = st.sampled_from(
    [chr(code) for code in SPECIAL[::11]]
    + list("ae o\u00e9\u1100\u1161\u11a8\uac00\u09c7\u09be\u0301\u0323\u0316\u0360\u0344\u2126\u0958\u093c")
    + [chr(code) for code in sorted(TOKENIZERS_STARTERS)[::7]] + ["\U00011935", "\U00011930", "\u1df8", "\u1abd"]
    + ["\U0001d160", "\U0001d158", "\U0001d165", "\U0001d16e", "\uf900", "\u0374", "\u0315", "\u05ae"]
)


@settings(max_examples=600, deadline=None)
@given(st.lists(_ALPHABET, max_size=24).map("".join))
def test_generated_text(text):
    assert nfc(text) == _reference(text)


def test_runs_of_replaced_characters_and_of_marks_in_order():
    # Qwen 3's worst case was 1 MB of U+1D160 (issue 18): unicodedata over the whole text, then, once normalized
    # (U+1D158 and two marks of class 216, each time), a Python step a run. Now a run of characters whose NFC is a
    # fixed string starting with a plain starter is reported as replaced (str.translate), and marks in canonical
    # order after a plain starter are not reported at all; both against tokenizers, in the contexts that matter.
    from tokend.engine._native import nfc_runs
    from tokend.engine.nfc import _combining, _quiet_below, _replacements

    replaced = ["\U0001d160", "\uf900", "\u0958", "\u0374"]
    assert all(CLASSES[ord(char)] == 4 and ord(char) in _replacements() for char in replaced)
    scan = lambda text: nfc_runs(text, CLASSES, _quiet_below(), _combining())  # noqa: E731
    for char in replaced:
        run = char * 500
        assert scan(run) == [(0, 500, True)] and scan("a" + run + "b") == [(0, 501, True)]
        for text in (run, "a" + run, run + "\u0301", "e" + run + "\u0323b", "\u00e9" + run, run + "\u1161",
                     "\u1100" + run + "\uac00", run + "\U0001d165\U0001d16e", "\u0301" + run):
            assert nfc(text) == _reference(text), [hex(ord(c)) for c in text[:4]]
    normalized = unicodedata.normalize("NFC", "\U0001d160" * 1000)
    assert scan(normalized) == [] and nfc(normalized) is normalized == _reference(normalized)
    in_order, out_of_order = "a\u0316\u0305\u0360", "a\u0305\u0316"  # classes 220, 230, 234; 230, 220
    assert scan(in_order) == [] and nfc(in_order) is in_order == _reference(in_order)
    assert scan(out_of_order) == [(0, 3, False)] and nfc(out_of_order) == _reference(out_of_order) != out_of_order
    assert scan("\u00e9\u0316") == [(0, 2, False)]  # after a starter that decomposes: may change
    assert nfc("\u00e9\u0316") == _reference("\u00e9\u0316")


def test_the_corpus_and_the_same_object_when_nothing_changes():
    for text in corpus_texts(limit_bytes=400_000):
        result = nfc(text)
        assert result == _reference(text)
        if _reference(text) == text:
            assert result is text  # no copy (the core reads the text's UTF-8 from the object)


@settings(max_examples=400, deadline=None)
@given(st.lists(st.one_of(_ALPHABET, st.sampled_from(list("\u00e0\u00ff\u02ff\u2019\U0001f600"))), max_size=30).map("".join))
def test_the_scan_passing_code_points_below_the_first_mark_finds_the_same_runs(text):
    # nfc passes quiet_below (U+0300): characters before it are compared, not looked up; the runs must not move
    from tokend.engine._native import nfc_runs
    from tokend.engine.nfc import _combining, _quiet_below

    assert _quiet_below() == min(code for code in SPECIAL if CLASSES[code] in (1, 2, 4))
    assert nfc_runs(text, CLASSES, _quiet_below(), _combining()) == nfc_runs(text, CLASSES, 0, _combining())


def test_long_runs_of_marks_out_of_order_are_put_in_order_in_n_log_n():
    # CPython's unicodedata orders marks by insertion sort: "e" + 160,000 x (U+0301 U+0316) (classes 230, 220) took
    # 88 s of CPU, with the GIL held (a worker's every call waited; 8 MB would be hours). nfc puts a run of 64
    # characters or more in canonical order itself first. Exact against tokenizers, including marks that decompose
    # (U+0344, U+0F73), Hangul, composing starters and equal classes (whose order must stay).
    reference = NFC().normalize_str
    small = "e" + "\u0301\u0316" * 2_000
    big = "e" + "\u0301\u0316" * 64_000  # 32x: insertion sort ~1,000x the time (~14 s here), n log n ~40x
    assert nfc(big) == reference(big)
    started = time.process_time()
    nfc(small)
    small_seconds = time.process_time() - started
    started = time.process_time()
    nfc(big)
    assert time.process_time() - started < 200 * small_seconds + 1.0  # a generous complexity guard, not a timing
    from tokend.engine.nfc import _unicodedata_nfc

    rng = random.Random(5)
    pool = [chr(code) for code in range(0x0300, 0x0370)] + list(
        "\u0344\u0f73\u0f75\u0958\u1100\u1161\u11a8\uac00e\u00e9a \u09c7\u09be\u05ae\u0315\u1dce\u20d0")
    for _ in range(400):
        text = "".join(rng.choice(pool) for _ in range(rng.randrange(64, 700)))
        assert nfc(text) == reference(text)
        assert _unicodedata_nfc(text) == unicodedata.normalize("NFC", text)


def test_a_big_texts_runs_look_at_the_call_stop():
    from tokend.engine.call_stop import CallStop, CallStopped, stop_at

    text = ("e\u0301" * 50 + " ") * 4_000  # 200,000 runs: ~0.15 s
    with pytest.raises(CallStopped), stop_at(CallStop(deadline=time.monotonic() - 1.0)):
        nfc(text)
    with stop_at(CallStop(deadline=time.monotonic() + 600)):
        assert nfc(text) == _reference(text)
    small = ("e\u0301" * 50 + " ") * 40  # 2,000 runs: under one step, never looks
    with stop_at(CallStop(deadline=time.monotonic() - 1.0)):
        assert nfc(small) == _reference(small)
