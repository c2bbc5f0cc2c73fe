"""Shared test helpers (importable as ``support.*``: tests/ is on sys.path through tests/conftest.py).

- ``support.server``: ``start_server(...)`` / ``TokendServer`` — a real `tokend serve` subprocess on free
  loopback ports, waited for until SERVING, always cleaned up; ``free_port()``.
- ``support.registries``: ``build_registry(root, encodings)`` / ``publish_openai(registry, ...)`` — real
  directory registries holding OpenAI's cl100k_base / o200k_base rank files.
- ``support.random_texts``: ``short_text(rng)`` / ``long_text(rng, length, kind)`` — seeded random texts for the
  differential tests (every script, emoji ZWJ sequences, whitespace runs, digits; 2k-200k-character shapes).
- ``support.tls``: ``make_tls_files(directory)`` — a throw-away CA, server and client certificates.
"""
