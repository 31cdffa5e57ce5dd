"""The emulator: one deterministic function from :class:`httpx.Request` to :class:`httpx.Response`.

See :mod:`gspauth.emulator` for the URL layout and the list of INFERRED behaviours.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import datetime as _dt
import gzip
import hashlib
import io
import json
import logging
import os
import random
import re
import tarfile
import threading
import time
from collections import Counter, OrderedDict, defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gspauth import crypto
from gspauth.emulator import defaults
from gspauth.emulator._http import DroppedConnection, Reply, gstn_error, json_response
from gspauth.emulator.config import Clock, EmulatorConfig, FaultConfig
from gspauth.emulator.gsp import (
    VayanaAsp,
    check_cleartax,
    check_vayana,
    default_vayana_asp,
    load_public_key,
)
from gspauth.emulator.keys import GstnKey, KeyRing, build_certificate, deterministic_rsa_key
from gspauth.emulator.store import Store
from gspauth.errors import CryptoError, IntegrityError
from gspauth.gstin import STATE_CODES, is_valid_gstin, validate_gstin

__all__ = ["EMITTED_GSTN_CODES", "FAULT_CODES", "Emulator", "Outbox", "Portal", "Session", "Taxpayer"]

#: Every GSTN error code (``error.error_cd``) the emulator can answer with (all in :mod:`gspauth.codes`).
EMITTED_GSTN_CODES: frozenset[str] = frozenset({
    "AUT4031", "AUT4032", "AUT4033", "AUT4034", "AUTH403", "AUTH158", "AUTH4032", "AUTH4033", "AUTH4034",
    "AUTH4036", "AUTH4037", "AUTH4038", "AUTH4039", "AUTH4040", "AUTH4041", "GEN5001", "GEN5007",
    "RET13506", "TEC4001", "TEC4002", "TEC4003",
})  # fmt: skip
#: Codes only injected faults use: TEC4001 with HTTP 5xx, and ``EMU429`` (not a GSTN code) with HTTP 429.
FAULT_CODES: dict[str, int] = {"TEC4001": 503, "EMU429": 429}

log = logging.getLogger("gspauth.emulator")

UTC = _dt.timezone.utc
_VER = r"v\d+\.\d+"
_AUTH_PATH = re.compile(rf"/taxpayerapi/{_VER}/authenticate")
_RETURNS_PATH = re.compile(rf"/taxpayerapi/{_VER}/returns(?:/(gstr1))?")
_SEARCH_PATH = re.compile(rf"/commonapi/{_VER}/search")
_FILES_PATH = re.compile(r"/files/([0-9a-f]{32})/([A-Za-z0-9_.-]+\.tar\.gz)")
_PERIOD = re.compile(r"(0[1-9]|1[0-2])(20\d\d)")
_PAN = re.compile(r"[A-Z]{5}[0-9]{4}[A-Z]")
_FIXED_SECTIONS = ("b2cs", "hsn", "nil", "doc_issue", "at", "txpd", "b2csa", "ata", "txpda", "supeco")
# section -> (group key, list key, record id key)
_GROUPED_SECTIONS = {
    "b2b": ("ctin", "inv", "inum"),
    "b2ba": ("ctin", "inv", "inum"),
    "cdnr": ("ctin", "nt", "nt_num"),
    "cdnra": ("ctin", "nt", "nt_num"),
    "b2cl": ("pos", "inv", "inum"),
    "b2cla": ("pos", "inv", "inum"),
    "exp": ("exp_typ", "inv", "inum"),
    "expa": ("exp_typ", "inv", "inum"),
}
_FLAT_SECTIONS = {"cdnur": "nt_num", "cdnura": "nt_num"}
_KNOWN_SECTIONS = set(_GROUPED_SECTIONS) | set(_FLAT_SECTIONS) | set(_FIXED_SECTIONS)
_PAYLOAD_META = {"gstin", "fp", "gt", "cur_gt", "version", "hash"}


@dataclass
class Taxpayer:
    gstin: str
    username: str
    state_code: str
    api_access: bool = True
    access_duration_hours: int = 720
    mobile: str = "+919800000000"
    email: str = "taxpayer@example.invalid"

    @property
    def pan(self) -> str:
        return self.gstin[2:12]

    def to_json(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class Session:
    """One application session; ``session_id`` survives refreshes, ``auth_token`` does not."""

    session_id: str
    username: str
    gstin: str
    gsp: str
    application: str
    clientid: str
    ak: bytes = field(repr=False)
    ek: bytes = field(repr=False)
    auth_token: str = field(repr=False)
    started_at: float = 0.0
    token_expires_at: float = 0.0
    access_expires_at: float = 0.0
    refresh_count: int = 0

    def to_json(self) -> dict[str, Any]:
        d = dataclasses.asdict(self)
        d["ak"], d["ek"] = self.ak.hex(), self.ek.hex()
        return d

    @classmethod
    def from_json(cls, d: dict[str, Any]) -> Session:
        d = dict(d)
        d["ak"], d["ek"] = bytes.fromhex(d["ak"]), bytes.fromhex(d["ek"])
        return cls(**d)

    def public_view(self) -> dict[str, Any]:
        iso = _iso
        return {
            "session_id": self.session_id, "username": self.username, "gstin": self.gstin, "gsp": self.gsp,
            "application": self.application, "client_id": self.clientid, "started_at": iso(self.started_at),
            "token_expires_at": iso(self.token_expires_at), "access_expires_at": iso(self.access_expires_at),
            "refresh_count": self.refresh_count,
        }  # fmt: skip


@dataclass
class _Ctx:
    """One request after the GSP layer: who is calling GSTN, and with what."""

    request: httpx.Request
    layer: str  # gstn | cleartax | vayana
    gsp: str
    application: str
    path: str  # GSTN path, e.g. /taxpayerapi/v1.0/authenticate
    headers: dict[str, str]
    body: bytes
    root: str
    files_base: str  # how FILEDET urls are written for this layer ("" = relative)
    parsed: Any = None  # the JSON body, once parsed (a dict), else None


@dataclass
class _Otp:
    otp: str = field(repr=False)
    expires_at: float
    attempts_left: int


class Outbox:
    """The emulator's SMS/e-mail stand-in: OTPs and consent notifications (HTTP, Python, files)."""

    def __init__(self, state_dir: str | None) -> None:
        self._lock = threading.Lock()
        self._otps: list[dict[str, Any]] = []
        self._notes: list[dict[str, Any]] = []
        self._otp_file = os.path.join(state_dir, "outbox-otp.jsonl") if state_dir else None
        self._note_file = os.path.join(state_dir, "outbox-notifications.jsonl") if state_dir else None

    @staticmethod
    def _append(path: str | None, entry: dict[str, Any]) -> None:
        if path is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def add_otp(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._otps.append(entry)
            self._append(self._otp_file, entry)

    def add_notification(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry = {"id": len(self._notes) + 1, **entry}
            self._notes.append(entry)
            self._append(self._note_file, entry)

    def otps(self, gstin: str | None = None, purpose: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._otps
                    if (gstin is None or e["gstin"] == gstin) and (purpose is None or e["purpose"] == purpose)]

    def latest_otp(self, gstin: str, purpose: str = "auth") -> str | None:
        """The most recent OTP sent for ``gstin`` (``purpose`` "auth" or "evc"), or ``None``."""
        found = self.otps(gstin, purpose)
        return found[-1]["otp"] if found else None

    def notifications(self, gstin: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._notes if gstin is None or e["gstin"] == gstin]


class Portal:
    """What the taxpayer can do on the GST portal (Manage API Access)."""

    def __init__(self, emulator: Emulator) -> None:
        self._emu = emulator

    def set_api_access(self, gstin: str, enabled: bool, duration_hours: int | None = None) -> Taxpayer:
        return self._emu.set_api_access(gstin, enabled, duration_hours)

    def sessions(self, gstin: str) -> list[dict[str, Any]]:
        return self._emu.sessions_of(gstin)

    def revoke(self, gstin: str, session_id: str) -> dict[str, Any]:
        return self._emu.revoke_session(gstin, session_id)


class _Stats:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.layers: Counter[str] = Counter()
        self.actions: Counter[str] = Counter()
        self.layer_actions: dict[str, Counter[str]] = defaultdict(Counter)
        self.codes: Counter[str] = Counter()
        self.status: Counter[str] = Counter()
        self.faults: Counter[str] = Counter()
        self.events: Counter[str] = Counter()

    def bump(self, counter: Counter[str], key: str) -> None:
        with self._lock:
            counter[key] += 1

    def action(self, layer: str, action: str) -> None:
        with self._lock:
            self.actions[action] += 1
            self.layer_actions[layer][action] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.layers), "actions": dict(self.actions),
                "by_layer": {k: dict(v) for k, v in self.layer_actions.items()},
                "error_codes": dict(self.codes), "http_status": dict(self.status),
                "faults": dict(self.faults), "events": dict(self.events),
            }  # fmt: skip


