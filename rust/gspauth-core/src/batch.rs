//! Batch forms: many records under one session key, one key schedule per batch,
//! optionally spread over a rayon pool. Errors report the lowest failing index.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};

use rayon::prelude::*;

use std::cell::RefCell;

use crate::envelope::{
    json_len_bound, sealed_len, RequestEnvelope, RequestSealer, ResponseInput, ResponseOpener,
    Scratch,
};
use crate::error::{Error, Result};
use crate::key::Key;

/// Scratch buffers larger than this are not kept between records of different calls.
const KEEP_SCRATCH_BYTES: usize = 1 << 20;

thread_local! {
    static SCRATCH: RefCell<(Scratch, Scratch)> = RefCell::new((Scratch::new(), Scratch::new()));
}

/// Run `f` with this thread's two reusable scratch sets (fresh ones if they are
/// in use further up the stack); oversized buffers are released afterwards.
fn with_scratch<T>(f: impl FnOnce(&mut Scratch, &mut Scratch) -> T) -> T {
    SCRATCH.with(|cell| match cell.try_borrow_mut() {
        Ok(mut guard) => {
            let (a, b) = &mut *guard;
            let out = f(a, b);
            for s in [a, b] {
                if s.capacity() > KEEP_SCRATCH_BYTES {
                    *s = Scratch::new();
                }
            }
            out
        }
        Err(_) => f(&mut Scratch::new(), &mut Scratch::new()),
    })
}

/// With `threads == 0`, a batch whose input holds fewer bytes than this runs on
/// the calling thread; larger ones use a pool with one thread per CPU.
///
/// How it was chosen (2-core development machine, `cargo run --release -p
/// gspauth-core --example crossover`): sealing a ~2 KiB record costs ~1.7 µs of
/// CPU; the pool's fork/join costs 6.5 µs at best (8 near-empty records: 7.4 µs
/// on 2 threads vs 0.9 µs on 1), and waking an idle core adds ~10 µs more. Two
/// threads pay off once half the work saves more than that overhead, i.e. above
/// roughly 8–24 such records (16–48 KiB); 32 KiB sits in the middle. The shared
/// machine was too loaded while this was tuned (load 3–4 on 2 cores) to see the
/// crossover directly in wall time: there the second thread rarely got a core.
pub const AUTO_PARALLEL_MIN_BYTES: usize = 32 * 1024;

/// One record of a response batch: the `data`, `rek` and optional `hmac` wire
/// fields as UTF-8 text.
pub trait ResponseParts {
    /// The `data` wire field.
    fn data(&self) -> &[u8];
    /// The `rek` wire field.
    fn rek(&self) -> &[u8];
    /// The `hmac` wire field, if the reply had one.
    fn hmac(&self) -> Option<&[u8]>;
}

impl<A: AsRef<[u8]>, B: AsRef<[u8]>, C: AsRef<[u8]>> ResponseParts for (A, B, Option<C>) {
    fn data(&self) -> &[u8] {
        self.0.as_ref()
    }
    fn rek(&self) -> &[u8] {
        self.1.as_ref()
    }
    fn hmac(&self) -> Option<&[u8]> {
        self.2.as_ref().map(AsRef::as_ref)
    }
}

/// How a batch runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Parallelism {
    /// 0 = automatic (parallel above `min_parallel_bytes`), 1 = calling thread
    /// only, N = at most N threads (capped at the machine's parallelism).
    pub threads: usize,
    /// Input size below which `threads == 0` stays on the calling thread.
    pub min_parallel_bytes: usize,
}

impl Parallelism {
    /// `threads` as documented, with the measured [`AUTO_PARALLEL_MIN_BYTES`].
    pub fn new(threads: usize) -> Self {
        Parallelism {
            threads,
            min_parallel_bytes: AUTO_PARALLEL_MIN_BYTES,
        }
    }
}

enum Plan {
    Here,
    Pool(Arc<rayon::ThreadPool>),
}

