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
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Literal, get_args
from urllib.parse import urlsplit

from gspauth.redact import SECURE, redact_url

if TYPE_CHECKING:
    import httpx

__all__ = [
    "CORE_CREDENTIALS",
    "DEFAULT_PATH_VERSIONS",
    "REDACTED_REPR_TYPES",
    "Api",
    "CredentialField",
    "Credentials",
    "CryptoMode",
    "Environment",
    "GSPInfo",
    "GSPSession",
    "GSPSessionLogin",
    "SessionEvent",
    "SessionEventKind",
    "SigningContext",
    "check_base_url",
    "is_loopback_host",
    "version_keys",
]

#: An environment name: ``"sandbox"``, ``"production"`` or any extra one a plugin declares
#: (``"legacy-sandbox"`` …). Plain ``str`` so plugins can add their own without a core release.
Environment = str

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
#: GSTN versions of individual return APIs where they differ from the family's (spec §2.2:
#: ``v4.1/returns/gstr1``, ``v2.0/returns/gstr2b``, ``v6.0/returns/gstr3b``; GSTR-2A as 2B).
#: Keys are ``"<api>/<path>"``, the form plugins (:attr:`GSPInfo.api_versions`) and the
#: ``[versions]`` table of ``config.toml`` use too.
DEFAULT_PATH_VERSIONS: Mapping[str, str] = MappingProxyType({
    "returns/gstr1": "v4.1",
    "returns/gstr2a": "v2.0",
    "returns/gstr2b": "v2.0",
    "returns/gstr3b": "v6.0",
})


def version_keys(api: Api, path: str = "") -> tuple[str, ...]:
    """The keys a version is looked up under, most specific first: ``("returns/gstr1", "returns")``."""
    first = path.strip("/").split("/", 1)[0] if path else ""
    return (f"{api.value}/{first}", api.value) if first else (api.value,)


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
    :param credentials: the :class:`CredentialField` values the plugin reads from
        :class:`Credentials` (checked by the core before any request).
    :param api_versions: GSTN API versions this GSP serves where they differ from the core's
        defaults, keyed ``"<api>"`` or ``"<api>/<path>"`` (``{"auth": "v0.2"}``); users override
        them in ``config.toml`` (``[versions]``, ``[versions.<gsp>]``).
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
    credentials: tuple[CredentialField, ...] = ()
    api_versions: Mapping[str, str] = field(default_factory=dict)

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
        declared = tuple(self.credentials)
        if not all(isinstance(f, CredentialField) for f in declared):
            raise ValueError(f"GSP {self.id!r}: credentials must be CredentialField values")
        names = [f.name for f in declared]
        if len(set(names)) != len(names):
            raise ValueError(f"GSP {self.id!r}: a credential field is declared twice")
        object.__setattr__(self, "credentials", declared)
        for where, version in dict(self.api_versions).items():
            if not isinstance(version, str) or not _VERSION_RE.match(version):
                raise ValueError(f"GSP {self.id!r}: api_versions[{where!r}] must look like 'v1.0', got {version!r}")
        object.__setattr__(self, "api_versions", _frozen_mapping(self.api_versions))

    def __hash__(self) -> int:
        return hash((self.id, tuple(self.environments.items())))

    @property
    def public_credentials(self) -> frozenset[str]:
        """Names of the declared credentials that are not secret (ids)."""
        return frozenset(f.name for f in self.credentials if not f.secret)

    def credential_field(self, name: str) -> CredentialField | None:
        """The declaration of credential ``name``, or ``None``."""
        return next((f for f in self.credentials if f.name == name), None)


_FIELD_NAME_RE = re.compile(r"[a-z][a-z0-9_]{0,63}\Z")
#: Credential names the core itself reads: GSTN's ``clientid`` / ``client-secret`` headers (spec §2.3).
CORE_CREDENTIALS = ("client_id", "client_secret")
#: Values that are shown in reprs (identifiers, not secrets). Every other value prints ``[secure]``.
_PUBLIC_CREDENTIALS = frozenset({"client_id"})


