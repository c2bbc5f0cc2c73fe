"""Long inputs (4k characters of every shape in tests/support/random_texts.py; `slow`: 200k) through the
service operations of every family, held to the family's reference library and to their own guarantees:

- encode and count give the reference ids (tiktoken, `tokenizers`, `sentencepiece`, mistral-common's
  Tekkenizer, and the reference on a GGUF import's stored payload), decode gives the reference's text;
- offsets: the same ids; byte spans tile the text's UTF-8 and spell it (SentencePiece's dummy prefix spells
  nothing, so there only the ids); character spans never go back (tiktoken's decode_with_offsets for cl100k);
- truncate (both sides): the kept text is the text's prefix / suffix, its ids are the reference encoding of
  that text, within the budget, and a budget the whole text fits keeps it all;
- chunk (every preference, with and without overlap): the chunks cover the text in order (without overlap
  they concatenate to it), each one's ids are the reference encoding of its text and fit the budget.
"""

from __future__ import annotations

import functools
import gzip
import json
import random

import pytest
import sentencepiece
import tiktoken
import tokenizers

from chat.mistral_files import DATA
from support.package_files import pypi_file
from support.random_texts import LONG_KINDS, long_text
from support.registries import publish_openai
from tokend.registry import Registry
from tokend.registry.importing import import_files
from tokend.service import Limits, ServedModels, TokenizerService
from tokend.service.special_policy import SpecialTokenPolicy

# special-token text is text (tiktoken's disallowed_special=()), so every reference encodes the same string
TEXT = SpecialTokenPolicy.from_arguments((), (), allowed_field="allowed", disallowed_field="disallowed")
FAMILIES = ("cl100k_base", "llama3-json", "mistral-v1-model", "tekken", "gguf-gpt-2", "gguf-llama-spm")
_SENTENCEPIECE = {"mistral-v1-model", "gguf-llama-spm"}


def _gguf(name: str):
    return pypi_file("llama-cpp-python", "0.3.36", f"vendor/llama.cpp/models/ggml-vocab-{name}.gguf", sdist=True)


# One xdist worker runs the whole file, so its module fixtures are built once, not once per worker:
# six families imported and their references loaded, ~15 s (docs/decisions.md, "The suite's time on CI, again").
pytestmark = pytest.mark.xdist_group("long-inputs")


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    """(service, {family: (reference encode, reference decode or None)})"""
    from support.tokenizer_json import llama3_tokenizer_json
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    directory = tmp_path_factory.mktemp("long-inputs")
    registry = Registry.open(directory / "models", create=True)
    publish_openai(registry, "cl100k_base")
    llama3 = directory / "tokenizer.json"
    llama3.write_text(json.dumps(llama3_tokenizer_json()), encoding="utf-8")
    imported = {"llama3-json": import_files(registry, [llama3], name="llama3-json", format="hf", provenance={"kind": "imported"})}
    for family, path in (("mistral-v1-model", DATA / "tokenizer.model.v1"), ("tekken", DATA / "tekken_240718.json"),
                         ("gguf-gpt-2", _gguf("gpt-2")), ("gguf-llama-spm", _gguf("llama-spm"))):
        imported[family] = import_files(registry, [path], name=family, provenance={"kind": "imported"})
    cl100k = tiktoken.get_encoding("cl100k_base")
    references = {"cl100k_base": (lambda text: cl100k.encode(text, disallowed_special=()), cl100k.decode)}
    for family in ("llama3-json", "gguf-gpt-2"):
        payload = (directory / "models" / family / "1" / imported[family].payload.path).read_bytes()
        oracle = tokenizers.Tokenizer.from_str(gzip.decompress(payload).decode("utf-8") if payload[:2] == b"\x1f\x8b" else payload.decode("utf-8"))
        references[family] = (lambda text, oracle=oracle: oracle.encode(text, add_special_tokens=False).ids,
                              lambda ids, oracle=oracle: oracle.decode(ids, skip_special_tokens=False))
    for family in _SENTENCEPIECE:
        processor = sentencepiece.SentencePieceProcessor(
            model_proto=(directory / "models" / family / "1" / imported[family].payload.path).read_bytes())
        references[family] = (processor.encode, processor.decode)
    tekken = Tekkenizer.from_file(str(DATA / "tekken_240718.json"))
    references["tekken"] = (lambda text: tekken.encode(text, bos=False, eos=False), None)
    limits = Limits(max_request_bytes=16 << 20, max_response_bytes=64 << 20)
    return TokenizerService(ServedModels(registry), limits), references