fn machine_threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Pools for explicit thread counts, built once each and kept (at most one per
/// possible count, so the cache is bounded by the machine's parallelism).
fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let pools = POOLS.get_or_init(Default::default);
    let mut map = pools
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner());
    if let Some(p) = map.get(&threads) {
        return Some(Arc::clone(p));
    }
    let built = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(move |i| format!("gspauth-{threads}-{i}"))
        .build()
        .ok()?;
    let p = Arc::new(built);
    map.insert(threads, Arc::clone(&p));
    Some(p)
}

fn plan(par: Parallelism, records: usize, bytes: usize) -> Plan {
    if records < 2 || par.threads == 1 {
        return Plan::Here;
    }
    let threads = if par.threads == 0 {
        if bytes < par.min_parallel_bytes {
            return Plan::Here;
        }
        machine_threads()
    } else {
        par.threads.min(machine_threads().max(2))
    };
    if threads < 2 {
        return Plan::Here;
    }
    // could not start threads: still correct, just serial
    pool(threads).map_or(Plan::Here, Plan::Pool)
}

/// The thread pool a batch of `records` records holding `bytes` input bytes
/// uses under `par`, or `None` when it runs on the calling thread. Pools are
/// built once per thread count and kept.
pub fn pool_for(par: Parallelism, records: usize, bytes: usize) -> Option<Arc<rayon::ThreadPool>> {
    match plan(par, records, bytes) {
        Plan::Here => None,
        Plan::Pool(p) => Some(p),
    }
}

/// Run `f` over `items` in order (serially or on a pool) and return all outputs,
/// or the error of the lowest failing index with that index set.
fn run<T: Sync, O: Send>(
    items: &[T],
    par: Parallelism,
    size: impl Fn(&T) -> usize,
    f: impl Fn(&T, &mut Scratch) -> Result<O> + Sync,
) -> Result<Vec<O>> {
    let bytes = if par.threads == 0 {
        items
            .iter()
            .fold(0usize, |acc, it| acc.saturating_add(size(it)))
    } else {
        0
    };
    let parallel = |items: &[T]| -> Result<Vec<O>> {
        // Records past a known failure are skipped; the lowest failing index is
        // always computed, since only a lower failure can make a record skip.
        let first_err = AtomicUsize::new(usize::MAX);
        let results: Vec<Option<Result<O>>> = items
            .par_iter()
            .enumerate()
            .with_min_len(4)
            .map_init(Scratch::new, |scratch, (i, item)| {
                if i > first_err.load(Ordering::Relaxed) {
                    return None;
                }
                let r = f(item, scratch).map_err(|e| {
                    first_err.fetch_min(i, Ordering::Relaxed);
                    e.at(i)
                });
                Some(r)
            })
            .collect();
        let mut out = Vec::with_capacity(results.len());
        for r in results {
            match r {
                Some(Ok(o)) => out.push(o),
                Some(Err(e)) => return Err(e),
                None => {}
            }
        }
        Ok(out)
    };
    match plan(par, items.len(), bytes) {
        Plan::Here => {
            let mut scratch = Scratch::new();
            let mut out = Vec::with_capacity(items.len());
            for (i, item) in items.iter().enumerate() {
                out.push(f(item, &mut scratch).map_err(|e| e.at(i))?);
            }
            Ok(out)
        }
        Plan::Pool(p) => p.install(|| parallel(items)),
    }
}

