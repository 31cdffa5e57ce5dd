"""``gspauth doctor``: check the installation and the configured GSP connection.

Each check reports ``ok``, ``warn`` or ``fail`` with a one-line hint. The exit status is 1
when any check fails. Checks: versions; which crypto backend loaded and why; installed
plugins; the session-store key and file; the configured GSTIN and its ``state-cd``
(AUTH4041); the GSTN certificate's validity and upcoming rotation (TEC4002); stored
sessions that need a new OTP (AUTH4037); and, unless ``--offline``, reachability of the
configured endpoint and the clock skew against the server's ``Date`` header.
"""

from __future__ import annotations

import argparse
import datetime as _dt
import email.utils
import json
import os
import platform
import stat
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from gspauth.cli._common import add_target_arguments, profile_from_args

__all__ = ["register"]

_SYMBOL = {"ok": "ok", "warn": "WARN", "fail": "FAIL"}


@dataclass
class _Check:
    name: str
    status: str  # "ok" | "warn" | "fail"
    detail: str
    hint: str | None = None


def _version(dist: str) -> str:
    import importlib.metadata

    try:
        return importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
        return "not installed"


def _check_versions() -> _Check:
    from gspauth import __version__

    parts = [f"gspauth {__version__}", f"Python {platform.python_version()}"]
    parts += [f"{d} {_version(d)}" for d in ("cryptography", "httpx", "pluggy")]
    return _Check("versions", "ok", ", ".join(parts))


def _check_backend() -> _Check:
    try:
        from gspauth import crypto
    except Exception as exc:  # noqa: BLE001 - e.g. BackendUnavailable
        return _Check("crypto backend", "fail", str(exc), "unset GSPAUTH_BACKEND or build the extension")
    if crypto.BACKEND == "native":
        return _Check("crypto backend", "ok", f"native (Rust): {crypto.BACKEND_REASON}")
    return _Check(
        "crypto backend", "warn", f"python (reference): {crypto.BACKEND_REASON}",
        "correct but slower on large batches; install a wheel with the Rust core or run `maturin develop --release`",
    )


def _check_plugins(pm: Any) -> tuple[_Check, Any]:
    from gspauth.plugins import Hooks, list_plugins

    try:
        plugins = list_plugins(pm)
        hooks = Hooks(pm, config=False)
    except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the other checks
        return _Check("plugins", "fail", f"{type(exc).__name__}: {exc}",
                      "check GSPAUTH_PLUGINS / uninstall the broken plugin"), None
    external = [p for p in plugins if not p.builtin]
    desc = ", ".join(
        f"{p.name} {p.version or ''} [{', '.join(g.id for g in p.gsps) or 'no GSPs'}]".replace("  ", " ")
        for p in plugins
    )
    if not external:
        return _Check("plugins", "warn", desc or "none",
                      "install a GSP plugin, e.g. `pip install gspauth-cleartax`"), hooks
    return _Check("plugins", "ok", desc), hooks


def _check_store_key() -> _Check:
    from gspauth.store import store_key_source

    try:
        source = store_key_source()
    except Exception as exc:  # noqa: BLE001 - a malformed key is reported, not raised
        return _Check("store key", "fail", str(exc), "fix or unset the store key setting named above")
    if source is None:
        return _Check(
            "store key", "warn", "no key: sessions cannot be saved",
            "export GSPAUTH_STORE_KEY="
            "$(python -c 'import base64,os;print(base64.b64encode(os.urandom(32)).decode())'), "
            "or set GSPAUTH_STORE_KEY_FILE, or `pip install gspauth[keyring]`",
        )
    return _Check("store key", "ok", f"present ({source})")


