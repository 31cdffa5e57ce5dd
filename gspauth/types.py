"""Value types shared by the core and GSP plugins: APIs, GSP descriptions, credentials, contexts.

Everything here is immutable. Anything that can hold a secret (:class:`Credentials`,
:class:`GSPSession`) prints ``[secure]`` in place of it, so these objects are safe to
log, to put in exception messages and to show in tracebacks.
"""

from __future__ import annotations

import datetime as _dt
import enum
import ipaddress
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args
from urllib.parse import urlsplit

from gspauth.redact import SECURE, redact_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "Api",
    "CryptoMode",
    "Credentials",
    "Environment",
    "GSPInfo",
    "GSPSession",
    "GSPSessionLogin",
    "PRODUCTION",
    "SANDBOX",
    "SessionEvent",
    "SessionEventKind",
    "SigningContext",
    "check_base_url",
    "is_loopback_host",
]

#: An environment name: ``"sandbox"``, ``"production"`` or any extra one a plugin declares
#: (``"legacy-sandbox"`` …). Plain ``str`` so plugins can add their own without a core release.
Environment = str
SANDBOX: Environment = "sandbox"
PRODUCTION: Environment = "production"

#: ``"passthrough"``: the client does GSTN crypto and the GSP forwards bytes (ClearTax, Vayana /gus,
#: IRIS, TaxPro). ``"gsp_decrypts"``: the GSP does the GSTN crypto itself (MastersIndia, TaxPro "dec").
CryptoMode = Literal["passthrough", "gsp_decrypts"]

_VERSION_RE = re.compile(r"v\d+\.\d+\Z")
_GSP_ID_RE = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?\Z")


class Api(str, enum.Enum):
    """A family of GSTN APIs; each knows its GSTN path template (spec §2.2).

    A pass-through GSP serves ``{its host}{its prefix}{api.path(version)}``; the plugin's
    :func:`~gspauth.hookspecs.gspauth_endpoint_url` decides host prefix and mapping.
    """

    AUTH = "auth"
    RETURNS = "returns"
    LEDGERS = "ledgers"
    DOCUMENT = "document"
    COMMON = "common"
    #: Base for FILEDET download URLs (spec §5.3; Vayana: ``/gus/returns``).
    FILES = "files"

    @property
    def path_template(self) -> str:
        """The GSTN path, with ``{version}`` where the API version goes."""
        return _PATHS[self]

    @property
    def default_version(self) -> str:
        """A version GSTN serves for this API family (callers should pass the one they need)."""
        return _DEFAULT_VERSIONS[self]

    def path(self, version: str | None = None) -> str:
        """The GSTN path for ``version`` (``"v1.0"`` …), e.g. ``/taxpayerapi/v1.0/authenticate``.

        :raises ValueError: if ``version`` is not of the form ``v<digits>.<digits>``.
        """
        version = version or self.default_version
        if not isinstance(version, str) or not _VERSION_RE.match(version):
            raise ValueError(f"API version must look like 'v1.0', got {version!r}")
        return self.path_template.format(version=version)

    def __str__(self) -> str:
        return self.value


_PATHS: dict[Api, str] = {
    Api.AUTH: "/taxpayerapi/{version}/authenticate",
    Api.RETURNS: "/taxpayerapi/{version}/returns",
    Api.LEDGERS: "/taxpayerapi/{version}/ledgers",
    Api.DOCUMENT: "/taxpayerapi/{version}/document",
    Api.COMMON: "/commonapi/{version}",
    Api.FILES: "/returns",
}
_DEFAULT_VERSIONS: dict[Api, str] = {
    Api.AUTH: "v1.0",
    Api.RETURNS: "v1.0",
    Api.LEDGERS: "v1.0",
    Api.DOCUMENT: "v1.0",
    Api.COMMON: "v1.1",
    Api.FILES: "v1.0",
}


