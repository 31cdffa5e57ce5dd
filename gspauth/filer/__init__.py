"""High-volume filing: from the files filers have to GSTN's final status.

:class:`Filer` reads JSONL, GSTR-1 JSON or offline-tool CSV files (:mod:`gspauth.ingest`, in
the Rust core), validates every record, records every invoice in the filing journal
(:mod:`gspauth.journal`), groups them into RETSAVE chunks, sends them — async, bounded overall,
per GSTIN and per GSP, pausing a GSP that answers 429, retrying transient failures with the
same ``txn``, holding back from a host that is down — and follows each save with RETSTATUS to
its final status and per-invoice errors. A GSTIN that needs OTP consent is parked; the others
go on. Running it again is always safe: GSTN never gets the same content twice, nothing in
doubt is lost, and a corrected input re-sends only what changed.

::

    from gspauth.filer import Filer, FilingInput
    from gspauth.journal.sqlite import SQLiteJournal

    with SQLiteJournal("gstr1-072017.journal") as journal:
        report = Filer(journal, client_for).run_sync([FilingInput("invoices.jsonl")])
    print(report.text())

``gspauth file`` is this, from the command line.
"""

from __future__ import annotations

from gspauth.filer._plan import FilingInput
from gspauth.filer._report import FilingProgress, FilingReport, GstinProgress
from gspauth.filer._run import ClientFor, Filer, FilerOptions

__all__ = ["ClientFor", "Filer", "FilerOptions", "FilingInput", "FilingProgress", "FilingReport", "GstinProgress"]
