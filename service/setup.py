"""Build of tokend's native core (the C extension `tokend.engine._native`); everything else is in
pyproject.toml. Sources: native/ (see native/tokend_native.h)."""

from setuptools import Extension, setup

_C_FLAGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

setup(
    ext_modules=[
        Extension(
            "tokend.engine._native",
            sources=[
                "native/module.c",
                "native/pretokenize.c",
                "native/bpe_merge.c",
                "native/piece_cache.c",
                "native/rank_table.c",
            ],
            depends=["native/tokend_native.h", "native/unicode_classes.h"],
            extra_compile_args=_C_FLAGS,
        ),
        # SentencePiece BPE (its own module, so it builds and loads apart from the byte-level core; it
        # reuses that core's hash, rank table and piece cache).
        Extension(
            "tokend.engine.sentencepiece._native",
            sources=[
                "native/sp_module.c",
                "native/sp_normalizer.c",
                "native/sp_vocab.c",
                "native/sp_bpe.c",
                "native/sp_unigram.c",
                "native/piece_cache.c",
                "native/rank_table.c",
            ],
            depends=["native/sp_native.h", "native/tokend_native.h"],
            extra_compile_args=_C_FLAGS,
        ),
    ]
)
