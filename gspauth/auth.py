"""``GSPAuth``: sign every request for one GSP inside httpx (sync and async clients alike).

The auth flow does no I/O of its own: it asks the plugin for headers (a pure hook) and, for
GSPs with a GSP-level session (spec §10), *yields* the plugin's login request so httpx sends
it through the client's own transport. Sensitive header values print as ``[secure]``.

What the plugin learns about each request (:class:`~gspauth.types.SigningContext`) is read,
in order, from ``request.extensions["gspauth"]`` (a mapping with ``action``, ``gstin``,
``username``, ``api``), then from the request itself: the ``action`` query parameter or JSON
body field, the ``gstin`` header or query parameter, the ``username`` header, and the ``txn``
header (generated and set when missing, so signature and header always agree).
"""

from __future__ import annotations

import datetime as _dt
import logging
import os
import threading
import uuid
from collections.abc import Callable, Generator

import httpx

from gspauth.errors import GSPError, GSPLayerError, PluginContractError
from gspauth.plugins import Hooks
from gspauth.redact import redact_headers, redact_url
from gspauth.replies import json_object
from gspauth.types import Api, Credentials, Environment, GSPSession, SigningContext

__all__ = ["EXTENSION", "GSPAuth"]

_logger = logging.getLogger("gspauth.auth")

#: Key of ``request.extensions`` under which callers pass signing context explicitly.
EXTENSION = "gspauth"


def _utcnow() -> _dt.datetime:
    return _dt.datetime.now(_dt.timezone.utc)


def _new_txn() -> str:
    return uuid.uuid4().hex


def _new_nonce() -> bytes:
    return os.urandom(32)


def _request_context(
    request: httpx.Request,
    *,
    gsp: str,
    environment: Environment,
    now: _dt.datetime,
    gstin: str | None = None,
    username: str | None = None,
    gsp_session: GSPSession | None = None,
    txn_factory: Callable[[], str] | None = None,
    nonce: bytes | None = None,
) -> SigningContext:
    """Build the :class:`SigningContext` for ``request`` (sets a ``txn`` header when missing).

    :param nonce: the per-request random bytes (default: 32 fresh ones from ``os.urandom``).
    """
    ext = request.extensions.get(EXTENSION) or {}
    body = None
    action = ext.get("action") or request.url.params.get("action")
    if not action:
        body = json_object(request.content)
        if body is not None and isinstance(body.get("action"), str):
            action = body["action"]
    gstin = ext.get("gstin") or request.headers.get("gstin") or request.url.params.get("gstin") or gstin
    username = ext.get("username") or request.headers.get("username") or username
    txn = request.headers.get("txn")
    if not txn:
        txn = (txn_factory or _new_txn)()
        request.headers["txn"] = txn
    api = ext.get("api")
    return SigningContext(
        gsp=gsp,
        environment=environment,
        action=action or None,
        gstin=gstin or None,
        txn=txn,
        now=now,
        api=Api(api) if api is not None else None,
        username=username or None,
        gsp_session=gsp_session,
        nonce=nonce if nonce is not None else _new_nonce(),
    )


