//! One record as a flat arena of field slots: filled from a JSON tape by the
//! shape walk (twin of `walk` in `gspauth/ingest/_python/_record.py`) or by the
//! CSV builder, checked by the rules, then written in canonical form.
//!
//! An object of table `T` takes `T.fields.len()` consecutive slots, in table
//! order. Strings are spans of the record input or of the decoded-string
//! buffer; numbers are spans of the number-text buffer. Nothing is allocated
//! per record once the buffers have grown.

use crate::ingest::error::{reject, Reject, Res};
use crate::ingest::json::Tok;
use crate::ingest::numbers::{self, Dec};
use crate::ingest::schema::{tag_at, Kind, Table};
use crate::ingest::text::{decode_str, put_span, show, write_str};

/// Where a string's bytes are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Src {
    Input,
    Decoded,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Val {
    Absent,
    Str {
        src: Src,
        start: u32,
        end: u32,
    },
    Num(Dec),
    /// First slot of the object.
    Obj(u32),
    /// Elements are `items[start .. start + len]`, each an object's first slot.
    Arr {
        start: u32,
        len: u32,
    },
}

/// The arena of one record (reused from record to record).
#[derive(Default)]
pub(crate) struct Model {
    pub slots: Vec<Val>,
    pub items: Vec<u32>,
    /// Decoded strings (those with escapes, and CSV cells).
    pub strs: Vec<u8>,
    /// Normalised number texts.
    pub nums: Vec<u8>,
    /// Scratch: a decoded key.
    key: Vec<u8>,
}

/// A field path for messages (`itms[2].itm_det.rt`), rendered only on error.
#[derive(Clone, Copy)]
pub(crate) enum Path<'a> {
    Root,
    Field(&'a Path<'a>, &'a [u8]),
    Index(&'a Path<'a>, u32),
}

impl Path<'_> {
    pub fn render(&self) -> String {
        match self {
            Path::Root => String::new(),
            Path::Field(parent, name) => {
                let p = parent.render();
                let name = String::from_utf8_lossy(name);
                if p.is_empty() {
                    name.into_owned()
                } else {
                    format!("{p}.{name}")
                }
            }
            Path::Index(parent, i) => format!("{}[{i}]", parent.render()),
        }
    }
}

impl Model {
    pub fn clear(&mut self) {
        self.slots.clear();
        self.items.clear();
        self.strs.clear();
        self.nums.clear();
    }

    /// Reserve the slots of one object of `table`; returns its first slot.
    pub fn object(&mut self, table: &Table) -> u32 {
        let base = self.slots.len() as u32;
        self.slots
            .extend(std::iter::repeat_n(Val::Absent, table.fields.len()));
        base
    }

    #[inline]
    pub fn get(&self, base: u32, index: usize) -> Val {
        self.slots[base as usize + index]
    }

    /// The bytes of a string value (`input` is the record's input).
    #[inline]
    pub fn bytes<'a>(&'a self, input: &'a [u8], v: Val) -> &'a [u8] {
        match v {
            Val::Str {
                src: Src::Input,
                start,
                end,
            } => &input[start as usize..end as usize],
            Val::Str {
                src: Src::Decoded,
                start,
                end,
            } => &self.strs[start as usize..end as usize],
            _ => &[],
        }
    }

    #[inline]
    pub fn num_text<'a>(&'a self, input: &'a [u8], d: Dec) -> &'a [u8] {
        let src = if d.input { input } else { &self.nums[..] };
        &src[d.start as usize..d.end as usize]
    }

    /// Store a string given as bytes (CSV cells, computed values).
    pub fn push_str(&mut self, s: &[u8]) -> Val {
        let start = self.strs.len() as u32;
        self.strs.extend_from_slice(s);
        Val::Str {
            src: Src::Decoded,
            start,
            end: self.strs.len() as u32,
        }
    }

    // --- the shape walk -----------------------------------------------------------

    /// The bytes of the key string at `tape[k]` (decoded into `self.key` if escaped).
    fn key_bytes<'a>(key: &'a mut Vec<u8>, input: &'a [u8], tok: Tok) -> &'a [u8] {
        match tok {
            Tok::Str {
                start,
                end,
                esc: false,
                ..
            } => &input[start as usize..end as usize],
            Tok::Str { start, end, .. } => {
                key.clear();
                decode_str(&input[start as usize..end as usize], key);
                key
            }
            _ => unreachable!("object keys are strings"),
        }
    }

