"""Split patterns in the native core: our own compiler (pattern -> AST -> program) and C matcher.

>>> from tokend.engine.splitting import compile_splitter, SplitterChain
>>> compile_splitter(r"\\p{L}+|\\p{N}{1,3}").findall("abc 12345")
['abc', '123', '45']

Modules: nodes (the AST), syntax (parser, dialects), charset (classes, case folding), unicode_properties (the property
byte), compiler (AST -> program), splitter (Splitter, SplitterChain, compile_splitter).
"""

from .splitter import DIALECTS, MAX_STAGES, SplitMode, Splitter, SplitterChain, compile_splitter

__all__ = ["compile_splitter", "Splitter", "SplitterChain", "SplitMode", "DIALECTS", "MAX_STAGES"]
