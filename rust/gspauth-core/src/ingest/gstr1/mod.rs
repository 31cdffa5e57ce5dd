//! GSTR-1 JSON as the offline tool writes it, walked incrementally (twin of
//! `gspauth/ingest/_python/_gstr1.py`, whose docstring states the rules).
//!
//! The outer structure is read token by token and a fault there is fatal; each
//! record is located by its extent (bracket depth outside strings, a string's
//! closing quote, or a scalar's next delimiter) and handed whole to the record
//! reader, so a broken record is one record error. Lines count LF bytes.

use crate::ingest::error::Reject;
use crate::ingest::fast;
use crate::ingest::json::{self, Tok};
use crate::ingest::jsonl::parse_record;
use crate::ingest::model::Path;
use crate::ingest::parser::{Sink, Work, MAX_RECORD_BYTES};
use crate::ingest::rules::{check_fp, check_gstin};
use crate::ingest::schema::{record_table, GSTR1_IGNORED};
use crate::ingest::text::{decode_str, show};
use crate::ingest::Section;

mod extent;
mod members;

use extent::Extent;

/// A string of the outer structure is at most this many bytes (with its quotes).
pub const OUTER_STRING_MAX: usize = 4096;
/// Records of a group seen before the group's ctin/pos are held up to this many bytes.
pub const PENDING_MAX: usize = 16 << 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Top,
    Sections,
    Group,
    Hsn,
    Records,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    Open,
    First,
    Key,
    Colon,
    Value,
    After,
    Elem,
}

struct Frame {
    kind: Kind,
    section: Option<Section>,
    phase: Phase,
    keys: Vec<Vec<u8>>,
    value_key: Vec<u8>,
    line: u64,
    /// A group's ctin / pos once seen.
    key: Option<Vec<u8>>,
    pending: Vec<(Vec<u8>, u64)>,
    pending_bytes: usize,
    /// A records array inside a group (the group is the frame below it).
    grouped: bool,
}

impl Frame {
    fn new(kind: Kind, section: Option<Section>) -> Frame {
        Frame {
            kind,
            section,
            phase: Phase::Open,
            keys: Vec::new(),
            value_key: Vec::new(),
            line: 0,
            key: None,
            pending: Vec::new(),
            pending_bytes: 0,
            grouped: false,
        }
    }
}

enum Stop {
    Need,
    Fatal(u64, &'static str, String),
}

type Step<T> = Result<T, Stop>;

fn fatal<T>(line: u64, code: &'static str, message: impl Into<String>) -> Step<T> {
    Err(Stop::Fatal(line, code, message.into()))
}

pub(crate) struct Gstr1Reader {
    buf: Vec<u8>,
    pos: usize,
    line: u64,
    stack: Vec<Frame>,
    done: bool,
    extent: Option<Extent>,
    gstin: Option<Vec<u8>>,
    fp: Option<Vec<u8>>,
}

const MAX: usize = MAX_RECORD_BYTES;

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n')
}

fn lines_in(s: &[u8]) -> u64 {
    memchr::memchr_iter(b'\n', s).count() as u64
}

impl Gstr1Reader {
    pub fn new() -> Self {
        Gstr1Reader {
            buf: Vec::new(),
            pos: 0,
            line: 1,
            stack: vec![Frame::new(Kind::Top, None)],
            done: false,
            extent: None,
            gstin: None,
            fp: None,
        }
    }

    pub fn feed(&mut self, data: &[u8], last: bool, sink: &mut Sink<'_>, work: &mut Work) {
        self.buf.extend_from_slice(data);
        let outcome = loop {
            match self.step(last, sink, work) {
                Ok(true) => {}
                Ok(false) => break Ok(()),
                Err(e) => break Err(e),
            }
        };
        if let Err(Stop::Fatal(line, code, message)) = outcome {
            sink.fatal(line, code, message);
        }
        self.buf.drain(..self.pos);
        self.pos = 0;
    }

    fn advance(&mut self, n: usize) {
        self.line += lines_in(&self.buf[self.pos..self.pos + n]);
        self.pos += n;
    }

    fn eof_line(&self) -> u64 {
        self.line + lines_in(&self.buf[self.pos..])
    }

