"""A strict local emulator of GSTN and of the ClearTax and Vayana GSP layers.

Use it in-process (``httpx.MockTransport(emulator.handle)``), in a thread
(:class:`ThreadedEmulator`) or as a process (``gspauth emulator serve``).

Modules: :mod:`.core` (the :class:`Emulator`: routing, public API), :mod:`.faults`, :mod:`.auth`
and :mod:`.returns` (GSTN actions), :mod:`.base` (shared checks and state), :mod:`.gsp`
(ClearTax and Vayana layers), :mod:`.keys`, :mod:`.store` (SQLite), :mod:`.outbox`,
:mod:`.gstr1` and :mod:`.rules` (GSTR-1 storage and processing), :mod:`.inward` (GSTR-2A/2B),
:mod:`.model`, :mod:`.stats`, :mod:`.admin`, :mod:`.asgi`, :mod:`.server`.

URL layout (a contract; ``{root}`` is ``http://127.0.0.1:PORT`` or the MockTransport host)
----------------------------------------------------------------------------------------
``{root}/gstn/taxpayerapi/{ver}/authenticate``, ``/gstn/taxpayerapi/{ver}/returns[/gstr1|/gstr2a|/gstr2b]``,
``/gstn/commonapi/{ver}/search``
    GSTN as a GSP sees it: ``clientid`` / ``client-secret`` of a GSTN-registered GSP
    (:data:`defaults.GSTN_CLIENT_ID`). FILEDET files: ``{root}/gstn/files/...`` (absolute ``ul``).
    ``{root}/generic/...`` is the same GSTN layer under another name (for the ``gstn-direct``
    plugin); its stats count separately.
``{root}/cleartax/gsp/api/taxpayerapi/...`` (current host profile; plugin host ``{root}/cleartax``),
``{root}/cleartax-legacy/api/taxpayerapi/...`` (legacy profile)
    ``X-CT-Auth-Token`` (:data:`defaults.CLEARTAX_AUTH_TOKEN`); ``appkey`` header, when present,
    must equal the body's ``app_key``; ClearTax adds its own GSTN credentials.
``{root}/vayana/gus/taxpayerapi/...``, ``/vayana/gus/commonapi/...``, ``/vayana/gus/ping``,
``/vayana/gus/returns/files/...``
    ``clientid``/``client-secret`` of the ASP, ``X-Asp-Auth-Token`` + ``X-Asp-Auth-Signature``
    (spec §8). FILEDET ``ul`` values are relative: prefix them with ``{root}/vayana/gus/returns``.
``{root}/_emulator/...``
    admin, portal, outboxes, clock, faults, stats (``GET {root}/_emulator/`` lists them; JSON
    in and out, errors ``{"error": ...}`` with HTTP 400/404/405; never faulted):

    ========================================================= ==================================================
    ``GET /_emulator/health``, ``/certificate.pem|.der``,      liveness and clock; current GSTN certificate; all
    ``/certificates``                                          certificates with their acceptance windows
    ``POST /_emulator/keys/rotate`` ``{"overlap_days"}``       new GSTN key; every older key capped at the overlap
    ``GET|POST /_emulator/taxpayers``                          registry of taxpayers (``duration_hours`` 6..720)
    ``GET /_emulator/outbox/otp``                              ``?gstin&purpose=auth|evc&username&since=ISO``:
                                                               OTPs sent, ``latest`` last
    ``GET /_emulator/outbox/notifications`` ``?gstin``         consent SMS / e-mail notifications
    ``POST /_emulator/portal/{gstin}/api-access``              ``{"enabled", "duration_hours"}`` (Manage API Access)
    ``GET /_emulator/portal/{gstin}/sessions``,                a taxpayer's application sessions; revoke one
    ``POST …/sessions/{session_id}/revoke``
    ``GET|POST /_emulator/clock``                              ``{"advance_seconds": N}`` (30 days = 2592000) or
                                                               ``{"set": ISO}``
    ``GET|POST /_emulator/faults``                             :class:`FaultConfig` fields
    ``GET /_emulator/stats``, ``POST /_emulator/stats/reset``  counters (layers, actions, codes, faults, events)
    ``GET|POST /_emulator/vayana/asps``                        ASPs (``clientid``, ``client_secret`` and
                                                               ``cust_id`` or ``client_id`` required)
    ``POST /_emulator/cleartax/tokens``                        another ``X-CT-Auth-Token``
    ``GET|POST /_emulator/registry``                           GSTIN registry: ``?gstin`` → status; POST
                                                               ``{"gstin", "status": active|cancelled|unregistered}``
    ``POST /_emulator/gstr2b/generate``                        ``{"gstin", "period"}``: generate a GSTR-2B statement
    ``GET|POST /_emulator/config``                             scalar :class:`EmulatorConfig` fields
    ``GET /_emulator/codes``                                   GSP-layer error code tables
    ========================================================= ==================================================

INFERRED behaviours (each configurable in :class:`EmulatorConfig`; strict default first)
--------------------------------------------------------------------------------------
* GSP-layer error shapes and codes (:data:`gsp.CLEARTAX_ERRORS`, :data:`gsp.VAYANA_ERRORS`).
* ``app_key`` that no key decrypts: TEC4002 (``bad_app_key_code``); encrypted to a retired
  or expired certificate: TEC4002 (``expired_cert_code``, or AUTH4036; ``accept_retired_certs``
  to accept it); decrypted key not 32 bytes: TEC4003. Certificates rotate by themselves once
  within ``rotation_overlap_days`` of expiry (``auto_rotate_certs``), the old one accepted
  until it expires; ``POST /_emulator/keys/rotate`` rotates at once.
* Headers: names case-insensitive, unknown ones ignored; missing mandatory header (spec §2.3,
  incl. ``Content-Type`` on bodies and ``ret_period`` on returns calls): GEN5001 naming it;
  ``ip-usr`` not IPv4, ``Content-Type`` not JSON, bad ``ret_period``: GEN5007; a ``username``
  header that differs from the body's: AUTH4032.
* Base64 with embedded whitespace (spec §0: decoders SHOULD tolerate it) is refused by
  default, the stricter reading; ``tolerant_base64=True`` models the tolerant server.
* HTTP status: AUT403x → 403, every other GSTN error → 200 with ``status_cd "0"``.
* Token life 360 min, returned as ``expiry``; the token never outlives the portal duration.
  REFRESHTOKEN only while the token is valid (``refresh_grace_minutes=0``), refused with
  AUTH4037 when the portal duration ≤ token life (the 6-hour setting) or once the duration
  since the OTP consent is over. Refresh kills the old token and EK (AUTH4033 "replaced by
  REFRESHTOKEN"); ``expiry`` of a refreshed token counts from the refresh.
* At most ``max_sessions_per_user`` (3) live sessions per (GSP clientid, username): AUTH403.
* OTP: random, 10 min, 3 attempts; a new OTPREQUEST replaces the pending one; OTP not bound
  to the OTPREQUEST app key. AUTHTOKEN without a pending OTP: AUTH4033.
* LOGOUT compares the RSA-decrypted key bytes with the session's *latest* app key (AUTH4036).
* State-cd must also match the registered user's GSTIN (``check_state_cd_against_user``).
* Data calls: token bound to clientid (AUTH4033), username (AUTH4033) and GSTIN (AUTH158).
  ``data`` that does not decrypt under EK to Base64 text (a wrong key): TEC4002; HMAC
  mismatch (over the exact decrypted text, CR/LF included) or non-JSON: AUTH4039.
* **Idempotency**: a RETSAVE replayed with the same ``txn`` for the same GSTIN returns the
  first ``reference_id`` and stores nothing; a different payload under a used ``txn`` is
  refused with AUTH4039 (``txn_conflict_policy="first-wins"`` to accept). gspauth's client
  relies on this to retry saves after timeouts.
* RETSAVE upserts one record per invoice / note (by counterparty + number), per b2cs row
  (``pos``, ``sply_ty``, ``typ``, ``rt``, ``etin``) and per hsn row (``hsn_sc``, ``uqc``, ``rt``);
  ``flag: "D"`` deletes; a later save of some rows leaves the others (GET answers the wire
  shapes: ``b2cs`` a list, ``hsn`` ``{"data": [...]}``). The save is processed when accepted
  (:mod:`.rules`): a payload breaking the structure is refused whole (RETSTATUS ``ER``,
  ``RET191106``); a record breaking a rule is rejected and not stored: counterparty GSTIN
  invalid / not registered / cancelled / the supplier's own (``RET191113``,
  ``check_counterparty_gstins``), document number already used by the supplier in the
  financial year (``RET191133``, ``unique_document_numbers``), date after the period
  (``RET191901``, emulator-defined, ``reject_dates_after_period``), rate not a GST rate
  (``RET191175``, ``check_tax_rates``). RETSTATUS answers ``IP`` for
  ``retstatus_delay_seconds`` (0 by default), then ``P``, ``PE`` (some rejected) or ``ER``
  (all rejected) with ``error_report`` in GSTN's per-section shape (see :mod:`.rules`).
  GETs see accepted records at once. Codes: :data:`REPORT_CODES` (all in :mod:`gspauth.codes`).
* GSTR-2A (``GET …/returns/gstr2a?action=B2B|CDN&ret_period[&ctin]``) and GSTR-2B
  (``GET …/returns/gstr2b?action=GET2B&rtnprd[&file_num]``) of the session's GSTIN are built
  from other taxpayers' GSTR-1 ``b2b``/``cdnr`` naming it (:mod:`.inward` has the shapes): 2A
  live, saved and filed documents with their filing flag (``cfs``); 2B only documents of
  returns filed for the period, as a statement that exists once generated
  (``gstr2b_generation="admin"``: ``POST /_emulator/gstr2b/generate``, before that RET2B1023;
  ``"live"``: built at each GET2B). Large 2A results go through token + FILEDET; large 2B
  statements are paged with ``fc`` / ``file_num`` as GSTN pages 2B. Empty results answer
  RET11416 / RET2B1016 (``gstr2_empty_is_error``).
* GSTIN registry: every checksum-valid GSTIN is registered and active unless marked
  ``cancelled`` or ``unregistered`` (``cancelled_gstins`` / ``unregistered_gstins`` at start,
  ``POST /_emulator/registry`` at run time; persisted). The public search shows ``sts``
  accordingly and answers GEN5007 for an unregistered GSTIN.
* A GET of a section with more than ``large_download_threshold`` records answers
  ``{"est", "token"}``; FILEDET then gives ``{ek, fc, urls:[{ul, ic, hash}]}``.
* Persistence (state dir 0700, files 0600, SQLite WAL): keys/certs, taxpayers, ASPs,
  sessions, why dead tokens died (as digests), saved data with its document-number index,
  receipts with their status and report, the txn index, the GSTIN registry, generated
  GSTR-2B statements and the outbox files survive a restart; pending OTPs, downloads, stats
  and fault settings do not. A seeded
  emulator restarted on its state draws new identifiers (its seed is varied per start).
* Determinism: with a ``seed`` and a frozen clock the same requests get byte-identical
  responses. The seeded GSTN key is public knowledge: emulator only (:mod:`.keys`).
* Faults (:class:`FaultConfig`, ``POST /_emulator/faults``, ``gspauth emulator serve --*-rate``;
  seeded, counted in ``stats["faults"]``): 5xx bodies carry TEC4001; 429 carries ``EMU429`` and
  ``Retry-After``; ``drop_rate`` closes the socket before any processing; ``drop_after_rate``
  closes it *after* processing (the save is stored; a retry with the same ``txn`` gets the
  first ``reference_id``); ``slow_rate`` × ``slow_ms`` delays a request before processing it
  (client timeouts); ``actions`` limits all of them to some GSTN actions. An emulator bug
  answers 500 TEC4001.
* Logs carry no secret: the uvicorn access log (off by default) has FILEDET tokens and
  file ids redacted by :mod:`gspauth.redact` (the project's one redaction module).
* Request bodies over ``max_request_body_bytes`` (10 MiB: GSTN's 5 MB of JSON per save after
  the double Base64 envelope, with headroom) are refused before parsing with HTTP 413 and
  ``GEN5413`` (an emulator-defined code; GSTN's is not public), on every layer and in
  :meth:`Emulator.handle` alike; the server stops reading at the limit and closes the
  connection after the reply.
* Vayana ``txn`` replay check is off by default (it would break idempotent retries). An ASP
  registered through the API has exactly the identities it is given: only the built-in demo
  ASP carries the :mod:`.defaults` ``cust_id`` / ``client_id``.
"""