def _check_store(profile: Any) -> list[_Check]:
    from gspauth.errors import StoreKeyMismatch
    from gspauth.store import SQLiteStore, default_store_path, store_key_source

    path = Path(profile.store).expanduser() if profile.store else default_store_path()
    if not path.exists():
        return [_Check("session store", "ok", f"{path} (not created yet)")]
    out = []
    mode = stat.S_IMODE(path.stat().st_mode)
    if os.name == "posix" and mode & 0o077:
        out.append(_Check("session store", "fail", f"{path} has mode {mode:o}", f"chmod 600 {path}"))
    store = SQLiteStore(path)
    items = store.list()
    now = _dt.datetime.now(_dt.timezone.utc)
    expired = sum(1 for s in items if s.effective_expires_at <= now)
    stuck = [s for s in items if not s.refreshable]
    out.append(_Check("session store", "ok",
                      f"{path}: {len(items)} session(s), {expired} expired, schema v{store.schema_version}"))
    if stuck:
        ids = ", ".join(s.key.gstin for s in stuck[:5])
        out.append(_Check(
            "refresh", "warn", f"{len(stuck)} session(s) cannot be refreshed: {ids}",
            "GSTN answered AUTH4037: on the GST portal (My Profile → Manage API Access) enable API access "
            "with a duration longer than 6 hours (up to 30 days), then `gspauth login` again",
        ))
    if store_key_source() is not None and items:
        try:
            store.sealer()  # verifies the key-check value, decrypts nothing
        except StoreKeyMismatch as exc:
            out.append(_Check("store key match", "fail", str(exc),
                             "set GSPAUTH_STORE_KEY to the key this store was written with"))
        else:
            out.append(_Check("store key match", "ok", "the key opens this store"))
    store.close()
    return out


def _check_gstin(profile: Any) -> list[_Check]:
    from gspauth.gstin import STATE_CODES, validate_gstin

    if not profile.gstin:
        return [_Check("gstin", "warn", "no GSTIN configured", "pass --gstin or set it in a config profile")]
    try:
        gstin = validate_gstin(profile.gstin)
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
        return [_Check("gstin", "fail", str(exc), "fix the GSTIN in your configuration")]
    code = gstin[:2]
    out = [_Check("gstin", "ok", f"{gstin} is well-formed (check character valid)")]
    wanted = os.environ.get("GSPAUTH_STATE_CD") or getattr(profile, "state_cd", None)
    if wanted and wanted != code:
        out.append(_Check(
            "state-cd", "fail",
            f"configured state-cd {wanted} but GSTIN {gstin} is registered in {code} ({STATE_CODES[code]})",
            "GSTN rejects this with AUTH4041; remove the explicit state code (gspauth derives it from the GSTIN)",
        ))
    else:
        out.append(_Check("state-cd", "ok", f"{code} ({STATE_CODES[code]}), derived from the GSTIN"))
    return out


def _check_certificate(profile: Any, root: str | None) -> list[_Check]:
    from gspauth.crypto import load_certificate

    if not profile.certificate:
        return [_Check("gstn certificate", "warn", "none configured",
                      "download GSTN's public certificate for your environment and pass --certificate")]
    path = Path(profile.certificate).expanduser()
    try:
        cert = load_certificate(path.read_bytes())
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
        return [_Check("gstn certificate", "fail", f"{path}: {exc}", "download a fresh copy of GSTN's certificate")]
    now = _dt.datetime.now(_dt.timezone.utc)
    out = []
    if cert.not_valid_after is None:
        out.append(_Check("gstn certificate", "ok",
                          f"bare public key {cert.fingerprint_sha256[:16]}… (no validity dates)"))
    elif not cert.is_valid_at(now):
        out.append(_Check(
            "gstn certificate", "fail",
            f"{path.name} valid {cert.not_valid_before:%Y-%m-%d} to {cert.not_valid_after:%Y-%m-%d}: not now",
            "GSTN rotates its key yearly; a stale certificate makes GSTN answer TEC4002 'Invalid Data Format'. "
            "Download the current one",
        ))
    else:
        days = (cert.not_valid_after - now).days
        status = "warn" if days < 30 else "ok"
        out.append(_Check(
            "gstn certificate", status, f"{path.name} valid until {cert.not_valid_after:%Y-%m-%d} ({days} days), "
            f"sha256 {cert.fingerprint_sha256[:16]}…",
            ("rotation is near: fetch GSTN's new certificate and keep both until the switch"
             if status == "warn" else None),
        ))
    if root is not None:  # an emulator publishes its current certificate: compare
        import httpx

        try:
            r = httpx.get(f"{root}/_emulator/certificate.pem", timeout=5.0)
            if r.status_code == 200:
                served = load_certificate(r.content)
                if served.fingerprint_sha256 != cert.fingerprint_sha256:
                    out.append(_Check("certificate rotation", "warn",
                                      "the server now publishes a different certificate",
                                      f"download {root}/_emulator/certificate.pem"))
                else:
                    out.append(_Check("certificate rotation", "ok", "matches the certificate the server publishes"))
        except httpx.HTTPError:
            pass
    return out


