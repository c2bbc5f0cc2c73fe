"""The tokenizers inside llama.cpp's vocab-only GGUF files (llama-cpp-python 0.3.36's sdist ships them with
the reference vectors llama.cpp tests itself against: `.inp` texts, `.out` ids that Hugging Face
`tokenizers` produced with each model's own tokenizer.json), imported into a registry:

- every vector gives the same ids (0 mismatches), read as llama.cpp's test-tokenizer-0 reads them;
- `tokenizers` on the stored (converted) tokenizer.json gives our ids on the corpus;
- the manifest records BOS/EOS, the chat template and the source's SHA-256 and `pre`;
- a SentencePiece GGUF ("llama") goes to the SentencePiece family (its vectors: test_sentencepiece_models.py);
- unknown pre-tokenizers and damaged files are refused, naming what is wrong;
- the metadata reader reads what the `gguf` package's GGUFReader reads.
"""

from __future__ import annotations

import copy
import functools
import gzip
import re
import tracemalloc
from pathlib import Path

import pytest
import tokenizers
from gguf import GGUFReader, GGUFWriter

from chat.conversations import CONVERSATIONS
from support.package_files import pypi_file, sha256_file
from tests.corpus import corpus_texts, edge_cases
from tokend.errors import ModelFormatError, TokendError
from tokend.registry import Registry
from tokend.registry.gguf_metadata import read_gguf_metadata
from tokend.registry.importing import import_files

