"""Vayana GSP plugin for gspauth: the ``/gus`` pass-through (spec §8).

* hosts: ``sandbox`` ``https://yoda.api.vayanagsp.in``, ``production`` ``https://api.gsp.vayana.com``;
* URLs: ``{host}/gus`` + GSTN path (``/gus/taxpayerapi/...``, ``/gus/commonapi/...``), and
  ``{host}/gus/returns`` as the base of FILEDET download URLs;
* headers on every call: ``clientid`` / ``client-secret`` (the ASP credentials Vayana issued),
  ``X-Asp-Auth-Token`` = ``v2.0:<cust_id>:<client_id>:<txn>:<YYYYMMDDHHMMSS+0530>:<gstin>:<action>``
  (exactly one of cust_id / client_id filled; ``txn`` equal to the request's ``txn`` header;
  timestamp in IST from the core's clock) and ``X-Asp-Auth-Signature`` =
  Base64(RSA PKCS#1 v1.5 signature of the UTF-8 token with the ASP's private key), SHA-256 by
  default, SHA-1 with credential ``signature_hash="sha1"``;
* errors: Vayana's layer answers ``{"status": "0", "error": {"code": "VAY-4xxx", ...}}``;
  they become :class:`~gspauth.errors.GSPLayerError` (or
  :class:`~gspauth.errors.ClientCredentialsError` for clientid / client-secret) with a hint.

Credentials (declared in :data:`INFO`): ``client_id``, ``client_secret``, ``asp_cust_id`` *or*
``asp_client_id``, ``private_key_pem`` (PEM; an encrypted key also takes
``private_key_password``), ``signature_hash`` (``sha256`` or ``sha1``).
"""

from __future__ import annotations

import base64
import datetime as _dt
import functools
from collections.abc import Callable, Mapping

import httpx
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from gspauth.errors import ClientCredentialsError, ConfigurationError, GSPError, GSPLayerError
from gspauth.hookspecs import hookimpl
from gspauth.replies import gsp_outage, is_gstn_reply, json_object
from gspauth.types import Api, CredentialField, Credentials, GSPInfo, SigningContext

__all__ = ["GSP", "INFO", "__version__"]
#: This distribution's version.
__version__ = "0.2.0"

#: The GSP id this plugin serves.
GSP = "vayana"
#: What it registers (:func:`~gspauth.hookspecs.gspauth_register_gsps`).
INFO = GSPInfo(
    id=GSP,
    name="Vayana GSP",
    environments={"sandbox": "https://yoda.api.vayanagsp.in", "production": "https://api.gsp.vayana.com"},
    supports_refresh=True,
    capabilities=frozenset({"files", "evc", "signing"}),
    docs_url="https://docs.gsp.vayana.com/building-a-vayana-gsp-auth-token",
    description="Vayana GSP /gus pass-through with RSA-signed X-Asp-Auth-Token",
    credentials=(
        CredentialField("client_id", "the ASP clientid Vayana issued", required=True, secret=False),
        CredentialField("client_secret", "the ASP client-secret Vayana issued", required=True),
        CredentialField("asp_cust_id", "Vayana customer id for X-Asp-Auth-Token (set this or asp_client_id)",
                        secret=False),
        CredentialField("asp_client_id", "Vayana ASP client id for X-Asp-Auth-Token (set this or asp_cust_id)",
                        secret=False),
        CredentialField("private_key_pem", "the ASP's RSA private key (PEM) whose public key is registered "
                        "with Vayana", required=True),
        CredentialField("private_key_password", "password of an encrypted private_key_pem"),
        CredentialField("signature_hash", "hash of the RSA signature", secret=False, choices=("sha256", "sha1"),
                        default="sha256"),
    ),
)

#: India Standard Time; the token's timestamp is IST with its ``+0530`` offset.
_IST = _dt.timezone(_dt.timedelta(hours=5, minutes=30), "IST")
_PREFIX = "/gus"
_HASHES: dict[str, Callable[[], hashes.HashAlgorithm]] = {"sha256": hashes.SHA256, "sha1": hashes.SHA1}

#: Vayana layer code → (exception, hint). The reply shape is inferred (Vayana does not document it).
_ERRORS: dict[str, tuple[type[GSPError], str]] = {
    "VAY-4010": (ClientCredentialsError, "set Credentials(client_id=...) to the clientid Vayana issued"),
    "VAY-4011": (ClientCredentialsError, "set Credentials(client_secret=...) to the client-secret Vayana issued"),
    "VAY-4012": (ClientCredentialsError, "check clientid / client-secret for this environment"),
    "VAY-4013": (GSPLayerError, "the X-Asp-Auth-Token header was not sent; is the vayana plugin loaded?"),
    "VAY-4014": (GSPLayerError, "the X-Asp-Auth-Signature header was not sent"),
    "VAY-4015": (GSPLayerError, "X-Asp-Auth-Token must be 'v2.0' and 7 colon-separated fields"),
    "VAY-4016": (GSPLayerError, "set exactly one of the credentials asp_cust_id / asp_client_id"),
    "VAY-4017": (GSPLayerError, "the cust_id / client_id is not registered to this clientid with Vayana"),
    "VAY-4018": (GSPLayerError, "the txn header must equal the token's txn field"),
    "VAY-4019": (GSPLayerError, "check this machine's clock: the token timestamp is outside Vayana's window"),
    "VAY-4020": (GSPLayerError, "the call needs a valid GSTIN (Client(gstin=...))"),
    "VAY-4021": (GSPLayerError, "the token's api_action must equal the request's GSTN action"),
    "VAY-4022": (GSPLayerError, "txn values must be unique per request"),
    "VAY-4030": (GSPLayerError, "the signature did not verify: check the private key registered with Vayana "
                                "and the hash (credential signature_hash: 'sha256' or 'sha1')"),
    "VAY-4031": (GSPLayerError, "register your public key with Vayana (docs.gsp.vayana.com/generate-keypair)"),
    "VAY-4040": (GSPLayerError, "check the host: Vayana routes live under /gus"),
}