/// Run `pair` over consecutive pairs of `(item, slot)` (and `one` over a last
/// odd record), serially or on a pool; on failure return the error of the
/// lowest failing index, with that index set. Records go in pairs so that
/// their HMACs share the two SHA-NI lanes.
fn run_pairs<T: Sync, S: Send>(
    items: &[T],
    slots: &mut [S],
    par: Parallelism,
    bytes: usize,
    pair: impl Fn((&T, &mut S), (&T, &mut S), &mut Scratch, &mut Scratch) -> (Result<()>, Result<()>)
        + Sync,
    one: impl Fn(&T, &mut S, &mut Scratch) -> Result<()> + Sync,
) -> Result<()> {
    let work = |c: usize, its: &[T], ss: &mut [S]| -> Option<(usize, Error)> {
        with_scratch(|sa, sb| match (its, ss) {
            ([x, y], [sx, sy]) => {
                let (rx, ry) = pair((x, sx), (y, sy), sa, sb);
                match (rx, ry) {
                    (Err(e), _) => Some((2 * c, e)),
                    (Ok(()), Err(e)) => Some((2 * c + 1, e)),
                    _ => None,
                }
            }
            ([x], [sx]) => one(x, sx, sa).err().map(|e| (2 * c, e)),
            _ => None, // items and slots are chunked alike
        })
    };
    let parallel = |items: &[T], slots: &mut [S]| -> Result<()> {
        let first_err = AtomicUsize::new(usize::MAX);
        let found: Mutex<Option<(usize, Error)>> = Mutex::new(None);
        items
            .par_chunks(2)
            .zip(slots.par_chunks_mut(2))
            .enumerate()
            .with_min_len(2)
            .for_each(|(c, (its, ss))| {
                if 2 * c > first_err.load(Ordering::Relaxed) {
                    return; // a lower record already failed
                }
                if let Some((i, e)) = work(c, its, ss) {
                    first_err.fetch_min(i, Ordering::Relaxed);
                    let mut g = found.lock().unwrap_or_else(|p| p.into_inner());
                    if g.as_ref().is_none_or(|(j, _)| i < *j) {
                        *g = Some((i, e));
                    }
                }
            });
        match found.into_inner().unwrap_or_else(|p| p.into_inner()) {
            Some((i, e)) => Err(e.at(i)),
            None => Ok(()),
        }
    };
    match plan(par, items.len(), bytes) {
        Plan::Here => {
            for (c, (its, ss)) in items.chunks(2).zip(slots.chunks_mut(2)).enumerate() {
                if let Some((i, e)) = work(c, its, ss) {
                    return Err(e.at(i));
                }
            }
            Ok(())
        }
        Plan::Pool(p) => p.install(|| parallel(items, slots)),
    }
}

/// Cut `arena[..sum(lens)]` into consecutive slots of the given lengths.
fn split_slots(mut arena: &mut [u8], lens: impl Iterator<Item = usize>) -> Vec<&mut [u8]> {
    let mut slots = Vec::with_capacity(lens.size_hint().0);
    for len in lens {
        let n = len.min(arena.len());
        let (slot, rest) = std::mem::take(&mut arena).split_at_mut(n);
        slots.push(slot);
        arena = rest;
    }
    slots
}

/// Batch sealing without per-record allocation: record `i`'s `data` and `hmac`
/// texts are written one after the other into `arena`, in a slot of
/// [`sealed_len`]`(payloads[i].len())` bytes; slots follow each other in order.
/// `arena` is grown (never shrunk) as needed, so reusing it across calls avoids
/// re-allocation. Payloads are validated first: on error nothing is sealed.
pub fn encrypt_request_many_into<P: AsRef<[u8]> + Sync>(
    sealer: &RequestSealer,
    payloads: &[P],
    par: Parallelism,
    arena: &mut Vec<u8>,
) -> Result<()> {
    let mut total = 0usize;
    let mut bytes = 0usize;
    for (i, p) in payloads.iter().enumerate() {
        let p = p.as_ref();
        RequestSealer::check(p).map_err(|e| e.at(i))?;
        total = total.saturating_add(sealed_len(p.len()));
        bytes = bytes.saturating_add(p.len());
    }
    if arena.len() < total {
        arena.resize(total, 0);
    }
    let mut slots = split_slots(
        &mut arena[..total],
        payloads.iter().map(|p| sealed_len(p.as_ref().len())),
    );
    run_pairs(
        payloads,
        &mut slots,
        par,
        bytes,
        |(pa, oa), (pb, ob), sa, sb| {
            let r = sealer.seal_pair_into((pa.as_ref(), oa), (pb.as_ref(), ob), sa, sb);
            (r, Ok(()))
        },
        |p, slot, s| sealer.seal_into(p.as_ref(), slot, s),
    )
}

