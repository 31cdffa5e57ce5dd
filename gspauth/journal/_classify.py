"""The verdict on a batch of input records that every journal backend gives alike.

A backend only finds which records it already knows (one query joining the batch with its
invoice table); what that means — skip as already done, skip as still rejected, skip as a
repeat within this run, or send — is decided here, once.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from gspauth.journal import Classified, InvoiceState, RecordKey

_DONE = (InvoiceState.SAVED.value, InvoiceState.ACCEPTED.value)


class Verdict:
    """Builds a :class:`~gspauth.journal.Classified` for ``records`` read in run ``run_id``.

    On creation, a record whose identity appeared earlier in the same batch is a duplicate.
    """

    def __init__(self, records: Sequence[RecordKey], run_id: int, *, retry_rejected: bool) -> None:
        self._records = records
        self._run_id = run_id
        self._retry_rejected = retry_rejected
        self.skip = bytearray(len(records))
        self.duplicates: list[int] = []
        self._unchanged = self._still_rejected = 0
        seen: set[tuple[str, str, str, str]] = set()
        for i, r in enumerate(records):
            k = (r[0], r[1], r[2], r[3])
            if k in seen:
                self._duplicate(i)
            seen.add(k)

    def _duplicate(self, idx: int) -> None:
        self.duplicates.append(idx)
        self.skip[idx] = 1

    def known(self, rows: Iterable[tuple[int, str, str, int | None]]) -> None:
        """Judge the records the journal already holds: ``(index, sha256, state, seen_run)`` each."""
        for idx, sha, state, seen_run in rows:
            if self.skip[idx]:
                continue
            if seen_run == self._run_id:  # already read earlier in this run
                self._duplicate(idx)
            elif sha == self._records[idx][4] and state in _DONE:
                self.skip[idx] = 1
                self._unchanged += 1
            elif (sha == self._records[idx][4] and state == InvoiceState.REJECTED.value
                  and not self._retry_rejected):
                self.skip[idx] = 1
                self._still_rejected += 1

    def result(self) -> Classified:
        return Classified(bytes(self.skip), tuple(sorted(self.duplicates)), self._unchanged, self._still_rejected)
