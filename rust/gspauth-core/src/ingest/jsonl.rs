//! JSONL: one record per line (twin of `gspauth/ingest/_python/_jsonl.py`).
//!
//! A line is the bytes before an LF (a CR before it is JSON whitespace). Lines of
//! only whitespace are skipped. A line longer than [`MAX_RECORD_BYTES`] is
//! `too-large` and is skipped up to its LF without being kept in memory.

use crate::ingest::error::{reject, Res};
use crate::ingest::fast;
use crate::ingest::json::{self, Tok};
use crate::ingest::model::{skip, Model, Path};
use crate::ingest::parser::{Sink, Work, MAX_RECORD_BYTES};
use crate::ingest::schema::line_table;
use crate::ingest::text::{decode_str, show};
use crate::ingest::Section;

pub(crate) struct JsonlReader {
    tail: Vec<u8>,
    line: u64,
    skipping: bool,
}

fn too_large() -> String {
    format!("the line is longer than {MAX_RECORD_BYTES} bytes")
}

/// Parse `raw` as JSON onto the tape: `utf8` / `json` errors.
pub(crate) fn parse_record(raw: &[u8], tape: &mut Vec<Tok>) -> Res<()> {
    if std::str::from_utf8(raw).is_err() {
        reject!("utf8", "the record is not valid UTF-8");
    }
    if json::parse(raw, tape).is_err() {
        reject!(
            "json",
            "the record is not valid JSON (or nests deeper than {} levels)",
            json::MAX_DEPTH
        );
    }
    Ok(())
}

/// The bytes of a string token (decoded into `buf` when it has escapes).
fn str_bytes<'a>(raw: &'a [u8], tok: Tok, buf: &'a mut Vec<u8>) -> &'a [u8] {
    match tok {
        Tok::Str {
            start,
            end,
            esc: false,
            ..
        } => &raw[start as usize..end as usize],
        Tok::Str { start, end, .. } => {
            buf.clear();
            decode_str(&raw[start as usize..end as usize], buf);
            buf
        }
        _ => &[],
    }
}

/// One line: section lookup, then the shape walk. Returns (section, first slot).
fn read_line(raw: &[u8], work: &mut Work) -> Res<(Section, u32)> {
    if std::str::from_utf8(raw).is_ok() {
        if let Some(section) = fast::section_guess(raw).and_then(Section::from_name) {
            let table = line_table(section);
            if let Some(base) = fast::record(raw, &mut work.model, table) {
                let got = work.model.get(base, table.at("section"));
                if work.model.bytes(raw, got) == section.name().as_bytes() {
                    #[cfg(debug_assertions)]
                    fast::check(raw, table, &work.model, base);
                    return Ok((section, base));
                }
            }
        }
    }
    parse_record(raw, &mut work.tape)?;
    let tape = &work.tape;
    let Tok::Obj { pairs, .. } = tape[0] else {
        reject!("type", "the line must be a JSON object");
    };
    // Duplicate keys of the line first. Keys without escapes (all of them, in
    // practice) are compared in place; an escaped one is decoded.
    let mut keys: Vec<std::borrow::Cow<'_, [u8]>> = Vec::with_capacity(pairs as usize);
    let mut k = 1;
    let mut section_at = None;
    for _ in 0..pairs {
        let name: std::borrow::Cow<'_, [u8]> = match tape[k] {
            Tok::Str {
                start,
                end,
                esc: false,
                ..
            } => std::borrow::Cow::Borrowed(&raw[start as usize..end as usize]),
            tok => {
                let mut buf = Vec::new();
                std::borrow::Cow::Owned(str_bytes(raw, tok, &mut buf).to_vec())
            }
        };
        if keys
            .iter()
            .any(|n| n.len() == name.len() && n.iter().zip(name.iter()).all(|(a, b)| a == b))
        {
            reject!(
                "duplicate-key",
                "the line has the field {} more than once",
                show(&name)
            );
        }
        if *name == *b"section" {
            section_at = Some(k + 1);
        }
        keys.push(name);
        k = skip(tape, k + 1);
    }
    let mut buf = Vec::new();
    let Some(at) = section_at else {
        reject!("missing-field", "the line has no section");
    };
    if !matches!(tape[at], Tok::Str { .. }) {
        reject!("type", "section must be a string");
    }
    let name = str_bytes(raw, tape[at], &mut buf);
    let Some(section) = Section::from_name(name) else {
        reject!(
            "section",
            "section {} is not supported (b2b, b2cl, b2cs, cdnr, hsn)",
            show(name)
        );
    };
    work.model.clear();
    let base = work
        .model
        .walk(raw, tape, 0, line_table(section), &Path::Root)?;
    Ok((section, base))
}