    /// Skip whitespace; the next byte, `None` at the end of the last input.
    fn skip_ws(&mut self, last: bool) -> Step<Option<u8>> {
        let mut i = self.pos;
        while i < self.buf.len() && is_ws(self.buf[i]) {
            i += 1;
        }
        self.advance(i - self.pos);
        if i == self.buf.len() {
            return if last { Ok(None) } else { Err(Stop::Need) };
        }
        Ok(Some(self.buf[i]))
    }

    /// The outer-structure string token at pos (its opening quote is there), decoded (WTF-8).
    fn string(&mut self, last: bool) -> Step<Vec<u8>> {
        let (start, line) = (self.pos, self.line);
        let n = self.buf.len();
        let window = n.min(start + OUTER_STRING_MAX);
        let mut i = start + 1;
        let end = loop {
            let found = if i < window {
                self.buf[i..window]
                    .iter()
                    .position(|&b| b == b'"' || b == b'\\')
                    .map(|k| i + k)
            } else {
                None
            };
            match found {
                None => {
                    if n - start >= OUTER_STRING_MAX {
                        return fatal(
                            line,
                            "syntax",
                            format!(
                                "a name or value in the file structure is longer than {OUTER_STRING_MAX} bytes"
                            ),
                        );
                    }
                    if last {
                        return fatal(
                            self.eof_line(),
                            "truncated",
                            "the file ends inside a string",
                        );
                    }
                    return Err(Stop::Need);
                }
                Some(k) if self.buf[k] == b'"' => break k + 1,
                Some(k) => {
                    i = k + 2; // a backslash: the next byte is escaped
                    if i >= n && !last {
                        return Err(Stop::Need);
                    }
                }
            }
        };
        let raw = &self.buf[start..end];
        if std::str::from_utf8(raw).is_err() {
            return fatal(
                line,
                "utf8",
                "a name or value in the file structure is not valid UTF-8",
            );
        }
        let mut tape = Vec::with_capacity(1);
        if json::parse(raw, &mut tape).is_err() {
            return fatal(
                line,
                "syntax",
                "a name or value in the file structure is not a valid JSON string",
            );
        }
        let mut out = Vec::with_capacity(end - start);
        decode_str(&raw[1..raw.len() - 1], &mut out);
        self.advance(end - start);
        Ok(out)
    }

    fn expect<T>(&self, what: &str) -> Step<T> {
        fatal(self.line, "syntax", format!("expected {what}"))
    }

    fn step(&mut self, last: bool, sink: &mut Sink<'_>, work: &mut Work) -> Step<bool> {
        if self.extent.is_some() {
            self.run_extent(last, sink, work)?;
            return Ok(true);
        }
        if self.done {
            return match self.skip_ws(last)? {
                None => Ok(false),
                Some(_) => fatal(
                    self.line,
                    "syntax",
                    "data after the end of the GSTR-1 object",
                ),
            };
        }
        let Some(b) = self.skip_ws(last)? else {
            return fatal(
                self.line,
                "truncated",
                "the file ends inside the GSTR-1 object",
            );
        };
        match self.stack.last().expect("a frame").kind {
            Kind::Top | Kind::Group | Kind::Hsn => self.object_step(b, last, sink, work)?,
            Kind::Sections | Kind::Records => self.array_step(b, sink)?,
        }
        Ok(true)
    }

    fn top(&mut self) -> &mut Frame {
        self.stack.last_mut().expect("a frame")
    }

