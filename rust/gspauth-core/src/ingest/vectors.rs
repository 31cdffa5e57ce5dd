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

#[test]
fn every_case_gives_the_reference_outputs() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/ingest/vectors/ingest_vectors.json");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    let file: Value = serde_json::from_str(&text).unwrap();
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
        let input = &case["input"];
        let data = match input["text"].as_str() {
            Some(t) => t.as_bytes().to_vec(),
            None => base64::engine::general_purpose::STANDARD
                .decode(input["base64"].as_str().unwrap())
                .unwrap(),
        };
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
