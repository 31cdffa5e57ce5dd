"""Taxpayer sessions over httpx: :class:`Client` (sync) and :class:`AsyncClient` (asyncio).

A client is bound to one GSP, environment, set of credentials, GSTIN and portal username.
It runs GSTN's session lifecycle (spec §3, §7) and encrypts/decrypts every data call::

    client = Client("cleartax", "sandbox", credentials, gstin="27…", username="acme",
                    certificate="GSTN_G2B_SANDBOX_UAT_public.cer", store=SQLiteStore())
    client.request_otp()
    client.authenticate("575757")                       # OTP consent
    ref = client.put(Api.RETURNS, "gstr1", action="RETSAVE", payload=chunk, ret_period="072017")
    b2b = client.get(Api.RETURNS, "gstr1", action="B2B", ret_period="072017")

Lifecycle rules:

* A token is used until ``margin`` (default 15 minutes) before it expires — the earlier of
  the stated expiry and a lifetime *observed* when GSTN rejected a token early; then it is
  refreshed (REFRESHTOKEN) before the next call, when the session allows it.
* When a new OTP is needed (no session, refresh refused with AUTH4037, refresh window
  passed, revoked, logged out) the client asks the OTP provider; if it has none it raises
  :class:`~gspauth.errors.OtpRequired` with the GSTIN and a ``reason``.
* One auth or refresh per session key at a time, across threads and processes: the store's
  lock is taken, the session re-loaded, and a session another worker just refreshed is
  reused instead of refreshed again.
* Transient failures (HTTP 5xx, 429, dropped connections, TEC4001/GEN5008,
  RETINPROGRESS) are retried with jittered exponential backoff, **re-sending the same
  ``txn``**, so GSTN can recognise a replayed RETSAVE instead of filing it twice.

The lifecycle is written once (:mod:`gspauth._lifecycle`) as flows of effects; this module
holds the two drivers: :class:`Client` performs effects with blocking calls, and
:class:`AsyncClient` awaits them, running the blocking ones (store, ledger, OTP provider,
bulk crypto) in worker threads. The locks live here, in the drivers, as httpx's auth docs
advise for flows that need them.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import datetime as _dt
import os
import threading
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import httpx

from gspauth import crypto, protocol
from gspauth._effects import Call, Effect, Flow, Lock, Send, Sleep, Unlock, drive, drive_async
from gspauth._lifecycle import Lifecycle
from gspauth._requests import RequestBuilder
from gspauth.auth import GSPAuth
from gspauth.errors import ConfigurationError, LockTimeout
from gspauth.protocol import Payload, SealedBody
from gspauth.redact import install_log_filters
from gspauth.retry import RetryPolicy
from gspauth.session import DEFAULT_MARGIN, PendingOtp, Session, SessionKey, SessionTarget, utcnow
from gspauth.types import Api, Credentials, Environment

if TYPE_CHECKING:
    from gspauth.crypto import CertificateSource
    from gspauth.ledger import ConsentLedger
    from gspauth.otp import OtpProvider
    from gspauth.plugins import Hooks, HostOverrides
    from gspauth.store import SessionStore

__all__ = ["AsyncClient", "Client"]

_T = TypeVar("_T")
_LOCALHOST_IP = "127.0.0.1"


class _ClientBase:
    """What both clients share: validated configuration and the lifecycle they drive."""

    def __init__(
        self,
        gsp: str,
        environment: Environment,
        credentials: Credentials | None,
        *,
        gstin: str,
        username: str,
        certificate: CertificateSource,
        store: SessionStore | None,
        otp_provider: OtpProvider | None,
        ledger: ConsentLedger | None,
        hooks: Hooks | None,
        hosts: HostOverrides | None,
        ip_usr: str,
        margin: _dt.timedelta | float,
        auto_refresh: bool,
        retry: RetryPolicy | None,
        clock: Callable[[], _dt.datetime] | None,
        allow_expired_certificate: bool,
        lock_timeout: float | None,
        auth_version: str | None,
    ) -> None:
        from gspauth.gstin import validate_gstin
        from gspauth.plugins import Hooks, default_hooks

        install_log_filters()  # httpx logs request URLs: hide FILEDET tokens and the like
        if not isinstance(username, str) or not username.strip():
            raise ConfigurationError("username (the taxpayer's GST portal username) is required")
        gstin = validate_gstin(gstin)
        ip_usr = protocol.validate_ip(ip_usr)
        clock = clock or utcnow
        if hooks is None:
            hooks = default_hooks() if hosts is None else Hooks(default_hooks().pm, hosts=hosts)
        # Unknown, missing or malformed credentials fail here, before an OTP is spent.
        credentials = hooks.check_credentials(gsp, credentials if credentials is not None else Credentials())
        cert = crypto.certificate_from(certificate)
        if not allow_expired_certificate:
            cert.check_valid(clock())  # refuse a stale certificate up front
        if store is None:
            from gspauth.store import MemoryStore

            store = MemoryStore()
        if ledger is None:  # consent is always recorded: the ledger that belongs with the store
            ledger = store.ledger()
        key = SessionKey(gsp, environment, gstin, username.strip())
        source = os.fspath(certificate) if isinstance(certificate, (str, os.PathLike)) else None
        target = SessionTarget(
            key=key, host=hooks.host(key.gsp, key.environment),
            certificate=str(Path(source).expanduser().resolve()) if source and not source.lstrip().startswith("-----")
            else None,
            certificate_sha256=cert.fingerprint_sha256, ip_usr=ip_usr, auth_version=auth_version,
        )  # fmt: skip
        self._auth = GSPAuth(hooks, key.gsp, key.environment, credentials, gstin=key.gstin, username=key.username,
                             clock=clock)
        requests = RequestBuilder(hooks=hooks, gsp=key.gsp, environment=key.environment, gstin=key.gstin,
                                  username=key.username, ip_usr=ip_usr, credentials=credentials,
                                  auth_version=auth_version)
        self._life = Lifecycle(
            key=key, requests=requests, certificate=cert, target=target, store=store, otp_provider=otp_provider,
            ledger=ledger,
            margin=margin if isinstance(margin, _dt.timedelta) else _dt.timedelta(seconds=float(margin)),
            auto_refresh=auto_refresh, retry=retry or RetryPolicy(), clock=clock,
            allow_expired_certificate=allow_expired_certificate, lock_timeout=lock_timeout,
            end_gsp_session=self._auth.end_gsp_session,
        )  # fmt: skip

    # -- read-only views -------------------------------------------------------------------

    def __repr__(self) -> str:
        k = self.key
        return f"{type(self).__name__}(gsp={k.gsp!r}, environment={k.environment!r}, gstin={k.gstin!r}, " \
               f"username={k.username!r})"

    __str__ = __repr__

    @property
    def key(self) -> SessionKey:
        """Whose session this client manages (GSP, environment, GSTIN, username)."""
        return self._life.key

    @property
    def gsp(self) -> str:
        return self._life.key.gsp

    @property
    def environment(self) -> str:
        return self._life.key.environment

    @property
    def gstin(self) -> str:
        return self._life.key.gstin

    @property
    def username(self) -> str:
        return self._life.key.username

    @property
    def credentials(self) -> Credentials:
        """The credentials, checked against the plugin's declarations (defaults filled in)."""
        return self._life.requests.credentials

    @property
    def hooks(self) -> Hooks:
        return self._life.requests.hooks

    @property
    def store(self) -> SessionStore:
        return self._life.store

    @property
    def margin(self) -> _dt.timedelta:
        return self._life.margin

    @property
    def otp_provider(self) -> OtpProvider | None:
        """Where an OTP comes from when one is needed; may be replaced between calls."""
        return self._life.otp_provider

    @otp_provider.setter
    def otp_provider(self, provider: OtpProvider | None) -> None:
        self._life.otp_provider = provider

    @property
    def gsp_auth(self) -> GSPAuth:
        """The plugin's request signing (and GSP-level session) as an :class:`httpx.Auth`."""
        return self._auth

    @property
    def session(self) -> Session | None:
        """The session this client last used or obtained (``None`` before the first)."""
        return self._life.session

    def now(self) -> _dt.datetime:
        """The client's clock (aware UTC)."""
        return self._life.clock()