fn field<'a>(model: &'a Model, raw: &'a [u8], base: u32, section: Section, name: &str) -> &'a [u8] {
    let table = line_table(section);
    model.bytes(raw, model.get(base, table.at(name)))
}

impl JsonlReader {
    pub fn new() -> Self {
        JsonlReader {
            tail: Vec::new(),
            line: 1,
            skipping: false,
        }
    }

    pub fn feed(&mut self, data: &[u8], last: bool, sink: &mut Sink<'_>, work: &mut Work) {
        let mut start = 0;
        while let Some(k) = memchr::memchr(b'\n', &data[start..]) {
            let nl = start + k;
            if self.skipping {
                self.skipping = false;
            } else if !self.tail.is_empty() {
                let mut tail = std::mem::take(&mut self.tail);
                tail.extend_from_slice(&data[start..nl]);
                self.line(&tail, sink, work);
                self.tail = tail;
            } else {
                self.line(&data[start..nl], sink, work);
            }
            self.tail.clear();
            self.line += 1;
            start = nl + 1;
        }
        if !self.skipping {
            self.tail.extend_from_slice(&data[start..]);
            if self.tail.len() > MAX_RECORD_BYTES {
                sink.error(self.line, "too-large", too_large());
                self.skipping = true;
            }
        }
        if self.skipping {
            self.tail.clear();
        }
        if last && !self.tail.is_empty() {
            let tail = std::mem::take(&mut self.tail);
            self.line(&tail, sink, work);
        }
    }

    fn line(&mut self, raw: &[u8], sink: &mut Sink<'_>, work: &mut Work) {
        let line = self.line;
        if raw.len() > MAX_RECORD_BYTES {
            return sink.error(line, "too-large", too_large());
        }
        if raw.iter().all(|&b| matches!(b, b' ' | b'\t' | b'\r')) {
            return;
        }
        let (section, base) = match read_line(raw, work) {
            Ok(x) => x,
            Err(r) => return sink.reject(line, r),
        };
        let model = &work.model;
        let gstin = field(model, raw, base, section, "gstin");
        let fp = field(model, raw, base, section, "fp");
        let cfg = sink.cfg;
        // (field, the line's value, the value the file is read with)
        type Check<'a> = (&'a str, &'a [u8], Option<&'a [u8]>);
        let checks: [Check<'_>; 3] = [
            (
                "section",
                section.name().as_bytes(),
                cfg.section.map(|s| s.name().as_bytes()),
            ),
            ("gstin", gstin, cfg.gstin.as_ref().map(|g| &g[..])),
            ("fp", fp, cfg.fp.as_ref().map(|f| &f[..])),
        ];
        for (name, got, want) in checks {
            if let Some(want) = want {
                if got != want {
                    return sink.error(
                        line,
                        "mismatch",
                        format!(
                            "{name} {} differs from the {name} {} this file is read with",
                            show(got),
                            String::from_utf8_lossy(want)
                        ),
                    );
                }
            }
        }
        let key = match section.counterparty() {
            Some(name) => field(model, raw, base, section, name),
            None => &[],
        };
        sink.record(
            section,
            gstin,
            fp,
            key,
            model,
            raw,
            base,
            crate::ingest::schema::line_table(section),
            line,
        );
    }
}
