//! CSV in the layout of the GST offline tool's section templates (twin of
//! `gspauth/ingest/_python/_csv.py`, whose docstring states the row syntax).
//!
//! Rows are split into one reused buffer (no allocation per row or field); the
//! rows of one invoice are folded into the record model as they come, and the
//! record is finished when a row of another invoice (or the end) arrives.

use crate::ingest::error::{reject, Res};
use crate::ingest::model::{at_line, Val};
use crate::ingest::numbers::{csv_number, from_cents, round_div, Dec};
use crate::ingest::parser::{Config, Sink, Work, MAX_RECORD_BYTES};
use crate::ingest::rules::MAX_ITEMS;
use crate::ingest::schema::{record_table, Table, TaxSlots, DET, DET_IGST, ITEM_DET, ITEM_NUM};
use crate::ingest::text::show;
use crate::ingest::Section;

/// Logical columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
enum Col {
    Ctin,
    Name,
    Inum,
    Idt,
    Val,
    Pos,
    Rchrg,
    Diff,
    InvTyp,
    Etin,
    Rt,
    Txval,
    Csamt,
    Typ,
    NtNum,
    NtDt,
    Ntty,
    HsnSc,
    Desc,
    Uqc,
    Qty,
    Iamt,
    Camt,
    Samt,
}
const N_COLS: usize = 24;

/// Header name (as the tool writes it) → logical column.
const COLUMNS: [(&str, Col); 27] = [
    ("GSTIN/UIN of Recipient", Col::Ctin),
    ("Receiver Name", Col::Name),
    ("Invoice Number", Col::Inum),
    ("Invoice date", Col::Idt),
    ("Invoice Value", Col::Val),
    ("Place Of Supply", Col::Pos),
    ("Reverse Charge", Col::Rchrg),
    ("Applicable % of Tax Rate", Col::Diff),
    ("Invoice Type", Col::InvTyp),
    ("E-Commerce GSTIN", Col::Etin),
    ("Rate", Col::Rt),
    ("Taxable Value", Col::Txval),
    ("Cess Amount", Col::Csamt),
    ("Type", Col::Typ),
    ("Note Number", Col::NtNum),
    ("Note Date", Col::NtDt),
    ("Note Type", Col::Ntty),
    ("Note Supply Type", Col::InvTyp),
    ("Note Value", Col::Val),
    ("HSN", Col::HsnSc),
    ("Description", Col::Desc),
    ("UQC", Col::Uqc),
    ("Total Quantity", Col::Qty),
    ("Total Value", Col::Val),
    ("Integrated Tax Amount", Col::Iamt),
    ("Central Tax Amount", Col::Camt),
    ("State/UT Tax Amount", Col::Samt),
];

