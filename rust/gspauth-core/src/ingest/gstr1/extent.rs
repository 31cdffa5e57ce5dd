//! Extents: where a value of the GSTR-1 file ends — the bracket that brings the
//! nesting back to zero outside strings, a string's closing quote, or a scalar's
//! next delimiter — scanned incrementally, across feeds, with or without keeping
//! the bytes (a record is kept; a value read past is not).

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ExtKind {
    Container,
    Str,
    Scalar,
}

pub(super) struct Extent {
    pub(super) kind: ExtKind,
    pub(super) keep: bool,
    pub(super) line: u64,
    pub(super) scan: usize,
    pub(super) depth: usize,
    pub(super) in_str: bool,
    pub(super) esc: bool,
    pub(super) too_large: bool,
}

impl Gstr1Reader {
    pub(super) fn start_extent(&mut self, b: u8, keep: bool) {
        let kind = match b {
            b'{' | b'[' => ExtKind::Container,
            b'"' => ExtKind::Str,
            _ => ExtKind::Scalar,
        };
        self.extent = Some(Extent {
            kind,
            keep,
            line: self.line,
            scan: if kind == ExtKind::Container { 0 } else { 1 },
            depth: 0,
            in_str: kind == ExtKind::Str,
            esc: false,
            too_large: false,
        });
    }

    pub(super) fn run_extent(
        &mut self,
        last: bool,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) -> Step<()> {
        let mut ext = self.extent.take().expect("an extent");
        let Some(end) = self.scan(&mut ext, last) else {
            if ext.keep && !ext.too_large && ext.scan > MAX {
                ext.too_large = true;
                sink.error(
                    ext.line,
                    "too-large",
                    format!("the record is longer than {MAX} bytes"),
                );
            }
            if !ext.keep || ext.too_large {
                self.advance(ext.scan);
                ext.scan = 0;
            }
            self.extent = Some(ext);
            if last {
                return fatal(self.eof_line(), "truncated", "the file ends inside a value");
            }
            return Err(Stop::Need);
        };
        let line = ext.line;
        let raw_range = self.pos..self.pos + end;
        if !ext.keep || ext.too_large {
            self.advance(end);
            return Ok(());
        }
        if end > MAX {
            self.advance(end);
            sink.error(
                line,
                "too-large",
                format!("the record is longer than {MAX} bytes"),
            );
            return Ok(());
        }
        let raw = self.buf[raw_range].to_vec();
        self.advance(end);
        let depth = self.stack.len();
        let (section, grouped) = {
            let f = &self.stack[depth - 1];
            (f.section.expect("records have a section"), f.grouped)
        };
        if grouped {
            let group = &mut self.stack[depth - 2];
            if group.key.is_none() {
                group.pending_bytes += raw.len();
                group.pending.push((raw, line));
                if group.pending_bytes > PENDING_MAX {
                    let what = section.counterparty().unwrap_or("");
                    return fatal(
                        line,
                        "too-large",
                        format!(
                            "a {} group has more than {PENDING_MAX} bytes of records before its {what}: \
                             write {what} first",
                            section.name()
                        ),
                    );
                }
                return Ok(());
            }
            let key = group.key.clone().unwrap_or_default();
            self.record(section, &key, &raw, line, sink, work);
        } else {
            self.record(section, &[], &raw, line, sink, work);
        }
        Ok(())
    }

    /// Scan on from `ext.scan`; the extent's length once complete.
    fn scan(&self, ext: &mut Extent, last: bool) -> Option<usize> {
        let (buf, base) = (&self.buf, self.pos);
        let n = buf.len();
        let mut i = base + ext.scan;
        if ext.kind == ExtKind::Scalar {
            return match buf[i..]
                .iter()
                .position(|&c| matches!(c, b',' | b']' | b'}' | b' ' | b'\t' | b'\r' | b'\n'))
            {
                Some(k) => Some(i + k - base),
                None => {
                    ext.scan = n - base;
                    if last {
                        Some(ext.scan)
                    } else {
                        None
                    }
                }
            };
        }
        loop {
            if ext.in_str {
                if ext.esc {
                    if i >= n {
                        break;
                    }
                    ext.esc = false;
                    i += 1;
                    continue;
                }
                match memchr::memchr2(b'"', b'\\', &buf[i..]) {
                    None => {
                        i = n;
                        break;
                    }
                    Some(k) => {
                        i += k + 1;
                        if buf[i - 1] == b'\\' {
                            ext.esc = true;
                            continue;
                        }
                        ext.in_str = false;
                        if ext.kind == ExtKind::Str {
                            return Some(i - base);
                        }
                        continue;
                    }
                }
            }
            match buf[i..]
                .iter()
                .position(|&c| matches!(c, b'"' | b'{' | b'}' | b'[' | b']'))
            {
                None => {
                    i = n;
                    break;
                }
                Some(k) => {
                    i += k + 1;
                    match buf[i - 1] {
                        b'"' => ext.in_str = true,
                        b'{' | b'[' => ext.depth += 1,
                        _ => {
                            ext.depth = ext.depth.wrapping_sub(1);
                            if ext.depth == 0 {
                                return Some(i - base);
                            }
                        }
                    }
                }
            }
        }
        ext.scan = i - base;
        None
    }
}
