//! Validation of one record after its shape was checked (twin of
//! `gspauth/ingest/_python/_rules.py`): the checks run in a fixed order and the
//! first failure is the record's error. Returns the record identity.

use std::fmt::Write as _;

use crate::ingest::error::{reject, Res};
use crate::ingest::model::{Model, Val};
use crate::ingest::numbers::Dec;
use crate::ingest::schema::{
    Table, TaxSlots, B2CS_TYPES, INV_TYPES, ITEM_DET, ITEM_NUM, NOTE_TYPES, RATES, SUPPLY_TYPES,
    UQC,
};
use crate::ingest::text::{code_points, show};
use crate::ingest::Section;

/// GST state codes (as `gspauth.gstin.STATE_CODES`).
pub(crate) const STATE_CODES: [&str; 40] = [
    "01", "02", "03", "04", "05", "06", "07", "08", "09", "10", "11", "12", "13", "14", "15", "16",
    "17", "18", "19", "20", "21", "22", "23", "24", "25", "26", "27", "28", "29", "30", "31", "32",
    "33", "34", "35", "36", "37", "38", "97", "99",
];
const DIFF_PERCENT: i64 = 65;
pub(crate) const MAX_ITEMS: usize = 1000;
/// Paise: ₹1 per item line.
const TOLERANCE: i128 = 100;
const DAYS: [u32; 12] = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

fn is_state(code: &[u8]) -> bool {
    STATE_CODES.iter().any(|s| s.as_bytes() == code)
}

/// A place of supply: a state code other than 99, or 96 (foreign country).
pub(crate) fn is_pos(code: &[u8]) -> bool {
    code == b"96" || (code != b"99" && is_state(code))
}

/// The mod-36 check character of the first 14 characters of a GSTIN.
pub(crate) fn check_character(first14: &[u8]) -> u8 {
    const ALPHABET: &[u8; 36] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut total = 0u32;
    for (i, &c) in first14.iter().enumerate() {
        let v = if c.is_ascii_digit() {
            c - b'0'
        } else {
            c - b'A' + 10
        } as u32;
        let product = v * if i % 2 == 1 { 2 } else { 1 };
        total += product / 36 + product % 36;
    }
    ALPHABET[((36 - total % 36) % 36) as usize]
}

/// A GSTIN/UIN: shape, state code, mod-36 check character.
pub(crate) fn check_gstin(value: &[u8], what: &str, code: &'static str) -> Res<()> {
    let shape = value.len() == 15
        && value[..2].iter().all(u8::is_ascii_digit)
        && value[2..]
            .iter()
            .all(|c| c.is_ascii_digit() || c.is_ascii_uppercase());
    if !shape {
        reject!(
            code,
            "{what} {} is not a GSTIN (2 digits, then 13 upper-case letters or digits)",
            show(value)
        );
    }
    if !is_state(&value[..2]) {
        reject!(
            code,
            "{what} {} starts with {}, which is not a GST state code",
            show(value),
            String::from_utf8_lossy(&value[..2])
        );
    }
    if check_character(&value[..14]) != value[14] {
        reject!(
            code,
            "{what} {} has a wrong check character (a typo?)",
            show(value)
        );
    }
    Ok(())
}

fn two(b: &[u8]) -> u32 {
    (b[0] - b'0') as u32 * 10 + (b[1] - b'0') as u32
}

fn four(b: &[u8]) -> u32 {
    two(&b[..2]) * 100 + two(&b[2..])
}

/// The return period MMYYYY, from 072017 on; returns (month, year).
pub(crate) fn check_fp(fp: &[u8]) -> Res<(u32, u32)> {
    let ok = fp.len() == 6 && fp.iter().all(u8::is_ascii_digit);
    if ok {
        let (m, y) = (two(&fp[..2]), four(&fp[2..]));
        if (1..=12).contains(&m) && (2017..=2099).contains(&y) && !(y == 2017 && m < 7) {
            return Ok((m, y));
        }
    }
    reject!(
        "period",
        "fp {} is not a return period MMYYYY from 072017 on",
        show(fp)
    )
}

