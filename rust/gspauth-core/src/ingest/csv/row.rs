//! Splitting a CSV row (the syntax is stated in `gspauth/ingest/_python/_csv.py`)
//! into one reused buffer, and reading its cells by logical column.

use super::layout::{Col, N_COLS};

pub(super) fn trim(s: &[u8]) -> &[u8] {
    let start = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(start, |k| k + 1);
    &s[start..end]
}

pub(super) struct RowError {
    pub(super) code: &'static str,
    pub(super) message: &'static str,
    pub(super) at: usize,
}

/// Where a cell is: a span of the input (unquoted fields, and quoted ones without
/// `""`), or of the row's own buffer (quoted fields whose `""` were unescaped).
/// Spans are trimmed of spaces and tabs.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    pub(super) a: u32,
    pub(super) b: u32,
    pub(super) own: bool,
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// Whether a byte of `w` equals `c`: the lowest flagged byte is exactly the first
/// such byte (borrows only run upwards).
#[inline]
fn eq_bytes(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * c as u64);
    x.wrapping_sub(ONES) & !x & HIGHS
}

/// The position of the first `,` `"` CR or LF in `s`, 8 bytes at a time.
#[inline]
fn delimiter(s: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let hits = eq_bytes(w, b',') | eq_bytes(w, b'"') | eq_bytes(w, b'\r') | eq_bytes(w, b'\n');
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..]
        .iter()
        .position(|&c| matches!(c, b',' | b'"' | b'\r' | b'\n'))
        .map(|k| at + k)
}

fn span_of(src: &[u8], from: usize, to: usize, own: bool) -> Span {
    let s = &src[from..to];
    // Most cells have nothing to trim.
    if !matches!(s.first(), Some(b' ' | b'\t')) && !matches!(s.last(), Some(b' ' | b'\t')) {
        return Span {
            a: from as u32,
            b: to as u32,
            own,
        };
    }
    let (a, b) = trimmed(&src[..to], from);
    Span { a, b, own }
}

/// One row (or its rest after a known prefix) from `start`, appended to `spans`
/// (unescaped quoted cells go to `cells`):
/// `Ok(Some(end after the terminator))`, `Ok(None)` when more input is needed.
/// `quoted_lfs` counts the line breaks inside quoted fields (the reader counts
/// lines without scanning the row again).
pub(super) fn split(
    buf: &[u8],
    start: usize,
    last: bool,
    cells: &mut Vec<u8>,
    spans: &mut Vec<Span>,
    quoted_lfs: &mut u64,
) -> Result<Option<usize>, RowError> {
    let n = buf.len();
    let mut i = start;
    loop {
        if i < n && buf[i] == b'"' {
            let mut j = i + 1;
            let mut escaped = false;
            let a = cells.len();
            let k = loop {
                match memchr::memchr(b'"', &buf[j..]) {
                    None => {
                        if last {
                            return Err(RowError {
                                code: "truncated",
                                message: "the file ends inside a quoted field",
                                at: n,
                            });
                        }
                        return Ok(None);
                    }
                    Some(off) => {
                        let k = j + off;
                        if k + 1 < n && buf[k + 1] == b'"' {
                            cells.extend_from_slice(&buf[j..=k]);
                            escaped = true;
                            j = k + 2;
                            continue;
                        }
                        if k + 1 == n && !last {
                            return Ok(None);
                        }
                        cells.extend_from_slice(&buf[j..k]);
                        break k;
                    }
                }
            };
            *quoted_lfs += memchr::memchr_iter(b'\n', &buf[i + 1..k]).count() as u64;
            spans.push(if escaped {
                span_of(cells, a, cells.len(), true)
            } else {
                cells.truncate(a);
                span_of(buf, i + 1, k, false)
            });
            i = k + 1;
            if i == n {
                return Ok(Some(n));
            }
            match buf[i] {
                b',' => {
                    i += 1;
                    continue;
                }
                b'\n' => return Ok(Some(i + 1)),
                b'\r' if i + 1 < n && buf[i + 1] == b'\n' => return Ok(Some(i + 2)),
                b'\r' if i + 1 == n && !last => return Ok(None),
                _ => {
                    return Err(RowError {
                        code: "csv",
                        message: "text after the closing quote of a field",
                        at: i,
                    })
                }
            }
        }
        let found = delimiter(&buf[i..]);
        let Some(off) = found else {
            if !last {
                return Ok(None);
            }
            spans.push(span_of(buf, i, n, false));
            return Ok(Some(n));
        };
        let k = i + off;
        let c = buf[k];
        if c == b'"' {
            return Err(RowError {
                code: "csv",
                message: "a quote inside an unquoted field (quote the whole field)",
                at: k,
            });
        }
        spans.push(span_of(buf, i, k, false));
        match c {
            b',' => i = k + 1,
            b'\n' => return Ok(Some(k + 1)),
            _ => {
                if k + 1 < n && buf[k + 1] == b'\n' {
                    return Ok(Some(k + 2));
                }
                if k + 1 == n && !last {
                    return Ok(None);
                }
                return Err(RowError {
                    code: "csv",
                    message: "a carriage return that does not end a line",
                    at: k,
                });
            }
        }
    }
}

/// The current row's cells by logical column.
pub(super) struct Row<'a> {
    pub(super) buf: &'a [u8],
    /// Where the row starts in `buf`.
    pub(super) start: usize,
    pub(super) cells: &'a [u8],
    pub(super) spans: &'a [Span],
    pub(super) columns: &'a [Option<usize>; N_COLS],
}

impl<'a> Row<'a> {
    #[inline]
    pub(super) fn get(&self, col: Col) -> &'a [u8] {
        match self.columns[col as usize] {
            Some(i) => cell(self.buf, self.cells, self.spans[i]),
            None => &[],
        }
    }
}

/// The bytes of a cell.
#[inline]
pub(super) fn cell<'a>(buf: &'a [u8], cells: &'a [u8], sp: Span) -> &'a [u8] {
    let src = if sp.own { cells } else { buf };
    &src[sp.a as usize..sp.b as usize]
}

/// The span of `cells[from..]` without its leading and trailing spaces and tabs.
pub(super) fn trimmed(cells: &[u8], from: usize) -> (u32, u32) {
    let s = &cells[from..];
    let lead = s
        .iter()
        .position(|&b| b != b' ' && b != b'\t')
        .unwrap_or(s.len());
    let end = s
        .iter()
        .rposition(|&b| b != b' ' && b != b'\t')
        .map_or(lead, |k| k + 1);
    ((from + lead) as u32, (from + end) as u32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delimiter_finds_the_first_separator() {
        for n in 0..30 {
            for d in [b',', b'"', b'\r', b'\n'] {
                let mut v = vec![b'x'; n];
                v.push(d);
                v.extend_from_slice(b",,\n");
                assert_eq!(delimiter(&v), Some(n));
            }
            assert_eq!(delimiter(&vec![0xe9; n]), None);
        }
    }
}
