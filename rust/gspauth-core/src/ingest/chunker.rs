//! Grouping records into RETSAVE chunks under a byte limit (twin of
//! `gspauth/ingest/_python/_chunker.py`, whose docstring states the rules), and
//! the request body of a chunk sealed straight into one buffer.

use std::collections::HashMap;
use std::hash::{BuildHasherDefault, Hasher};

use sha2::{Digest, Sha256};

use crate::envelope::{request_data_len, RequestSealer, Scratch, HMAC_B64_LEN};
use crate::ingest::error::RecordError;
use crate::ingest::parser::Batch;
use crate::ingest::text::write_str;
use crate::ingest::Section;

/// FNV-1a: the keys (GSTINs, a period, a section; a ctin or pos) are short and come
/// from our own validated records, so a keyed hash buys nothing; SipHash showed in profiles.
#[derive(Default)]
struct Fnv(u64);

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        let mut h = if self.0 == 0 {
            0xcbf2_9ce4_8422_2325
        } else {
            self.0
        };
        for &b in bytes {
            h = (h ^ b as u64).wrapping_mul(0x0000_0100_0000_01b3);
        }
        self.0 = h;
    }
}

type FnvMap<K, V> = HashMap<K, V, BuildHasherDefault<Fnv>>;

/// Default payload limit: 2 MiB of JSON, a request body of about 3.7 MB (see `docs/ingest.md`).
pub const DEFAULT_MAX_CHUNK_BYTES: usize = 2 << 20;

/// A bad argument (Python: `InvalidParameter`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChunkerError {
    /// The message, as the reference words it.
    pub message: String,
    /// The parameter it is about.
    pub field: &'static str,
}

/// A record in a chunk: its identity and content hash.
#[derive(Debug, Clone, Copy)]
pub struct ChunkRecord {
    ident: (u32, u32),
    /// SHA-256 of the record's canonical bytes.
    pub sha256: [u8; 32],
}

/// One RETSAVE payload: canonical JSON `{"<section>": …, "fp": …, "gstin": …}`.
#[derive(Debug, Clone)]
pub struct Chunk {
    /// Supplier GSTIN.
    pub gstin: [u8; 15],
    /// Return period.
    pub fp: [u8; 6],
    /// Section.
    pub section: Section,
    /// The payload bytes.
    pub payload: Vec<u8>,
    /// SHA-256 of the payload.
    pub sha256: [u8; 32],
    records: Vec<ChunkRecord>,
    idents: Vec<u8>,
}

impl Chunk {
    /// The records, in arrival order.
    pub fn records(&self) -> &[ChunkRecord] {
        &self.records
    }

    /// A record's identity.
    pub fn ident(&self, r: &ChunkRecord) -> &str {
        std::str::from_utf8(&self.idents[r.ident.0 as usize..r.ident.1 as usize]).unwrap_or("")
    }

    /// The JSON of `"action":<action>` as it opens the body (`{"action":"RETSAVE"`).
    fn head(action: &str) -> Vec<u8> {
        let mut h = b"{\"action\":".to_vec();
        write_str(&mut h, action.as_bytes());
        h
    }

    /// Length of [`write_body`](Self::write_body)'s output for `action`.
    pub fn body_len(&self, action: &str) -> usize {
        Self::head(action).len()
            + b",\"data\":\"".len()
            + request_data_len(self.payload.len())
            + b"\",\"hmac\":\"".len()
            + HMAC_B64_LEN
            + b"\"}".len()
    }

    /// The request body `{"action":…,"data":…,"hmac":…}` — byte for byte
    /// `gspauth.protocol.wrap_payload_content(sek, action, payload)` — written into
    /// `out`, which must be [`body_len`](Self::body_len) long. The envelope is sealed
    /// in place; only the 44-byte hmac is moved to make room for its key.
    pub fn write_body(
        &self,
        sealer: &RequestSealer,
        action: &str,
        out: &mut [u8],
        scratch: &mut Scratch,
    ) -> crate::Result<()> {
        RequestSealer::check(&self.payload)?;
        let head = Self::head(action);
        let data_len = request_data_len(self.payload.len());
        let mut at = 0;
        let mut put = |out: &mut [u8], s: &[u8]| {
            out[at..at + s.len()].copy_from_slice(s);
            at += s.len();
        };
        put(out, &head);
        put(out, b",\"data\":\"");
        let slot = at;
        let sep = b"\",\"hmac\":\"";
        sealer.seal_into(
            &self.payload,
            &mut out[slot..slot + data_len + HMAC_B64_LEN],
            scratch,
        )?;
        out.copy_within(
            slot + data_len..slot + data_len + HMAC_B64_LEN,
            slot + data_len + sep.len(),
        );
        out[slot + data_len..slot + data_len + sep.len()].copy_from_slice(sep);
        let end = slot + data_len + sep.len() + HMAC_B64_LEN;
        out[end..end + 2].copy_from_slice(b"\"}");
        Ok(())
    }
}