/// The B2C-large threshold in paise: ₹2.5 lakh before 08-2024, ₹1 lakh from then.
pub(crate) fn b2cl_threshold(month: u32, year: u32) -> i64 {
    // ₹1,00,000 and ₹2,50,000, in paise.
    if (year, month) >= (2024, 8) {
        10_000_000
    } else {
        25_000_000
    }
}

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

fn date(value: &[u8], what: &str, ctx: &Ctx<'_>) -> Res<()> {
    let shape = value.len() == 10
        && value[2] == b'-'
        && value[5] == b'-'
        && [0, 1, 3, 4, 6, 7, 8, 9]
            .iter()
            .all(|&i| value[i].is_ascii_digit());
    if !shape {
        reject!("date", "{what} {} is not a date dd-mm-yyyy", show(value));
    }
    let (d, mo, y) = (two(&value[..2]), two(&value[3..5]), four(&value[6..]));
    let leap = y % 4 == 0 && (y % 100 != 0 || y % 400 == 0);
    let text = String::from_utf8_lossy(value);
    if !((1..=12).contains(&mo)
        && d >= 1
        && d <= DAYS[mo as usize - 1] + u32::from(mo == 2 && leap))
    {
        reject!("date", "{what} {text} is not a calendar date");
    }
    if (mo, y) != (ctx.month, ctx.year) {
        reject!(
            "date",
            "{what} {text} is outside the return period {}",
            String::from_utf8_lossy(ctx.fp)
        );
    }
    Ok(())
}

fn pos(value: &[u8], what: &str) -> Res<()> {
    if !is_pos(value) {
        reject!(
            "pos",
            "{what} {} is not a place-of-supply state code",
            show(value)
        );
    }
    Ok(())
}

fn choice(value: &[u8], what: &str, allowed: &[&str]) -> Res<()> {
    if !allowed.iter().any(|a| a.as_bytes() == value) {
        reject!(
            "value",
            "{what} {} must be one of {}",
            show(value),
            allowed.join(", ")
        );
    }
    Ok(())
}

fn doc_number(value: &[u8], what: &str) -> Res<()> {
    let ok = (1..=16).contains(&value.len())
        && value
            .iter()
            .all(|&c| c.is_ascii_alphanumeric() || c == b'/' || c == b'-');
    if !ok {
        reject!(
            "value",
            "{what} {} must be 1-16 letters, digits, '/' or '-'",
            show(value)
        );
    }
    Ok(())
}

fn diff_factor(rec: &Obj<'_>) -> Res<i64> {
    match rec.num("diff_percent") {
        None => Ok(100),
        Some(d) if d.cents == DIFF_PERCENT => Ok(DIFF_PERCENT),
        Some(d) => reject!(
            "value",
            "diff_percent {} must be 0.65 (the only differential rate)",
            rec.text(d)
        ),
    }
}

fn rate(rt: Dec, rec: &Obj<'_>, what: &dyn Fn() -> String) -> Res<()> {
    if !RATES.contains(&rt.cents) {
        reject!(
            "rate",
            "{} {} is not a GST rate (0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40)",
            what(),
            rec.text(rt)
        );
    }
    Ok(())
}

fn cents(det: &Obj<'_>, i: Option<usize>) -> Option<i128> {
    det.num_at(i).map(|d| d.cents as i128)
}