const B2B: &[&str] = &[
    "GSTIN/UIN of Recipient",
    "Receiver Name",
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Reverse Charge",
    "Applicable % of Tax Rate",
    "Invoice Type",
    "E-Commerce GSTIN",
    "Rate",
    "Taxable Value",
    "Cess Amount",
];
const B2B_V1: &[&str] = &[
    "GSTIN/UIN of Recipient",
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Reverse Charge",
    "Invoice Type",
    "E-Commerce GSTIN",
    "Rate",
    "Taxable Value",
    "Cess Amount",
];
const B2CL: &[&str] = &[
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Applicable % of Tax Rate",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
const B2CL_V1: &[&str] = &[
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
const B2CS: &[&str] = &[
    "Type",
    "Place Of Supply",
    "Applicable % of Tax Rate",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
const B2CS_RATE_FIRST: &[&str] = &[
    "Type",
    "Place Of Supply",
    "Rate",
    "Applicable % of Tax Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
const B2CS_V1: &[&str] = &[
    "Type",
    "Place Of Supply",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
const CDNR: &[&str] = &[
    "GSTIN/UIN of Recipient",
    "Receiver Name",
    "Note Number",
    "Note Date",
    "Note Type",
    "Place Of Supply",
    "Reverse Charge",
    "Note Supply Type",
    "Note Value",
    "Applicable % of Tax Rate",
    "Rate",
    "Taxable Value",
    "Cess Amount",
];
const HSN: &[&str] = &[
    "HSN",
    "Description",
    "UQC",
    "Total Quantity",
    "Total Value",
    "Rate",
    "Taxable Value",
    "Integrated Tax Amount",
    "Central Tax Amount",
    "State/UT Tax Amount",
    "Cess Amount",
];

/// The accepted header rows of a section, the current template first.
fn layouts(section: Section) -> &'static [&'static [&'static str]] {
    match section {
        Section::B2b => &[B2B, B2B_V1],
        Section::B2cl => &[B2CL, B2CL_V1],
        Section::B2cs => &[B2CS, B2CS_RATE_FIRST, B2CS_V1],
        Section::Cdnr => &[CDNR],
        Section::Hsn => &[HSN],
    }
}

/// Invoice Type / Note Supply Type labels (ASCII-case-insensitive) → inv_typ.
const INV_TYPE_LABELS: [(&str, &str); 7] = [
    ("regular b2b", "R"),
    ("regular", "R"),
    ("sez supplies with payment", "SEWP"),
    ("sez supplies without payment", "SEWOP"),
    ("deemed exp", "DE"),
    ("deemed exports", "DE"),
    ("intra-state supplies attracting igst", "CBW"),
];
const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

fn col_of(name: &str) -> Col {
    COLUMNS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known column")
        .1
}

/// The header name the current template gives a logical column.
fn title(section: Section, col: Col) -> &'static str {
    for layout in layouts(section) {
        for name in layout.iter() {
            if col_of(name) == col {
                return name;
            }
        }
    }
    ""
}

fn key_cols(section: Section) -> &'static [Col] {
    match section {
        Section::B2b => &[Col::Ctin, Col::Inum],
        Section::B2cl => &[Col::Inum],
        Section::Cdnr => &[Col::Ctin, Col::NtNum],
        _ => &[],
    }
}

fn invoice_cols(section: Section) -> &'static [Col] {
    match section {
        Section::B2b => &[
            Col::Idt,
            Col::Val,
            Col::Pos,
            Col::Rchrg,
            Col::Diff,
            Col::InvTyp,
            Col::Etin,
        ],
        Section::B2cl => &[Col::Idt, Col::Val, Col::Pos, Col::Diff, Col::Etin],
        Section::Cdnr => &[
            Col::NtDt,
            Col::Ntty,
            Col::Pos,
            Col::Rchrg,
            Col::InvTyp,
            Col::Val,
            Col::Diff,
        ],
        _ => &[],
    }
}

/// Header normalisation: trimmed, runs of spaces/tabs as one space, ASCII lower case.
fn norm(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut space = false;
    for &b in trim(name) {
        if b == b' ' || b == b'\t' {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(b' ');
        }
        space = false;
        out.push(b.to_ascii_lowercase());
    }
    out
}

fn trim(s: &[u8]) -> &[u8] {
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

struct RowError {
    code: &'static str,
    message: &'static str,
    at: usize,
}

/// One row from `start` into `cells`/`spans`: `Ok(Some(end after the terminator))`,
/// `Ok(None)` when more input is needed.
fn split(
    buf: &[u8],
    start: usize,
    last: bool,
    cells: &mut Vec<u8>,
    spans: &mut Vec<(u32, u32)>,
) -> Result<Option<usize>, RowError> {
    cells.clear();
    spans.clear();
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
}

pub(crate) struct CsvReader {
    section: Section,
    gstin: [u8; 15],
    fp: [u8; 6],
    buf: Vec<u8>,
    pos: usize,
    line: u64,
    skip_to_lf: bool,
    /// Logical column → index in the row, once the header is read.
    columns: Option<[Option<usize>; N_COLS]>,
    width: usize,
    open: Option<Open>,
    gap: u64,
    rows: u64,
    cells: Vec<u8>,
    spans: Vec<(u32, u32)>,
}

/// The current row's cells by logical column.
struct Row<'a> {
    cells: &'a [u8],
    spans: &'a [(u32, u32)],
    columns: &'a [Option<usize>; N_COLS],
}

impl<'a> Row<'a> {
    #[inline]
    fn get(&self, col: Col) -> &'a [u8] {
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
fn trimmed(cells: &[u8], from: usize) -> (u32, u32) {
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
fn cells_utf8(cells: &[u8], spans: &[(u32, u32)], width: usize) -> bool {
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

fn date(cell: &[u8], what: &str) -> Res<[u8; 10]> {
    let ok = cell.len() == 11
        && cell[2] == b'-'
        && cell[6] == b'-'
        && cell[..2].iter().all(u8::is_ascii_digit)
        && cell[3..6].iter().all(u8::is_ascii_alphabetic)
        && cell[7..].iter().all(u8::is_ascii_digit);
    let month = if ok {
        let m = cell[3..6].to_ascii_lowercase();
        MONTHS.iter().position(|x| *x == m.as_slice())
    } else {
        None
    };
    let Some(month) = month else {
        reject!(
            "date",
            "{what} {} is not a date dd-mmm-yyyy (e.g. 05-Jul-2017)",
            show(cell)
        );
    };
    let mut out = [0u8; 10];
    out[..2].copy_from_slice(&cell[..2]);
    out[2] = b'-';
    out[3] = b'0' + ((month + 1) / 10) as u8;
    out[4] = b'0' + ((month + 1) % 10) as u8;
    out[5] = b'-';
    out[6..].copy_from_slice(&cell[7..]);
    Ok(out)
}

fn pos(cell: &[u8]) -> Res<[u8; 2]> {
    if cell.len() >= 2
        && cell[..2].iter().all(u8::is_ascii_digit)
        && (cell.len() == 2 || cell[2] == b'-')
    {
        return Ok([cell[0], cell[1]]);
    }
    reject!(
        "pos",
        "Place Of Supply {} must be a state code and name such as 27-Maharashtra",
        show(cell)
    )
}

fn inv_typ(cell: &[u8], what: &str) -> Res<&'static str> {
    let lower = cell.to_ascii_lowercase();
    match INV_TYPE_LABELS.iter().find(|(l, _)| l.as_bytes() == lower.as_slice()) {
        Some((_, code)) => Ok(code),
        None => reject!(
            "value",
            "{what} {} is not one of: Regular B2B, SEZ supplies with payment, SEZ supplies without payment, \
             Deemed Exp, Intra-State supplies attracting IGST",
            show(cell)
        ),
    }
}

fn number(cell: &[u8], what: &'static str, negative: bool, out: &mut Vec<u8>) -> Res<Dec> {
    csv_number(cell, &|| what.to_owned(), 2, negative, out)
}

/// `Applicable % of Tax Rate`: empty, or 65 (→ diff_percent 0.65).
fn diff(cell: &[u8], out: &mut Vec<u8>) -> Res<Option<Dec>> {
    if cell.is_empty() {
        return Ok(None);
    }
    let n = number(cell, "Applicable % of Tax Rate", false, out)?;
    if n.cents != 6500 {
        reject!("value", "Applicable % of Tax Rate must be empty or 65");
    }
    Ok(Some(from_cents(65, out)))
}

/// Put the computed tax columns of an object (half-up to the paisa) into its slots.
fn taxed(work: &mut Work, base: u32, ix: &TaxSlots, factor: i64, igst: bool, nil: bool) {
    let m = &mut work.model;
    let cents = |i: Option<usize>| match i.map(|i| m.get(base, i)) {
        Some(Val::Num(d)) => d.cents as i128,
        _ => 0,
    };
    let exact = cents(ix.txval) * cents(ix.rt) * factor as i128;
    let slot = |i: Option<usize>| base as usize + i.expect("a tax slot");
    if igst {
        let iamt = if nil { 0 } else { round_div(exact, 1_000_000) };
        let d = from_cents(iamt, &mut m.nums);
        m.slots[slot(ix.iamt)] = Val::Num(d);
    } else {
        let half = from_cents(round_div(exact, 2_000_000), &mut m.nums);
        m.slots[slot(ix.camt)] = Val::Num(half);
        m.slots[slot(ix.samt)] = Val::Num(half);
    }
}

impl CsvReader {
    pub fn new(cfg: &Config) -> Self {
        CsvReader {
            section: cfg.section.expect("checked by Parser::new"),
            gstin: cfg.gstin.expect("checked by Parser::new"),
            fp: cfg.fp.expect("checked by Parser::new"),
            buf: Vec::new(),
            pos: 0,
            line: 1,
            skip_to_lf: false,
            columns: None,
            width: 0,
            open: None,
            gap: 0,
            rows: 0,
            cells: Vec::new(),
            spans: Vec::new(),
        }
    }

    pub fn feed(&mut self, data: &[u8], last: bool, sink: &mut Sink<'_>, work: &mut Work) {
        self.buf.extend_from_slice(data);
        while !*sink.failed {
            if self.skip_to_lf {
                match memchr::memchr(b'\n', &self.buf[self.pos..]) {
                    None => {
                        self.consume(self.buf.len());
                        break;
                    }
                    Some(k) => {
                        self.consume(self.pos + k + 1);
                        self.skip_to_lf = false;
                        continue;
                    }
                }
            }
            if self.pos == self.buf.len() {
                break;
            }
            let line = self.line;
            let mut cells = std::mem::take(&mut self.cells);
            let mut spans = std::mem::take(&mut self.spans);
            let got = split(&self.buf, self.pos, last, &mut cells, &mut spans);
            let too_large = || format!("the row is longer than {MAX_RECORD_BYTES} bytes");
            match got {
                Err(e) => self.unreadable(line, e.code, e.message.to_owned(), e.at, sink),
                Ok(None) => {
                    if self.buf.len() - self.pos > MAX_RECORD_BYTES {
                        self.unreadable(line, "too-large", too_large(), self.pos, sink);
                    } else {
                        self.cells = cells;
                        self.spans = spans;
                        break;
                    }
                }
                Ok(Some(end)) => {
                    if end - self.pos > MAX_RECORD_BYTES {
                        self.unreadable(line, "too-large", too_large(), self.pos, sink);
                    } else {
                        self.consume(end);
                        self.row(&cells, &spans, line, sink, work);
                    }
                }
            }
            self.cells = cells;
            self.spans = spans;
        }
        if last && !*sink.failed {
            self.close(sink, work);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
    }

    fn consume(&mut self, end: usize) {
        self.line += memchr::memchr_iter(b'\n', &self.buf[self.pos..end]).count() as u64;
        self.pos = end;
    }

    fn unreadable(
        &mut self,
        line: u64,
        code: &'static str,
        message: String,
        at: usize,
        sink: &mut Sink<'_>,
    ) {
        self.consume(at);
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

    fn row(
        &mut self,
        cells: &[u8],
        spans: &[(u32, u32)],
        line: u64,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) {
        let field = |i: usize| &cells[spans[i].0 as usize..spans[i].1 as usize];
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
            if !cells_utf8(cells, spans, width) {
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
            cells,
            spans,
            columns: &columns,
        };
        let gap = std::mem::take(&mut self.gap);
        if key_cols(self.section).is_empty() {
            self.close(sink, work);
            self.single(&row, line, sink, work);
        } else {
            self.fold(&row, line, gap, sink, work);
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

    fn fold(&mut self, row: &Row<'_>, line: u64, gap: u64, sink: &mut Sink<'_>, work: &mut Work) {
        let section = self.section;
        let same = self.open.as_ref().is_some_and(|o| {
            o.key.len() == key_cols(section).len()
                && key_cols(section)
                    .iter()
                    .zip(&o.key)
                    .all(|(&c, k)| row.get(c) == k.as_slice())
        });
        if same {
            let open = self.open.as_mut().expect("same invoice");
            if open.bad {
                return;
            }
            let checked = (|| -> Res<()> {
                if gap != 0 {
                    reject!(
                        "csv",
                        "an unreadable row (line {gap}) interrupts this invoice"
                    );
                }
                for (&col, first) in invoice_cols(section).iter().zip(&open.cells) {
                    if row.get(col) != first.as_slice() {
                        reject!(
                            "inconsistent",
                            "{} differs from the invoice's first row (line {})",
                            title(section, col),
                            open.line
                        );
                    }
                }
                Self::item(open, row, section, work)
            })();
            if let Err(r) = checked {
                let open = self.open.as_mut().expect("same invoice");
                open.bad = true;
                sink.reject(line, at_line(r, line));
            }
            return;
        }
        self.close(sink, work);
        work.model.clear();
        let table = record_table(section);
        let mut open = Open {
            key: key_cols(section)
                .iter()
                .map(|&c| row.get(c).to_vec())
                .collect(),
            line,
            cells: invoice_cols(section)
                .iter()
                .map(|&c| row.get(c).to_vec())
                .collect(),
            pos: Vec::new(),
            base: work.model.object(table),
            dets: Vec::new(),
            bad: false,
        };
        let checked = self
            .invoice_fields(&mut open, row, work)
            .and_then(|()| Self::item(&mut open, row, section, work));
        if let Err(r) = checked {
            open.bad = true;
            sink.reject(line, at_line(r, line));
        }
        self.open = Some(open);
    }

    fn invoice_fields(&self, open: &mut Open, row: &Row<'_>, work: &mut Work) -> Res<()> {
        let s = self.section;
        let table = record_table(s);
        let m = &mut work.model;
        let base = open.base as usize;
        let set = |m: &mut crate::ingest::model::Model, name: &str, v: Val| {
            m.slots[base + table.at(name)] = v;
        };
        if s == Section::Cdnr {
            let v = m.push_str(row.get(Col::NtNum));
            set(m, "nt_num", v);
            let d = date(row.get(Col::NtDt), "Note Date")?;
            let v = m.push_str(&d);
            set(m, "nt_dt", v);
            let v = m.push_str(row.get(Col::Ntty));
            set(m, "ntty", v);
        } else {
            let v = m.push_str(row.get(Col::Inum));
            set(m, "inum", v);
            let d = date(row.get(Col::Idt), "Invoice date")?;
            let v = m.push_str(&d);
            set(m, "idt", v);
        }
        let val = number(row.get(Col::Val), title(s, Col::Val), false, &mut m.nums)?;
        set(m, "val", Val::Num(val));
        let p = pos(row.get(Col::Pos))?;
        open.pos = p.to_vec();
        if s != Section::B2cl {
            let v = m.push_str(&p);
            set(m, "pos", v);
            let v = m.push_str(row.get(Col::Rchrg));
            set(m, "rchrg", v);
        }
        if let Some(d) = diff(row.get(Col::Diff), &mut m.nums)? {
            set(m, "diff_percent", Val::Num(d));
        }
        if s != Section::B2cl {
            let code = inv_typ(row.get(Col::InvTyp), title(s, Col::InvTyp))?;
            let v = m.push_str(code.as_bytes());
            set(m, "inv_typ", v);
        }
        let etin = row.get(Col::Etin);
        if !etin.is_empty() {
            let v = m.push_str(etin);
            set(m, "etin", v);
        }
        Ok(())
    }

    fn item(open: &mut Open, row: &Row<'_>, section: Section, work: &mut Work) -> Res<()> {
        if open.dets.len() >= MAX_ITEMS {
            reject!("items", "itms has more than {MAX_ITEMS} items");
        }
        let m = &mut work.model;
        let rt = number(row.get(Col::Rt), "Rate", false, &mut m.nums)?;
        let txval = number(row.get(Col::Txval), "Taxable Value", false, &mut m.nums)?;
        let cess = row.get(Col::Csamt);
        let csamt = if cess.is_empty() {
            from_cents(0, &mut m.nums)
        } else {
            number(cess, "Cess Amount", false, &mut m.nums)?
        };
        let det_table = det_table(section);
        let ix = TaxSlots::of_det(det_table);
        let det = m.object(det_table);
        for (i, v) in [(ix.rt, rt), (ix.txval, txval), (ix.csamt, csamt)] {
            m.slots[det as usize + i.expect("an itm_det slot")] = Val::Num(v);
        }
        open.dets.push(det);
        Ok(())
    }

    fn close(&mut self, sink: &mut Sink<'_>, work: &mut Work) {
        let Some(open) = self.open.take() else {
            return;
        };
        if open.bad {
            return;
        }
        let section = self.section;
        let table = record_table(section);
        let m = &mut work.model;
        let str_at = |m: &crate::ingest::model::Model, name: &str| -> Vec<u8> {
            m.bytes(&[], m.get(open.base, table.at(name))).to_vec()
        };
        let (igst, nil) = if section == Section::B2cl {
            (true, false)
        } else {
            let t = str_at(m, "inv_typ");
            (
                matches!(t.as_slice(), b"SEWP" | b"SEWOP" | b"CBW")
                    || open.pos.as_slice() != &self.gstin[..2],
                t == b"SEWOP",
            )
        };
        let factor = if m.get(open.base, table.at("diff_percent")) == Val::Absent {
            100
        } else {
            65
        };
        let item_table = table.fields[table.at("itms")].table.expect("itms table");
        let det_table = det_table(section);
        let first = m.items.len() as u32;
        for (n, &det) in open.dets.iter().enumerate() {
            taxed(work, det, TaxSlots::of_det(det_table), factor, igst, nil);
            let m = &mut work.model;
            let item = m.object(item_table);
            m.slots[item as usize + ITEM_DET] = Val::Obj(det);
            let num = from_cents((n as i64 + 1) * 100, &mut m.nums);
            m.slots[item as usize + ITEM_NUM] = Val::Num(num);
            m.items.push(item);
        }
        let m = &mut work.model;
        m.slots[open.base as usize + table.at("itms")] = Val::Arr {
            start: first,
            len: open.dets.len() as u32,
        };
        let key = if section == Section::B2cl {
            open.pos.clone()
        } else {
            open.key[0].clone()
        };
        sink.record(
            section,
            &self.gstin,
            &self.fp,
            &key,
            &work.model,
            &[],
            open.base,
            table,
            open.line,
        );
    }

    fn single(&mut self, row: &Row<'_>, line: u64, sink: &mut Sink<'_>, work: &mut Work) {
        work.model.clear();
        let section = self.section;
        let table = record_table(section);
        let built = if section == Section::B2cs {
            self.b2cs(row, work)
        } else {
            self.hsn(row, work)
        };
        match built {
            Ok(base) => sink.record(
                section,
                &self.gstin,
                &self.fp,
                &[],
                &work.model,
                &[],
                base,
                table,
                line,
            ),
            Err(r) => sink.reject(line, r),
        }
    }

    fn b2cs(&self, row: &Row<'_>, work: &mut Work) -> Res<u32> {
        let table = record_table(Section::B2cs);
        let m = &mut work.model;
        let base = m.object(table);
        let b = base as usize;
        let v = m.push_str(row.get(Col::Typ));
        m.slots[b + table.at("typ")] = v;
        let p = pos(row.get(Col::Pos))?;
        let v = m.push_str(&p);
        m.slots[b + table.at("pos")] = v;
        let d = diff(row.get(Col::Diff), &mut m.nums)?;
        let rt = number(row.get(Col::Rt), "Rate", false, &mut m.nums)?;
        m.slots[b + table.at("rt")] = Val::Num(rt);
        let txval = number(row.get(Col::Txval), "Taxable Value", true, &mut m.nums)?;
        m.slots[b + table.at("txval")] = Val::Num(txval);
        let cess = row.get(Col::Csamt);
        let csamt = if cess.is_empty() {
            from_cents(0, &mut m.nums)
        } else {
            number(cess, "Cess Amount", true, &mut m.nums)?
        };
        m.slots[b + table.at("csamt")] = Val::Num(csamt);
        let etin = row.get(Col::Etin);
        if !etin.is_empty() {
            let v = m.push_str(etin);
            m.slots[b + table.at("etin")] = v;
        }
        let intra = p == self.gstin[..2];
        let v = m.push_str(if intra { b"INTRA" } else { b"INTER" });
        m.slots[b + table.at("sply_ty")] = v;
        let mut factor = 100;
        if let Some(d) = d {
            m.slots[b + table.at("diff_percent")] = Val::Num(d);
            factor = 65;
        }
        taxed(work, base, &TaxSlots::of(table), factor, !intra, false);
        Ok(base)
    }

    fn hsn(&self, row: &Row<'_>, work: &mut Work) -> Res<u32> {
        let table = record_table(Section::Hsn);
        let m = &mut work.model;
        let base = m.object(table);
        let b = base as usize;
        let num = from_cents(self.rows as i64 * 100, &mut m.nums);
        m.slots[b + table.at("num")] = Val::Num(num);
        let v = m.push_str(row.get(Col::HsnSc));
        m.slots[b + table.at("hsn_sc")] = v;
        let desc = row.get(Col::Desc);
        if !desc.is_empty() {
            let v = m.push_str(desc);
            m.slots[b + table.at("desc")] = v;
        }
        let uqc = row.get(Col::Uqc);
        let code = &uqc[..memchr::memchr(b'-', uqc).unwrap_or(uqc.len())];
        let code = &code[..code
            .iter()
            .rposition(|&c| c != b' ' && c != b'\t')
            .map_or(0, |k| k + 1)];
        let v = m.push_str(code);
        m.slots[b + table.at("uqc")] = v;
        let qty = number(row.get(Col::Qty), "Total Quantity", false, &mut m.nums)?;
        m.slots[b + table.at("qty")] = Val::Num(qty);
        let val = row.get(Col::Val);
        if !val.is_empty() {
            let d = number(val, "Total Value", false, &mut m.nums)?;
            m.slots[b + table.at("val")] = Val::Num(d);
        }
        let rt = number(row.get(Col::Rt), "Rate", false, &mut m.nums)?;
        m.slots[b + table.at("rt")] = Val::Num(rt);
        let txval = number(row.get(Col::Txval), "Taxable Value", false, &mut m.nums)?;
        m.slots[b + table.at("txval")] = Val::Num(txval);
        for (col, title, name) in [
            (Col::Iamt, "Integrated Tax Amount", "iamt"),
            (Col::Camt, "Central Tax Amount", "camt"),
            (Col::Samt, "State/UT Tax Amount", "samt"),
            (Col::Csamt, "Cess Amount", "csamt"),
        ] {
            let cell = row.get(col);
            let d = if cell.is_empty() {
                from_cents(0, &mut m.nums)
            } else {
                number(cell, title, false, &mut m.nums)?
            };
            m.slots[b + table.at(name)] = Val::Num(d);
        }
        Ok(base)
    }
}

fn det_table(section: Section) -> &'static Table {
    if section == Section::B2cl {
        &DET_IGST
    } else {
        &DET
    }
}
