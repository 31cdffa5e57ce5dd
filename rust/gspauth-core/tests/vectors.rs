//! Known-answer tests over the same vector files the Python tests read
//! (`tests/vectors/data/*.json` at the repository root).

use std::path::PathBuf;

use gspauth_core::{
    aes_decrypt, aes_encrypt, decrypt_field, decrypt_key, decrypt_request, decrypt_response,
    encrypt_field, encrypt_request, encrypt_request_evc, encrypt_response, hmac_sha256, Encryptor,
    ErrorKind, Key,
};
use serde_json::Value;

fn load(name: &str) -> Value {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../tests/vectors/data")
        .join(name);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

fn hex(s: &Value) -> Vec<u8> {
    let s = s.as_str().expect("hex string");
    assert!(s.len().is_multiple_of(2));
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn text(v: &Value) -> &[u8] {
    v.as_str().expect("string").as_bytes()
}

fn key(v: &Value) -> Key {
    Key::from_slice(&hex(v)).unwrap()
}

fn tests(group: &Value) -> &Vec<Value> {
    group["tests"].as_array().unwrap()
}

#[test]
fn nist_sp800_38a_ecb_aes256() {
    let doc = load("nist_sp800_38a_ecb_aes256.json");
    let mut count = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        let k = key(&group["key"]);
        for t in tests(group) {
            let (pt, ct) = (hex(&t["plaintext"]), hex(&t["ciphertext"]));
            // raw block operation
            let mut block = pt.clone();
            Encryptor::new(&k).encrypt_blocks_in_place(&mut block);
            assert_eq!(block, ct, "tcId {}", t["tcId"]);
            // through the padded API: first block is the vector, then the padding block
            let padded = aes_encrypt(&k, &pt).unwrap();
            assert_eq!(&padded[..16], &ct[..]);
            let mut wire = ct.clone();
            wire.extend_from_slice(&aes_encrypt(&k, b"").unwrap());
            assert_eq!(aes_decrypt(&k, &wire).unwrap(), pt, "tcId {}", t["tcId"]);
            count += 1;
        }
    }
    assert_eq!(count, 8);
}

#[test]
fn rfc4231_hmac_sha256() {
    let doc = load("rfc4231_hmac_sha256.json");
    let all = tests(&doc);
    assert_eq!(all.len(), 7);
    for t in all {
        let mac = hmac_sha256(&hex(&t["key"]), &hex(&t["data"]));
        let want = hex(&t["mac"]);
        assert_eq!(&mac[..want.len()], &want[..], "tcId {}", t["tcId"]);
    }
}

fn kind(name: &str) -> ErrorKind {
    match name {
        "InvalidKey" => ErrorKind::InvalidKey,
        "InvalidInput" => ErrorKind::InvalidInput,
        "InvalidBase64" => ErrorKind::InvalidBase64,
        "DecryptionError" => ErrorKind::Decryption,
        "IntegrityError" => ErrorKind::Integrity,
        other => panic!("unknown error class {other}"),
    }
}

#[test]
fn gspauth_kat() {
    let doc = load("gspauth_kat.json");
    let mut count = 0;
    for group in doc["testGroups"].as_array().unwrap() {
        for t in tests(group) {
            let id = &t["tcId"];
            match group["type"].as_str().unwrap() {
                "KeyEncoding" => {
                    assert_eq!(
                        gspauth_core::b64::encode(&hex(&t["key"])).as_bytes(),
                        text(&t["b64"]),
                        "{id}"
                    );
                }
                "Field" => {
                    let k = key(&t["key"]);
                    let pt = hex(&t["plaintext"]);
                    let field = t["field"].as_str().unwrap();
                    assert_eq!(
                        encrypt_field(&k, &pt).unwrap().as_bytes(),
                        text(&t["wire"]),
                        "{id}"
                    );
                    assert_eq!(
                        decrypt_field(&k, text(&t["wire"]), field, false).unwrap(),
                        pt,
                        "{id}"
                    );
                    if t["isKey"].as_bool().unwrap() {
                        let got = decrypt_key(&k, text(&t["wire"]), field, false).unwrap();
                        assert_eq!(got.as_bytes().as_slice(), &pt[..], "{id}");
                    }
                }
                "Request" => {
                    let k = key(&t["key"]);
                    let env = encrypt_request(&k, text(&t["json"])).unwrap();
                    assert_eq!(env.data.as_bytes(), text(&t["data"]), "{id}");
                    assert_eq!(env.hmac.as_bytes(), text(&t["hmac"]), "{id}");
                    let back = decrypt_request(&k, text(&t["data"]), Some(text(&t["hmac"])), false)
                        .unwrap();
                    assert_eq!(back, text(&t["json"]), "{id}");
                }
                "Evc" => {
                    let k = key(&t["key"]);
                    let env = encrypt_request_evc(&k, text(&t["sid"]), text(&t["json"])).unwrap();
                    assert_eq!(env.data.as_bytes(), text(&t["data"]), "{id}");
                    assert_eq!(env.hmac.as_bytes(), text(&t["sign"]), "{id}");
                }
                "Response" => {
                    let k = key(&t["key"]);
                    let rek = key(&t["rekKey"]);
                    let env = encrypt_response(&k, &rek, text(&t["json"])).unwrap();
                    assert_eq!(env.data.as_bytes(), text(&t["data"]), "{id}");
                    assert_eq!(env.rek.as_bytes(), text(&t["rek"]), "{id}");
                    assert_eq!(env.hmac.as_bytes(), text(&t["hmac"]), "{id}");
                    let back = decrypt_response(
                        &k,
                        text(&t["data"]),
                        text(&t["rek"]),
                        Some(text(&t["hmac"])),
                        false,
                    )
                    .unwrap();
                    assert_eq!(back, text(&t["json"]), "{id}");
                }
                "Decrypt" => {
                    let a = &t["args"];
                    let k = key(&a["key"]);
                    let tolerant = a["tolerant"].as_bool().unwrap();
                    let mac = a["hmac"].as_str().map(str::as_bytes);
                    let got = match t["function"].as_str().unwrap() {
                        "decrypt_response" => {
                            decrypt_response(&k, text(&a["data"]), text(&a["rek"]), mac, tolerant)
                        }
                        "decrypt_request" => decrypt_request(&k, text(&a["data"]), mac, tolerant),
                        "decrypt_field" => decrypt_field(
                            &k,
                            text(&a["text"]),
                            a["field"].as_str().unwrap(),
                            tolerant,
                        ),
                        "decrypt_key" => decrypt_key(
                            &k,
                            text(&a["text"]),
                            a["field"].as_str().unwrap(),
                            tolerant,
                        )
                        .map(|k| k.as_bytes().to_vec()),
                        other => panic!("unknown function {other}"),
                    };
                    match t["result"].as_str().unwrap() {
                        "valid" => assert_eq!(got.unwrap(), hex(&t["plaintext"]), "{id}"),
                        _ => {
                            let err = got.expect_err("must fail");
                            assert_eq!(err.kind(), kind(t["error"].as_str().unwrap()), "{id}");
                            assert_eq!(err.field(), t["field"].as_str().unwrap(), "{id}");
                            assert_eq!(err.to_string(), t["message"].as_str().unwrap(), "{id}");
                        }
                    }
                }
                other => panic!("unknown group type {other}"),
            }
            count += 1;
        }
    }
    assert_eq!(count, doc["numberOfTests"].as_u64().unwrap() as usize);
}
