"""The gspauth exception tree, defined once and raised by both crypto backends.

::

    GSPAuthError
      ConfigurationError                missing or invalid settings / credentials
        BackendUnavailable (ImportError) GSPAUTH_BACKEND=native but the extension is absent
        InvalidGSTIN (ValueError)        malformed GSTIN, bad check character
        InvalidStateCode (ValueError)    state-cd missing, malformed, or not the GSTIN's
      PluginError
        ProviderNotFound (LookupError)   no plugin serves this GSP id
        PluginContractError              a hookimpl broke its contract
      CryptoError
        InvalidKey (ValueError)          key of the wrong length
        InvalidInput (ValueError)        empty or oversized input
        InvalidBase64 (ValueError)       a wire field is not valid Base64
        DecryptionError (ValueError)     bad padding / wrong key / unexpected plaintext size
        IntegrityError                   HMAC mismatch
        CertificateError                 unusable GSTN certificate
          CertificateExpired             certificate outside its validity window
      GSPError                           an error reply; typed by code in :mod:`gspauth.codes`
        ClientCredentialsError           AUT4031-AUT4034: clientid / client-secret
        GSPLayerError                    the GSP's own layer refused (token, signature…)
        InvalidUser                      AUTH4032, SWEB900x, RET11409
        ApiAccessDenied                  AUTH4037: API access off or its duration too short
        SessionLimitExceeded             AUTH403: too many sessions for this user and GSP
        InvalidOtp                       AUTH4034, RET13506
        SessionInvalid                   AUTH4033: unknown, revoked or logged-out token
          SessionExpired                 AUTH4038
        AppKeyRejected                   AUTH4036, TEC4002, TEC4003 (stale GSTN cert?)
        RequestRejected                  AUTH4039-4041, GEN5001, GEN5007: malformed request
        NotAuthorized                    AUTH158, RET11402, RET2B1010, RT-R1R3BAV-1007
        RetryableError                   may succeed if retried (idempotently) later
          ServerError                    TEC4001, GEN5008, HTTP 5xx
          RateLimited                    HTTP 429, GEN5005
          RequestInProgress              RETINPROGRESS, RTN_24
          NetworkError                   no reply at all (.host): the request may or may not have arrived
            Unreachable                  could not connect: DNS, refused, TLS handshake, proxy
            NetworkTimeout               connected, but no (complete) reply in time
            ConnectionLost               the connection broke before the reply was complete
      OtpRequired                        a fresh OTP consent is needed to go on
      ConcurrencyError                   another worker (thread, process, machine) is in the way
        LockTimeout (TimeoutError)       waited too long for a session's single-flight lock
        LockLost                         a lock holder was fenced: a newer holder took the lock
        JournalBusy                      another filer is using the same filing journal
      DatabaseError                      a database server refused or failed an operation
      StoreCorrupted                     a stored session row failed authentication
      LedgerTampered                     the consent ledger's hash chain is broken
      DamagedFile                        a store, ledger or journal file is not a usable database

    ConfigurationError also has:
        InvalidParameter (ValueError)    malformed txn, ret_period, ip-usr, PAN, OTP …
        StoreKeyMismatch                 the store key is not the one the store was written with

Crypto errors carry ``field`` (which wire field failed: ``"data"``, ``"rek"``,
``"hmac"``, ``"sek"`` …) and ``index`` (position in a batch, else ``None``).
No message ever contains key material, a token, an OTP or a payload.
"""

from __future__ import annotations

__all__ = [
    "ApiAccessDenied",
    "AppKeyRejected",
    "BackendUnavailable",
    "CertificateError",
    "CertificateExpired",
    "ClientCredentialsError",
    "ConcurrencyError",
    "ConfigurationError",
    "ConnectionLost",
    "CryptoError",
    "DamagedFile",
    "DatabaseError",
    "DecryptionError",
    "GSPAuthError",
    "GSPError",
    "GSPLayerError",
    "IntegrityError",
    "InvalidBase64",
    "InvalidGSTIN",
    "InvalidInput",
    "InvalidKey",
    "InvalidOtp",
    "InvalidParameter",
    "InvalidStateCode",
    "InvalidUser",
    "JournalBusy",
    "LedgerTampered",
    "LockLost",
    "LockTimeout",
    "NetworkError",
    "NetworkTimeout",
    "NotAuthorized",
    "OtpRequired",
    "PluginContractError",
    "PluginError",
    "ProviderNotFound",
    "RateLimited",
    "RequestInProgress",
    "RequestRejected",
    "RetryableError",
    "ServerError",
    "SessionExpired",
    "SessionInvalid",
    "SessionLimitExceeded",
    "StoreCorrupted",
    "StoreKeyMismatch",
    "Unreachable",
]


