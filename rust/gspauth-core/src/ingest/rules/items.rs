//! The items of an invoice or note, their rates and the tax arithmetic.

use crate::ingest::error::{reject, Res};
use crate::ingest::model::Val;
use crate::ingest::numbers::Dec;
use crate::ingest::schema::{TaxSlots, ITEM_DET, ITEM_NUM, RATES};

use super::{Obj, MAX_ITEMS};

/// The only differential rate notified (65 % of the rate), × 100.
const DIFF_PERCENT: i64 = 65;
/// Paise: ₹1 per item line.
pub(super) const TOLERANCE: i128 = 100;

pub(super) fn diff_factor(rec: &Obj<'_>) -> Res<i64> {
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

pub(super) fn rate(rt: Dec, rec: &Obj<'_>, what: &dyn Fn() -> String) -> Res<()> {
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

pub(super) fn cents(det: &Obj<'_>, i: Option<usize>) -> Option<i128> {
    det.num_at(i).map(|d| d.cents as i128)
}

/// IGST (inter-state) or CGST = SGST (intra-state) against txval × rt × factor, ±₹1.
pub(super) fn tax(
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

pub(super) fn items(rec: &Obj<'_>, factor: i64, igst: bool, nil: bool) -> Res<()> {
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
