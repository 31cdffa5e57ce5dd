//! Strings: the one canonical escape form, JSON string decoding to WTF-8, and
//! the rendering of input text inside messages.
//!
//! Decoded strings are kept as WTF-8: UTF-8 in which a lone surrogate (from a
//! `\ud800`-style escape without its partner) is encoded as its 3-byte form. A
//! string holding one is never written out (the record is a `surrogate` error),
//! but messages can still show it, as `\udxxx`, exactly as the reference does.

/// Code points of input text shown in a message before it is cut with `…`.
pub(crate) const SHOW_MAX: usize = 40;

const HEX: &[u8; 16] = b"0123456789abcdef";

/// Bytes that need an escape in a JSON string: controls, `"` and `\`.
#[inline]
fn needs_escape(b: u8) -> bool {
    b < 0x20 || b == b'"' || b == b'\\'
}

/// Append a short slice byte by byte: field names, numbers and codes are a few
/// bytes, and a `memcpy` call for each cost more than the copy (seen in profiles).
#[inline(always)]
pub(crate) fn put(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 24 {
        for &b in s {
            out.push(b);
        }
    } else {
        out.extend_from_slice(s);
    }
}

/// Append `src[start .. start + len]`, copying a fixed 16-byte window when the
/// span is that short and `src` extends that far (a constant-size copy needs no
/// `memcpy` call); the bytes past `len` are written and cut off again.
#[inline(always)]
pub(crate) fn put_span(out: &mut Vec<u8>, src: &[u8], start: usize, len: usize) {
    match src.get(start..start + 16) {
        Some(window) if len <= 16 => {
            let at = out.len();
            out.extend_from_slice(<&[u8; 16]>::try_from(window).expect("16 bytes"));
            out.truncate(at + len);
        }
        _ => out.extend_from_slice(&src[start..start + len]),
    }
}

/// Append `s` (UTF-8) as a JSON string literal: `\"` `\\` `\n` `\r` `\t` `\b` `\f`,
/// other controls as `\u00xx` (lowercase), everything else raw (Python's
/// `json.dumps(s, ensure_ascii=False)`).
pub(crate) fn write_str(out: &mut Vec<u8>, s: &[u8]) {
    out.push(b'"');
    if !s.iter().any(|&b| needs_escape(b)) {
        put(out, s);
        out.push(b'"');
        return;
    }
    let mut run = 0;
    for (i, &b) in s.iter().enumerate() {
        if needs_escape(b) {
            out.extend_from_slice(&s[run..i]);
            match b {
                b'"' => out.extend_from_slice(b"\\\""),
                b'\\' => out.extend_from_slice(b"\\\\"),
                b'\n' => out.extend_from_slice(b"\\n"),
                b'\r' => out.extend_from_slice(b"\\r"),
                b'\t' => out.extend_from_slice(b"\\t"),
                0x08 => out.extend_from_slice(b"\\b"),
                0x0c => out.extend_from_slice(b"\\f"),
                _ => out.extend_from_slice(&[
                    b'\\',
                    b'u',
                    b'0',
                    b'0',
                    HEX[(b >> 4) as usize],
                    HEX[(b & 15) as usize],
                ]),
            }
            run = i + 1;
        }
    }
    out.extend_from_slice(&s[run..]);
    out.push(b'"');
}

/// Length in bytes of the WTF-8 sequence that starts with `b`.
#[inline]
fn seq_len(b: u8) -> usize {
    match b {
        0x00..=0x7f => 1,
        0xc0..=0xdf => 2,
        0xe0..=0xef => 3,
        _ => 4,
    }
}

/// Number of code points of WTF-8 text.
pub(crate) fn code_points(s: &[u8]) -> usize {
    s.iter().filter(|&&b| (b & 0xc0) != 0x80).count()
}

/// `text` (WTF-8) as shown in a message: a JSON string literal in the canonical
/// form, lone surrogates as `\udxxx`, at most [`SHOW_MAX`] code points, then `…`.
pub(crate) fn show(text: &[u8]) -> String {
    let mut cut = 0;
    let mut n = 0;
    while cut < text.len() && n < SHOW_MAX {
        cut += seq_len(text[cut]).min(text.len() - cut);
        n += 1;
    }
    let mut out = Vec::with_capacity(cut + 8);
    out.push(b'"');
    let mut i = 0;
    let part = &text[..cut];
    while i < part.len() {
        let b = part[i];
        let l = seq_len(b).min(part.len() - i);
        if b == 0xed && l == 3 && part[i + 1] >= 0xa0 {
            let cp = 0xd000 | ((part[i + 1] as u32 & 0x3f) << 6) | (part[i + 2] as u32 & 0x3f);
            out.extend_from_slice(format!("\\u{cp:04x}").as_bytes());
        } else if l == 1 {
            let mut one = Vec::with_capacity(8);
            write_str(&mut one, &part[i..i + 1]);
            out.extend_from_slice(&one[1..one.len() - 1]);
        } else {
            out.extend_from_slice(&part[i..i + l]);
        }
        i += l;
    }
    if cut < text.len() {
        out.extend_from_slice("…".as_bytes());
    }
    out.push(b'"');
    String::from_utf8_lossy(&out).into_owned()
}

