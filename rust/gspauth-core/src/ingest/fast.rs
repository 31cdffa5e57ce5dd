//! The fast path for a JSON record: one pass from the bytes straight into the
//! model, for records that are valid as far as reading and shape go — which is
//! nearly every record of a real file.
//!
//! It gives up (returns `None`) at the first thing it does not handle: any JSON
//! fault, a key with an escape, an unknown or repeated key, a wrong kind, a
//! string with an escape, a number outside the common form, a missing required
//! field. The caller then clears the model and takes the general path (the tape
//! reader and the shape walk), which decides the outcome and words any error as
//! the reference does. When it succeeds, the model holds the same values as the
//! general path would build (same slots, spans and order), so the outcome cannot
//! differ; debug builds (`cargo test`) check that on every record it reads.

use crate::ingest::model::{Model, Src, Val};
use crate::ingest::numbers;
use crate::ingest::schema::{tag_at, Kind, Table};

struct Fast<'a> {
    s: &'a [u8],
    i: usize,
}

/// Class of each byte inside a string: 0 plain, 1 quote, 2 backslash or control.
static STR_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 2;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 2;
    t
};

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

/// The position of the first quote, backslash or control character in `s`,
/// 8 bytes at a time: a byte equal to `c` leaves a zero in `w ^ (c × ONES)`, and
/// the lowest byte flagged by the zero-byte test is exactly the first such byte
/// (its borrows only run upwards), so the lowest bit of the three tests combined
/// is the first special byte.
#[inline]
fn special(s: &[u8]) -> Option<usize> {
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let quote = w ^ (ONES * b'"' as u64);
        let slash = w ^ (ONES * b'\\' as u64);
        let hits = (quote.wrapping_sub(ONES) & !quote)
            | (slash.wrapping_sub(ONES) & !slash)
            | (w.wrapping_sub(ONES * 0x20) & !w);
        let hits = hits & HIGHS;
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    s[at..]
        .iter()
        .position(|&b| STR_CLASS[b as usize] != 0)
        .map(|k| at + k)
}

