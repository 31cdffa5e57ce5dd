//! The known-field tables and value lists (twin of `gspauth/ingest/_python/_schema.py`).
//!
//! Every object the ingest accepts is described here: its fields, their JSON
//! kind, which are required and how numbers are read. A field not in its table
//! is an `unknown-field` error. Tables list fields in code-point order, the
//! order the canonical form writes them. A JSONL line's table is the record's
//! plus the `meta` fields (gstin, fp, section, the counterparty), which are not
//! written into the record's canonical form.

use crate::ingest::Section;

/// JSON kind of a field.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    /// A number with at most 2 decimals.
    Num,
    /// A whole number.
    Int,
    Obj,
    /// An array of objects.
    Arr,
}

#[derive(Debug)]
pub(crate) struct Field {
    pub name: &'static str,
    /// The name as a [`tag`] (for a lookup without byte comparisons).
    pub tag: u128,
    /// `"name":` as the canonical form writes it, zero-padded to 16 bytes (see `text::put_span`).
    pub key: [u8; 16],
    /// Its length.
    pub key_len: usize,
    pub kind: Kind,
    pub required: bool,
    /// Numbers: may be negative.
    pub negative: bool,
    /// Objects and arrays: the table of the object(s).
    pub table: Option<&'static Table>,
    /// JSONL only: read from the line but not part of the record.
    pub meta: bool,
}

#[derive(Debug)]
pub(crate) struct Table {
    /// Names the object in messages ("invoice", "item" …).
    pub what: &'static str,
    pub fields: &'static [Field],
}

impl Table {
    /// The field named `name`.
    #[inline]
    pub fn index(&self, name: &[u8]) -> Option<usize> {
        self.index_tag(tag(name)?)
    }

    /// The field whose [`tag`] is `t`.
    #[inline]
    pub fn index_tag(&self, t: u128) -> Option<usize> {
        self.fields.iter().position(|f| f.tag == t)
    }

    /// Index of a field that is known to be in the table.
    #[inline]
    pub fn at(&self, name: &str) -> usize {
        self.index(name.as_bytes())
            .expect("field name from the same table")
    }
}

/// A name of at most 15 bytes as one integer: its bytes (little-endian) and its
/// length in the top byte. Every field name fits; a longer key is no field.
#[inline]
pub(crate) const fn tag(name: &[u8]) -> Option<u128> {
    if name.len() > 15 {
        return None;
    }
    let mut t = (name.len() as u128) << 120;
    let mut i = 0;
    while i < name.len() {
        t |= (name[i] as u128) << (8 * i);
        i += 1;
    }
    Some(t)
}

/// The tag of the key whose bytes start at `input[start]` and are `len` long,
/// read as one 16-byte word when the input extends that far (it nearly always does).
#[inline]
pub(crate) fn tag_at(input: &[u8], start: usize, len: usize) -> Option<u128> {
    if len > 15 {
        return None;
    }
    match input.get(start..start + 16) {
        Some(w) => {
            let word = u128::from_le_bytes(w.try_into().expect("16 bytes"));
            let mask = if len == 0 {
                0
            } else {
                u128::MAX >> (128 - 8 * len)
            };
            Some((word & mask) | ((len as u128) << 120))
        }
        None => tag(&input[start..start + len]),
    }
}

const fn pad16(key: &str) -> [u8; 16] {
    let b = key.as_bytes();
    assert!(b.len() <= 16, "field names are at most 13 bytes");
    let mut out = [0u8; 16];
    let mut i = 0;
    while i < b.len() {
        out[i] = b[i];
        i += 1;
    }
    out
}

const fn name_tag(name: &str) -> u128 {
    match tag(name.as_bytes()) {
        Some(t) => t,
        None => panic!("field names are at most 15 bytes"),
    }
}

/// The index of field `name` in `table`, at compile time.
pub(crate) const fn field_index(table: &Table, name: &str) -> usize {
    let t = name_tag(name);
    let mut i = 0;
    while i < table.fields.len() {
        if table.fields[i].tag == t {
            return i;
        }
        i += 1;
    }
    panic!("no such field")
}

