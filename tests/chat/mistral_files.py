"""mistral-common's shipped tokenizer files, and tokend's encodings of them as the registry serves them.

    for encodings in imported_encodings(tmp / "models"):   # a generator: the registry closes after the loop
        encodings["tekken_240718.json"].count("Hi")

Used by the `mistral_encodings` fixture (tests/chat/conftest.py) and by bench/chat.py.
"""

from __future__ import annotations

from pathlib import Path

import mistral_common

DATA = Path(mistral_common.__file__).parent / "data"
MISTRAL_FILES = {
    # file in mistral-common's data/: (format version, engine)
    "tokenizer.model.v1": ("v1", "sentencepiece"),
    "mistral_instruct_tokenizer_240216.model.v2": ("v2", "sentencepiece"),
    "mistral_instruct_tokenizer_240323.model.v3": ("v3", "sentencepiece"),
    "mistral_instruct_tokenizer_241114.model.v7": ("v7", "sentencepiece"),
    "tekken_240718.json": ("v3", "tekken"),
}


def imported_encodings(registry_dir: Path, files=tuple(sorted(MISTRAL_FILES))):
    """Yields {file name: encoding} once every file is imported into a new registry at `registry_dir` (format
    told from the file: Tekken or sentencepiece) and loaded from it; the registry closes after the yield."""
    from tokend.registry import Registry
    from tokend.registry.importing import import_files

    with Registry.open(registry_dir, create=True) as registry:
        loaded = {}
        for index, file_name in enumerate(files):
            manifest = import_files(registry, [DATA / file_name], name=f"mistral-{index}",
                                    provenance={"kind": "imported", "command": "tests/chat/mistral_files.py"})
            expected = {"tekken": "tekken_json", "sentencepiece": "sentencepiece_model"}[MISTRAL_FILES[file_name][1]]
            assert manifest.payload_format == expected, (file_name, manifest.payload_format)
            loaded[file_name] = registry.get_encoding(manifest.ref)
        yield loaded
