//! Batch parallelism, in one place: how a batch is cut into chunks, which threads
//! compute them, and the buffers they write into. Every tuning constant of batch
//! processing lives at the top of this file.
//!
//! [`run_chunks`] is the one mechanism. A batch is cut into chunks of
//! [`CHUNK_RECORDS`] records; pool threads compute chunks ahead while the calling
//! thread hands each finished chunk, in order, to a `deliver` callback (where a
//! binding builds its own objects, e.g. Python objects under the GIL). Within a
//! chunk, records go in pairs so that their HMACs share the two SHA-NI lanes
//! (`run_pairs`); a batch of a single chunk is split across the pool that way.

use std::any::Any;
use std::cell::RefCell;
use std::collections::HashMap;
use std::panic::{catch_unwind, resume_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, PoisonError};

use rayon::prelude::*;

use crate::envelope::Scratch;
use crate::error::{Error, Result};

// --- tuning -------------------------------------------------------------------------

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

/// Records per chunk of a batch. A chunk is computed by one thread into one
/// reused buffer (no allocation per record) and delivered as a whole: large
/// enough that the hand-over between threads, and a binding's lock
/// release/re-acquire around it, cost little (~2 % at 2 KiB records); small
/// enough that medium batches still pipeline.
pub const CHUNK_RECORDS: usize = 512;

/// Chunks a pooled batch may compute ahead of the one being delivered; also the
/// number of chunk buffers such a batch holds.
pub const AHEAD: usize = 4;

/// Chunk buffers kept between batches (at most this many, each at most
/// [`KEEP_BUF_BYTES`]): a fresh buffer costs zero-filling and page faults on
/// every batch (~2 MB per 512-record chunk of 2 KiB records). So at most
/// 16 MiB stay allocated after a batch; larger chunk buffers are freed.
pub const KEEP_BUFS: usize = AHEAD;

/// Largest chunk buffer kept between batches (see [`KEEP_BUFS`]).
pub const KEEP_BUF_BYTES: usize = 4 << 20;

/// Per-thread scratch buffers larger than this are freed after a chunk instead
/// of being kept for the next one (one huge record must not pin its memory).
pub const KEEP_SCRATCH_BYTES: usize = 1 << 20;

/// When one chunk is split across a pool, each task takes at least this many
/// record pairs, so that stealing work costs less than the work stolen.
pub const MIN_PAIRS_PER_TASK: usize = 2;

// --- how a batch runs --------------------------------------------------------------

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

    /// The calling thread only.
    pub const SERIAL: Parallelism = Parallelism {
        threads: 1,
        min_parallel_bytes: AUTO_PARALLEL_MIN_BYTES,
    };
}

fn machine_threads() -> usize {
    static N: OnceLock<usize> = OnceLock::new();
    *N.get_or_init(|| std::thread::available_parallelism().map_or(1, |n| n.get()))
}

/// Pools for explicit thread counts, built once each and kept (at most one per
/// possible count, so the cache is bounded by the machine's parallelism).
fn pool(threads: usize) -> Option<Arc<rayon::ThreadPool>> {
    static POOLS: OnceLock<Mutex<HashMap<usize, Arc<rayon::ThreadPool>>>> = OnceLock::new();
    let mut map = acquire(POOLS.get_or_init(Default::default));
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

/// The pool a batch of `records` records uses under `par`, or `None` for the
/// calling thread. `bytes` (the input size) is asked for only when `par` is automatic.
fn plan(
    par: Parallelism,
    records: usize,
    bytes: impl FnOnce() -> usize,
) -> Option<Arc<rayon::ThreadPool>> {
    if records < 2 || par.threads == 1 {
        return None;
    }
    let threads = if par.threads == 0 {
        if bytes() < par.min_parallel_bytes {
            return None;
        }
        machine_threads()
    } else {
        par.threads.min(machine_threads().max(2))
    };
    if threads < 2 {
        return None;
    }
    // could not start threads: still correct, just serial
    pool(threads)
}

/// A poisoned lock only means another thread panicked; that panic is reported
/// on its own, and the data behind these locks stays consistent.
fn acquire<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

// --- chunk buffers -------------------------------------------------------------------

/// Output buffers of one chunk, reused from chunk to chunk and batch to batch.
/// Filled by [`ChunkBuf::seal`] / [`ChunkBuf::open`] and read back with
/// [`ChunkBuf::sealed`] / [`ChunkBuf::opened`] (in `batch`).
#[derive(Default)]
pub struct ChunkBuf {
    pub(crate) arena: Vec<u8>,
    pub(crate) lens: Vec<usize>,
}

impl ChunkBuf {
    /// Empty buffers; they grow to the largest chunk and are then reused.
    pub fn new() -> Self {
        Self::default()
    }
}

impl std::fmt::Debug for ChunkBuf {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ChunkBuf([secure])")
    }
}

