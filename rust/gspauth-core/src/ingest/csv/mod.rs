//! CSV in the layout of the GST offline tool's section templates (twin of
//! `gspauth/ingest/_python/_csv.py`, whose docstring states the row syntax).
//!
//! Rows are split into one reused buffer (no allocation per row or field); the
//! rows of one invoice are folded into the record model as they come, and the
//! record is finished when a row of another invoice (or the end) arrives.

mod invoice;
mod layout;
mod row;
mod single;
mod values;

use layout::*;
use row::*;
use values::*;

use crate::ingest::error::{reject, Res};
use crate::ingest::model::{at_line, Val};
use crate::ingest::numbers::from_cents;
use crate::ingest::parser::{Config, Sink, Work, MAX_RECORD_BYTES};
use crate::ingest::rules::MAX_ITEMS;
use crate::ingest::schema::{record_table, TaxSlots, ITEM_DET, ITEM_NUM};
use crate::ingest::Section;

/// The folded invoice so far (its model is `Work::model`).
struct Open {
    key: Vec<Vec<u8>>,
    line: u64,
    /// The invoice-level cells of its first row.
    cells: Vec<Vec<u8>>,
    pos: Vec<u8>,
    base: u32,
    /// Slots of each item's `itm_det`, in row order.
    dets: Vec<u32>,
    bad: bool,
    /// The first row's bytes up to the separator after the last key or invoice-level
    /// cell, and the spans of the cells in it (relative to the row's start); empty when
    /// that row does not allow the shortcut (see `Prefix`).
    prefix: Prefix,
}

/// A row of the open invoice that starts with the same bytes as its first row up to
/// the separator after the last key or invoice-level column has the same key and
/// invoice-level cells (splitting is a left-to-right state machine): the reader then
/// splits only the rest of the row and skips comparing those cells. Recorded only when
/// the cells in the prefix are unquoted-or-plain spans of the input (no `""`), the
/// prefix ends at an unquoted separator, and it holds no line break.
#[derive(Default)]
struct Prefix {
    bytes: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

pub(crate) struct CsvReader {
    section: Section,
    gstin: [u8; 15],
    fp: [u8; 6],
    /// A row begun in an earlier block.
    buf: Vec<u8>,
    line: u64,
    skip_to_lf: bool,
    /// Logical column → index in the row, once the header is read.
    columns: Option<[Option<usize>; N_COLS]>,
    width: usize,
    /// The last row index among the key and invoice-level columns (sections with rows
    /// folded into invoices), once the header is read.
    prefix_col: Option<usize>,
    open: Option<Open>,
    gap: u64,
    rows: u64,
    cells: Vec<u8>,
    spans: Vec<Span>,
}

impl CsvReader {
    pub fn new(cfg: &Config) -> Self {
        CsvReader {
            section: cfg.section.expect("checked by Parser::new"),
            gstin: cfg.gstin.expect("checked by Parser::new"),
            fp: cfg.fp.expect("checked by Parser::new"),
            buf: Vec::new(),
            line: 1,
            skip_to_lf: false,
            columns: None,
            width: 0,
            prefix_col: None,
            open: None,
            gap: 0,
            rows: 0,
            cells: Vec::new(),
            spans: Vec::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8], last: bool, sink: &mut Sink<'_>, work: &mut Work) {
        let mut data = data;
        // A row begun in an earlier block is completed in the buffer: first up to the
        // block's first line break (where it usually ends), else with the whole block.
        let mut whole = false;
        while !self.buf.is_empty() && !*sink.failed {
            let take = if whole {
                data.len()
            } else {
                memchr::memchr(b'\n', data).map_or(data.len(), |k| k + 1)
            };
            whole = true;
            self.buf.extend_from_slice(&data[..take]);
            data = &data[take..];
            let buf = std::mem::take(&mut self.buf);
            let mut pos = 0;
            self.rows(&buf, &mut pos, last && data.is_empty(), sink, work);
            self.buf = buf;
            self.buf.drain(..pos);
            if data.is_empty() {
                break;
            }
        }
        if !*sink.failed {
            // The rows wholly inside the block are read where they are, without a copy.
            let mut pos = 0;
            self.rows(data, &mut pos, last, sink, work);
            if !*sink.failed {
                self.buf.extend_from_slice(&data[pos..]);
            }
        }
        if last && !*sink.failed {
            self.close(sink, work);
        }
    }

