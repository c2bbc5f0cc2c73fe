"""Checks that an Encoding's plain data is a usable byte-level BPE vocabulary, with errors naming the problem.

>>> check_vocabulary("toy", {bytes([i]): i for i in range(256)}, {"<|end|>": 256}, None)

Not handled: whether the ranks are closed under BPE (see `merges.ranks_to_merges`); tiktoken does not check
that either, and real vocabularies (cl100k_base) are.
"""

from __future__ import annotations

from itertools import islice

from ..errors import ModelFormatError
from .literal_alternation import check_literal_set

__all__ = ["check_vocabulary", "check_model", "MAX_ID", "shown_id"]

_SLICE = 16384  # ranks per C call while checking them (~1 ms of the GIL)


def check_vocabulary(name: str, ranks: dict[bytes, int], specials: dict[str, int], explicit_n_vocab: int | None) -> None:
    """Raise `ModelFormatError` unless every byte has a rank, ids are unique, and `explicit_n_vocab` fits."""
    if not ranks:
        raise ModelFormatError(f"encoding {name!r}: mergeable_ranks is empty; a byte-level BPE needs all 256 bytes")
    missing = [byte for byte in range(256) if bytes([byte]) not in ranks]
    if missing:
        raise ModelFormatError(
            f"encoding {name!r}: mergeable_ranks lacks {len(missing)} single bytes (first: {bytes([missing[0]])!r}); "
            "byte-level BPE needs a rank for every byte"
        )
    ids: set[int] = set()
    values = iter(ranks.values())
    # A slice at a time: one set() of o200k_base's 200,000 ranks is a single C call that held the GIL
    # ~15 ms, which a server worker loading a model while it serves made every other call wait for.
    while chunk := list(islice(values, _SLICE)):
        ids.update(chunk)
    if len(ids) != len(ranks):
        raise ModelFormatError(f"encoding {name!r}: two mergeable tokens share a rank; ranks must be unique ids")
    # Two special tokens may share an id (tiktoken's o200k_harmony has <|endofprompt|> and
    # <|reserved_200018|> both as 200018); a special token may not take a mergeable token's id.
    clash = sorted(ids.intersection(specials.values()))
    if clash:
        raise ModelFormatError(
            f"encoding {name!r}: special token ids must be unused by mergeable tokens (id {clash[0]} is both)"
        )
    if explicit_n_vocab:
        max_value = max(max(ranks.values()), max(specials.values(), default=0))
        if len(ranks) + len(specials) != explicit_n_vocab or max_value != explicit_n_vocab - 1:
            raise ModelFormatError(
                f"encoding {name!r}: explicit_n_vocab={explicit_n_vocab} but there are {len(ranks)} mergeable "
                f"+ {len(specials)} special tokens with max id {max_value}"
            )


def check_model(model, ranks: dict[bytes, int]) -> None:
    """`check_vocabulary` for a `ByteLevelModel`: tiktoken's rules for the rank rule; for a merge list
    (Hugging Face), ids must be unique. (A byte without a token is dropped there, as Hugging Face drops
    it: Falcon's vocabulary lacks 15 control characters.)"""
    if model.special_tokens and model.added_tokens:
        raise ModelFormatError(f"encoding {model.name!r}: give special_tokens or added_tokens, not both")
    # Checked here, not where they are first decoded (the decoder table is built then): a token with a lone
    # surrogate could be encoded but never decoded.
    for text in (*model.special_tokens, *(token.content for token in model.added_tokens)):
        if not text.isascii():
            try:
                text.encode("utf-8")
            except UnicodeEncodeError:
                raise ModelFormatError(
                    f"encoding {model.name!r}: the token {text!r} holds a lone surrogate, which is no UTF-8 text"
                ) from None
    try:  # every call's special-token and added-token patterns are built from these
        check_literal_set((*model.special_tokens, *(token.content for token in model.added_tokens)))
    except ValueError as error:
        raise ModelFormatError(f"encoding {model.name!r}: special and added tokens: {error}") from None
    _check_token_ids(model, len(ranks))
    if model.merges is None:
        check_vocabulary(model.name, ranks, dict(model.special_tokens), model.explicit_n_vocab)
        return
    if len(set(ranks.values())) != len(ranks):
        raise ModelFormatError(f"encoding {model.name!r}: two vocabulary tokens share an id")


MAX_ID = 2**32 - 2  # ids are 32-bit in the core and on the wire; one value is reserved


def shown_id(token_id: object) -> str:
    """An id as an error message quotes it: whole when short, else its number of digits.

    >>> shown_id(7), shown_id(10**30)
    ('7', 'of 31 digits')
    """
    return str(token_id) if type(token_id) is not int or token_id < 10**12 else f"of {len(str(token_id))} digits"


def _check_token_ids(model, n_ranks: int) -> None:
    """Special and added tokens' ids: whole numbers the core and the wire hold (a special token of id 2**40
    was published and then answered INTERNAL on every call), and not so sparse that the tables indexed by id
    (a decode's token lengths, the offsets' surfaces) grow huge: the same bound the core puts on ranks (one
    special token of id 400,000,000 made a chunk call build a 3 GB table)."""
    named = [*model.special_tokens.items(), *((token.content, token.id) for token in model.added_tokens)]
    bound = 4 * (n_ranks + len(named)) + 65536
    for text, token_id in named:
        if type(token_id) is not int or not 0 <= token_id <= MAX_ID:
            raise ModelFormatError(
                f"encoding {model.name!r}: the token {text[:60]!r} has the id {shown_id(token_id)}; ids are whole numbers "
                f"0..{MAX_ID:,}"
            )
        if token_id >= bound:
            raise ModelFormatError(
                f"encoding {model.name!r}: the token {text[:60]!r} has the id {token_id:,}, far past the vocabulary's "
                f"{n_ranks + len(named):,} tokens (ids must stay below {bound:,})"
            )
