//! Validation of one record after its shape was checked (twin of
//! `gspauth/ingest/_python/_rules.py`): the checks run in a fixed order and the
//! first failure is the record's error. Returns the record identity.

use std::fmt::Write as _;

use crate::ingest::error::{reject, Res};
use crate::ingest::model::{Model, Val};
use crate::ingest::numbers::Dec;
use crate::ingest::schema::{
    Table, TaxSlots, B2CS_TYPES, INV_TYPES, NOTE_TYPES, SUPPLY_TYPES, UQC,
};
use crate::ingest::text::{code_points, show};
use crate::ingest::Section;

mod checks;
mod items;

use checks::*;
pub(crate) use checks::{check_fp, check_gstin};
use items::*;

/// Items per invoice or note.
pub(crate) const MAX_ITEMS: usize = 1000;

/// The values a rule needs about the record and its file.
pub(crate) struct Ctx<'a> {
    pub gstin: &'a [u8],
    pub fp: &'a [u8],
    pub key: &'a [u8],
    month: u32,
    year: u32,
}

/// Read access to one object of the model by field name.
#[derive(Clone, Copy)]
pub(crate) struct Obj<'a> {
    pub m: &'a Model,
    pub input: &'a [u8],
    pub base: u32,
    pub table: &'static Table,
}

impl<'a> Obj<'a> {
    fn val(&self, name: &str) -> Val {
        match self.table.index(name.as_bytes()) {
            Some(i) => self.m.get(self.base, i),
            None => Val::Absent,
        }
    }

    pub fn str(&self, name: &str) -> Option<&'a [u8]> {
        match self.val(name) {
            v @ Val::Str { .. } => Some(self.m.bytes(self.input, v)),
            _ => None,
        }
    }

    /// A required string (present after the shape walk).
    fn s(&self, name: &str) -> &'a [u8] {
        self.str(name).unwrap_or(&[])
    }

    pub fn num(&self, name: &str) -> Option<Dec> {
        match self.val(name) {
            Val::Num(d) => Some(d),
            _ => None,
        }
    }

    /// The number in slot `i` (an index from the object's table).
    #[inline]
    fn num_at(&self, i: Option<usize>) -> Option<Dec> {
        match i.map(|i| self.m.get(self.base, i)) {
            Some(Val::Num(d)) => Some(d),
            _ => None,
        }
    }

    fn text(&self, d: Dec) -> String {
        String::from_utf8_lossy(self.m.num_text(self.input, d)).into_owned()
    }

    fn child(&self, base: u32, table: &'static Table) -> Obj<'a> {
        Obj {
            base,
            table,
            ..*self
        }
    }
}

fn ident(parts: &[&[u8]]) -> String {
    let mut s = String::new();
    for (i, p) in parts.iter().enumerate() {
        if i > 0 {
            s.push('|');
        }
        s.push_str(&String::from_utf8_lossy(p));
    }
    s
}

fn b2b_like(rec: &Obj<'_>, ctx: &Ctx<'_>, number: &str, date_field: &str) -> Res<String> {
    check_gstin(ctx.key, "ctin", "ctin")?;
    if ctx.key == ctx.gstin {
        reject!("ctin", "ctin is the supplier's own GSTIN");
    }
    doc_number(rec.s(number), number)?;
    date(rec.s(date_field), date_field, ctx)?;
    if let Some(ntty) = rec.str("ntty") {
        choice(ntty, "ntty", &NOTE_TYPES)?;
    }
    let p = rec.s("pos");
    pos(p, "pos")?;
    choice(rec.s("rchrg"), "rchrg", &["Y", "N"])?;
    let inv_typ = rec.s("inv_typ");
    choice(inv_typ, "inv_typ", &INV_TYPES)?;
    if let Some(etin) = rec.str("etin") {
        check_gstin(etin, "etin", "etin")?;
    }
    let factor = diff_factor(rec)?;
    let igst = matches!(inv_typ, b"SEWP" | b"SEWOP" | b"CBW") || p != &ctx.gstin[..2];
    items(rec, factor, igst, inv_typ == b"SEWOP")?;
    Ok(ident(&[ctx.key, rec.s(number)]))
}

fn b2cl(rec: &Obj<'_>, ctx: &Ctx<'_>) -> Res<String> {
    pos(ctx.key, "pos")?;
    if ctx.key == &ctx.gstin[..2] {
        reject!(
            "pos",
            "pos {} is the supplier's state: B2C large is for inter-state supplies only",
            String::from_utf8_lossy(ctx.key)
        );
    }
    doc_number(rec.s("inum"), "inum")?;
    date(rec.s("idt"), "idt", ctx)?;
    if let Some(etin) = rec.str("etin") {
        check_gstin(etin, "etin", "etin")?;
    }
    let factor = diff_factor(rec)?;
    let threshold = b2cl_threshold(ctx.month, ctx.year);
    let val = rec.num("val").expect("required");
    if val.cents <= threshold {
        reject!(
            "threshold",
            "val {} is not above the B2C-large threshold of {} for {}",
            rec.text(val),
            threshold / 100,
            String::from_utf8_lossy(ctx.fp)
        );
    }
    items(rec, factor, true, false)?;
    Ok(ident(&[ctx.key, rec.s("inum")]))
}