/// Batch opening without per-record allocation: record `i`'s JSON is written at
/// the start of its slot in `arena` (slots of [`crate::json_len_bound`]`(data.len())`
/// bytes, in order) and its length stored in `lens[i]`. `arena` is grown as needed.
/// On error, the lowest failing index is reported.
pub fn decrypt_response_many_into<R: ResponseParts + Sync>(
    opener: &ResponseOpener,
    items: &[R],
    tolerant: bool,
    par: Parallelism,
    arena: &mut Vec<u8>,
    lens: &mut Vec<usize>,
) -> Result<()> {
    let mut total = 0usize;
    let mut bytes = 0usize;
    for r in items {
        total = total.saturating_add(json_len_bound(r.data().len()));
        bytes = bytes.saturating_add(r.data().len());
    }
    if arena.len() < total {
        arena.resize(total, 0);
    }
    lens.clear();
    lens.resize(items.len(), 0);
    let slots = split_slots(
        &mut arena[..total],
        items.iter().map(|r| json_len_bound(r.data().len())),
    );
    let mut outs: Vec<(&mut [u8], &mut usize)> = slots.into_iter().zip(lens.iter_mut()).collect();
    run_pairs(
        items,
        &mut outs,
        par,
        bytes,
        |(ra, (oa, la)), (rb, (ob, lb)), sa, sb| {
            let (x, y) = opener.open_pair_into(
                input(ra),
                input(rb),
                tolerant,
                (sa, sb),
                (&mut **oa, &mut **ob),
            );
            (x.map(|n| **la = n), y.map(|n| **lb = n))
        },
        |r, (slot, len), s| {
            **len = opener.open_into(r.data(), r.rek(), r.hmac(), tolerant, s, slot)?;
            Ok(())
        },
    )
}

fn input<R: ResponseParts>(r: &R) -> ResponseInput<'_> {
    ResponseInput {
        data: r.data(),
        rek: r.rek(),
        hmac: r.hmac(),
    }
}

/// Batch [`crate::encrypt_request`]: many JSON payloads under one key.
pub fn encrypt_request_many<P: AsRef<[u8]> + Sync>(
    key: &Key,
    payloads: &[P],
    par: Parallelism,
) -> Result<Vec<RequestEnvelope>> {
    let sealer = RequestSealer::new(key);
    run(
        payloads,
        par,
        |p| p.as_ref().len(),
        |p, s| sealer.seal(p.as_ref(), s),
    )
}

