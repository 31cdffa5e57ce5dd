"""Where gspauth keeps its files, and the small CLI config file.

Paths
-----
``$GSPAUTH_HOME`` if set, else ``$XDG_DATA_HOME/gspauth``, else
``~/.local/share/gspauth`` (``%LOCALAPPDATA%\\gspauth`` on Windows). Inside it:

* ``sessions.db`` — the default :class:`gspauth.store.SQLiteStore` (mode 0600),
* ``sessions.db.locks/`` — one lock file per session key,
* ``ledger.db`` — the consent ledger (:mod:`gspauth.ledger`),
* ``config.toml`` — the CLI configuration described below.

The directory is created with mode 0700.

``config.toml``
---------------
Read by ``gspauth login``, ``gspauth session`` and ``gspauth doctor``. Every
value can also come from a flag or an environment variable; the precedence is
*flag > environment > profile in config.toml > built-in default*::

    # $GSPAUTH_HOME/config.toml
    default_profile = "acme-mh"          # or pick one with --profile / GSPAUTH_PROFILE

    [profiles.acme-mh]
    gsp = "cleartax"                     # --gsp / GSPAUTH_GSP
    environment = "sandbox"              # --environment / GSPAUTH_ENVIRONMENT
    gstin = "27AAAAA0000A1Z5"            # --gstin / GSPAUTH_GSTIN
    username = "acme.mh"                 # --username / GSPAUTH_USERNAME
    ip_usr = "203.0.113.7"               # --ip-usr / GSPAUTH_IP_USR
    host = "https://api-sandbox.clear.in" # --host / GSPAUTH_HOST (optional override of the plugin's URL)
    certificate = "~/gstn/GSTN_G2B_SANDBOX_UAT_public.cer"   # --certificate / GSPAUTH_CERTIFICATE
    store = "~/.local/share/gspauth/sessions.db"              # --store / GSPAUTH_STORE (optional)

    [profiles.acme-mh.credentials]       # gspauth.types.Credentials: the names the GSP plugin declares
                                         # (`gspauth plugins --json`); env GSPAUTH_CRED_<NAME> overrides
    client_id = "…"
    client_secret_env = "ACME_CLIENT_SECRET"  # a *_env key names an env var holding the value

Credentials shared by every profile of one GSP (the session keeper uses them for all of that
GSP's stored sessions) go in a ``[credentials.<gsp>]`` table::

    [credentials.cleartax]
    gsp_token_env = "CLEARTAX_TOKEN"

Secrets should not be written into ``config.toml``: use ``<name>_env = "VAR"``
(read from the environment) or ``<name>_file = "path"`` (read from a file). The
file is refused if it is readable by group or others and holds a literal
``client_secret``/``password``/``token``.
"""

from __future__ import annotations

import os
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gspauth.errors import ConfigurationError

__all__ = [
    "Profile",
    "config_path",
    "ensure_private_dir",
    "gspauth_home",
    "load_config",
    "load_profile",
    "resolve_secrets",
]

_SECRET_NAMES = ("secret", "password", "token", "key")


