"""The pure-Python reference of the ingest core: the behaviour the Rust backend reproduces.

Same classes, positional-only signatures, records, errors and chunk bytes as
``gspauth._native``'s ``Ingest*`` classes; :mod:`gspauth.ingest` picks one.
"""

from __future__ import annotations

from gspauth.ingest._python._chunker import Chunk, Chunker
from gspauth.ingest._python._parser import FORMATS, MAX_RECORD_BYTES, Batch, Parser

__all__ = ["FORMATS", "MAX_RECORD_BYTES", "Batch", "Chunk", "Chunker", "Parser"]
