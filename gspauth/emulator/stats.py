"""Counters the emulator keeps about what it served (``GET /_emulator/stats``)."""

from __future__ import annotations

import threading
import time
from collections import Counter, defaultdict
from typing import Any

__all__ = ["Stats"]


class Stats:
    """Requests per layer, actions (overall and per layer), error codes, HTTP status, faults, events.

    ``process_cpu_seconds`` in the snapshot is the CPU time of the whole process: for a
    server run as its own process (``gspauth emulator serve``) that is the emulator's cost,
    which load tests divide by the requests served.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        with self._lock:
            self.layers: Counter[str] = Counter()
            self.actions: Counter[str] = Counter()
            self.layer_actions: dict[str, Counter[str]] = defaultdict(Counter)
            self.codes: Counter[str] = Counter()
            self.status: Counter[str] = Counter()
            self.faults: Counter[str] = Counter()
            self.events: Counter[str] = Counter()

    def bump(self, counter: Counter[str], key: str) -> None:
        with self._lock:
            counter[key] += 1

    def count(self, counter: Counter[str], key: str, n: int) -> None:
        with self._lock:
            counter[key] += n

    def action(self, layer: str, action: str) -> None:
        with self._lock:
            self.actions[action] += 1
            self.layer_actions[layer][action] += 1

    def answered(self, status: int, code: str | None) -> None:
        with self._lock:
            self.status[str(status)] += 1
            if code:
                self.codes[code] += 1

    def snapshot(self) -> dict[str, Any]:
        with self._lock:
            return {
                "requests": dict(self.layers), "actions": dict(self.actions),
                "by_layer": {k: dict(v) for k, v in self.layer_actions.items()},
                "error_codes": dict(self.codes), "http_status": dict(self.status),
                "faults": dict(self.faults), "events": dict(self.events),
                "process_cpu_seconds": time.process_time(),
            }  # fmt: skip