    /// The rows of `src` from `pos` on (`pos` ends where more input is needed).
    fn rows(
        &mut self,
        src: &[u8],
        pos: &mut usize,
        last: bool,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) {
        while !*sink.failed {
            if self.skip_to_lf {
                match memchr::memchr(b'\n', &src[*pos..]) {
                    None => {
                        self.consume(src, pos, src.len());
                        break;
                    }
                    Some(k) => {
                        self.consume(src, pos, *pos + k + 1);
                        self.skip_to_lf = false;
                        continue;
                    }
                }
            }
            if *pos == src.len() {
                break;
            }
            let line = self.line;
            let mut cells = std::mem::take(&mut self.cells);
            let mut spans = std::mem::take(&mut self.spans);
            cells.clear();
            spans.clear();
            let mut quoted_lfs = 0;
            let known = self.seed(src, *pos, &mut spans);
            let got = split(
                src,
                *pos + known,
                last,
                &mut cells,
                &mut spans,
                &mut quoted_lfs,
            );
            let too_large = || format!("the row is longer than {MAX_RECORD_BYTES} bytes");
            match got {
                Err(e) => self.unreadable(src, pos, line, e.code, e.message.to_owned(), e.at, sink),
                Ok(None) => {
                    if src.len() - *pos > MAX_RECORD_BYTES {
                        self.unreadable(src, pos, line, "too-large", too_large(), *pos, sink);
                    } else {
                        self.cells = cells;
                        self.spans = spans;
                        break;
                    }
                }
                Ok(Some(end)) => {
                    if end - *pos > MAX_RECORD_BYTES {
                        self.unreadable(src, pos, line, "too-large", too_large(), *pos, sink);
                    } else {
                        self.line += quoted_lfs + u64::from(src[end - 1] == b'\n');
                        let start = *pos;
                        *pos = end;
                        self.row(src, start..end, known, &cells, &spans, line, sink, work);
                    }
                }
            }
            self.cells = cells;
            self.spans = spans;
        }
    }

    /// When the row at `src[pos..]` starts with the open invoice's prefix: its cells'
    /// spans (into `spans`) and its length; else 0.
    #[inline]
    fn seed(&self, src: &[u8], pos: usize, spans: &mut Vec<Span>) -> usize {
        let Some(open) = &self.open else {
            return 0;
        };
        let p = &open.prefix;
        if p.bytes.is_empty() || !src[pos..].starts_with(&p.bytes) {
            return 0;
        }
        let at = pos as u32;
        spans.extend(p.spans.iter().map(|&(a, b)| Span {
            a: at + a,
            b: at + b,
            own: false,
        }));
        p.bytes.len()
    }

    /// The prefix of a first row (see `Prefix`).
    fn prefix(&self, row: &Row<'_>) -> Prefix {
        let Some(last) = self.prefix_col else {
            return Prefix::default();
        };
        let Some(spans) = row.spans.get(..=last) else {
            return Prefix::default();
        };
        let end = spans[last].b as usize;
        // A span that ends at a `,` of the input is an unquoted cell with nothing trimmed.
        if spans.iter().any(|s| s.own) || row.buf.get(end) != Some(&b',') {
            return Prefix::default();
        }
        let bytes = &row.buf[row.start..=end];
        if memchr::memchr(b'\n', bytes).is_some() {
            return Prefix::default();
        }
        let at = row.start as u32;
        Prefix {
            bytes: bytes.to_vec(),
            spans: spans.iter().map(|s| (s.a - at, s.b - at)).collect(),
        }
    }