class Emulator:
    """A strict, seedable emulator of GSTN behind the ClearTax and Vayana GSP layers.

    ``Emulator(config).handle`` is an ``httpx.MockTransport`` handler; ``asgi.app(emulator)``
    serves the same object over HTTP. All state is guarded by locks so the server may call
    :meth:`handle` from many threads; the crypto runs outside the locks.
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        config = config or EmulatorConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        config.validate()
        self.config = config
        self.clock = Clock(config.clock_start, frozen=config.clock_frozen)
        self._lock = threading.RLock()
        self._rng_lock = threading.Lock()
        self._rng: random.Random = random.Random(config.seed) if config.seed is not None else random.SystemRandom()
        self._fault_rng = random.Random(f"faults:{config.seed}") if config.seed is not None else random.SystemRandom()
        self.state_dir = config.state_dir
        if self.state_dir:
            os.makedirs(self.state_dir, exist_ok=True)
            os.chmod(self.state_dir, 0o700)
        self._store = Store(os.path.join(self.state_dir, "emulator.sqlite3") if self.state_dir else None)
        self.outbox = Outbox(self.state_dir)
        self.portal = Portal(self)
        self._stats = _Stats()
        self._taxpayers: dict[str, Taxpayer] = {}
        self._by_username: dict[str, str] = {}
        self._sessions: dict[str, Session] = {}  # auth_token -> session
        self._sessions_by_id: dict[str, Session] = {}
        self._dead_tokens: OrderedDict[str, str] = OrderedDict()  # auth_token -> why it died
        self._otps: dict[tuple[str, str], _Otp] = {}  # (clientid, username) -> pending OTP
        self._evc_otps: dict[tuple[str, str], _Otp] = {}  # (gstin, pan) -> pending EVC OTP
        self._downloads: dict[str, dict[str, Any]] = {}  # FILEDET token -> pending download
        self._files: dict[str, tuple[float, str, bytes]] = {}  # file id -> (expires, name, tar.gz)
        self._vayana_txns: set[str] = set()
        self._asps: dict[str, VayanaAsp] = {}
        self.keys = KeyRing()
        self._load_state()

    # ------------------------------------------------------------------ state --
    def _load_state(self) -> None:
        from cryptography import x509

        loaded = []
        for idx, pem, der, until in self._store.load_keys():
            key = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            loaded.append(GstnKey(idx, key, x509.load_der_x509_certificate(der), _dt.datetime.fromisoformat(until)))
        if loaded:
            self.keys.replace(loaded)
        else:
            self._new_key(0)
        for data in self._store.taxpayers():
            tp = Taxpayer(**data)
            self._taxpayers[tp.gstin] = tp
            self._by_username[tp.username.lower()] = tp.gstin
        for data in self._store.asps():
            asp = VayanaAsp.from_json(data)
            self._asps[asp.clientid] = asp
        if defaults.VAYANA_ASP_CLIENTID not in self._asps:
            self._put_asp(default_vayana_asp(self.config.vayana_register_demo_key))
        for data in self._store.sessions():
            s = Session.from_json(data)
            self._sessions[s.auth_token] = s
            self._sessions_by_id[s.session_id] = s
        if self.config.register_sample_taxpayers:
            for sample in defaults.SAMPLE_TAXPAYERS:
                if sample.gstin not in self._taxpayers and sample.username.lower() not in self._by_username:
                    self.register_taxpayer(sample.gstin, sample.username, mobile=sample.mobile, email=sample.email)
        self._write_cert_files()

    def _new_key(self, idx: int) -> GstnKey:
        if self.config.seed is not None:
            key = deterministic_rsa_key(self.config.seed, idx)
        else:
            key = rsa.generate_private_key(65537, 2048)
        not_before = self.clock.now().replace(microsecond=0) - _dt.timedelta(days=1)
        validity = _dt.timedelta(days=self.config.cert_validity_days)
        cert = build_certificate(key, idx, not_before, validity, self._randint(1 << 64) or 1)
        gk = GstnKey(idx, key, cert, not_before + validity)
        self._store.save_key(idx, gk.private_pem(), gk.der, gk.accepted_until.isoformat())
        self.keys.add(gk)
        return gk

    def _write_cert_files(self) -> None:
        if not self.state_dir:
            return
        cur = self.keys.current
        for name, data in (("gstn-certificate.pem", cur.pem), ("gstn-certificate.der", cur.der)):
            with open(os.path.join(self.state_dir, name), "wb") as fh:
                fh.write(data)
        certs = os.path.join(self.state_dir, "certificates")
        os.makedirs(certs, exist_ok=True)
        for k in self.keys.keys:
            with open(os.path.join(certs, f"gstn-{k.index}.pem"), "wb") as fh:
                fh.write(k.pem)

    def close(self) -> None:
        self._store.close()

    # ----------------------------------------------------------------- random --
    def _randbytes(self, n: int) -> bytes:
        with self._rng_lock:
            return self._rng.randbytes(n)

    def _randint(self, n: int) -> int:
        with self._rng_lock:
            return self._rng.randrange(n)

    def _hex(self, nbytes: int = 16) -> str:
        return self._randbytes(nbytes).hex()

    # -------------------------------------------------------------- public API --
    @property
    def certificate_pem(self) -> bytes:
        return self.keys.current.pem

    @property
    def certificate_der(self) -> bytes:
        return self.keys.current.der

    def certificates(self) -> list[dict[str, Any]]:
        now = self.clock.now()
        return [k.describe(now) for k in self.keys.keys]

    def certificate_paths(self) -> dict[str, str]:
        if not self.state_dir:
            return {}
        return {"pem": os.path.join(self.state_dir, "gstn-certificate.pem"),
                "der": os.path.join(self.state_dir, "gstn-certificate.der")}

    def rotate_keys(self, overlap_days: float | None = None) -> dict[str, Any]:
        """New GSTN key + certificate; the old one stays accepted for ``overlap_days`` (default from config)."""
        overlap = _dt.timedelta(days=self.config.rotation_overlap_days if overlap_days is None else overlap_days)
        with self._lock:
            old = self.keys.current
            old.accepted_until = min(old.accepted_until, self.clock.now() + overlap)
            self._store.save_key(old.index, old.private_pem(), old.der, old.accepted_until.isoformat())
            new = self._new_key(old.index + 1)
            self._write_cert_files()
        return {"current": new.describe(self.clock.now()), "previous": old.describe(self.clock.now())}

    def register_taxpayer(
        self,
        gstin: str,
        username: str,
        *,
        state_code: str | None = None,
        api_access: bool = True,
        access_duration: _dt.timedelta = _dt.timedelta(days=30),
        mobile: str = "+919800000000",
        email: str = "taxpayer@example.invalid",
    ) -> Taxpayer:
        """Add (or replace) a taxpayer. ``state_code`` defaults to the GSTIN's first two digits."""
        gstin = validate_gstin(gstin)
        hours = access_duration.total_seconds() / 3600
        if not 6 <= hours <= 720 or hours != int(hours):
            raise ValueError("access_duration must be a whole number of hours from 6 hours to 30 days")
        if not username or not isinstance(username, str):
            raise ValueError("username must be a non-empty string")
        tp = Taxpayer(gstin, username, state_code or gstin[:2], api_access, int(hours), mobile, email)
        with self._lock:
            other = self._by_username.get(username.lower())
            if other is not None and other != gstin:
                raise ValueError(f"username {username!r} already belongs to {other}")
            old = self._taxpayers.get(gstin)
            if old is not None:
                self._by_username.pop(old.username.lower(), None)
            self._taxpayers[gstin] = tp
            self._by_username[username.lower()] = gstin
            self._store.put_taxpayer(gstin, username, tp.to_json())
        return tp

    def taxpayers(self) -> list[Taxpayer]:
        with self._lock:
            return list(self._taxpayers.values())

    def taxpayer(self, gstin: str) -> Taxpayer:
        with self._lock:
            return self._taxpayers[gstin]

    def register_vayana_asp(
        self,
        public_key: rsa.RSAPublicKey | str | bytes | None,
        *,
        clientid: str = defaults.VAYANA_ASP_CLIENTID,
        client_secret: str = defaults.VAYANA_ASP_CLIENT_SECRET,
        cust_id: str | None = defaults.VAYANA_ASP_CUST_ID,
        client_id: str | None = defaults.VAYANA_ASP_CLIENT_ID,
        name: str = defaults.VAYANA_APPLICATION,
    ) -> VayanaAsp:
        """Register (or replace) a Vayana ASP and its signature public key (PEM key/cert or key object)."""
        if public_key is not None and not isinstance(public_key, rsa.RSAPublicKey):
            public_key = load_public_key(public_key)
        if not cust_id and not client_id:
            raise ValueError("a Vayana ASP needs a cust_id or a client_id")
        asp = VayanaAsp(clientid, client_secret, cust_id or None, client_id or None, name, public_key)
        self._put_asp(asp)
        return asp

    def _put_asp(self, asp: VayanaAsp) -> None:
        with self._lock:
            self._asps[asp.clientid] = asp
            self._store.put_asp(asp.clientid, asp.to_json())

    def vayana_asps(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.public_view() for a in self._asps.values()]

    def update_config(self, **values: Any) -> EmulatorConfig:
        """Change scalar settings at run time (strictness toggles, lifetimes, policies)."""
        allowed = {f.name: f for f in dataclasses.fields(self.config)}
        for name, value in values.items():
            f = allowed.get(name)
            if f is None or name in ("seed", "state_dir", "clock_start", "clock_frozen", "faults",
                                     "gstn_clients", "cleartax_tokens", "vayana_signature_hashes"):
                raise ValueError(f"{name!r} cannot be changed at run time")
            current = getattr(self.config, name)
            if isinstance(current, bool) != isinstance(value, bool) or (
                isinstance(current, (int, float)) and not isinstance(value, (int, float))
            ) or (isinstance(current, str) and not isinstance(value, str)):
                raise ValueError(f"{name} must be of type {type(current).__name__}")
        with self._lock:
            new = dataclasses.replace(self.config, **values)
            new.validate()
            self.config = new
        return new

    def add_cleartax_token(self, token: str, application: str = "ASP") -> None:
        with self._lock:
            self.config.cleartax_tokens[token] = application

    def set_api_access(self, gstin: str, enabled: bool, duration_hours: int | None = None) -> Taxpayer:
        """Portal "Manage API Access". Disabling ends every session of the GSTIN (later calls: AUTH4033).

        A new duration also applies to running sessions (their refresh window is recomputed).
        """
        if duration_hours is not None and not (isinstance(duration_hours, int) and 6 <= duration_hours <= 720):
            raise ValueError("duration_hours must be an integer from 6 to 720")
        with self._lock:
            tp = self._taxpayers[gstin]
            tp.api_access = bool(enabled)
            if duration_hours is not None:
                tp.access_duration_hours = duration_hours
            self._store.put_taxpayer(gstin, tp.username, tp.to_json())
            for s in [s for s in self._sessions.values() if s.gstin == gstin]:
                if not enabled:
                    self._kill(s, "API access was disabled by the taxpayer on the GST portal")
                elif duration_hours is not None:
                    s.access_expires_at = s.started_at + duration_hours * 3600
                    self._store.put_session(s.session_id, s.to_json())
        return tp

    def sessions_of(self, gstin: str) -> list[dict[str, Any]]:
        with self._lock:
            if gstin not in self._taxpayers:
                raise KeyError(gstin)
            return [s.public_view() for s in self._sessions.values() if s.gstin == gstin]

    def revoke_session(self, gstin: str, session_id: str) -> dict[str, Any]:
        with self._lock:
            s = self._sessions_by_id.get(session_id)
            if s is None or s.gstin != gstin:
                raise KeyError(session_id)
            view = s.public_view()
            self._kill(s, "session revoked by the taxpayer on the GST portal")
        self._stats.bump(self._stats.events, "portal_revoke")
        return view

    @property
    def stats(self) -> dict[str, Any]:
        """Counters: requests per layer, actions (overall and per layer), error codes, faults."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    @property
    def faults(self) -> FaultConfig:
        return self.config.faults

    def set_faults(self, **values: Any) -> FaultConfig:
        new = dataclasses.replace(self.config.faults, **values)
        new.validate()
        self.config.faults = new
        return new

    def saved_records(self, gstin: str, ret_period: str, section: str) -> list[dict[str, Any]]:
        """What the emulator has stored for one section (decoded; for tests)."""
        return [json.loads(d) for _, d in self._store.records(gstin, ret_period, section)]

    def saves_count(self) -> int:
        return self._store.counts()["saves"]

    # ---------------------------------------------------------------- sessions --
    def _kill(self, s: Session, why: str) -> None:
        """Remove a session (caller holds the lock) and remember why its token died."""
        self._sessions.pop(s.auth_token, None)
        self._sessions_by_id.pop(s.session_id, None)
        self._bury(s.auth_token, why)
        self._store.put_session(s.session_id, None)

    def _bury(self, token: str, why: str) -> None:
        self._dead_tokens[token] = why
        while len(self._dead_tokens) > 50_000:
            self._dead_tokens.popitem(last=False)

    def _live_sessions(self, clientid: str, username: str, now: float) -> list[Session]:
        out = []
        for s in list(self._sessions.values()):
            if s.clientid != clientid or s.username.lower() != username.lower():
                continue
            if now > s.token_expires_at + self.config.refresh_grace_minutes * 60:
                self._kill(s, "session expired")
                continue
            out.append(s)
        return out

    # ------------------------------------------------------------------ handle --
    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (``httpx.MockTransport`` handler). Thread-safe."""
        body = request.read()
        path = request.url.path
        if path.startswith("/_emulator"):
            from gspauth.emulator.admin import handle_admin

            self._stats.bump(self._stats.layers, "admin")
            return handle_admin(self, request, body)
        fault = self._fault(request)
        if fault is not None:
            return fault
        try:
            response = self._route(request, path, body)
        except Reply as r:
            response = r.response
            if r.code:
                self._stats.bump(self._stats.codes, r.code)
        self._stats.bump(self._stats.status, str(response.status_code))
        return response

    def _fault(self, request: httpx.Request) -> httpx.Response | None:
        f = self.config.faults
        if f.latency_ms or f.latency_jitter_ms:
            with self._rng_lock:
                jitter = self._fault_rng.uniform(0, f.latency_jitter_ms) if f.latency_jitter_ms else 0.0
            time.sleep((f.latency_ms + jitter) / 1000)
        if not (f.drop_rate or f.error_5xx_rate or f.rate_429):
            return None
        with self._rng_lock:
            r1, r2, r3 = self._fault_rng.random(), self._fault_rng.random(), self._fault_rng.random()
        if r1 < f.drop_rate:
            self._stats.bump(self._stats.faults, "drop")
            raise DroppedConnection("Server disconnected without sending a response.", request=request)
        if r2 < f.error_5xx_rate:
            self._stats.bump(self._stats.faults, str(f.error_5xx_status))
            body = {"status_cd": "0", "error": {"error_cd": "TEC4001", "message": "Technical Error (injected fault)"}}
            return json_response(f.error_5xx_status, body)
        if r3 < f.rate_429:
            self._stats.bump(self._stats.faults, "429")
            body = {"status_cd": "0", "error": {"error_cd": "EMU429", "message": "Too Many Requests (injected fault)"}}
            return json_response(429, body, {"retry-after": str(f.retry_after_seconds)})
        return None

    def _route(self, request: httpx.Request, path: str, body: bytes) -> httpx.Response:
        root = f"{request.url.scheme}://{request.url.netloc.decode('ascii')}"
        headers = {k.lower(): v for k, v in request.headers.items()}
        if path.startswith("/gstn/") or path.startswith("/generic/"):
            base = "/gstn" if path.startswith("/gstn/") else "/generic"
            self._stats.bump(self._stats.layers, base[1:])
            sub = path[len(base):]
            m = _FILES_PATH.fullmatch(sub)
            if m and request.method == "GET":
                return self._download_file(m.group(1), m.group(2))
            ctx = _Ctx(request, base[1:], "GSTN direct", f"GSP client {headers.get('clientid', '?')[:8]}",
                       sub, headers, body, root, root + base)
            return self._gstn(ctx)
        for prefix, profile in (("/cleartax/gsp/api/", "cleartax"), ("/cleartax-legacy/api/", "cleartax-legacy")):
            if path.startswith(prefix):
                self._stats.bump(self._stats.layers, profile)
                app = check_cleartax(request, body, self.config.cleartax_tokens, self.config)
                headers["clientid"] = defaults.CLEARTAX_GSTN_CLIENT_ID
                headers["client-secret"] = defaults.CLEARTAX_GSTN_CLIENT_SECRET
                ctx = _Ctx(request, profile, "ClearTax", app, path[len(prefix) - 1:], headers, body, root,
                           root + "/gstn")
                return self._gstn(ctx)
        if path.startswith("/cleartax/") or path.startswith("/cleartax-legacy/"):
            self._stats.bump(self._stats.layers, "cleartax")
            from gspauth.emulator.gsp import cleartax_error

            raise cleartax_error("CT404", f"no ClearTax route {path}")
        if path.startswith("/vayana/gus/"):
            self._stats.bump(self._stats.layers, "vayana")
            sub = path[len("/vayana/gus"):]
            if sub == "/ping":
                return json_response(200, {"status": "1", "message": "pong"})
            m = _FILES_PATH.fullmatch(sub[len("/returns"):]) if sub.startswith("/returns/") else None
            if m and request.method == "GET":
                return self._download_file(m.group(1), m.group(2))
            if not (sub.startswith("/taxpayerapi/") or sub.startswith("/commonapi/")):
                from gspauth.emulator.gsp import vayana_error

                raise vayana_error("VAY-4040", f"no Vayana route {path}")
            with self._lock:
                asps = dict(self._asps)
            asp = check_vayana(request, body, asps, self.config, self.clock.now(), self._vayana_txns)
            headers["clientid"] = defaults.VAYANA_GSTN_CLIENT_ID
            headers["client-secret"] = defaults.VAYANA_GSTN_CLIENT_SECRET
            ctx = _Ctx(request, "vayana", "Vayana", asp.name, sub, headers, body, root, "")
            return self._gstn(ctx)
        self._stats.bump(self._stats.layers, "unknown")
        return json_response(404, {"error": f"no route {path}; see {root}/_emulator/ for the layout"})

    # ------------------------------------------------------------- GSTN core --
    def _gstn(self, ctx: _Ctx) -> httpx.Response:
        h = ctx.headers
        clientid, secret = h.get("clientid"), h.get("client-secret")
        if not clientid:
            raise gstn_error("AUT4031")
        if not secret:
            raise gstn_error("AUT4032")
        known = self.config.gstn_clients.get(clientid)
        if known is None:
            raise gstn_error("AUT4033")
        if not _consteq(known, secret):
            raise gstn_error("AUT4034")
        method = ctx.request.method
        action = None
        if ctx.body:
            try:
                parsed = json.loads(ctx.body)
            except (ValueError, UnicodeDecodeError):
                parsed = None
            if isinstance(parsed, dict):
                ctx.parsed = parsed
                if isinstance(parsed.get("action"), str):
                    action = parsed["action"]
        action = action or ctx.request.url.params.get("action") or "?"
        self._stats.action(ctx.layer, action)
        if _AUTH_PATH.fullmatch(ctx.path):
            if method == "POST":
                return self._authenticate(ctx)
            if method == "GET" and ctx.request.url.params.get("action") == "EVCOTP":
                return self._evcotp(ctx)
            raise gstn_error("GEN5007", f"{method} is not allowed on authenticate", status=405)
        m = _RETURNS_PATH.fullmatch(ctx.path)
        if m:
            return self._returns(ctx, m.group(1))
        if _SEARCH_PATH.fullmatch(ctx.path) and method == "GET":
            return self._search(ctx)
        raise gstn_error("GEN5007", f"no such API {ctx.path}", status=404)

    def _require(self, ctx: _Ctx, names: tuple[str, ...]) -> None:
        missing = [n for n in names if not ctx.headers.get(n)]
        if missing:
            raise gstn_error("GEN5001", f"missing header(s) {', '.join(missing)}")

    def _check_state_cd(self, ctx: _Ctx, gstin: str | None) -> str:
        state = ctx.headers["state-cd"]
        if not re.fullmatch(r"[0-9]{2}", state) or state not in STATE_CODES:
            raise gstn_error("AUTH4041", f"state-cd {state!r} is not a 2-digit GST state code")
        if gstin is not None and gstin[:2] != state:
            raise gstn_error(
                "AUTH4041", f"state-cd {state!r} does not match GSTIN {gstin} (state code {gstin[:2]!r})"
            )
        return state

    def _json_body(self, ctx: _Ctx) -> dict[str, Any]:
        ctype = ctx.headers.get("content-type", "")
        if self.config.require_json_content_type and not ctype.lower().startswith("application/json"):
            raise gstn_error("GEN5007", "Content-Type must be application/json")
        if ctx.parsed is not None:
            return ctx.parsed  # type: ignore[no-any-return]
        try:
            obj = json.loads(ctx.body)
        except (ValueError, UnicodeDecodeError):
            raise gstn_error("GEN5007", "the body is not valid JSON") from None
        if not isinstance(obj, dict):
            raise gstn_error("GEN5007", "the body must be a JSON object")
        return obj

    # --- authenticate ----------------------------------------------------------
    def _authenticate(self, ctx: _Ctx) -> httpx.Response:
        self._require(ctx, ("state-cd", "ip-usr", "txn"))
        header_gstin = ctx.headers.get("gstin")
        if header_gstin is not None and not is_valid_gstin(header_gstin):
            raise gstn_error("GEN5007", "gstin header is not a valid GSTIN")
        state = self._check_state_cd(ctx, header_gstin)
        body = self._json_body(ctx)
        action = body.get("action")
        if action not in ("OTPREQUEST", "AUTHTOKEN", "REFRESHTOKEN", "LOGOUT"):
            raise gstn_error("AUTH4040", f"unknown action {action!r}")
        need = {"OTPREQUEST": ("username", "app_key"), "AUTHTOKEN": ("username", "app_key", "otp"),
                "REFRESHTOKEN": ("username", "app_key", "auth_token"),
                "LOGOUT": ("username", "app_key", "auth_token")}[action]  # fmt: skip
        missing = [k for k in need if not isinstance(body.get(k), str) or not body.get(k)]
        if missing:
            raise gstn_error("AUTH4040", f"{action} needs {', '.join(missing)}")
        username = body["username"]
        with self._lock:
            gstin = self._by_username.get(username.lower())
            tp = self._taxpayers.get(gstin) if gstin else None
            tp = dataclasses.replace(tp) if tp else None
        if tp is None or (header_gstin is not None and header_gstin != tp.gstin):
            raise gstn_error("AUTH4032", "unknown username" if tp is None else "username is not registered for this GSTIN")
        if self.config.check_state_cd_against_user and state != tp.gstin[:2]:
            raise gstn_error("AUTH4041", f"state-cd {state!r} is not the state of this user's GSTIN")
        if not tp.api_access:
            raise gstn_error("AUTH4037", "API access is disabled on the GST portal for this GSTIN")
        if action == "REFRESHTOKEN":
            return self._refresh(ctx, tp, body)
        ak = self._rsa_app_key(body["app_key"])
        if action == "OTPREQUEST":
            return self._otprequest(ctx, tp, ak)
        if action == "AUTHTOKEN":
            return self._authtoken(ctx, tp, ak, body["otp"])
        return self._logout(ctx, tp, ak, body["auth_token"])

    def _rsa_app_key(self, text: str) -> bytes:
        try:
            raw = base64.b64decode(text.encode("ascii"), validate=True)
        except (binascii.Error, UnicodeEncodeError, ValueError):
            raise gstn_error(self.config.bad_app_key_code, "app_key is not valid Base64") from None
        plain, key = self.keys.decrypt_app_key(raw, self.clock.now())
        if plain is None:
            if key is not None:
                raise gstn_error(
                    self.config.expired_cert_code,
                    f"app_key is encrypted to a GSTN certificate no longer accepted (since "
                    f"{min(key.accepted_until, key.not_valid_after):%Y-%m-%d %H:%M}Z); download the current one",
                )
            raise gstn_error(self.config.bad_app_key_code, "app_key could not be decrypted with the GSTN key")
        if self.config.require_32_byte_app_key and len(plain) != 32:
            raise gstn_error("TEC4003", f"app_key must be 32 bytes, got {len(plain)}")
        return plain

    def _otprequest(self, ctx: _Ctx, tp: Taxpayer, ak: bytes) -> httpx.Response:
        otp = defaults.SANDBOX_OTP if self.config.sandbox_otp else f"{self._randint(1_000_000):06d}"
        now = self.clock.timestamp()
        with self._lock:
            self._otps[(ctx.headers["clientid"], tp.username.lower())] = _Otp(
                otp, now + self.config.otp_validity_seconds, self.config.otp_attempt_limit
            )
        self.outbox.add_otp({
            "gstin": tp.gstin, "username": tp.username, "purpose": "auth", "otp": otp,
            "mobile": tp.mobile, "email": tp.email, "gsp": ctx.gsp, "application": ctx.application,
            "time": _iso(now), "expires_at": _iso(now + self.config.otp_validity_seconds),
        })  # fmt: skip
        log.info("OTP sent for %s (%s via %s)", tp.gstin, ctx.application, ctx.gsp)
        return json_response(200, {"status_cd": "1"})

    def _authtoken(self, ctx: _Ctx, tp: Taxpayer, ak: bytes, otp_wire: str) -> httpx.Response:
        try:
            otp_given = crypto.decrypt_field(ak, otp_wire, field="otp", tolerant=self.config.tolerant_base64)
        except CryptoError:
            otp_given = None
        clientid = ctx.headers["clientid"]
        key = (clientid, tp.username.lower())
        now = self.clock.timestamp()
        ek = self._randbytes(32)
        token = self._hex()
        sid = "S" + self._hex(6).upper()
        with self._lock:
            pending = self._otps.get(key)
            if pending is None:
                raise gstn_error("AUTH4033", "no OTP is pending for this user with this GSP; call OTPREQUEST first")
            if now > pending.expires_at:
                del self._otps[key]
                raise gstn_error("AUTH4034", "the OTP has expired; request a new one")
            if otp_given is None or not _consteq(pending.otp, otp_given.decode("latin-1")):
                pending.attempts_left -= 1
                if pending.attempts_left <= 0:
                    del self._otps[key]
                    raise gstn_error("AUTH4034", "wrong OTP; attempt limit reached, request a new OTP")
                raise gstn_error("AUTH4034", f"wrong OTP; {pending.attempts_left} attempt(s) left")
            live = self._live_sessions(clientid, tp.username, now)
            if len(live) >= self.config.max_sessions_per_user:
                raise gstn_error("AUTH403", f"{len(live)} active sessions (limit {self.config.max_sessions_per_user})")
            del self._otps[key]
            life = self.config.token_life_minutes * 60
            access_end = now + tp.access_duration_hours * 3600
            s = Session(sid, tp.username, tp.gstin, ctx.gsp, ctx.application, clientid, ak, ek, token, now,
                        min(now + life, access_end), access_end)
            self._sessions[token] = s
            self._sessions_by_id[sid] = s
            self._store.put_session(sid, s.to_json())
        self._notify(tp, ctx, "AUTHTOKEN", now, "OTP consent given: API access session started")
        expiry = int(round((s.token_expires_at - now) / 60))
        return json_response(200, {"status_cd": "1", "auth_token": token, "expiry": expiry,
                                   "sek": crypto.encrypt_sek(ak, ek)})

    def _refresh(self, ctx: _Ctx, tp: Taxpayer, body: dict[str, Any]) -> httpx.Response:
        now = self.clock.timestamp()
        with self._lock:
            s = self._session_by_token(body["auth_token"], ctx)
            if s.username.lower() != tp.username.lower():
                raise gstn_error("AUTH4033", "auth_token does not belong to this username")
            if now > s.token_expires_at + self.config.refresh_grace_minutes * 60:
                raise gstn_error("AUTH4038", "the auth token has expired; refresh before expiry or log in with OTP")
            if tp.access_duration_hours * 60 <= self.config.token_life_minutes:
                raise gstn_error("AUTH4037", f"API access duration is {tp.access_duration_hours} h, not longer than "
                                             f"the {self.config.token_life_minutes} min token life: refresh refused")
            if now >= s.access_expires_at:
                raise gstn_error("AUTH4037", "the API access duration chosen on the portal has ended for this session")
            ek_current = s.ek
        try:
            ak2 = crypto.decrypt_refresh_app_key(ek_current, body["app_key"], tolerant=self.config.tolerant_base64)
        except CryptoError:
            raise gstn_error("AUTH4036", "REFRESHTOKEN app_key must be E(EK, new app key) under the current session key") from None
        ek = self._randbytes(32)
        token = self._hex()
        with self._lock:
            current = self._sessions.get(body["auth_token"])
            if current is not s:  # refreshed, revoked or logged out meanwhile
                self._session_by_token(body["auth_token"], ctx)
                raise gstn_error("AUTH4033", "the session changed during refresh")
            del self._sessions[s.auth_token]
            self._bury(s.auth_token, "replaced by REFRESHTOKEN")
            s.auth_token, s.ek, s.ak = token, ek, ak2
            s.token_expires_at = min(now + self.config.token_life_minutes * 60, s.access_expires_at)
            s.refresh_count += 1
            self._sessions[token] = s
            self._store.put_session(s.session_id, s.to_json())
        self._notify(tp, ctx, "REFRESHTOKEN", now, "Authentication token refreshed for your GSTIN")
        expiry = int(round((s.token_expires_at - now) / 60))
        return json_response(200, {"status_cd": "1", "auth_token": token, "expiry": expiry,
                                   "sek": crypto.encrypt_sek(ak2, ek)})

    def _logout(self, ctx: _Ctx, tp: Taxpayer, ak: bytes, token: str) -> httpx.Response:
        with self._lock:
            s = self._session_by_token(token, ctx)
            if s.username.lower() != tp.username.lower():
                raise gstn_error("AUTH4033", "auth_token does not belong to this username")
            if not _consteq_b(s.ak, ak):
                raise gstn_error("AUTH4036", "app_key is not this session's app key")
            self._kill(s, "logged out")
        return json_response(200, {"status_cd": "1"})

    def _session_by_token(self, token: str, ctx: _Ctx) -> Session:
        """The live session of ``token`` for this GSP client (caller holds the lock)."""
        s = self._sessions.get(token)
        if s is None:
            why = self._dead_tokens.get(token)
            raise gstn_error("AUTH4033", f"auth token is no longer valid: {why}" if why else "unknown auth token")
        if s.clientid != ctx.headers["clientid"]:
            raise gstn_error("AUTH4033", "auth token was issued to another GSP client")
        return s

    def _notify(self, tp: Taxpayer, ctx: _Ctx, action: str, now: float, text: str) -> None:
        for channel, to in (("sms", tp.mobile), ("email", tp.email)):
            self.outbox.add_notification({
                "channel": channel, "to": to, "gstin": tp.gstin, "username": tp.username, "gsp": ctx.gsp,
                "application": ctx.application, "client_id": ctx.headers["clientid"], "action": action,
                "time": _iso(now), "text": f"{text} by {ctx.application} through {ctx.gsp} at {_iso(now)}",
            })  # fmt: skip

    # --- data calls --------------------------------------------------------------
    def _data_session(self, ctx: _Ctx, *, returns: bool) -> tuple[Session, str, str | None]:
        need = ("state-cd", "ip-usr", "txn", "username", "gstin", "auth-token") + (("ret_period",) if returns else ())
        q = ctx.request.url.params
        if returns and not ctx.headers.get("ret_period") and q.get("ret_period"):
            ctx.headers["ret_period"] = q["ret_period"]
        self._require(ctx, need)
        gstin = ctx.headers["gstin"]
        if not is_valid_gstin(gstin):
            raise gstn_error("GEN5007", "gstin header is not a valid GSTIN")
        self._check_state_cd(ctx, gstin)
        if q.get("gstin") not in (None, gstin):
            raise gstn_error("AUTH158", "gstin query parameter differs from the gstin header")
        period = ctx.headers.get("ret_period") if returns else None
        if period is not None:
            if not _PERIOD.fullmatch(period):
                raise gstn_error("GEN5007", "ret_period must be MMYYYY, e.g. 072017")
            if q.get("ret_period") not in (None, period):
                raise gstn_error("GEN5007", "ret_period query parameter differs from the ret_period header")
        now = self.clock.timestamp()
        with self._lock:
            s = self._session_by_token(ctx.headers["auth-token"], ctx)
            if s.username.lower() != ctx.headers["username"].lower():
                raise gstn_error("AUTH4033", "auth-token does not belong to this username")
            if s.gstin != gstin:
                raise gstn_error("AUTH158", "this session is not authorised for that GSTIN")
            if now > s.token_expires_at:
                raise gstn_error("AUTH4038", "the auth token has expired; refresh it or log in again")
        return s, gstin, period

    def _envelope(self, ek: bytes, obj: Any) -> httpx.Response:
        rek = self._randbytes(32)
        data, rek_wire, mac = crypto.encrypt_response(ek, rek, json.dumps(obj, separators=(",", ":")).encode())
        return json_response(200, {"status_cd": "1", "data": data, "rek": rek_wire, "hmac": mac})

    def _decrypt_payload(self, ctx: _Ctx, ek: bytes, body: dict[str, Any]) -> tuple[bytes, Any]:
        data, mac = body.get("data"), body.get("hmac")
        if not isinstance(data, str) or not data:
            raise gstn_error("AUTH4040", "data is missing")
        if mac is None and self.config.require_hmac:
            raise gstn_error("AUTH4040", "hmac is missing")
        if mac is not None and not isinstance(mac, str):
            raise gstn_error("AUTH4040", "hmac must be a string")
        try:
            raw = crypto.decrypt_request(ek, data, mac, tolerant=self.config.tolerant_base64)
        except IntegrityError:
            raise gstn_error("AUTH4039", "hmac does not match the decrypted data (HMAC-SHA256 under EK of the Base64 text)") from None
        except CryptoError:
            raise gstn_error("TEC4002", "data could not be decrypted with the session key") from None
        try:
            return raw, json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise gstn_error("AUTH4039", "decrypted data is not JSON") from None

    def _returns(self, ctx: _Ctx, form: str | None) -> httpx.Response:
        method = ctx.request.method
        q = ctx.request.url.params
        if method == "GET":
            action = (q.get("action") or "").upper()
            if action == "RETSTATUS":
                return self._retstatus(ctx)
            if action == "FILEDET":
                return self._filedet(ctx)
            if form is None:
                raise gstn_error("GEN5007", f"unsupported action {action!r} on /returns")
            return self._get_section(ctx, action.lower())
        if form is None:
            raise gstn_error("GEN5007", "writes go to /returns/gstr1", status=404)
        s, gstin, period = self._data_session(ctx, returns=True)
        assert period is not None
        body = self._json_body(ctx)
        action = body.get("action")
        if method == "PUT" and action == "RETSAVE":
            return self._retsave(ctx, s, gstin, period, body)
        if method == "POST" and action == "RETSUBMIT":
            return self._retsubmit(ctx, s, gstin, period, body)
        if method == "POST" and action == "RETFILE":
            return self._retfile(ctx, s, gstin, period, body)
        raise gstn_error("AUTH4040", f"action {action!r} is not available with {method}")

    def _retsave(self, ctx: _Ctx, s: Session, gstin: str, period: str, body: dict[str, Any]) -> httpx.Response:
        raw, payload = self._decrypt_payload(ctx, s.ek, body)
        if not isinstance(payload, dict):
            raise gstn_error("AUTH4039", "the decrypted payload must be a JSON object")
        if self.config.validate_payload_identity:
            if payload.get("gstin") != gstin:
                raise gstn_error("AUTH4039", "payload gstin differs from the gstin header")
            if payload.get("fp") != period:
                raise gstn_error("AUTH4039", "payload fp differs from the ret_period header")
        rows, deletes, errors = _extract_records(payload)
        sha = hashlib.sha256(raw).hexdigest()
        txn = ctx.headers["txn"]
        ref = self._new_reference()
        status = "ER" if errors and not rows and not deletes else ("PE" if errors else "P")
        with self._store.transaction() as db:
            existing = db.execute("SELECT reference_id, payload_sha FROM saves WHERE gstin = ? AND txn = ?",
                                  (gstin, txn)).fetchone()
            if existing is None:
                if self._store.return_state_locked(db, gstin, period, "R1") == "FILED":
                    raise gstn_error("AUTH4039", "GSTR-1 for this period is already filed")
                db.executemany("INSERT OR REPLACE INTO records VALUES (?, ?, ?, ?, ?)",
                               [(gstin, period, sec, key, data) for sec, key, data in rows])
                db.executemany("DELETE FROM records WHERE gstin = ? AND period = ? AND section = ? AND rkey = ?",
                               [(gstin, period, sec, key) for sec, key in deletes])
                db.execute("INSERT INTO saves VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                           (ref, gstin, period, txn, "RETSAVE", sha, self.clock.timestamp(), status,
                            json.dumps({"errors": errors}) if errors else None))
        if existing is not None:
            if existing[1] != sha and self.config.txn_conflict_policy == "reject":
                raise gstn_error("AUTH4039", "this txn was already used for a different RETSAVE payload of this GSTIN")
            ref = existing[0]
            self._stats.bump(self._stats.events, "retsave_replayed")
        else:
            self._stats.bump(self._stats.events, "retsave_stored")
        return self._envelope(s.ek, {"reference_id": ref})

    def _new_reference(self) -> str:
        return "LAPN" + f"{self._randint(10**11):011d}"

    def _retsubmit(self, ctx: _Ctx, s: Session, gstin: str, period: str, body: dict[str, Any]) -> httpx.Response:
        raw, payload = self._decrypt_payload(ctx, s.ek, body)
        if not isinstance(payload, dict) or payload.get("gstin") != gstin or payload.get("ret_period") != period:
            raise gstn_error("AUTH4039", "RETSUBMIT data must be {\"gstin\": ..., \"ret_period\": ...} of this return")
        ref = self._new_reference()
        with self._store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO return_state VALUES (?, ?, 'R1', 'SUBMITTED')", (gstin, period))
            db.execute("INSERT INTO saves VALUES (?, ?, ?, NULL, 'RETSUBMIT', ?, ?, 'P', NULL)",
                       (ref, gstin, period, hashlib.sha256(raw).hexdigest(), self.clock.timestamp()))
        return self._envelope(s.ek, {"reference_id": ref})

    def _retfile(self, ctx: _Ctx, s: Session, gstin: str, period: str, body: dict[str, Any]) -> httpx.Response:
        st, sid, sign, data = body.get("st"), body.get("sid"), body.get("sign"), body.get("data")
        if st != "EVC" or not all(isinstance(v, str) and v for v in (sid, sign, data)):
            raise gstn_error("AUTH4040", "RETFILE needs st='EVC', sid='<PAN>|<OTP>', sign and data")
        assert isinstance(sid, str) and isinstance(sign, str) and isinstance(data, str)
        try:
            raw = crypto.decrypt_request(s.ek, data, None, tolerant=self.config.tolerant_base64)
        except CryptoError:
            raise gstn_error("TEC4002", "data could not be decrypted with the session key") from None
        pan, _, otp = sid.partition("|")
        now = self.clock.timestamp()
        with self._lock:
            pending = self._evc_otps.get((gstin, pan))
            ok = pending is not None and now <= pending.expires_at and _consteq(pending.otp, otp)
            if ok:
                del self._evc_otps[(gstin, pan)]
        j64 = base64.b64encode(raw)
        expected = base64.b64encode(crypto.hmac_sha256(sid.encode(), j64)).decode()
        if not ok:
            raise gstn_error("RET13506", "EVC OTP is wrong or expired, or no EVCOTP was requested for this PAN")
        if not _consteq(expected, sign):
            raise gstn_error("AUTH4039", "sign does not match HMAC(sid, data)")
        ref = self._new_reference()
        with self._store.transaction() as db:
            db.execute("INSERT OR REPLACE INTO return_state VALUES (?, ?, 'R1', 'FILED')", (gstin, period))
            db.execute("INSERT INTO saves VALUES (?, ?, ?, NULL, 'RETFILE', ?, ?, 'P', NULL)",
                       (ref, gstin, period, hashlib.sha256(raw).hexdigest(), now))
        return self._envelope(s.ek, {"ack_num": "AA" + ref[4:], "reference_id": ref})

    def _evcotp(self, ctx: _Ctx) -> httpx.Response:
        s, gstin, _ = self._data_session(ctx, returns=False)
        q = ctx.request.url.params
        pan = q.get("pan") or ""
        if not _PAN.fullmatch(pan) or not q.get("form_type"):
            raise gstn_error("GEN5001", "EVCOTP needs pan (AAAAA9999A) and form_type")
        otp = defaults.SANDBOX_OTP if self.config.sandbox_otp else f"{self._randint(1_000_000):06d}"
        now = self.clock.timestamp()
        with self._lock:
            tp = self._taxpayers[gstin]
            self._evc_otps[(gstin, pan)] = _Otp(otp, now + self.config.otp_validity_seconds, 1)
        self.outbox.add_otp({
            "gstin": gstin, "username": tp.username, "purpose": "evc", "pan": pan, "form_type": q["form_type"],
            "otp": otp, "mobile": tp.mobile, "email": tp.email, "gsp": ctx.gsp, "application": ctx.application,
            "time": _iso(now), "expires_at": _iso(now + self.config.otp_validity_seconds),
        })  # fmt: skip
        return json_response(200, {"status_cd": "1"})

    def _retstatus(self, ctx: _Ctx) -> httpx.Response:
        s, gstin, period = self._data_session(ctx, returns=True)
        q = ctx.request.url.params
        ref = q.get("ref_id") or q.get("trans_id") or q.get("reference_id")
        if not ref:
            raise gstn_error("GEN5001", "RETSTATUS needs ref_id (the reference_id of the save)")
        receipt = self._store.receipt(ref)
        if receipt is None or receipt["gstin"] != gstin or receipt["period"] != period:
            raise gstn_error("AUTH4040", "no such reference_id for this GSTIN and return period")
        done = self.clock.timestamp() >= receipt["created_at"] + self.config.retstatus_delay_seconds
        out: dict[str, Any] = {"status_cd": receipt["status"] if done else "IP", "form_typ": "R1",
                               "action": receipt["action"].replace("RET", "")}
        if done and receipt["error_report"]:
            out["error_report"] = receipt["error_report"]
        return self._envelope(s.ek, out)

    def _get_section(self, ctx: _Ctx, section: str) -> httpx.Response:
        s, gstin, period = self._data_session(ctx, returns=True)
        assert period is not None
        if section not in _KNOWN_SECTIONS:
            raise gstn_error("GEN5007", f"unknown GSTR-1 section action {section.upper()!r}")
        rows = self._store.records(gstin, period, section)
        ctin = ctx.request.url.params.get("ctin")
        records = [json.loads(d) for _, d in rows]
        if ctin and section in _GROUPED_SECTIONS:
            records = [r for r in records if r.get(_GROUPED_SECTIONS[section][0]) == ctin]
        if len(records) > self.config.large_download_threshold:
            token = self._hex()
            with self._lock:
                self._downloads[token] = {"gstin": gstin, "period": period, "section": section, "records": records,
                                          "clientid": ctx.headers["clientid"], "created": self.clock.timestamp()}
            return self._envelope(s.ek, {"est": 1, "token": token})
        return self._envelope(s.ek, {section: _group(section, records)})

    def _filedet(self, ctx: _Ctx) -> httpx.Response:
        s, gstin, period = self._data_session(ctx, returns=True)
        token = ctx.request.url.params.get("token")
        if not token:
            raise gstn_error("GEN5001", "FILEDET needs token")
        with self._lock:
            dl = self._downloads.get(token)
        if dl is None or dl["gstin"] != gstin or dl["period"] != period or dl["clientid"] != ctx.headers["clientid"]:
            raise gstn_error("AUTH4040", "unknown or expired FILEDET token for this GSTIN and period")
        self._purge_downloads()
        file_key = self._randbytes(32)
        per = max(1, self.config.filedet_records_per_file)
        records, section = dl["records"], dl["section"]
        urls = []
        expires = self.clock.timestamp() + self.config.filedet_url_life_seconds
        for i in range(0, max(len(records), 1), per):
            part = {section: _group(section, records[i:i + per])}
            name = f"{gstin}_{period}_{section}_{i // per + 1}"
            member = crypto.encrypt_field(file_key, base64.b64encode(json.dumps(part).encode())).encode("ascii")
            blob = _targz(f"{name}.json", member)
            fid = self._hex()
            with self._lock:
                self._files[fid] = (expires, f"{name}.tar.gz", blob)
            ul = f"{ctx.files_base}/files/{fid}/{name}.tar.gz"
            urls.append({"ul": ul, "ic": len(records[i:i + per]), "hash": hashlib.sha256(blob).hexdigest()})
        return self._envelope(s.ek, {"ek": base64.b64encode(file_key).decode(), "fc": len(urls), "urls": urls})

    def _purge_downloads(self) -> None:
        now = self.clock.timestamp()
        life = self.config.filedet_url_life_seconds
        with self._lock:
            for fid in [f for f, (exp, _, _) in self._files.items() if exp < now]:
                del self._files[fid]
            for tok in [t for t, d in self._downloads.items() if d["created"] + life < now]:
                del self._downloads[tok]

    def _download_file(self, fid: str, name: str) -> httpx.Response:
        with self._lock:
            entry = self._files.get(fid)
        if entry is None or entry[1] != name or self.clock.timestamp() > entry[0]:
            return httpx.Response(404, content=b"not found", headers={"content-type": "text/plain"})
        return httpx.Response(200, content=entry[2], headers={"content-type": "application/gzip"})

    def _search(self, ctx: _Ctx) -> httpx.Response:
        self._require(ctx, ("txn",))
        q = ctx.request.url.params
        if q.get("action") != "TP":
            raise gstn_error("GEN5007", "search supports action=TP")
        gstin = q.get("gstin") or ""
        if not is_valid_gstin(gstin):
            raise gstn_error("GEN5007", "gstin is not a valid GSTIN")
        with self._lock:
            tp = self._taxpayers.get(gstin)
        info = {"gstin": gstin, "lgnm": f"EMULATED TAXPAYER {gstin[2:12]}", "sts": "Active", "dty": "Regular",
                "stj": STATE_CODES[gstin[:2]], "rgdt": "01/07/2017", "registered_with_emulator": tp is not None}
        return json_response(200, {"status_cd": "1", "data": base64.b64encode(json.dumps(info).encode()).decode()})