struct Sub {
    key: Vec<u8>,
    body: Vec<u8>,
}

struct Group {
    gstin: [u8; 15],
    fp: [u8; 6],
    section: Section,
    head: Vec<u8>,
    tail: Vec<u8>,
    subs: Vec<Sub>,
    sub_index: FnvMap<Vec<u8>, usize>,
    /// b2cs / hsn records, joined by commas.
    order: Vec<u8>,
    records: Vec<ChunkRecord>,
    idents: Vec<u8>,
    size: usize,
    buffered: usize,
}

/// A sub-group: `{"ctin":KEY,"inv":[RECORDS]}` (`"nt"` for cdnr), or for b2cl
/// `{"inv":[RECORDS],"pos":KEY}` (keys in code-point order).
fn write_sub(out: &mut Vec<u8>, section: Section, key: &[u8], records: &[u8]) {
    if section == Section::B2cl {
        out.extend_from_slice(b"{\"inv\":[");
        out.extend_from_slice(records);
        out.extend_from_slice(b"],\"pos\":");
        write_str(out, key);
        out.push(b'}');
    } else {
        out.extend_from_slice(b"{\"ctin\":");
        write_str(out, key);
        out.extend_from_slice(b",\"");
        out.extend_from_slice(section.list_field().as_bytes());
        out.extend_from_slice(b"\":[");
        out.extend_from_slice(records);
        out.extend_from_slice(b"]}");
    }
}

/// Bytes a sub-group adds besides its records.
fn sub_wrapper_len(section: Section, key: &[u8]) -> usize {
    let mut probe = Vec::with_capacity(48);
    write_sub(&mut probe, section, key, b"");
    probe.len()
}

impl Group {
    fn new(gstin: [u8; 15], fp: [u8; 6], section: Section) -> Group {
        let mut keys = b"\"fp\":".to_vec();
        write_str(&mut keys, &fp);
        keys.extend_from_slice(b",\"gstin\":");
        write_str(&mut keys, &gstin);
        let (head, tail) = if section == Section::Hsn {
            let mut head = b"{".to_vec();
            head.extend_from_slice(&keys);
            head.extend_from_slice(b",\"hsn\":{\"data\":[");
            (head, b"]}}".to_vec())
        } else {
            let mut head = b"{\"".to_vec();
            head.extend_from_slice(section.name().as_bytes());
            head.extend_from_slice(b"\":[");
            let mut tail = b"],".to_vec();
            tail.extend_from_slice(&keys);
            tail.push(b'}');
            (head, tail)
        };
        let size = head.len() + tail.len();
        Group {
            gstin,
            fp,
            section,
            head,
            tail,
            subs: Vec::new(),
            sub_index: FnvMap::default(),
            order: Vec::new(),
            records: Vec::new(),
            idents: Vec::new(),
            size,
            buffered: 0,
        }
    }

    fn cost(&self, key: &[u8], canon: &[u8]) -> usize {
        if self.section.counterparty().is_none() {
            return canon.len() + usize::from(!self.records.is_empty());
        }
        if self.sub_index.contains_key(key) {
            return canon.len() + 1;
        }
        sub_wrapper_len(self.section, key) + usize::from(!self.subs.is_empty()) + canon.len()
    }

    fn add(&mut self, key: &[u8], canon: &[u8], ident: &str, sha256: [u8; 32], cost: usize) {
        if self.section.counterparty().is_some() {
            let i = match self.sub_index.get(key) {
                Some(&i) => i,
                None => {
                    self.subs.push(Sub {
                        key: key.to_vec(),
                        body: Vec::new(),
                    });
                    self.sub_index.insert(key.to_vec(), self.subs.len() - 1);
                    self.subs.len() - 1
                }
            };
            let body = &mut self.subs[i].body;
            if !body.is_empty() {
                body.push(b',');
            }
            body.extend_from_slice(canon);
        } else {
            if !self.order.is_empty() {
                self.order.push(b',');
            }
            self.order.extend_from_slice(canon);
        }
        let a = self.idents.len() as u32;
        self.idents.extend_from_slice(ident.as_bytes());
        self.records.push(ChunkRecord {
            ident: (a, self.idents.len() as u32),
            sha256,
        });
        self.size += cost;
        self.buffered += canon.len();
    }

