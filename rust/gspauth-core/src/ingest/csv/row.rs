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

/// One row from `start` into `cells`/`spans`: `Ok(Some(end after the terminator))`,
/// `Ok(None)` when more input is needed. `quoted_lfs` counts the line breaks inside
/// quoted fields (the reader counts lines without scanning the row again).
pub(super) fn split(
    buf: &[u8],
    start: usize,
    last: bool,
    cells: &mut Vec<u8>,
    spans: &mut Vec<(u32, u32)>,
    quoted_lfs: &mut u64,
) -> Result<Option<usize>, RowError> {
    cells.clear();
    spans.clear();
    *quoted_lfs = 0;
    let n = buf.len();
    let mut i = start;
    // Cells are stored as read; their spans are trimmed of spaces and tabs.
    let push = |cells: &mut Vec<u8>, spans: &mut Vec<(u32, u32)>, s: &[u8]| {
        let a = cells.len();
        cells.extend_from_slice(s);
        spans.push(trimmed(cells, a));
    };
    loop {
        if i < n && buf[i] == b'"' {
            let mut j = i + 1;
            let a = cells.len() as u32;
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
            spans.push(trimmed(cells, a as usize));
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
        let found = buf[i..]
            .iter()
            .position(|&c| matches!(c, b',' | b'"' | b'\r' | b'\n'));
        let Some(off) = found else {
            if !last {
                return Ok(None);
            }
            push(cells, spans, &buf[i..n]);
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
        push(cells, spans, &buf[i..k]);
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
    pub(super) cells: &'a [u8],
    pub(super) spans: &'a [(u32, u32)],
    pub(super) columns: &'a [Option<usize>; N_COLS],
}

impl<'a> Row<'a> {
    #[inline]
    pub(super) fn get(&self, col: Col) -> &'a [u8] {
        match self.columns[col as usize] {
            Some(i) => {
                let (a, b) = self.spans[i];
                &self.cells[a as usize..b as usize]
            }
            None => &[],
        }
    }
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

/// Whether the first `width` cells are each valid UTF-8. The whole buffer is
/// checked in one call; when it is valid, a cell is valid exactly when it starts
/// and ends on a character boundary.
pub(super) fn cells_utf8(cells: &[u8], spans: &[(u32, u32)], width: usize) -> bool {
    let boundary = |i: usize| i >= cells.len() || (cells[i] & 0xc0) != 0x80;
    if std::str::from_utf8(cells).is_ok() {
        return spans[..width]
            .iter()
            .all(|&(a, b)| boundary(a as usize) && boundary(b as usize));
    }
    spans[..width]
        .iter()
        .all(|&(a, b)| std::str::from_utf8(&cells[a as usize..b as usize]).is_ok())
}