class GSPAuth(httpx.Auth):
    """Apply a GSP plugin's headers (and GSP-level session, if any) to every request.

    :param hooks: the :class:`~gspauth.plugins.Hooks` facade.
    :param gsp: GSP id; :class:`~gspauth.errors.ProviderNotFound` if no plugin serves it.
    :param environment: environment name the GSP declares.
    :param credentials: the ASP's credentials for this GSP.
    :param gstin: default GSTIN when a request does not say (header/query/extension).
    :param username: default GST portal username.
    :param clock: returns an aware ``datetime``; tests freeze it.
    :param txn_factory: makes ``txn`` values for requests that lack one (and for GSP logins).
    :param nonce_factory: makes each request's 32-byte :attr:`SigningContext.nonce`; tests
        fix it, production leaves the default (``os.urandom``).

    Usage::

        auth = GSPAuth(Hooks(get_plugin_manager()), "vayana", "sandbox", creds, gstin=gstin)
        with httpx.Client(auth=auth) as client: ...
    """

    requires_request_body = True

    def __init__(
        self,
        hooks: Hooks,
        gsp: str,
        environment: Environment,
        credentials: Credentials,
        *,
        gstin: str | None = None,
        username: str | None = None,
        clock: Callable[[], _dt.datetime] = _utcnow,
        txn_factory: Callable[[], str] | None = None,
        nonce_factory: Callable[[], bytes] = _new_nonce,
        session_margin: _dt.timedelta = _dt.timedelta(seconds=60),
    ) -> None:
        self.info = hooks.gsp(gsp)
        hooks.host(gsp, environment)  # validates the environment now, not on first request
        self._hooks = hooks
        self.gsp = gsp
        self.environment = environment
        self._credentials = credentials
        self.gstin = gstin
        self.username = username
        self._clock = clock
        self._txn_factory = txn_factory
        self._nonce_factory = nonce_factory
        self._margin = session_margin
        self._lock = threading.Lock()
        self._gsp_session: GSPSession | None = None
        # GSP-level sessions need the login reply's body, and map_error needs error bodies.
        self.requires_response_body = self.info.gsp_session

    def __repr__(self) -> str:
        return (f"GSPAuth(gsp={self.gsp!r}, environment={self.environment!r}, "
                f"credentials={self._credentials!r}, gstin={self.gstin!r})")

    # -- GSP-level session cache -----------------------------------------------------------
    @property
    def gsp_session(self) -> GSPSession | None:
        """The cached GSP-level session (``None`` if none yet, or the GSP has none)."""
        with self._lock:
            return self._gsp_session

    def clear_gsp_session(self) -> None:
        """Forget the GSP-level session; the next request logs in again."""
        with self._lock:
            self._gsp_session = None

    def end_gsp_session(self) -> httpx.Request | None:
        """Forget the GSP-level session and return the plugin's request that ends it at the GSP
        (``gspauth_gsp_session_logout``), or ``None`` if there is no session or no such request.

        The caller sends the request (through the same client) and may ignore its reply.
        """
        with self._lock:
            session, self._gsp_session = self._gsp_session, None
        if session is None:
            return None
        return self._hooks.gsp_session_logout(self.gsp, self.environment, self._credentials, session)

    def _login_flow(
        self, now: _dt.datetime, stale: GSPSession | None
    ) -> Generator[httpx.Request, httpx.Response, GSPSession]:
        login = None
        txn = (self._txn_factory or _new_txn)()
        if stale is not None:
            login = self._hooks.gsp_session_refresh(self.gsp, self.environment, self._credentials, stale, now, txn)
        if login is None:
            login = self._hooks.gsp_session_login(self.gsp, self.environment, self._credentials, now, txn)
        response = yield login.request
        error = self._hooks.map_error(self.gsp, response)
        if error is not None:
            raise error
        try:
            session = login.parse(response)
        except GSPError:
            raise
        except Exception as exc:  # noqa: BLE001 - any parser failure is the plugin's contract broken
            # Only the type: the message of a parser's exception may quote the reply (a token).
            raise PluginContractError(
                f"GSP {self.gsp!r}: the login reply (HTTP {response.status_code}) could not be parsed "
                f"({type(exc).__name__}); parse() must return a GSPSession or raise a gspauth GSPError"
            ) from None
        if not isinstance(session, GSPSession):
            raise PluginContractError(f"GSP {self.gsp!r}: login parse() returned {type(session).__name__}, "
                                      "expected GSPSession")
        with self._lock:
            self._gsp_session = session
        _logger.debug("GSP session for %s/%s established, expires %s", self.gsp, self.environment,
                     session.expires_at)
        return session

    # -- signing ---------------------------------------------------------------------------
    def _apply(self, request: httpx.Request, session: GSPSession | None, now: _dt.datetime) -> None:
        if session is not None:
            request.headers.update(dict(session.headers))
        context = _request_context(request, gsp=self.gsp, environment=self.environment, now=now,
                                  gstin=self.gstin, username=self.username, gsp_session=session,
                                  txn_factory=self._txn_factory, nonce=self._nonce_factory())
        headers = self._hooks.sign_headers(self.gsp, request, context, self._credentials)
        request.headers.update(headers)
        if _logger.isEnabledFor(logging.DEBUG):
            _logger.debug("signed %s %s for %s: %s", request.method, redact_url(request.url), self.gsp,
                         redact_headers(headers))

    def sign(self, request: httpx.Request) -> httpx.Request:
        """Sign ``request`` in place without sending anything (GSPs without a GSP-level session)."""
        if self.info.gsp_session:
            raise RuntimeError(f"GSP {self.gsp!r} needs a GSP-level login; send requests through httpx")
        request.read()
        self._apply(request, None, self._clock())
        return request

    def auth_flow(self, request: httpx.Request) -> Generator[httpx.Request, httpx.Response, None]:
        now = self._clock()
        session: GSPSession | None = None
        if self.info.gsp_session:
            session = self.gsp_session
            if session is None or session.is_expired(now, self._margin):
                session = yield from self._login_flow(now, session)
        self._apply(request, session, now)
        response = yield request
        if not self.info.gsp_session:
            return
        rejected = response.status_code == 401 or isinstance(self._hooks.map_error(self.gsp, response),
                                                             GSPLayerError)
        if rejected:
            # The GSP forgot our session (restart, revocation): log in again once and retry.
            self.clear_gsp_session()
            now = self._clock()
            session = yield from self._login_flow(now, None)
            self._apply(request, session, now)
            yield request
