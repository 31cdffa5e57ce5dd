"""The record-level rejection raised inside the reference backend, and message helpers."""

from __future__ import annotations

from json.encoder import encode_basestring

__all__ = ["SHOW_MAX", "Reject", "show"]

#: Text taken from the input is shown in messages up to this many code points.
SHOW_MAX = 40


class Reject(Exception):
    """A record (or, when ``fatal``, the whole file) is refused: ``code`` and ``message``.

    ``line`` overrides the line the record started on (CSV rows report their own line).
    """

    def __init__(self, code: str, message: str, line: int | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.line = line


def show(text: str) -> str:
    """``text`` as a JSON string literal for a message: canonical escapes, lone
    surrogates as ``\\udxxx``, at most :data:`SHOW_MAX` code points (then ``…``)."""
    cut = text[:SHOW_MAX]
    out: str = encode_basestring(cut)
    if any("\ud800" <= c <= "\udfff" for c in cut):
        out = "".join(f"\\u{ord(c):04x}" if "\ud800" <= c <= "\udfff" else c for c in out)
    if len(text) > SHOW_MAX:
        out = out[:-1] + '…"'
    return out
