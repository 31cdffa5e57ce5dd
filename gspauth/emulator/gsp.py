"""The GSP layers in front of the emulated GSTN: ClearTax (spec §9) and Vayana (spec §8).

Each layer checks its own credentials and answers failures in its own shape, which is
**INFERRED** (neither GSP documents its error body) and deliberately distinct from
GSTN's ``{"status_cd":"0","error":{"error_cd","message"}}``:

* ClearTax: ``{"error_code": "CT401", "error_message": "..."}`` — codes in :data:`CLEARTAX_ERRORS`.
* Vayana: ``{"status": "0", "error": {"code": "VAY-4010", "message": "..."}}`` — codes in
  :data:`VAYANA_ERRORS`.

Plugin authors map these codes through the tables below (code → (HTTP status, meaning)).
On success the layer forwards to the GSTN core with the GSP's *own* GSTN ``clientid`` /
``client-secret`` (clients of a GSP never send GSTN-level credentials).
"""

from __future__ import annotations

import base64
import binascii
import datetime as _dt
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gspauth.emulator import defaults
from gspauth.emulator._http import Reply, consteq, json_response
from gspauth.gstin import is_valid_gstin

if TYPE_CHECKING:
    from gspauth.emulator.config import EmulatorConfig

__all__ = [
    "CLEARTAX_ERRORS",
    "GSP_ERROR_SHAPES",
    "VAYANA_ERRORS",
    "VayanaAsp",
    "check_cleartax",
    "check_vayana",
    "cleartax_error",
    "default_vayana_asp",
    "load_public_key",
    "vayana_error",
]

#: ClearTax layer codes: code → (HTTP status, meaning).  INFERRED shape and codes.
CLEARTAX_ERRORS: dict[str, tuple[int, str]] = {
    "CT401": (401, "X-CT-Auth-Token header missing"),
    "CT403": (403, "X-CT-Auth-Token not recognised"),
    "CT400": (400, "appkey header does not match the body's app_key (or is missing when required)"),
    "CT404": (404, "no such ClearTax GSP route"),
}

#: Vayana ``/gus`` layer codes: code → (HTTP status, meaning).  INFERRED shape and codes.
VAYANA_ERRORS: dict[str, tuple[int, str]] = {
    "VAY-4010": (401, "clientid header missing"),
    "VAY-4011": (401, "client-secret header missing"),
    "VAY-4012": (401, "clientid / client-secret not recognised"),
    "VAY-4013": (401, "X-Asp-Auth-Token header missing"),
    "VAY-4014": (401, "X-Asp-Auth-Signature header missing"),
    "VAY-4015": (401, "X-Asp-Auth-Token malformed (need v2.0 and 7 colon-separated fields)"),
    "VAY-4016": (401, "X-Asp-Auth-Token must set exactly one of cust_id and client_id"),
    "VAY-4017": (403, "cust_id / client_id unknown or not registered to this clientid"),
    "VAY-4018": (401, "txn header missing or different from the token's txn field"),
    "VAY-4019": (401, "timestamp malformed or outside the allowed clock skew"),
    "VAY-4020": (401, "gstin field of the token is not a valid GSTIN"),
    "VAY-4021": (401, "api_action of the token differs from the request's action"),
    "VAY-4022": (401, "txn already used (replay)"),
    "VAY-4030": (403, "X-Asp-Auth-Signature does not verify under the registered ASP public key"),
    "VAY-4031": (403, "no public key registered for this ASP"),
    "VAY-4040": (404, "no such Vayana route"),
}

#: Where each GSP layer's error body keeps its code (for generic mapping code).
GSP_ERROR_SHAPES: dict[str, str] = {
    "gstn": '{"status_cd":"0","error":{"error_cd":CODE,"message":TEXT}}',
    "cleartax": '{"error_code":CODE,"error_message":TEXT}',
    "vayana": '{"status":"0","error":{"code":CODE,"message":TEXT}}',
}