def _check_endpoint(profile: Any, hooks: Any) -> list[_Check]:
    import httpx

    from gspauth.types import Api

    if hooks is None or not profile.gsp:
        return [_Check("endpoint", "warn", "no GSP configured",
                       "pass --gsp (and --gstin, --username) or use a profile")]
    try:
        if profile.host:
            from gspauth.plugins import Hooks

            hooks = Hooks(hooks.pm, hosts={(profile.gsp, profile.environment): profile.host}, config=False)
        url = hooks.endpoint_url(profile.gsp, Api.AUTH, profile.environment)
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
        return [_Check("endpoint", "fail", str(exc), "check --gsp, --environment and --host")]
    # POST an empty JSON object to the authenticate path, with no credentials: a GSP that serves
    # the path refuses it (HTTP 4xx with its own or GSTN's error), one that does not answers 404.
    # A GET would not do: some servers answer any GET (or none) the same way.
    start = time.monotonic()
    try:
        r = httpx.post(url, json={}, headers={"accept": "application/json"}, timeout=5.0)
    except httpx.HTTPError as exc:
        return [_Check("endpoint", "fail", f"{url} unreachable: {type(exc).__name__}",
                      "check network/proxy settings, the GSP host (--host) and that the GSP is up")]
    ms = (time.monotonic() - start) * 1000
    if r.status_code == 404:
        out = [_Check("endpoint", "fail", f"{url} answers HTTP 404 ({ms:.0f} ms): nothing is served at that path",
                     "the host or its path prefix is wrong for this GSP: check --host (or GSPAUTH_<GSP>_<ENV>_HOST) "
                     "and the plugin's documentation")]
    elif r.status_code >= 500:
        out = [_Check("endpoint", "warn", f"{url} answers HTTP {r.status_code} ({ms:.0f} ms)",
                     "the GSP or GSTN behind it is failing (outage?): calls will be retried with backoff; "
                     "check the GSP's status page and try again later")]
    else:
        out = [_Check("endpoint", "ok", f"{url} serves the authenticate API (HTTP {r.status_code} to an empty "
                                       f"request, {ms:.0f} ms; credentials not sent)")]
    date = r.headers.get("date")
    if date:
        try:
            server = email.utils.parsedate_to_datetime(date)
        except (TypeError, ValueError):
            server = None
        if server is not None:
            skew = (server - _dt.datetime.now(_dt.timezone.utc)).total_seconds()
            status = "ok" if abs(skew) < 120 else "warn" if abs(skew) < 900 else "fail"
            out.append(_Check(
                "clock skew", status, f"{skew:+.0f} s against the server's Date header",
                None if status == "ok" else "sync the clock (NTP): signed GSP headers carry timestamps checked "
                "within minutes, and token expiry is computed locally",
            ))
    else:
        out.append(_Check("clock skew", "warn", "server sent no Date header; skew not measured",
                         "make sure the clock is NTP-synchronised (`timedatectl` / `chronyc tracking`)"))
    return out


