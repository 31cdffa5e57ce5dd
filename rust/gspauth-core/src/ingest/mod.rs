//! The ingest core: streamed reading of invoice files (JSONL, GSTR-1 JSON as the
//! GST offline tool writes it, the offline tool's CSV templates), validation of
//! every record, canonical record bytes, and grouping into RETSAVE chunks whose
//! request bodies are sealed straight into one buffer.
//!
//! The behaviour — every record, error code and message, and every chunk byte —
//! is that of the Python reference `gspauth/ingest/_python`; `docs/ingest.md`
//! is the contract. Concerns, one per module: `json` (record reader), `gstr1`
//! (incremental walk of the outer GSTR-1 structure; `extent` finds where a value
//! ends), `csv` (`row` splitting, `layout`s, cell `values`, `invoice` folding,
//! `single`-row sections), `jsonl`, `numbers` (exact decimals), `text` (escapes),
//! `schema` (known-field tables), `model` (shape walk and canonical writer),
//! `rules` (value `checks`, `items` and tax, the section rules), `parser`,
//! `chunker`.

mod chunker;
mod csv;
pub(crate) mod error;
mod fast;
mod gstr1;
mod json;
mod jsonl;
mod model;
mod numbers;
mod parser;
mod rules;
mod schema;
mod text;
#[cfg(test)]
mod vectors;

pub use chunker::{Chunk, ChunkRecord, Chunker, ChunkerError, DEFAULT_MAX_CHUNK_BYTES};
pub use error::RecordError;
pub use json::MAX_DEPTH;
pub use parser::{Batch, ParamError, Parser, Record, MAX_RECORD_BYTES};

/// A GSTR-1 section the ingest reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Section {
    /// B2B invoices (grouped by `ctin`).
    B2b,
    /// B2C large invoices (grouped by `pos`).
    B2cl,
    /// B2C small entries.
    B2cs,
    /// Credit/debit notes to registered persons (grouped by `ctin`).
    Cdnr,
    /// HSN summary entries.
    Hsn,
}

impl Section {
    /// Every section, in name order.
    pub const ALL: [Section; 5] = [
        Section::B2b,
        Section::B2cl,
        Section::B2cs,
        Section::Cdnr,
        Section::Hsn,
    ];

    /// The section's name in GSTR-1 JSON (`"b2b"` …).
    pub fn name(self) -> &'static str {
        match self {
            Section::B2b => "b2b",
            Section::B2cl => "b2cl",
            Section::B2cs => "b2cs",
            Section::Cdnr => "cdnr",
            Section::Hsn => "hsn",
        }
    }

    /// The section named `name`, if it is one the ingest reads.
    pub fn from_name(name: &[u8]) -> Option<Section> {
        Section::ALL
            .into_iter()
            .find(|s| s.name().as_bytes() == name)
    }

    /// The field naming a record's group in a chunk: `ctin` (b2b, cdnr), `pos` (b2cl).
    pub fn counterparty(self) -> Option<&'static str> {
        match self {
            Section::B2b | Section::Cdnr => Some("ctin"),
            Section::B2cl => Some("pos"),
            Section::B2cs | Section::Hsn => None,
        }
    }

    /// The field holding a group's records (`inv`, `nt`; `data` for hsn; none for b2cs).
    pub fn list_field(self) -> &'static str {
        match self {
            Section::B2b | Section::B2cl => "inv",
            Section::Cdnr => "nt",
            Section::Hsn => "data",
            Section::B2cs => "",
        }
    }
}

/// An input format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// One record per line.
    Jsonl,
    /// GSTR-1 JSON as the offline tool writes it.
    Gstr1Json,
    /// The offline tool's CSV template of one section.
    Csv,
}

impl Format {
    /// The format named `name` (`jsonl`, `gstr1-json`, `csv`).
    pub fn from_name(name: &str) -> Option<Format> {
        match name {
            "jsonl" => Some(Format::Jsonl),
            "gstr1-json" => Some(Format::Gstr1Json),
            "csv" => Some(Format::Csv),
            _ => None,
        }
    }
}
