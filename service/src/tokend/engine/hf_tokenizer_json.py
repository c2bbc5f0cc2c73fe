"""Hugging Face `tokenizer.json` files of byte-level BPE models (GPT-2, Llama 3, Qwen 2/3, DeepSeek-V3,
StarCoder, …) read into a `ByteLevelModel` that tokenizes exactly as `tokenizers` does.

Understood, component by component (anything else is refused with a ModelFormatError naming it, so a
model never loads that would tokenize differently):
- model: `BPE` with `vocab` and `merges` (`"a b"` strings or `["a", "b"]` pairs; merge priority = list
  order), `ignore_merges`, `unk_token` (never used: every byte has a token), no dropout, no byte
  fallback, no subword prefix/suffix;
- normalizer: none, `NFC`, or a `Sequence` of those;
- pre_tokenizer: `ByteLevel` (`add_prefix_space`, `use_regex`), `Split` (a `Regex` or `String` pattern,
  behavior `Isolated`, not inverted), or a `Sequence` of them; one ByteLevel must be there (it is what
  makes the vocabulary byte-level);
- added_tokens: every entry, with `special`, `lstrip`, `rstrip`, `single_word`, `normalized`;
- post_processor: never applied by `encode`; a TemplateProcessing, Roberta or Bert processor names the
  model's BOS/EOS tokens, which are returned for the manifest;
- decoder: none or `ByteLevel` (decoding gives back the bytes; with ByteLevel, an added token whose
  characters are all in the byte-level alphabet decodes as those bytes, as `tokenizers` decodes it);
- truncation and padding: must be null (tokend never truncates or pads an encoding).

>>> from tokend.engine.byte_level_alphabet import BYTE_TO_CHAR
>>> document = {
...     "model": {"type": "BPE", "vocab": {char: byte for byte, char in enumerate(BYTE_TO_CHAR)} | {"hi": 256},
...               "merges": ["h i"], "ignore_merges": True},
...     "pre_tokenizer": {"type": "ByteLevel", "add_prefix_space": False, "use_regex": True},
...     "added_tokens": [{"id": 257, "content": "<s>", "special": True}],
...     "post_processor": {"type": "TemplateProcessing", "single": [
...         {"SpecialToken": {"id": "<s>", "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}]},
... }
>>> parsed = read_tokenizer_json(json.dumps(document).encode(), name="toy")
>>> parsed.bos_token, parsed.model.ignore_merges, parsed.model.merge_rule
('<s>', True, 'pairs')
"""

from __future__ import annotations

import json
from array import array
from typing import Any


from ..errors import ModelFormatError
from .added_tokens import AddedToken
from .byte_level_alphabet import token_text_to_bytes
from .byte_level_model import ByteLevelModel, TokenizerFile
from .patterns import GPT2_BYTE_LEVEL_PATTERN
from .pre_tokenizer import PrefixSpace, PreTokenizerStep, Split
from .vocabulary_checks import MAX_ID, shown_id

__all__ = ["read_tokenizer_json", "parse_tokenizer_json"]


def read_tokenizer_json(data: bytes, *, name: str) -> TokenizerFile:
    """Parse tokenizer.json bytes (ModelFormatError for anything not understood)."""
    try:
        document = json.loads(data)
    except (ValueError, UnicodeDecodeError) as error:
        raise ModelFormatError(f"tokenizer.json of {name!r} is not JSON: {error}") from None
    except RecursionError:
        raise ModelFormatError(f"tokenizer.json of {name!r} nests too deeply to read") from None
    return parse_tokenizer_json(document, name=name)


def parse_tokenizer_json(document: Any, *, name: str) -> TokenizerFile:
    """`read_tokenizer_json` of an already parsed document."""
    reader = _Reader(name)
    if not isinstance(document, dict):
        reader.fail("the document", "is not a JSON object")
    for key in ("truncation", "padding"):
        if document.get(key) is not None:
            reader.fail(key, "is set; tokend never truncates or pads an encoding: set it to null and import again")
    normalizer = reader.normalizer(document.get("normalizer"))
    steps, has_byte_level = reader.pre_tokenizer(document.get("pre_tokenizer"))
    if not has_byte_level:
        reader.fail("pre_tokenizer", "has no ByteLevel step: the vocabulary is not byte-level BPE")
    byte_level_decoder = reader.decoder(document.get("decoder"))
    model = document.get("model")
    if not isinstance(model, dict) or model.get("type", "BPE") != "BPE":
        reader.fail("model", f"type {model.get('type') if isinstance(model, dict) else model!r} is not BPE")
    vocabulary, extra_decoder, ids_by_text = reader.vocabulary(model)
    merges = reader.merges(model, vocabulary, ids_by_text)
    added = reader.added_tokens(document.get("added_tokens") or [], ids_by_text)
    bos, eos = reader.bos_eos(document.get("post_processor"))
    return TokenizerFile(
        ByteLevelModel(
            name,
            vocabulary=vocabulary,
            pre_tokenizer=tuple(steps),
            added_tokens=tuple(added),
            merges=merges,
            ignore_merges=bool(model.get("ignore_merges", False)),
            normalizer=normalizer,
            extra_decoder=extra_decoder,
            added_tokens_byte_level=byte_level_decoder,
            dialect="oniguruma",
        ),
        bos,
        eos,
    )