class GSPAuthError(Exception):
    """Base class of every error gspauth raises on purpose.

    :ivar hint: what to do about it, in one sentence, when the error knows (the CLI prints it
        on its own line).
    """

    hint: str | None = None


class ConfigurationError(GSPAuthError):
    """Missing or invalid settings or credentials."""


class BackendUnavailable(ConfigurationError, ImportError):
    """A crypto backend was requested explicitly but cannot be loaded."""


class InvalidGSTIN(ConfigurationError, ValueError):
    """A GSTIN is malformed or its check character is wrong."""


class InvalidStateCode(ConfigurationError, ValueError):
    """A state code is malformed, unknown, or does not match the GSTIN (GSTN: AUTH4041)."""


class PluginError(GSPAuthError):
    """Base class for plugin problems."""


class ProviderNotFound(PluginError, LookupError):
    """No installed plugin serves the requested GSP id."""


class PluginContractError(PluginError):
    """A plugin's hook implementation broke its documented contract."""


class CryptoError(GSPAuthError):
    """Base class for cryptographic failures.

    :ivar field: the wire field that failed (``"data"``, ``"rek"``, ``"hmac"`` …) or ``None``.
    :ivar index: position of the failing record in a batch call, else ``None``.
    """

    def __init__(self, message: str, field: str | None = None, index: int | None = None) -> None:
        super().__init__(message)
        self.field = field
        self.index = index

    def __reduce__(self):  # type: ignore[no-untyped-def]  # keep field/index through pickling
        return (type(self), (str(self), self.field, self.index))


class InvalidKey(CryptoError, ValueError):
    """A key has the wrong length (AES-256 keys are exactly 32 bytes)."""


class InvalidInput(CryptoError, ValueError):
    """Input is empty where content is required, or larger than the configured maximum."""


class InvalidBase64(CryptoError, ValueError):
    """A wire field is not valid standard Base64 (RFC 4648 §4, padded)."""


class DecryptionError(CryptoError, ValueError):
    """Ciphertext did not decrypt: wrong key, bad padding, or a truncated/corrupted value."""


class IntegrityError(CryptoError):
    """The HMAC sent with a payload does not match the decrypted content."""


class CertificateError(CryptoError):
    """The GSTN certificate or public key cannot be used."""


class CertificateExpired(CertificateError):
    """The GSTN certificate is outside its validity window."""


class GSPError(GSPAuthError):
    """An error reply from GSTN or a GSP.

    :ivar error_code: GSTN/GSP code such as ``"AUTH4037"`` (``None`` if the reply had none).
    :ivar status_code: HTTP status of the reply.
    :ivar hint: what the user should do about it, in one sentence.
    """

    def __init__(
        self,
        message: str,
        *,
        error_code: str | None = None,
        status_code: int | None = None,
        hint: str | None = None,
        gsp: str | None = None,
    ) -> None:
        self.message = message
        self.error_code = error_code
        self.status_code = status_code
        self.hint = hint
        self.gsp = gsp
        text = f"{error_code}: {message}" if error_code else message
        if hint:
            text = f"{text} (hint: {hint})"
        super().__init__(text)


class ClientCredentialsError(GSPError):
    """The GSP/ASP ``clientid`` or ``client-secret`` is missing or wrong (AUT4031-AUT4034)."""


class GSPLayerError(GSPError):
    """The GSP's own layer refused the call (auth token, signature, prefix…)."""


class InvalidUser(GSPError):
    """The GST portal username is unknown, locked or its password expired."""


class ApiAccessDenied(GSPError):
    """API access is off on the GST portal, or its duration is too short to refresh (AUTH4037)."""


class SessionLimitExceeded(GSPError):
    """Too many concurrent sessions for this user with this GSP (AUTH403)."""


class InvalidOtp(GSPError):
    """The OTP was wrong, expired or used up its attempts.

    :ivar attempts_left: how many more tries the pending OTP request allows (``0``: request a
        new OTP), when known.
    """

    attempts_left: int | None = None


class SessionInvalid(GSPError):
    """The auth token is unknown to GSTN: revoked, logged out, replaced or never issued."""


