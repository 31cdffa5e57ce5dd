"""Distributed filing on Dask: one run of :class:`~gspauth.filer.Filer` spread over many
worker processes and machines, partitioned by GSTIN.

::

    from gspauth.filer import FilerOptions
    from gspauth.filer.distributed import WorkerTarget, file_distributed

    report = file_distributed(
        ["s3://filings/072017/invoices.jsonl"], scheduler="tcp://dask-scheduler:8786",
        store="postgresql://gspauth@db/gspauth", journal="postgresql://gspauth@db/gspauth",
        target=WorkerTarget(gsp="cleartax", certificate="/etc/gspauth/gstn.pem"), taxpayers="taxpayers.csv")
    print(report.text())

``gspauth file INPUT… --scheduler tcp://host:8786`` (or ``--workers N`` for a local cluster)
is this, from the command line. How it works:

* **Partitions.** A GSTIN belongs to partition ``sha256(gstin) mod P``
  (:func:`partition_of`; P defaults to twice the cluster's worker threads). One Dask task per
  partition runs the ordinary filer on a worker: it reads every input where it is (a shared
  path, or a URL fsspec reads), keeps only its GSTINs' records and files them. Invoices never
  travel through the scheduler; a task's arguments are a few hundred bytes
  (:class:`PartitionTask`) and its result is the partition's report.
* **No secrets in the task graph.** Workers open the store and the journal from their URLs
  (a password in a URL stays on the client; workers take theirs from ``PGPASSWORD``,
  ``PGPASSFILE`` or ``~/.pgpass``) and resolve the store key and the GSP credentials from
  their own environment or ``config.toml``, exactly as ``gspauth file`` does on one machine.
* **One filer per GSTIN.** The journal's per-GSTIN claim holds across processes and
  machines, so a task Dask re-runs while the first attempt still runs (a worker it believed
  dead) finds the GSTIN busy, waits for the claim (``claim_wait``) and then files what is
  left. A worker that dies mid-chunk leaves that chunk ``sent`` (in doubt) in the journal; the
  scheduler re-runs the task on another worker, which re-sends it with the same ``txn``:
  GSTN answers it from its record of that txn, so nothing is filed twice or lost.
* **Consent.** A GSTIN that needs OTP consent is parked, as on one machine; with
  ``wait_for_consent`` its task waits (off the worker's thread pool) for a session to appear
  in the shared store — ``gspauth login --otp`` run anywhere — and then files it.
* **Progress and report.** The client follows the shared journal's counts
  (:class:`JournalProgress`) and merges the partitions' reports into one
  :class:`DistributedReport`, with the outcomes and exit codes of ``gspauth file``.

``docs/deploying.md`` covers deployment on several machines (PostgreSQL, scheduler,
workers, Kubernetes) and the limits to expect.
"""

from __future__ import annotations

from gspauth.filer._partition import Partition, partition_of
from gspauth.filer.distributed._client import default_partitions, file_distributed
from gspauth.filer.distributed._merge import DistributedReport
from gspauth.filer.distributed._progress import JournalProgress
from gspauth.filer.distributed._spec import PartitionTask, WorkerTarget

__all__ = [
    "DistributedReport",
    "JournalProgress",
    "Partition",
    "PartitionTask",
    "WorkerTarget",
    "default_partitions",
    "file_distributed",
    "partition_of",
]