static SPARE: Mutex<Vec<ChunkBuf>> = Mutex::new(Vec::new());

/// Chunk buffers lent to one batch (recycled ones first), returned to the
/// spare list when the batch ends, however it ends.
struct Lease(Vec<Mutex<ChunkBuf>>);

impl Lease {
    fn take(n: usize) -> Self {
        let mut kept = acquire(&SPARE);
        Lease(
            (0..n)
                .map(|_| Mutex::new(kept.pop().unwrap_or_default()))
                .collect(),
        )
    }

    fn buf(&self, k: usize) -> MutexGuard<'_, ChunkBuf> {
        acquire(&self.0[k % self.0.len()])
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        let mut kept = acquire(&SPARE);
        for b in self.0.drain(..) {
            let b = b.into_inner().unwrap_or_else(PoisonError::into_inner);
            if kept.len() < KEEP_BUFS && b.arena.capacity() <= KEEP_BUF_BYTES {
                kept.push(b);
            }
        }
    }
}

// --- the pipeline --------------------------------------------------------------------

/// A computed chunk: `Err` for a panic, `Ok(Err)` for a failed record.
type Done = std::thread::Result<Result<()>>;

/// Shared state of a pooled batch.
struct Flow {
    /// Next chunk to compute.
    next: usize,
    /// Chunks `..delivered` are delivered (their buffers are free).
    delivered: usize,
    /// Computed chunks not yet taken by the delivering thread.
    done: Vec<Option<Done>>,
    /// Set when the calling thread stopped (finished, failed or panicked).
    stop: bool,
}

impl Flow {
    /// Claim the next chunk to compute, if any and its buffer is free.
    fn claim(&mut self, chunks: usize) -> Option<usize> {
        let j = self.next;
        (!self.stop && j < chunks && j < self.delivered + AHEAD).then(|| {
            self.next += 1;
            j
        })
    }
}

/// Sets `stop` when the delivering thread leaves, even by a panic, so that
/// waiting pool threads return instead of blocking the scope forever.
struct StopOnExit<'a>(&'a Mutex<Flow>, &'a Condvar);

impl Drop for StopOnExit<'_> {
    fn drop(&mut self) {
        acquire(self.0).stop = true;
        self.1.notify_all();
    }
}

/// A chunk-relative record error made relative to the whole batch.
fn shift(err: Error, offset: usize) -> Error {
    match err.index() {
        Some(i) => err.at(offset + i),
        None => err,
    }
}

/// A lock the caller of [`run_chunks`] holds, such as a binding's interpreter
/// lock (Python's GIL): the chunks are computed with it released, and
/// `deliver` is always called with it held.
pub trait CallerLock {
    /// Run `f` with the lock released (on the calling thread, which holds it).
    fn released<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R;
    /// Run `f` with the lock taken back (on the calling thread, inside [`released`](Self::released)).
    fn retaken<R>(f: impl FnOnce() -> R) -> R;
}

/// No lock: for callers in Rust.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoLock;

impl CallerLock for NoLock {
    fn released<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        f()
    }
    fn retaken<R>(f: impl FnOnce() -> R) -> R {
        f()
    }
}

