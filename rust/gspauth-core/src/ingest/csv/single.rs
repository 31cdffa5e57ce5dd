//! Rows that are one record each: b2cs and hsn.

use super::*;

impl CsvReader {
    pub(super) fn single(
        &mut self,
        row: &Row<'_>,
        line: u64,
        sink: &mut Sink<'_>,
        work: &mut Work,
    ) {
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

    pub(super) fn b2cs(&self, row: &Row<'_>, work: &mut Work) -> Res<u32> {
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

    pub(super) fn hsn(&self, row: &Row<'_>, work: &mut Work) -> Res<u32> {
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
