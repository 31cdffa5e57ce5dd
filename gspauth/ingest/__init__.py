"""Streamed ingest of invoice files into validated, canonical RETSAVE chunks.

Read what filers have — JSONL (one invoice per line), GSTR-1 JSON as the GST
offline tool writes it, or the offline tool's CSV templates — validate every
record, write it in one canonical form, group records by (GSTIN, period,
section) and cut RETSAVE payloads under a byte limit. The formats, the
canonical form, the rules, the error codes and the limits are specified in
``docs/ingest.md``.

The work runs in the Rust core when :data:`BACKEND` is ``"native"`` and in the
pure-Python reference (:mod:`gspauth.ingest._python`) otherwise; both give the
same records, errors and chunk bytes. The choice is the one backend decision of
:mod:`gspauth.crypto` (``GSPAUTH_BACKEND``).

Typical use::

    from gspauth import ingest

    for item in ingest.read_chunks(["b2b_072017.csv"], gstin="27AAPCD0007K1ZO", fp="072017"):
        if isinstance(item, ingest.RecordError):
            print(item.source, item.line, item.code, item.message)
        else:
            body = item.body(sek, "RETSAVE")  # the request body, ready to PUT

The lower-level classes (same positional-only signatures in both backends)::

    parser = ingest.Parser(format, source, section, gstin, fp)  # "jsonl" | "gstr1-json" | "csv"
    batch = parser.feed(block)       # any split of the file; .finish() at the end
    batch.records()                  # [(gstin, fp, section, ident, sha256hex, line), …]
    batch.errors()                   # [(source, line, code, message), …]
    chunker = ingest.Chunker(max_chunk_bytes, max_buffer_bytes)
    chunks = chunker.add(batch, skip)  # skip: bytes (non-zero = leave the record out) or None
    chunks += chunker.flush()
    chunk.payload, chunk.sha256, chunk.count, chunk.records, chunk.body(sek, action)
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import NamedTuple

from gspauth.errors import InvalidParameter
from gspauth.ingest import _backend

__all__ = [
    "BACKEND",
    "DEFAULT_MAX_BUFFER_BYTES",
    "DEFAULT_MAX_CHUNK_BYTES",
    "ERROR_CODES",
    "FATAL_CODES",
    "MAX_RECORD_BYTES",
    "READ_BLOCK_BYTES",
    "Batch",
    "Chunk",
    "Chunker",
    "Parser",
    "RecordError",
    "RecordTuple",
    "detect_format",
    "read_chunks",
    "section_from_name",
]

#: ``"native"`` (Rust) or ``"python"`` (the reference), as for :mod:`gspauth.crypto`.
BACKEND: str = _backend.NAME
#: Incremental reader of one file: ``Parser(format, source, section, gstin, fp)``;
#: ``feed(block)`` and ``finish()`` return a :data:`Batch`; ``failed`` is true after a fatal error.
Parser = _backend.impl.Parser
#: The records and record errors one ``feed``/``finish`` produced (``records()``, ``errors()``).
Batch = _backend.impl.Batch
#: Groups records by (GSTIN, period, section) into chunks under ``max_chunk_bytes``:
#: ``Chunker(max_chunk_bytes, max_buffer_bytes)``, ``add(batch, skip)``, ``flush()``.
Chunker = _backend.impl.Chunker
#: One RETSAVE payload: ``payload``, ``sha256``, ``count``, ``records`` and ``body(sek, action)``.
Chunk = _backend.impl.Chunk

#: A record's input (line, row, object) and its canonical bytes are at most this long.
MAX_RECORD_BYTES: int = _backend.impl.MAX_RECORD_BYTES
#: Default payload limit: 2 MiB of JSON. The request body is about 1.78× the JSON
#: (Base64 of AES of Base64) — 3.7 MB — under the ~5 MB per request that GSTN's
#: integrators work to; see ``docs/ingest.md`` for the reasoning.
DEFAULT_MAX_CHUNK_BYTES = 2 << 20
#: Default budget of record bytes held in open chunks before the largest is sent early.
DEFAULT_MAX_BUFFER_BYTES = 64 << 20
#: Files are read in blocks of this size.
READ_BLOCK_BYTES = 8 << 20

#: ``(gstin, fp, section, ident, sha256hex, line)`` of an accepted record.
RecordTuple = tuple[str, str, str, str, str, int]

#: Every error code, with what it means (``docs/ingest.md`` has the details).
ERROR_CODES: dict[str, str] = {
    "utf8": "the record (or the file structure) is not valid UTF-8",
    "json": "the record is not valid JSON, or nests deeper than 32 levels",
    "type": "a field has the wrong JSON type, or a record is not an object",
    "duplicate-key": "an object has the same field twice",
    "unknown-field": "a field the section does not have (a typo?)",
    "missing-field": "a required field is absent",
    "surrogate": "a string holds a lone UTF-16 surrogate escape",
    "number": "a CSV cell that should be a number is not one",
    "decimals": "a number has more decimals than allowed (2; 0 for num)",
    "range": "a number is negative where it may not be, or has more than 15 integer digits",
    "section": "an unknown or unsupported GSTR-1 section",
    "mismatch": "a JSONL line's section, gstin or fp differs from the one the file is read with",
    "gstin": "the supplier GSTIN is malformed or fails its check character",
    "ctin": "the counterparty GSTIN/UIN is malformed, fails its check character, or is the supplier's",
    "etin": "the e-commerce operator GSTIN is malformed or inconsistent with typ",
    "period": "the return period is not MMYYYY from 072017",
    "date": "a date is malformed, not a calendar date, or outside the return period",
    "pos": "the place of supply is not a state code, or contradicts the supply type",
    "rate": "a rate is not a GST rate",
    "tax": "the tax amounts do not match the supply (kind or arithmetic)",
    "threshold": "a B2C-large invoice is not above the period's value threshold",
    "value": "a field's value is not one it may take",
    "items": "the item list is empty, too long, or numbers items twice",
    "too-large": "a record, line or row is larger than the limits",
    "csv": "a CSV row cannot be read (quotes, field count, an unreadable neighbour row)",
    "inconsistent": "the CSV rows of one invoice disagree on an invoice-level column",
    "header": "the CSV header is not a known offline-tool layout (fatal)",
    "syntax": "the GSTR-1 JSON outer structure is not valid (fatal)",
    "truncated": "the input ends inside a structure or quoted field",
    "hint": "gstin/fp are needed before the records, or differ from the file's (fatal)",
}
#: Codes that can end the reading of a file (the parser's ``failed`` is then true);
#: ``gstin``, ``period``, ``utf8``, ``duplicate-key`` and ``too-large`` are fatal when
#: they concern the GSTR-1 JSON outer structure.
FATAL_CODES = frozenset({"header", "syntax", "truncated", "hint"})


class RecordError(NamedTuple):
    """A rejected record (or a fatal file error), as :func:`read_chunks` yields it."""

    source: str
    line: int
    code: str
    message: str


_EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".json": "gstr1-json", ".csv": "csv"}
_SECTIONS = ("b2b", "b2cl", "b2cs", "cdnr", "hsn")


def detect_format(path: str | os.PathLike[str]) -> str:
    """The format of ``path`` from its extension: ``.jsonl``/``.ndjson``, ``.json``, ``.csv``.

    :raises InvalidParameter: for another extension (pass ``format=``).
    """
    suffix = Path(path).suffix.lower()
    try:
        return _EXTENSIONS[suffix]
    except KeyError:
        raise InvalidParameter(
            f"cannot tell the format of {os.fspath(path)!r} from its extension; pass format= "
            "('jsonl', 'gstr1-json' or 'csv')", "format") from None


def section_from_name(path: str | os.PathLike[str]) -> str | None:
    """The section a CSV file name starts with (``b2b.csv``, ``b2cs_072017.csv``), else ``None``.

    ``b2ba.csv`` (an amendment section) is not ``b2b``.
    """
    stem = Path(path).stem.lower()
    for name in sorted(_SECTIONS, key=len, reverse=True):
        if stem.startswith(name) and (len(stem) == len(name) or not stem[len(name)].isalnum()):
            return name
    return None


def read_chunks(
    paths: Iterable[str | os.PathLike[str]],
    *,
    format: str | None = None,
    section: str | None = None,
    gstin: str | None = None,
    fp: str | None = None,
    max_chunk_bytes: int = DEFAULT_MAX_CHUNK_BYTES,
    max_buffer_bytes: int = DEFAULT_MAX_BUFFER_BYTES,
    skip: Callable[[RecordTuple], bool] | None = None,
    block_size: int = READ_BLOCK_BYTES,
) -> Iterator[Chunk | RecordError]:
    """Read ``paths`` in blocks and yield chunks and record errors as they complete.

    :param format: ``"jsonl"``, ``"gstr1-json"`` or ``"csv"``; by default from each
        file's extension (:func:`detect_format`).
    :param section: the section of CSV files (by default from the file name, see
        :func:`section_from_name`); for JSONL, the section every line must have.
    :param gstin: the supplier GSTIN: required for CSV; for JSONL the value every line
        must have; for GSTR-1 JSON a hint, needed when the file's records come before
        its own ``gstin`` (a sorted-keys dump) and checked against it.
    :param fp: the return period MMYYYY, as ``gstin``.
    :param max_chunk_bytes: payload limit of a chunk (see :data:`DEFAULT_MAX_CHUNK_BYTES`).
    :param max_buffer_bytes: record bytes held in open chunks across all groups before
        the largest group is emitted early; memory stays bounded by it, not by file size.
    :param skip: called with each accepted record's tuple; ``True`` leaves it out of the
        chunks (e.g. accepted in an earlier run).
    :param block_size: bytes read per ``read`` call.
    :returns: chunks in completion order (all open ones after the last file), and a
        :class:`RecordError` for every rejected record or fatal file error, in input order.
    :raises InvalidParameter: for a bad format, section, gstin or fp argument.
    """
    chunker = Chunker(max_chunk_bytes, max_buffer_bytes)
    for path in paths:
        fmt = format or detect_format(path)
        sec = section
        if sec is None and fmt == "csv":
            sec = section_from_name(path)
            if sec is None:
                raise InvalidParameter(
                    f"cannot tell the section of {os.fspath(path)!r} from its name; pass section= "
                    "(b2b, b2cl, b2cs, cdnr or hsn)", "section")
        parser = Parser(fmt, os.fspath(path), sec, gstin, fp)
        with open(path, "rb") as f:
            while block := f.read(block_size):
                yield from _place(parser.feed(block), chunker, skip)
                if parser.failed:
                    break
            yield from _place(parser.finish(), chunker, skip)
    yield from chunker.flush()


def _place(batch: Batch, chunker: Chunker, skip: Callable[[RecordTuple], bool] | None) -> Iterator[Chunk | RecordError]:
    for e in batch.errors():
        yield RecordError(*e)
    mask = None
    if skip is not None and len(batch):
        mask = bytes(1 if skip(r) else 0 for r in batch.records())
    chunks = chunker.add(batch, mask)
    for e in chunker.errors():
        yield RecordError(*e)
    yield from chunks
