"""The emulator: one deterministic function from request to response.

:class:`Emulator` puts together the GSTN core (:mod:`~gspauth.emulator.auth`,
:mod:`~gspauth.emulator.returns`), the GSP layers (:mod:`~gspauth.emulator.gsp`),
admin (:mod:`~gspauth.emulator.admin`, :mod:`~gspauth.emulator.registry`), faults and persistence. See
:mod:`gspauth.emulator` for the URL layout and the list of INFERRED behaviours.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import os
import random
import re
import time
from typing import Any

import httpx
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from gspauth.emulator import defaults
from gspauth.emulator._http import (
    DroppedConnection,
    Reply,
    Request,
    Response,
    consteq,
    gstn_error,
    json_response,
)
from gspauth.emulator.auth import AuthActions
from gspauth.emulator.base import MAX_DEAD_TOKENS
from gspauth.emulator.config import Clock, EmulatorConfig
from gspauth.emulator.faults import NO_FAULTS, FaultPlan, draw_plan, status_reply
from gspauth.emulator.gsp import (
    VayanaAsp,
    check_cleartax,
    check_vayana,
    cleartax_error,
    default_vayana_asp,
    vayana_error,
)
from gspauth.emulator.inward import InwardActions
from gspauth.emulator.keys import (
    GstnKey,
    KeyRing,
    build_certificate,
    deterministic_rsa_key,
)
from gspauth.emulator.model import AppSession, Call, Taxpayer
from gspauth.emulator.outbox import Outbox
from gspauth.emulator.registry import RegistryActions
from gspauth.emulator.store import Store

__all__ = ["EMITTED_GSTN_CODES", "FAULT_CODES", "Emulator", "Portal"]

#: Every GSTN error code (``error.error_cd``) the emulator can answer with (all in :mod:`gspauth.codes`).
EMITTED_GSTN_CODES: frozenset[str] = frozenset({
    "AUT4031", "AUT4032", "AUT4033", "AUT4034", "AUTH403", "AUTH158", "AUTH4032", "AUTH4033", "AUTH4034",
    "AUTH4036", "AUTH4037", "AUTH4038", "AUTH4039", "AUTH4040", "AUTH4041", "GEN5001", "GEN5007",
    "RET13506", "TEC4001", "TEC4002", "TEC4003", "GEN5413", "RET11416", "RET2B1016", "RET2B1023",
})  # fmt: skip
#: Codes only injected faults use: TEC4001 with HTTP 5xx, and ``EMU429`` (not a GSTN code) with HTTP 429.
FAULT_CODES: dict[str, int] = {"TEC4001": 503, "EMU429": 429}

_VER = r"v\d+\.\d+"
_AUTH_PATH = re.compile(rf"/taxpayerapi/{_VER}/authenticate")
_RETURNS_PATH = re.compile(rf"/taxpayerapi/{_VER}/returns(?:/(gstr1|gstr2a|gstr2b))?")
_SEARCH_PATH = re.compile(rf"/commonapi/{_VER}/search")
_FILES_PATH = re.compile(r"/files/([0-9a-f]{32})/([A-Za-z0-9_.-]+\.tar\.gz)")
_CLEARTAX_PROFILES = (("/cleartax/gsp/api/", "cleartax"), ("/cleartax-legacy/api/", "cleartax-legacy"))


def _parse_body(req: Request) -> tuple[dict[str, Any] | None, str | None]:
    """The JSON body when it is an object (parsed once per request), and the GSTN action:
    the body's ``action``, else the query's."""
    parsed: dict[str, Any] | None = None
    if req.body:
        try:
            obj = json.loads(req.body)
        except (ValueError, UnicodeDecodeError):
            obj = None
        parsed = obj if isinstance(obj, dict) else None
    body_action = parsed.get("action") if parsed is not None else None
    return parsed, body_action if isinstance(body_action, str) else req.query.get("action")


def _write_private(path: str, data: bytes) -> None:
    """Write a state-directory file readable by its owner only (0600)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    os.fchmod(fd, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)


def _private_dir(path: str) -> None:
    os.makedirs(path, mode=0o700, exist_ok=True)
    os.chmod(path, 0o700)


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


