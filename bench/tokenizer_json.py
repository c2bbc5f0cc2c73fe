"""Write a Hugging Face tokenizer.json for a byte-level BPE vocabulary given as tiktoken-style ranks.

    document = tokenizer_json(ranks, pattern=GPT4_PATTERN, special_tokens={"<|end_of_text|>": 128001})
    Path("tokenizer.json").write_text(json.dumps(document))

The layout is the one the Llama 3 / tiktoken-converted files use: a `Split` pre-tokenizer with the pattern
(`Isolated`), `ByteLevel` without its own regex, a BPE model with `ignore_merges` (a piece that is a token
is taken whole, as tiktoken does) and the merges the way `transformers`' tiktoken converter derives them:
every split of a token into two tokens, ordered by the rank of the token they make. A vocabulary need not
be closed under BPE (Llama 3's is not: its `.:.:` is no merge of two lower-ranked tokens).

Used by `python -m bench family --demo llama3` to give `tokenizers` (the reference) and the peers that read
tokenizer.json a file for a vocabulary tokend loads as ranks. Not handled: normalizers, post-processors,
non-byte-level models.
"""

from __future__ import annotations

from collections.abc import Mapping

__all__ = ["byte_to_unicode", "tokenizer_json"]


def byte_to_unicode() -> dict[int, str]:
    """GPT-2's printable stand-in for each byte (the alphabet of byte-level BPE files)."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    mapping, extra = {}, 0
    for byte in range(256):
        if byte in printable:
            mapping[byte] = chr(byte)
        else:
            mapping[byte] = chr(256 + extra)
            extra += 1
    return mapping


def tokenizer_json(ranks: Mapping[bytes, int], *, pattern: str, special_tokens: Mapping[str, int]) -> dict:
    alphabet = byte_to_unicode()

    def spelled(token: bytes) -> str:
        return "".join(alphabet[byte] for byte in token)

    merges = []  # (rank of the token made, rank of left, rank of right, left, right)
    for token, rank in ranks.items():
        for cut in range(1, len(token)):
            left, right = token[:cut], token[cut:]
            if left in ranks and right in ranks:
                merges.append((rank, ranks[left], ranks[right], left, right))
    merges.sort()
    return {
        "version": "1.0",
        "truncation": None,
        "padding": None,
        "added_tokens": [
            {"id": token_id, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
             "normalized": False, "special": True}
            for content, token_id in sorted(special_tokens.items(), key=lambda item: item[1])
        ],
        "normalizer": None,
        "pre_tokenizer": {
            "type": "Sequence",
            "pretokenizers": [
                {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False},
                {"type": "ByteLevel", "add_prefix_space": False, "trim_offsets": True, "use_regex": False},
            ],
        },
        "post_processor": None,
        "decoder": {"type": "ByteLevel", "add_prefix_space": True, "trim_offsets": True, "use_regex": True},
        "model": {
            "type": "BPE",
            "dropout": None,
            "unk_token": None,
            "continuing_subword_prefix": None,
            "end_of_word_suffix": None,
            "fuse_unk": False,
            "byte_fallback": False,
            "ignore_merges": True,
            "vocab": {spelled(token): rank for token, rank in sorted(ranks.items(), key=lambda item: item[1])},
            "merges": [[spelled(left), spelled(right)] for _, _, _, left, right in merges],
        },
    }