def _run_checks(args: argparse.Namespace) -> list[_Check]:
    """All checks for the target in ``args`` (never raises for a failed check)."""
    from gspauth.plugins import get_plugin_manager

    checks = [_check_versions(), _check_backend()]
    try:
        pm = get_plugin_manager()
        plugin_check, hooks = _check_plugins(pm)
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
        plugin_check, hooks = _Check("plugins", "fail", f"{type(exc).__name__}: {exc}",
                                    "uninstall or fix the plugin named above"), None
    checks.append(plugin_check)
    try:
        profile = profile_from_args(args)
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
        checks.append(_Check("config", "fail", str(exc), "fix config.toml (see `python -m pydoc gspauth.config`)"))
        return checks
    from gspauth.config import config_path

    cfg = config_path()
    if cfg.exists():
        checks.append(_Check("config", "ok", f"{cfg}" + (f", profile {profile.name}" if profile.name else "")))
    elif profile.gsp:
        checks.append(_Check("config", "ok", f"no config file ({cfg}); using flags and environment"))
    else:
        checks.append(_Check(
            "config", "warn", f"nothing configured: no {cfg}, no --gsp/GSPAUTH_GSP",
            f"create {cfg} with a [profiles.NAME] table (gsp, gstin, username, certificate; secrets as *_env) — "
            "see `python -m pydoc gspauth.config` — or pass --gsp --gstin --username --certificate",
        ))
    if profile.gsp and hooks is not None:
        try:
            info = hooks.gsp(profile.gsp)
            if profile.environment not in info.environments:
                checks.append(_Check("gsp", "fail", f"{profile.gsp} has no environment {profile.environment!r}",
                                    f"use one of: {', '.join(info.environments)}"))
            else:
                checks.append(_Check("gsp", "ok", f"{profile.gsp} ({info.name}), environment {profile.environment}"))
        except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
            checks.append(_Check("gsp", "fail", str(exc),
                                "install the GSP's plugin or pick an installed GSP id (`gspauth plugins`)"))
    checks.append(_check_store_key())
    try:
        checks += _check_store(profile)
    except Exception as exc:  # noqa: BLE001 - whatever goes wrong is this check's finding
        checks.append(_Check("session store", "fail", f"{type(exc).__name__}: {exc}",
                            "check the --store path and its permissions; a damaged store can be moved aside "
                            "(every taxpayer then needs a new OTP)"))
    checks += _check_gstin(profile)
    root = None
    if profile.host and not args.offline:
        from urllib.parse import urlsplit

        from gspauth.types import is_loopback_host

        parts = urlsplit(profile.host)
        if is_loopback_host(parts.hostname):
            root = f"{parts.scheme}://{parts.netloc}"
    checks += _check_certificate(profile, root)
    if not args.offline:
        checks += _check_endpoint(profile, hooks)
    return checks


def _run(args: argparse.Namespace) -> int:
    checks = _run_checks(args)
    failed = any(c.status == "fail" for c in checks)
    if args.json:
        print(json.dumps({"ok": not failed, "checks": [asdict(c) for c in checks]}, indent=2))
        return 1 if failed else 0
    width = max(len(c.name) for c in checks)
    for c in checks:
        print(f"[{_SYMBOL[c.status]:>4}] {c.name.ljust(width)}  {c.detail}")
        if c.hint and c.status != "ok":
            print(f"       {' ' * width}  hint: {c.hint}")
    warn = sum(c.status == "warn" for c in checks)
    print(f"\n{len(checks)} checks: {sum(c.status == 'ok' for c in checks)} ok, {warn} warn, "
          f"{sum(c.status == 'fail' for c in checks)} fail", file=sys.stderr)
    return 1 if failed else 0


def register(subparsers: Any) -> None:
    """Add ``gspauth doctor`` to the ``gspauth`` sub-command parsers."""
    p = subparsers.add_parser("doctor", help="check the installation, configuration and GSP connection",
                              description=__doc__.split("\n\n")[0].replace("``", "") if __doc__ else None)
    add_target_arguments(p)
    p.add_argument("--offline", action="store_true", help="skip network checks")
    p.add_argument("--json", action="store_true", help="machine-readable output")
    p.set_defaults(func=_run)