class SessionExpired(SessionInvalid):
    """The auth token's lifetime is over (AUTH4038)."""


class AppKeyRejected(GSPError):
    """GSTN could not use the app key: usually a stale or wrong-environment GSTN certificate."""


class RequestRejected(GSPError):
    """GSTN found the request malformed (headers, JSON, HMAC, state code)."""


class NotAuthorized(GSPError):
    """The session is valid but not authorised for this API or GSTIN."""


class RetryableError(GSPError):
    """A transient failure; retrying the same request (same idempotency key) may succeed."""

    retry_after: float | None = None


class ServerError(RetryableError):
    """GSTN or the GSP failed internally (TEC4001, GEN5008, HTTP 5xx)."""


class RateLimited(RetryableError):
    """Too many requests (HTTP 429, GEN5005)."""


class RequestInProgress(RetryableError):
    """GSTN queued the request; poll or retry later (RETINPROGRESS, RTN_24)."""


class NetworkError(RetryableError):
    """No reply came back: the network, a proxy or the server's socket failed.

    Whether the request reached GSTN is unknown, so a retry must carry the same ``txn``.

    :ivar host: the host that was being called (``scheme://host[:port]``).
    """

    def __init__(self, message: str, *, host: str | None = None, hint: str | None = None,
                 gsp: str | None = None) -> None:
        super().__init__(message, hint=hint, gsp=gsp)
        self.host = host


class Unreachable(NetworkError):
    """Could not connect: DNS, connection refused, TLS handshake or proxy failure."""


class NetworkTimeout(NetworkError):
    """Connected, but no complete reply within the timeout."""


class ConnectionLost(NetworkError):
    """The connection broke before the reply was complete (the request may have been applied)."""


class OtpRequired(GSPAuthError):
    """A fresh OTP consent is needed before this session can go on.

    :ivar gstin: the taxpayer that must consent.
    :ivar reason: why (``"no-session"``, ``"refresh-refused"``, ``"expired"``, ``"revoked"`` …).
    """

    def __init__(self, message: str, *, gstin: str | None = None, reason: str | None = None) -> None:
        super().__init__(message)
        self.gstin = gstin
        self.reason = reason


class InvalidParameter(ConfigurationError, ValueError):
    """A request parameter (``txn``, ``ret_period``, ``ip-usr``, PAN, OTP …) is malformed.

    Raised before anything is sent. ``field`` names the parameter.
    """

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConcurrencyError(GSPAuthError):
    """Another worker — a thread, a process, another machine — holds or took what we need."""


class LockTimeout(ConcurrencyError, TimeoutError):
    """Waited longer than ``timeout`` for a session lock (another auth/refresh is stuck?)."""


class LockLost(ConcurrencyError):
    """A write made under a session lock was refused because the lock is no longer ours.

    A shared store (PostgreSQL) hands every lock holder a fence token; when the holder's
    connection died (network loss, a killed backend) another worker may have taken the lock
    and saved a newer session, so the stale holder's write is refused and nothing is written.
    """

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint or ("another worker took this session's lock after ours was lost; load the session "
                             "again (it is likely fresher) and retry")


class JournalBusy(ConcurrencyError):
    """Another :class:`~gspauth.filing.BatchFiler` (this or another process) is filing with this journal."""


class StoreKeyMismatch(ConfigurationError):
    """The store key in use is not the one the store file was written with."""


class StoreCorrupted(GSPAuthError):
    """A stored row failed authentication: it was edited, moved to another key, or damaged."""


class LedgerTampered(GSPAuthError):
    """The ledger's hash chain is broken: a row was edited, removed or inserted out of band."""


class DatabaseError(GSPAuthError):
    """A database server refused or failed an operation for a reason that is not a setting
    (those are :class:`ConfigurationError`) or an unreachable server (:class:`Unreachable`).

    :ivar sqlstate: the server's five-character SQLSTATE, when it gave one.
    """

    def __init__(self, message: str, *, sqlstate: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate
        self.hint = hint


class DamagedFile(GSPAuthError):
    """A session store, consent ledger or filing journal is not a usable database (truncated,
    overwritten, not SQLite, or failing to read). Nothing is overwritten.

    :ivar path: the file.
    """

    def __init__(self, message: str, *, path: str | None = None, hint: str | None = None) -> None:
        super().__init__(message)
        self.path = path
        self.hint = hint