def check_long_input(service: TokenizerService, family: str, references, text: str, rng: random.Random) -> None:
    reference, reference_decode = references[family]
    expected = reference(text)
    assert service.encode(family, [text], special=TEXT).ids[0] == expected
    assert service.count(family, [text], special=TEXT).counts[0] == len(expected)
    if reference_decode is not None:
        assert service.decode(family, [expected]).results[0] == reference_decode(expected)

    if family in _SENTENCEPIECE and "\u2581" in text:
        return  # sentencepiece reads "▁" as a space: the tokens do not spell the text (no offsets, cut points)
    found = service.encode_with_offsets(family, [text], special=TEXT, token_bytes=True)
    spans = found.spans[0]
    assert found.ids[0] == expected
    if family not in _SENTENCEPIECE:
        utf8 = text.encode("utf-8")
        assert b"".join(spans.token_bytes) == utf8
        assert list(spans.byte_ends[:-1]) == list(spans.byte_starts[1:]) and spans.byte_ends[-1] == len(utf8)
    starts, ends = list(spans.starts), list(spans.ends)
    assert starts == sorted(starts) and ends == sorted(ends) and all(s <= e <= len(text) for s, e in zip(starts, ends))
    if family == "cl100k_base":
        assert starts == tiktoken.get_encoding("cl100k_base").decode_with_offsets(expected)[1]

    for side in ("right", "left"):
        budget = rng.choice([1, 7, 100, max(1, len(expected) // 3), max(1, len(expected) - 1), len(expected)])
        kept = service.truncate(family, [text], budget, side, special=TEXT).results[0]
        assert kept.text == text[kept.start:kept.end] and (kept.start == 0 if side == "right" else kept.end == len(text))
        assert kept.ids == reference(kept.text) and len(kept.ids) <= budget and kept.total_tokens == len(expected)
        if budget >= len(expected):
            assert kept.text == text

    budget = rng.choice([16, 50, 200, 1000])
    overlap = rng.choice([0, budget // 4])
    prefer = rng.choice(["paragraph", "sentence", "whitespace", "token"])
    chunks = service.chunk(family, [text], budget, overlap, prefer, special=TEXT).results[0]
    position = 0
    for chunk in chunks:
        assert chunk.text == text[chunk.start:chunk.end] and chunk.ids == reference(chunk.text) and len(chunk.ids) <= budget
        assert chunk.start == position if overlap == 0 else chunk.start <= position < chunk.end
        position = chunk.end
    assert position == len(text)


@pytest.mark.parametrize("family", FAMILIES)
def test_long_inputs_of_every_shape(family, models):
    service, references = models
    rng = random.Random(f"long-{family}")
    for kind in LONG_KINDS:
        text = long_text(rng, rng.choice([2_000, 4_000, 6_000]), kind)
        check_long_input(service, family, references, text, rng)


@pytest.mark.slow
@pytest.mark.parametrize("family", FAMILIES)
def test_inputs_of_200k_characters(family, models):
    service, references = models
    rng = random.Random(f"200k-{family}")
    for kind in ("mixed", "spaces", "digits", "emoji_zwj", "one_character", "cjk"):
        check_long_input(service, family, references, long_text(rng, 200_000, kind), rng)
