"""GSTIN and state-code validation (the source of GSTN's AUTH4041 ``state-cd`` errors).

A GSTIN is 15 characters: a 2-digit state code, the holder's 10-character PAN,
an entity number, a default ``Z`` and a mod-36 check character.
"""

from __future__ import annotations

import re

from gspauth.errors import InvalidGSTIN, InvalidStateCode

__all__ = [
    "STATE_CODES",
    "check_character",
    "is_valid_gstin",
    "validate_gstin",
    "validate_state_code",
]

_ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"
_VALUE = {c: i for i, c in enumerate(_ALPHABET)}
# 15 upper-case alphanumerics; regular taxpayers embed a PAN (AAAAA9999A) at [2:12].
_SHAPE = re.compile(r"[0-9]{2}[0-9A-Z]{13}")

#: GST state / union-territory codes (CBIC list), code → name.
STATE_CODES: dict[str, str] = {
    "01": "Jammu and Kashmir", "02": "Himachal Pradesh", "03": "Punjab", "04": "Chandigarh",
    "05": "Uttarakhand", "06": "Haryana", "07": "Delhi", "08": "Rajasthan", "09": "Uttar Pradesh",
    "10": "Bihar", "11": "Sikkim", "12": "Arunachal Pradesh", "13": "Nagaland", "14": "Manipur",
    "15": "Mizoram", "16": "Tripura", "17": "Meghalaya", "18": "Assam", "19": "West Bengal",
    "20": "Jharkhand", "21": "Odisha", "22": "Chhattisgarh", "23": "Madhya Pradesh", "24": "Gujarat",
    "25": "Daman and Diu", "26": "Dadra and Nagar Haveli and Daman and Diu", "27": "Maharashtra",
    "28": "Andhra Pradesh (before 2018)", "29": "Karnataka", "30": "Goa", "31": "Lakshadweep",
    "32": "Kerala", "33": "Tamil Nadu", "34": "Puducherry", "35": "Andaman and Nicobar Islands",
    "36": "Telangana", "37": "Andhra Pradesh", "38": "Ladakh", "97": "Other Territory",
    "99": "Centre Jurisdiction",
}  # fmt: skip


def check_character(first14: str) -> str:
    """The mod-36 check character for the first 14 characters of a GSTIN."""
    if len(first14) != 14 or any(c not in _VALUE for c in first14):
        raise InvalidGSTIN("need exactly 14 upper-case alphanumeric characters to compute a check character")
    total = 0
    for i, c in enumerate(first14):
        product = _VALUE[c] * (2 if i % 2 else 1)
        total += product // 36 + product % 36
    return _ALPHABET[(36 - total % 36) % 36]


def validate_gstin(gstin: str) -> str:
    """Return ``gstin`` (stripped, upper-cased) or raise :class:`InvalidGSTIN` saying what is wrong."""
    if not isinstance(gstin, str):
        raise InvalidGSTIN(f"GSTIN must be a string, not {type(gstin).__name__}")
    value = gstin.strip().upper()
    if len(value) != 15:
        raise InvalidGSTIN(f"GSTIN {value!r} has {len(value)} characters; a GSTIN has 15")
    if not _SHAPE.fullmatch(value):
        raise InvalidGSTIN(f"GSTIN {value!r} must be 2 digits followed by 13 letters or digits")
    if value[:2] not in STATE_CODES:
        raise InvalidGSTIN(f"GSTIN {value!r} starts with {value[:2]!r}, which is not a GST state code")
    expected = check_character(value[:14])
    if value[14] != expected:
        raise InvalidGSTIN(
            f"GSTIN {value!r} has check character {value[14]!r}, expected {expected!r} (typo in the GSTIN?)"
        )
    return value


def is_valid_gstin(gstin: str) -> bool:
    """Whether :func:`validate_gstin` accepts ``gstin`` (for filters; use that to learn why not)."""
    try:
        validate_gstin(gstin)
    except InvalidGSTIN:
        return False
    return True


def _state_code_of(gstin: str) -> str:
    """The ``state-cd`` header value for a GSTIN: its first two digits."""
    return validate_gstin(gstin)[:2]


def validate_state_code(state_cd: str, gstin: str | None = None) -> str:
    """Check a ``state-cd`` value, and that it matches ``gstin`` when given (AUTH4041)."""
    if not isinstance(state_cd, str) or not re.fullmatch(r"[0-9]{2}", state_cd):
        raise InvalidStateCode(f"state code {state_cd!r} must be exactly 2 digits, e.g. '27' for Maharashtra")
    if state_cd not in STATE_CODES:
        raise InvalidStateCode(f"state code {state_cd!r} is not a GST state code")
    if gstin is not None and _state_code_of(gstin) != state_cd:
        raise InvalidStateCode(
            f"state code {state_cd!r} does not match GSTIN {gstin!r}, whose state code is {gstin[:2]!r}; "
            "state-cd must be the first two digits of the GSTIN in use (GSTN answers AUTH4041 otherwise)"
        )
    return state_cd