class Client(_ClientBase):
    """A synchronous GSTN taxpayer client (thread-safe; share one per GSTIN across threads).

    :param gsp: GSP id served by an installed plugin (``"cleartax"``, ``"vayana"`` …).
    :param environment: ``"sandbox"``, ``"production"`` or another environment the plugin declares.
    :param credentials: the ASP's :class:`~gspauth.types.Credentials` for this GSP, checked
        against the fields its plugin declares (``gspauth plugins --json``).
    :param gstin: the taxpayer's GSTIN (validated; ``state-cd`` is derived from it).
    :param username: the taxpayer's GST portal username.
    :param certificate: GSTN's certificate for the environment: a
        :class:`~gspauth.crypto.GSTNCertificate`, its bytes (DER/PEM), PEM text or a path. An
        expired certificate is refused with :class:`~gspauth.errors.CertificateExpired` unless
        ``allow_expired_certificate=True``.
    :param store: where sessions live (:class:`~gspauth.store.SessionStore`; default an
        in-memory store).
    :param otp_provider: where an OTP comes from when consent is needed
        (:class:`~gspauth.otp.OtpProvider`); without one, :class:`~gspauth.errors.OtpRequired`
        is raised instead.
    :param ledger: where session events are recorded (:class:`~gspauth.ledger.ConsentLedger`);
        default: the store's ledger (``ledger.db`` beside an SQLite store; the default ledger
        file for a memory store). Pass :data:`~gspauth.ledger.NO_LEDGER` to record nothing
        (another system keeps the audit trail).
    :param hooks: the plugin facade; default: the process-wide
        :func:`~gspauth.plugins.default_hooks`.
    :param hosts: host overrides for the default hooks (e.g. an emulator URL), see
        :class:`~gspauth.plugins.Hooks`.
    :param ip_usr: the end user's public IPv4 for the ``ip-usr`` header.
    :param margin: stop using a token this long before it expires (timedelta or seconds).
    :param auto_refresh: refresh automatically before use when the token is in the margin.
    :param retry: :class:`~gspauth.retry.RetryPolicy` for transient failures.
    :param clock: returns the current aware UTC time (tests pass a controlled clock).
    :param allow_expired_certificate: use a certificate outside its validity window.
    :param lock_timeout: seconds to wait for the session's single-flight lock (``None``: forever).
    :param auth_version: GSTN version of the authenticate API (default: the API's).
    :param transport: an httpx transport (tests: ``httpx.MockTransport(emulator.handle)``).
    :param timeout: httpx timeout for each request.
    :param http_client: use this :class:`httpx.Client` instead of creating one (not closed by us).
    """

    def __init__(
        self,
        gsp: str,
        environment: Environment,
        credentials: Credentials | None = None,
        *,
        gstin: str,
        username: str,
        certificate: CertificateSource,
        store: SessionStore | None = None,
        otp_provider: OtpProvider | None = None,
        ledger: ConsentLedger | None = None,
        hooks: Hooks | None = None,
        hosts: HostOverrides | None = None,
        ip_usr: str = _LOCALHOST_IP,
        margin: _dt.timedelta | float = DEFAULT_MARGIN,
        auto_refresh: bool = True,
        retry: RetryPolicy | None = None,
        clock: Callable[[], _dt.datetime] | None = None,
        allow_expired_certificate: bool = False,
        lock_timeout: float | None = 120.0,
        auth_version: str | None = None,
        transport: httpx.BaseTransport | None = None,
        timeout: float | httpx.Timeout = 30.0,
        http_client: httpx.Client | None = None,
    ) -> None:
        super().__init__(
            gsp, environment, credentials, gstin=gstin, username=username, certificate=certificate, store=store,
            otp_provider=otp_provider, ledger=ledger, hooks=hooks, hosts=hosts, ip_usr=ip_usr, margin=margin,
            auto_refresh=auto_refresh, retry=retry, clock=clock, allow_expired_certificate=allow_expired_certificate,
            lock_timeout=lock_timeout, auth_version=auth_version,
        )  # fmt: skip
        self._owns_http = http_client is None
        self._http = http_client or httpx.Client(transport=transport, timeout=timeout)
        self._thread_lock = threading.RLock()

    # -- the driver ----------------------------------------------------------------------------

    def _run(self, flow: Flow[_T]) -> _T:
        return drive(flow, self._perform)

    def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            response = self._http.send(effect.request, auth=self._auth if effect.signed else None)
            response.read()
            return response
        if isinstance(effect, Call):
            return effect.fn(*effect.args)
        if isinstance(effect, Sleep):
            time.sleep(effect.seconds)
            return None
        if isinstance(effect, Lock):
            return self._acquire()
        if isinstance(effect, Unlock):
            effect.handle.close()
            return None
        raise TypeError(f"unknown effect {effect!r}")  # pragma: no cover - programming error

    def _acquire(self) -> contextlib.ExitStack:
        # The thread lock first (cheap, in-process), then the store's cross-process lock.
        stack = contextlib.ExitStack()
        timeout = self._life.lock_timeout
        if not self._thread_lock.acquire(timeout=-1 if timeout is None else timeout):
            raise LockTimeout(f"waited {timeout}s for the session lock of {self.key.id}")
        stack.callback(self._thread_lock.release)
        try:
            stack.enter_context(self.store.lock(self.key, timeout))
        except BaseException:
            stack.close()
            raise
        return stack

    # -- public API ------------------------------------------------------------------------------

    def request_otp(self) -> PendingOtp:
        """Send OTPREQUEST (GSTN texts/e-mails an OTP to the taxpayer) and record it in the
        store as the pending request, which any process sharing the store can answer."""
        return self._run(self._life.request_otp())

    def pending_otp(self) -> PendingOtp | None:
        """The pending OTP request in the store (``None`` if none, or it lapsed)."""
        return self._run(self._life.pending_otp())

    def authenticate(self, otp: str | None = None, *, resend: bool = False) -> Session:
        """Exchange the taxpayer's OTP for a session (AUTHTOKEN) and store it.

        The OTP answers the pending request in the store (made by this or any other process);
        with ``otp=None`` the OTP provider is asked, after an OTPREQUEST if none is pending.

        :param otp: the OTP; ``None`` asks the OTP provider.
        :param resend: send a new OTPREQUEST even if one is pending (voids the pending OTP).
        :raises OtpRequired: when ``otp`` is ``None`` and no OTP is available now.
        :raises InvalidOtp: wrong or lapsed OTP; ``attempts_left`` says whether to re-enter it
            or request a new one, and so does the hint.
        :raises SessionLimitExceeded: AUTH403, too many sessions for this user with this GSP.
        """
        return self._run(self._life.authenticate(otp, resend=resend))

    def ensure_session(self) -> Session:
        """A session usable for at least ``margin``: reused, re-loaded, refreshed, or consented."""
        return self._run(self._life.ensure_session())

    def refresh(self) -> Session:
        """Refresh now (REFRESHTOKEN), whatever the token's remaining life.

        :raises OtpRequired: ``reason="refresh-refused"`` on AUTH4037 (the session is then
            marked non-refreshable), ``"expired"`` when GSTN no longer knows the token.
        """
        return self._run(self._life.refresh())

    def refresh_if_due(self, ahead: _dt.timedelta | float = 0.0) -> tuple[Session | None, bool]:
        """Refresh the stored session if it would enter its margin within ``ahead`` (a timedelta
        or seconds), single-flight with every process sharing the store; ``(session, refreshed)``.

        :raises OtpRequired: no session, or GSTN refused a refresh (now or earlier).
        """
        window = ahead if isinstance(ahead, _dt.timedelta) else _dt.timedelta(seconds=float(ahead))
        return self._run(self._life.refresh_if_due(window))

    def logout(self) -> bool:
        """End the session (LOGOUT) and delete it from the store. ``False`` if there was none."""
        return self._run(self._life.logout())

    def get(self, api: Api, path: str = "", *, action: str, ret_period: str | None = None,
            params: Mapping[str, object] | None = None, version: str | None = None, txn: str | None = None) -> Any:
        """A GET data call (download): returns the decrypted, HMAC-verified JSON.

        :param api: the API family (:class:`~gspauth.types.Api`), e.g. ``Api.RETURNS``.
        :param path: appended to the API path, e.g. ``"gstr1"``.
        :param action: the GSTN action (``"B2B"``, ``"RETSTATUS"`` …), sent as a query parameter.
        :param ret_period: ``MMYYYY``; sent as header and query parameter.
        :param params: further query parameters (``ctin``, ``trans_id`` …).
        :param version: the API version (default: the API family's).
        :param txn: idempotency key (default: a fresh one); retries re-send it.
        """
        return self._run(self._life.data("GET", Api(api), path, action, None, ret_period, params, version, txn))

    def put(self, api: Api, path: str = "", *, action: str, payload: Payload | SealedBody | None = None,
            ret_period: str | None = None, params: Mapping[str, object] | None = None, version: str | None = None,
            txn: str | None = None) -> Any:
        """A PUT data call (e.g. RETSAVE): ``payload`` (a mapping or list → compact JSON, or
        JSON ``bytes``) is encrypted. Pass a deterministic ``txn`` to make the call idempotent
        across restarts."""
        return self._run(self._life.data("PUT", Api(api), path, action, payload, ret_period, params, version, txn))

    def post(self, api: Api, path: str = "", *, action: str, payload: Payload | SealedBody | None = None,
             ret_period: str | None = None, params: Mapping[str, object] | None = None, version: str | None = None,
             txn: str | None = None) -> Any:
        """A POST data call (RETSUBMIT, RESET …); like :meth:`put`."""
        return self._run(self._life.data("POST", Api(api), path, action, payload, ret_period, params, version, txn))

    def request_evc_otp(self, pan: str, form_type: str = "R1") -> str:
        """EVCOTP: ask GSTN to send an EVC filing OTP to the signatory ``pan``. Returns the ``txn``."""
        return self._run(self._life.evc_otp(pan, form_type))

    def close(self) -> None:
        """Close the HTTP connection pool (the session stays in the store)."""
        if self._owns_http:
            self._http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class AsyncClient(_ClientBase):
    """The asyncio twin of :class:`Client` (same parameters; ``transport`` is an async transport).

    Safe to share between tasks of one event loop. Store, lock, ledger and OTP-provider calls
    (which may block) run in worker threads.
    """

    def __init__(
        self,
        gsp: str,
        environment: Environment,
        credentials: Credentials | None = None,
        *,
        gstin: str,
        username: str,
        certificate: CertificateSource,
        store: SessionStore | None = None,
        otp_provider: OtpProvider | None = None,
        ledger: ConsentLedger | None = None,
        hooks: Hooks | None = None,
        hosts: HostOverrides | None = None,
        ip_usr: str = _LOCALHOST_IP,
        margin: _dt.timedelta | float = DEFAULT_MARGIN,
        auto_refresh: bool = True,
        retry: RetryPolicy | None = None,
        clock: Callable[[], _dt.datetime] | None = None,
        allow_expired_certificate: bool = False,
        lock_timeout: float | None = 120.0,
        auth_version: str | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        timeout: float | httpx.Timeout = 30.0,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        super().__init__(
            gsp, environment, credentials, gstin=gstin, username=username, certificate=certificate, store=store,
            otp_provider=otp_provider, ledger=ledger, hooks=hooks, hosts=hosts, ip_usr=ip_usr, margin=margin,
            auto_refresh=auto_refresh, retry=retry, clock=clock, allow_expired_certificate=allow_expired_certificate,
            lock_timeout=lock_timeout, auth_version=auth_version,
        )  # fmt: skip
        self._owns_http = http_client is None
        self._http = http_client or httpx.AsyncClient(transport=transport, timeout=timeout)
        self._alock: asyncio.Lock | None = None

    # -- the driver ----------------------------------------------------------------------------

    async def _run(self, flow: Flow[_T]) -> _T:
        return await drive_async(flow, self._perform)

    async def _perform(self, effect: Effect) -> Any:
        if isinstance(effect, Send):
            response = await self._http.send(effect.request, auth=self._auth if effect.signed else None)
            await response.aread()
            return response
        if isinstance(effect, Call):
            return await asyncio.to_thread(effect.fn, *effect.args)
        if isinstance(effect, Sleep):
            await asyncio.sleep(effect.seconds)
            return None
        if isinstance(effect, Lock):
            return await self._acquire()
        if isinstance(effect, Unlock):
            await self._release(effect.handle)
            return None
        raise TypeError(f"unknown effect {effect!r}")  # pragma: no cover - programming error

    async def _acquire(self) -> tuple[concurrent.futures.ThreadPoolExecutor, contextlib.AbstractContextManager[None]]:
        if self._alock is None:
            self._alock = asyncio.Lock()
        await self._alock.acquire()
        # The store lock is thread-affine (an RLock + flock): enter and exit it on one
        # dedicated thread so the event loop never blocks on it.
        pool = concurrent.futures.ThreadPoolExecutor(max_workers=1, thread_name_prefix="gspauth-lock")
        cm = self.store.lock(self.key, self._life.lock_timeout)
        entering = pool.submit(cm.__enter__)
        try:
            await asyncio.wrap_future(entering)
        except BaseException:
            # Cancelled while the worker waits for the lock: it may still get it. Give it back on
            # that same worker as soon as it does, or it stays held for good.
            def undo(done: concurrent.futures.Future[Any]) -> None:
                if not done.cancelled() and done.exception() is None:
                    pool.submit(cm.__exit__, None, None, None)
                pool.shutdown(wait=False)

            entering.add_done_callback(undo)
            self._alock.release()
            raise
        return pool, cm

    async def _release(
        self, handle: tuple[concurrent.futures.ThreadPoolExecutor, contextlib.AbstractContextManager[None]]
    ) -> None:
        pool, cm = handle
        try:
            # shielded: a cancellation must not drop the queued release (the lock would stay held)
            await asyncio.shield(asyncio.wrap_future(pool.submit(cm.__exit__, None, None, None)))
        finally:
            pool.shutdown(wait=False)
            assert self._alock is not None
            self._alock.release()

    # -- public API ------------------------------------------------------------------------------

    async def request_otp(self) -> PendingOtp:
        """See :meth:`Client.request_otp`."""
        return await self._run(self._life.request_otp())

    async def pending_otp(self) -> PendingOtp | None:
        """See :meth:`Client.pending_otp`."""
        return await self._run(self._life.pending_otp())

    async def authenticate(self, otp: str | None = None, *, resend: bool = False) -> Session:
        """See :meth:`Client.authenticate`."""
        return await self._run(self._life.authenticate(otp, resend=resend))

    async def ensure_session(self) -> Session:
        """See :meth:`Client.ensure_session`."""
        return await self._run(self._life.ensure_session())

    async def refresh(self) -> Session:
        """See :meth:`Client.refresh`."""
        return await self._run(self._life.refresh())

    async def refresh_if_due(self, ahead: _dt.timedelta | float = 0.0) -> tuple[Session | None, bool]:
        """See :meth:`Client.refresh_if_due`."""
        window = ahead if isinstance(ahead, _dt.timedelta) else _dt.timedelta(seconds=float(ahead))
        return await self._run(self._life.refresh_if_due(window))

    async def logout(self) -> bool:
        """See :meth:`Client.logout`."""
        return await self._run(self._life.logout())

    async def get(self, api: Api, path: str = "", *, action: str, ret_period: str | None = None,
                  params: Mapping[str, object] | None = None, version: str | None = None,
                  txn: str | None = None) -> Any:
        """See :meth:`Client.get`."""
        return await self._run(self._life.data("GET", Api(api), path, action, None, ret_period, params, version,
                                               txn))

    async def put(self, api: Api, path: str = "", *, action: str, payload: Payload | SealedBody | None = None,
                  ret_period: str | None = None, params: Mapping[str, object] | None = None,
                  version: str | None = None, txn: str | None = None) -> Any:
        """See :meth:`Client.put`."""
        return await self._run(self._life.data("PUT", Api(api), path, action, payload, ret_period, params, version,
                                               txn))

    async def post(self, api: Api, path: str = "", *, action: str, payload: Payload | SealedBody | None = None,
                   ret_period: str | None = None, params: Mapping[str, object] | None = None,
                   version: str | None = None, txn: str | None = None) -> Any:
        """See :meth:`Client.post`."""
        return await self._run(self._life.data("POST", Api(api), path, action, payload, ret_period, params, version,
                                               txn))

    async def request_evc_otp(self, pan: str, form_type: str = "R1") -> str:
        """See :meth:`Client.request_evc_otp`."""
        return await self._run(self._life.evc_otp(pan, form_type))

    async def aclose(self) -> None:
        """Close the HTTP connection pool."""
        if self._owns_http:
            await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()
