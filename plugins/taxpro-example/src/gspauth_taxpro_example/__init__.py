"""An example GSP plugin for gspauth in the style of TaxPro (charteredinfo, spec §10).

It shows how a GSP with its own key exchange is written against gspauth's public hooks, and it
passes the whole conformance kit:

* ``GetKey``: ``POST {host}/getkey`` with headers ``aspid`` and ``txn`` and body
  ``{"timestamp": ddMMyyyyHHmmssFFFFFF, "signed_content": B64(RSA-SHA256(aspid + timestamp))}``;
  the reply carries ``session_id``, ``enc_key`` (the AspEK, RSA-encrypted to the ASP's public
  key) and ``expiry`` (minutes) → a cached :class:`~gspauth.types.GSPSession`;
* on every call: ``aspid``, ``session-id``, ``appver`` and ``asp-secret`` = ``E(AspEK, password)``
  (AES-256-ECB-PKCS7, deterministic, so signing stays pure);
* GSP-level errors ``{"error_code": "GSP0xx"}`` → :class:`~gspauth.errors.GSPLayerError`, which
  makes the core log in again once (GSP005: session expired).

It is an example, not a supported TaxPro integration: the wire details beyond spec §10 (the
``/getkey`` path, the reply's field names, the RSA padding of ``enc_key``) are assumptions, not
TaxPro's documentation. Copy it as a starting point for a GSP with a login of its own.

Credentials (declared in :data:`INFO`): ``asp_id``, ``asp_password``, ``private_key_pem``.
"""

from __future__ import annotations

import base64
import datetime as _dt
from collections.abc import Callable, Mapping

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gspauth.crypto import encrypt_field
from gspauth.errors import ConfigurationError, GSPError, GSPLayerError
from gspauth.hookspecs import hookimpl
from gspauth.replies import gsp_outage, is_gstn_reply, json_object
from gspauth.types import Api, CredentialField, Credentials, GSPInfo, GSPSession, GSPSessionLogin, SigningContext

__all__ = ["GSP", "INFO", "__version__"]
#: This distribution's version.
__version__ = "0.2.0"

#: The GSP id this plugin serves.
GSP = "taxpro-example"
_IST = _dt.timezone(_dt.timedelta(hours=5, minutes=30))
#: What it registers (:func:`~gspauth.hookspecs.gspauth_register_gsps`).
INFO = GSPInfo(
    id=GSP,
    name="TaxPro-style example GSP",
    environments={"sandbox": "https://gstsandbox.charteredinfo.com", "production": "https://gstapi.charteredinfo.com"},
    gsp_session=True,
    credentials=(
        CredentialField("asp_id", "the aspid TaxPro issued", required=True, secret=False),
        CredentialField("asp_password", "the ASP password, sent encrypted as asp-secret", required=True),
        CredentialField("private_key_pem", "the ASP's RSA private key (PEM) that signs GetKey", required=True),
    ),
)


def _private_key(credentials: Credentials) -> rsa.RSAPrivateKey:
    pem = credentials.get("private_key_pem")
    if not pem:
        raise ConfigurationError(f"{GSP} needs Credentials(private_key_pem=...) to sign GetKey")
    key = serialization.load_pem_private_key(pem.encode("ascii"), None)
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("credential private_key_pem must be an RSA key")
    return key


def _getkey_timestamp(now: _dt.datetime) -> str:
    """``ddMMyyyyHHmmssFFFFFF`` in IST."""
    return now.astimezone(_IST).strftime("%d%m%Y%H%M%S%f")


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(INFO)


@hookimpl
def gspauth_endpoint_url(gsp: str, api: Api, version: str, host: str) -> str | None:
    return host + api.path(version) if gsp == GSP else None


@hookimpl
def gspauth_gsp_session_login(gsp: str, host: str, credentials: Credentials, now: _dt.datetime,
                              txn: str) -> GSPSessionLogin | None:
    if gsp != GSP:
        return None
    asp_id = credentials.get("asp_id")
    if not asp_id:
        raise ConfigurationError(f"{GSP} needs Credentials(asp_id=...)")
    key = _private_key(credentials)
    timestamp = _getkey_timestamp(now)
    signed = key.sign((asp_id + timestamp).encode(), padding.PKCS1v15(), hashes.SHA256())
    request = httpx.Request("POST", host + "/getkey", headers={"aspid": asp_id, "txn": txn},
                            json={"timestamp": timestamp, "signed_content": base64.b64encode(signed).decode()})

    def parse(response: httpx.Response) -> GSPSession:
        body = json_object(response.content) or {}
        enc_key = key.decrypt(base64.b64decode(body["enc_key"]), padding.PKCS1v15())
        return GSPSession(headers={"session-id": body["session_id"]},
                          expires_at=now + _dt.timedelta(minutes=int(body["expiry"])),
                          data={"enc_key": base64.b64encode(enc_key).decode()})

    return GSPSessionLogin(request, parse)


@hookimpl
def gspauth_sign_headers(gsp: str, context: SigningContext, credentials: Credentials) -> Mapping[str, str] | None:
    if gsp != GSP:
        return None
    asp_id, password = credentials.get("asp_id"), credentials.get("asp_password")
    if not asp_id or not password:
        raise ConfigurationError(f"{GSP} needs Credentials(asp_id=..., asp_password=...)")
    if context.gsp_session is None or "enc_key" not in context.gsp_session.data:
        raise ConfigurationError(f"{GSP} signs with the GetKey session's enc_key; none was given")
    asp_ek = base64.b64decode(context.gsp_session.data["enc_key"])
    return {"aspid": asp_id, "appver": "1.0", "asp-secret": encrypt_field(asp_ek, password.encode())}


@hookimpl
def gspauth_map_error(gsp: str, response: httpx.Response) -> GSPError | None:
    if gsp != GSP:
        return None
    body = json_object(response.content)
    if body is not None and not is_gstn_reply(body) and str(body.get("error_code", "")).startswith("GSP"):
        return GSPLayerError(str(body.get("message") or "refused by TaxPro"), error_code=body["error_code"],
                             status_code=response.status_code, hint="GetKey again", gsp=GSP)
    return gsp_outage(GSP, "TaxPro", response)
