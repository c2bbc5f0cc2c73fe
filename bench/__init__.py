"""Benchmarks: `python -m bench <name>`; results are printed and written to docs/bench-<name>.md."""
