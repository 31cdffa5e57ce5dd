"""The emulator's registries and run-time knobs: taxpayers, Vayana ASPs, ClearTax tokens,
the portal's Manage API Access, configuration and faults (Python API of ``/_emulator``)."""

from __future__ import annotations

import dataclasses
import datetime as _dt
from typing import Any

from cryptography.hazmat.primitives.asymmetric import rsa

from gspauth.emulator.base import EmulatorBase
from gspauth.emulator.config import EmulatorConfig, FaultConfig
from gspauth.emulator.gsp import VayanaAsp, load_public_key
from gspauth.emulator.model import Taxpayer
from gspauth.gstin import validate_gstin

__all__ = ["RegistryActions"]

_FIXED_CONFIG = frozenset({"seed", "state_dir", "clock_start", "clock_frozen", "faults", "gstn_clients",
                           "cleartax_tokens", "vayana_signature_hashes", "cancelled_gstins",
                           "unregistered_gstins"})  # fmt: skip


class RegistryActions(EmulatorBase):
    """Registries (taxpayers, GSTINs, applications, Vayana ASPs), the portal view and run-time knobs."""

    # -------------------------------------------------------------- registries --
    def register_taxpayer(
        self,
        gstin: str,
        username: str,
        *,
        state_code: str | None = None,
        api_access: bool = True,
        access_duration: _dt.timedelta = _dt.timedelta(days=30),
        mobile: str = "+919800000000",
        email: str = "taxpayer@example.invalid",
    ) -> Taxpayer:
        """Add (or replace) a taxpayer. ``state_code`` is the GSTIN's first two digits (checked if given).

        :raises InvalidGSTIN: bad GSTIN (format or check character).
        :raises ValueError: duration not a whole number of hours from 6 h to 30 days, empty or
            taken username, state code not the GSTIN's.
        """
        gstin = validate_gstin(gstin)
        hours = access_duration.total_seconds() / 3600
        if not 6 <= hours <= 720 or hours != int(hours):
            raise ValueError("access_duration must be a whole number of hours from 6 hours to 30 days")
        if not username or not isinstance(username, str):
            raise ValueError("username must be a non-empty string")
        if state_code is not None and state_code != gstin[:2]:
            raise ValueError(f"state_code {state_code!r} is not the state code of {gstin} ({gstin[:2]!r})")
        if not isinstance(api_access, bool):
            raise ValueError("api_access must be true or false")
        tp = Taxpayer(gstin, username, gstin[:2], api_access, int(hours), mobile, email)
        with self._lock:
            other = self._by_username.get(username.lower())
            if other is not None and other != gstin:
                raise ValueError(f"username {username!r} already belongs to {other}")
            old = self._taxpayers.get(gstin)
            if old is not None:
                self._by_username.pop(old.username.lower(), None)
            self._taxpayers[gstin] = tp
            self._by_username[username.lower()] = gstin
            self._store.put_taxpayer(gstin, username, tp.to_json())
        return tp

    def taxpayers(self) -> list[Taxpayer]:
        with self._lock:
            return list(self._taxpayers.values())

    def taxpayer(self, gstin: str) -> Taxpayer:
        with self._lock:
            return self._taxpayers[gstin]

    def register_vayana_asp(
        self,
        public_key: rsa.RSAPublicKey | str | bytes | None,
        *,
        clientid: str,
        client_secret: str,
        cust_id: str | None = None,
        client_id: str | None = None,
        name: str = "ASP",
    ) -> VayanaAsp:
        """Register (or replace) a Vayana ASP and its signature public key (PEM key/cert or key object).

        Nothing is filled in from the demo ASP: a new ASP has exactly the identities it is
        given, so a token naming the demo customer is refused for it (VAY-4017). The demo
        ASP itself is registered at start with :mod:`~gspauth.emulator.defaults` values.

        :raises ValueError: ``clientid`` or ``client_secret`` empty, neither ``cust_id`` nor
            ``client_id`` given, or a key that is not RSA.
        """
        for label, value in (("clientid", clientid), ("client_secret", client_secret)):
            if not isinstance(value, str) or not value:
                raise ValueError(f"a Vayana ASP needs a non-empty {label}")
        if public_key is not None and not isinstance(public_key, rsa.RSAPublicKey):
            public_key = load_public_key(public_key)
        if not cust_id and not client_id:
            raise ValueError("a Vayana ASP needs a cust_id or a client_id")
        asp = VayanaAsp(clientid, client_secret, cust_id or None, client_id or None, name, public_key)
        self._put_asp(asp)
        return asp

    def _put_asp(self, asp: VayanaAsp) -> None:
        with self._lock:
            self._asps[asp.clientid] = asp
            self._store.put_asp(asp.clientid, asp.to_json())

    def vayana_asps(self) -> list[dict[str, Any]]:
        with self._lock:
            return [a.public_view() for a in self._asps.values()]

    def add_cleartax_token(self, token: str, application: str = "ASP") -> None:
        with self._lock:
            self.config.cleartax_tokens[token] = application

    # ------------------------------------------------------------ run-time knobs --
    def update_config(self, **values: Any) -> EmulatorConfig:
        """Change scalar settings at run time (strictness toggles, lifetimes, policies)."""
        allowed = {f.name for f in dataclasses.fields(self.config)}
        for name, value in values.items():
            if name not in allowed or name in _FIXED_CONFIG:
                raise ValueError(f"{name!r} cannot be changed at run time")
            current = getattr(self.config, name)
            if isinstance(current, bool) != isinstance(value, bool) or (
                isinstance(current, (int, float)) and not isinstance(value, (int, float))
            ) or (isinstance(current, str) and not isinstance(value, str)):
                raise ValueError(f"{name} must be of type {type(current).__name__}")
        with self._lock:
            new = dataclasses.replace(self.config, **values)
            new.validate()
            self.config = new
        return new

    @property
    def faults(self) -> FaultConfig:
        return self.config.faults

    def set_faults(self, **values: Any) -> FaultConfig:
        """Change fault settings (unknown names: ``ValueError``); ``actions`` may be any sequence."""
        known = {f.name for f in dataclasses.fields(FaultConfig)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ValueError(f"unknown fault setting(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
        if isinstance(values.get("actions"), (list, tuple)):
            values["actions"] = tuple(values["actions"])
        new = dataclasses.replace(self.config.faults, **values)
        new.validate()
        self.config.faults = new
        return new

    # ------------------------------------------------------------------ portal --
    def set_api_access(self, gstin: str, enabled: bool, duration_hours: int | None = None) -> Taxpayer:
        """Portal "Manage API Access". Disabling ends every session of the GSTIN (later calls: AUTH4033).

        A new duration also applies to running sessions (their refresh window is recomputed).
        """
        if duration_hours is not None and not (
            isinstance(duration_hours, int) and not isinstance(duration_hours, bool) and 6 <= duration_hours <= 720
        ):
            raise ValueError("duration_hours must be an integer from 6 to 720")
        with self._lock:
            tp = self._taxpayers[gstin]
            tp.api_access = bool(enabled)
            if duration_hours is not None:
                tp.access_duration_hours = duration_hours
            self._store.put_taxpayer(gstin, tp.username, tp.to_json())
            for s in [s for s in self._sessions.values() if s.gstin == gstin]:
                if not enabled:
                    self._kill(s, "API access was disabled by the taxpayer on the GST portal")
                elif duration_hours is not None:
                    s.access_expires_at = s.started_at + duration_hours * 3600
                    self._store.put_session(s.session_id, s.to_json())
        return tp

    def sessions_of(self, gstin: str) -> list[dict[str, Any]]:
        with self._lock:
            if gstin not in self._taxpayers:
                raise KeyError(gstin)
            return [s.public_view() for s in self._sessions.values() if s.gstin == gstin]

    def revoke_session(self, gstin: str, session_id: str) -> dict[str, Any]:
        with self._lock:
            s = self._sessions_by_id.get(session_id)
            if s is None or s.gstin != gstin:
                raise KeyError(session_id)
            view = s.public_view()
            self._kill(s, "session revoked by the taxpayer on the GST portal")
        self._stats.bump(self._stats.events, "portal_revoke")
        return view

