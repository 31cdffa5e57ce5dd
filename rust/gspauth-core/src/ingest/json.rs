//! A strict JSON reader for one record (RFC 8259, as Python's `json` module
//! reads it with NaN/Infinity refused), into a flat tape.
//!
//! Objects and arrays nest at most [`MAX_DEPTH`] deep. Numbers and strings stay
//! spans of the input: a number's text is normalised later (no float is ever
//! made) and a string is decoded only when it has escapes. A string whose `\u`
//! escapes leave a lone surrogate is valid JSON here, as in Python; it is
//! flagged, and the walk reports it. Any syntax fault is one error: the record
//! is not valid JSON (no position is reported, so no parser detail leaks).

/// Objects and arrays nest at most this deep in a record.
pub const MAX_DEPTH: usize = 32;

/// One tape entry. Containers are followed by their members (an object's as
/// key, value pairs); `end` is the index just past the container's last entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tok {
    Obj {
        pairs: u32,
        end: u32,
    },
    Arr {
        len: u32,
        end: u32,
    },
    /// The string's body (between the quotes); `esc`: has escapes; `lone`: a lone surrogate.
    Str {
        start: u32,
        end: u32,
        esc: bool,
        lone: bool,
    },
    Num {
        start: u32,
        end: u32,
    },
    True,
    False,
    Null,
}

/// Class of each byte inside a string: 0 plain, 1 quote or backslash, 2 control.
static STR_CLASS: [u8; 256] = {
    let mut t = [0u8; 256];
    let mut i = 0;
    while i < 0x20 {
        t[i] = 2;
        i += 1;
    }
    t[b'"' as usize] = 1;
    t[b'\\' as usize] = 1;
    t
};

#[inline]
fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

fn is_hex(b: u8) -> bool {
    b.is_ascii_hexdigit()
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

struct Reader<'a> {
    s: &'a [u8],
    i: usize,
    tape: &'a mut Vec<Tok>,
}

/// The input is not valid JSON (or nests too deep).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Invalid;

type R<T> = Result<T, Invalid>;

