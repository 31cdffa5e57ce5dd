"""Exact decimals from number text: the one normal form both backends print.

A number is never turned into a float. Its text (a JSON number, or a CSV cell
of the form ``-?[0-9]+(.[0-9]+)?``) is split into a digit string and the
position of the decimal point, then:

* leading zeros and trailing fractional zeros are dropped, an exponent is
  applied by moving the point (``1e3`` → ``1000``, ``1.50`` → ``1.5``,
  ``18.0`` → ``18``, ``-0`` → ``0``);
* more than :data:`MAX_INT_DIGITS` digits before the point is ``range``;
* more decimals than the field allows (2 for amounts and rates, 0 for
  ``num``) is ``decimals``;
* a negative value where the field does not allow one is ``range``.

The value is also returned scaled by 100 as an ``int`` (paise for amounts,
hundredths of a percent for rates), which is what the validation rules compute
with.
"""

from __future__ import annotations

import re
from typing import NamedTuple

from gspauth.ingest._python._errors import Reject

__all__ = ["MAX_INT_DIGITS", "Num", "csv_number", "from_cents", "json_number", "round_div"]

#: Digits allowed before the decimal point (₹ 999 lakh crore … far beyond any invoice).
MAX_INT_DIGITS = 15
# An exponent is clamped to this magnitude before use: past it the result is
# ``range`` or ``decimals`` (or 0) whatever the exact value, and the clamp keeps
# both backends in plain 64-bit arithmetic.
_EXP_CLAMP = 1_000_000_000

_JSON = re.compile(rb"(-?)(0|[1-9][0-9]*)(?:\.([0-9]+))?(?:[eE]([-+]?)([0-9]+))?")
_CSV = re.compile(r"(-?)([0-9]+)(?:\.([0-9]+))?")


class Num(NamedTuple):
    """A normalised number: its canonical text and its value × 100."""

    text: str
    cents: int


_ZERO = Num("0", 0)


def _exponent(sign: bytes, digits: bytes) -> int:
    # Strip leading zeros first, so the length test below means magnitude.
    digits = digits.lstrip(b"0") or b"0"
    value = _EXP_CLAMP if len(digits) > 10 else min(int(digits), _EXP_CLAMP)
    return -value if sign == b"-" else value


def _normalise(neg: bool, int_part: bytes, frac_part: bytes, exp: int, path: str, decimals: int,
               negative_ok: bool) -> Num:
    digits = int_part + frac_part
    point = len(int_part) + exp
    stripped = digits.lstrip(b"0")
    point -= len(digits) - len(stripped)
    digits = stripped.rstrip(b"0")
    if not digits:
        return _ZERO
    if point > MAX_INT_DIGITS:
        raise Reject("range", f"{path} is out of range (more than {MAX_INT_DIGITS} digits before the point)")
    frac = len(digits) - point
    if frac > decimals:
        if decimals == 0:
            raise Reject("decimals", f"{path} must be a whole number")
        raise Reject("decimals", f"{path} has more than {decimals} decimal places")
    if neg and not negative_ok:
        raise Reject("range", f"{path} must not be negative")
    text = digits.decode("ascii")
    if point <= 0:
        text = "0." + "0" * (-point) + text
    elif point >= len(digits):
        text += "0" * (point - len(digits))
    else:
        text = text[:point] + "." + text[point:]
    cents = int(digits) * 10 ** (point - len(digits) + 2)
    if neg:
        return Num("-" + text, -cents)
    return Num(text, cents)


# Invoices repeat their numbers (rates, zero, catalogue amounts): normalised values
# are kept by text. Errors are not (their messages carry the field's path).
_CACHE: dict[tuple[bytes, int, bool], Num] = {}
_CACHE_MAX = 1 << 16


def json_number(raw: bytes, path: str, decimals: int, negative_ok: bool) -> Num:
    """Normalise the text of a JSON number token (its syntax is already valid)."""
    key = (raw, decimals, negative_ok)
    hit = _CACHE.get(key)
    if hit is not None:
        return hit
    num = _json_number(raw, path, decimals, negative_ok)
    if len(_CACHE) >= _CACHE_MAX:
        _CACHE.clear()
    _CACHE[key] = num
    return num


def _json_number(raw: bytes, path: str, decimals: int, negative_ok: bool) -> Num:
    m = _JSON.fullmatch(raw)
    if m is None:  # pragma: no cover - the JSON reader only passes valid numbers
        raise Reject("json", "not a JSON number")
    sign, int_part, frac_part, esign, edigits = m.groups()
    exp = _exponent(esign, edigits) if edigits is not None else 0
    return _normalise(sign == b"-", int_part, frac_part or b"", exp, path, decimals, negative_ok)


_CSV_CACHE: dict[tuple[str, int, bool], Num] = {}


def csv_number(text: str, path: str, decimals: int, negative_ok: bool) -> Num:
    """Normalise a CSV cell: ``-?[0-9]+(.[0-9]+)?`` (no exponent, no digit grouping)."""
    key = (text, decimals, negative_ok)
    hit = _CSV_CACHE.get(key)
    if hit is not None:
        return hit
    num = _csv_number(text, path, decimals, negative_ok)
    if len(_CSV_CACHE) >= _CACHE_MAX:
        _CSV_CACHE.clear()
    _CSV_CACHE[key] = num
    return num


def _csv_number(text: str, path: str, decimals: int, negative_ok: bool) -> Num:
    m = _CSV.fullmatch(text)
    if m is None:
        raise Reject("number", f"{path} is not a number (write digits with an optional '.' and up to 2 decimals)")
    sign, int_part, frac_part = m.groups()
    return _normalise(sign == "-", int_part.encode(), (frac_part or "").encode(), 0, path, decimals, negative_ok)


def from_cents(cents: int) -> Num:
    """The normalised number whose value × 100 is ``cents`` (computed taxes)."""
    sign = "-" if cents < 0 else ""
    whole, frac = divmod(abs(cents), 100)
    text = str(whole) if frac == 0 else f"{whole}.{frac:02d}".rstrip("0")
    return Num(sign + text if cents else "0", cents)


def round_div(numerator: int, denominator: int) -> int:
    """``numerator / denominator`` rounded half away from zero (``denominator`` > 0)."""
    q = (abs(numerator) * 2 + denominator) // (2 * denominator)
    return -q if numerator < 0 else q