@dataclass(frozen=True)
class CredentialField:
    """One credential a GSP plugin reads, declared in :attr:`GSPInfo.credentials`.

    The core checks a client's :class:`Credentials` against these declarations before any
    request (:meth:`gspauth.plugins.Hooks.check_credentials`): unknown names (typos),
    missing required values and values outside ``choices`` fail with a
    :class:`~gspauth.errors.ConfigurationError` naming the field, never its value.
    ``gspauth plugins --json`` lists them, and the CLI reads each from
    ``GSPAUTH_CRED_<NAME>`` or the profile's ``[profiles.<name>.credentials]`` table.

    :param name: lowercase identifier (``"gsp_token"``, ``"private_key_pem"``).
    :param description: one line for users: what it is and where it comes from.
    :param required: a client cannot be built without it.
    :param secret: its value is a secret (documentation; reprs hide every value anyway).
    :param choices: the allowed values, if the set is closed.
    :param default: the value used when none is given (filled in by the check).

    .. versionadded:: 0.2
    """

    name: str
    description: str
    required: bool = False
    secret: bool = True
    choices: tuple[str, ...] = ()
    default: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not _FIELD_NAME_RE.match(self.name):
            raise ValueError(f"credential field name {self.name!r} must be a lowercase identifier (a-z, 0-9, _)")
        object.__setattr__(self, "choices", tuple(self.choices))
        if self.default is not None and self.choices and self.default not in self.choices:
            raise ValueError(f"credential field {self.name!r}: default is not one of its choices")

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (for ``gspauth plugins --json``)."""
        return {"name": self.name, "description": self.description, "required": self.required,
                "secret": self.secret, "choices": list(self.choices), "default": self.default,
                "env": f"GSPAUTH_CRED_{self.name.upper()}"}


class Credentials(Mapping[str, str]):
    """What an ASP holds for one GSP: named text values. Each plugin declares the names it reads.

    ::

        Credentials(gsp_token="…")                                   # ClearTax
        Credentials(client_id="…", client_secret="…", asp_cust_id="…",
                    private_key_pem=pem_text)                         # Vayana

    The core reads only :data:`CORE_CREDENTIALS` (``client_id``, ``client_secret``: GSTN's
    ``clientid`` / ``client-secret`` headers); everything else is the plugin's business and is
    checked against its :class:`CredentialField` declarations when a client is built.
    ``bytes`` values (a PEM key) are stored as ASCII text; ``None`` values are left out.

    ``repr()`` shows which names are set and the value of ``client_id`` only; every other
    value prints as ``[secure]``.
    """

    __slots__ = ("_values",)
    _values: Mapping[str, str]

    def __init__(self, values: Mapping[str, str | bytes | None] | None = None, /,
                 **fields: str | bytes | None) -> None:
        merged: dict[str, str] = {}
        for name, value in {**(values or {}), **fields}.items():
            if not isinstance(name, str) or not _FIELD_NAME_RE.match(name):
                raise ValueError(f"credential name {name!r} must be a lowercase identifier (a-z, 0-9, _)")
            if value is None:
                continue
            if isinstance(value, (bytes, bytearray)):
                try:
                    value = bytes(value).decode("ascii")
                except UnicodeDecodeError:
                    raise ValueError(f"credential {name!r} is bytes but not ASCII text (a PEM key is ASCII)") from None
            if not isinstance(value, str):
                raise TypeError(f"credential {name!r} must be str, not {type(value).__name__}")
            merged[name] = value
        object.__setattr__(self, "_values", MappingProxyType(merged))

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError("Credentials are immutable; build new ones with replace()")

    def __getitem__(self, name: str) -> str:
        return self._values[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Credentials) and dict(self._values) == dict(other._values)

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values.items())))

    def __reduce__(self) -> tuple[type[Credentials], tuple[dict[str, str]]]:
        return (Credentials, (dict(self._values),))  # picklable (worker processes)

    @property
    def client_id(self) -> str | None:
        """GSTN/GSP ``clientid``, when set."""
        return self._values.get("client_id")

    @property
    def client_secret(self) -> str | None:
        """GSTN/GSP ``client-secret``, when set. *Secret.*"""
        return self._values.get("client_secret")

    def replace(self, **fields: str | bytes | None) -> Credentials:
        """A copy with ``fields`` set (``None`` removes one)."""
        merged: dict[str, str | bytes | None] = dict(self._values)
        merged.update(fields)
        return Credentials(merged)

    def __repr__(self) -> str:
        parts = [f"{k}={v!r}" if k in _PUBLIC_CREDENTIALS else f"{k}={SECURE!r}"
                 for k, v in sorted(self._values.items())]
        return f"Credentials({', '.join(parts)})"

    __str__ = __repr__

    def secret_values(self, public: Iterable[str] = _PUBLIC_CREDENTIALS) -> frozenset[str]:
        """Every secret value held (for log redaction and for tests that grep for leaks).

        :param public: names whose values are not secret (default ``client_id``; a GSP's
            :attr:`GSPInfo.public_credentials` for its plugin's view).
        """
        shown = frozenset(public)
        out: set[str] = set()
        for name, value in self._values.items():
            if name in shown or not value:
                continue
            out.add(value)
            # a key body line of a PEM is as telling as the whole key
            out.update(line for line in value.splitlines() if len(line) >= 32 and "-----" not in line)
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