/// Run a batch chunk by chunk: `work` computes a chunk of `items` into a
/// [`ChunkBuf`] with `lock` released, then `deliver` receives the chunk and its
/// buffer on the calling thread, in order, with `lock` held. Returns the first
/// error: that of the lowest failing record (with its batch index set) or the
/// first one `deliver` returned. Chunks after a failure are not delivered. A
/// panic in `work` resumes on the calling thread once every pool thread has
/// stopped.
///
/// Without a pool (see [`Parallelism`]; `size` gives a record's input bytes for
/// the automatic choice), the lock is released around each chunk's `work`. With
/// a pool, it is released for the whole batch and taken back around each
/// `deliver`; the pool's other threads compute chunks ahead (up to [`AHEAD`])
/// while this thread delivers, and this thread computes too whenever the next
/// chunk to deliver is not ready. So at most the pool's thread count is busy,
/// and delivering (serial, one thread) overlaps the computing instead of
/// competing with it for cores. Each chunk is computed by one thread, with
/// [`Parallelism::SERIAL`]; a batch of one chunk gets `par` instead, to be split
/// across the pool.
pub fn run_chunks<T, E, L>(
    items: &[T],
    par: Parallelism,
    size: impl Fn(&T) -> usize,
    lock: &L,
    work: impl Fn(&[T], Parallelism, &mut ChunkBuf) -> Result<()> + Sync,
    mut deliver: impl FnMut(&[T], &ChunkBuf) -> std::result::Result<(), E> + Send,
) -> std::result::Result<(), E>
where
    T: Sync,
    E: From<Error> + Send,
    L: CallerLock,
{
    let chunks = items.len().div_ceil(CHUNK_RECORDS);
    let chunk = |k: usize| {
        let start = k * CHUNK_RECORDS;
        &items[start..(start + CHUNK_RECORDS).min(items.len())]
    };
    let bytes = || {
        items
            .iter()
            .fold(0usize, |acc, it| acc.saturating_add(size(it)))
    };
    let pool = match plan(par, items.len(), bytes) {
        Some(p) if chunks > 1 && p.current_num_threads() > 1 => p,
        other => {
            // serial chunks, or one chunk split across the pool
            let par = if other.is_some() {
                par
            } else {
                Parallelism::SERIAL
            };
            let lease = Lease::take(1);
            let mut guard = lease.buf(0);
            let buf = &mut *guard;
            for k in 0..chunks {
                lock.released(|| work(chunk(k), par, buf))
                    .map_err(|e| shift(e, k * CHUNK_RECORDS))?;
                deliver(chunk(k), buf)?;
            }
            return Ok(());
        }
    };
    let lease = Lease::take(AHEAD.min(chunks));
    let flow = Mutex::new(Flow {
        next: 0,
        delivered: 0,
        done: (0..chunks).map(|_| None).collect(),
        stop: false,
    });
    let changed = Condvar::new();
    let compute = |j: usize| {
        let r = {
            let mut buf = lease.buf(j);
            catch_unwind(AssertUnwindSafe(|| {
                work(chunk(j), Parallelism::SERIAL, &mut buf)
            }))
        };
        acquire(&flow).done[j] = Some(r);
        changed.notify_all();
    };
    let helper = || loop {
        let mut st = acquire(&flow);
        let j = loop {
            if st.stop || st.next >= chunks {
                return;
            }
            if let Some(j) = st.claim(chunks) {
                break j;
            }
            st = changed.wait(st).unwrap_or_else(PoisonError::into_inner);
        };
        drop(st);
        compute(j);
    };
    let mut panicked: Option<Box<dyn Any + Send>> = None;
    let out = lock.released(|| {
        pool.in_place_scope(|s| {
            let _stop = StopOnExit(&flow, &changed);
            for _ in 1..pool.current_num_threads().min(chunks) {
                s.spawn(|_| helper());
            }
            for k in 0..chunks {
                let ready = loop {
                    let mut st = acquire(&flow);
                    if let Some(r) = st.done[k].take() {
                        break r;
                    }
                    if let Some(j) = st.claim(chunks) {
                        drop(st);
                        compute(j);
                        continue;
                    }
                    // chunk k is being computed elsewhere
                    drop(changed.wait(st).unwrap_or_else(PoisonError::into_inner));
                };
                // chunks before k were delivered without error, so k holds the lowest failure
                match ready {
                    Ok(Ok(())) => {}
                    Ok(Err(e)) => return Err(E::from(shift(e, k * CHUNK_RECORDS))),
                    Err(payload) => {
                        panicked = Some(payload);
                        return Ok(());
                    }
                }
                L::retaken(|| deliver(chunk(k), &lease.buf(k)))?;
                acquire(&flow).delivered = k + 1;
                changed.notify_all();
            }
            Ok(())
        })
    });
    if let Some(payload) = panicked {
        resume_unwind(payload);
    }
    out
}