# ---------------------------------------------------------------------- helpers --
def _iso(ts: float) -> str:
    return _dt.datetime.fromtimestamp(ts, UTC).isoformat()


def _consteq(a: str, b: str) -> bool:
    import hmac

    return hmac.compare_digest(a.encode("utf-8"), b.encode("utf-8"))


def _consteq_b(a: bytes, b: bytes) -> bool:
    import hmac

    return hmac.compare_digest(a, b)


def _extract_records(payload: dict[str, Any]) -> tuple[list[tuple[str, str, str]], list[tuple[str, str]], list[dict[str, Any]]]:
    """Split a GSTR-1 save payload into stored records, deletions (``flag: "D"``) and error-report entries."""
    rows: list[tuple[str, str, str]] = []
    deletes: list[tuple[str, str]] = []
    errors: list[dict[str, Any]] = []
    for section, value in payload.items():
        if section in _PAYLOAD_META:
            continue
        if section not in _KNOWN_SECTIONS:
            errors.append({"section": section, "error_msg": "unknown section"})
            continue
        if section in _FIXED_SECTIONS:
            rows.append((section, "*", json.dumps(value, separators=(",", ":"))))
            continue
        if not isinstance(value, list):
            errors.append({"section": section, "error_msg": "section must be a list"})
            continue
        if section in _FLAT_SECTIONS:
            id_key = _FLAT_SECTIONS[section]
            for item in value:
                if not isinstance(item, dict) or not item.get(id_key):
                    errors.append({"section": section, "error_msg": f"{id_key} missing"})
                elif item.get("flag") == "D":
                    deletes.append((section, str(item[id_key])))
                else:
                    rows.append((section, str(item[id_key]), json.dumps(item, separators=(",", ":"))))
            continue
        group_key, list_key, id_key = _GROUPED_SECTIONS[section]
        for group in value:
            if not isinstance(group, dict) or not group.get(group_key) or not isinstance(group.get(list_key), list):
                errors.append({"section": section, "error_msg": f"{group_key} or {list_key} missing"})
                continue
            gval = str(group[group_key])
            for item in group[list_key]:
                if not isinstance(item, dict) or not item.get(id_key):
                    errors.append({"section": section, group_key: gval, "error_msg": f"{id_key} missing"})
                    continue
                rkey = f"{gval}|{item[id_key]}"
                if item.get("flag") == "D":
                    deletes.append((section, rkey))
                else:
                    rows.append((section, rkey, json.dumps({group_key: group[group_key], list_key: item},
                                                           separators=(",", ":"))))
    return rows, deletes, errors


def _group(section: str, records: list[Any]) -> Any:
    if section in _FIXED_SECTIONS:
        return records[0] if records else []
    if section in _FLAT_SECTIONS:
        return records
    group_key, list_key, _ = _GROUPED_SECTIONS[section]
    grouped: dict[str, list[Any]] = {}
    for r in records:
        grouped.setdefault(r[group_key], []).append(r[list_key])
    return [{group_key: g, list_key: items} for g, items in grouped.items()]


def _targz(member_name: str, content: bytes) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        info = tarfile.TarInfo(member_name)
        info.size = len(content)
        info.mtime = 0
        info.mode = 0o644
        tar.addfile(info, io.BytesIO(content))
    return gzip.compress(raw.getvalue(), mtime=0)

