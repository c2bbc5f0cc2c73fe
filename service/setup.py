"""Build of tokend's native core (the C extension `tokend.engine._native`); everything else is in
pyproject.toml. Sources: native/ (see native/tokend_native.h)."""

from setuptools import Extension, setup

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
                "native/split_program.c",
                "native/split_matcher.c",
                "native/split_pieces.c",
                "native/split_object.c",
            ],
            depends=[
                "native/tokend_native.h",
                "native/unicode_classes.h",
                "native/unicode_props.h",
                "native/split_program.h",
                "native/split_chars.h",
                "native/split_object.h",
            ],
            extra_compile_args=["-O3", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"],
        )
    ]
)
