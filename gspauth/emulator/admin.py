"""``{root}/_emulator/...``: admin, portal, outboxes and statistics (JSON over HTTP).

No authentication: the emulator binds to loopback and holds nothing but fake data.
Errors: ``{"error": "..."}`` with HTTP 400 / 404 / 405.
"""

from __future__ import annotations

import dataclasses
import datetime as _dt
import json
import re
from typing import TYPE_CHECKING, Any

from gspauth.emulator import gsp as _gsp
from gspauth.emulator._http import Request, Response, json_response, plain_response
from gspauth.errors import InvalidGSTIN

if TYPE_CHECKING:
    from gspauth.emulator.core import Emulator

__all__ = ["handle_admin"]

#: Documented admin routes (method, path) for the index page.
_ROUTES: tuple[tuple[str, str, str], ...] = (
    ("GET", "/_emulator/health", "liveness, clock, current certificate fingerprint"),
    ("GET", "/_emulator/certificate.pem", "current GSTN certificate (PEM)"),
    ("GET", "/_emulator/certificate.der", "current GSTN certificate (DER)"),
    ("GET", "/_emulator/certificates", "all GSTN certificates with validity and acceptance windows"),
    ("POST", "/_emulator/keys/rotate", '{"overlap_days": N} new GSTN key; old accepted during the overlap'),
    ("GET", "/_emulator/taxpayers", "registered taxpayers"),
    ("POST", "/_emulator/taxpayers", '{"gstin","username","api_access"?,"duration_hours"?,"mobile"?,"email"?}'),
    ("GET", "/_emulator/outbox/otp", "?gstin=&purpose=auth|evc&username=&since=ISO-8601: OTPs sent (latest last)"),
    ("GET", "/_emulator/outbox/notifications", "?gstin=: consent SMS/e-mail notifications"),
    ("POST", "/_emulator/portal/{gstin}/api-access", '{"enabled": bool, "duration_hours": 6..720}'),
    ("GET", "/_emulator/portal/{gstin}/sessions", "active application sessions"),
    ("POST", "/_emulator/portal/{gstin}/sessions/{session_id}/revoke", "revoke one session"),
    ("GET", "/_emulator/clock", "emulator time"),
    ("POST", "/_emulator/clock", '{"advance_seconds": N} or {"set": "ISO-8601"}'),
    ("GET", "/_emulator/faults", "fault injection settings"),
    ("POST", "/_emulator/faults", '{"latency_ms","error_5xx_rate","rate_429","drop_rate","drop_after_rate",'
                                  '"slow_rate","slow_ms","actions",...}'),
    ("GET", "/_emulator/stats", "requests per layer and action, error codes, faults"),
    ("POST", "/_emulator/stats/reset", "zero the counters"),
    ("POST", "/_emulator/vayana/asps",
     '{"public_key_pem", "clientid", "client_secret", "cust_id"|"client_id", "name"?}'),
    ("GET", "/_emulator/vayana/asps", "registered Vayana ASPs (no secrets)"),
    ("POST", "/_emulator/cleartax/tokens", '{"token", "application"?}'),
    ("GET", "/_emulator/registry", "?gstin=: a GSTIN's registry status; without it every GSTIN not active"),
    ("POST", "/_emulator/registry", '{"gstin", "status": "active"|"cancelled"|"unregistered"}'),
    ("POST", "/_emulator/gstr2b/generate", '{"gstin", "period": "MMYYYY"}: generate (freeze) that GSTR-2B statement'),
    ("GET", "/_emulator/config", "configuration (credentials hidden)"),
    ("POST", "/_emulator/config", "{field: value} for scalar fields (strictness toggles, lifetimes)"),
    ("GET", "/_emulator/codes", "GSP-layer error code tables"),
)


def _err(status: int, message: str) -> Response:
    return json_response(status, {"error": message})


def _body(body: bytes) -> dict[str, Any]:
    if not body:
        return {}
    obj = json.loads(body)
    if not isinstance(obj, dict):
        raise ValueError("body must be a JSON object")
    return obj


def _flag(b: dict[str, Any], name: str, default: bool) -> bool:
    value = b.get(name, default)
    if not isinstance(value, bool):
        raise ValueError(f"{name} must be true or false")
    return value


def handle_admin(emu: Emulator, request: Request) -> Response:
    """Answer a ``/_emulator/...`` admin request (the routes are listed in :mod:`gspauth.emulator`)."""
    try:
        return _dispatch(emu, request, request.body)
    except (ValueError, TypeError, InvalidGSTIN) as exc:
        return _err(400, str(exc))
    except KeyError as exc:
        return _err(404, f"not found: {exc.args[0] if exc.args else ''}")


