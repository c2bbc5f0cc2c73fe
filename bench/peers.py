"""The libraries tokend is measured against, loaded offline, behind one small interface.

    peer = load_peer("fastokens", "cl100k_base")     # a Peer, or an Unavailable saying why not
    peer.encode("hello world"), peer.count("hello world")

Each factory returns a *fresh* instance (several peers keep a cache of pieces or words per instance:
tokend, fastokens, splintr), so a round that builds its peers anew measures text none of them has seen.
Every peer reads its vocabulary from local files: tiktoken and fastokens the rank file in the private
TIKTOKEN_CACHE_DIR (bench/_oracle.py), quicktok, rs-bpe and splintr the copies shipped in their own
wheels. Nothing is downloaded at run time.

What is timed for each peer is the cheapest call the library offers for the job, listed in `calls`:
- encode: the ids of text without special tokens as a Python list (tiktoken semantics; for libraries
  whose `encode` matches special tokens by default, their ordinary-text call).
- count: the number of ids; a library without a count call pays for its cheapest ids container
  (fastokens and splintr: the flat uint32 buffer, no Python list; tiktoken: the list).
- batch (optional): `(texts, threads) -> ids per text` where the library takes a thread count per call.
Peers are not trusted to be exact: bench/exactness.py checks them against tiktoken before they are timed.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from importlib import metadata

from bench._oracle import rank_file_bytes, rank_file_path, tiktoken_encoding

__all__ = ["DEFAULT_PEERS", "PEERS", "Peer", "Unavailable", "distribution_version", "load_peer"]


@dataclass(frozen=True)
class Peer:
    key: str  # "fastokens"
    version: str  # "0.3.5"
    encode: Callable[[str], Sequence[int]]
    count: Callable[[str], int]
    calls: str  # the calls that are timed, for the report
    encode_batch: Callable[[list[str], int], Sequence[Sequence[int]]] | None = None
    count_batch: Callable[[list[str], int], Sequence[int]] | None = None

    @property
    def label(self) -> str:
        return f"{self.key} {self.version}"


@dataclass(frozen=True)
class Unavailable:
    key: str
    reason: str

    @property
    def label(self) -> str:
        return self.key


def distribution_version(distribution: str) -> str:
    """The installed version of a distribution, or '?'."""
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


@functools.lru_cache(maxsize=None)
def _ranks(name: str) -> dict[bytes, int]:
    from tokend.engine import OPENAI_ENCODINGS, load_tiktoken_ranks

    return load_tiktoken_ranks(rank_file_bytes(name), expected_sha256=OPENAI_ENCODINGS[name].rank_file_sha256)


def _spec(name: str):
    from tokend.engine import OPENAI_ENCODINGS

    return OPENAI_ENCODINGS[name]


def _tokend(name: str) -> Peer:
    encoding = _spec(name).build(_ranks(name))

    def encode_batch(texts: list[str], threads: int):
        return encoding.encode_ordinary_batch(texts, num_threads=threads)

    def count_batch(texts: list[str], threads: int):
        return encoding.count_batch(texts, num_threads=threads)  # TypeError where the engine lacks num_threads

    return Peer("tokend", distribution_version("tokend"), encoding.encode, encoding.count,
                "encode(t); count(t); encode_ordinary_batch / count_batch(num_threads=n)", encode_batch, count_batch)


def _tiktoken(name: str) -> Peer:
    # tiktoken keeps no cache of pieces, so its registry's shared instance is as fresh as a new one.
    encoding = tiktoken_encoding(name)

    def count_batch(texts: list[str], threads: int):
        return [len(ids) for ids in encoding.encode_ordinary_batch(texts, num_threads=threads)]

    return Peer("tiktoken", distribution_version("tiktoken"), encoding.encode, lambda text: len(encoding.encode_ordinary(text)),
                "encode(t); len(encode_ordinary(t)); encode_ordinary_batch(num_threads=n)",
                lambda texts, threads: encoding.encode_ordinary_batch(texts, num_threads=threads), count_batch)


_QUICKTOK_NAMES = {"cl100k_base": "cl100k_base", "o200k_base": "o200k_base"}


def _quicktok(name: str) -> Peer:
    import numpy
    import quicktok

    encoding = quicktok.Tokenizer(_QUICKTOK_NAMES[name], "")  # "" = the vocabulary shipped in the wheel

    def encode_batch(texts: list[str], threads: int):
        ids, offsets = encoding.encode_batch(texts, threads)
        return [ids[offsets[i] : offsets[i + 1]] for i in range(len(texts))]

    def count_batch(texts: list[str], threads: int):
        return numpy.diff(encoding.encode_batch(texts, threads)[1])

    return Peer("quicktok", distribution_version("quicktok-v1"), encoding.encode, encoding.count,
                "encode(t); count(t); encode_batch(texts, threads=n)", encode_batch, count_batch)


def _fastokens(name: str) -> Peer:
    import fastokens

    # `encoding=` selects fastokens' preset for a known encoding (its own pre-splitter: ~4x the MB/s of the
    # same split given as `pattern=` on cl100k here); the ranks still come from the file.
    tokenizer = fastokens.Tokenizer.from_tiktoken(
        str(rank_file_path(name)), special_tokens=dict(_spec(name).special_tokens), encoding=name
    )
    # Its batch calls run on rayon's global pool, whose size is fixed per process (RAYON_NUM_THREADS).
    return Peer("fastokens", distribution_version("fastokens"), lambda text: tokenizer.encode_ordinary(text).ids,
                lambda text: len(tokenizer.encode_batch_flat([text])[0]) // 4,
                "encode_ordinary(t).ids; len(encode_batch_flat([t])[0]) // 4")


def _rs_bpe(name: str) -> Peer:
    from rs_bpe.bpe import openai

    factories = {"cl100k_base": openai.cl100k_base, "o200k_base": openai.o200k_base}
    tokenizer = factories[name]()

    def encode_batch(texts: list[str], threads: int):
        # -> (ids per text, total ids, seconds, threads used); ParallelOptions(min_batch_size, chunk_size, max_threads)
        return tokenizer.encode_batch_parallel(texts, openai.ParallelOptions(1, 1, threads))[0]

    return Peer("rs-bpe", distribution_version("rs_bpe"), tokenizer.encode, tokenizer.count,
                "encode(t); count(t); encode_batch_parallel(texts, ParallelOptions(max_threads=n))", encode_batch,
                lambda texts, threads: [len(ids) for ids in encode_batch(texts, threads)])


def _splintr(name: str) -> Peer:
    import splintr

    # from_pretrained reads the vocabulary bundled in the wheel; its `encode` matches special tokens.
    tokenizer = splintr.Tokenizer.from_pretrained(name)
    return Peer("splintr", distribution_version("splintr-rs"), tokenizer.encode_ordinary,
                lambda text: len(tokenizer.encode_flat(text)) // 4, "encode_ordinary(t); len(encode_flat(t)) // 4")


def _kitoken(name: str) -> Peer:
    import kitoken

    # Kitoken reads tiktoken files itself and knows the split of the OpenAI encodings by their vocabulary.
    tokenizer = kitoken.Kitoken.from_tiktoken_file(str(rank_file_path(name)))
    return Peer("kitoken", distribution_version("kitoken"), tokenizer.encode, lambda text: len(tokenizer.encode(text)),
                "encode(t); len(encode(t))")


PEERS: dict[str, Callable[[str], Peer]] = {
    "tokend": _tokend,
    "tiktoken": _tiktoken,
    "quicktok": _quicktok,
    "fastokens": _fastokens,
    "rs-bpe": _rs_bpe,
    "splintr": _splintr,
    "kitoken": _kitoken,
}
# kitoken is exact but slower than tiktoken (~11 MB/s on English here): opt in with --peers.
DEFAULT_PEERS = ("tokend", "tiktoken", "quicktok", "fastokens", "rs-bpe", "splintr")


def load_peer(key: str, encoding_name: str) -> Peer | Unavailable:
    """A fresh instance of peer `key` for `encoding_name`, or why it cannot be had here."""
    if key not in PEERS:
        return Unavailable(key, f"unknown peer; choose from {', '.join(PEERS)}")
    try:
        return PEERS[key](encoding_name)
    except ImportError as error:
        return Unavailable(key, f"not installed ({error.name}); pip install -r bench/requirements.txt")
    except KeyError:
        return Unavailable(key, f"has no {encoding_name}")
    except Exception as error:  # a peer that fails to load is reported, never allowed to stop the run
        return Unavailable(key, f"failed to load {encoding_name}: {type(error).__name__}: {error}")