// --- within a chunk ------------------------------------------------------------------

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

/// Run `pair` over consecutive pairs of `(item, slot)` (and `one` over a last
/// odd record), serially or on a pool; on failure return the error of the
/// lowest failing index, with that index set. Records go in pairs so that
/// their HMACs share the two SHA-NI lanes.
pub(crate) fn run_pairs<T: Sync, S: Send>(
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
            .with_min_len(MIN_PAIRS_PER_TASK)
            .for_each(|(c, (its, ss))| {
                if 2 * c > first_err.load(Ordering::Relaxed) {
                    return; // a lower record already failed
                }
                if let Some((i, e)) = work(c, its, ss) {
                    first_err.fetch_min(i, Ordering::Relaxed);
                    let mut g = acquire(&found);
                    if g.as_ref().is_none_or(|(j, _)| i < *j) {
                        *g = Some((i, e));
                    }
                }
            });
        match found.into_inner().unwrap_or_else(PoisonError::into_inner) {
            Some((i, e)) => Err(e.at(i)),
            None => Ok(()),
        }
    };
    match plan(par, items.len(), || bytes) {
        None => {
            for (c, (its, ss)) in items.chunks(2).zip(slots.chunks_mut(2)).enumerate() {
                if let Some((i, e)) = work(c, its, ss) {
                    return Err(e.at(i));
                }
            }
            Ok(())
        }
        Some(p) => p.install(|| parallel(items, slots)),
    }
}