def is_loopback_host(hostname: str | None) -> bool:
    """``True`` for ``localhost`` and loopback IP literals (``127.0.0.0/8``, ``::1``)."""
    if not hostname:
        return False
    if hostname.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(hostname.strip("[]")).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, what: str = "host") -> str:
    """Validate a host base URL and return it without a trailing slash.

    Absolute ``https://`` URL with no query or fragment; ``http://`` only for loopback
    hosts (a local emulator). Used for plugin-declared hosts and for overrides alike.

    :raises ValueError: with a message naming ``what`` and the problem.
    """
    if not isinstance(url, str) or not url:
        raise ValueError(f"{what} must be a non-empty URL string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{what} {url!r} is not an absolute http(s) URL")
    if parts.scheme == "http" and not is_loopback_host(parts.hostname):
        raise ValueError(
            f"{what} {url!r} uses plain http; https is required except for loopback hosts "
            "(127.0.0.1, ::1, localhost)"
        )
    if parts.query or parts.fragment:
        raise ValueError(f"{what} {url!r} must not carry a query or fragment")
    if parts.username or parts.password:
        raise ValueError(f"{what} must not embed credentials in the URL")
    return url.rstrip("/")


def _frozen_mapping(value: Mapping[str, str] | None) -> Mapping[str, str]:
    return MappingProxyType(dict(value or {}))


@dataclass(frozen=True)
class GSPInfo:
    """One GSP a plugin serves, as passed to the ``register`` callback.

    :param id: stable lowercase id (``"cleartax"``, ``"vayana"``): letters, digits, ``-``.
    :param name: display name.
    :param environments: environment → host base URL (scheme + host + optional base path, no
        trailing slash). The plugin's endpoint hook appends its own prefix and the GSTN path.
        Users override hosts by configuration (see :class:`gspauth.plugins.Hooks`).
    :param supports_refresh: the GSP forwards REFRESHTOKEN.
    :param crypto_mode: who does the GSTN payload crypto (:data:`CryptoMode`).
    :param capabilities: free-form feature flags (``"evc"``, ``"files"``, ``"ewaybill"`` …).
    :param gsp_session: the GSP needs its own login before GSTN calls (spec §10: TaxPro
        GetKey, GSTOne/Fynamics JWT); the plugin then implements ``gspauth_gsp_session_login``.
    :param docs_url: where users read about the GSP's onboarding.
    :param description: one line for ``gspauth plugins``.
    """

    id: str
    name: str
    environments: Mapping[Environment, str]
    supports_refresh: bool = True
    crypto_mode: CryptoMode = "passthrough"
    capabilities: frozenset[str] = frozenset()
    gsp_session: bool = False
    docs_url: str | None = None
    description: str = ""

    def __post_init__(self) -> None:
        if not isinstance(self.id, str) or not _GSP_ID_RE.match(self.id):
            raise ValueError(
                f"GSP id {self.id!r} must be 1-40 lowercase letters, digits or '-', "
                "starting and ending with a letter or digit"
            )
        if not self.name:
            raise ValueError(f"GSP {self.id!r}: name must not be empty")
        if not isinstance(self.environments, Mapping) or not self.environments:
            raise ValueError(f"GSP {self.id!r}: environments must map at least one environment to a host")
        hosts: dict[str, str] = {}
        for env, host in self.environments.items():
            if not isinstance(env, str) or not env:
                raise ValueError(f"GSP {self.id!r}: environment names must be non-empty strings, got {env!r}")
            hosts[env] = check_base_url(host, what=f"GSP {self.id!r} environment {env!r} host")
        object.__setattr__(self, "environments", MappingProxyType(hosts))
        if self.crypto_mode not in get_args(CryptoMode):
            raise ValueError(f"GSP {self.id!r}: crypto_mode must be one of {get_args(CryptoMode)}")
        object.__setattr__(self, "capabilities", frozenset(self.capabilities))

    def __hash__(self) -> int:
        return hash((self.id, tuple(self.environments.items())))


#: Credential fields whose values are secret (printed as ``[secure]``).
_SECRET_FIELDS = frozenset({"client_secret", "gsp_token", "private_key_pem", "asp_password", "options"})


