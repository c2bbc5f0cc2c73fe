"""The `tokend` command line: thin commands over the registry, engine and server (see `main.py`)."""
