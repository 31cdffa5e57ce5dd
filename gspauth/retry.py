"""When to try a request again: :class:`RetryPolicy` (used by the clients and the filer).

Only transient failures are retried — HTTP 5xx, 429, dropped connections and timeouts,
TEC4001 / GEN5008, RETINPROGRESS — always **re-sending the same ``txn``**, so GSTN recognises
a replayed RETSAVE instead of filing it twice.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

import httpx

__all__ = ["RetryPolicy", "retry_after"]


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
