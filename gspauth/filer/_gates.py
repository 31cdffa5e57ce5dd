"""Flow control towards one GSP: a gate (concurrency, an optional request rate, and a pause
when the GSP answers 429 with ``Retry-After``) and a circuit breaker (stop hammering a host
that is down; probe it now and then; resume when it answers)."""

from __future__ import annotations

import asyncio
import time

__all__ = ["CircuitBreaker", "GspGate", "HostDown"]


class HostDown(Exception):
    """The breaker stayed open past the give-up time: the host is down."""


class GspGate:
    """At most ``concurrency`` requests at once, at most ``rate`` per second (``None``: no
    limit), and none while a ``Retry-After`` pause runs."""

    def __init__(self, concurrency: int, rate: float | None = None) -> None:
        self._slots = asyncio.Semaphore(concurrency)
        self._rate = rate
        self._next_start = 0.0
        self._paused_until = 0.0
        self._rate_lock = asyncio.Lock()

    def pause(self, seconds: float) -> None:
        """Send nothing to this GSP for ``seconds`` (a 429's ``Retry-After``)."""
        self._paused_until = max(self._paused_until, time.monotonic() + max(0.0, seconds))

    async def __aenter__(self) -> GspGate:
        await self._slots.acquire()
        try:
            while (wait := self._paused_until - time.monotonic()) > 0:
                await asyncio.sleep(wait)
            if self._rate:
                async with self._rate_lock:
                    now = time.monotonic()
                    start = max(now, self._next_start)
                    self._next_start = start + 1.0 / self._rate
                if start > now:
                    await asyncio.sleep(start - now)
        except BaseException:
            self._slots.release()
            raise
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._slots.release()


class CircuitBreaker:
    """Closed: requests flow. After ``threshold`` consecutive failures it opens for a cool-down
    (doubling to ``max_cooldown``); then one probe goes through (half-open): success closes it,
    failure opens it again. Requests wait while it is open; if it has been failing for
    ``give_up_after`` seconds, :meth:`wait` raises :class:`HostDown`."""

    def __init__(self, host: str, *, threshold: int = 5, cooldown: float = 5.0, max_cooldown: float = 300.0,
                 give_up_after: float = 1800.0) -> None:
        self.host = host
        self.threshold = threshold
        self.base_cooldown = cooldown
        self.max_cooldown = max_cooldown
        self.give_up_after = give_up_after
        self._failures = 0
        self._cooldown = cooldown
        self._open_until = 0.0
        self._failing_since: float | None = None
        self._probe = asyncio.Lock()
        self.opened = 0  # how often it opened (for reports and tests)

    @property
    def is_open(self) -> bool:
        return self._failures >= self.threshold

    async def wait(self) -> bool:
        """Wait until a request may go; ``True`` when it goes as the half-open probe.

        :raises HostDown: the host has been failing for longer than ``give_up_after``.
        """
        while self.is_open:
            if self._failing_since is not None and time.monotonic() - self._failing_since > self.give_up_after:
                raise HostDown(self.host)
            wait = self._open_until - time.monotonic()
            if wait > 0:
                await asyncio.sleep(min(wait, 1.0))
                continue
            if not self._probe.locked():
                await self._probe.acquire()
                if self.is_open:
                    return True  # the probe: the caller reports success/failure, which releases it
                self._probe.release()
                return False
            await asyncio.sleep(0.05)
        return False

    def success(self, probe: bool) -> None:
        self._failures = 0
        self._cooldown = self.base_cooldown
        self._failing_since = None
        if probe and self._probe.locked():
            self._probe.release()

    def failure(self, probe: bool) -> None:
        self._failures += 1
        if self._failing_since is None:
            self._failing_since = time.monotonic()
        if self._failures >= self.threshold:
            if self._failures == self.threshold or probe:
                self.opened += 1
                self._open_until = time.monotonic() + self._cooldown
                self._cooldown = min(self.max_cooldown, self._cooldown * 2)
        if probe and self._probe.locked():
            self._probe.release()
