"""Injected faults: which request gets which (from a seeded RNG), and the replies they give.

A :class:`FaultPlan` is drawn per GSP/GSTN request (never for ``/_emulator``) before the
request is processed, so the ASGI adapter can wait out a delay on the event loop and the
in-process :meth:`Emulator.handle <gspauth.emulator.Emulator.handle>` can sleep it. Kinds:

* ``delay`` (``latency_ms`` ± ``latency_jitter_ms`` on every request, plus ``slow_ms`` on a
  ``slow_rate`` share of them): a client timeout shorter than ``slow_ms`` trips, while the
  emulator still processes the request afterwards, as a slow real server would;
* ``drop_before`` (``drop_rate``): the connection closes before any processing;
* ``status`` (``error_5xx_rate`` → TEC4001 with ``error_5xx_status``; ``rate_429`` → ``EMU429``
  with ``Retry-After``): an error reply instead of processing;
* ``drop_after`` (``drop_after_rate``): the request is processed (a RETSAVE is stored) and
  then the connection closes unanswered; a retry with the same ``txn`` gets the first
  ``reference_id``.

``FaultConfig.actions`` limits faults (delays included) to requests whose action is listed.
"""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from gspauth.emulator._http import Response, gstn_error, json_response
from gspauth.emulator.config import FaultConfig

__all__ = ["NO_FAULTS", "FaultPlan", "draw_plan", "status_reply"]


@dataclass(frozen=True, slots=True)
class FaultPlan:
    """The faults one request gets (the default: none)."""

    delay: float = 0.0  # seconds to wait before processing
    slow: bool = False  # the delay includes ``slow_ms``
    drop_before: bool = False
    status: int | None = None  # 5xx or 429: answer this instead of processing
    drop_after: bool = False


#: The plan of a request that gets no fault.
NO_FAULTS = FaultPlan()


def draw_plan(f: FaultConfig, action: str | None, rng: random.Random, lock: threading.Lock) -> FaultPlan:
    """Draw the faults of one request whose GSTN action is ``action``."""
    if f.actions and action not in f.actions:
        return NO_FAULTS
    rated = f.drop_rate or f.error_5xx_rate or f.rate_429 or f.drop_after_rate or f.slow_rate
    if not (rated or f.latency_ms or f.latency_jitter_ms):
        return NO_FAULTS
    with lock:  # draw order kept from the first version: drop, 5xx, 429, then the newer kinds
        draws = [rng.random() for _ in range(5)] if rated else [1.0] * 5
        jitter = rng.uniform(0, f.latency_jitter_ms) if f.latency_jitter_ms else 0.0
    r_drop, r_5xx, r_429, r_after, r_slow = draws
    slow = r_slow < f.slow_rate
    delay = (f.latency_ms + jitter + (f.slow_ms if slow else 0.0)) / 1000
    status = f.error_5xx_status if r_5xx < f.error_5xx_rate else (429 if r_429 < f.rate_429 else None)
    return FaultPlan(delay, slow, r_drop < f.drop_rate, status, r_after < f.drop_after_rate)


def status_reply(f: FaultConfig, status: int) -> Response:
    """The reply of an injected 5xx (GSTN's TEC4001) or 429 (``EMU429``, with ``Retry-After``)."""
    if status == 429:
        body = {"status_cd": "0", "error": {"error_cd": "EMU429", "message": "Too Many Requests (injected fault)"}}
        return json_response(429, body, {"retry-after": str(f.retry_after_seconds)})
    return gstn_error("TEC4001", "injected fault", status=status).response