impl Fast<'_> {
    #[inline]
    fn ws(&mut self) {
        while let Some(b' ' | b'\t' | b'\n' | b'\r') = self.s.get(self.i) {
            self.i += 1;
        }
    }

    #[inline]
    fn eat(&mut self, b: u8) -> Option<()> {
        self.ws();
        if self.s.get(self.i) == Some(&b) {
            self.i += 1;
            Some(())
        } else {
            None
        }
    }

    /// A string without escapes, the opening quote at `i`; its body's span.
    #[inline]
    fn string(&mut self) -> Option<(u32, u32)> {
        let start = self.i + 1;
        let rest = self.s.get(start..)?;
        let n = special(rest)?;
        if rest[n] != b'"' {
            return None;
        }
        self.i = start + n + 1;
        Some((start as u32, (start + n) as u32))
    }

    /// A number token; its span. The grammar is checked in full (as the tape reader does).
    #[inline]
    fn number(&mut self) -> Option<(usize, usize)> {
        let start = self.i;
        let s = &self.s[start..];
        let digits = |from: usize| {
            s.get(from..).map_or(0, |r| {
                r.iter()
                    .position(|b| !b.is_ascii_digit())
                    .unwrap_or(r.len())
            })
        };
        let mut j = usize::from(s.first() == Some(&b'-'));
        match s.get(j)? {
            b'0' => j += 1,
            b'1'..=b'9' => j += digits(j),
            _ => return None,
        }
        if s.get(j) == Some(&b'.') {
            let d = digits(j + 1);
            if d == 0 {
                return None;
            }
            j += 1 + d;
        }
        if matches!(s.get(j), Some(b'e' | b'E')) {
            return None; // the general path normalises exponents
        }
        self.i = start + j;
        Some((start, start + j))
    }

    fn object(&mut self, m: &mut Model, table: &'static Table) -> Option<u32> {
        self.eat(b'{')?;
        let base = m.object(table);
        let mut seen: u64 = 0;
        self.ws();
        if self.s.get(self.i) == Some(&b'}') {
            self.i += 1;
        } else {
            loop {
                self.ws();
                if self.s.get(self.i) != Some(&b'"') {
                    return None;
                }
                let (ks, ke) = self.string()?;
                let idx = table.index_tag(tag_at(self.s, ks as usize, (ke - ks) as usize)?)?;
                if seen & (1 << idx) != 0 {
                    return None;
                }
                seen |= 1 << idx;
                self.eat(b':')?;
                self.ws();
                let v = self.value(m, &table.fields[idx])?;
                m.slots[base as usize + idx] = v;
                self.ws();
                match self.s.get(self.i)? {
                    b',' => self.i += 1,
                    b'}' => {
                        self.i += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        for (i, f) in table.fields.iter().enumerate() {
            if f.required && seen & (1 << i) == 0 {
                return None;
            }
        }
        Some(base)
    }

    #[inline]
    fn value(
        &mut self,
        m: &mut Model,
        field: &'static crate::ingest::schema::Field,
    ) -> Option<Val> {
        Some(match (field.kind, *self.s.get(self.i)?) {
            (Kind::Str, b'"') => {
                let (start, end) = self.string()?;
                Val::Str {
                    src: Src::Input,
                    start,
                    end,
                }
            }
            (Kind::Num | Kind::Int, b'-' | b'0'..=b'9') => {
                let (start, end) = self.number()?;
                let decimals = if field.kind == Kind::Int { 0 } else { 2 };
                let (cents, len) = numbers::fast(&self.s[start..end], decimals)?;
                Val::Num(numbers::Dec {
                    cents,
                    start: start as u32,
                    end: (start + len) as u32,
                    input: true,
                })
            }
            (Kind::Obj, b'{') => Val::Obj(self.object(m, field.table?)?),
            (Kind::Arr, b'[') => {
                let sub = field.table?;
                self.i += 1;
                // Elements are walked before they are listed: collect their slots
                // in a small buffer, then append them to the model's item list
                // together, as the general path lays them out.
                let mut slots: Vec<u32> = Vec::with_capacity(32);
                self.ws();
                if self.s.get(self.i) == Some(&b']') {
                    self.i += 1;
                } else {
                    loop {
                        slots.push(self.object(m, sub)?);
                        self.ws();
                        match self.s.get(self.i)? {
                            b',' => self.i += 1,
                            b']' => {
                                self.i += 1;
                                break;
                            }
                            _ => return None,
                        }
                    }
                }
                let start = m.items.len() as u32;
                m.items.extend_from_slice(&slots);
                Val::Arr {
                    start,
                    len: slots.len() as u32,
                }
            }
            _ => return None,
        })
    }
}

/// Read `s` (valid UTF-8, the whole record) as an object of `table` into `m`
/// (cleared first); `None` when the general path must decide.
pub(crate) fn record(s: &[u8], m: &mut Model, table: &'static Table) -> Option<u32> {
    m.clear();
    let mut f = Fast { s, i: 0 };
    let base = f.object(m, table)?;
    f.ws();
    (f.i == s.len()).then_some(base)
}

/// The `section` value of a JSONL line, found by a quick search (a guess: the
/// fast path checks it when it reads the line).
pub(crate) fn section_guess(s: &[u8]) -> Option<&[u8]> {
    let at = memchr::memmem::find(s, b"\"section\"")? + 9;
    let mut f = Fast { s, i: at };
    f.eat(b':')?;
    f.ws();
    if s.get(f.i) != Some(&b'"') {
        return None;
    }
    let (a, b) = f.string()?;
    Some(&s[a as usize..b as usize])
}

/// Debug builds: the general path gives the same canonical bytes for `s`.
#[cfg(debug_assertions)]
pub(crate) fn check(s: &[u8], table: &'static Table, m: &Model, base: u32) {
    let mut tape = Vec::new();
    crate::ingest::json::parse(s, &mut tape).expect("the fast path read valid JSON");
    let mut general = Model::default();
    let b = general
        .walk(s, &tape, 0, table, &crate::ingest::model::Path::Root)
        .unwrap_or_else(|r| {
            panic!(
                "the fast path accepted a record the walk refuses: {}",
                r.message
            )
        });
    let (mut a, mut c) = (Vec::new(), Vec::new());
    m.write(s, base, table, &mut a);
    general.write(s, b, table, &mut c);
    assert_eq!(a, c, "the fast path and the general one differ");
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn special_finds_the_first_quote_backslash_or_control() {
        for (s, want) in [
            (&b"abc\"def"[..], Some(3)),
            (b"abcdefgh\\x", Some(8)),
            (b"abcdefghij\x01", Some(10)),
            (b"\"", Some(0)),
            (b"abcdefghijkl", None),
            ("é\u{1}\"".as_bytes(), Some(2)),
            (b"\x7f\x80\xff\x20!\"", Some(5)),
            (b"a\x1fb", Some(1)),
        ] {
            assert_eq!(special(s), want, "{s:?}");
        }
        for n in 0..40 {
            let mut v = vec![b'x'; n];
            v.push(b'"');
            v.extend_from_slice(b"\\\x01");
            assert_eq!(special(&v), Some(n));
        }
    }
}
