//! Exact decimals from number text, printed in one normal form (see
//! `gspauth/ingest/_python/_numbers.py`, which this mirrors rule for rule):
//! no exponent, no leading zeros, no trailing fractional zeros, `-0` → `0`;
//! more than [`MAX_INT_DIGITS`] digits before the point is `range`, more
//! decimals than allowed is `decimals`, a forbidden sign is `range`. The value
//! is also kept × 100 (`cents`), which is what the rules compute with.

use crate::ingest::error::{reject, Res};
use crate::ingest::text::put;

/// Digits allowed before the decimal point.
pub const MAX_INT_DIGITS: i64 = 15;
/// An exponent is clamped to this magnitude before use (the outcome is the same).
const EXP_CLAMP: i64 = 1_000_000_000;

/// A normalised number: value × 100 and where its canonical text is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dec {
    pub cents: i64,
    pub start: u32,
    pub end: u32,
    /// The text is a span of the record's input (not of the number-text buffer).
    pub input: bool,
}

/// Leading zeros of `a ‖ b`.
fn leading_zeros(a: &[u8], b: &[u8]) -> usize {
    let za = a.iter().take_while(|&&c| c == b'0').count();
    if za < a.len() {
        za
    } else {
        za + b.iter().take_while(|&&c| c == b'0').count()
    }
}

/// Trailing zeros of `a ‖ b`.
fn trailing_zeros(a: &[u8], b: &[u8]) -> usize {
    let zb = b.iter().rev().take_while(|&&c| c == b'0').count();
    if zb < b.len() {
        zb
    } else {
        zb + a.iter().rev().take_while(|&&c| c == b'0').count()
    }
}

/// Normalise `±(int_part ‖ frac_part) × 10^(exp - len(frac_part))`; the text goes
/// to the end of `out`. `path` names the field in messages.
#[allow(clippy::too_many_arguments)]
pub(crate) fn normalise(
    neg: bool,
    int_part: &[u8],
    frac_part: &[u8],
    exp: i64,
    path: &dyn Fn() -> String,
    decimals: i64,
    negative_ok: bool,
    out: &mut Vec<u8>,
) -> Res<Dec> {
    let total = int_part.len() + frac_part.len();
    let lz = leading_zeros(int_part, frac_part);
    let start = out.len() as u32;
    if lz == total {
        out.push(b'0');
        return Ok(Dec {
            cents: 0,
            start,
            end: start + 1,
            input: false,
        });
    }
    let tz = trailing_zeros(int_part, frac_part);
    let sig = (total - lz - tz) as i64;
    let point = int_part.len() as i64 + exp - lz as i64;
    if point > MAX_INT_DIGITS {
        reject!(
            "range",
            "{} is out of range (more than {} digits before the point)",
            path(),
            MAX_INT_DIGITS
        );
    }
    if sig - point > decimals {
        if decimals == 0 {
            reject!("decimals", "{} must be a whole number", path());
        }
        reject!(
            "decimals",
            "{} has more than {} decimal places",
            path(),
            decimals
        );
    }
    if neg && !negative_ok {
        reject!("range", "{} must not be negative", path());
    }
    // The significant digits, at most MAX_INT_DIGITS + 2 of them here.
    let mut digits = [0u8; 20];
    let mut n = 0;
    for &c in int_part
        .iter()
        .chain(frac_part.iter())
        .skip(lz)
        .take(sig as usize)
    {
        digits[n] = c;
        n += 1;
    }
    let digits = &digits[..n];
    if neg {
        out.push(b'-');
    }
    if point <= 0 {
        out.extend_from_slice(b"0.");
        out.extend(std::iter::repeat_n(b'0', (-point) as usize));
        out.extend_from_slice(digits);
    } else if point >= sig {
        out.extend_from_slice(digits);
        out.extend(std::iter::repeat_n(b'0', (point - sig) as usize));
    } else {
        out.extend_from_slice(&digits[..point as usize]);
        out.push(b'.');
        out.extend_from_slice(&digits[point as usize..]);
    }
    let mut cents: i64 = digits
        .iter()
        .fold(0, |acc, &c| acc * 10 + (c - b'0') as i64);
    for _ in 0..(point - sig + 2) {
        cents *= 10;
    }
    Ok(Dec {
        cents: if neg { -cents } else { cents },
        start,
        end: out.len() as u32,
        input: false,
    })
}

/// The exponent digits (after the optional sign), clamped.
fn exponent(neg: bool, digits: &[u8]) -> i64 {
    let digits = &digits[digits.iter().take_while(|&&c| c == b'0').count()..];
    let value = if digits.len() > 10 {
        EXP_CLAMP
    } else {
        digits
            .iter()
            .fold(0i64, |acc, &c| acc * 10 + (c - b'0') as i64)
            .min(EXP_CLAMP)
    };
    if neg {
        -value
    } else {
        value
    }
}