/// Batch [`crate::decrypt_response`]: many `(data, rek, hmac)` records under one key.
pub fn decrypt_response_many<R: ResponseParts + Sync>(
    key: &Key,
    items: &[R],
    tolerant: bool,
    par: Parallelism,
) -> Result<Vec<Vec<u8>>> {
    let opener = ResponseOpener::new(key);
    run(
        items,
        par,
        |r| r.data().len(),
        |r, s| opener.open(r.data(), r.rek(), r.hmac(), tolerant, s),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{encrypt_request, request_data_len, HMAC_B64_LEN};
    use crate::error::ErrorKind;
    use crate::{decrypt_response, encrypt_response};

    fn key(b: u8) -> Key {
        Key::from([b; 32])
    }

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 37 % 500)).into_bytes())
            .collect()
    }

    fn pars() -> Vec<Parallelism> {
        [1, 0, 2, 64]
            .iter()
            .map(|&threads| Parallelism {
                threads,
                min_parallel_bytes: 0,
            })
            .collect()
    }

    #[test]
    fn sealing_into_the_arena_equals_single_calls() {
        let k = key(1);
        let sealer = RequestSealer::new(&k);
        for n in [0, 1, 2, 3, 7, 40] {
            let ps = payloads(n);
            for par in pars() {
                let mut arena = vec![0xAA; 5]; // reused, bigger or smaller than needed
                encrypt_request_many_into(&sealer, &ps, par, &mut arena).unwrap();
                let mut pos = 0;
                for p in &ps {
                    let want = encrypt_request(&k, p).unwrap();
                    let d = request_data_len(p.len());
                    assert_eq!(&arena[pos..pos + d], want.data.as_bytes());
                    assert_eq!(
                        &arena[pos + d..pos + d + HMAC_B64_LEN],
                        want.hmac.as_bytes()
                    );
                    pos += d + HMAC_B64_LEN;
                }
                let v = encrypt_request_many(&k, &ps, par).unwrap();
                assert_eq!(v.len(), n);
            }
        }
    }

    #[test]
    fn invalid_payloads_report_the_lowest_index() {
        let sealer = RequestSealer::new(&key(1));
        let mut ps = payloads(9);
        ps[6] = Vec::new();
        ps[4] = Vec::new();
        for par in pars() {
            let err = encrypt_request_many_into(&sealer, &ps, par, &mut Vec::new()).unwrap_err();
            assert_eq!(
                (err.kind(), err.index()),
                (ErrorKind::InvalidInput, Some(4))
            );
            assert_eq!(err.to_string(), "record 4: payload is empty");
            let err = encrypt_request_many(&key(1), &ps, par).unwrap_err();
            assert_eq!(err.index(), Some(4));
        }
    }

    fn responses(n: usize) -> Vec<(String, String, Option<String>)> {
        payloads(n)
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let e = encrypt_response(&key(1), &key(i as u8), p).unwrap();
                // every third record without hmac: pairs mix one- and two-lane HMACs
                (e.data, e.rek, if i % 3 == 2 { None } else { Some(e.hmac) })
            })
            .collect()
    }

    fn open_all(
        items: &[(String, String, Option<String>)],
        par: Parallelism,
    ) -> Result<Vec<Vec<u8>>> {
        let opener = ResponseOpener::new(&key(1));
        let (mut arena, mut lens) = (Vec::new(), Vec::new());
        decrypt_response_many_into(&opener, items, false, par, &mut arena, &mut lens)?;
        let mut pos = 0;
        let mut out = Vec::new();
        for (item, len) in items.iter().zip(&lens) {
            out.push(arena[pos..pos + len].to_vec());
            pos += json_len_bound(item.0.len());
        }
        Ok(out)
    }

    #[test]
    fn opening_into_the_arena_round_trips() {
        for n in [0, 1, 2, 3, 5, 40] {
            let items = responses(n);
            for par in pars() {
                assert_eq!(open_all(&items, par).unwrap(), payloads(n), "n={n} {par:?}");
                assert_eq!(
                    decrypt_response_many(&key(1), &items, false, par).unwrap(),
                    payloads(n)
                );
            }
        }
    }

    #[test]
    fn failures_in_either_lane_report_the_lowest_index() {
        // index 5 is lane b of a pair, 4 lane a; 9 a lone last record
        for bad in [
            vec![5],
            vec![4],
            vec![4, 5],
            vec![5, 30],
            vec![9],
            vec![33, 12],
        ] {
            let mut items = responses(if bad.contains(&9) { 10 } else { 40 });
            for &i in &bad {
                let mac = items[i].2.clone().unwrap_or_else(|| "A".repeat(44));
                let flipped = if mac.starts_with('A') {
                    mac.replacen('A', "B", 1)
                } else {
                    format!("A{}", &mac[1..])
                };
                items[i].2 = Some(flipped);
            }
            let low = *bad.iter().min().unwrap();
            for par in pars() {
                let err = open_all(&items, par).unwrap_err();
                assert_eq!(
                    (err.kind(), err.index()),
                    (ErrorKind::Integrity, Some(low)),
                    "{bad:?} {par:?}"
                );
                assert!(err
                    .to_string()
                    .starts_with(&format!("record {low}: hmac does not match")));
                let err = decrypt_response_many(&key(1), &items, false, par).unwrap_err();
                assert_eq!(err.index(), Some(low));
                let (d, r, m) = &items[low];
                let single = decrypt_response(
                    &key(1),
                    d.as_bytes(),
                    r.as_bytes(),
                    m.as_deref().map(str::as_bytes),
                    false,
                )
                .unwrap_err();
                assert_eq!(single.kind(), ErrorKind::Integrity);
                assert_eq!(single.index(), None);
            }
        }
    }

    #[test]
    fn thread_counts_are_capped_and_pools_reused() {
        assert!(pool_for(Parallelism::new(1), 1000, 1 << 30).is_none());
        assert!(pool_for(Parallelism::new(0), 1, 1 << 30).is_none());
        assert!(pool_for(Parallelism::new(0), 1000, 10).is_none());
        if machine_threads() >= 2 {
            let a = pool_for(Parallelism::new(64), 1000, 0).unwrap();
            let b = pool_for(Parallelism::new(64), 1000, 0).unwrap();
            assert!(Arc::ptr_eq(&a, &b));
            assert!(a.current_num_threads() <= machine_threads().max(2));
        }
    }
}