// Fields are built by macros so that each carries its JSON key text (`"name":`),
// written as is by the canonical writer.
macro_rules! f {
    ($name:literal, $kind:expr, $required:expr) => {
        Field {
            name: $name,
            tag: name_tag($name),
            key: pad16(concat!("\"", $name, "\":")),
            key_len: $name.len() + 3,
            kind: $kind,
            required: $required,
            negative: false,
            table: None,
            meta: false,
        }
    };
}

macro_rules! neg {
    ($name:literal, $required:expr) => {
        Field {
            name: $name,
            tag: name_tag($name),
            key: pad16(concat!("\"", $name, "\":")),
            key_len: $name.len() + 3,
            kind: Kind::Num,
            required: $required,
            negative: true,
            table: None,
            meta: false,
        }
    };
}

macro_rules! meta {
    ($name:literal) => {
        Field {
            name: $name,
            tag: name_tag($name),
            key: pad16(concat!("\"", $name, "\":")),
            key_len: $name.len() + 3,
            kind: Kind::Str,
            required: true,
            negative: false,
            table: None,
            meta: true,
        }
    };
}

macro_rules! sub {
    ($name:literal, $kind:expr, $table:expr) => {
        Field {
            name: $name,
            tag: name_tag($name),
            key: pad16(concat!("\"", $name, "\":")),
            key_len: $name.len() + 3,
            kind: $kind,
            required: true,
            negative: false,
            table: Some($table),
            meta: false,
        }
    };
}

use Kind::{Int, Num, Str};

pub(crate) static DET: Table = Table {
    what: "itm_det",
    fields: &[
        f!("camt", Num, false),
        f!("csamt", Num, false),
        f!("iamt", Num, false),
        f!("rt", Num, true),
        f!("samt", Num, false),
        f!("txval", Num, true),
    ],
};
pub(crate) static DET_IGST: Table = Table {
    what: "itm_det",
    fields: &[
        f!("csamt", Num, false),
        f!("iamt", Num, false),
        f!("rt", Num, true),
        f!("txval", Num, true),
    ],
};
pub(crate) static ITEM: Table = Table {
    what: "item",
    fields: &[sub!("itm_det", Kind::Obj, &DET), f!("num", Int, true)],
};
pub(crate) static ITEM_IGST: Table = Table {
    what: "item",
    fields: &[sub!("itm_det", Kind::Obj, &DET_IGST), f!("num", Int, true)],
};

macro_rules! tables {
    ($name:ident, $meta_name:ident, $what:expr, [$($field:expr),* $(,)?], [$($mfield:expr),* $(,)?]) => {
        pub(crate) static $name: Table = Table { what: $what, fields: &[$($field),*] };
        pub(crate) static $meta_name: Table = Table { what: $what, fields: &[$($mfield),*] };
    };
}

tables!(
    B2B,
    B2B_META,
    "invoice",
    [
        f!("diff_percent", Num, false),
        f!("etin", Str, false),
        f!("idt", Str, true),
        f!("inum", Str, true),
        f!("inv_typ", Str, true),
        sub!("itms", Kind::Arr, &ITEM),
        f!("pos", Str, true),
        f!("rchrg", Str, true),
        f!("val", Num, true),
    ],
    [
        meta!("ctin"),
        f!("diff_percent", Num, false),
        f!("etin", Str, false),
        meta!("fp"),
        meta!("gstin"),
        f!("idt", Str, true),
        f!("inum", Str, true),
        f!("inv_typ", Str, true),
        sub!("itms", Kind::Arr, &ITEM),
        f!("pos", Str, true),
        f!("rchrg", Str, true),
        meta!("section"),
        f!("val", Num, true),
    ]
);

tables!(
    B2CL,
    B2CL_META,
    "invoice",
    [
        f!("diff_percent", Num, false),
        f!("etin", Str, false),
        f!("idt", Str, true),
        f!("inum", Str, true),
        sub!("itms", Kind::Arr, &ITEM_IGST),
        f!("val", Num, true),
    ],
    [
        f!("diff_percent", Num, false),
        f!("etin", Str, false),
        meta!("fp"),
        meta!("gstin"),
        f!("idt", Str, true),
        f!("inum", Str, true),
        sub!("itms", Kind::Arr, &ITEM_IGST),
        meta!("pos"),
        meta!("section"),
        f!("val", Num, true),
    ]
);