class Emulator(AuthActions, InwardActions, RegistryActions):
    """A strict, seedable emulator of GSTN behind the ClearTax and Vayana GSP layers.

    ``Emulator(config).handle`` is an ``httpx.MockTransport`` handler; ``asgi.app(emulator)``
    serves the same object over HTTP. All state is guarded by locks so the server may call
    it from many threads; the crypto runs outside the locks.

    With a ``seed`` and a frozen clock, the same sequence of requests gets byte-identical
    responses (keys, certificates, OTPs, tokens, EK/REK, reference ids, FILEDET files).
    """

    def __init__(self, config: EmulatorConfig | None = None, **overrides: Any) -> None:
        config = config or EmulatorConfig()
        if overrides:
            config = dataclasses.replace(config, **overrides)
        config.validate()
        self.config = config
        self.clock = Clock(config.clock_start, frozen=config.clock_frozen)
        self.state_dir = config.state_dir
        if self.state_dir:
            _private_dir(self.state_dir)
        store = Store(os.path.join(self.state_dir, "emulator.sqlite3") if self.state_dir else None)
        starts = store.count_start()
        rng: random.Random
        if config.seed is None:
            rng = random.SystemRandom()
        else:  # a restart on the same state draws new identifiers (no clash with stored ones)
            rng = random.Random(config.seed if starts == 1 else f"{config.seed}:start:{starts}")
        self._fault_rng = random.Random(f"faults:{config.seed}") if config.seed is not None else random.SystemRandom()
        self._init_state(store, rng)
        self.outbox = Outbox(self.state_dir)
        self.portal = Portal(self)
        self.keys = KeyRing()
        self._load_state()

    def __repr__(self) -> str:
        where = self.state_dir or "in memory"
        return f"<Emulator seed={self.config.seed} {where} sessions={len(self._sessions)}>"

    # ------------------------------------------------------------------ state --
    def _load_state(self) -> None:
        loaded = []
        for idx, pem, der, until in self._store.load_keys():
            key = serialization.load_pem_private_key(pem, password=None)
            assert isinstance(key, rsa.RSAPrivateKey)
            loaded.append(GstnKey(idx, key, x509.load_der_x509_certificate(der), _dt.datetime.fromisoformat(until)))
        if loaded:
            self.keys.replace(loaded)
        else:
            self._install_key(self._make_key(0))
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
            s = AppSession.from_json(data)
            self._sessions[s.auth_token] = s
            self._sessions_by_id[s.session_id] = s
        for digest, why in self._store.dead_tokens(MAX_DEAD_TOKENS):
            self._dead_tokens[digest] = why
        self._gstin_status.update(self._store.gstin_statuses())
        for status, gstins in (("cancelled", self.config.cancelled_gstins),
                               ("unregistered", self.config.unregistered_gstins)):  # fmt: skip
            for gstin in gstins:
                self.set_gstin_status(gstin, status)
        if self.config.register_sample_taxpayers:
            for sample in defaults.SAMPLE_TAXPAYERS:
                if sample.gstin not in self._taxpayers and sample.username.lower() not in self._by_username:
                    self.register_taxpayer(sample.gstin, sample.username, mobile=sample.mobile, email=sample.email)
        self._write_cert_files()

    def _make_key(self, idx: int) -> GstnKey:
        """A new GSTN key + self-signed certificate valid from yesterday (slow: call without the lock)."""
        if self.config.seed is not None:
            key = deterministic_rsa_key(self.config.seed, idx)
        else:
            key = rsa.generate_private_key(65537, 2048)
        not_before = self.clock.now().replace(microsecond=0) - _dt.timedelta(days=1)
        validity = _dt.timedelta(days=self.config.cert_validity_days)
        cert = build_certificate(key, idx, not_before, validity, self._randint(1 << 64) or 1)
        return GstnKey(idx, key, cert, not_before + validity)

    def _install_key(self, gk: GstnKey) -> None:
        self._store.save_key(gk.index, gk.private_pem(), gk.der, gk.accepted_until.isoformat())
        self.keys.add(gk)

    def _write_cert_files(self) -> None:
        if not self.state_dir:
            return
        cur = self.keys.current
        _write_private(os.path.join(self.state_dir, "gstn-certificate.pem"), cur.pem)
        _write_private(os.path.join(self.state_dir, "gstn-certificate.der"), cur.der)
        certs = os.path.join(self.state_dir, "certificates")
        _private_dir(certs)
        for k in self.keys.keys:
            _write_private(os.path.join(certs, f"gstn-{k.index}.pem"), k.pem)

    def close(self) -> None:
        self._store.close()

    # ------------------------------------------------------------ certificates --
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
        if overlap < _dt.timedelta(0):
            raise ValueError("overlap_days must not be negative")
        old = self.keys.current
        new = self._make_key(old.index + 1)
        with self._lock:
            if self.keys.current is not old:  # rotated meanwhile
                raise ValueError("the keys were rotated concurrently; retry")
            # Every retired key, not only the one retired now: a short overlap after a long one
            # must not leave an older certificate accepted longer than its successor.
            cutoff = self.clock.now() + overlap
            for key in self.keys.keys:
                if key.accepted_until > cutoff:
                    key.accepted_until = cutoff
                    self._store.save_key(key.index, key.private_pem(), key.der, key.accepted_until.isoformat())
            self._install_key(new)
            self._write_cert_files()
        return {"current": new.describe(self.clock.now()), "previous": old.describe(self.clock.now())}

    def _rotate_if_due(self) -> None:
        """GSTN's yearly rotation: a new key once the current certificate is within the overlap of its end."""
        if not self.config.auto_rotate_certs:
            return
        current = self.keys.current
        now = self.clock.now()
        left = current.not_valid_after - now
        if left < _dt.timedelta(days=self.config.rotation_overlap_days):
            try:
                self.rotate_keys(max(left.total_seconds(), 0) / 86400)
            except ValueError:
                return  # another request rotated first
            self._stats.bump(self._stats.events, "certificate_auto_rotated")

    # ------------------------------------------------------------------- stats --
    @property
    def stats(self) -> dict[str, Any]:
        """Counters: requests per layer, actions (overall and per layer), error codes, faults."""
        return self._stats.snapshot()

    def reset_stats(self) -> None:
        self._stats.reset()

    def saved_records(self, gstin: str, ret_period: str, section: str) -> list[dict[str, Any]]:
        """What the emulator has stored for one section (decoded; for tests)."""
        return [json.loads(d) for _, d in self._store.records(gstin, ret_period, section)]

    def saves_count(self) -> int:
        return self._store.counts()["saves"]

    # ------------------------------------------------------------------ handle --
    def handle(self, request: httpx.Request) -> httpx.Response:
        """Answer one request (``httpx.MockTransport`` handler). Thread-safe."""
        try:
            return self.respond(Request.from_httpx(request)).to_httpx()
        except DroppedConnection as exc:
            exc.request = request
            raise

    def respond(self, request: Request, *, plan: FaultPlan | None = None) -> Response:
        """Answer one :class:`Request`.

        :param plan: the request's faults, already drawn (and its delay already waited) by the
            caller, as the ASGI adapter does; ``None``: draw them here and sleep the delay.
        :raises DroppedConnection: an injected fault (the server must close the connection).
        """
        if len(request.body) > self.config.max_request_body_bytes:
            return self.body_too_large(len(request.body))
        if request.path.startswith("/_emulator"):
            from gspauth.emulator.admin import handle_admin

            self._stats.bump(self._stats.layers, "admin")
            return handle_admin(self, request)
        parsed, action = _parse_body(request)
        if plan is None:
            plan = self.plan_faults(request, action)
            if plan.delay:
                time.sleep(plan.delay)
        if plan.slow:
            self._stats.bump(self._stats.faults, "slow")
        if plan.drop_before:
            self._stats.bump(self._stats.faults, "drop")
            raise DroppedConnection("Server disconnected without sending a response.")
        if plan.status is not None:
            self._stats.bump(self._stats.faults, str(plan.status))
            return status_reply(self.config.faults, plan.status)
        code = None
        try:
            response = self._route(request, parsed, action)
        except Reply as r:
            response, code = r.response, r.code
        if plan.drop_after:  # processed (a save is stored), but the reply never leaves
            self._stats.bump(self._stats.faults, "drop_after")
            raise DroppedConnection("Server disconnected without sending a response.")
        self._stats.answered(response.status, code)
        return response

    def plan_faults(self, request: Request, action: str | None = None) -> FaultPlan:
        """Draw the injected faults of one GSP/GSTN request (seeded; see :mod:`.faults`).

        :param action: the request's GSTN action if already known; needed only when
            ``FaultConfig.actions`` restricts faults to some actions.
        """
        f = self.config.faults
        if request.path.startswith("/_emulator"):
            return NO_FAULTS
        if f.actions and action is None:
            action = _parse_body(request)[1]
        return draw_plan(f, action, self._fault_rng, self._rng_lock)

    def body_too_large(self, size: int | None) -> Response:
        """The reply to a body over :attr:`EmulatorConfig.max_request_body_bytes` (HTTP 413, GEN5413).

        :param size: the body's size when known (``Content-Length`` or the bytes read), else
            ``None`` (a chunked body that went past the limit: the server stopped reading).
        """
        limit = self.config.max_request_body_bytes
        # JSON that fits once Base64-encoded, padded and Base64-encoded again (x16/9), with
        # 256 bytes for the rest of the envelope.
        json_max = max(0, (limit - 256) * 9 // 16)
        seen = f"is {size:,} bytes" if size is not None else f"exceeds {limit:,} bytes"
        detail = (f"the request body {seen}; the limit is {limit:,} bytes, about {json_max:,} bytes of "
                  f"JSON before encryption: split the payload")
        reply = gstn_error("GEN5413", detail)
        self._stats.answered(reply.response.status, reply.code)
        return reply.response

    def _route(self, req: Request, parsed: dict[str, Any] | None, action: str | None) -> Response:
        path = req.path
        headers = dict(req.headers)
        if path.startswith(("/gstn/", "/generic/")):
            base = "/gstn" if path.startswith("/gstn/") else "/generic"
            self._stats.bump(self._stats.layers, base[1:])
            sub = path[len(base):]
            m = _FILES_PATH.fullmatch(sub)
            if m and req.method == "GET":
                return self._download_file(m.group(1), m.group(2))
            app = f"GSP client {headers.get('clientid', '?')[:8]}"
            return self._gstn(Call(req, base[1:], "GSTN direct", app, sub, headers, req.root + base, parsed), action)
        for prefix, profile in _CLEARTAX_PROFILES:
            if path.startswith(prefix):
                self._stats.bump(self._stats.layers, profile)
                app = check_cleartax(headers, path, parsed, self.config.cleartax_tokens, self.config)
                headers["clientid"] = defaults.CLEARTAX_GSTN_CLIENT_ID
                headers["client-secret"] = defaults.CLEARTAX_GSTN_CLIENT_SECRET
                call = Call(req, profile, "ClearTax", app, path[len(prefix) - 1:], headers, req.root + "/gstn", parsed)
                return self._gstn(call, action)
        if path.startswith(("/cleartax/", "/cleartax-legacy/")):
            self._stats.bump(self._stats.layers, "cleartax")
            raise cleartax_error("CT404", f"no ClearTax route {path}")
        if path.startswith("/vayana/gus/"):
            self._stats.bump(self._stats.layers, "vayana")
            sub = path[len("/vayana/gus"):]
            if sub == "/ping":
                return json_response(200, {"status": "1", "message": "pong"})
            m = _FILES_PATH.fullmatch(sub[len("/returns"):]) if sub.startswith("/returns/") else None
            if m and req.method == "GET":
                return self._download_file(m.group(1), m.group(2))
            if not sub.startswith(("/taxpayerapi/", "/commonapi/")):
                raise vayana_error("VAY-4040", f"no Vayana route {path}")
            with self._lock:
                asps = dict(self._asps)
            asp = check_vayana(headers, action, asps, self.config, self.clock.now())
            if self.config.vayana_txn_replay_check:
                with self._lock:  # check and record as one step: two concurrent replays cannot both pass
                    if headers["txn"] in self._vayana_txns:
                        raise vayana_error("VAY-4022")
                    self._vayana_txns.add(headers["txn"])
            headers["clientid"] = defaults.VAYANA_GSTN_CLIENT_ID
            headers["client-secret"] = defaults.VAYANA_GSTN_CLIENT_SECRET
            return self._gstn(Call(req, "vayana", "Vayana", asp.name, sub, headers, "", parsed), action)
        self._stats.bump(self._stats.layers, "unknown")
        return json_response(404, {"error": f"no route {path}; see {req.root}/_emulator/ for the layout"})

    def _gstn(self, call: Call, action: str | None) -> Response:
        """GSTN itself: client credentials (AUT403x, HTTP 403), then the API of the path."""
        h = call.headers
        clientid, secret = h.get("clientid"), h.get("client-secret")
        if not clientid:
            raise gstn_error("AUT4031")
        if not secret:
            raise gstn_error("AUT4032")
        known = self.config.gstn_clients.get(clientid)
        if known is None:
            raise gstn_error("AUT4033")
        if not consteq(known, secret):
            raise gstn_error("AUT4034")
        self._stats.action(call.layer, action or "?")
        method = call.method
        if _AUTH_PATH.fullmatch(call.path):
            if method == "POST":
                return self._authenticate(call)
            if method == "GET" and call.query.get("action") == "EVCOTP":
                return self._evcotp(call)
            raise gstn_error("GEN5007", f"{method} is not allowed on authenticate", status=405)
        m = _RETURNS_PATH.fullmatch(call.path)
        if m:
            return self._returns(call, m.group(1))
        if _SEARCH_PATH.fullmatch(call.path) and method == "GET":
            return self._search(call)
        raise gstn_error("GEN5007", f"no such API {call.path}", status=404)