from __future__ import annotations

from gspauth.emulator import defaults
from gspauth.emulator._http import DroppedConnection
from gspauth.emulator.config import Clock, EmulatorConfig, FaultConfig
from gspauth.emulator.core import EMITTED_GSTN_CODES, FAULT_CODES, Emulator, Portal
from gspauth.emulator.gsp import (
    CLEARTAX_ERRORS,
    GSP_ERROR_SHAPES,
    VAYANA_ERRORS,
    VayanaAsp,
)
from gspauth.emulator.model import AppSession, Taxpayer
from gspauth.emulator.outbox import Outbox
from gspauth.emulator.rules import REPORT_CODES

__all__ = [
    "CLEARTAX_ERRORS",
    "EMITTED_GSTN_CODES",
    "FAULT_CODES",
    "GSP_ERROR_SHAPES",
    "REPORT_CODES",
    "VAYANA_ERRORS",
    "AppSession",
    "Clock",
    "DroppedConnection",
    "Emulator",
    "EmulatorConfig",
    "FaultConfig",
    "Outbox",
    "Portal",
    "Taxpayer",
    "ThreadedEmulator",
    "VayanaAsp",
    "defaults",
]


def __getattr__(name: str) -> object:
    # uvicorn is imported only when the threaded server is wanted.
    if name == "ThreadedEmulator":
        from gspauth.emulator.server import ThreadedEmulator

        return ThreadedEmulator
    raise AttributeError(name)