/// The common case, in one pass: a non-negative number
/// without exponent, at most [`MAX_INT_DIGITS`] integer digits (no leading zero
/// unless it is `0`) and at most `decimals` decimals once trailing zeros are
/// dropped. `None` for anything else: [`normalise`] decides those (and words the
/// errors). Returns the value × 100 and the length of the normal form, which is
/// a prefix of `raw`; the result is the one `normalise` gives.
#[inline]
pub(crate) fn fast(raw: &[u8], decimals: i64) -> Option<(i64, usize)> {
    let mut i = 0;
    let mut int: i64 = 0;
    while i < raw.len() && raw[i].is_ascii_digit() {
        int = int * 10 + (raw[i] - b'0') as i64;
        i += 1;
        if i > MAX_INT_DIGITS as usize {
            return None;
        }
    }
    let int_len = i;
    if int_len == 0 || (int_len > 1 && raw[0] == b'0') {
        return None;
    }
    let mut frac: &[u8] = &[];
    if i < raw.len() && raw[i] == b'.' {
        let start = i + 1;
        i = start;
        while i < raw.len() && raw[i].is_ascii_digit() {
            i += 1;
        }
        frac = &raw[start..i];
        while let [rest @ .., b'0'] = frac {
            frac = rest;
        }
        if frac.len() as i64 > decimals || frac.len() > 2 {
            return None;
        }
    }
    if i != raw.len() {
        return None; // an exponent
    }
    let mut cents = int * 100;
    match frac {
        [a] => cents += (a - b'0') as i64 * 10,
        [a, b] => cents += (a - b'0') as i64 * 10 + (b - b'0') as i64,
        _ => {}
    }
    // The normal form is a prefix of the text: the integer part, then '.' and the
    // decimals without their trailing zeros, if any remain.
    let len = if frac.is_empty() {
        int_len
    } else {
        int_len + 1 + frac.len()
    };
    Some((cents, len))
}

