"""gspauth: talk to India's GST system (GSTN) through GST Suvidha Providers (GSPs).

The names most programs need are re-exported here::

    from gspauth import Client, Credentials, SQLiteStore, OtpRequired

Submodules: :mod:`gspauth.crypto` (payload crypto, Rust or Python backend),
:mod:`gspauth.hookspecs` (the plugin contract), :mod:`gspauth.emulator`
(a strict local GSTN + GSP emulator), :mod:`gspauth.testing` (the plugin
conformance kit). The last two are never imported by ``import gspauth``.
"""

from __future__ import annotations

from gspauth._version import VERSION as __version__  # one source: the Cargo workspace version
from gspauth.auth import GSPAuth
from gspauth.client import AsyncClient, Client
from gspauth.errors import (
    ApiAccessDenied,
    ConfigurationError,
    CryptoError,
    GSPAuthError,
    GSPError,
    OtpRequired,
    SessionExpired,
    SessionInvalid,
)
from gspauth.filing import BatchFiler, ChunkResult, FilingSummary
from gspauth.hookspecs import hookimpl
from gspauth.ledger import Ledger
from gspauth.otp import (
    ChainOtp,
    CommandOtp,
    EnvOtp,
    FileOtp,
    HookOtp,
    OtpProvider,
    OtpRequest,
    PromptOtp,
)
from gspauth.plugins import Hooks, get_plugin_manager, list_plugins
from gspauth.retry import RetryPolicy
from gspauth.session import Session, SessionKey
from gspauth.store import MemoryStore, SessionStore, SQLiteStore
from gspauth.types import (
    Api,
    Credentials,
    Environment,
    GSPInfo,
    GSPSession,
    GSPSessionLogin,
    SessionEvent,
    SigningContext,
)

__all__ = [
    "Api",
    "ApiAccessDenied",
    "AsyncClient",
    "BatchFiler",
    "ChainOtp",
    "ChunkResult",
    "Client",
    "CommandOtp",
    "ConfigurationError",
    "Credentials",
    "CryptoError",
    "EnvOtp",
    "Environment",
    "FileOtp",
    "FilingSummary",
    "GSPAuth",
    "GSPAuthError",
    "GSPError",
    "GSPInfo",
    "GSPSession",
    "GSPSessionLogin",
    "HookOtp",
    "Hooks",
    "Ledger",
    "MemoryStore",
    "OtpProvider",
    "OtpRequest",
    "OtpRequired",
    "PromptOtp",
    "RetryPolicy",
    "SQLiteStore",
    "Session",
    "SessionEvent",
    "SessionExpired",
    "SessionInvalid",
    "SessionKey",
    "SessionStore",
    "SigningContext",
    "__version__",
    "get_plugin_manager",
    "hookimpl",
    "list_plugins",
]