tables!(
    CDNR,
    CDNR_META,
    "note",
    [
        f!("diff_percent", Num, false),
        f!("inv_typ", Str, true),
        sub!("itms", Kind::Arr, &ITEM),
        f!("nt_dt", Str, true),
        f!("nt_num", Str, true),
        f!("ntty", Str, true),
        f!("pos", Str, true),
        f!("rchrg", Str, true),
        f!("val", Num, true),
    ],
    [
        meta!("ctin"),
        f!("diff_percent", Num, false),
        meta!("fp"),
        meta!("gstin"),
        f!("inv_typ", Str, true),
        sub!("itms", Kind::Arr, &ITEM),
        f!("nt_dt", Str, true),
        f!("nt_num", Str, true),
        f!("ntty", Str, true),
        f!("pos", Str, true),
        f!("rchrg", Str, true),
        meta!("section"),
        f!("val", Num, true),
    ]
);

tables!(
    B2CS,
    B2CS_META,
    "entry",
    [
        neg!("camt", false),
        neg!("csamt", false),
        f!("diff_percent", Num, false),
        f!("etin", Str, false),
        neg!("iamt", false),
        f!("pos", Str, true),
        f!("rt", Num, true),
        neg!("samt", false),
        f!("sply_ty", Str, true),
        neg!("txval", true),
        f!("typ", Str, true),
    ],
    [
        neg!("camt", false),
        neg!("csamt", false),
        f!("diff_percent", Num, false),
        f!("etin", Str, false),
        meta!("fp"),
        meta!("gstin"),
        neg!("iamt", false),
        f!("pos", Str, true),
        f!("rt", Num, true),
        neg!("samt", false),
        meta!("section"),
        f!("sply_ty", Str, true),
        neg!("txval", true),
        f!("typ", Str, true),
    ]
);

tables!(
    HSN,
    HSN_META,
    "entry",
    [
        f!("camt", Num, false),
        f!("csamt", Num, false),
        f!("desc", Str, false),
        f!("hsn_sc", Str, true),
        f!("iamt", Num, false),
        f!("num", Int, true),
        f!("qty", Num, true),
        f!("rt", Num, true),
        f!("samt", Num, false),
        f!("txval", Num, true),
        f!("uqc", Str, true),
        f!("val", Num, false),
    ],
    [
        f!("camt", Num, false),
        f!("csamt", Num, false),
        f!("desc", Str, false),
        meta!("fp"),
        meta!("gstin"),
        f!("hsn_sc", Str, true),
        f!("iamt", Num, false),
        f!("num", Int, true),
        f!("qty", Num, true),
        f!("rt", Num, true),
        f!("samt", Num, false),
        meta!("section"),
        f!("txval", Num, true),
        f!("uqc", Str, true),
        f!("val", Num, false),
    ]
);

/// Where the tax fields of an object are: the item rules and the CSV builder run
/// per item, and looking fields up by name there showed in profiles.
pub(crate) struct TaxSlots {
    pub rt: Option<usize>,
    pub txval: Option<usize>,
    pub iamt: Option<usize>,
    pub camt: Option<usize>,
    pub samt: Option<usize>,
    pub csamt: Option<usize>,
}

impl TaxSlots {
    /// The slots of `t` (for tables other than the two `itm_det` ones).
    pub fn of(t: &Table) -> TaxSlots {
        TaxSlots {
            rt: t.index(b"rt"),
            txval: t.index(b"txval"),
            iamt: t.index(b"iamt"),
            camt: t.index(b"camt"),
            samt: t.index(b"samt"),
            csamt: t.index(b"csamt"),
        }
    }