/// Normalise a JSON number token (its syntax is already valid) found at offset
/// `at` of the record input: in the common case the result points into the input.
pub(crate) fn json_number(
    raw: &[u8],
    at: u32,
    path: &dyn Fn() -> String,
    decimals: i64,
    negative_ok: bool,
    out: &mut Vec<u8>,
) -> Res<Dec> {
    if let Some((cents, len)) = fast(raw, decimals) {
        return Ok(Dec {
            cents,
            start: at,
            end: at + len as u32,
            input: true,
        });
    }
    let neg = raw[0] == b'-';
    let body = if neg { &raw[1..] } else { raw };
    let int_end = body
        .iter()
        .position(|&c| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let int_part = &body[..int_end];
    let mut rest = &body[int_end..];
    let mut frac_part: &[u8] = &[];
    if rest.first() == Some(&b'.') {
        let f_end = rest[1..]
            .iter()
            .position(|&c| !c.is_ascii_digit())
            .map_or(rest.len(), |k| k + 1);
        frac_part = &rest[1..f_end];
        rest = &rest[f_end..];
    }
    let mut exp = 0;
    if !rest.is_empty() {
        // [eE][+-]?digits
        let (eneg, digits) = match rest[1] {
            b'-' => (true, &rest[2..]),
            b'+' => (false, &rest[2..]),
            _ => (false, &rest[1..]),
        };
        exp = exponent(eneg, digits);
    }
    normalise(
        neg,
        int_part,
        frac_part,
        exp,
        path,
        decimals,
        negative_ok,
        out,
    )
}

/// Normalise a CSV cell of the form `-?[0-9]+(.[0-9]+)?`.
pub(crate) fn csv_number(
    text: &[u8],
    path: &dyn Fn() -> String,
    decimals: i64,
    negative_ok: bool,
    out: &mut Vec<u8>,
) -> Res<Dec> {
    if let Some((cents, len)) = fast(text, decimals) {
        let start = out.len() as u32;
        put(out, &text[..len]);
        return Ok(Dec {
            cents,
            start,
            end: out.len() as u32,
            input: false,
        });
    }
    let neg = text.first() == Some(&b'-');
    let body = if neg { &text[1..] } else { text };
    let int_end = body
        .iter()
        .position(|&c| !c.is_ascii_digit())
        .unwrap_or(body.len());
    let ok = int_end > 0
        && (int_end == body.len()
            || (body[int_end] == b'.'
                && body.len() > int_end + 1
                && body[int_end + 1..].iter().all(u8::is_ascii_digit)));
    if !ok {
        reject!(
            "number",
            "{} is not a number (write digits with an optional '.' and up to 2 decimals)",
            path()
        );
    }
    let (int_part, frac_part) = if int_end == body.len() {
        (body, &body[..0])
    } else {
        (&body[..int_end], &body[int_end + 1..])
    };
    normalise(
        neg,
        int_part,
        frac_part,
        0,
        path,
        decimals,
        negative_ok,
        out,
    )
}

/// Write the normalised text of `cents` / 100 (computed taxes).
pub(crate) fn from_cents(cents: i64, out: &mut Vec<u8>) -> Dec {
    let start = out.len() as u32;
    if cents < 0 {
        out.push(b'-');
    }
    let a = cents.unsigned_abs();
    let (whole, frac) = (a / 100, a % 100);
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut w = whole;
    loop {
        i -= 1;
        digits[i] = b'0' + (w % 10) as u8;
        w /= 10;
        if w == 0 {
            break;
        }
    }
    out.extend_from_slice(&digits[i..]);
    if frac != 0 {
        out.push(b'.');
        out.push(b'0' + (frac / 10) as u8);
        if frac % 10 != 0 {
            out.push(b'0' + (frac % 10) as u8);
        }
    }
    Dec {
        cents,
        start,
        end: out.len() as u32,
        input: false,
    }
}

/// `numerator / denominator` rounded half away from zero (`denominator` > 0).
pub(crate) fn round_div(numerator: i128, denominator: i128) -> i64 {
    let q = (numerator.abs() * 2 + denominator) / (2 * denominator);
    (if numerator < 0 { -q } else { q }) as i64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn norm(raw: &str, decimals: i64) -> Result<(String, i64), &'static str> {
        let mut out = Vec::new();
        json_number(raw.as_bytes(), 0, &|| "x".into(), decimals, true, &mut out)
            .map(|d| {
                let text = if d.input { raw.as_bytes() } else { &out[..] };
                (
                    String::from_utf8(text[d.start as usize..d.end as usize].to_vec()).unwrap(),
                    d.cents,
                )
            })
            .map_err(|r| r.code)
    }

    #[test]
    fn normal_form() {
        assert_eq!(norm("1000.50", 2), Ok(("1000.5".into(), 100050)));
        assert_eq!(norm("18.0", 2), Ok(("18".into(), 1800)));
        assert_eq!(norm("1e3", 2), Ok(("1000".into(), 100000)));
        assert_eq!(norm("-0.0", 2), Ok(("0".into(), 0)));
        assert_eq!(norm("0.065e1", 2), Ok(("0.65".into(), 65)));
        assert_eq!(norm("1.234", 2), Err("decimals"));
        assert_eq!(norm("1e16", 2), Err("range"));
        assert_eq!(norm("1e-999999999999", 2), Err("decimals"));
        assert_eq!(norm("0e99999999999", 2), Ok(("0".into(), 0)));
        assert_eq!(norm("-12.5", 2), Ok(("-12.5".into(), -1250)));
    }

    #[test]
    fn the_fast_path_agrees_with_the_general_one() {
        let cases = [
            "0",
            "00",
            "0.0",
            "0.00",
            "0.5",
            "0.05",
            "0.055",
            "10",
            "10.0",
            "10.10",
            "10.01",
            "10.001",
            "1.2",
            "123456789012345",
            "1234567890123456",
            "999999999999999.99",
            "7.50",
            "18.000",
            "01",
            "1.",
            ".5",
            "1e2",
            "5.",
        ];
        for c in cases {
            for decimals in [0, 2] {
                let mut b = Vec::new();
                let Some((cents, len)) = fast(c.as_bytes(), decimals) else {
                    continue;
                };
                let (int_part, frac_part) = c.split_once('.').unwrap_or((c, ""));
                let slow = normalise(
                    false,
                    int_part.as_bytes(),
                    frac_part.as_bytes(),
                    0,
                    &|| "x".into(),
                    decimals,
                    false,
                    &mut b,
                );
                let s = slow.unwrap_or_else(|_| {
                    panic!("{c}: the fast path accepted what the general one refuses")
                });
                assert_eq!((cents, &c.as_bytes()[..len]), (s.cents, &b[..]), "{c}");
            }
        }
    }

    #[test]
    fn cents_text() {
        let mut out = Vec::new();
        let d = from_cents(-5, &mut out);
        assert_eq!(&out[d.start as usize..], b"-0.05");
        out.clear();
        from_cents(12340, &mut out);
        assert_eq!(out, b"123.4");
        assert_eq!(round_div(5, 10), 1);
        assert_eq!(round_div(-5, 10), -1);
        assert_eq!(round_div(4, 10), 0);
    }
}