impl Reader<'_> {
    #[inline]
    fn ws(&mut self) {
        while self.i < self.s.len() && is_ws(self.s[self.i]) {
            self.i += 1;
        }
    }

    #[inline]
    fn peek(&self) -> R<u8> {
        self.s.get(self.i).copied().ok_or(Invalid)
    }

    /// A string at `i` (its opening quote); pushes `Tok::Str`.
    fn string(&mut self) -> R<()> {
        let s = self.s;
        let start = self.i + 1;
        let mut i = start;
        let mut esc = false;
        let mut lone = false;
        loop {
            while i < s.len() && STR_CLASS[s[i] as usize] == 0 {
                i += 1;
            }
            let &b = s.get(i).ok_or(Invalid)?;
            match b {
                b'"' => break,
                b'\\' => {
                    esc = true;
                    let &e = s.get(i + 1).ok_or(Invalid)?;
                    match e {
                        b'"' | b'\\' | b'/' | b'b' | b'f' | b'n' | b'r' | b't' => i += 2,
                        b'u' => {
                            let h = s.get(i + 2..i + 6).ok_or(Invalid)?;
                            if !h.iter().all(|&c| is_hex(c)) {
                                return Err(Invalid);
                            }
                            let cp = hex4(h);
                            i += 6;
                            if (0xd800..0xdc00).contains(&cp) {
                                // A high surrogate pairs with an immediately following low one.
                                let paired = s.len() >= i + 6
                                    && s[i] == b'\\'
                                    && s[i + 1] == b'u'
                                    && s[i + 2..i + 6].iter().all(|&c| is_hex(c))
                                    && (0xdc00..0xe000).contains(&hex4(&s[i + 2..i + 6]));
                                if paired {
                                    i += 6;
                                } else {
                                    lone = true;
                                }
                            } else if (0xdc00..0xe000).contains(&cp) {
                                lone = true;
                            }
                        }
                        _ => return Err(Invalid),
                    }
                }
                _ => return Err(Invalid), // a control character
            }
        }
        self.tape.push(Tok::Str {
            start: start as u32,
            end: i as u32,
            esc,
            lone,
        });
        self.i = i + 1;
        Ok(())
    }

    fn digits(&mut self) -> usize {
        let from = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_digit() {
            self.i += 1;
        }
        self.i - from
    }

    fn number(&mut self) -> R<()> {
        let start = self.i;
        if self.s[self.i] == b'-' {
            self.i += 1;
        }
        match self.s.get(self.i) {
            Some(b'0') => self.i += 1,
            Some(b'1'..=b'9') => {
                self.digits();
            }
            _ => return Err(Invalid),
        }
        if self.s.get(self.i) == Some(&b'.') {
            self.i += 1;
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        if matches!(self.s.get(self.i), Some(b'e' | b'E')) {
            self.i += 1;
            if matches!(self.s.get(self.i), Some(b'+' | b'-')) {
                self.i += 1;
            }
            if self.digits() == 0 {
                return Err(Invalid);
            }
        }
        self.tape.push(Tok::Num {
            start: start as u32,
            end: self.i as u32,
        });
        Ok(())
    }

    fn literal(&mut self, word: &[u8], tok: Tok) -> R<()> {
        if self.s[self.i..].starts_with(word) {
            self.i += word.len();
            self.tape.push(tok);
            Ok(())
        } else {
            Err(Invalid)
        }
    }

    /// A scalar value at `i` (not a container).
    fn scalar(&mut self, b: u8) -> R<()> {
        match b {
            b'"' => self.string(),
            b'-' | b'0'..=b'9' => self.number(),
            b't' => self.literal(b"true", Tok::True),
            b'f' => self.literal(b"false", Tok::False),
            b'n' => self.literal(b"null", Tok::Null),
            _ => Err(Invalid),
        }
    }

    fn value(&mut self) -> R<()> {
        // Containers are tracked on an explicit stack: (tape index, count, is_object).
        let mut stack: [(u32, u32, bool); MAX_DEPTH] = [(0, 0, false); MAX_DEPTH];
        let mut depth = 0usize;
        loop {
            // At a value position.
            self.ws();
            let b = self.peek()?;
            if b == b'{' || b == b'[' {
                if depth == MAX_DEPTH {
                    return Err(Invalid);
                }
                let obj = b == b'{';
                stack[depth] = (self.tape.len() as u32, 0, obj);
                depth += 1;
                self.tape.push(if obj {
                    Tok::Obj { pairs: 0, end: 0 }
                } else {
                    Tok::Arr { len: 0, end: 0 }
                });
                self.i += 1;
                self.ws();
                let close = if obj { b'}' } else { b']' };
                if self.peek()? == close {
                    self.i += 1;
                    depth -= 1;
                    self.close(stack[depth]);
                } else {
                    if obj {
                        self.key()?;
                    }
                    continue;
                }
            } else {
                self.scalar(b)?;
            }
            // After a value: close containers or move to the next member.
            loop {
                if depth == 0 {
                    return Ok(());
                }
                let top = &mut stack[depth - 1];
                top.1 += 1;
                self.ws();
                let c = self.peek()?;
                let close = if top.2 { b'}' } else { b']' };
                if c == b',' {
                    self.i += 1;
                    if top.2 {
                        self.ws();
                        self.key()?;
                    }
                    break;
                } else if c == close {
                    self.i += 1;
                    depth -= 1;
                    self.close(stack[depth]);
                } else {
                    return Err(Invalid);
                }
            }
        }
    }

    /// An object key and its colon.
    fn key(&mut self) -> R<()> {
        if self.peek()? != b'"' {
            return Err(Invalid);
        }
        self.string()?;
        self.ws();
        if self.peek()? != b':' {
            return Err(Invalid);
        }
        self.i += 1;
        Ok(())
    }

    fn close(&mut self, (at, count, obj): (u32, u32, bool)) {
        let end = self.tape.len() as u32;
        self.tape[at as usize] = if obj {
            Tok::Obj { pairs: count, end }
        } else {
            Tok::Arr { len: count, end }
        };
    }
}

/// Read one JSON value filling all of `s` (whitespace around it allowed) onto `tape`.
pub(crate) fn parse(s: &[u8], tape: &mut Vec<Tok>) -> Result<(), Invalid> {
    tape.clear();
    let mut r = Reader { s, i: 0, tape };
    r.value()?;
    r.ws();
    if r.i != s.len() {
        return Err(Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(s: &str) -> bool {
        parse(s.as_bytes(), &mut Vec::new()).is_ok()
    }

    #[test]
    fn accepts_and_refuses_like_python() {
        for good in [
            "{}",
            " [ ] ",
            r#"{"a":[1,-0,0.5,1e5,1E-2,true,false,null,"x\u00e9\ud800"]}"#,
            r#"{"a":{"b":{}}}"#,
            "\"\\/\"",
        ] {
            assert!(ok(good), "{good}");
        }
        for bad in [
            "",
            "{",
            "{]",
            "[1,]",
            "{\"a\":1,}",
            "01",
            "1.",
            ".5",
            "-",
            "+1",
            "NaN",
            "Infinity",
            "tru",
            "[1 2]",
            "{\"a\" 1}",
            "\"\\x\"",
            "\"\u{1}\"",
            "\"\\u12\"",
            "{} x",
            "[1]]",
        ] {
            assert!(!ok(bad), "{bad}");
        }
        assert!(ok(&("[".repeat(32) + &"]".repeat(32))));
        assert!(!ok(&("[".repeat(33) + &"]".repeat(33))));
    }

    #[test]
    fn tape_shape() {
        let mut tape = Vec::new();
        parse(br#"{"a":[1,{"b":2}],"c":"d"}"#, &mut tape).unwrap();
        assert_eq!(tape[0], Tok::Obj { pairs: 2, end: 9 });
        assert!(matches!(tape[2], Tok::Arr { len: 2, end: 7 }));
        assert!(matches!(tape[4], Tok::Obj { pairs: 1, end: 7 }));
    }
}
