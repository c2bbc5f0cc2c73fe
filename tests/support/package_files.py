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

On a machine whose cache is empty, ``Prefetch`` (started by the suite's controller process for a whole-suite
run, tests/conftest.py) downloads the big archives and unpacks their most-read directories on a thread while
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

__all__ = ["Prefetch", "cache_root", "npm_file", "pypi_file", "sha256_file"]


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


def _pypi_archive(name: str, version: str, *, sdist: bool, started: list[subprocess.Popen] | None = None) -> Path:
    """The archive of ``name==version`` (downloaded by pip on first use); ``started`` receives the pip process."""
    directory = cache_root() / "pypi" / f"{name}-{version}-{'sdist' if sdist else 'wheel'}"
    with _locked(directory):
        archives = [p for p in directory.glob("*") if p.suffix in {".gz", ".whl", ".zip"}] if directory.exists() else []
        if not archives:
            directory.mkdir(parents=True, exist_ok=True)
            # Into a scratch directory first, then renamed: an interrupted download leaves no archive that a
            # later run would take for whole.
            with tempfile.TemporaryDirectory(dir=directory, prefix=".download-") as scratch:
                command = [sys.executable, "-m", "pip", "download", "--quiet", "--no-input", "--no-deps", "-d",
                           scratch, f"{name}=={version}"]
                command += ["--no-binary", ":all:"] if sdist else ["--only-binary", ":all:"]
                with subprocess.Popen(command, stdin=subprocess.DEVNULL) as pip:
                    if started is not None:
                        started.append(pip)
                    if pip.wait() != 0:
                        raise subprocess.CalledProcessError(pip.returncode, command)
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
        if not target.exists():
            names = _unpack_folders(archive, {member.rpartition("/")[0]}, top_level=top_level)
            if not target.exists():  # a link, or a name the pass did not take: read that member alone
                wanted = _find(names, member, top_level=top_level, archive=archive)
                with tarfile.open(archive) as tarred:
                    extracted = tarred.extractfile(wanted)
                    if extracted is None:
                        raise FileNotFoundError(f"{wanted} in {archive.name} is not a regular file")
                    _write(target, extracted.read())
    return target


def _unpack_folders(archive: Path, folders: set[str], *, top_level: bool) -> list[str]:
    """Write the regular files directly in ``folders`` that are not cached yet, in one pass over the
    tarball (the caller holds its lock); returns every member name. A name given twice keeps its last copy,
    as tar does."""
    names, written = [], set()
    with tarfile.open(archive, "r|*") as tarred:
        for info in tarred:
            names.append(info.name)
            relative = info.name.split("/", 1)[1] if top_level and "/" in info.name else info.name
            if not info.isfile() or relative.rpartition("/")[0] not in folders:
                continue
            file = archive.parent / "files" / relative
            if file in written or not file.exists():
                _write(file, tarred.extractfile(info).read())
                written.add(file)
    return names


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


# What the suite reads most, by package: the folders of a tarball it reads files from (tests/test_prefetch.py
# checks that the tests still pin these versions).
_PREFETCH = (
    (("llama-cpp-python", "0.3.36", True), {"vendor/llama.cpp/models", "vendor/llama.cpp/models/templates",
                                            "vendor/llama.cpp/src"}),
    (("sentencepiece", "0.2.3", True), {"test"}),
    (("mistral-common", "1.13.1", False), set()),
    (("quicktok-v1", "0.4.0", False), set()),
)


class Prefetch:
    """The suite's big archives, fetched on a daemon thread while the first tests run; tests that need one
    meanwhile wait on its lock. ``stop()`` (at the end of the session) ends a pip still downloading, so
    nothing outlives pytest. A failure is left to the test that needs the file, which reports it.

        prefetch = Prefetch().start()
        prefetch.stop()
    """

    def __init__(self) -> None:
        self._stopping = threading.Event()
        self._started: list[subprocess.Popen] = []
        self._thread = threading.Thread(target=self._fetch, name="prefetch-package-files", daemon=True)

    def start(self) -> Prefetch:
        self._thread.start()
        return self

    def stop(self, timeout: float = 10.0) -> None:
        self._stopping.set()
        for pip in self._started:
            if pip.poll() is None:
                pip.terminate()
        self._thread.join(timeout)

    def _fetch(self) -> None:
        for (name, version, sdist), folders in _PREFETCH:
            if self._stopping.is_set():
                return
            try:
                archive = _pypi_archive(name, version, sdist=sdist, started=self._started)
                if folders and not self._stopping.is_set():
                    with _locked(archive):
                        _unpack_folders(archive, folders, top_level=sdist)
            except (OSError, subprocess.CalledProcessError, tarfile.TarError):
                continue


def sha256_file(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
