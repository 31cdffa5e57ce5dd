//! Runs one operation in a loop for `perf record` / callgrind:
//! `cargo run --release -p gspauth-core --example hotloop -- seal|open [records] [rounds]`.

use std::hint::black_box;
use std::time::Instant;

use gspauth_core::{
    decrypt_response_many, encrypt_request_many, encrypt_response, Key, Parallelism,
};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("seal", String::as_str);
    let n: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(20);
    let ek = Key::from_slice(&[0x20; 32]).unwrap();
    let rek = Key::from_slice(&[0x40; 32]).unwrap();
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut v = format!("{{\"rec\":{i},\"items\":[").into_bytes();
            while v.len() < 2000 {
                v.extend_from_slice(b"{\"txval\":12345.67,\"rt\":18,\"iamt\":2222.22},");
            }
            v.extend_from_slice(b"{}]}");
            v
        })
        .collect();
    let par = Parallelism {
        threads: 1,
        min_parallel_bytes: 0,
    };
    let t = Instant::now();
    if what == "seal" {
        for _ in 0..rounds {
            black_box(encrypt_request_many(&ek, &payloads, par).unwrap());
        }
    } else {
        let items: Vec<(String, String, Option<String>)> = payloads
            .iter()
            .map(|p| {
                let e = encrypt_response(&ek, &rek, p).unwrap();
                (e.data, e.rek, Some(e.hmac))
            })
            .collect();
        let t = Instant::now();
        for _ in 0..rounds {
            black_box(decrypt_response_many(&ek, &items, false, par).unwrap());
        }
        eprintln!(
            "{:.2} us/record",
            t.elapsed().as_secs_f64() / (n * rounds) as f64 * 1e6
        );
        return;
    }
    eprintln!(
        "{:.2} us/record",
        t.elapsed().as_secs_f64() / (n * rounds) as f64 * 1e6
    );
}
