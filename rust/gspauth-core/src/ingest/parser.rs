//! [`Parser`] (one input file, fed in blocks of any size) and its [`Batch`]es
//! (twin of `gspauth/ingest/_python/_parser.py`).

use sha2::{Digest, Sha256};

use crate::ingest::csv::CsvReader;
use crate::ingest::error::{RecordError, Reject};
use crate::ingest::gstr1::Gstr1Reader;
use crate::ingest::json::Tok;
use crate::ingest::jsonl::JsonlReader;
use crate::ingest::model::Model;
use crate::ingest::rules::{check_fp, check_gstin, validate, Obj};
use crate::ingest::schema::Table;
use crate::ingest::text::show;
use crate::ingest::{Format, Section};
use crate::sha::sha256_two;

/// A record's input bytes (line, row, object) and its canonical bytes are at most this long.
pub const MAX_RECORD_BYTES: usize = 1 << 20;
const BOM: &[u8] = b"\xef\xbb\xbf";
/// The most bytes a reader is given at once: readers keep positions in their buffers
/// as `u32`, so a block of any size is read in pieces (tests use small pieces, so every
/// test also checks that the split does not matter).
#[cfg(not(test))]
const PIECE: usize = 256 << 20;
#[cfg(test)]
const PIECE: usize = 64 << 10;

/// A bad argument to [`Parser::new`] or a misuse (Python: `InvalidParameter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParamError {
    /// The message, as the reference words it.
    pub message: String,
    /// The parameter it is about.
    pub field: &'static str,
}

/// One accepted record.
#[derive(Debug, Clone)]
pub struct Record {
    /// Supplier GSTIN.
    pub gstin: [u8; 15],
    /// Return period MMYYYY.
    pub fp: [u8; 6],
    /// Section.
    pub section: Section,
    /// SHA-256 of the canonical bytes.
    pub sha256: [u8; 32],
    /// Line the record starts on.
    pub line: u64,
    key: (u32, u32),
    ident: (u32, u32),
    canon: (usize, usize),
}

/// What one [`Parser::feed`] or [`Parser::finish`] produced.
#[derive(Debug, Default)]
pub struct Batch {
    records: Vec<Record>,
    errors: Vec<RecordError>,
    text: Vec<u8>,
    canon: Vec<u8>,
}

impl Batch {
    /// Accepted records, in input order.
    pub fn records(&self) -> &[Record] {
        &self.records
    }

    /// Rejected records (and a fatal file error), in input order.
    pub fn errors(&self) -> &[RecordError] {
        &self.errors
    }

    /// The record identity (see `docs/ingest.md`), e.g. `29AAACB1234A1ZF|INV/1`.
    pub fn ident(&self, r: &Record) -> &str {
        std::str::from_utf8(&self.text[r.ident.0 as usize..r.ident.1 as usize]).unwrap_or("")
    }

    /// The counterparty the record is grouped under (`ctin`, b2cl `pos`; empty otherwise).
    pub fn key(&self, r: &Record) -> &[u8] {
        &self.text[r.key.0 as usize..r.key.1 as usize]
    }

    /// The record's canonical bytes.
    pub fn canonical(&self, r: &Record) -> &[u8] {
        &self.canon[r.canon.0..r.canon.1]
    }

    /// Number of accepted records.
    pub fn len(&self) -> usize {
        self.records.len()
    }

    /// Whether no record was accepted.
    pub fn is_empty(&self) -> bool {
        self.records.is_empty()
    }

    /// Fill in every record's SHA-256, two records at a time: SHA-NI is latency-bound
    /// on one message, and a second one fills its waits (see `crate::sha`).
    fn hash(&mut self) {
        let canon = &self.canon;
        let mut pairs = self.records.chunks_exact_mut(2);
        for pair in &mut pairs {
            let [a, b] = pair else { unreachable!() };
            (a.sha256, b.sha256) =
                sha256_two(&canon[a.canon.0..a.canon.1], &canon[b.canon.0..b.canon.1]);
        }
        if let [last] = pairs.into_remainder() {
            last.sha256 = Sha256::digest(&canon[last.canon.0..last.canon.1]).into();
        }
    }
}