def cleartax_error(code: str, detail: str | None = None) -> Reply:
    """The ClearTax-layer error reply for ``code`` (:data:`CLEARTAX_ERRORS`), to raise."""
    status, meaning = CLEARTAX_ERRORS[code]
    return Reply(json_response(status, {"error_code": code, "error_message": detail or meaning}), code)


def vayana_error(code: str, detail: str | None = None) -> Reply:
    """The Vayana-layer error reply for ``code`` (:data:`VAYANA_ERRORS`), to raise."""
    status, meaning = VAYANA_ERRORS[code]
    return Reply(json_response(status, {"status": "0", "error": {"code": code, "message": detail or meaning}}), code)


@dataclass
class VayanaAsp:
    """An ASP registered with the emulated Vayana: its credentials, identities and key."""

    clientid: str
    client_secret: str = field(repr=False)
    cust_id: str | None = None
    client_id: str | None = None
    name: str = "ASP"
    public_key: rsa.RSAPublicKey | None = field(default=None, repr=False)

    def to_json(self) -> dict[str, Any]:
        pem = None
        if self.public_key is not None:
            pem = self.public_key.public_bytes(
                serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
            ).decode()
        return {"clientid": self.clientid, "client_secret": self.client_secret, "cust_id": self.cust_id,
                "client_id": self.client_id, "name": self.name, "public_key_pem": pem}

    def public_view(self) -> dict[str, Any]:
        data = self.to_json()
        data.pop("client_secret")
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> VayanaAsp:
        key = load_public_key(data["public_key_pem"]) if data.get("public_key_pem") else None
        return cls(data["clientid"], data["client_secret"], data.get("cust_id"), data.get("client_id"),
                   data.get("name", "ASP"), key)


def load_public_key(pem: str | bytes) -> rsa.RSAPublicKey:
    """An ASP's RSA public key from PEM: a public key or a certificate."""
    raw = pem.encode() if isinstance(pem, str) else pem
    key: Any
    if raw.lstrip().startswith(b"-----BEGIN CERTIFICATE"):
        from cryptography import x509

        key = x509.load_pem_x509_certificate(raw).public_key()
    else:
        key = serialization.load_pem_public_key(raw)
    if not isinstance(key, rsa.RSAPublicKey):
        raise ValueError("the ASP key must be an RSA public key")
    return key


def default_vayana_asp(register_demo_key: bool) -> VayanaAsp:
    """The built-in demo ASP (the :mod:`.defaults` identities), with the demo key when asked."""
    key = defaults.vayana_demo_private_key().public_key() if register_demo_key else None
    return VayanaAsp(
        defaults.VAYANA_ASP_CLIENTID, defaults.VAYANA_ASP_CLIENT_SECRET, defaults.VAYANA_ASP_CUST_ID,
        defaults.VAYANA_ASP_CLIENT_ID, defaults.VAYANA_APPLICATION, key,
    )


_TS = re.compile(r"(\d{14})([+-])(\d{2})(\d{2})")


def _parse_vayana_timestamp(text: str) -> _dt.datetime | None:
    m = _TS.fullmatch(text)
    if not m:
        return None
    try:
        local = _dt.datetime.strptime(m.group(1), "%Y%m%d%H%M%S")
        offset = _dt.timedelta(hours=int(m.group(3)), minutes=int(m.group(4)))
        if offset > _dt.timedelta(hours=14) or int(m.group(4)) >= 60:
            return None
        tz = _dt.timezone(offset if m.group(2) == "+" else -offset)
    except ValueError:
        return None
    return local.replace(tzinfo=tz)