    /// Check the object at `tape[at]` against `table` and fill its slots; returns the first slot.
    ///
    /// One pass in document order. The reference checks an object's duplicate keys
    /// before anything else in it; here that check runs only when something fails
    /// (a duplicate of a known key, an unknown key, or any error in a member), and
    /// a duplicate it finds is reported instead, as the reference would.
    pub fn walk(
        &mut self,
        input: &[u8],
        tape: &[Tok],
        at: usize,
        table: &'static Table,
        path: &Path<'_>,
    ) -> Res<u32> {
        let Tok::Obj { pairs, .. } = tape[at] else {
            unreachable!("walk starts at an object")
        };
        let base = self.object(table);
        let mut seen: u64 = 0;
        let mut k = at + 1;
        for _ in 0..pairs {
            let (key_at, value_at) = (k, k + 1);
            k = skip(tape, value_at);
            let idx = match tape[key_at] {
                Tok::Str {
                    start,
                    end,
                    esc: false,
                    ..
                } => tag_at(input, start as usize, (end - start) as usize)
                    .and_then(|t| table.index_tag(t)),
                tok => table.index(Self::key_bytes(&mut self.key, input, tok)),
            };
            let outcome = match idx {
                Some(i) if seen & (1 << i) == 0 => {
                    seen |= 1 << i;
                    self.member(input, tape, value_at, &table.fields[i], path)
                        .map(|v| self.slots[base as usize + i] = v)
                }
                _ => Err(Reject::new("", String::new())), // a duplicate or unknown key
            };
            if let Err(e) = outcome {
                self.duplicates(input, tape, at, table, path)?;
                if idx.is_none() {
                    let name = Self::key_bytes(&mut self.key, input, tape[key_at]).to_vec();
                    reject!(
                        "unknown-field",
                        "{} has an unknown field {}",
                        where_of(table, path),
                        show(&name)
                    );
                }
                return Err(e);
            }
        }
        for (i, f) in table.fields.iter().enumerate() {
            if f.required && self.slots[base as usize + i] == Val::Absent {
                reject!(
                    "missing-field",
                    "{} has no {}",
                    where_of(table, path),
                    f.name
                );
            }
        }
        Ok(base)
    }

    /// The object's first key (in document order of its second occurrence) that repeats an earlier one.
    fn duplicates(
        &mut self,
        input: &[u8],
        tape: &[Tok],
        at: usize,
        table: &Table,
        path: &Path<'_>,
    ) -> Res<()> {
        let Tok::Obj { pairs, .. } = tape[at] else {
            unreachable!("an object")
        };
        let mut keys: Vec<Vec<u8>> = Vec::with_capacity(pairs as usize);
        let mut k = at + 1;
        for _ in 0..pairs {
            let key = Self::key_bytes(&mut self.key, input, tape[k]).to_vec();
            if keys.contains(&key) {
                reject!(
                    "duplicate-key",
                    "{} has the field {} more than once",
                    where_of(table, path),
                    show(&key)
                );
            }
            keys.push(key);
            k = skip(tape, k + 1);
        }
        Ok(())
    }