class _Reader:
    def __init__(self, name: str) -> None:
        self.name = name

    def fail(self, component: str, problem: str):
        raise ModelFormatError(f"tokenizer.json of {self.name!r}: {component} {problem}")

    def items(self, value: Any, field: str) -> list:
        """`value` as a list (None: empty), else a ModelFormatError naming `field`."""
        if value is None:
            return []
        if not isinstance(value, list):
            self.fail(field, f"is {type(value).__name__}, not a list")
        return value

    def unsupported(self, component: str, value: Any):
        kind = value.get("type") if isinstance(value, dict) else value
        self.fail(component, f"{kind!r} is not supported by tokend (byte-level BPE only); the model would tokenize differently")

    def normalizer(self, value: Any) -> str | None:
        if value is None:
            return None
        parts = self.items(value.get("normalizers"), "normalizer.normalizers") if isinstance(value, dict) and value.get("type") == "Sequence" else [value]
        kinds = set()
        for part in parts:
            if not isinstance(part, dict) or part.get("type") != "NFC":
                self.unsupported("normalizer", part)
            kinds.add("NFC")
        return "NFC" if kinds else None

    def pre_tokenizer(self, value: Any) -> tuple[list[PreTokenizerStep], bool]:
        if value is None:
            return [], False
        parts = self.items(value.get("pretokenizers"), "pre_tokenizer.pretokenizers") if isinstance(value, dict) and value.get("type") == "Sequence" else [value]
        steps: list[PreTokenizerStep] = []
        byte_level = False
        for part in parts:
            kind = part.get("type") if isinstance(part, dict) else None
            if kind == "ByteLevel":
                byte_level = True
                if part.get("add_prefix_space", True):
                    steps.append(PrefixSpace())
                if part.get("use_regex", True):
                    steps.append(Split(GPT2_BYTE_LEVEL_PATTERN))
            elif kind == "Split":
                if part.get("behavior") != "Isolated" or part.get("invert", False):
                    self.fail("pre_tokenizer Split", f"with behavior {part.get('behavior')!r} and invert "
                              f"{part.get('invert')!r} is not supported (only Isolated, not inverted)")
                pattern = part.get("pattern") or {}
                if not isinstance(pattern, dict):
                    self.fail("pre_tokenizer Split pattern", f"is {type(pattern).__name__}, not {{\"Regex\": ...}} or {{\"String\": ...}}")
                if isinstance(pattern.get("Regex"), str):
                    steps.append(Split(pattern["Regex"]))
                elif isinstance(pattern.get("String"), str):
                    import regex  # `import tokend` does not pay for it

                    steps.append(Split(regex.escape(pattern["String"])))
                else:
                    self.fail("pre_tokenizer Split", f"pattern {pattern!r} is neither a Regex nor a String")
            else:
                self.unsupported("pre_tokenizer", part)
        return steps, byte_level

    def decoder(self, value: Any) -> bool:
        """Whether a ByteLevel decoder is there (it decodes the added tokens too)."""
        parts = self.items(value.get("decoders"), "decoder.decoders") if isinstance(value, dict) and value.get("type") == "Sequence" else [value]
        for part in parts:
            if part is not None and (not isinstance(part, dict) or part.get("type") != "ByteLevel"):
                self.unsupported("decoder", part)
        return any(part is not None for part in parts)

    def vocabulary(self, model: dict) -> tuple[dict[bytes, int], dict[int, bytes], dict[str, int]]:
        for key, allowed in (("dropout", (None, 0, 0.0)), ("continuing_subword_prefix", (None, "")),
                             ("end_of_word_suffix", (None, "")), ("byte_fallback", (None, False))):
            if model.get(key) not in allowed:
                self.fail(f"model.{key}", f"= {model.get(key)!r} is not supported")
        vocab = model.get("vocab")
        if not isinstance(vocab, dict) or not vocab:
            self.fail("model.vocab", "is missing or empty")
        if len(set(vocab.values())) != len(vocab) or any(type(token_id) is not int or token_id < 0 for token_id in vocab.values()):
            self.fail("model.vocab", "must give every token a distinct non-negative integer id")
        if max(vocab.values()) > MAX_ID:
            text, token_id = max(vocab.items(), key=lambda item: item[1])
            self.fail("model.vocab", f"gives {text[:40]!r} the id {shown_id(token_id)} (ids go up to {MAX_ID:,})")
        vocabulary: dict[bytes, int] = {}  # bytes -> id, for the tokens BPE can produce
        extra_decoder: dict[int, bytes] = {}  # id -> bytes, for entries outside the byte-level alphabet
        for text, token_id in vocab.items():
            token = token_text_to_bytes(text)
            if token:
                vocabulary[token] = token_id
            else:  # Hugging Face decodes such an entry as its own UTF-8
                extra_decoder[token_id] = text.encode("utf-8")
        return vocabulary, extra_decoder, vocab

    def merges(self, model: dict, vocabulary: dict[bytes, int], ids_by_text: dict[str, int]) -> array:
        # A merge's result is in the byte-level alphabet exactly when both its parts are; merges of parts
        # outside it never occur in a piece and are left out (after the same checks Hugging Face makes).
        reachable = set(vocabulary.values())
        flat: list[int] = []
        get = ids_by_text.get
        for index, merge in enumerate(self.items(model.get("merges"), "model.merges")):
            parts = merge.split(" ") if type(merge) is str else merge
            if type(parts) is not list or len(parts) != 2 or type(parts[0]) is not str or type(parts[1]) is not str:
                self.fail(f"model.merges[{index}]", f"= {merge!r} is neither 'a b' nor ['a', 'b']")
            left, right = parts
            left_id, right_id, merged_id = get(left), get(right), get(left + right)
            if left_id is None or right_id is None or merged_id is None:
                missing = left if left_id is None else right if right_id is None else left + right
                self.fail(f"model.merges[{index}]", f"= {merge!r} names {missing[:40]!r}, which is not in model.vocab")
            if merged_id in reachable:
                flat += (left_id, right_id, merged_id)
        return array("I", flat)

    def added_tokens(self, entries: Any, ids_by_text: dict[str, int]) -> list[AddedToken]:
        """The added tokens with the ids Hugging Face gives them: the id of the same text in model.vocab,
        else the next id after the vocabulary (the file's `id` is only checked there, with a warning);
        an entry repeating an earlier text changes its flags, not its id."""
        if not isinstance(entries, list):
            self.fail("added_tokens", "is not a list")
        tokens: dict[str, AddedToken] = {}
        next_id = len(ids_by_text)
        for entry in entries:
            if not isinstance(entry, dict) or not isinstance(entry.get("content"), str):
                self.fail("added_tokens", f"entry {str(entry)[:80]} needs a string content")
            content = entry["content"]
            if not content:
                continue
            token_id = tokens[content].id if content in tokens else ids_by_text.get(content)
            if token_id is None:
                token_id, next_id = next_id, next_id + 1
            special = bool(entry.get("special", False))
            tokens[content] = AddedToken(
                content,
                token_id,
                special=special,
                lstrip=bool(entry.get("lstrip", False)),
                rstrip=bool(entry.get("rstrip", False)),
                single_word=bool(entry.get("single_word", False)),
                normalized=bool(entry.get("normalized", not special)),
            )
        return list(tokens.values())

    def bos_eos(self, value: Any) -> tuple[str | None, str | None]:
        """BOS/EOS as the post-processor would add them (the first token before the text, the last after)."""
        if not isinstance(value, dict):
            return None, None
        kind = value.get("type")
        if kind == "Sequence":
            bos = eos = None
            for part in self.items(value.get("processors"), "post_processor.processors"):
                part_bos, part_eos = self.bos_eos(part)
                bos, eos = bos or part_bos, eos or part_eos
            return bos, eos
        if kind == "TemplateProcessing":
            before, after, seen_text = [], [], False
            for index, item in enumerate(self.items(value.get("single"), "post_processor.single")):
                if not isinstance(item, dict):
                    self.fail(f"post_processor.single[{index}]", f"is {type(item).__name__}, not an object")
                if "Sequence" in item:
                    seen_text = True
                elif "SpecialToken" in item:
                    special = item["SpecialToken"]
                    if not isinstance(special, dict):
                        self.fail(f"post_processor.single[{index}].SpecialToken", f"is {type(special).__name__}, not an object with an id")
                    (after if seen_text else before).append(special.get("id"))
            return (before[0] if before else None), (after[-1] if after else None)
        if kind in ("RobertaProcessing", "BertProcessing"):
            cls, sep = value.get("cls"), value.get("sep")
            return (cls[0] if isinstance(cls, list) and cls else None), (sep[0] if isinstance(sep, list) and sep else None)
        return None, None