def gspauth_home() -> Path:
    """The gspauth data directory (not created here)."""
    explicit = os.environ.get("GSPAUTH_HOME")
    if explicit:
        return Path(explicit).expanduser()
    if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
        return Path(base) / "gspauth"
    xdg = os.environ.get("XDG_DATA_HOME")
    if xdg:
        return Path(xdg).expanduser() / "gspauth"
    return Path.home() / ".local" / "share" / "gspauth"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` (and parents) with mode 0700 if absent; return it.

    An existing directory is left as it is, except that a directory we would have
    created ourselves (the gspauth home) is tightened to 0700 when others can write to it.
    """
    path = Path(path)
    if not path.exists():
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
        if os.name == "posix":
            os.chmod(path, 0o700)  # mkdir's mode is filtered by the umask
    return path


def config_path() -> Path:
    """``$GSPAUTH_CONFIG`` or ``<gspauth home>/config.toml``."""
    explicit = os.environ.get("GSPAUTH_CONFIG")
    return Path(explicit).expanduser() if explicit else gspauth_home() / "config.toml"


def load_config(path: Path | None = None) -> dict[str, Any]:
    """Parse the config file; ``{}`` when it does not exist."""
    if sys.version_info >= (3, 11):
        import tomllib
    else:  # pragma: no cover - Python 3.10
        try:
            import tomli as tomllib
        except ImportError:
            raise ConfigurationError("reading config.toml needs Python 3.11+ or the 'tomli' package") from None

    path = path or config_path()
    if not path.exists():
        return {}
    try:
        with open(path, "rb") as fh:
            data = tomllib.load(fh)
    except OSError as exc:
        raise ConfigurationError(f"cannot read gspauth config {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigurationError(f"gspauth config {path} is not valid TOML: {exc}") from None
    if os.name == "posix" and path.stat().st_mode & (stat.S_IRGRP | stat.S_IROTH) and _has_literal_secret(data):
        raise ConfigurationError(
            f"{path} holds a secret and is readable by other users; run `chmod 600 {path}` "
            "or move the secret to an environment variable (<name>_env = \"VAR\")"
        )
    return data


def _has_literal_secret(data: Any) -> bool:
    if isinstance(data, Mapping):
        for k, v in data.items():
            name = str(k).lower()
            if isinstance(v, str) and any(s in name for s in _SECRET_NAMES) and not name.endswith(("_env", "_file")):
                return True
            if _has_literal_secret(v):
                return True
    return False


@dataclass
class Profile:
    """One resolved CLI profile (see the module docstring)."""

    name: str | None = None
    gsp: str | None = None
    environment: str = "sandbox"
    gstin: str | None = None
    username: str | None = None
    ip_usr: str | None = None
    host: str | None = None
    certificate: str | None = None
    store: str | None = None
    credentials: dict[str, str] = field(default_factory=dict, repr=False)

    def require(self, *names: str) -> None:
        """Raise :class:`ConfigurationError` naming each missing setting and where to set it."""
        missing = [n for n in names if not getattr(self, n)]
        if missing:
            hints = ", ".join(f"--{n.replace('_', '-')} / GSPAUTH_{n.upper()}" for n in missing)
            raise ConfigurationError(
                f"missing setting(s) {', '.join(missing)}: pass {hints}, or add them to a profile in {config_path()}"
            )


def resolve_secrets(table: Mapping[str, Any], where: str) -> dict[str, str]:
    """A table's values, with ``<name>_env`` read from the environment and ``<name>_file`` from a file."""
    out: dict[str, str] = {}
    for k, v in table.items():
        if k.endswith("_env"):
            name = k[:-4]
            value = os.environ.get(str(v))
            if value is None:
                raise ConfigurationError(f"{where}: {k} names environment variable {v}, which is not set")
            out[name] = value
        elif k.endswith("_file"):
            name = k[:-5]
            try:
                out[name] = Path(str(v)).expanduser().read_text(encoding="utf-8").strip()
            except OSError as exc:
                raise ConfigurationError(f"{where}: cannot read {k} ({exc.strerror})") from None
        else:
            out[k] = str(v)
    return out


def load_profile(name: str | None = None, overrides: Mapping[str, Any] | None = None) -> Profile:
    """Resolve a profile: flags (``overrides``, ``None`` values ignored) > env > config file."""
    data = load_config()
    profiles = data.get("profiles", {}) or {}
    name = name or os.environ.get("GSPAUTH_PROFILE") or data.get("default_profile")
    table: dict[str, Any] = {}
    if name:
        if name not in profiles:
            known = ", ".join(sorted(profiles)) or "none"
            raise ConfigurationError(f"no profile {name!r} in {config_path()} (profiles: {known})")
        table = dict(profiles[name])
    creds = resolve_secrets(table.pop("credentials", {}) or {}, f"profile {name}")
    profile = Profile(name=name, credentials=creds)
    for attr in ("gsp", "environment", "gstin", "username", "ip_usr", "host", "certificate", "store"):
        value = table.get(attr)
        env = os.environ.get(f"GSPAUTH_{attr.upper()}")
        if env:
            value = env
        if overrides and overrides.get(attr) is not None:
            value = overrides[attr]
        if value is not None:
            setattr(profile, attr, str(value))
    return profile