/// Reusable per-parser buffers.
#[derive(Default)]
pub(crate) struct Work {
    pub tape: Vec<Tok>,
    pub model: Model,
}

/// What the readers were given.
pub(crate) struct Config {
    pub section: Option<Section>,
    pub gstin: Option<[u8; 15]>,
    pub fp: Option<[u8; 6]>,
}

/// Where readers report: the batch being filled.
pub(crate) struct Sink<'a> {
    pub batch: &'a mut Batch,
    pub failed: &'a mut bool,
    pub cfg: &'a Config,
}

impl Sink<'_> {
    pub fn error(&mut self, line: u64, code: &'static str, message: String) {
        self.batch.errors.push(RecordError {
            line,
            code,
            message,
        });
    }

    pub fn reject(&mut self, line: u64, r: Reject) {
        self.error(r.line.unwrap_or(line), r.code, r.message);
    }

    pub fn fatal(&mut self, line: u64, code: &'static str, message: String) {
        self.error(line, code, message);
        *self.failed = true;
    }

    /// Validate and write one shape-checked record (errors go to the batch; the batch
    /// hashes its records when the block is done).
    #[allow(clippy::too_many_arguments)]
    pub fn record(
        &mut self,
        section: Section,
        gstin: &[u8],
        fp: &[u8],
        key: &[u8],
        model: &Model,
        input: &[u8],
        base: u32,
        table: &'static Table,
        line: u64,
    ) {
        let obj = Obj {
            m: model,
            input,
            base,
            table,
        };
        let ident = match validate(section, &obj, gstin, fp, key) {
            Ok(ident) => ident,
            Err(r) => return self.reject(line, r),
        };
        let b = &mut *self.batch;
        let start = b.canon.len();
        model.write(input, base, table, &mut b.canon);
        if b.canon.len() - start > MAX_RECORD_BYTES {
            b.canon.truncate(start);
            return self.error(
                line,
                "too-large",
                format!("the record's canonical form is longer than {MAX_RECORD_BYTES} bytes"),
            );
        }
        let k0 = b.text.len() as u32;
        b.text.extend_from_slice(key);
        let k1 = b.text.len() as u32;
        b.text.extend_from_slice(ident.as_bytes());
        let i1 = b.text.len() as u32;
        b.records.push(Record {
            gstin: gstin.try_into().expect("a valid GSTIN has 15 bytes"),
            fp: fp.try_into().expect("a valid period has 6 bytes"),
            section,
            sha256: [0; 32], // filled by Batch::hash, in pairs
            line,
            key: (k0, k1),
            ident: (k1, i1),
            canon: (start, b.canon.len()),
        });
    }
}

enum Reader {
    Jsonl(JsonlReader),
    Gstr1(Box<Gstr1Reader>),
    Csv(Box<CsvReader>),
}

/// Streamed reading of one input file. Feed it the file's bytes in blocks of any
/// size; each call returns the records and errors completed so far.
pub struct Parser {
    cfg: Config,
    reader: Reader,
    work: Work,
    batch: Batch,
    failed: bool,
    done: bool,
    started: bool,
    head: Vec<u8>,
}

fn param(message: String, field: &'static str) -> ParamError {
    ParamError { message, field }
}