    fn object_step(&mut self, b: u8, last: bool, sink: &mut Sink<'_>, work: &mut Work) -> Step<()> {
        let (phase, kind) = {
            let f = self.top();
            (f.phase, f.kind)
        };
        match phase {
            Phase::Open => {
                if b != b'{' {
                    return self.expect(if kind == Kind::Top {
                        "'{' to open the GSTR-1 object"
                    } else {
                        "'{'"
                    });
                }
                self.advance(1);
                self.top().phase = Phase::First;
            }
            Phase::First | Phase::Key => {
                if b == b'}' && phase == Phase::First {
                    self.advance(1);
                    self.close(sink);
                } else if b == b'"' {
                    let key_line = self.line;
                    let key = self.string(last)?;
                    let f = self.stack.last_mut().expect("a frame");
                    if f.keys.contains(&key) {
                        let where_ = match f.kind {
                            Kind::Top => "the file".to_owned(),
                            Kind::Hsn => "hsn".to_owned(),
                            _ => format!("a {} group", f.section.map_or("", Section::name)),
                        };
                        return fatal(
                            key_line,
                            "duplicate-key",
                            format!("{where_} has the field {} more than once", show(&key)),
                        );
                    }
                    f.keys.push(key.clone());
                    f.value_key = key;
                    f.line = key_line;
                    f.phase = Phase::Colon;
                } else {
                    return self.expect(if phase == Phase::First {
                        "a field name or '}'"
                    } else {
                        "a field name"
                    });
                }
            }
            Phase::Colon => {
                if b != b':' {
                    return self.expect("':'");
                }
                self.advance(1);
                self.top().phase = Phase::Value;
            }
            Phase::Value => {
                let depth = self.stack.len() - 1;
                self.member(b, last, sink, work)?;
                self.stack[depth].phase = Phase::After; // only now: member may need more input first
            }
            _ => {
                if b == b',' {
                    self.advance(1);
                    self.top().phase = Phase::Key;
                } else if b == b'}' {
                    self.advance(1);
                    self.close(sink);
                } else {
                    return self.expect("',' or '}'");
                }
            }
        }
        Ok(())
    }

    fn array_step(&mut self, b: u8, sink: &mut Sink<'_>) -> Step<()> {
        let phase = self.top().phase;
        match phase {
            Phase::Open => {
                if b != b'[' {
                    return self.expect("'['");
                }
                self.advance(1);
                self.top().phase = Phase::First;
            }
            Phase::First | Phase::Elem => {
                if b == b']' && phase == Phase::First {
                    self.advance(1);
                    self.stack.pop();
                } else {
                    let depth = self.stack.len() - 1;
                    self.element(b, sink)?;
                    self.stack[depth].phase = Phase::After;
                }
            }
            _ => {
                if b == b',' {
                    self.advance(1);
                    self.top().phase = Phase::Elem;
                } else if b == b']' {
                    self.advance(1);
                    self.stack.pop();
                } else {
                    return self.expect("',' or ']'");
                }
            }
        }
        Ok(())
    }

    fn close(&mut self, sink: &mut Sink<'_>) {
        let frame = self.stack.pop().expect("a frame");
        match frame.kind {
            Kind::Top => self.done = true,
            Kind::Group if frame.key.is_none() => {
                let section = frame.section.expect("a group has a section");
                let what = section.counterparty().unwrap_or("");
                for (_, line) in frame.pending {
                    sink.error(
                        line,
                        "missing-field",
                        format!("its {} group has no {what}", section.name()),
                    );
                }
            }
            _ => {}
        }
    }

    // --- records ---------------------------------------------------------------------

    fn record(
        &self,
        section: Section,
        key: &[u8],
        raw: &[u8],
        line: u64,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) {
        let gstin = self
            .gstin
            .as_deref()
            .or(sink.cfg.gstin.as_ref().map(|g| &g[..]))
            .unwrap_or(&[])
            .to_vec();
        let fp = self
            .fp
            .as_deref()
            .or(sink.cfg.fp.as_ref().map(|f| &f[..]))
            .unwrap_or(&[])
            .to_vec();
        let table = record_table(section);
        if std::str::from_utf8(raw).is_ok() {
            if let Some(base) = fast::record(raw, &mut work.model, table) {
                #[cfg(debug_assertions)]
                fast::check(raw, table, &work.model, base);
                return sink.record(
                    section,
                    &gstin,
                    &fp,
                    key,
                    &work.model,
                    raw,
                    base,
                    table,
                    line,
                );
            }
        }
        let walked = parse_record(raw, &mut work.tape).and_then(|()| {
            if !matches!(work.tape[0], Tok::Obj { .. }) {
                return Err(Reject::new(
                    "type",
                    format!("the {} must be a JSON object", table.what),
                ));
            }
            work.model.clear();
            work.model.walk(raw, &work.tape, 0, table, &Path::Root)
        });
        match walked {
            Ok(base) => sink.record(
                section,
                &gstin,
                &fp,
                key,
                &work.model,
                raw,
                base,
                table,
                line,
            ),
            Err(r) => sink.reject(line, r),
        }
    }
}