# (pre-tokenizer, BOS, EOS, has a chat template) as each file's metadata names them
VOCABS = {
    "llama-bpe": ("llama-bpe", "<|begin_of_text|>", "<|end_of_text|>", False),
    "qwen2": ("qwen2", "<|endoftext|>", "<|endoftext|>", True),
    "qwen35": ("qwen35", "<|endoftext|>", "<|endoftext|>", True),
    "gpt-2": ("gpt-2", "<|endoftext|>", "<|endoftext|>", False),
    "mpt": ("mpt", "<|endoftext|>", "<|endoftext|>", False),
    "deepseek-llm": ("deepseek-llm", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", False),
    "deepseek-coder": ("deepseek-coder", "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", False),
    "falcon": ("falcon", "<|endoftext|>", "<|endoftext|>", False),
    "starcoder": ("starcoder", "<|endoftext|>", "<|endoftext|>", False),
    "refact": ("refact", "<|endoftext|>", "<|endoftext|>", False),
    "command-r": ("command-r", "<BOS_TOKEN>", "<|END_OF_TURN_TOKEN|>", True),
}
# The big vocabularies (100k-256k tokens) take seconds each to convert and load: `slow` (CI runs them).
_BIG = {"llama-bpe", "qwen2", "qwen35", "deepseek-llm", "command-r"}
_PARAMS = [pytest.param(name, marks=pytest.mark.slow) if name in _BIG else name for name in sorted(VOCABS)]
_SEPARATOR = "\n__ggml_vocab_test__\n"
_CORPUS = corpus_texts(limit_bytes=40_000) + edge_cases()


def vocab_file(name: str, suffix: str = "") -> Path:
    return pypi_file("llama-cpp-python", "0.3.36", f"vendor/llama.cpp/models/ggml-vocab-{name}.gguf{suffix}", sdist=True)


def vectors(name: str) -> list[tuple[str, list[int]]]:
    """llama.cpp's test-tokenizer-0 reading: texts split on the separator, one line of ids per text."""
    raw = vocab_file(name, ".inp").read_text(encoding="utf-8")
    texts, position = [], 0
    while position < len(raw):
        end = raw.find(_SEPARATOR, position)
        if end < 0:
            texts.append(raw[position:])
            break
        texts.append(raw[position:end])
        position = end + len(_SEPARATOR)
    outputs = [[int(token) for token in line.split()] for line in vocab_file(name, ".out").read_text().splitlines()]
    assert len(texts) == len(outputs) > 40
    return list(zip(texts, outputs))


# One xdist worker runs the whole file, so its module fixtures are built once, not once per worker:
# each vocabulary imported once per registry, up to ~8 s each (docs/decisions.md, "The suite's time on CI, again").
pytestmark = pytest.mark.xdist_group("gguf-import")


@pytest.fixture(scope="module")
def registry(tmp_path_factory) -> Registry:
    return Registry.open(tmp_path_factory.mktemp("gguf") / "models", create=True)


@functools.lru_cache(maxsize=None)
def _imported(root: Path, name: str):
    registry = Registry.open(root)
    manifest = import_files(registry, [vocab_file(name)], name=name, provenance={"kind": "imported", "command": "test"})
    return manifest, registry.get_encoding(name)


@pytest.fixture(params=_PARAMS)
def imported(request, registry):
    return (request.param, *_imported(Path(registry.location), request.param))


def test_reference_vectors_give_the_same_ids(imported):
    name, _, encoding = imported
    for text, expected in vectors(name):
        # add_special=false, parse_special=false: special tokens in the text are text
        assert encoding.encode(text, disallowed_special=()) == expected, repr(text)


def test_manifest_records_what_the_file_names(imported):
    name, manifest, encoding = imported
    pre, bos, eos, has_template = VOCABS[name]
    assert (manifest.payload_format, manifest.payload.compression) == ("hf_tokenizer_json", "gzip")
    assert (manifest.bos_token, manifest.eos_token, manifest.normalizer) == (bos, eos, None)
    assert (manifest.chat_template is not None) == has_template
    assert (manifest.chat_format is not None) == has_template  # the file's template is the chat format
    assert manifest.provenance.settings == {"format": "gguf", "pre": pre}
    assert manifest.provenance.source_sha256 == sha256_file(vocab_file(name))
    assert encoding.n_vocab == len(read_gguf_metadata(vocab_file(name), prefix="tokenizer.ggml.tokens")["tokenizer.ggml.tokens"])


def test_tokenizers_on_the_stored_tokenizer_json_gives_our_ids(imported, registry):
    name, manifest, encoding = imported
    stored = Path(registry.location) / name / "1" / manifest.payload.path
    oracle = tokenizers.Tokenizer.from_str(gzip.decompress(stored.read_bytes()).decode("utf-8"))
    for text in _CORPUS:
        assert encoding.encode(text, allowed_special="all") == oracle.encode(text, add_special_tokens=False).ids, text[:200]


@pytest.mark.parametrize("name", [pytest.param(name, marks=pytest.mark.slow) for name in ("qwen2", "command-r")])
def test_the_files_chat_template_renders_transformers_ids(name, registry):
    """The imported chat format against transformers' apply_chat_template with the same template over
    `tokenizers` reading the stored tokenizer.json (held to llama.cpp's vectors above)."""
    from transformers import PreTrainedTokenizerFast

    manifest, _ = _imported(Path(registry.location), name)
    stored = Path(registry.location) / name / "1" / manifest.payload.path
    variables = manifest.chat_format.variables
    oracle = PreTrainedTokenizerFast(
        tokenizer_object=tokenizers.Tokenizer.from_str(gzip.decompress(stored.read_bytes()).decode("utf-8")),
        **{key: value for key, value in variables.items() if key in ("bos_token", "eos_token", "pad_token")},
    )
    oracle.chat_template = read_gguf_metadata(vocab_file(name), prefix="tokenizer.chat_template")["tokenizer.chat_template"]
    model = Registry.open(Path(registry.location)).load(name)
    compared, refused = 0, []
    for conversation_name, (messages, tools) in CONVERSATIONS.items():
        if tools is not None:
            continue
        for prompt in (True, False):
            try:
                expected = oracle.apply_chat_template(copy.deepcopy(messages), tokenize=True, add_generation_prompt=prompt)
            except Exception as refusal:  # the template itself refuses (roles that do not alternate, parts)
                with pytest.raises(TokendError):
                    model.encode_chat(copy.deepcopy(messages), add_generation_prompt=prompt)
                refused.append((conversation_name, type(refusal).__name__))
                continue
            assert model.encode_chat(copy.deepcopy(messages), add_generation_prompt=prompt).ids == expected, conversation_name
            compared += 1
    assert compared >= 6, refused


def test_a_template_that_does_not_check_is_kept_and_the_import_goes_on(registry, tmp_path):
    path = _tiny_gguf(tmp_path / "templated.gguf", pre="gpt-2", chat_template="{% for %}")
    manifest = import_files(registry, [path], name="templated", provenance={"kind": "imported"})
    assert manifest.chat_template == "{% for %}" and manifest.chat_format is None
    assert "does not compile" in manifest.provenance.settings["chat_template_not_used"]
    stored = Path(registry.location) / "templated" / "1" / manifest.payload.path
    oracle = tokenizers.Tokenizer.from_str(gzip.decompress(stored.read_bytes()).decode("utf-8"))
    text = "hi!his"
    assert registry.get_encoding("templated").encode(text) == oracle.encode(text, add_special_tokens=False).ids


def test_the_one_dispatcher_sends_sentencepiece_ggufs_to_the_sentencepiece_family(registry):
    manifest = import_files(registry, [vocab_file("llama-spm")], name="spm", provenance={"kind": "imported"})
    assert (manifest.payload_format, manifest.family) == ("sentencepiece_model", "sentencepiece-bpe")
    text, expected = vectors("llama-spm")[5]
    assert registry.get_encoding("spm").encode(text, disallowed_special=()) == expected


def _tiny_gguf(path: Path, *, pre: str, chat_template: str | None = None) -> Path:
    writer = GGUFWriter(str(path), arch="llama")
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre(pre)
    writer.add_token_list([chr(c) for c in range(33, 127)] + ["hi"])
    writer.add_token_merges(["h i"])
    if chat_template is not None:
        writer.add_chat_template(chat_template)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.close()
    return path


def test_an_unknown_pre_tokenizer_is_refused_by_name(registry, tmp_path):
    path = _tiny_gguf(tmp_path / "tiny.gguf", pre="my-own-regex")
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.pre 'my-own-regex' is not a pre-tokenizer tokend knows"):
        import_files(registry, [path], name="tiny", provenance={"kind": "imported"})


@pytest.mark.parametrize("cut", [3, 30, 200, -10])
def test_damaged_files_are_refused(tmp_path, cut):
    whole = vocab_file("gpt-2").read_bytes()
    damaged = tmp_path / "damaged.gguf"
    damaged.write_bytes(whole[:cut] if cut > 0 else whole[: len(whole) // 2])
    with pytest.raises(ModelFormatError):
        read_gguf_metadata(damaged, prefix="tokenizer.")


def test_arrays_nested_without_end_are_refused(tmp_path):
    import struct

    entry = struct.pack("<Q", 3) + b"key" + struct.pack("<I", 9) + struct.pack("<IQ", 9, 1) * 100_000
    path = tmp_path / "nested.gguf"
    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, 1) + entry)
    with pytest.raises(ModelFormatError, match="nested more than 4 deep"):
        read_gguf_metadata(path)


def test_metadata_reader_reads_what_gguf_reads():
    path = vocab_file("deepseek-coder")
    ours = read_gguf_metadata(path)
    theirs = {key: field.contents() for key, field in GGUFReader(path).fields.items() if not key.startswith("GGUF.")}
    assert ours == theirs


def _raw_gguf(path: Path, entries: list[bytes]) -> Path:
    import struct

    path.write_bytes(b"GGUF" + struct.pack("<IQQ", 3, 0, len(entries)) + b"".join(entries))
    return path


def _string(text: str) -> bytes:
    import struct

    return struct.pack("<Q", len(text.encode())) + text.encode()


def _entry(key: str, kind: int, payload: bytes) -> bytes:
    import struct

    return _string(key) + struct.pack("<I", kind) + payload


def _strings(items: list[str]) -> bytes:
    import struct

    return struct.pack("<IQ", 8, len(items)) + b"".join(map(_string, items))


_U32, _STRING, _ARRAY = 4, 8, 9
_TOKENS = [chr(c) for c in range(33, 127)]


@pytest.mark.parametrize("entries, fragment", [
    ([_entry("tokenizer.ggml.model", _STRING, _string("gpt2")), _entry("tokenizer.ggml.pre", _ARRAY, _strings(["gpt-2"])),
      _entry("tokenizer.ggml.tokens", _ARRAY, _strings(_TOKENS)), _entry("tokenizer.ggml.merges", _ARRAY, _strings([]))],
     re.escape("tokenizer.ggml.pre is an array of 1 items (str), not a string")),
    ([_entry("tokenizer.ggml.model", _STRING, _string("gpt2")), _entry("tokenizer.ggml.pre", _STRING, _string("gpt-2")),
      _entry("tokenizer.ggml.tokens", _U32, (5).to_bytes(4, "little")), _entry("tokenizer.ggml.merges", _ARRAY, _strings([]))],
     "tokenizer.ggml.tokens is int '5', not an array of strings"),
    ([_entry("tokenizer.ggml.model", _STRING, _string("gpt2")), _entry("tokenizer.ggml.pre", _STRING, _string("gpt-2")),
      _entry("tokenizer.ggml.tokens", _ARRAY, _strings(_TOKENS)), _entry("tokenizer.ggml.merges", _U32, (5).to_bytes(4, "little"))],
     "tokenizer.ggml.merges is int '5', not an array of strings"),
    ([_entry("tokenizer.ggml.model", _STRING, _string("llama")), _entry("tokenizer.ggml.tokens", _ARRAY, _strings(_TOKENS)),
      _entry("tokenizer.ggml.scores", _ARRAY, _strings(["x"] * len(_TOKENS)))],
     re.escape("tokenizer.ggml.scores is an array of 94 items (str), not an array of numbers")),
])
def test_metadata_of_another_type_is_refused_naming_the_key(registry, tmp_path, entries, fragment):
    # each was a TypeError or ValueError traceback from `tokend registry import`
    path = _raw_gguf(tmp_path / "typed.gguf", entries)
    with pytest.raises(ModelFormatError, match=fragment):
        import_files(registry, [path], name="typed", provenance={"kind": "imported"})


@pytest.mark.parametrize(("key", "item_type", "count", "item_bytes"), [
    ("general.junk", 0, 30_000_000, 1),  # uint8: was built into a list of ints (0.5 GB)
    ("tokenizer.zzz_unused", 4, 7_500_000, 4),  # uint32 under a tokenizer.* key nobody reads: ~0.3 GB
])
def test_arrays_the_importer_does_not_read_are_skipped_not_built(tmp_path, key, item_type, count, item_bytes):
    import struct
    import tracemalloc

    from tokend.registry.gguf_tokenizer import read_gguf_tokenizer

    junk = _entry(key, _ARRAY, struct.pack("<IQ", item_type, count) + bytes(count * item_bytes))
    path = _raw_gguf(tmp_path / "junk.gguf", [junk, _entry("tokenizer.ggml.model", _STRING, _string("gpt2"))])
    tracemalloc.start()
    with pytest.raises(ModelFormatError, match="tokenizer.ggml.pre None is not a pre-tokenizer tokend knows"):
        read_gguf_tokenizer(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 50 << 20, peak  # the array is stepped over


def test_an_array_stepped_over_is_still_named_with_its_type(tmp_path):
    import struct

    from tokend.registry.gguf_tokenizer import read_gguf_tokenizer

    pre = _entry("tokenizer.ggml.pre", _ARRAY, struct.pack("<IQ", 4, 3) + bytes(12))
    path = _raw_gguf(tmp_path / "pre.gguf", [pre, _entry("tokenizer.ggml.model", _STRING, _string("gpt2"))])
    with pytest.raises(ModelFormatError, match=re.escape("tokenizer.ggml.pre is an array of 3 items (int), not a string")):
        read_gguf_tokenizer(path)


_BYTES_TOKENS = _TOKENS + ["hi", "<|end|>"]


def _gguf_with_byte_arrays(path: Path, charsmap_bytes: int) -> Path:
    import struct

    types = bytes([1] * (len(_BYTES_TOKENS) - 1) + [3])  # uint8 token types: NORMAL ..., CONTROL
    return _raw_gguf(path, [
        _entry("tokenizer.ggml.model", _STRING, _string("gpt2")), _entry("tokenizer.ggml.pre", _STRING, _string("gpt-2")),
        _entry("tokenizer.ggml.tokens", _ARRAY, _strings(_BYTES_TOKENS)),
        _entry("tokenizer.ggml.merges", _ARRAY, _strings(["h i"])),
        _entry("tokenizer.ggml.token_type", _ARRAY, struct.pack("<IQ", 0, len(types)) + types),  # 0: uint8
        _entry("tokenizer.ggml.precompiled_charsmap", _ARRAY, struct.pack("<IQ", 0, charsmap_bytes) + bytes(range(256)) * (charsmap_bytes // 256)),
        _entry("tokenizer.ggml.scores", _ARRAY, struct.pack("<IQ", 1, 3) + bytes([1, 255, 7])),  # 1: int8, kept, unread
    ])


def test_uint8_arrays_are_read_as_bytes_with_bounded_memory(tmp_path):
    # a uint8 array under a key the importer keeps (llama.cpp writes a T5 model's precompiled_charsmap so) was
    # a list of ints, 8 bytes of pointer per byte of file: a peak of 480 MB for these 30 MB
    from tokend.registry.gguf_tokenizer import read_gguf_tokenizer

    path = _gguf_with_byte_arrays(tmp_path / "bytes.gguf", 30_000_000 // 256 * 256)
    tracemalloc.start()
    read_gguf_tokenizer(path)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    assert peak < 45 << 20, peak  # the array's 30 MB once


def test_uint8_and_int8_arrays_read_as_gguf_reads_them_and_import(registry, tmp_path):
    path = _gguf_with_byte_arrays(tmp_path / "bytes.gguf", 1024)  # GGUFReader makes a numpy view per item: small
    ours, theirs = read_gguf_metadata(path), {key: field.contents() for key, field in GGUFReader(path).fields.items()}
    for key in ("tokenizer.ggml.token_type", "tokenizer.ggml.precompiled_charsmap", "tokenizer.ggml.scores"):
        assert list(ours[key]) == theirs[key], key
    manifest = import_files(registry, [path], name="bytes", provenance={"kind": "imported"})
    encoding = registry.get_encoding(manifest.ref)
    assert encoding.special_tokens_set == {"<|end|>"}  # the uint8 CONTROL type made it special
    ids = [_BYTES_TOKENS.index("hi"), _BYTES_TOKENS.index("!"), len(_BYTES_TOKENS) - 1]
    assert encoding.encode("hi!<|end|>", allowed_special="all") == ids


def test_a_key_given_twice_is_refused(tmp_path):
    # the last value won silently; llama.cpp's writer never repeats a key
    model = _entry("tokenizer.ggml.model", _STRING, _string("gpt2"))
    path = _raw_gguf(tmp_path / "twice.gguf", [model, _entry("tokenizer.ggml.model", _STRING, _string("llama"))])
    with pytest.raises(ModelFormatError, match="has the key 'tokenizer.ggml.model' twice"):
        read_gguf_metadata(path, prefix="tokenizer.")