    fn take(&mut self) -> Chunk {
        let mut payload = Vec::with_capacity(self.size);
        payload.extend_from_slice(&self.head);
        if self.section.counterparty().is_some() {
            for (i, sub) in self.subs.iter().enumerate() {
                if i > 0 {
                    payload.push(b',');
                }
                write_sub(&mut payload, self.section, &sub.key, &sub.body);
            }
        } else {
            payload.extend_from_slice(&self.order);
        }
        payload.extend_from_slice(&self.tail);
        debug_assert_eq!(payload.len(), self.size);
        let sha256: [u8; 32] = Sha256::digest(&payload).into();
        let chunk = Chunk {
            gstin: self.gstin,
            fp: self.fp,
            section: self.section,
            payload,
            sha256,
            records: std::mem::take(&mut self.records),
            idents: std::mem::take(&mut self.idents),
        };
        self.subs.clear();
        self.sub_index.clear();
        self.order.clear();
        self.size = self.head.len() + self.tail.len();
        self.buffered = 0;
        chunk
    }
}

/// Groups the records of batches into chunks.
pub struct Chunker {
    max_chunk: usize,
    max_buffer: usize,
    groups: Vec<Group>,
    index: FnvMap<([u8; 15], [u8; 6], Section), usize>,
    buffered: usize,
    peak: usize,
    errors: Vec<RecordError>,
}

impl Chunker {
    /// A chunker with a payload limit and a budget of buffered record bytes (both ≥ 1).
    pub fn new(max_chunk_bytes: usize, max_buffer_bytes: usize) -> Result<Chunker, ChunkerError> {
        for (name, v) in [
            ("max_chunk_bytes", max_chunk_bytes),
            ("max_buffer_bytes", max_buffer_bytes),
        ] {
            if v < 1 {
                return Err(ChunkerError {
                    message: format!("{name} must be at least 1"),
                    field: name,
                });
            }
        }
        Ok(Chunker {
            max_chunk: max_chunk_bytes,
            max_buffer: max_buffer_bytes,
            groups: Vec::new(),
            index: FnvMap::default(),
            buffered: 0,
            peak: 0,
            errors: Vec::new(),
        })
    }

    /// Canonical record bytes held in open chunks now.
    pub fn buffered_bytes(&self) -> usize {
        self.buffered
    }

    /// The most [`buffered_bytes`](Self::buffered_bytes) has been after placing a record.
    pub fn peak_buffered_bytes(&self) -> usize {
        self.peak
    }

    /// Records refused since the last call (`too-large`); clears the list.
    pub fn take_errors(&mut self) -> Vec<RecordError> {
        std::mem::take(&mut self.errors)
    }

    /// Add the records of `batch` except where `skip[i]` is non-zero; returns the chunks completed.
    pub fn add(&mut self, batch: &Batch, skip: Option<&[u8]>) -> Result<Vec<Chunk>, ChunkerError> {
        let recs = batch.records();
        if let Some(skip) = skip {
            if skip.len() != recs.len() {
                return Err(ChunkerError {
                    message: format!(
                        "skip has {} bytes; the batch has {} records",
                        skip.len(),
                        recs.len()
                    ),
                    field: "skip",
                });
            }
        }
        let mut out = Vec::new();
        for (i, r) in recs.iter().enumerate() {
            if skip.is_some_and(|s| s[i] != 0) {
                continue;
            }
            let gi = *self
                .index
                .entry((r.gstin, r.fp, r.section))
                .or_insert_with(|| {
                    self.groups.push(Group::new(r.gstin, r.fp, r.section));
                    self.groups.len() - 1
                });
            let (key, canon) = (batch.key(r), batch.canonical(r));
            let group = &mut self.groups[gi];
            let mut cost = group.cost(key, canon);
            if group.size + cost > self.max_chunk && !group.records.is_empty() {
                self.buffered -= group.buffered;
                out.push(group.take());
                cost = group.cost(key, canon);
            }
            if group.size + cost > self.max_chunk {
                self.errors.push(RecordError {
                    line: r.line,
                    code: "too-large",
                    message: format!(
                        "the record needs a chunk of {} bytes; max_chunk_bytes is {}",
                        group.size + cost,
                        self.max_chunk
                    ),
                });
                continue;
            }
            group.add(key, canon, batch.ident(r), r.sha256, cost);
            self.buffered += canon.len();
            while self.buffered > self.max_buffer {
                // The group holding the most; the earliest opened on a tie.
                let mut largest = 0;
                for (j, g) in self.groups.iter().enumerate() {
                    if g.buffered > self.groups[largest].buffered {
                        largest = j;
                    }
                }
                self.buffered -= self.groups[largest].buffered;
                out.push(self.groups[largest].take());
            }
            self.peak = self.peak.max(self.buffered);
        }
        Ok(out)
    }

    /// Emit every open chunk, in the order their groups were opened.
    pub fn flush(&mut self) -> Vec<Chunk> {
        self.buffered = 0;
        self.groups
            .iter_mut()
            .filter(|g| !g.records.is_empty())
            .map(Group::take)
            .collect()
    }
}
