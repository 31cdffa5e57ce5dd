"""Extents: where a value of a GSTR-1 file ends (Rust twin: ``ingest/gstr1/extent.rs``).

A value starting with ``{`` or ``[`` ends at the bracket that brings the nesting
back to zero (brackets inside strings do not count); a string at its closing
quote; anything else before the next ``,`` ``]`` ``}`` or whitespace. The scan is
incremental: it resumes where the last feed stopped.
"""

from __future__ import annotations

import re

__all__ = ["Extent", "scan"]

_IN_STRING = re.compile(rb'["\\]')
_STRUCT = re.compile(rb'["{}\[\]]')
_SCALAR_END = re.compile(rb"[,\]} \t\r\n]")


class Extent:
    """A value being located: captured (a record) or read past (``keep`` false)."""

    __slots__ = ("depth", "esc", "in_str", "keep", "kind", "line", "scan", "too_large")

    def __init__(self, first: int, keep: bool, line: int) -> None:
        self.kind = "c" if first in b"{[" else ("s" if first == ord('"') else "x")
        self.keep, self.line = keep, line
        # Bytes of the value scanned so far (from the reader's pos). The first byte of a
        # string or scalar is known: the scan starts after it.
        self.scan = 0 if self.kind == "c" else 1
        self.depth = 0
        self.in_str = self.kind == "s"
        self.esc = False
        self.too_large = False


def scan(buf: bytearray, base: int, ext: Extent, final: bool) -> int:
    """Scan on from ``ext.scan``; the extent's length once complete, else -1."""
    i, n = base + ext.scan, len(buf)
    if ext.kind == "x":
        m = _SCALAR_END.search(buf, i)
        if m is None:
            ext.scan = n - base
            return ext.scan if final else -1
        return m.start() - base
    while True:
        if ext.in_str:
            if ext.esc:
                if i >= n:
                    break
                ext.esc, i = False, i + 1
                continue
            m = _IN_STRING.search(buf, i)
            if m is None:
                i = n
                break
            i = m.end()
            if m.group() == b"\\":
                ext.esc = True
                continue
            ext.in_str = False
            if ext.kind == "s":
                return i - base
            continue
        m = _STRUCT.search(buf, i)
        if m is None:
            i = n
            break
        i = m.end()
        c = m.group()
        if c == b'"':
            ext.in_str = True
        elif c in b"{[":
            ext.depth += 1
        else:
            ext.depth -= 1
            if ext.depth == 0:
                return i - base
    ext.scan = i - base
    return -1
