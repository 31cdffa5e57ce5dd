//! The members of the outer objects: the top level (gstin, fp, the sections, the
//! fields read past), a section group (its ctin/pos and its records), hsn; and
//! the elements of the section and record arrays.

use super::*;

impl Gstr1Reader {
    pub(super) fn member(
        &mut self,
        b: u8,
        last: bool,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) -> Step<()> {
        if matches!(b, b',' | b':' | b']' | b'}') {
            return fatal(self.line, "syntax", "expected a value");
        }
        let f = self.stack.last().expect("a frame");
        let (kind, key, key_line) = (f.kind, f.value_key.clone(), f.line);
        match kind {
            Kind::Top => self.top_member(&key, key_line, b, last, sink),
            Kind::Group => self.group_member(&key, key_line, b, last, sink, work),
            _ => {
                if key == b"data" {
                    self.push(
                        Kind::Records,
                        Some(Section::Hsn),
                        b,
                        "hsn.data must be an array",
                    )
                } else {
                    sink.error(
                        key_line,
                        "unknown-field",
                        format!("hsn has an unknown field {}; skipped", show(&key)),
                    );
                    self.start_extent(b, false);
                    Ok(())
                }
            }
        }
    }

    pub(super) fn top_member(
        &mut self,
        key: &[u8],
        key_line: u64,
        b: u8,
        last: bool,
        sink: &mut Sink<'_>,
    ) -> Step<()> {
        if key == b"gstin" || key == b"fp" {
            let name = if key == b"gstin" { "gstin" } else { "fp" };
            if b != b'"' {
                return fatal(self.line, "syntax", format!("{name} must be a string"));
            }
            let line = self.line;
            let value = self.string(last)?;
            let checked = if name == "gstin" {
                check_gstin(&value, "gstin", "gstin")
            } else {
                check_fp(&value).map(|_| ())
            };
            if let Err(Reject { code, message, .. }) = checked {
                return fatal(line, code, format!("the file's {message}"));
            }
            let hint = if name == "gstin" {
                sink.cfg.gstin.as_ref().map(|g| g.to_vec())
            } else {
                sink.cfg.fp.as_ref().map(|f| f.to_vec())
            };
            if let Some(hint) = hint {
                if hint != value {
                    return fatal(
                        line,
                        "hint",
                        format!(
                            "the file's {name} {} differs from the {name} {} it is read with",
                            String::from_utf8_lossy(&value),
                            String::from_utf8_lossy(&hint)
                        ),
                    );
                }
            }
            if name == "gstin" {
                self.gstin = Some(value);
            } else {
                self.fp = Some(value);
            }
            return Ok(());
        }
        if GSTR1_IGNORED.iter().any(|k| k.as_bytes() == key) {
            self.start_extent(b, false);
            return Ok(());
        }
        match Section::from_name(key) {
            Some(s @ (Section::B2b | Section::B2cl | Section::Cdnr)) => self.push(
                Kind::Sections,
                Some(s),
                b,
                &format!("{} must be an array", s.name()),
            ),
            Some(Section::B2cs) => self.push(
                Kind::Records,
                Some(Section::B2cs),
                b,
                "b2cs must be an array",
            ),
            Some(Section::Hsn) => {
                if b != b'{' {
                    return fatal(self.line, "syntax", "hsn must be an object");
                }
                self.stack.push(Frame::new(Kind::Hsn, Some(Section::Hsn)));
                Ok(())
            }
            None => {
                sink.error(
                    key_line,
                    "section",
                    format!(
                        "top-level field {} is not a supported section (b2b, b2cl, b2cs, cdnr, hsn); skipped",
                        show(key)
                    ),
                );
                self.start_extent(b, false);
                Ok(())
            }
        }
    }

    pub(super) fn group_member(
        &mut self,
        key: &[u8],
        key_line: u64,
        b: u8,
        last: bool,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) -> Step<()> {
        let section = self.top().section.expect("a group has a section");
        let counterparty = section.counterparty().unwrap_or("");
        if key == counterparty.as_bytes() {
            if b != b'"' {
                return fatal(
                    self.line,
                    "syntax",
                    format!("{counterparty} must be a string"),
                );
            }
            let value = self.string(last)?;
            let frame = self.top();
            frame.key = Some(value.clone());
            frame.pending_bytes = 0;
            let pending = std::mem::take(&mut frame.pending);
            for (raw, line) in pending {
                self.record(section, &value, &raw, line, sink, work);
            }
            Ok(())
        } else if key == section.list_field().as_bytes() {
            self.push(
                Kind::Records,
                Some(section),
                b,
                &format!("{} must be an array", section.list_field()),
            )?;
            self.top().grouped = true;
            Ok(())
        } else {
            sink.error(
                key_line,
                "unknown-field",
                format!(
                    "a {} group has an unknown field {}; skipped",
                    section.name(),
                    show(key)
                ),
            );
            self.start_extent(b, false);
            Ok(())
        }
    }

    pub(super) fn push(
        &mut self,
        kind: Kind,
        section: Option<Section>,
        b: u8,
        message: &str,
    ) -> Step<()> {
        if b != b'[' {
            return fatal(self.line, "syntax", message);
        }
        self.stack.push(Frame::new(kind, section));
        Ok(())
    }

    pub(super) fn element(&mut self, b: u8, sink: &mut Sink<'_>) -> Step<()> {
        let f = self.stack.last().expect("a frame");
        let section = f.section.expect("arrays have a section");
        if f.kind == Kind::Sections {
            if b != b'{' {
                return fatal(
                    self.line,
                    "syntax",
                    format!("expected a {} group object", section.name()),
                );
            }
            self.stack.push(Frame::new(Kind::Group, Some(section)));
            return Ok(());
        }
        if matches!(b, b',' | b':' | b']' | b'}') {
            return fatal(self.line, "syntax", "expected a value");
        }
        if (sink.cfg.gstin.is_none() && self.gstin.is_none())
            || (sink.cfg.fp.is_none() && self.fp.is_none())
        {
            return fatal(
                self.line,
                "hint",
                "the file's records come before its gstin and fp: pass gstin and fp \
                 (they are checked against the file's own values)",
            );
        }
        self.start_extent(b, true);
        Ok(())
    }
}