#[cfg(test)]
impl Parallelism {
    /// Serial, automatic, two threads and more threads than work, each with no size threshold:
    /// the settings every parallel path is tested under.
    pub(crate) fn test_variants() -> Vec<Parallelism> {
        [1, 0, 2, 64]
            .iter()
            .map(|&threads| Parallelism {
                threads,
                min_parallel_bytes: 0,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::error::{ErrorKind, Reason};

    /// Work that writes each record's value into the arena; record `bad` fails.
    fn echo(
        bad: Option<usize>,
    ) -> impl Fn(&[usize], Parallelism, &mut ChunkBuf) -> Result<()> + Sync {
        move |chunk, _, buf| {
            buf.lens.clear();
            for (i, &v) in chunk.iter().enumerate() {
                if Some(v) == bad {
                    return Err(Error::new(Reason::Empty, "payload").at(i));
                }
                buf.lens.push(v);
            }
            Ok(())
        }
    }

    #[test]
    fn chunks_are_delivered_in_order() {
        for n in [
            0,
            1,
            2,
            CHUNK_RECORDS,
            CHUNK_RECORDS + 1,
            7 * CHUNK_RECORDS + 3,
        ] {
            let items: Vec<usize> = (0..n).collect();
            for par in Parallelism::test_variants() {
                let mut seen = Vec::new();
                run_chunks(
                    &items,
                    par,
                    |_| 1,
                    &NoLock,
                    echo(None),
                    |chunk: &[usize], buf| {
                        assert_eq!(chunk, &buf.lens[..]);
                        seen.extend_from_slice(chunk);
                        Ok::<(), Error>(())
                    },
                )
                .unwrap();
                assert_eq!(seen, items, "n={n} {par:?}");
            }
        }
    }

    #[test]
    fn the_lowest_failing_record_wins_and_nothing_after_it_is_delivered() {
        let items: Vec<usize> = (0..6 * CHUNK_RECORDS).collect();
        for bad in [0, 5, CHUNK_RECORDS, 3 * CHUNK_RECORDS + 7] {
            for par in Parallelism::test_variants() {
                let mut delivered = 0;
                let err = run_chunks(
                    &items,
                    par,
                    |_| 1,
                    &NoLock,
                    echo(Some(bad)),
                    |chunk: &[usize], _| {
                        delivered += chunk.len();
                        Ok::<(), Error>(())
                    },
                )
                .unwrap_err();
                assert_eq!(
                    (err.kind(), err.index()),
                    (ErrorKind::InvalidInput, Some(bad))
                );
                assert_eq!(delivered, bad / CHUNK_RECORDS * CHUNK_RECORDS, "{par:?}");
            }
        }
    }

    /// An error type of a caller of the pipeline.
    #[derive(Debug, PartialEq)]
    enum Stopped {
        Crypto,
        ByDeliver,
    }

    impl From<Error> for Stopped {
        fn from(_: Error) -> Self {
            Stopped::Crypto
        }
    }

    #[test]
    fn an_error_from_deliver_stops_the_batch() {
        let items: Vec<usize> = (0..9 * CHUNK_RECORDS).collect();
        for par in Parallelism::test_variants() {
            let mut calls = 0;
            let out = run_chunks(
                &items,
                par,
                |_| 1,
                &NoLock,
                echo(None),
                |_: &[usize], _| {
                    calls += 1;
                    if calls == 2 {
                        Err(Stopped::ByDeliver)
                    } else {
                        Ok(())
                    }
                },
            );
            assert_eq!((out, calls), (Err(Stopped::ByDeliver), 2));
        }
        let out = run_chunks(
            &items,
            Parallelism::test_variants()[2],
            |_| 1,
            &NoLock,
            echo(Some(7)),
            |_: &[usize], _| Ok(()),
        );
        assert_eq!(out, Err(Stopped::Crypto));
    }

    thread_local! {
        /// Whether this thread holds the (pretend) caller lock of `Tracked`.
        static HELD: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
    }

    /// A caller lock that checks it is released and taken back in turn.
    struct Tracked;

    impl CallerLock for Tracked {
        fn released<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
            assert!(HELD.get(), "released without holding it");
            HELD.set(false);
            let r = f();
            HELD.set(true);
            r
        }
        fn retaken<R>(f: impl FnOnce() -> R) -> R {
            assert!(!HELD.get(), "taken twice");
            HELD.set(true);
            let r = f();
            HELD.set(false);
            r
        }
    }

    #[test]
    fn work_runs_without_the_callers_lock_and_deliver_with_it() {
        for n in [1, 3, 5 * CHUNK_RECORDS + 1] {
            let items: Vec<usize> = (0..n).collect();
            for par in Parallelism::test_variants() {
                HELD.set(true);
                let mut delivered = 0;
                run_chunks(
                    &items,
                    par,
                    |_| 1,
                    &Tracked,
                    |_: &[usize], _, _: &mut ChunkBuf| {
                        assert!(!HELD.get(), "work under the lock");
                        Ok(())
                    },
                    |chunk, _| {
                        assert!(HELD.get(), "deliver without the lock");
                        delivered += chunk.len();
                        Ok::<(), Error>(())
                    },
                )
                .unwrap();
                assert!(HELD.get());
                assert_eq!(delivered, n);
            }
        }
    }

    #[test]
    fn a_panic_in_work_reaches_the_caller_and_buffers_come_back() {
        let items: Vec<usize> = (0..5 * CHUNK_RECORDS).collect();
        for par in Parallelism::test_variants() {
            let r = catch_unwind(|| {
                run_chunks(
                    &items,
                    par,
                    |_| 1,
                    &NoLock,
                    |chunk: &[usize], _, _: &mut ChunkBuf| {
                        assert!(!chunk.contains(&(3 * CHUNK_RECORDS)), "boom");
                        Ok(())
                    },
                    |_, _| Ok::<(), Error>(()),
                )
            });
            let payload = r.unwrap_err();
            assert_eq!(payload.downcast_ref::<&str>(), Some(&"boom"));
        }
        // the pipeline still works afterwards
        let mut n = 0;
        run_chunks(
            &items,
            Parallelism::test_variants()[2],
            |_| 1,
            &NoLock,
            echo(None),
            |c: &[usize], _| {
                n += c.len();
                Ok::<(), Error>(())
            },
        )
        .unwrap();
        assert_eq!(n, items.len());
        assert!(acquire(&SPARE).len() <= KEEP_BUFS);
    }

    #[test]
    fn thread_counts_are_capped_and_pools_reused() {
        assert!(plan(Parallelism::new(1), 1000, || 1 << 30).is_none());
        assert!(plan(Parallelism::new(0), 1, || 1 << 30).is_none());
        assert!(plan(Parallelism::new(0), 1000, || 10).is_none());
        if machine_threads() >= 2 {
            let a = plan(Parallelism::new(64), 1000, || 0).unwrap();
            let b = plan(Parallelism::new(64), 1000, || 0).unwrap();
            assert!(Arc::ptr_eq(&a, &b));
            assert!(a.current_num_threads() <= machine_threads().max(2));
        }
    }
}