    /// One member's value: kind check, then its content.
    fn member(
        &mut self,
        input: &[u8],
        tape: &[Tok],
        value_at: usize,
        field: &'static crate::ingest::schema::Field,
        path: &Path<'_>,
    ) -> Res<Val> {
        let fpath = Path::Field(path, field.name.as_bytes());
        let tok = tape[value_at];
        Ok(match (field.kind, tok) {
            (
                Kind::Str,
                Tok::Str {
                    start,
                    end,
                    esc,
                    lone,
                },
            ) => {
                if lone {
                    reject!(
                        "surrogate",
                        "{} contains a lone surrogate (\\ud800-\\udfff) escape",
                        fpath.render()
                    );
                }
                if esc {
                    let s = self.strs.len() as u32;
                    decode_str(&input[start as usize..end as usize], &mut self.strs);
                    Val::Str {
                        src: Src::Decoded,
                        start: s,
                        end: self.strs.len() as u32,
                    }
                } else {
                    Val::Str {
                        src: Src::Input,
                        start,
                        end,
                    }
                }
            }
            (Kind::Num | Kind::Int, Tok::Num { start, end }) => {
                let decimals = if field.kind == Kind::Int { 0 } else { 2 };
                Val::Num(numbers::json_number(
                    &input[start as usize..end as usize],
                    start,
                    &|| fpath.render(),
                    decimals,
                    field.negative,
                    &mut self.nums,
                )?)
            }
            (Kind::Obj, Tok::Obj { .. }) => {
                let sub = field.table.expect("object fields have a table");
                Val::Obj(self.walk(input, tape, value_at, sub, &fpath)?)
            }
            (Kind::Arr, Tok::Arr { len, .. }) => {
                let sub = field.table.expect("array fields have a table");
                let first = self.items.len();
                self.items.extend(std::iter::repeat_n(0, len as usize));
                let mut e = value_at + 1;
                for i in 0..len {
                    let ipath = Path::Index(&fpath, i + 1);
                    if !matches!(tape[e], Tok::Obj { .. }) {
                        reject!("type", "{} must be an object", ipath.render());
                    }
                    let slot = self.walk(input, tape, e, sub, &ipath)?;
                    self.items[first + i as usize] = slot;
                    e = skip(tape, e);
                }
                Val::Arr {
                    start: first as u32,
                    len,
                }
            }
            _ => {
                let kind = match field.kind {
                    Kind::Str => "a string",
                    Kind::Num => "a number",
                    Kind::Int => "a whole number",
                    Kind::Obj => "an object",
                    Kind::Arr => "an array",
                };
                reject!("type", "{} must be {}", fpath.render(), kind);
            }
        })
    }

    // --- canonical form -----------------------------------------------------------

    /// Write the object at `base` of `table` compactly, keys in table order,
    /// leaving out `meta` fields.
    pub fn write(&self, input: &[u8], base: u32, table: &Table, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for (i, f) in table.fields.iter().enumerate() {
            let v = self.slots[base as usize + i];
            if v == Val::Absent || f.meta {
                continue;
            }
            if !first {
                out.push(b',');
            }
            first = false;
            put_span(out, &f.key, 0, f.key_len);
            match v {
                Val::Str {
                    src: Src::Input,
                    start,
                    end,
                } => write_input_str(out, input, start as usize, end as usize),
                Val::Str { .. } => write_str(out, self.bytes(input, v)),
                Val::Num(d) => {
                    let src = if d.input { input } else { &self.nums[..] };
                    put_span(out, src, d.start as usize, (d.end - d.start) as usize);
                }
                Val::Obj(sub) => self.write(input, sub, f.table.expect("table"), out),
                Val::Arr { start, len } => {
                    out.push(b'[');
                    let t = f.table.expect("table");
                    for j in 0..len {
                        if j > 0 {
                            out.push(b',');
                        }
                        self.write(input, self.items[(start + j) as usize], t, out);
                    }
                    out.push(b']');
                }
                Val::Absent => {}
            }
        }
        out.push(b'}');
    }
}

/// A string of the input without escapes is copied as it is: the tokenizer let
/// no control character, quote or backslash into it, so its bytes are canonical.
#[inline]
fn write_input_str(out: &mut Vec<u8>, input: &[u8], start: usize, end: usize) {
    debug_assert!(!input[start..end]
        .iter()
        .any(|&b| b < 0x20 || b == b'"' || b == b'\\'));
    out.push(b'"');
    put_span(out, input, start, end - start);
    out.push(b'"');
}

/// How a message names an object: its path, or `the invoice` (etc.) at the top.
fn where_of(table: &Table, path: &Path<'_>) -> String {
    let p = path.render();
    if p.is_empty() {
        format!("the {}", table.what)
    } else {
        p
    }
}

/// Index just past the value at `tape[i]`.
#[inline]
pub(crate) fn skip(tape: &[Tok], i: usize) -> usize {
    match tape[i] {
        Tok::Obj { end, .. } | Tok::Arr { end, .. } => end as usize,
        _ => i + 1,
    }
}

/// A reject at a given line (CSV rows).
pub(crate) fn at_line(mut r: Reject, line: u64) -> Reject {
    r.line = Some(line);
    r
}