    /// The slots of an `itm_det` table (precomputed).
    pub fn of_det(t: &'static Table) -> &'static TaxSlots {
        if std::ptr::eq(t, &DET) {
            &DET_SLOTS
        } else {
            &DET_IGST_SLOTS
        }
    }
}

pub(crate) const DET_SLOTS: TaxSlots = TaxSlots {
    rt: Some(field_index(&DET, "rt")),
    txval: Some(field_index(&DET, "txval")),
    iamt: Some(field_index(&DET, "iamt")),
    camt: Some(field_index(&DET, "camt")),
    samt: Some(field_index(&DET, "samt")),
    csamt: Some(field_index(&DET, "csamt")),
};
pub(crate) const DET_IGST_SLOTS: TaxSlots = TaxSlots {
    rt: Some(field_index(&DET_IGST, "rt")),
    txval: Some(field_index(&DET_IGST, "txval")),
    iamt: Some(field_index(&DET_IGST, "iamt")),
    camt: None,
    samt: None,
    csamt: Some(field_index(&DET_IGST, "csamt")),
};
/// `itm_det` and `num` sit in the same slots of both item tables.
pub(crate) const ITEM_DET: usize = field_index(&ITEM, "itm_det");
pub(crate) const ITEM_NUM: usize = field_index(&ITEM, "num");
const _: () = assert!(
    field_index(&ITEM_IGST, "itm_det") == ITEM_DET && field_index(&ITEM_IGST, "num") == ITEM_NUM
);

/// The table of one record of `section` as it appears in a chunk.
pub(crate) fn record_table(section: Section) -> &'static Table {
    match section {
        Section::B2b => &B2B,
        Section::B2cl => &B2CL,
        Section::B2cs => &B2CS,
        Section::Cdnr => &CDNR,
        Section::Hsn => &HSN,
    }
}

/// The table of one JSONL line of `section`.
pub(crate) fn line_table(section: Section) -> &'static Table {
    match section {
        Section::B2b => &B2B_META,
        Section::B2cl => &B2CL_META,
        Section::B2cs => &B2CS_META,
        Section::Cdnr => &CDNR_META,
        Section::Hsn => &HSN_META,
    }
}

/// GST rates in percent × 100 (0, 0.1, 0.25, 1, 1.5, 3, 5, 6, 7.5, 12, 18, 28, 40).
pub(crate) const RATES: [i64; 13] = [
    0, 10, 25, 100, 150, 300, 500, 600, 750, 1200, 1800, 2800, 4000,
];
pub(crate) const INV_TYPES: [&str; 5] = ["R", "SEWP", "SEWOP", "DE", "CBW"];
pub(crate) const NOTE_TYPES: [&str; 2] = ["C", "D"];
pub(crate) const SUPPLY_TYPES: [&str; 2] = ["INTER", "INTRA"];
pub(crate) const B2CS_TYPES: [&str; 2] = ["OE", "E"];
/// GSTN unit quantity codes (HSN summary), plus NA for services; sorted.
pub(crate) const UQC: [&str; 47] = [
    "BAG", "BAL", "BDL", "BKL", "BOU", "BOX", "BTL", "BUN", "CAN", "CBM", "CCM", "CMS", "CTN",
    "DOZ", "DRM", "GGK", "GMS", "GRS", "GYD", "KGS", "KLR", "KME", "LTR", "MLS", "MLT", "MTR",
    "MTS", "NA", "NOS", "OTH", "PAC", "PCS", "PRS", "QTL", "ROL", "SET", "SQF", "SQM", "SQY",
    "TBS", "TGM", "THD", "TON", "TUB", "UGS", "UNT", "YDS",
];
/// Top-level GSTR-1 fields that are read past (offline-tool bookkeeping).
pub(crate) const GSTR1_IGNORED: [&str; 4] = ["cur_gt", "gt", "hash", "version"];

#[cfg(test)]
mod tests {
    use super::*;

    fn sorted(t: &Table) -> bool {
        t.fields.windows(2).all(|w| w[0].name < w[1].name)
    }

    #[test]
    fn tables_are_in_code_point_order_and_meta_tables_extend_record_tables() {
        for s in [
            Section::B2b,
            Section::B2cl,
            Section::B2cs,
            Section::Cdnr,
            Section::Hsn,
        ] {
            let (r, m) = (record_table(s), line_table(s));
            assert!(sorted(r) && sorted(m));
            let plain: Vec<_> = m
                .fields
                .iter()
                .filter(|f| !f.meta)
                .map(|f| f.name)
                .collect();
            let rec: Vec<_> = r.fields.iter().map(|f| f.name).collect();
            assert_eq!(plain, rec);
        }
        assert!(sorted(&DET) && sorted(&DET_IGST) && sorted(&ITEM));
        assert!(UQC.windows(2).all(|w| w[0] < w[1]));
    }
}
