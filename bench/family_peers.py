"""The reference library and the peers for a family's model file, as factories of fresh `Peer`s.

    family = family_of(Path("tokenizer.json"))            # "tokenizer.json" | "sentencepiece" | "tekken"
    reference_key, factories = family_peers(family, path)  # "tokenizers", {"tokenizers": ..., "fastokens": ...}

Every side encodes text as ordinary text: no BOS/EOS or other post-processing, special-token strings not
parsed (the family benchmark leaves texts holding them out). Peers whose `encode` would add specials are
called so that they do not; a peer whose output still differs is caught by the exactness check.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from bench.peers import Peer, distribution_version

__all__ = ["FAMILIES", "family_of", "family_peers", "fastokens_peer"]

FAMILIES = ("tokenizer.json", "sentencepiece", "tekken")


def family_of(path: Path) -> str:
    """Which family a model file belongs to, from its name and (for JSON) its top-level keys."""
    if path.suffix == ".model":
        return "sentencepiece"
    if path.suffix == ".json":
        with open(path, encoding="utf-8") as handle:
            keys = set(json.load(handle))
        if "model" in keys and "pre_tokenizer" in keys:
            return "tokenizer.json"
        if "config" in keys and "vocab" in keys:  # mistral-common's tekken.json
            return "tekken"
    raise ValueError(f"{path}: not a tokenizer.json, SentencePiece .model or tekken.json; pass one of those")


def family_peers(family: str, path: Path) -> tuple[str, dict[str, Callable[[], Peer]]]:
    """(key of the reference, {key: factory}) for `family`; the reference is first."""
    if family == "tokenizer.json":
        return "tokenizers", {"tokenizers": lambda: _tokenizers(path), "fastokens": lambda: _fastokens(path),
                              "tokie": lambda: _tokie(path), "splintr": lambda: _splintr(path),
                              "kitoken": lambda: _kitoken(path, "from_tokenizers_file")}
    if family == "sentencepiece":
        return "sentencepiece", {"sentencepiece": lambda: _sentencepiece(path),
                                 "kitoken": lambda: _kitoken(path, "from_sentencepiece_file")}
    if family == "tekken":
        return "mistral-common", {"mistral-common": lambda: _tekken(path),
                                  "kitoken": lambda: _kitoken(path, "from_tekken_file")}
    raise ValueError(f"unknown family {family!r}; choose from {FAMILIES}")


def _tokenizers(path: Path) -> Peer:
    import tokenizers

    tokenizer = tokenizers.Tokenizer.from_file(str(path))

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, add_special_tokens=False).ids

    return Peer("tokenizers", distribution_version("tokenizers"), encode, lambda text: len(encode(text)),
                "encode(t, add_special_tokens=False).ids; len(...)")


def fastokens_peer(tokenizer) -> Peer:
    """A fastokens.Tokenizer (of a tokenizer.json) as a Peer: its ids, and a count from its flat uint32 buffer."""
    return Peer("fastokens", distribution_version("fastokens"), lambda text: tokenizer.encode(text).ids,
                lambda text: len(tokenizer.encode_batch_flat([text])[0]) // 4,
                "encode(t).ids; len(encode_batch_flat([t])[0]) // 4")


def _fastokens(path: Path) -> Peer:
    import fastokens

    return fastokens_peer(fastokens.Tokenizer.from_file(str(path)))


def _tokie(path: Path) -> Peer:
    import tokie

    tokenizer = tokie.Tokenizer.from_json(str(path))
    return Peer("tokie", distribution_version("tokie"), lambda text: tokenizer.encode(text, add_special_tokens=False).ids,
                tokenizer.count_tokens, "encode(t, add_special_tokens=False).ids; count_tokens(t)")


def _splintr(path: Path) -> Peer:
    import splintr

    tokenizer = splintr.from_json(str(path))
    return Peer("splintr", distribution_version("splintr-rs"), tokenizer.encode_ordinary,
                lambda text: len(tokenizer.encode_flat(text)) // 4, "from_json: encode_ordinary(t); len(encode_flat(t)) // 4")


def _kitoken(path: Path, loader: str) -> Peer:
    import kitoken

    tokenizer = getattr(kitoken.Kitoken, loader)(str(path))
    return Peer("kitoken", distribution_version("kitoken"), tokenizer.encode, lambda text: len(tokenizer.encode(text)),
                f"{loader}: encode(t); len(encode(t))")


def _sentencepiece(path: Path) -> Peer:
    import sentencepiece

    processor = sentencepiece.SentencePieceProcessor(model_file=str(path))
    return Peer("sentencepiece", distribution_version("sentencepiece"), processor.encode,
                lambda text: len(processor.encode(text)), "encode(t) (no BOS/EOS); len(...)")


def _tekken(path: Path) -> Peer:
    from mistral_common.tokens.tokenizers.tekken import Tekkenizer

    tokenizer = Tekkenizer.from_file(str(path))

    def encode(text: str) -> list[int]:
        return tokenizer.encode(text, bos=False, eos=False)

    return Peer("mistral-common", distribution_version("mistral-common"), encode, lambda text: len(encode(text)),
                "Tekkenizer.encode(t, bos=False, eos=False); len(...)")
