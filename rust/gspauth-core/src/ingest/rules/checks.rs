//! Checks of single values: GSTINs, the period, dates, places of supply, codes.

use crate::ingest::error::{reject, Res};
use crate::ingest::text::show;

use super::Ctx;

/// GST state codes (as `gspauth.gstin.STATE_CODES`).
pub(crate) const STATE_CODES: [&str; 40] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "97", "99",
];
pub(super) const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

pub(super) fn is_state(code: &[u8]) -> bool {
    STATE_CODES.iter().any(|s| s.as_bytes() == code)
}

/// A place of supply: a state code other than 99, or 96 (foreign country).
pub(crate) fn is_pos(code: &[u8]) -> bool {
    code == b"96" || (code != b"99" && is_state(code))
}

/// The mod-36 check character of the first 14 characters of a GSTIN.
pub(crate) fn check_character(first14: &[u8]) -> u8 {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut total = 0u32;
    for (i, &c) in first14.iter().enumerate() {
        let v = if c.is_ascii_digit() {
            c - b'0'
        } else {
            c - b'A' + 10
        } as u32;
        let product = v * if i % 2 == 1 { 2 } else { 1 };
        total += product / 36 + product % 36;
    }
    ALPHABET[((36 - total % 36) % 36) as usize]
}

/// A GSTIN/UIN: shape, state code, mod-36 check character.
pub(crate) fn check_gstin(value: &[u8], what: &str, code: &'static str) -> Res<()> {
    let shape = value.len() == 15
        && value[..2].iter().all(u8::is_ascii_digit)
        && value[2..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if !shape {
        reject!(
            code,
            "{what} {} is not a GSTIN (2 digits, then 13 upper-case letters or digits)",
            show(value)
        );
    }
    if !is_state(&value[..2]) {
        reject!(
            code,
            "{what} {} starts with {}, which is not a GST state code",
            show(value),
            String::from_utf8_lossy(&value[..2])
        );
    }
    if check_character(&value[..14]) != value[14] {
        reject!(
            code,
            "{what} {} has a wrong check character (a typo?)",
            show(value)
        );
    }
    Ok(())
}

pub(super) fn two(b: &[u8]) -> u32 {
    (b[0] - b'0') as u32 * 10 + (b[1] - b'0') as u32
}

pub(super) fn four(b: &[u8]) -> u32 {
    two(&b[..2]) * 100 + two(&b[2..])
}

/// The return period MMYYYY, from 072017 on; returns (month, year).
pub(crate) fn check_fp(fp: &[u8]) -> Res<(u32, u32)> {
    let ok = fp.len() == 6 && fp.iter().all(u8::is_ascii_digit);
    if ok {
        let (m, y) = (two(&fp[..2]), four(&fp[2..]));
        if (1..=12).contains(&m) && (2017..=2099).contains(&y) && !(y == 2017 && m < 7) {
            return Ok((m, y));
        }
    }
    reject!(
        "period",
        "fp {} is not a return period MMYYYY from 072017 on",
        show(fp)
    )
}

/// The B2C-large threshold in paise: ₹2.5 lakh before 08-2024, ₹1 lakh from then.
pub(crate) fn b2cl_threshold(month: u32, year: u32) -> i64 {
    // ₹1,00,000 and ₹2,50,000, in paise.
    if (year, month) >= (2024, 8) {
        10_000_000
    } else {
        25_000_000
    }
}

pub(super) fn date(value: &[u8], what: &str, ctx: &Ctx<'_>) -> Res<()> {
    let shape = value.len() == 10
        && value[2] == b'-'
        && value[5] == b'-'
        && [0, 1, 3, 4, 6, 7, 8, 9]
            .iter()
            .all(|&i| value[i].is_ascii_digit());
    if !shape {
        reject!("date", "{what} {} is not a date dd-mm-yyyy", show(value));
    }
    let (d, mo, y) = (two(&value[..2]), two(&value[3..5]), four(&value[6..]));
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let text = String::from_utf8_lossy(value);
    if !((1..=12).contains(&mo)
        && d >= 1
        && d <= DAYS[mo as usize - 1] + u32::from(mo == 2 && leap))
    {
        reject!("date", "{what} {text} is not a calendar date");
    }
    if (mo, y) != (ctx.month, ctx.year) {
        reject!(
            "date",
            "{what} {text} is outside the return period {}",
            String::from_utf8_lossy(ctx.fp)
        );
    }
    Ok(())
}

pub(super) fn pos(value: &[u8], what: &str) -> Res<()> {
    if !is_pos(value) {
        reject!(
            "pos",
            "{what} {} is not a place-of-supply state code",
            show(value)
        );
    }
    Ok(())
}

pub(super) fn choice(value: &[u8], what: &str, allowed: &[&str]) -> Res<()> {
    if !allowed.iter().any(|a| a.as_bytes() == value) {
        reject!(
            "value",
            "{what} {} must be one of {}",
            show(value),
            allowed.join(", ")
        );
    }
    Ok(())
}

pub(super) fn doc_number(value: &[u8], what: &str) -> Res<()> {
    let ok = (1..=16).contains(&value.len())
        && value
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'/' || c == b'-');
    if !ok {
        reject!(
            "value",
            "{what} {} must be 1-16 letters, digits, '/' or '-'",
            show(value)
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstin_check_character() {
        assert_eq!(check_character(b"27AAPCD0007K1Z"), b'O');
        assert!(check_gstin(b"27AAPCD0007K1ZO", "gstin", "gstin").is_ok());
        assert_eq!(
            check_gstin(b"27AAPCD0007K1ZP", "gstin", "gstin")
                .unwrap_err()
                .code,
            "gstin"
        );
    }

    #[test]
    fn periods() {
        assert_eq!(check_fp(b"072017").unwrap(), (7, 2017));
        assert!(check_fp(b"062017").is_err());
        assert!(check_fp(b"132020").is_err());
        assert!(check_fp(b"07201").is_err());
        assert_eq!(b2cl_threshold(7, 2024), 25_000_000);
        assert_eq!(b2cl_threshold(8, 2024), 10_000_000);
    }
}