/// IGST (inter-state) or CGST = SGST (intra-state) against txval × rt × factor, ±₹1.
fn tax(
    det: &Obj<'_>,
    ix: &TaxSlots,
    where_: &dyn Fn() -> String,
    factor: i64,
    igst: bool,
    nil: bool,
) -> Res<()> {
    let txval = cents(det, ix.txval).unwrap_or(0);
    let rt = cents(det, ix.rt).unwrap_or(0);
    let exact = txval * rt * factor as i128; // paise × 10^6
    let (iamt, camt, samt) = (
        cents(det, ix.iamt),
        cents(det, ix.camt),
        cents(det, ix.samt),
    );
    let nonzero = |x: Option<i128>| x.is_some_and(|v| v != 0);
    if igst {
        if nonzero(camt) || nonzero(samt) {
            reject!(
                "tax",
                "{} has CGST/SGST on an inter-state supply (IGST only)",
                where_()
            );
        }
        if nil {
            if nonzero(iamt) {
                reject!(
                    "tax",
                    "{} has IGST on a supply without payment of tax",
                    where_()
                );
            }
            return Ok(());
        }
        let Some(iamt) = iamt else {
            reject!(
                "tax",
                "{} has no iamt (IGST) for an inter-state supply",
                where_()
            );
        };
        if (iamt * 1_000_000 - exact).abs() > TOLERANCE * 1_000_000 {
            let d = det.num_at(ix.iamt).expect("present");
            reject!(
                "tax",
                "{} iamt {} is not txval × rt (±1.00)",
                where_(),
                det.text(d)
            );
        }
        return Ok(());
    }
    if nonzero(iamt) {
        reject!(
            "tax",
            "{} has IGST on an intra-state supply (CGST + SGST only)",
            where_()
        );
    }
    let (Some(camt), Some(samt)) = (camt, samt) else {
        reject!(
            "tax",
            "{} needs camt and samt (CGST + SGST) for an intra-state supply",
            where_()
        );
    };
    for (name, amt, i) in [("camt", camt, ix.camt), ("samt", samt, ix.samt)] {
        if (amt * 2_000_000 - exact).abs() > TOLERANCE * 2_000_000 {
            let d = det.num_at(i).expect("present");
            reject!(
                "tax",
                "{} {name} {} is not half of txval × rt (±1.00)",
                where_(),
                det.text(d)
            );
        }
    }
    Ok(())
}

fn items(rec: &Obj<'_>, factor: i64, igst: bool, nil: bool) -> Res<()> {
    let Val::Arr { start, len } = rec.val("itms") else {
        return Ok(());
    };
    if len == 0 {
        reject!("items", "itms is empty");
    }
    if len as usize > MAX_ITEMS {
        reject!("items", "itms has more than {MAX_ITEMS} items");
    }
    let item_table = rec.table.fields[rec.table.at("itms")]
        .table
        .expect("itms has a table");
    let det_table = item_table.fields[ITEM_DET]
        .table
        .expect("itm_det has a table");
    let ix = TaxSlots::of_det(det_table);
    let rt_at = ix.rt;
    let mut seen: Vec<i64> = Vec::with_capacity(len as usize);
    for i in 1..=len {
        let item = rec.child(rec.m.items[(start + i - 1) as usize], item_table);
        let num = item.num_at(Some(ITEM_NUM)).map_or(0, |d| d.cents / 100);
        if !(1..=99999).contains(&num) {
            reject!("items", "itms[{i}].num must be 1-99999");
        }
        if seen.contains(&num) {
            reject!("items", "itms[{i}].num {num} is used twice");
        }
        seen.push(num);
        let Val::Obj(det_base) = rec.m.get(item.base, ITEM_DET) else {
            unreachable!("itm_det is required")
        };
        let det = rec.child(det_base, det_table);
        rate(det.num_at(rt_at).expect("required"), &det, &|| {
            format!("itms[{i}].itm_det.rt")
        })?;
        tax(
            &det,
            ix,
            &|| format!("itms[{i}].itm_det"),
            factor,
            igst,
            nil,
        )?;
    }
    Ok(())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn gstin_check_character() {
        assert_eq!(check_character(b"27AAPCD0007K1Z"), b'O');
        assert!(check_gstin(b"27AAPCD0007K1ZO", "gstin", "gstin").is_ok());
        assert_eq!(
            check_gstin(b"27AAPCD0007K1ZP", "gstin", "gstin")
                .unwrap_err()
                .code,
            "gstin"
        );
    }

    #[test]
    fn periods() {
        assert_eq!(check_fp(b"072017").unwrap(), (7, 2017));
        assert!(check_fp(b"062017").is_err());
        assert!(check_fp(b"132020").is_err());
        assert!(check_fp(b"07201").is_err());
        assert_eq!(b2cl_threshold(7, 2024), 25_000_000);
        assert_eq!(b2cl_threshold(8, 2024), 10_000_000);
    }
}
