"""Generated from protos/tokend/v1 by `python protos/generate.py`. Do not edit."""
