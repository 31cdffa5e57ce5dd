//! Micro-measurements used to tune the core (not a benchmark suite):
//! `cargo run --release -p gspauth-core --example crossover`.
//! Prints per-record costs of sealing/opening ~2 KiB records on 1 and 2 threads,
//! and the batch size where 2 threads start to beat 1 (AUTO_PARALLEL_MIN_BYTES).

use std::hint::black_box;
use std::time::Instant;

use gspauth_core::{
    decrypt_response_many, encrypt_request_many, encrypt_response, Key, Parallelism,
};

fn payload(i: usize, size: usize) -> Vec<u8> {
    let mut s = String::from("{\"inv\":[");
    let mut n = i as u64 * 2_654_435_761 + 1;
    while s.len() < size - 80 {
        n = n
            .wrapping_mul(6_364_136_223_846_793_005)
            .wrapping_add(1_442_695_040_888_963_407);
        s.push_str(&format!(
            "{{\"inum\":\"INV{}\",\"txval\":{}.{:02},\"rt\":18}},",
            n % 1_000_000,
            n % 100_000,
            n % 100
        ));
    }
    s.push_str("{}]}");
    s.into_bytes()
}

fn best<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    let ek = Key::from_slice(&[0x20; 32]).unwrap();
    let rek = Key::from_slice(&[0x40; 32]).unwrap();
    let n = 20_000;
    let payloads: Vec<Vec<u8>> = (0..n).map(|i| payload(i, 2048)).collect();
    let items: Vec<(String, String, Option<String>)> = payloads
        .iter()
        .map(|p| {
            let e = encrypt_response(&ek, &rek, p).unwrap();
            (e.data, e.rek, Some(e.hmac))
        })
        .collect();
    println!("payload bytes ~{}", payloads[0].len());
    for threads in [1, 2] {
        let par = Parallelism {
            threads,
            min_parallel_bytes: 0,
        };
        let t = best(5, || {
            black_box(encrypt_request_many(&ek, &payloads, par).unwrap());
        });
        println!(
            "seal  threads={threads}: {:.2} us/record, {:.0} records/s",
            t / n as f64 * 1e6,
            n as f64 / t
        );
        let t = best(5, || {
            black_box(decrypt_response_many(&ek, &items, false, par).unwrap());
        });
        println!(
            "open  threads={threads}: {:.2} us/record, {:.0} records/s",
            t / n as f64 * 1e6,
            n as f64 / t
        );
    }
    // The pool's fixed cost: fork/join of a batch whose records cost almost nothing.
    let tiny: Vec<Vec<u8>> = vec![b"{}".to_vec(); 8];
    let sealer = gspauth_core::RequestSealer::new(&ek);
    let mut buf = gspauth_core::ChunkBuf::new();
    let mut run = |batch: &[Vec<u8>], threads: usize, reps: usize| {
        best(reps, || {
            let par = Parallelism {
                threads,
                min_parallel_bytes: 0,
            };
            buf.seal(&sealer, batch, par).unwrap();
        })
    };
    let (fork, here) = (run(&tiny, 2, 2000), run(&tiny, 1, 2000));
    println!(
        "pool fork/join overhead: {:.1} us (8 tiny records: 2 threads {:.1} us, 1 thread {:.1} us)",
        (fork - here) * 1e6,
        fork * 1e6,
        here * 1e6
    );
    println!("crossover (seal into a chunk buffer, us per batch, best of 200):");
    for records in [2usize, 4, 8, 12, 16, 24, 32, 64] {
        let batch = &payloads[..records];
        let (one, two) = (run(batch, 1, 200), run(batch, 2, 200));
        println!(
            "  {records:3} records ({:6} B): 1 thread {:7.1}  2 threads {:7.1}",
            records * 2048,
            one * 1e6,
            two * 1e6
        );
    }
}
