"""The ingest backend follows the one backend decision, made in :mod:`gspauth.crypto._backend`.

``GSPAUTH_BACKEND=native`` (or ``auto`` with the extension importable) uses the
``Ingest*`` classes of ``gspauth._native``; ``python`` uses :mod:`gspauth.ingest._python`.
An extension built without the ingest classes is an error when native was chosen,
never a silent fallback.
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING

from gspauth.crypto import _backend as _crypto_backend
from gspauth.errors import BackendUnavailable

__all__ = ["NAME", "impl", "load"]


def load(name: str) -> SimpleNamespace:
    """The classes of backend ``name`` (``"native"`` or ``"python"``) under the reference's names."""
    if name == "python":
        from gspauth.ingest import _python as ref

        return SimpleNamespace(Parser=ref.Parser, Batch=ref.Batch, Chunker=ref.Chunker, Chunk=ref.Chunk,
                               MAX_RECORD_BYTES=ref.MAX_RECORD_BYTES)
    from gspauth import _native

    try:
        return SimpleNamespace(Parser=_native.IngestParser, Batch=_native.IngestBatch,
                               Chunker=_native.IngestChunker, Chunk=_native.IngestChunk,
                               MAX_RECORD_BYTES=1 << 20)
    except AttributeError as exc:
        raise BackendUnavailable(
            "the native backend was chosen, but gspauth._native has no ingest classes "
            "(an old build? rebuild with `maturin develop --release` or `pip install .`)"
        ) from exc


if TYPE_CHECKING:  # type checkers see the reference
    from gspauth.ingest import _python as impl

    NAME: str
else:
    NAME = _crypto_backend.NAME
    impl = load(NAME)
