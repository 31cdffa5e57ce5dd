"""The emulator's SMS/e-mail stand-in: OTPs and consent notifications.

Readable in Python (:class:`Outbox`), over HTTP (``/_emulator/outbox/...``) and, with a
state directory, as JSON-lines files (mode 0600) that a restarted emulator reads back.
"""

from __future__ import annotations

import json
import os
import threading
from typing import Any

__all__ = ["OTP_FILE", "Outbox"]

#: The OTP outbox file in the state directory (JSON lines, mode 0600).
OTP_FILE = "outbox-otp.jsonl"
_NOTIFICATION_FILE = "outbox-notifications.jsonl"


def _read_jsonl(path: str | None) -> list[dict[str, Any]]:
    if path is None or not os.path.exists(path):
        return []
    out = []
    with open(path, encoding="utf-8") as fh:
        for line in fh:
            line = line.strip()
            if line:
                try:
                    entry = json.loads(line)
                except ValueError:
                    continue  # a line cut short by a crash
                if isinstance(entry, dict):
                    out.append(entry)
    return out


class Outbox:
    """OTPs (purpose ``auth`` or ``evc``) and consent notifications, oldest first."""

    def __init__(self, state_dir: str | None) -> None:
        self._lock = threading.Lock()
        self._otp_file = os.path.join(state_dir, OTP_FILE) if state_dir else None
        self._note_file = os.path.join(state_dir, _NOTIFICATION_FILE) if state_dir else None
        self._otps: list[dict[str, Any]] = _read_jsonl(self._otp_file)
        self._notes: list[dict[str, Any]] = _read_jsonl(self._note_file)

    def __repr__(self) -> str:
        return f"<Outbox {len(self._otps)} OTPs, {len(self._notes)} notifications>"

    @staticmethod
    def _append(path: str | None, entry: dict[str, Any]) -> None:
        if path is None:
            return
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry) + "\n")

    def add_otp(self, entry: dict[str, Any]) -> None:
        with self._lock:
            self._otps.append(entry)
            self._append(self._otp_file, entry)

    def add_notification(self, entry: dict[str, Any]) -> None:
        with self._lock:
            entry = {"id": len(self._notes) + 1, **entry}
            self._notes.append(entry)
            self._append(self._note_file, entry)

    def otps(self, gstin: str | None = None, purpose: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._otps
                    if (gstin is None or e.get("gstin") == gstin) and (purpose is None or e.get("purpose") == purpose)]

    def latest_otp(self, gstin: str, purpose: str = "auth") -> str | None:
        """The most recent OTP sent for ``gstin`` (``purpose`` "auth" or "evc"), or ``None``."""
        found = self.otps(gstin, purpose)
        return str(found[-1]["otp"]) if found else None

    def notifications(self, gstin: str | None = None) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(e) for e in self._notes if gstin is None or e.get("gstin") == gstin]
