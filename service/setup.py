"""Build of tokend's native code; everything else is in pyproject.toml. Sources: native/.
- `tokend.engine._native`: the core (pre-split, BPE merge, piece cache; see native/tokend_native.h), and
  text given as parts (native/text_parts.c: a chat's rendered parts in one call).
- `tokend.engine._alignment`: token surfaces aligned with their text (native/token_alignment.c), for offsets,
  truncation and chunking; separate so it depends on no vocabulary and no change to the core."""

from setuptools import Extension, setup

COMPILE_ARGS = ["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]

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
                "native/pair_table.c",
                "native/pair_merge.c",
                "native/text_parts.c",
            ],
            depends=["native/tokend_native.h", "native/unicode_classes.h", "native/text_parts.h"],
            extra_compile_args=COMPILE_ARGS,
        ),
        Extension("tokend.engine._alignment", sources=["native/token_alignment.c"], extra_compile_args=COMPILE_ARGS),
    ]
)
