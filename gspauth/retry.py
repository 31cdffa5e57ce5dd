"""When to try a request again: :class:`RetryPolicy` (used by the clients and the filer).

Only transient failures are retried — HTTP 5xx, 429, dropped connections and timeouts,
TEC4001 / GEN5008, RETINPROGRESS — always **re-sending the same ``txn``**, so GSTN recognises
a replayed RETSAVE instead of filing it twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

from gspauth.errors import ConnectionLost, NetworkError, NetworkTimeout, Unreachable

__all__ = ["RetryPolicy", "network_error", "retry_after"]


@dataclass(frozen=True)
class RetryPolicy:
    """Retries of transient failures, always with the same ``txn``.

    :param attempts: total tries per call (1 = no retry).
    :param backoff: first delay in seconds; doubles each retry.
    :param cap: largest backoff delay in seconds.
    :param jitter: random fraction added/subtracted (0.5 → ±50 %), to spread retries.
    :param max_retry_after: a server's ``Retry-After`` (HTTP 429/503) is honoured in full up
        to this many seconds; asked to wait longer, the client gives up at once and raises
        the :class:`~gspauth.errors.RateLimited` / :class:`~gspauth.errors.ServerError`
        with ``retry_after`` set, so the caller can reschedule instead of burning attempts.
    """

    attempts: int = 4
    backoff: float = 0.5
    cap: float = 10.0
    jitter: float = 0.5
    max_retry_after: float = 120.0

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError("RetryPolicy.attempts must be at least 1")
        if min(self.backoff, self.cap, self.jitter, self.max_retry_after) < 0:
            raise ValueError("RetryPolicy delays and jitter must not be negative")

    def delay(self, retry: int, retry_after: float | None = None) -> float:
        """Seconds to wait before retry number ``retry`` (1-based); a ``retry_after`` wins as it is."""
        if retry_after is not None and retry_after >= 0:
            return float(retry_after)
        base = min(self.cap, self.backoff * (2 ** (retry - 1)))
        spread = base * self.jitter
        return float(max(0.0, min(self.cap, base + random.uniform(-spread, spread))))


def retry_after(response: httpx.Response | None) -> float | None:
    """The reply's ``Retry-After`` in seconds (delta-seconds form), or ``None``."""
    if response is None:
        return None
    value = response.headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None


def _host(request: httpx.Request | None) -> str | None:
    if request is None:
        return None
    url = request.url
    port = f":{url.port}" if url.port else ""
    return f"{url.scheme}://{url.host}{port}"


def network_error(exc: httpx.TransportError, *, gsp: str | None = None, attempts: int = 1) -> NetworkError:
    """The typed gspauth error for an httpx transport failure (raise it ``from exc``).

    Connect-stage failures (DNS, refused, TLS, proxy, connect timeout) become
    :class:`~gspauth.errors.Unreachable` — nothing was sent; read/write timeouts
    :class:`~gspauth.errors.NetworkTimeout`; a connection that broke mid-exchange
    :class:`~gspauth.errors.ConnectionLost`. Both of the latter may have been applied by the
    server: a retry must re-send the same ``txn``.
    """
    try:
        request: httpx.Request | None = exc.request
    except RuntimeError:  # httpx raises when the exception carries no request
        request = None
    host = _host(request)
    where = host or "the server"
    tries = f" after {attempts} attempt(s)" if attempts > 1 else ""
    if isinstance(exc, (httpx.ConnectError, httpx.ConnectTimeout, httpx.ProxyError, httpx.UnsupportedProtocol)):
        return Unreachable(
            f"could not connect to {where}{tries} ({type(exc).__name__})", host=host, gsp=gsp,
            hint="check the host (`gspauth doctor` tests it), DNS, proxy and TLS settings and the GSP's status; "
                 "nothing was sent, so running again is safe")
    if isinstance(exc, httpx.TimeoutException):
        return NetworkTimeout(
            f"no reply from {where} in time{tries} ({type(exc).__name__})", host=host, gsp=gsp,
            hint="GSTN or the GSP is slow or down; the request may have been applied: run again (a retry "
                 "re-sends the same txn, so nothing is filed twice) or raise the timeout")
    return ConnectionLost(
        f"the connection to {where} broke before the reply was complete{tries} ({type(exc).__name__})",
        host=host, gsp=gsp,
        hint="the request may have been applied: run again (a retry re-sends the same txn, so nothing is "
             "filed twice)")

