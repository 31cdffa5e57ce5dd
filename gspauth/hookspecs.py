"""Hooks for GSP plugins (entry-point group ``gspauth``); implement them with ``@gspauth.hookimpl``.

Each docstring below is the contract between the core and a plugin. Rules for all hooks:

* Accept only the arguments you use: a minor release may add arguments without breaking you.
* Routing is by GSP id: hooks that take ``gsp`` must return ``None`` for ids you did not
  register, so several plugins can be installed side by side. They stop at the first
  non-``None`` result.
* Hooks are pure unless stated otherwise: no network, disk, sleep, system clock or global
  mutable state. The core does all I/O, caching and expiry, so the same plugin works with
  sync and async clients, with the emulator and under test.
* Never log, print or put a secret (client secret, token, private key, app key) in an
  exception message.

``docs/hooks.md`` lists every hook with its signature and which GSPs (spec §10) need it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # keep runtime imports light
    import datetime
    from collections.abc import Callable, Mapping

    import httpx

    from gspauth.errors import GSPError
    from gspauth.types import (
        Api,
        Credentials,
        Environment,
        GSPInfo,
        GSPSession,
        GSPSessionLogin,
        SessionEvent,
        SigningContext,
    )

__all__ = [
    "PROJECT",
    "gspauth_check_credentials",
    "gspauth_endpoint_url",
    "gspauth_gsp_session_login",
    "gspauth_gsp_session_logout",
    "gspauth_gsp_session_refresh",
    "gspauth_map_error",
    "gspauth_on_session_event",
    "gspauth_provide_otp",
    "gspauth_register_gsps",
    "gspauth_sign_headers",
    "hookimpl",
]

#: pluggy project name == entry-point group.
PROJECT = "gspauth"
_hookspec = pluggy.HookspecMarker(PROJECT)  # plugins implement hooks; only this module declares them
#: Marker for hook implementations (also exported as ``gspauth.hookimpl``).
hookimpl = pluggy.HookimplMarker(PROJECT)


@_hookspec
def gspauth_register_gsps(register: Callable[[GSPInfo], None]) -> None:
    """Declare the GSPs this plugin serves: call ``register(GSPInfo(...))`` once per GSP.

    Called once when the plugin manager loads. The core validates each
    :class:`~gspauth.types.GSPInfo`; registering an id that another plugin (or this one)
    already registered raises :class:`~gspauth.errors.PluginContractError` naming both
    plugins, at load time.

    :param register: callback taking one :class:`~gspauth.types.GSPInfo`.

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def gspauth_endpoint_url(
    gsp: str, api: Api, environment: Environment, version: str, host: str, action: str | None
) -> str | None:
    """Return the absolute URL of ``api`` at ``version`` for ``gsp`` in ``environment``.

    :param gsp: GSP id; return ``None`` if you did not register it.
    :param api: the API family (:class:`~gspauth.types.Api`); ``api.path(version)`` is the
        GSTN path (``/taxpayerapi/v1.0/authenticate`` …) a pass-through GSP maps.
    :param environment: one of the environments you registered.
    :param version: GSTN API version, already validated (``"v1.0"`` …).
    :param host: the host base URL to use, *after* the user's overrides (configuration may
        point it at an emulator or at a GSP's new host). Build on it; never hard-code hosts
        here, or overrides stop working.
    :param action: the GSTN action the URL is for (``"OTPREQUEST"``, ``"B2B"`` …) when the
        caller knows it, else ``None``. Pass-through GSPs ignore it; GSPs with one route per
        action (Masters India's ``/authentication/otprequest``) map it.
    :return: ``host`` + your prefix + path, e.g. ``{host}/gsp/api/taxpayerapi/v1.0/authenticate``.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def gspauth_sign_headers(
    gsp: str, request: httpx.Request, context: SigningContext, credentials: Credentials
) -> Mapping[str, str] | None:
    """Return the GSP-specific headers for one outgoing ``request`` (an empty mapping if none).

    Must be pure: no network, disk, sleep, system clock, randomness or global state. It runs
    inside ``httpx.Auth.auth_flow`` for sync and async clients alike; the same inputs must give
    the same headers. Take the time from ``context.now``, the transaction id from
    ``context.txn`` and any randomness (a per-request key) from ``context.nonce``. The
    request body is already read (``request.content``). Do not mutate ``request``: return
    headers and the core sets them (after the GSP session's headers, so yours win).

    :param gsp: GSP id; return ``None`` if you did not register it.
    :param request: the request, with the GSTN headers (``txn``, ``state-cd`` …) already set.
    :param context: GSTN action, GSTIN, txn, clock and GSP session (:class:`~gspauth.types.SigningContext`).
    :param credentials: the ASP's credentials for this GSP.
    :return: header name → value. Raise :class:`~gspauth.errors.ConfigurationError` if a
        credential you need is missing (say which field, never its value).

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def gspauth_map_error(gsp: str, response: httpx.Response) -> GSPError | None:
    """Turn a GSP-level error reply into a typed :class:`~gspauth.errors.GSPError`.

    The core calls this for every reply from ``gsp`` before parsing it as GSTN's envelope
    (spec §6). Return ``None`` for replies that are not your layer's errors (successes and
    ordinary GSTN errors such as ``AUTH4033``): the core maps those itself. Return, do not
    raise. Prefer :class:`~gspauth.errors.GSPLayerError` for "your GSP token / signature was
    refused" and :class:`~gspauth.errors.ServerError` for GSP outages; set ``hint``.

    :param gsp: GSP id; return ``None`` if you did not register it.
    :param response: the reply, body already read (``response.content``); ``response.request``
        is the request that caused it.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def gspauth_gsp_session_login(
    gsp: str, environment: Environment, host: str, credentials: Credentials, now: datetime.datetime, txn: str
) -> GSPSessionLogin | None:
    """Describe the GSP-level login, for GSPs registered with ``gsp_session=True``.

    Some GSPs need their own session before any GSTN call (spec §10): TaxPro ``GetKey``
    (signed timestamp → ``session-id`` + ``enc_key``), GSTOne and Fynamics JWT logins,
    Vayana EAS SSO. Return a :class:`~gspauth.types.GSPSessionLogin`: the login
    :class:`httpx.Request` and a pure ``parse(response) -> GSPSession``. The core sends it,
    caches the :class:`~gspauth.types.GSPSession` until ``expires_at`` (minus a margin), adds
    ``session.headers`` to every request and passes the session to
    :func:`gspauth_sign_headers` as ``context.gsp_session``. When the GSP rejects the session
    (your :func:`gspauth_map_error` returns :class:`~gspauth.errors.GSPLayerError`, or HTTP
    401) the core logs in again once.

    :param host: the host base after overrides.
    :param credentials: the ASP's credentials (``asp_id``, ``asp_password``,
        ``private_key_pem`` … as your plugin documents).
    :param now: the core's clock (aware), for signed timestamps.
    :param txn: a fresh transaction id for the login request's ``txn`` header, if it has one.

    Like :func:`gspauth_sign_headers`, building the request and ``parse`` must be pure; the
    core does the sending, caching and expiry. ``parse`` may close over ``credentials``
    (e.g. to decrypt a key the GSP returns encrypted to the ASP's public key).

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def gspauth_gsp_session_refresh(
    gsp: str,
    environment: Environment,
    host: str,
    credentials: Credentials,
    session: GSPSession,
    now: datetime.datetime,
    txn: str,
) -> GSPSessionLogin | None:
    """Describe how to extend a GSP-level ``session`` before it expires (e.g. JWT refresh).

    Optional: return ``None`` and the core performs a fresh
    :func:`gspauth_gsp_session_login` instead. Arguments as for the login hook, plus the
    expiring ``session``.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@_hookspec(firstresult=True)
def gspauth_gsp_session_logout(
    gsp: str, environment: Environment, host: str, credentials: Credentials, session: GSPSession
) -> httpx.Request | None:
    """Return the request that ends a GSP-level ``session``, or ``None`` if the GSP has none.

    Pure, like the login hook. :meth:`gspauth.auth.GSPAuth.end_gsp_session` asks for it and
    forgets the cached session; the caller sends the request and ignores its reply.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """


@_hookspec
def gspauth_on_session_event(event: SessionEvent) -> None:
    """Observe the GSTN session lifecycle: OTP requested, consent obtained, session established,
    refreshed, ended, revoked, needs a new OTP, failed (:class:`~gspauth.types.SessionEvent`).

    For audit trails and notifications. Called for every event, on every plugin that implements
    it, in the thread of the client that caused the event: keep it quick (hand slow work to a
    queue). The event carries no secrets. An exception raised here is logged to the
    ``gspauth.plugins`` logger and does not stop the client or the other observers.

    .. versionadded:: 0.1
    """


@_hookspec
def gspauth_check_credentials(gsp: str, credentials: Credentials) -> None:
    """Check ``credentials`` for ``gsp`` beyond what its :class:`~gspauth.types.CredentialField`
    declarations say; raise :class:`~gspauth.errors.ConfigurationError` if they cannot work.

    The core calls this when a client is built, after it checked the declared fields (unknown
    names, required values, ``choices``) and filled in defaults: before any request, so a
    broken setting never costs the taxpayer an OTP. Check what only your plugin understands —
    "exactly one of two ids", "this PEM is an RSA private key" — and name the field in the
    message, never its value. Pure: no network, disk or clock. Return ``None`` for GSP ids you
    did not register.

    Called on every plugin that implements it.

    .. versionadded:: 0.2
    """


@_hookspec(firstresult=True)
def gspauth_provide_otp(gsp: str, environment: Environment, gstin: str, username: str) -> str | None:
    """Supply the taxpayer's OTP for an unattended job, after the core sent OTPREQUEST.

    May block (e.g. poll a mailbox or an approval queue) and do I/O: it runs outside any
    ``httpx.Auth`` flow. Return ``None`` if you cannot supply it; the core then raises
    :class:`~gspauth.errors.OtpRequired`. Never log the OTP.

    Stops at first non-None result.

    .. versionadded:: 0.1
    """