impl Parser {
    /// A parser for one file. `format`: `jsonl` | `gstr1-json` | `csv`; `section`,
    /// `gstin`, `fp`: expected values (JSONL), hints (GSTR-1 JSON), or the values
    /// the file lacks (CSV: all three required).
    pub fn new(
        format: &str,
        section: Option<&str>,
        gstin: Option<&str>,
        fp: Option<&str>,
    ) -> Result<Parser, ParamError> {
        let fmt = Format::from_name(format).ok_or_else(|| {
            param(
                format!(
                    "format {} is not one of jsonl, gstr1-json, csv",
                    show(format.as_bytes())
                ),
                "format",
            )
        })?;
        let section = match section {
            None => None,
            Some(s) => Some(Section::from_name(s.as_bytes()).ok_or_else(|| {
                param(
                    format!(
                        "section {} is not one of b2b, b2cl, b2cs, cdnr, hsn",
                        show(s.as_bytes())
                    ),
                    "section",
                )
            })?),
        };
        if let Some(g) = gstin {
            check_gstin(g.as_bytes(), "gstin", "gstin").map_err(|r| param(r.message, "gstin"))?;
        }
        if let Some(f) = fp {
            check_fp(f.as_bytes()).map_err(|r| param(r.message, "fp"))?;
        }
        if fmt == Format::Csv && (section.is_none() || gstin.is_none() || fp.is_none()) {
            return Err(param(
                "a CSV file needs section, gstin and fp: the offline-tool templates carry none of them \
                 (pass --section, --gstin, --fp)"
                    .into(),
                "section",
            ));
        }
        let cfg = Config {
            section,
            gstin: gstin.map(|g| g.as_bytes().try_into().expect("checked")),
            fp: fp.map(|f| f.as_bytes().try_into().expect("checked")),
        };
        let reader = match fmt {
            Format::Jsonl => Reader::Jsonl(JsonlReader::new()),
            Format::Gstr1Json => Reader::Gstr1(Box::new(Gstr1Reader::new())),
            Format::Csv => Reader::Csv(Box::new(CsvReader::new(&cfg))),
        };
        Ok(Parser {
            cfg,
            reader,
            work: Work::default(),
            batch: Batch::default(),
            failed: false,
            done: false,
            started: false,
            head: Vec::new(),
        })
    }

    /// Whether a fatal (file-level) error was reported: the rest of the input is ignored.
    pub fn failed(&self) -> bool {
        self.failed
    }

    /// Parse the next bytes of the file.
    pub fn feed(&mut self, data: &[u8]) -> Result<Batch, ParamError> {
        if self.done {
            return Err(param(
                "feed() after finish(): make a new Parser per file".into(),
                "data",
            ));
        }
        Ok(self.run(data, false))
    }

    /// End of input: completes or reports what the last bytes left open.
    pub fn finish(&mut self) -> Result<Batch, ParamError> {
        if self.done {
            return Err(param(
                "finish() called twice: make a new Parser per file".into(),
                "data",
            ));
        }
        self.done = true;
        Ok(self.run(&[], true))
    }

    fn run(&mut self, data: &[u8], last: bool) -> Batch {
        let held;
        let data = if self.started {
            data
        } else {
            self.head.extend_from_slice(data);
            if self.head.len() < BOM.len() && !last && BOM.starts_with(&self.head) {
                return std::mem::take(&mut self.batch);
            }
            held = std::mem::take(&mut self.head);
            self.started = true;
            if held.starts_with(BOM) {
                &held[BOM.len()..]
            } else {
                &held[..]
            }
        };
        if !self.failed {
            // The canonical records of a block take about as many bytes as the block.
            self.batch.canon.reserve(data.len() + data.len() / 8);
            let mut sink = Sink {
                batch: &mut self.batch,
                failed: &mut self.failed,
                cfg: &self.cfg,
            };
            let mut rest = data;
            loop {
                let (piece, tail) = rest.split_at(rest.len().min(PIECE));
                let end = last && tail.is_empty();
                match &mut self.reader {
                    Reader::Jsonl(r) => r.feed(piece, end, &mut sink, &mut self.work),
                    Reader::Gstr1(r) => r.feed(piece, end, &mut sink, &mut self.work),
                    Reader::Csv(r) => r.feed(piece, end, &mut sink, &mut self.work),
                }
                if tail.is_empty() || *sink.failed {
                    break;
                }
                rest = tail;
            }
        }
        self.batch.hash();
        std::mem::take(&mut self.batch)
    }
}
