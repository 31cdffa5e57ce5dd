//! Runs one batch operation in a loop, for `perf record` / callgrind and for
//! checking thread scaling:
//! `cargo run --release -p gspauth-core --example hotloop -- seal|open [threads] [records] [rounds]`.

use std::hint::black_box;
use std::time::Instant;

use gspauth_core::{encrypt_response, ChunkBuf, Key, Parallelism, RequestSealer, ResponseOpener};

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let what = args.get(1).map_or("seal", String::as_str);
    let threads: usize = args.get(2).and_then(|s| s.parse().ok()).unwrap_or(1);
    let n: usize = args.get(3).and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let rounds: usize = args.get(4).and_then(|s| s.parse().ok()).unwrap_or(20);
    let ek = Key::from_slice(&[0x20; 32]).unwrap();
    let rek = Key::from_slice(&[0x40; 32]).unwrap();
    let payloads: Vec<Vec<u8>> = (0..n)
        .map(|i| {
            let mut v = format!("{{\"rec\":{i},\"items\":[").into_bytes();
            while v.len() < 2100 {
                v.extend_from_slice(b"{\"txval\":12345.67,\"rt\":18,\"iamt\":2222.22},");
            }
            v.extend_from_slice(b"{}]}");
            v
        })
        .collect();
    let par = Parallelism {
        threads,
        min_parallel_bytes: 0,
    };
    let mut buf = ChunkBuf::new();
    let t = if what == "seal" {
        let sealer = RequestSealer::new(&ek);
        let t = Instant::now();
        for _ in 0..rounds {
            for chunk in payloads.chunks(gspauth_core::CHUNK_RECORDS) {
                buf.seal(&sealer, chunk, par).unwrap();
                black_box(&buf);
            }
        }
        t.elapsed()
    } else {
        let items: Vec<(String, String, Option<String>)> = payloads
            .iter()
            .map(|p| {
                let e = encrypt_response(&ek, &rek, p).unwrap();
                (e.data, e.rek, Some(e.hmac))
            })
            .collect();
        let opener = ResponseOpener::new(&ek);
        let t = Instant::now();
        for _ in 0..rounds {
            for chunk in items.chunks(gspauth_core::CHUNK_RECORDS) {
                buf.open(&opener, chunk, false, par).unwrap();
                black_box(&buf);
            }
        }
        t.elapsed()
    };
    eprintln!(
        "{what} threads={threads}: {:.2} us/record wall, {:.0} records/s",
        t.as_secs_f64() / (n * rounds) as f64 * 1e6,
        (n * rounds) as f64 / t.as_secs_f64()
    );
}
