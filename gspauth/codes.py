"""GSTN error codes (spec §6): message, HTTP status, exception type and a hint for each.

One table serves both sides: the emulator emits these replies, the client turns a
reply back into the typed exception with a hint of what to do.
"""

from __future__ import annotations

from dataclasses import dataclass

from gspauth import errors

__all__ = ["CODES", "ErrorCode", "error_for"]


@dataclass(frozen=True)
class ErrorCode:
    """One known error code: GSTN's message, the exception it becomes, and what to do about it."""

    code: str
    message: str
    exception: type[errors.GSPError]
    hint: str
    http_status: int = 200  # GSTN sends business errors with HTTP 200 (spec §6)


_E = ErrorCode
_TABLE: tuple[ErrorCode, ...] = (
    _E("AUT4031", "clientid missing", errors.ClientCredentialsError,
       "send the clientid header issued by your GSP", 403),
    _E("AUT4032", "client-secret missing", errors.ClientCredentialsError,
       "send the client-secret header issued by your GSP", 403),
    _E("AUT4033", "Invalid Client ID", errors.ClientCredentialsError,
       "check the clientid configured for this GSP and environment (sandbox and production differ)", 403),
    _E("AUT4034", "Invalid Client Secret", errors.ClientCredentialsError,
       "check the client-secret configured for this GSP and environment", 403),
    _E("AUTH403", "Maximum session allowed for user with this GSP account exceeded",
       errors.SessionLimitExceeded,
       "log out unused sessions (gspauth session logout) or share one session across workers "
       "through the persistent session store"),
    _E("AUTH4032", "Invalid User", errors.InvalidUser,
       "check the GST portal username for this GSTIN"),
    _E("AUTH4033", "Invalid Session", errors.SessionInvalid,
       "the auth token is not (or no longer) valid: it was refreshed, logged out or revoked; "
       "obtain a new OTP consent (gspauth login)"),
    _E("AUTH4034", "Invalid OTP", errors.InvalidOtp,
       "re-enter the OTP sent to the taxpayer's registered mobile and email, or request a new one"),
    _E("AUTH4036", "Invalid App Key", errors.AppKeyRejected,
       "the app key could not be decrypted: use the current GSTN certificate for this environment"),
    _E("AUTH4037",
       "API access is not available or user expiry Duration is less than or equal to auth token "
       "expiry duration",
       errors.ApiAccessDenied,
       "ask the taxpayer to enable API access on the GST portal (My Profile > Manage API Access) "
       "and choose a duration longer than 6 hours so sessions can be refreshed without OTP"),
    _E("AUTH4038", "Session Expired", errors.SessionExpired,
       "the auth token's lifetime is over; refresh before expiry or obtain a new OTP consent"),
    _E("AUTH4039", "Invalid data object", errors.RequestRejected,
       "the payload or its HMAC did not verify under the session key: the session was probably "
       "refreshed meanwhile; re-encrypt with the current session"),
    _E("AUTH4040", "Malformed request", errors.RequestRejected,
       "the request body is not the JSON GSTN expects for this action"),
    _E("AUTH4041", "Invalid Parameter state-cd", errors.RequestRejected,
       "state-cd must be the first two digits of the GSTIN in use"),
    _E("AUTH158", "Authorization failed", errors.NotAuthorized,
       "the session is not authorised for this GSTIN or return; check GSTIN and username"),
    _E("TEC4001", "Technical Error", errors.ServerError,
       "a GSTN-side failure; retry later with the same transaction"),
    _E("TEC4002", "Invalid Data Format", errors.AppKeyRejected,
       "often a stale GSTN certificate after yearly rotation: download the current certificate "
       "(gspauth doctor checks its validity)"),
    _E("TEC4003", "Invalid App Key", errors.AppKeyRejected,
       "the app key must be 32 random bytes RSA-encrypted with the current GSTN certificate"),
    _E("GEN5001", "Missing mandatory parameters", errors.RequestRejected,
       "a mandatory header or query parameter is missing"),
    _E("GEN5005", "Account plan limit exceeded", errors.RateLimited,
       "your GSP plan's quota is used up; wait for the next period or raise the plan"),
    _E("GEN5007", "Malformed request", errors.RequestRejected,
       "the request could not be parsed"),
    _E("GEN5008", "GSTN server error", errors.ServerError,
       "a GSTN-side failure; retry later with the same transaction"),
    _E("SWEB9002", "Invalid username or password", errors.InvalidUser,
       "check the GST portal username"),
    _E("SWEB9033", "User password has expired", errors.InvalidUser,
       "the taxpayer must reset the GST portal password"),
    _E("SWEB9035", "User account is locked", errors.InvalidUser,
       "the taxpayer must unlock the GST portal account"),
    _E("RET11402", "Unauthorized User", errors.NotAuthorized,
       "the user is not authorised for this return"),
    _E("RET11409", "User not valid", errors.InvalidUser,
       "check the username bound to this GSTIN"),
    _E("RET2B1010", "API authorization failed", errors.NotAuthorized,
       "the session is not authorised for GSTR-2B"),
    _E("RET13506", "OTP is either expired or incorrect", errors.InvalidOtp,
       "request a new EVC OTP and file again"),
    _E("RT-R1R3BAV-1007", "auth-token or username is invalid", errors.SessionInvalid,
       "the auth token does not belong to this username; log in again"),
    # Seen from GSPs in the wild (user-pain-points §7): upstream outages, retried with the same txn.
    _E("GSPERR300", "GSTN is down (GSPGSTDOWN)", errors.ServerError,
       "GSTN is unreachable from the GSP; the client retries with backoff, else retry later with the same "
       "transaction (filing journals re-send in-doubt chunks with their original txn)"),
    _E("GEN4004", "GSP service error", errors.ServerError,
       "a GSP-side outage; retry later with the same transaction and check your GSP's status page"),
    _E("RETINPROGRESS", "Request is in progress, please try after some time", errors.RequestInProgress,
       "GSTN queued the request; poll RETSTATUS later"),
    _E("RTN_24", "Request is in progress, please try after some time", errors.RequestInProgress,
       "GSTN queued the request; poll RETSTATUS later"),
    # INFERRED, defined by the emulator (GSTN's own code for an oversized body is not public): GSTN
    # documents 5 MB of JSON per save; the wire body is that JSON Base64-encoded, encrypted and
    # Base64-encoded again (x16/9), which the emulator's default limit of 10 MiB leaves room for.
    _E("GEN5413", "Request payload is too large", errors.RequestRejected,
       "split the payload into requests whose JSON is below 5,000,000 bytes (GSTN's 5 MB per save; "
       "about 8.9 MB on the wire once encrypted and Base64-encoded twice) and send each with its own txn",
       413),
    # GSTR-1 processing: RETSTATUS error_report codes (per record; RET191106 for a whole payload).
    _E("RET191106", "Error in JSON structure validation", errors.RequestRejected,
       "the save payload does not follow GSTN's GSTR-1 schema (unknown section, missing key fields, bad date "
       "format) and nothing of it was stored: fix the structure the RETSTATUS error_report names and save again"),
    _E("RET191113", "The GSTIN is invalid. Please provide a valid GSTIN", errors.RequestRejected,
       "a counterparty GSTIN is malformed, not registered, cancelled or your own GSTIN: correct it, or report "
       "the supply as B2C; the other invoices of the save were stored"),
    _E("RET191133", "Invoices already exist with different CTIN or same CTIN. Please delete and add again",
       errors.RequestRejected,
       "the document number is already used by this GSTIN in this financial year (another period, counterparty "
       "or section): delete the earlier record first, or amend it instead of adding it again"),
    _E("RET191175", "The rate entered is not valid according to the rate list", errors.RequestRejected,
       "an item's rate is not a notified GST rate (0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40): "
       "send the rate as a percentage, e.g. 18"),
    # INFERRED, defined by the emulator (GSTN's code for this rule is not public).
    _E("RET191901", "Document date is after the end of the tax period", errors.RequestRejected,
       "the invoice or note is dated after the last day of the return period: report it in the period of "
       "its date"),
    # GSTR-2A / GSTR-2B downloads (india-compliance treats these as "no documents" / "not generated").
    _E("RET11416", "No invoices found for the provided inputs", errors.GSPError,
       "GSTR-2A has no documents for this GSTIN, period and section: treat it as an empty result"),
    _E("RET2B1016", "No document found for the provided inputs", errors.GSPError,
       "GSTR-2B has no documents for this GSTIN and period: treat it as an empty result"),
    _E("RET2B1023", "GSTR-2B is not generated for the given return period", errors.GSPError,
       "GSTR-2B of a period is generated after it ends (on the 14th of the next month, or on request): "
       "fetch it later"),
)  # fmt: skip

#: code → :class:`ErrorCode`.
CODES: dict[str, ErrorCode] = {e.code: e for e in _TABLE}


def _lookup(code: str | None) -> ErrorCode | None:
    """The table entry for ``code`` (``None`` for an unknown or missing code)."""
    return CODES.get(code) if code else None


def error_for(
    code: str | None,
    message: str | None = None,
    *,
    status_code: int | None = None,
    gsp: str | None = None,
) -> errors.GSPError:
    """The typed exception for an error reply (unknown codes give a plain :class:`GSPError`)."""
    entry = _lookup(code)
    if entry is not None:
        return entry.exception(
            message or entry.message, error_code=code, status_code=status_code, hint=entry.hint, gsp=gsp
        )
    if status_code == 429:
        return errors.RateLimited(message or "Too many requests", error_code=code, status_code=429,
                                  hint="slow down; the client retries with backoff", gsp=gsp)
    if status_code is not None and status_code >= 500:
        return errors.ServerError(message or f"HTTP {status_code}", error_code=code, status_code=status_code,
                                  hint="an upstream failure; retry later", gsp=gsp)
    return errors.GSPError(message or "unknown error", error_code=code, status_code=status_code, gsp=gsp)
