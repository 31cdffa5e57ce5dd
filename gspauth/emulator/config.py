"""Emulator configuration and its controllable clock.

Every point where the spec says INFERRED is a field here, defaulting to the stricter
reading (spec §12, issue 3).
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import threading
import time
from dataclasses import dataclass, field

from gspauth.emulator import defaults

__all__ = ["Clock", "EmulatorConfig", "FaultConfig"]

_UTC = _dt.timezone.utc


@dataclass
class FaultConfig:
    """Injected faults, applied to GSP/GSTN routes only (never to ``/_emulator``).

    Rates are probabilities in ``[0, 1]`` drawn from a seeded RNG (see
    :mod:`gspauth.emulator.faults`): dropped connection → 5xx → 429 before processing, a
    connection dropped *after* processing (``drop_after_rate``), and slow requests
    (``slow_rate`` × ``slow_ms``, for client timeouts). ``latency_ms`` is added to every such
    request (real time). ``actions`` (empty = all) limits faults to requests with those GSTN
    actions, e.g. ``("RETSAVE", "RETSTATUS")`` to leave the login alone.
    """

    latency_ms: float = 0.0
    latency_jitter_ms: float = 0.0
    error_5xx_rate: float = 0.0
    error_5xx_status: int = 503
    rate_429: float = 0.0
    retry_after_seconds: int = 1
    drop_rate: float = 0.0
    drop_after_rate: float = 0.0
    slow_rate: float = 0.0
    slow_ms: float = 0.0
    actions: tuple[str, ...] = ()

    def validate(self) -> None:
        for name in ("error_5xx_rate", "rate_429", "drop_rate", "drop_after_rate", "slow_rate"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0.0 <= value <= 1.0:
                raise ValueError(f"{name} must be a number within [0, 1], got {value!r}")
        for name in ("latency_ms", "latency_jitter_ms", "slow_ms"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
                raise ValueError(f"{name} must be a number >= 0, got {value!r}")
        if isinstance(self.error_5xx_status, bool) or not isinstance(self.error_5xx_status, int) \
                or not 500 <= self.error_5xx_status <= 599:  # fmt: skip
            raise ValueError("error_5xx_status must be a 5xx status")
        if isinstance(self.retry_after_seconds, bool) or not isinstance(self.retry_after_seconds, int) \
                or self.retry_after_seconds < 0:  # fmt: skip
            raise ValueError("retry_after_seconds must be an integer >= 0")
        if not isinstance(self.actions, tuple) or not all(isinstance(a, str) and a for a in self.actions):
            raise ValueError("actions must be a list of GSTN action names (empty: every request)")


@dataclass
class EmulatorConfig:
    """All knobs of :class:`~gspauth.emulator.Emulator`. Defaults follow spec §7/§12."""

    seed: int | None = None
    #: Where SQLite, certificates and outbox files live; ``None`` = all in memory.
    state_dir: str | None = None
    #: Emulator clock at start (``None`` = real time). ``clock_frozen`` stops it from ticking.
    clock_start: _dt.datetime | None = None
    clock_frozen: bool = False

    # --- sessions (§7) ----------------------------------------------------------
    token_life_minutes: int = 360
    otp_validity_seconds: int = 600
    otp_attempt_limit: int = 3
    max_sessions_per_user: int = 3
    #: REFRESHTOKEN only while the current token is still valid (strict, spec §7).
    #: ``refresh_grace_minutes`` > 0 models the "dormant" reading (refresh allowed after expiry).
    refresh_grace_minutes: int = 0
    #: Fixed OTP :data:`~gspauth.emulator.defaults.SANDBOX_OTP` instead of a random one.
    sandbox_otp: bool = False

    # --- app key / certificates (§6, §12) -----------------------------------------
    cert_validity_days: int = 365
    rotation_overlap_days: int = 30
    #: Error for an ``app_key`` encrypted to an expired/retired certificate: "TEC4002" or "AUTH4036".
    expired_cert_code: str = "TEC4002"
    #: Error for an ``app_key`` that no key decrypts at all.
    bad_app_key_code: str = "TEC4002"
    #: Require the RSA-decrypted app key to be exactly 32 bytes (spec §14 q6).
    require_32_byte_app_key: bool = True
    #: Accept an ``app_key`` encrypted to a retired or expired certificate (lenient reading of §12).
    accept_retired_certs: bool = False
    #: Rotate like GSTN does yearly: when the current certificate has less than
    #: ``rotation_overlap_days`` left, the next ``authenticate`` makes a new key; the old one
    #: stays accepted until its certificate expires.
    auto_rotate_certs: bool = True

    # --- strictness toggles for INFERRED points -----------------------------------
    #: ``state-cd`` must equal the registered user's GSTIN prefix even without a gstin header.
    check_state_cd_against_user: bool = True
    #: Require ``Content-Type: application/json`` on bodies (missing: GEN5001, other: GEN5007).
    require_json_content_type: bool = True
    #: ``ip-usr`` must be an IPv4 address (spec §2.3), else GEN5007.
    require_ipv4_ip_usr: bool = True
    #: RETSAVE payload must carry ``gstin`` == header gstin and ``fp`` == ret_period.
    validate_payload_identity: bool = True
    #: RETSAVE must carry ``hmac``.
    require_hmac: bool = True
    #: Same ``txn`` (per GSTIN) for a *different* RETSAVE payload: "reject" (AUTH4039) or "first-wins".
    txn_conflict_policy: str = "reject"
    #: Tolerate whitespace in Base64 fields. Spec §0 says decoders SHOULD (Java clients sent
    #: chunked Base64); the emulator takes the stricter reading by default (issue 3), so a
    #: client that passes here never relies on that tolerance. Set True to model it.
    tolerant_base64: bool = False
    #: RETSTATUS answers "IP" until this many seconds (emulator clock) after the save, then
    #: "P"/"PE"/"ER". 0 by default so a save is processed at once; e2e filers set it to make
    #: clients poll (the data itself is stored when the save is accepted).
    retstatus_delay_seconds: int = 0
    #: GSTR-1 processing rules (each rejects a record with a GSTN-style code in the RETSTATUS
    #: error_report; see :mod:`gspauth.emulator.rules`). Counterparty GSTIN must be valid,
    #: registered and not the supplier's own (RET191113).
    check_counterparty_gstins: bool = True
    #: A document number is used once per supplier and financial year (RET191133).
    unique_document_numbers: bool = True
    #: A document dated after the last day of the return period is rejected (RET191901).
    reject_dates_after_period: bool = True
    #: Item rates must be GST rates (RET191175).
    check_tax_rates: bool = True
    #: The GSTIN registry: every checksum-valid GSTIN counts as registered and active except
    #: these (applied at each start; ``POST /_emulator/registry`` changes it at run time).
    cancelled_gstins: tuple[str, ...] = ()
    unregistered_gstins: tuple[str, ...] = ()
    #: GSTR-2B: "admin" (strict: a statement exists only once generated, by
    #: ``POST /_emulator/gstr2b/generate``; before that GET2B answers RET2B1023) or "live"
    #: (built at each GET2B from the suppliers' returns filed for the period).
    gstr2b_generation: str = "admin"
    #: GSTR-2A/2B with nothing to show answer GSTN's "no document found" errors (RET11416,
    #: RET2B1016) instead of an empty list.
    gstr2_empty_is_error: bool = True
    #: GET of a section with more records than this answers with a FILEDET token instead.
    large_download_threshold: int = 500
    #: Records per FILEDET file.
    filedet_records_per_file: int = 100
    filedet_url_life_seconds: int = 3600

    #: Largest request body accepted, in bytes; a larger one is refused before it is parsed
    #: with HTTP 413 and GSTN-style GEN5413 (INFERRED code). Why 10 MiB: GSTN documents 5 MB of
    #: JSON per save payload; on the wire that JSON is Base64-encoded, AES-padded and Base64-encoded
    #: again (x16/9), so 5 MiB of JSON is a 9.32 MB ``data`` field; 10 MiB leaves ~12 % for the
    #: rest of the envelope. The server stops reading at the limit (nothing past it is buffered).
    max_request_body_bytes: int = 10 * 1024 * 1024

    # --- GSP layers -----------------------------------------------------------------
    #: GSTN-level GSP clients: clientid → client-secret.
    gstn_clients: dict[str, str] = field(repr=False, default_factory=lambda: {
        defaults.GSTN_CLIENT_ID: defaults.GSTN_CLIENT_SECRET,
        defaults.CLEARTAX_GSTN_CLIENT_ID: defaults.CLEARTAX_GSTN_CLIENT_SECRET,
        defaults.VAYANA_GSTN_CLIENT_ID: defaults.VAYANA_GSTN_CLIENT_SECRET,
    })  # fmt: skip
    #: ClearTax ``X-CT-Auth-Token`` → application name.
    cleartax_tokens: dict[str, str] = field(repr=False, default_factory=lambda: dict(defaults.CLEARTAX_AUTH_TOKENS))
    #: ClearTax: if an ``appkey`` header is present it must equal the body's ``app_key``.
    cleartax_check_appkey_header: bool = True
    #: ClearTax: require the ``appkey`` header on authenticate calls that carry an RSA app_key.
    cleartax_require_appkey_header: bool = False
    #: Vayana: allowed skew of the token timestamp against the emulator clock.
    vayana_skew_seconds: int = 900
    #: Vayana: signature hashes accepted.
    vayana_signature_hashes: tuple[str, ...] = ("sha256", "sha1")
    #: Vayana: refuse a token ``txn`` seen before (off by default: idempotent retries reuse txn).
    vayana_txn_replay_check: bool = False
    #: Register the demo ASP key (:func:`defaults.vayana_demo_private_key`) at start.
    vayana_register_demo_key: bool = True
    #: Register :data:`defaults.SAMPLE_TAXPAYERS` at start (when not already registered).
    register_sample_taxpayers: bool = True

    faults: FaultConfig = field(default_factory=FaultConfig)

    def validate(self) -> None:
        if self.token_life_minutes <= 0:
            raise ValueError("token_life_minutes must be positive")
        if self.expired_cert_code not in ("TEC4002", "AUTH4036"):
            raise ValueError("expired_cert_code must be TEC4002 or AUTH4036")
        if self.bad_app_key_code not in ("TEC4002", "AUTH4036", "TEC4003"):
            raise ValueError("bad_app_key_code must be TEC4002, AUTH4036 or TEC4003")
        if self.txn_conflict_policy not in ("reject", "first-wins"):
            raise ValueError("txn_conflict_policy must be 'reject' or 'first-wins'")
        if self.gstr2b_generation not in ("admin", "live"):
            raise ValueError("gstr2b_generation must be 'admin' or 'live'")
        for name in ("cancelled_gstins", "unregistered_gstins"):
            if not isinstance(getattr(self, name), tuple):
                raise ValueError(f"{name} must be a tuple of GSTINs")
        if self.max_request_body_bytes < 1:
            raise ValueError("max_request_body_bytes must be positive")
        if self.max_sessions_per_user < 1 or self.otp_attempt_limit < 1:
            raise ValueError("max_sessions_per_user and otp_attempt_limit must be >= 1")
        bad = set(self.vayana_signature_hashes) - {"sha256", "sha1"}
        if bad:
            raise ValueError(f"unsupported vayana_signature_hashes: {sorted(bad)}")
        self.faults.validate()

    def public_view(self) -> dict[str, object]:
        """The configuration without credentials (for ``GET /_emulator/config``)."""
        out: dict[str, object] = {}
        for f in dataclasses.fields(self):
            if f.name in ("gstn_clients", "cleartax_tokens"):
                out[f.name] = f"<{len(getattr(self, f.name))} configured>"
            elif f.name == "faults":
                out[f.name] = dataclasses.asdict(self.faults)
            else:
                value = getattr(self, f.name)
                out[f.name] = value.isoformat() if isinstance(value, _dt.datetime) else value
        return out


class Clock:
    """The emulator's notion of now (UTC): real time plus an offset, or frozen.

    ``advance(seconds)`` and ``set(when)`` let tests expire tokens and OTPs without sleeping.
    """

    def __init__(self, start: _dt.datetime | None = None, *, frozen: bool = False) -> None:
        self._lock = threading.Lock()
        self._frozen = frozen
        if start is not None and start.tzinfo is None:
            start = start.replace(tzinfo=_UTC)
        self._offset = 0.0 if start is None else start.timestamp() - time.time()
        self._frozen_at = (start or _dt.datetime.now(_UTC)).timestamp()

    def timestamp(self) -> float:
        if self._frozen:
            return self._frozen_at
        return time.time() + self._offset

    def now(self) -> _dt.datetime:
        return _dt.datetime.fromtimestamp(self.timestamp(), _UTC)

    def advance(self, seconds: float) -> _dt.datetime:
        with self._lock:
            if self._frozen:
                self._frozen_at += seconds
            else:
                self._offset += seconds
        return self.now()

    def set(self, when: _dt.datetime) -> _dt.datetime:
        if when.tzinfo is None:
            when = when.replace(tzinfo=_UTC)
        with self._lock:
            if self._frozen:
                self._frozen_at = when.timestamp()
            else:
                self._offset = when.timestamp() - time.time()
        return self.now()

    @property
    def frozen(self) -> bool:
        return self._frozen

    def __repr__(self) -> str:
        return f"<Clock {self.now().isoformat()}{' frozen' if self._frozen else ''}>"
