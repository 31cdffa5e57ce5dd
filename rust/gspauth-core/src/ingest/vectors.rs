//! The ingest vectors (`tests/ingest/vectors/ingest_vectors.json` at the repository
//! root, written from the Python reference) met by the Rust core on its own: records,
//! errors, the failed flag, chunk payloads, hashes and the first request body.

use std::path::PathBuf;

use base64::Engine as _;
use serde_json::Value;

use crate::ingest::{Chunker, Parser};
use crate::{Key, RequestSealer, Scratch};

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

fn opt(v: &Value) -> Option<&str> {
    v.as_str()
}

fn vectors() -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/ingest/vectors/ingest_vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn input_of(case: &Value) -> Vec<u8> {
    let input = &case["input"];
    match input["text"].as_str() {
        Some(t) => t.as_bytes().to_vec(),
        None => base64::engine::general_purpose::STANDARD
            .decode(input["base64"].as_str().unwrap())
            .unwrap(),
    }
}

/// Every record and every error of `data` fed in blocks of `block` bytes, and the
/// failed flag (where a batch ends differs with the blocks, so records and errors are
/// compared apart).
fn outputs(case: &Value, data: &[u8], block: usize) -> (Vec<String>, Vec<String>, bool) {
    let mut parser = Parser::new(
        case["format"].as_str().unwrap(),
        opt(&case["section"]),
        opt(&case["gstin"]),
        opt(&case["fp"]),
    )
    .unwrap();
    let mut batches: Vec<_> = data
        .chunks(block)
        .map(|b| parser.feed(b).unwrap())
        .collect();
    batches.push(parser.finish().unwrap());
    let (mut records, mut errors) = (Vec::new(), Vec::new());
    for batch in &batches {
        for r in batch.records() {
            let canon = String::from_utf8_lossy(batch.canonical(r));
            records.push(format!(
                "{} {} {} {canon}",
                batch.ident(r),
                hex(&r.sha256),
                r.line
            ));
        }
        for e in batch.errors() {
            errors.push(format!("{} {} {}", e.line, e.code, e.message));
        }
    }
    (records, errors, parser.failed())
}

fn same_lists(a: &[String], b: &[String], what: &str, id: &Value) {
    if let Some(k) = (0..a.len().min(b.len())).find(|&k| a[k] != b[k]) {
        panic!("case {id}: {what} {k}: {} != {}", a[k], b[k]);
    }
    assert_eq!(a.len(), b.len(), "case {id}: number of {what}");
}

/// A block larger than the reader's piece (64 KiB under test) gives what small blocks
/// give: each JSONL and CSV case's rows repeated past 256 KiB, fed whole and in
/// 1000-byte blocks.
#[test]
fn a_large_block_is_read_in_pieces_like_small_blocks() {
    let file = vectors();
    let mut cases = 0;
    for case in file["tests"].as_array().unwrap() {
        let format = case["format"].as_str().unwrap();
        if format == "gstr1-json" {
            continue;
        }
        let mut input = input_of(case);
        if !input.ends_with(b"\n") {
            input.push(b'\n');
        }
        let (head, rows) = if format == "csv" {
            let at = memchr::memchr(b'\n', &input).unwrap() + 1;
            (&input[..at], &input[at..])
        } else {
            (&input[..0], &input[..])
        };
        if rows.is_empty() {
            continue;
        }
        let mut data = head.to_vec();
        while data.len() <= 256 << 10 {
            data.extend_from_slice(rows);
        }
        let id = &case["tcId"];
        let whole = outputs(case, &data, data.len());
        let small = outputs(case, &data, 1000);
        same_lists(&whole.0, &small.0, "records", id);
        same_lists(&whole.1, &small.1, "errors", id);
        assert_eq!(whole.2, small.2, "case {id}: failed");
        assert!(!whole.0.is_empty() || !whole.1.is_empty(), "case {id}");
        cases += 1;
    }
    assert!(cases >= 10);
}

#[test]
fn every_case_gives_the_reference_outputs() {
    let file = vectors();
    let max_chunk = file["maxChunkBytes"].as_u64().unwrap() as usize;
    let max_buffer = file["maxBufferBytes"].as_u64().unwrap() as usize;
    let sek: Vec<u8> = (0..32).collect();
    assert_eq!(file["sek"].as_str().unwrap(), hex(&sek));
    let sealer = RequestSealer::new(&Key::from_slice(&sek).unwrap());
    let action = file["action"].as_str().unwrap();
    let tests = file["tests"].as_array().unwrap();
    assert!(tests.len() >= 20);
    for case in tests {
        let id = &case["tcId"];
        let data = input_of(case);
        let mut parser = Parser::new(
            case["format"].as_str().unwrap(),
            opt(&case["section"]),
            opt(&case["gstin"]),
            opt(&case["fp"]),
        )
        .unwrap();
        let mut chunker = Chunker::new(max_chunk, max_buffer).unwrap();
        let (mut records, mut errors, mut chunks) = (Vec::new(), Vec::new(), Vec::new());
        for batch in [parser.feed(&data).unwrap(), parser.finish().unwrap()] {
            for r in batch.records() {
                records.push(serde_json::json!([
                    std::str::from_utf8(&r.gstin).unwrap(),
                    std::str::from_utf8(&r.fp).unwrap(),
                    r.section.name(),
                    batch.ident(r),
                    hex(&r.sha256),
                    r.line
                ]));
            }
            for e in batch.errors() {
                errors.push(serde_json::json!(["input", e.line, e.code, e.message]));
            }
            chunks.extend(chunker.add(&batch, None).unwrap());
            for e in chunker.take_errors() {
                errors.push(serde_json::json!(["input", e.line, e.code, e.message]));
            }
        }
        chunks.extend(chunker.flush());
        assert_eq!(Value::Array(records), case["records"], "case {id}: records");
        assert_eq!(Value::Array(errors), case["errors"], "case {id}: errors");
        assert_eq!(
            parser.failed(),
            case["failed"].as_bool().unwrap(),
            "case {id}"
        );
        let want = case["chunks"].as_array().unwrap();
        assert_eq!(chunks.len(), want.len(), "case {id}: chunks");
        for (c, w) in chunks.iter().zip(want) {
            assert_eq!(
                std::str::from_utf8(&c.payload).unwrap(),
                w["payload"],
                "case {id}"
            );
            assert_eq!(hex(&c.sha256), w["sha256"].as_str().unwrap(), "case {id}");
            assert_eq!(
                c.records().len() as u64,
                w["count"].as_u64().unwrap(),
                "case {id}"
            );
            let recs: Vec<Value> = c
                .records()
                .iter()
                .map(|r| serde_json::json!([c.ident(r), hex(&r.sha256)]))
                .collect();
            assert_eq!(Value::Array(recs), w["records"], "case {id}");
        }
        if let Some(first) = chunks.first() {
            let mut body = vec![0u8; first.body_len(action)];
            first
                .write_body(&sealer, action, &mut body, &mut Scratch::new())
                .unwrap();
            assert_eq!(
                std::str::from_utf8(&body).unwrap(),
                case["body"],
                "case {id}: body"
            );
        }
    }
}
