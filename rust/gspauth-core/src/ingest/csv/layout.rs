//! The offline tool's CSV layouts: logical columns, the accepted header rows per
//! section, the labels of typed columns, and which columns key and describe an invoice.

use crate::ingest::Section;

use super::row::trim;

/// Logical columns.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(usize)]
pub(super) enum Col {
    Ctin,
    Name,
    Inum,
    Idt,
    Val,
    Pos,
    Rchrg,
    Diff,
    InvTyp,
    Etin,
    Rt,
    Txval,
    Csamt,
    Typ,
    NtNum,
    NtDt,
    Ntty,
    HsnSc,
    Desc,
    Uqc,
    Qty,
    Iamt,
    Camt,
    Samt,
}
pub(super) const N_COLS: usize = 24;

/// Header name (as the tool writes it) → logical column.
pub(super) const COLUMNS: [(&str, Col); 27] = [
    ("GSTIN/UIN of Recipient", Col::Ctin),
    ("Receiver Name", Col::Name),
    ("Invoice Number", Col::Inum),
    ("Invoice date", Col::Idt),
    ("Invoice Value", Col::Val),
    ("Place Of Supply", Col::Pos),
    ("Reverse Charge", Col::Rchrg),
    ("Applicable % of Tax Rate", Col::Diff),
    ("Invoice Type", Col::InvTyp),
    ("E-Commerce GSTIN", Col::Etin),
    ("Rate", Col::Rt),
    ("Taxable Value", Col::Txval),
    ("Cess Amount", Col::Csamt),
    ("Type", Col::Typ),
    ("Note Number", Col::NtNum),
    ("Note Date", Col::NtDt),
    ("Note Type", Col::Ntty),
    ("Note Supply Type", Col::InvTyp),
    ("Note Value", Col::Val),
    ("HSN", Col::HsnSc),
    ("Description", Col::Desc),
    ("UQC", Col::Uqc),
    ("Total Quantity", Col::Qty),
    ("Total Value", Col::Val),
    ("Integrated Tax Amount", Col::Iamt),
    ("Central Tax Amount", Col::Camt),
    ("State/UT Tax Amount", Col::Samt),
];

pub(super) const B2B: &[&str] = &[
    "GSTIN/UIN of Recipient",
    "Receiver Name",
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Reverse Charge",
    "Applicable % of Tax Rate",
    "Invoice Type",
    "E-Commerce GSTIN",
    "Rate",
    "Taxable Value",
    "Cess Amount",
];
pub(super) const B2B_V1: &[&str] = &[
    "GSTIN/UIN of Recipient",
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Reverse Charge",
    "Invoice Type",
    "E-Commerce GSTIN",
    "Rate",
    "Taxable Value",
    "Cess Amount",
];
pub(super) const B2CL: &[&str] = &[
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Applicable % of Tax Rate",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
pub(super) const B2CL_V1: &[&str] = &[
    "Invoice Number",
    "Invoice date",
    "Invoice Value",
    "Place Of Supply",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
pub(super) const B2CS: &[&str] = &[
    "Type",
    "Place Of Supply",
    "Applicable % of Tax Rate",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
pub(super) const B2CS_RATE_FIRST: &[&str] = &[
    "Type",
    "Place Of Supply",
    "Rate",
    "Applicable % of Tax Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
pub(super) const B2CS_V1: &[&str] = &[
    "Type",
    "Place Of Supply",
    "Rate",
    "Taxable Value",
    "Cess Amount",
    "E-Commerce GSTIN",
];
pub(super) const CDNR: &[&str] = &[
    "GSTIN/UIN of Recipient",
    "Receiver Name",
    "Note Number",
    "Note Date",
    "Note Type",
    "Place Of Supply",
    "Reverse Charge",
    "Note Supply Type",
    "Note Value",
    "Applicable % of Tax Rate",
    "Rate",
    "Taxable Value",
    "Cess Amount",
];
pub(super) const HSN: &[&str] = &[
    "HSN",
    "Description",
    "UQC",
    "Total Quantity",
    "Total Value",
    "Rate",
    "Taxable Value",
    "Integrated Tax Amount",
    "Central Tax Amount",
    "State/UT Tax Amount",
    "Cess Amount",
];

/// The accepted header rows of a section, the current template first.
pub(super) fn layouts(section: Section) -> &'static [&'static [&'static str]] {
    match section {
        Section::B2b => &[B2B, B2B_V1],
        Section::B2cl => &[B2CL, B2CL_V1],
        Section::B2cs => &[B2CS, B2CS_RATE_FIRST, B2CS_V1],
        Section::Cdnr => &[CDNR],
        Section::Hsn => &[HSN],
    }
}

/// Invoice Type / Note Supply Type labels (ASCII-case-insensitive) → inv_typ.
pub(super) const INV_TYPE_LABELS: [(&str, &str); 7] = [
    ("regular b2b", "R"),
    ("regular", "R"),
    ("sez supplies with payment", "SEWP"),
    ("sez supplies without payment", "SEWOP"),
    ("deemed exp", "DE"),
    ("deemed exports", "DE"),
    ("intra-state supplies attracting igst", "CBW"),
];
pub(super) const MONTHS: [&[u8]; 12] = [
    b"jan", b"feb", b"mar", b"apr", b"may", b"jun", b"jul", b"aug", b"sep", b"oct", b"nov", b"dec",
];

pub(super) fn col_of(name: &str) -> Col {
    COLUMNS
        .iter()
        .find(|(n, _)| *n == name)
        .expect("known column")
        .1
}

/// The header name the current template gives a logical column.
pub(super) fn title(section: Section, col: Col) -> &'static str {
    for layout in layouts(section) {
        for name in layout.iter() {
            if col_of(name) == col {
                return name;
            }
        }
    }
    ""
}

pub(super) fn key_cols(section: Section) -> &'static [Col] {
    match section {
        Section::B2b => &[Col::Ctin, Col::Inum],
        Section::B2cl => &[Col::Inum],
        Section::Cdnr => &[Col::Ctin, Col::NtNum],
        _ => &[],
    }
}

pub(super) fn invoice_cols(section: Section) -> &'static [Col] {
    match section {
        Section::B2b => &[
            Col::Idt,
            Col::Val,
            Col::Pos,
            Col::Rchrg,
            Col::Diff,
            Col::InvTyp,
            Col::Etin,
        ],
        Section::B2cl => &[Col::Idt, Col::Val, Col::Pos, Col::Diff, Col::Etin],
        Section::Cdnr => &[
            Col::NtDt,
            Col::Ntty,
            Col::Pos,
            Col::Rchrg,
            Col::InvTyp,
            Col::Val,
            Col::Diff,
        ],
        _ => &[],
    }
}

/// Header normalisation: trimmed, runs of spaces/tabs as one space, ASCII lower case.
pub(super) fn norm(name: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(name.len());
    let mut space = false;
    for &b in trim(name) {
        if b == b' ' || b == b'\t' {
            space = true;
            continue;
        }
        if space && !out.is_empty() {
            out.push(b' ');
        }
        space = false;
        out.push(b.to_ascii_lowercase());
    }
    out
}