def _dispatch(emu: Emulator, request: Request, raw: bytes) -> Response:
    path = request.path[len("/_emulator"):].rstrip("/") or "/"
    method = request.method
    q = request.query
    if path == "/" and method == "GET":
        root = request.root
        return json_response(200, {
            "layers": {"gstn": f"{root}/gstn", "cleartax": f"{root}/cleartax",
                       "cleartax_legacy": f"{root}/cleartax-legacy", "vayana": f"{root}/vayana/gus"},
            "routes": [{"method": m, "path": p, "about": a} for m, p, a in _ROUTES],
        })  # fmt: skip
    if path == "/health" and method == "GET":
        return json_response(200, {"status": "ok", "time": emu.clock.now().isoformat(),
                                   "certificate_sha256": emu.keys.current.fingerprint_sha256})
    if path == "/certificate.pem" and method == "GET":
        return plain_response(200, emu.certificate_pem, "application/x-pem-file")
    if path == "/certificate.der" and method == "GET":
        return plain_response(200, emu.certificate_der, "application/pkix-cert")
    if path == "/certificates" and method == "GET":
        return json_response(200, {"certificates": emu.certificates()})
    if path == "/keys/rotate" and method == "POST":
        body = _body(raw)
        return json_response(200, emu.rotate_keys(body.get("overlap_days")))
    if path == "/taxpayers":
        if method == "GET":
            return json_response(200, {"taxpayers": [t.to_json() for t in emu.taxpayers()]})
        if method == "POST":
            b = _body(raw)
            tp = emu.register_taxpayer(
                b["gstin"], b["username"], state_code=b.get("state_code"), api_access=_flag(b, "api_access", True),
                access_duration=_dt.timedelta(hours=int(b.get("duration_hours", 720))),
                **{k: b[k] for k in ("mobile", "email") if k in b},
            )
            return json_response(201, tp.to_json())
    if path == "/outbox/otp" and method == "GET":
        gstin = q.get("gstin")
        msgs = emu.outbox.otps(gstin, q.get("purpose"))
        if q.get("username"):
            msgs = [m for m in msgs if str(m.get("username", "")).lower() == q["username"].lower()]
        if q.get("since"):  # only OTPs sent at or after this instant (e.g. after one's own OTPREQUEST)
            since = _dt.datetime.fromisoformat(q["since"])
            since = since if since.tzinfo else since.replace(tzinfo=_dt.timezone.utc)
            msgs = [m for m in msgs if _dt.datetime.fromisoformat(m["time"]) >= since]
        return json_response(200, {"gstin": gstin, "latest": msgs[-1]["otp"] if msgs else None, "messages": msgs})
    if path == "/outbox/notifications" and method == "GET":
        return json_response(200, {"notifications": emu.outbox.notifications(q.get("gstin"))})
    m = re.fullmatch(r"/portal/([0-9A-Z]{15})/(api-access|sessions)(?:/([^/]+)/revoke)?", path)
    if m:
        gstin, what, sid = m.groups()
        if what == "api-access" and method == "POST":
            b = _body(raw)
            if not isinstance(b.get("enabled"), bool):
                raise ValueError("enabled must be true or false")
            tp = emu.set_api_access(gstin, b["enabled"], b.get("duration_hours"))
            return json_response(200, tp.to_json())
        if what == "sessions" and sid is None and method == "GET":
            return json_response(200, {"sessions": emu.sessions_of(gstin)})
        if what == "sessions" and sid is not None and method == "POST":
            return json_response(200, {"revoked": emu.revoke_session(gstin, sid)})
    if path == "/clock":
        if method == "POST":
            b = _body(raw)
            if "advance_seconds" in b:
                emu.clock.advance(float(b["advance_seconds"]))
            elif "set" in b:
                emu.clock.set(_dt.datetime.fromisoformat(b["set"]))
            else:
                raise ValueError('give "advance_seconds" or "set"')
        if method in ("GET", "POST"):
            return json_response(200, {"now": emu.clock.now().isoformat(), "frozen": emu.clock.frozen})
    if path == "/faults":
        if method == "POST":
            emu.set_faults(**_body(raw))
        if method in ("GET", "POST"):
            return json_response(200, dataclasses.asdict(emu.faults))
    if path == "/stats" and method == "GET":
        return json_response(200, emu.stats)
    if path == "/stats/reset" and method == "POST":
        emu.reset_stats()
        return json_response(200, emu.stats)
    if path == "/vayana/asps":
        if method == "POST":
            b = _body(raw)
            for required in ("clientid", "client_secret"):
                if not isinstance(b.get(required), str) or not b[required]:
                    raise ValueError(f"{required} is required (a new ASP gets no demo credentials)")
            kw = {k: b[k] for k in ("cust_id", "client_id", "name") if k in b}
            asp = emu.register_vayana_asp(b.get("public_key_pem"), clientid=b["clientid"],
                                          client_secret=b["client_secret"], **kw)
            return json_response(201, asp.public_view())
        if method == "GET":
            return json_response(200, {"asps": emu.vayana_asps()})
    if path == "/cleartax/tokens" and method == "POST":
        b = _body(raw)
        emu.add_cleartax_token(str(b["token"]), str(b.get("application", "ASP")))
        return json_response(201, {"ok": True})
    if path == "/registry":
        if method == "GET":
            gstin = q.get("gstin")
            if gstin is not None:
                return json_response(200, {"gstin": gstin, "status": emu.gstin_status(gstin)})
            return json_response(200, {"gstins": emu.gstin_registry()})
        if method == "POST":
            b = _body(raw)
            return json_response(200, emu.set_gstin_status(str(b.get("gstin", "")), str(b.get("status", ""))))
    if path == "/gstr2b/generate" and method == "POST":
        b = _body(raw)
        return json_response(200, emu.generate_gstr2b(str(b.get("gstin", "")), str(b.get("period", ""))))
    if path == "/config":
        if method == "POST":
            emu.update_config(**_body(raw))
        if method in ("GET", "POST"):
            return json_response(200, emu.config.public_view())
    if path == "/codes" and method == "GET":
        return json_response(200, {
            "cleartax": {k: {"http_status": v[0], "meaning": v[1]} for k, v in _gsp.CLEARTAX_ERRORS.items()},
            "vayana": {k: {"http_status": v[0], "meaning": v[1]} for k, v in _gsp.VAYANA_ERRORS.items()},
            "shapes": _gsp.GSP_ERROR_SHAPES,
        })  # fmt: skip
    return _err(404 if method in ("GET", "POST") else 405, f"no admin route {method} {path}")
