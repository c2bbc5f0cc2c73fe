"""Build of tokend's native code; everything else is in pyproject.toml. Sources: native/.
- `tokend.engine._native`: the core (pre-split, BPE merge, piece cache, short-piece table; see
  native/tokend_native.h), and
  text given as parts (native/text_parts.c: a chat's rendered parts in one call), a plain chat's counts
  (native/message_counts.c), where NFC may change a text (native/nfc_runs.c),
  the decoded size of an id buffer (native/length_sums.c), whether any of a few strings occurs in a text
  (native/text_find.c: the special-token pre-check), and a str's UTF-8 for one call (native/str_utf8.c).
- `tokend.engine._alignment`: token surfaces aligned with their text (native/token_alignment.c), for offsets,
  truncation and chunking; separate so it depends on no vocabulary and no change to the core.
- `tokend.engine._chunk_plan`: chunking's planned chunk ends and separator cuts (native/chunk_plan.c).
- `tokend.engine.sentencepiece._native`: SentencePiece BPE and Unigram (native/sp_*.c, see sp_native.h).
- `tokend.server._encode_answer`: an Encode answer's wire bytes written from id buffers without the GIL
  (native/encode_answer.c; the gRPC server's, not the engine's).
- `tokend.server._decode_request`, `tokend.server._text_request`: a large Decode request's ids, and a large
  Encode or CountTokens request's texts, read from their wire bytes without the GIL (native/decode_request.c,
  native/text_request.c, native/wire_reader.h; the gRPC server's)."""

import os
import types
from concurrent.futures import ThreadPoolExecutor

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

COMPILE_ARGS = ["-O3", "-fvisibility=hidden", "-std=c11", "-Wall", "-Wextra", "-Wno-unused-parameter", "-Wno-missing-field-initializers"]



def compile_sources_at_once(compiler, sources, output_dir=None, macros=None, include_dirs=None, debug=0,
                            extra_preargs=None, extra_postargs=None, depends=None):
    """`CCompiler.compile`, with one compiler process per core instead of one at a time.

    The core has ~30 sources at -O3; compiled one after another they were ~20 s of every install, Docker build
    and CI run on 2 cores. Every source is compiled, as `compile` does (`_setup_compile` lists them all); an
    extension whose file is newer than its sources and depends is not rebuilt at all (build_ext's check).
    """
    macros, objects, extra_postargs, pp_opts, build = compiler._setup_compile(
        output_dir, macros, include_dirs, sources, depends, extra_postargs)
    cc_args = compiler._get_cc_args(pp_opts, debug, extra_preargs)

    def compile_one(obj):
        source, extension = build[obj]
        compiler._compile(obj, source, extension, cc_args, extra_postargs, pp_opts)

    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        list(pool.map(compile_one, [obj for obj in objects if obj in build]))
    return objects


class BuildExtAtOnce(build_ext):
    """build_ext whose compiler compiles an extension's sources in parallel (see compile_sources_at_once)."""

    def build_extensions(self):
        self.compiler.compile = types.MethodType(compile_sources_at_once, self.compiler)
        super().build_extensions()


setup(
    cmdclass={"build_ext": BuildExtAtOnce},
    ext_modules=[
        Extension(
            "tokend.engine._native",
            sources=[
                "native/module.c",
                "native/batch_encode.c",
                "native/rank_file.c",
                "native/nfc_runs.c",
                "native/varint_sizes.c",
                "native/length_sums.c",
                "native/text_find.c",
                "native/str_utf8.c",
                "native/pretokenize.c",
                "native/bpe_merge.c",
                "native/bpe_merge_group.c",
                "native/char_atoms.c",
                "native/bpe_bucket_merge.c",
                "native/rank_marks.c",
                "native/bpe_medium_merge.c",
                "native/bpe_run_merge.c",
                "native/piece_cache.c",
                "native/short_table.c",
                "native/rank_table.c",
                "native/table_memory.c",
                "native/pair_table.c",
                "native/pair_merge.c",
                "native/merge_index.c",
                "native/split_program.c",
                "native/bulk_starts.c",
                "native/split_matcher.c",
                "native/split_pieces.c",
                "native/split_object.c",
                "native/text_parts.c",
                "native/message_counts.c",
            ],
            depends=[
                "native/tokend_native.h",
                "native/str_utf8.h",
                "native/short_table.h",
                "native/piece_batch.h",
                "native/short_merge.h",
                "native/min_tree.h",
                "native/rank_marks.h",
                "native/scratch_pages.h",
                "native/batch_encode.h",
                "native/call_stop.h",
                "native/call_stopped.h",
                "native/rank_file.h",
                "native/ascii_runs.h",
                "native/unicode_classes.h",
                "native/unicode_props.h",
                "native/split_program.h",
                "native/bulk_starts.h",
                "native/split_chars.h",
                "native/split_object.h",
                "native/text_parts.h",
                "native/message_counts.h",
                "native/binary_heap.h",
                "native/nfc_runs.h",
                "native/varint_sizes.h",
                "native/length_sums.h",
                "native/text_find.h",
                "native/varint.h",
            ],
            extra_compile_args=COMPILE_ARGS + ["-pthread"],
            extra_link_args=["-pthread"],
        ),
        Extension("tokend.engine._alignment", sources=["native/token_alignment.c", "native/token_surfaces.c"],
                  depends=["native/token_surfaces.h", "native/call_stop.h", "native/call_stopped.h"],
                  extra_compile_args=COMPILE_ARGS),
        Extension("tokend.engine._chunk_plan", sources=["native/chunk_plan.c"], extra_compile_args=COMPILE_ARGS),
        # SentencePiece BPE and Unigram (its own module, so it builds and loads apart from the byte-level
        # core; it reuses that core's hash, rank table and piece cache).
        Extension(
            "tokend.engine.sentencepiece._native",
            sources=[
                "native/sp_module.c",
                "native/sp_normalizer.c",
                "native/sp_vocab.c",
                "native/sp_bpe.c",
                "native/sp_bpe_passes.c",
                "native/sp_unigram.c",
                "native/piece_cache.c",
                "native/short_table.c",
                "native/rank_table.c",
                "native/table_memory.c",
                "native/message_counts.c",
                "native/sp_byte_runs.c",
            ],
            depends=["native/sp_native.h", "native/tokend_native.h", "native/binary_heap.h", "native/min_tree.h", "native/message_counts.h",
                     "native/text_parts.h", "native/short_table.h", "native/gil_hand_off.h", "native/call_stopped.h"],
            extra_compile_args=COMPILE_ARGS,
        ),
        Extension("tokend.server._encode_answer", sources=["native/encode_answer.c"],
                  depends=["native/varint.h", "native/gil_hand_off.h"],
                  extra_compile_args=COMPILE_ARGS),
        Extension("tokend.server._decode_request", sources=["native/decode_request.c"], depends=["native/wire_reader.h"],
                  extra_compile_args=COMPILE_ARGS),
        Extension("tokend.server._text_request", sources=["native/text_request.c"], depends=["native/wire_reader.h"],
                  extra_compile_args=COMPILE_ARGS),
        Extension("tokend.server._chat_shape", sources=["native/chat_shape.c"], depends=["native/wire_reader.h"],
                  extra_compile_args=COMPILE_ARGS),
        Extension("tokend.server._batch_items", sources=["native/batch_items.c"], depends=["native/wire_reader.h"],
                  extra_compile_args=COMPILE_ARGS),
    ]
)