/// Push code point `cp` (may be a lone surrogate) as WTF-8.
fn push_cp(out: &mut Vec<u8>, cp: u32) {
    match cp {
        0..=0x7f => out.push(cp as u8),
        0x80..=0x7ff => out.extend_from_slice(&[0xc0 | (cp >> 6) as u8, 0x80 | (cp & 0x3f) as u8]),
        0x800..=0xffff => out.extend_from_slice(&[
            0xe0 | (cp >> 12) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
        _ => out.extend_from_slice(&[
            0xf0 | (cp >> 18) as u8,
            0x80 | ((cp >> 12) & 0x3f) as u8,
            0x80 | ((cp >> 6) & 0x3f) as u8,
            0x80 | (cp & 0x3f) as u8,
        ]),
    }
}

fn hex4(s: &[u8]) -> u32 {
    s.iter().fold(0, |acc, &c| {
        acc * 16
            + match c {
                b'0'..=b'9' => (c - b'0') as u32,
                b'a'..=b'f' => (c - b'a' + 10) as u32,
                _ => (c - b'A' + 10) as u32,
            }
    })
}

/// Decode the body of a JSON string whose syntax is already checked (between
/// the quotes) into `out` as WTF-8. Returns whether a lone surrogate was found.
pub(crate) fn decode_str(body: &[u8], out: &mut Vec<u8>) -> bool {
    let mut lone = false;
    let mut i = 0;
    while i < body.len() {
        let b = body[i];
        if b != b'\\' {
            let next = memchr::memchr(b'\\', &body[i..]).map_or(body.len(), |k| i + k);
            out.extend_from_slice(&body[i..next]);
            i = next;
            continue;
        }
        let e = body[i + 1];
        i += 2;
        match e {
            b'"' => out.push(b'"'),
            b'\\' => out.push(b'\\'),
            b'/' => out.push(b'/'),
            b'b' => out.push(0x08),
            b'f' => out.push(0x0c),
            b'n' => out.push(b'\n'),
            b'r' => out.push(b'\r'),
            b't' => out.push(b'\t'),
            _ => {
                let cp = hex4(&body[i..i + 4]);
                i += 4;
                if (0xd800..0xdc00).contains(&cp)
                    && body.len() >= i + 6
                    && body[i] == b'\\'
                    && body[i + 1] == b'u'
                {
                    let low = hex4(&body[i + 2..i + 6]);
                    if (0xdc00..0xe000).contains(&low) {
                        push_cp(out, 0x10000 + ((cp - 0xd800) << 10) + (low - 0xdc00));
                        i += 6;
                        continue;
                    }
                }
                if (0xd800..0xe000).contains(&cp) {
                    lone = true;
                }
                push_cp(out, cp);
            }
        }
    }
    lone
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_like_python() {
        let mut out = Vec::new();
        write_str(
            &mut out,
            "a\"\\\n\r\t\u{8}\u{c}\u{1}\u{7f}é\u{2028}".as_bytes(),
        );
        assert_eq!(
            out,
            "\"a\\\"\\\\\\n\\r\\t\\b\\f\\u0001\u{7f}é\u{2028}\"".as_bytes()
        );
    }

    #[test]
    fn decodes_pairs_and_flags_lone_surrogates() {
        let mut out = Vec::new();
        assert!(!decode_str(br"\ud83d\ude00\u00e9\/", &mut out));
        assert_eq!(out, "😀é/".as_bytes());
        out.clear();
        assert!(decode_str(br"\ud800A", &mut out));
        assert_eq!(show(&out), "\"\\ud800A\"");
    }

    #[test]
    fn show_cuts_at_forty_code_points() {
        let s = "é".repeat(45);
        let shown = show(s.as_bytes());
        assert_eq!(shown, format!("\"{}…\"", "é".repeat(40)));
    }
}
