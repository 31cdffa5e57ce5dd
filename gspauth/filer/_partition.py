"""Partitioning a filing run by GSTIN, for filers that split one run over many workers
(:mod:`gspauth.filer.distributed`).

Every task reads the same input files and keeps only its own GSTINs' records, so that no
invoice is ever shipped from one machine to another; a GSTIN is filed by exactly one task
(and, through the journal's per-GSTIN claim, by one filer at a time).

Reading every file in every task would parse the input once per partition. For JSONL the
planner therefore blanks, before parsing, the lines that plainly belong to another partition
(:class:`LineFilter`): a cheap byte search for the ``"gstin"`` key, never trusted further than
it can be. A line whose GSTIN the search cannot read for certain (escapes, a broken line, an
over-long line) is parsed by every task, each keeping only records of its own GSTINs, and its
errors are reported by partition 0 alone. So every record is filed by one task, and every
record error is reported once, whatever the input holds.
"""

from __future__ import annotations

import functools
import hashlib
import re
from dataclasses import dataclass

__all__ = ["LineFilter", "Partition", "partition_of"]

# A top-level "gstin" key with a plain string value (no escapes). Inside a JSON string a quote
# is always escaped, so in valid JSON this can only match a key named gstin.
_GSTIN_KEY = re.compile(rb'"gstin"\s*:\s*"([^"\\]{1,64})"')
# A line longer than this is passed through whole (the parser reports it as too large).
_MAX_FILTERED_LINE = 8 << 20
# More unattributed lines than this in one file and the filter stands aside for the rest of
# it (a file of garbage must not grow a set without bound); correctness does not depend on it.
_MAX_UNATTRIBUTED = 10_000


@functools.lru_cache(maxsize=1 << 16)
def partition_of(gstin: str, count: int) -> int:
    """The partition of ``gstin`` among ``count``: SHA-256 of the GSTIN's ASCII bytes, first
    8 bytes big-endian, modulo ``count``. Stable across processes, machines and Python versions
    (unlike :func:`hash`), so every worker agrees on who files what."""
    digest = hashlib.sha256(gstin.encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") % count


@dataclass(frozen=True)
class Partition:
    """The GSTINs one task files: those whose :func:`partition_of` is ``index`` among
    ``count`` (and, when ``only`` is given, in ``only`` too: a later pass over some of them).

    :param index: this task's partition, ``0 <= index < count``.
    :param count: how many partitions the run has.
    :param only: narrow to these GSTINs (a retry of GSTINs that were busy or awaited consent).
    """

    index: int
    count: int
    only: frozenset[str] | None = None

    def __post_init__(self) -> None:
        if self.count < 1 or not 0 <= self.index < self.count:
            from gspauth.errors import InvalidParameter

            raise InvalidParameter(f"partition {self.index} of {self.count}: need 0 <= index < count", "partition")

    def __contains__(self, gstin: object) -> bool:
        if not isinstance(gstin, str) or partition_of(gstin, self.count) != self.index:
            return False
        return self.only is None or gstin in self.only

    @property
    def reports_unattributed(self) -> bool:
        """Whether this task reports the errors of input no GSTIN can be told for (partition 0
        of a first pass: every task reads such input, one reports it)."""
        return self.index == 0 and self.only is None

    def narrowed(self, gstins: frozenset[str]) -> Partition:
        """The same partition, only for ``gstins``."""
        return Partition(self.index, self.count, frozenset(g for g in gstins if g in self))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}" + (f" ({len(self.only)} GSTINs)" if self.only is not None else "")


class LineFilter:
    """Blanks, in a JSONL stream, the lines that belong to another partition (keeping their
    newline, so line numbers do not move), and remembers which lines it could not attribute.

    Feed it the file's blocks in order; it returns whole lines only and keeps the rest for the
    next block (:meth:`finish` returns what is left at the end).
    """

    def __init__(self, partition: Partition) -> None:
        self.partition = partition
        self._carry = b""
        self._lines = 0  # lines returned so far
        self._unattributed: set[int] = set()
        self._all_from: int | None = None  # from this line on, the filter stands aside

    def attributed(self, line: int) -> bool:
        """Whether ``line`` (1-based) was read as this partition's for certain."""
        if self._all_from is not None and line >= self._all_from:
            return False
        return line not in self._unattributed

    def _stand_aside(self) -> None:
        # The set is kept: the batch of the lines already returned is still to be placed.
        if self._all_from is None:
            self._all_from = self._lines + 1

    def feed(self, block: bytes) -> bytes:
        if self._all_from is not None:
            return block
        data = self._carry + block if self._carry else block
        cut = data.rfind(b"\n")
        if cut < 0:
            self._carry = data
            if len(data) > _MAX_FILTERED_LINE:  # no newline in sight: let the parser judge it
                self._carry = b""
                self._stand_aside()
                return data
            return b""
        self._carry = data[cut + 1:]
        lines = data[:cut].split(b"\n")
        first = self._lines + 1
        self._lines += len(lines)
        out = self._filter(lines, first)
        if self._all_from is not None:  # stood aside mid-block: everything left passes as is
            return out + self._carry_out()
        if len(self._carry) > _MAX_FILTERED_LINE:
            self._stand_aside()
            return out + self._carry_out()
        return out

    def _carry_out(self) -> bytes:
        carry, self._carry = self._carry, b""
        return carry

    def _filter(self, lines: list[bytes], first: int) -> bytes:
        partition = self.partition
        search = _GSTIN_KEY.search
        # A line that begins with the previous match's bytes (up to the end of its GSTIN value)
        # has that same first "gstin" key: lines of one GSTIN come in runs, and a prefix test is
        # cheaper than a search. (No match can start earlier in such a line: it would have to
        # end inside those same bytes, a value cannot run past a quote, and the previous
        # line's search would have found it.)
        prefix, mine = b"\0", True
        for n, line in enumerate(lines):
            if line.startswith(prefix):
                if not mine:
                    lines[n] = b""
                continue
            m = search(line)
            if m is not None:
                prefix, mine = line[:m.end()], m.group(1).decode("ascii", "replace") in partition
                if not mine:
                    lines[n] = b""  # another partition's: it reads and reports this line
                continue
            if not line.strip():
                continue
            self._unattributed.add(first + n)  # every partition parses it; partition 0 reports it
            if len(self._unattributed) > _MAX_UNATTRIBUTED:
                self._all_from = first + n  # the set stops growing here: it is bounded
                break  # the lines after this one pass as they are
        return b"\n".join(lines) + b"\n"

    def finish(self) -> bytes:
        """The last line when the file does not end with a newline."""
        if not self._carry:
            return b""
        carry = self._carry_out()
        self._lines += 1
        if self._all_from is None:
            return self._filter([carry], self._lines)[:-1]
        return carry