def check_vayana(
    h: dict[str, str],
    action: str | None,
    asps: dict[str, VayanaAsp],
    config: EmulatorConfig,
    now: _dt.datetime,
) -> VayanaAsp:
    """Run the Vayana-layer checks (spec §8.2-8.4); return the ASP or raise a Vayana :class:`Reply`.

    ``h``: the request headers (lower-case names); ``action``: the call's GSTN action
    (JSON body ``action``, else query ``action``). Each field of ``X-Asp-Auth-Token``
    fails with its own code. The ``txn`` replay check (VAY-4022) needs the emulator's
    state and lock, so the emulator makes it after this.
    """
    clientid, secret = h.get("clientid"), h.get("client-secret")
    if not clientid:
        raise vayana_error("VAY-4010")
    if not secret:
        raise vayana_error("VAY-4011")
    asp = asps.get(clientid)
    if asp is None or not consteq(asp.client_secret, secret):
        raise vayana_error("VAY-4012")
    token = h.get("x-asp-auth-token")
    if not token:
        raise vayana_error("VAY-4013")
    signature = h.get("x-asp-auth-signature")
    if not signature:
        raise vayana_error("VAY-4014")
    fields = token.split(":")
    if len(fields) != 7 or fields[0] != "v2.0":
        raise vayana_error("VAY-4015",
                           f"expected 'v2.0:cust_id:client_id:txn:timestamp:gstin:action', got {len(fields)} fields")
    _, cust_id, client_id, txn, stamp, gstin, api_action = fields
    if bool(cust_id) == bool(client_id):
        raise vayana_error("VAY-4016")
    if (cust_id and cust_id != asp.cust_id) or (client_id and client_id != asp.client_id):
        raise vayana_error("VAY-4017")
    if not txn or h.get("txn") != txn:
        raise vayana_error("VAY-4018")
    when = _parse_vayana_timestamp(stamp)
    if when is None:
        raise vayana_error("VAY-4019", "timestamp must be YYYYMMDDHHMMSS±HHMM (19 characters)")
    skew = abs((when - now).total_seconds())
    if skew > config.vayana_skew_seconds:
        raise vayana_error(
            "VAY-4019",
            f"timestamp is {int(skew)} s away from the server clock (allowed ±{config.vayana_skew_seconds} s)",
        )
    if not is_valid_gstin(gstin):
        raise vayana_error("VAY-4020")
    if api_action != action:
        raise vayana_error("VAY-4021", f"api_action is {api_action!r} but the request's action is {action!r}")
    if asp.public_key is None:
        raise vayana_error("VAY-4031")
    try:
        sig = base64.b64decode(signature.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        raise vayana_error("VAY-4030", "X-Asp-Auth-Signature is not valid Base64") from None
    if not _verify(asp.public_key, sig, token.encode("utf-8"), config.vayana_signature_hashes):
        raise vayana_error("VAY-4030")
    return asp


_HASHES = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}


def _verify(key: rsa.RSAPublicKey, sig: bytes, msg: bytes, allowed: tuple[str, ...]) -> bool:
    for name in allowed:
        try:
            key.verify(sig, msg, padding.PKCS1v15(), _HASHES[name]())
        except InvalidSignature:
            continue
        return True
    return False


def check_cleartax(
    h: dict[str, str], path: str, body: dict[str, Any] | None, tokens: dict[str, str], config: EmulatorConfig
) -> str:
    """ClearTax-layer checks (spec §9); return the application name or raise a ClearTax :class:`Reply`.

    ``h``: request headers (lower-case names); ``body``: the JSON body when it is an object.
    """
    token = h.get("x-ct-auth-token")
    if not token:
        raise cleartax_error("CT401")
    application = None
    for known, app in tokens.items():
        if consteq(known, token):
            application = app
    if application is None:
        raise cleartax_error("CT403")
    appkey = h.get("appkey")
    body_app_key = None
    if (body is not None and path.endswith("/authenticate")
            and body.get("action") in ("OTPREQUEST", "AUTHTOKEN", "LOGOUT")):
        body_app_key = body.get("app_key")
    if (appkey is not None and config.cleartax_check_appkey_header and body_app_key is not None
            and not consteq(appkey, str(body_app_key))):  # fmt: skip
        raise cleartax_error("CT400")
    if appkey is None and config.cleartax_require_appkey_header and body_app_key is not None:
        raise cleartax_error("CT400", "appkey header is required")
    return application