@hookimpl
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    register(INFO)


@hookimpl
def gspauth_endpoint_url(gsp: str, api: Api, version: str, host: str) -> str | None:
    if gsp != GSP:
        return None
    return host + _PREFIX + api.path(version)


def _asp_auth_token(*, cust_id: str | None, client_id: str | None, txn: str, now: _dt.datetime, gstin: str,
                    action: str) -> str:
    """The ``X-Asp-Auth-Token`` string (spec §8.3). ``now`` must be timezone-aware."""
    if bool(cust_id) == bool(client_id):
        raise ConfigurationError("Vayana needs exactly one of the credentials asp_cust_id and asp_client_id")
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    timestamp = now.astimezone(_IST).strftime("%Y%m%d%H%M%S") + "+0530"
    for name, value in (("txn", txn), ("gstin", gstin), ("action", action)):
        if not value or ":" in value:
            raise ConfigurationError(f"Vayana token field {name} must be non-empty and contain no ':'")
    return ":".join(["v2.0", cust_id or "", client_id or "", txn, timestamp, gstin, action])


@functools.lru_cache(maxsize=8)
def _load_key(pem: bytes, password: str | None) -> rsa.RSAPrivateKey:
    # Memoised parse of the same bytes: pure, and saves ~1 ms per request.
    try:
        key = serialization.load_pem_private_key(pem, password.encode() if password else None)
    except (ValueError, TypeError) as exc:
        # never include the key or password; the exception type is enough
        raise ConfigurationError(f"Credentials.private_key_pem is not a usable PEM private key "
                                 f"({type(exc).__name__})") from None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise ConfigurationError("Credentials.private_key_pem must be an RSA private key")
    return key


def _sign_token(token: str, private_key_pem: str | bytes, *, hash_name: str = "sha256",
                password: str | None = None) -> str:
    """``X-Asp-Auth-Signature``: Base64(RSA PKCS#1 v1.5 sign(utf8(token))) with SHA-256 or SHA-1."""
    if hash_name not in _HASHES:
        raise ConfigurationError(f"signature hash must be one of {sorted(_HASHES)}")
    pem = private_key_pem.encode("ascii") if isinstance(private_key_pem, str) else bytes(private_key_pem)
    key = _load_key(pem, password)
    signature = key.sign(token.encode("utf-8"), padding.PKCS1v15(), _HASHES[hash_name]())
    return base64.b64encode(signature).decode("ascii")


@hookimpl
def gspauth_check_credentials(gsp: str, credentials: Credentials) -> None:
    if gsp != GSP:
        return
    if bool(credentials.get("asp_cust_id")) == bool(credentials.get("asp_client_id")):
        raise ConfigurationError("Vayana needs exactly one of the credentials asp_cust_id and asp_client_id")
    pem = credentials.get("private_key_pem")
    if pem:  # parse it now: a broken key must not cost an OTP later
        _load_key(pem.encode("ascii"), credentials.get("private_key_password"))


@hookimpl
def gspauth_sign_headers(gsp: str, context: SigningContext, credentials: Credentials) -> Mapping[str, str] | None:
    if gsp != GSP:
        return None
    client_id, client_secret = credentials.client_id, credentials.client_secret
    pem = credentials.get("private_key_pem")
    if not client_id or not client_secret or not pem:
        missing = [n for n, v in (("client_id", client_id), ("client_secret", client_secret),
                                  ("private_key_pem", pem)) if not v]
        raise ConfigurationError(f"Vayana needs Credentials fields: {', '.join(missing)}")
    if not context.action:
        raise ConfigurationError("Vayana signs the GSTN action, but this request names none (action query "
                                 "parameter, JSON body 'action', or request.extensions['gspauth']['action'])")
    if not context.gstin:
        raise ConfigurationError("Vayana's X-Asp-Auth-Token needs a GSTIN: pass gstin to the client")
    token = _asp_auth_token(cust_id=credentials.get("asp_cust_id"), client_id=credentials.get("asp_client_id"),
                            txn=context.txn, now=context.now, gstin=context.gstin, action=context.action)
    return {
        "clientid": client_id,
        "client-secret": client_secret,
        "X-Asp-Auth-Token": token,
        "X-Asp-Auth-Signature": _sign_token(token, pem, hash_name=credentials.get("signature_hash", "sha256"),
                                            password=credentials.get("private_key_password")),
    }


@hookimpl
def gspauth_map_error(gsp: str, response: httpx.Response) -> GSPError | None:
    if gsp != GSP:
        return None
    body = json_object(response.content)
    error = body.get("error") if body is not None and not is_gstn_reply(body) else None
    if isinstance(error, dict) and isinstance(error.get("code"), str):
        code = error["code"]
        cls, hint = _ERRORS.get(code, (GSPLayerError, "see Vayana's GSP documentation for this code"))
        message = error.get("message") if isinstance(error.get("message"), str) else None
        return cls(message or "Vayana refused the request", error_code=code, status_code=response.status_code,
                   hint=hint, gsp=GSP)
    return gsp_outage(GSP, "Vayana", response)
