//! Folding the rows of one invoice (b2b, b2cl, cdnr) into its record.

use super::*;

impl CsvReader {
    pub(super) fn fold(
        &mut self,
        row: &Row<'_>,
        line: u64,
        gap: u64,
        known: bool,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) {
        let section = self.section;
        let same_key = || {
            self.open.as_ref().is_some_and(|o| {
                o.key.len() == key_cols(section).len()
                    && key_cols(section)
                        .iter()
                        .zip(&o.key)
                        .all(|(&c, k)| cell_eq(row.get(c), k))
            })
        };
        // A row that starts with the open invoice's prefix has its key and its
        // invoice-level cells (debug builds check the shortcut against the comparison).
        debug_assert!(!known || same_key());
        let same = known || same_key();
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
                let cols = invoice_cols(section).iter().zip(&open.cells);
                debug_assert!(!known || cols.clone().all(|(&c, f)| cell_eq(row.get(c), f)));
                for (&col, first) in cols.filter(|_| !known) {
                    if !cell_eq(row.get(col), first) {
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
            prefix: self.prefix(row),
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

    pub(super) fn invoice_fields(
        &self,
        open: &mut Open,
        row: &Row<'_>,
        work: &mut Work,
    ) -> Res<()> {
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

    pub(super) fn item(
        open: &mut Open,
        row: &Row<'_>,
        section: Section,
        work: &mut Work,
    ) -> Res<()> {
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

    pub(super) fn close(&mut self, sink: &mut Sink<'_>, work: &mut Work) {
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
}

/// Byte equality of two cells (a few bytes each; a `memcmp` call per cell showed in profiles).
#[inline]
fn cell_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x == y)
}