    fn consume(&mut self, src: &[u8], pos: &mut usize, end: usize) {
        self.line += memchr::memchr_iter(b'\n', &src[*pos..end]).count() as u64;
        *pos = end;
    }

    #[allow(clippy::too_many_arguments)]
    fn unreadable(
        &mut self,
        src: &[u8],
        pos: &mut usize,
        line: u64,
        code: &'static str,
        message: String,
        at: usize,
        sink: &mut Sink<'_>,
    ) {
        self.consume(src, pos, at);
        self.skip_to_lf = true;
        if self.columns.is_none() {
            return sink.fatal(
                line,
                "header",
                format!("the header row cannot be read: {message}"),
            );
        }
        self.rows += 1;
        if self.gap == 0 {
            self.gap = line;
        }
        sink.error(line, code, message);
    }

    #[allow(clippy::too_many_arguments)]
    fn row(
        &mut self,
        buf: &[u8],
        raw: std::ops::Range<usize>,
        known: usize,
        cells: &[u8],
        spans: &[Span],
        line: u64,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) {
        let field = |i: usize| cell(buf, cells, spans[i]);
        if (0..spans.len()).all(|i| field(i).is_empty()) {
            return;
        }
        let Some(columns) = self.columns else {
            return self.header(spans.len(), &field, line, sink);
        };
        self.rows += 1;
        let width = self.width;
        let check = || -> Res<()> {
            if spans.len() < width || (width..spans.len()).any(|i| !field(i).is_empty()) {
                reject!(
                    "csv",
                    "the row has {} fields; the header has {width}",
                    spans.len()
                );
            }
            // Fields are separated by ASCII bytes: the row is UTF-8 exactly when each field
            // is (and a known prefix was checked in the invoice's first row).
            let rest = &buf[raw.start + known..raw.end];
            // Most rows are ASCII: an inlined word-at-a-time test before the full check.
            if !rest.is_ascii() && std::str::from_utf8(rest).is_err() {
                reject!("utf8", "the row is not valid UTF-8");
            }
            Ok(())
        };
        if let Err(r) = check() {
            if self.gap == 0 {
                self.gap = line;
            }
            return sink.reject(line, r);
        }
        let row = Row {
            buf,
            start: raw.start,
            cells,
            spans,
            columns: &columns,
        };
        let gap = std::mem::take(&mut self.gap);
        if key_cols(self.section).is_empty() {
            self.close(sink, work);
            self.single(&row, line, sink, work);
        } else {
            self.fold(&row, line, gap, known != 0, sink, work);
        }
    }

    fn header<'a>(
        &mut self,
        n: usize,
        field: &dyn Fn(usize) -> &'a [u8],
        line: u64,
        sink: &mut Sink<'_>,
    ) {
        let mut names: Vec<Vec<u8>> = (0..n).map(|i| norm(field(i))).collect();
        while names.last().is_some_and(|s| s.is_empty()) {
            names.pop();
        }
        for layout in layouts(self.section) {
            if layout.len() == names.len()
                && layout
                    .iter()
                    .zip(&names)
                    .all(|(l, n)| norm(l.as_bytes()) == *n)
            {
                let mut columns = [None; N_COLS];
                for (i, name) in layout.iter().enumerate() {
                    columns[col_of(name) as usize] = Some(i);
                }
                self.columns = Some(columns);
                self.width = layout.len();
                self.prefix_col = key_cols(self.section)
                    .iter()
                    .chain(invoice_cols(self.section))
                    .filter_map(|&c| columns[c as usize])
                    .max()
                    .filter(|_| !key_cols(self.section).is_empty());
                return;
            }
        }
        sink.fatal(
            line,
            "header",
            format!(
                "the header does not match the {} template of the GST offline tool; expected the columns: {}",
                self.section.name(),
                layouts(self.section)[0].join(", ")
            ),
        );
    }
}