@dataclass(frozen=True, repr=False)
class Credentials:
    """What an ASP holds for one GSP. Every field is optional; each plugin documents what it needs.

    :param client_id: ``clientid`` header (GSTN/GSP client id).
    :param client_secret: ``client-secret`` header. *Secret.*
    :param gsp_token: a static GSP token, e.g. ClearTax ``X-CT-Auth-Token``. *Secret.*
    :param asp_cust_id: Vayana customer id for ``X-Asp-Auth-Token`` (set this *or* ``asp_client_id``).
    :param asp_client_id: Vayana ASP client id for ``X-Asp-Auth-Token``.
    :param private_key_pem: the ASP's RSA private key (PEM) for request signatures. *Secret.*
    :param signature_hash: hash for RSA signatures: ``"sha256"`` (default) or ``"sha1"``.
    :param asp_id: an ASP id for GSP-level logins (TaxPro ``aspid``, GSTOne user).
    :param asp_password: the password for a GSP-level login. *Secret.*
    :param options: anything else a plugin documents (values are treated as secret in reprs).

    ``repr()`` shows which secrets are set, never their values.
    """

    client_id: str | None = None
    client_secret: str | None = None
    gsp_token: str | None = None
    asp_cust_id: str | None = None
    asp_client_id: str | None = None
    private_key_pem: bytes | None = None
    signature_hash: str = "sha256"
    asp_id: str | None = None
    asp_password: str | None = None
    options: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "options", _frozen_mapping(self.options))
        if self.signature_hash not in ("sha256", "sha1"):
            raise ValueError(f"signature_hash must be 'sha256' or 'sha1', got {self.signature_hash!r}")
        if isinstance(self.private_key_pem, str):
            raise TypeError("private_key_pem must be bytes (PEM), not str")

    def __repr__(self) -> str:
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name == "options":
                if value:
                    parts.append(f"options={{{', '.join(f'{k!r}: {SECURE!r}' for k in sorted(value))}}}")
                continue
            if value is None:
                continue
            if f.name in _SECRET_FIELDS:
                parts.append(f"{f.name}={SECURE!r}")
            elif f.name != "signature_hash" or value != "sha256":
                parts.append(f"{f.name}={value!r}")
        return f"Credentials({', '.join(parts)})"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash((self.client_id, self.asp_cust_id, self.asp_client_id, self.asp_id, self.signature_hash))

    def secret_values(self) -> frozenset[str]:
        """Every secret value held (for log redaction and for tests that grep for leaks)."""
        out: set[str] = set()
        for name in ("client_secret", "gsp_token", "asp_password"):
            value = getattr(self, name)
            if value:
                out.add(value)
        if self.private_key_pem:
            text = self.private_key_pem.decode("ascii", "replace")
            out.add(text)
            # a key body line is as telling as the whole PEM
            out.update(line for line in text.splitlines() if len(line) >= 32 and "-----" not in line)
        out.update(v for v in self.options.values() if v)
        return frozenset(out)


@dataclass(frozen=True)
class GSPSession:
    """A GSP-level session (not the GSTN one): what a GSP login returned.

    :param headers: added to every request while the session lasts (``Authorization``,
        ``session-id`` …). Values print as ``[secure]``.
    :param expires_at: aware datetime after which the core logs in again; ``None``: until the
        GSP rejects it.
    :param data: plugin-private state for later signing (e.g. TaxPro's ``enc_key``), printed
        as ``[secure]``; read it from :attr:`SigningContext.gsp_session`.
    """

    headers: Mapping[str, str] = field(default_factory=dict)
    expires_at: _dt.datetime | None = None
    data: Mapping[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "headers", _frozen_mapping(self.headers))
        object.__setattr__(self, "data", _frozen_mapping(self.data))
        if self.expires_at is not None and self.expires_at.tzinfo is None:
            raise ValueError("GSPSession.expires_at must be timezone-aware")

    def __repr__(self) -> str:
        headers = ", ".join(f"{k!r}: {SECURE!r}" for k in self.headers)
        data = ", ".join(f"{k!r}: {SECURE!r}" for k in self.data)
        return f"GSPSession(headers={{{headers}}}, expires_at={self.expires_at!r}, data={{{data}}})"

    __str__ = __repr__

    def __hash__(self) -> int:
        return hash((tuple(self.headers), self.expires_at))

    def is_expired(self, now: _dt.datetime, margin: _dt.timedelta = _dt.timedelta(seconds=60)) -> bool:
        """``True`` when the session ends within ``margin`` of ``now``."""
        return self.expires_at is not None and now + margin >= self.expires_at


