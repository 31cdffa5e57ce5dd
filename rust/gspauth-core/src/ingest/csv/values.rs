//! Cell values as the tool writes them → GSTR-1 JSON values, and the computed taxes.

use crate::ingest::error::{reject, Res};
use crate::ingest::model::Val;
use crate::ingest::numbers::{csv_number, from_cents, round_div, Dec};
use crate::ingest::parser::Work;
use crate::ingest::schema::{Table, TaxSlots, DET, DET_IGST};
use crate::ingest::text::show;
use crate::ingest::Section;

use super::layout::{INV_TYPE_LABELS, MONTHS};

pub(super) fn date(cell: &[u8], what: &str) -> Res<[u8; 10]> {
    let ok = cell.len() == 11
        && cell[2] == b'-'
        && cell[6] == b'-'
        && cell[..2].iter().all(u8::is_ascii_digit)
        && cell[3..6].iter().all(u8::is_ascii_alphabetic)
        && cell[7..].iter().all(u8::is_ascii_digit);
    let month = if ok {
        let m = cell[3..6].to_ascii_lowercase();
        MONTHS.iter().position(|x| *x == m.as_slice())
    } else {
        None
    };
    let Some(month) = month else {
        reject!(
            "date",
            "{what} {} is not a date dd-mmm-yyyy (e.g. 05-Jul-2017)",
            show(cell)
        );
    };
    let mut out = [0u8; 10];
    out[..2].copy_from_slice(&cell[..2]);
    out[2] = b'-';
    out[3] = b'0' + ((month + 1) / 10) as u8;
    out[4] = b'0' + ((month + 1) % 10) as u8;
    out[5] = b'-';
    out[6..].copy_from_slice(&cell[7..]);
    Ok(out)
}

pub(super) fn pos(cell: &[u8]) -> Res<[u8; 2]> {
    if cell.len() >= 2
        && cell[..2].iter().all(u8::is_ascii_digit)
        && (cell.len() == 2 || cell[2] == b'-')
    {
        return Ok([cell[0], cell[1]]);
    }
    reject!(
        "pos",
        "Place Of Supply {} must be a state code and name such as 27-Maharashtra",
        show(cell)
    )
}

pub(super) fn inv_typ(cell: &[u8], what: &str) -> Res<&'static str> {
    let lower = cell.to_ascii_lowercase();
    match INV_TYPE_LABELS.iter().find(|(l, _)| l.as_bytes() == lower.as_slice()) {
        Some((_, code)) => Ok(code),
        None => reject!(
            "value",
            "{what} {} is not one of: Regular B2B, SEZ supplies with payment, SEZ supplies without payment, \
             Deemed Exp, Intra-State supplies attracting IGST",
            show(cell)
        ),
    }
}

pub(super) fn number(
    cell: &[u8],
    what: &'static str,
    negative: bool,
    out: &mut Vec<u8>,
) -> Res<Dec> {
    csv_number(cell, &|| what.to_owned(), 2, negative, out)
}

/// `Applicable % of Tax Rate`: empty, or 65 (→ diff_percent 0.65).
pub(super) fn diff(cell: &[u8], out: &mut Vec<u8>) -> Res<Option<Dec>> {
    if cell.is_empty() {
        return Ok(None);
    }
    let n = number(cell, "Applicable % of Tax Rate", false, out)?;
    if n.cents != 6500 {
        reject!("value", "Applicable % of Tax Rate must be empty or 65");
    }
    Ok(Some(from_cents(65, out)))
}

/// Put the computed tax columns of an object (half-up to the paisa) into its slots.
pub(super) fn taxed(work: &mut Work, base: u32, ix: &TaxSlots, factor: i64, igst: bool, nil: bool) {
    let m = &mut work.model;
    let cents = |i: Option<usize>| match i.map(|i| m.get(base, i)) {
        Some(Val::Num(d)) => d.cents as i128,
        _ => 0,
    };
    let exact = cents(ix.txval) * cents(ix.rt) * factor as i128;
    let slot = |i: Option<usize>| base as usize + i.expect("a tax slot");
    if igst {
        let iamt = if nil { 0 } else { round_div(exact, 1_000_000) };
        let d = from_cents(iamt, &mut m.nums);
        m.slots[slot(ix.iamt)] = Val::Num(d);
    } else {
        let half = from_cents(round_div(exact, 2_000_000), &mut m.nums);
        m.slots[slot(ix.camt)] = Val::Num(half);
        m.slots[slot(ix.samt)] = Val::Num(half);
    }
}

pub(super) fn det_table(section: Section) -> &'static Table {
    if section == Section::B2cl {
        &DET_IGST
    } else {
        &DET
    }
}