fn b2cs(rec: &Obj<'_>, ctx: &Ctx<'_>) -> Res<String> {
    let (p, sply_ty, typ) = (rec.s("pos"), rec.s("sply_ty"), rec.s("typ"));
    pos(p, "pos")?;
    choice(sply_ty, "sply_ty", &SUPPLY_TYPES)?;
    let intra = p == &ctx.gstin[..2];
    if (sply_ty == b"INTRA") != intra {
        reject!(
            "pos",
            "sply_ty {} does not match pos {} for a supplier in state {}",
            String::from_utf8_lossy(sply_ty),
            String::from_utf8_lossy(p),
            String::from_utf8_lossy(&ctx.gstin[..2])
        );
    }
    choice(typ, "typ", &B2CS_TYPES)?;
    let etin = rec.str("etin");
    if typ == b"E" && etin.is_none() {
        reject!("etin", "typ E (through an e-commerce operator) needs etin");
    }
    if typ == b"OE" && etin.is_some() {
        reject!("etin", "typ OE must not have etin (use typ E)");
    }
    if let Some(etin) = etin {
        check_gstin(etin, "etin", "etin")?;
    }
    let factor = diff_factor(rec)?;
    let rt = rec.num("rt").expect("required");
    rate(rt, rec, &|| "rt".into())?;
    tax(
        rec,
        &TaxSlots::of(rec.table),
        &|| "entry".into(),
        factor,
        !intra,
        false,
    )?;
    let rt_text = rec.m.num_text(rec.input, rt);
    Ok(ident(&[p, sply_ty, typ, rt_text, etin.unwrap_or(b"")]))
}

fn hsn(rec: &Obj<'_>) -> Res<String> {
    let num = rec.num("num").map_or(0, |d| d.cents / 100);
    if !(1..=99999).contains(&num) {
        reject!("items", "num must be 1-99999");
    }
    let code = rec.s("hsn_sc");
    if !((4..=8).contains(&code.len()) && code.iter().all(u8::is_ascii_digit)) {
        reject!("value", "hsn_sc {} must be 4 to 8 digits", show(code));
    }
    let uqc = rec.s("uqc");
    if !UQC.iter().any(|u| u.as_bytes() == uqc) {
        reject!(
            "value",
            "uqc {} is not a GSTN unit quantity code (KGS, NOS, PCS, NA …)",
            show(uqc)
        );
    }
    if let Some(desc) = rec.str("desc") {
        if code_points(desc) > 30 {
            reject!("value", "desc is longer than 30 characters");
        }
    }
    let rt = rec.num("rt").expect("required");
    rate(rt, rec, &|| "rt".into())?;
    let exact = rec.num("txval").expect("required").cents as i128 * rt.cents as i128 * 100;
    let ix = TaxSlots::of(rec.table);
    let (iamt, camt, samt) = (
        cents(rec, ix.iamt).unwrap_or(0),
        cents(rec, ix.camt).unwrap_or(0),
        cents(rec, ix.samt).unwrap_or(0),
    );
    if (camt - samt).abs() > TOLERANCE {
        let text = |n: &str| rec.num(n).map_or_else(|| "0".to_owned(), |d| rec.text(d));
        reject!(
            "tax",
            "camt {} and samt {} differ by more than 1.00",
            text("camt"),
            text("samt")
        );
    }
    if ((iamt + camt + samt) * 1_000_000 - exact).abs() > (TOLERANCE * 1_000_000).max(exact / 100) {
        reject!(
            "tax",
            "iamt + camt + samt is not txval × rt (±1 % or ±1.00)"
        );
    }
    let mut id = String::new();
    let _ = write!(
        id,
        "{}|{}|{}",
        String::from_utf8_lossy(code),
        String::from_utf8_lossy(uqc),
        String::from_utf8_lossy(rec.m.num_text(rec.input, rt))
    );
    Ok(id)
}

/// Check the record in the documented order; returns its identity.
pub(crate) fn validate(
    section: Section,
    rec: &Obj<'_>,
    gstin: &[u8],
    fp: &[u8],
    key: &[u8],
) -> Res<String> {
    check_gstin(gstin, "gstin", "gstin")?;
    let (month, year) = check_fp(fp)?;
    let ctx = Ctx {
        gstin,
        fp,
        key,
        month,
        year,
    };
    match section {
        Section::B2b => b2b_like(rec, &ctx, "inum", "idt"),
        Section::Cdnr => b2b_like(rec, &ctx, "nt_num", "nt_dt"),
        Section::B2cl => b2cl(rec, &ctx),
        Section::B2cs => b2cs(rec, &ctx),
        Section::Hsn => hsn(rec),
    }
}