@dataclass(frozen=True)
class GSPSessionLogin:
    """A GSP-level login the core should perform: the request and how to read the reply.

    Returned by ``gspauth_gsp_session_login`` / ``gspauth_gsp_session_refresh``. The core sends
    :attr:`request` (through the same transport, so an emulator or mock works), then calls
    :attr:`parse` with the reply (body already read). ``parse`` must be pure and either return
    a :class:`GSPSession` or raise a :class:`~gspauth.errors.GSPError` (usually
    :class:`~gspauth.errors.GSPLayerError`).
    """

    request: httpx.Request
    parse: Callable[[httpx.Response], GSPSession]

    def __repr__(self) -> str:
        return f"GSPSessionLogin(request=<{self.request.method} {redact_url(self.request.url)}>)"


@dataclass(frozen=True)
class SigningContext:
    """What a plugin may know about the request it signs (besides the request itself).

    :param gsp: GSP id.
    :param environment: environment name.
    :param action: the GSTN action (``"OTPREQUEST"``, ``"RETSAVE"``, ``"B2B"``, ``"TP"`` …), or
        ``None`` when the core could not tell (the plugin may then refuse to sign).
    :param gstin: GSTIN the call is made for (may differ from the payload's, e.g. search).
    :param txn: the request's ``txn`` header value; signatures that embed a transaction id use it.
    :param now: the core's clock, timezone-aware. Plugins must use it, never the system clock.
    :param api: which API family the URL belongs to, when the core knows it.
    :param username: GST portal username, when known.
    :param gsp_session: the current GSP-level session, for GSPs that have one.
    :param nonce: 32 fresh random bytes per request from the core (``os.urandom``), for GSPs
        that encrypt something under a per-request key (Vayana EAS's REK). Plugins must take
        randomness from here, never from ``os.urandom``/``secrets``: then signing stays
        repeatable under test, where the core fixes it. Hidden in ``repr``.

    .. versionadded:: 0.1
    """

    gsp: str
    environment: Environment
    action: str | None
    gstin: str | None
    txn: str
    now: _dt.datetime
    api: Api | None = None
    username: str | None = None
    gsp_session: GSPSession | None = None
    nonce: bytes = field(default=bytes(32), repr=False)

    def __post_init__(self) -> None:
        if self.now.tzinfo is None or self.now.utcoffset() is None:
            raise ValueError("SigningContext.now must be a timezone-aware datetime")
        if not isinstance(self.nonce, bytes) or len(self.nonce) != 32:
            raise ValueError("SigningContext.nonce must be 32 bytes")


#: The kinds of :class:`SessionEvent`.
SessionEventKind = Literal[
    "otp-requested", "consent", "established", "refreshed", "ended", "revoked", "needs-otp", "failed"
]
_EVENT_KINDS = frozenset(get_args(SessionEventKind))


@dataclass(frozen=True)
class SessionEvent:
    """Something happened to a GSTN session; passed to ``gspauth_on_session_event`` observers.

    Carries identities and outcomes, never a token, key, OTP or secret.

    :param kind: ``"otp-requested"`` (OTPREQUEST accepted), ``"consent"`` (the taxpayer's OTP was
        accepted: AUTHTOKEN succeeded), ``"established"`` (a usable session exists, also when
        loaded from a store), ``"refreshed"``, ``"ended"`` (LOGOUT or local expiry),
        ``"revoked"`` (GSTN rejected a session the client thought valid), ``"needs-otp"``
        (refresh impossible; a person must consent again), ``"failed"`` (an auth action failed).
    :param outcome: ``"ok"`` or an error code / exception name.
    :param detail: a short human-readable note (no secrets).
    """

    kind: SessionEventKind
    gsp: str
    environment: Environment
    gstin: str | None
    username: str | None
    at: _dt.datetime
    txn: str | None = None
    ip_usr: str | None = None
    outcome: str = "ok"
    detail: str | None = None
    expires_at: _dt.datetime | None = None

    def __post_init__(self) -> None:
        if self.kind not in _EVENT_KINDS:
            raise ValueError(f"SessionEvent.kind must be one of {sorted(_EVENT_KINDS)}, got {self.kind!r}")
        if self.at.tzinfo is None:
            raise ValueError("SessionEvent.at must be timezone-aware")


#: Types whose ``repr`` hides every secret by construction: the tracer and logs may print them.
REDACTED_REPR_TYPES: tuple[type, ...] = (
    Api, Credentials, GSPInfo, GSPSession, GSPSessionLogin, SessionEvent, SigningContext,
)
