"""The gRPC front-end of tokend: one worker process (``worker.py``) serving ``tokend.v1.Tokenizer``
(``servicer.py``, a translator over ``tokend.service``), its interceptors (worker id, metrics, logs,
errors via ``status_mapping``, availability), health, reflection and metrics.

Start it with ``tokend serve`` or ``python -m tokend.server`` (the supervisor, ``tokend.supervisor``, runs
the workers). Importing this package imports neither grpc nor the registry.
"""
