//! Batch forms: many records under one session key, one key schedule per batch,
//! run through the chunk pipeline of [`crate::pipeline`]. Errors report the
//! lowest failing index.

use crate::envelope::{
    json_len_bound, request_data_len, sealed_len, RequestEnvelope, RequestSealer, ResponseInput,
    ResponseOpener, HMAC_B64_LEN,
};
use crate::error::Result;
use crate::key::Key;
use crate::pipeline::{run_chunks, run_pairs, ChunkBuf, NoLock, Parallelism};

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

impl ChunkBuf {
    /// Seal `payloads` (a chunk) without per-record allocation: record `i`'s
    /// `data` and `hmac` texts are written one after the other into this
    /// buffer, in a slot of [`sealed_len`]`(payloads[i].len())` bytes; read
    /// them back with [`sealed`](Self::sealed). The buffer grows (never
    /// shrinks) as needed. Payloads are validated first: on error nothing is
    /// sealed. `par` may split the chunk across a pool.
    pub fn seal<P: AsRef<[u8]> + Sync>(
        &mut self,
        sealer: &RequestSealer,
        payloads: &[P],
        par: Parallelism,
    ) -> Result<()> {
        let mut total = 0usize;
        let mut bytes = 0usize;
        for (i, p) in payloads.iter().enumerate() {
            let p = p.as_ref();
            RequestSealer::check(p).map_err(|e| e.at(i))?;
            total = total.saturating_add(sealed_len(p.len()));
            bytes = bytes.saturating_add(p.len());
        }
        let arena = &mut self.arena;
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

    /// The `(data, hmac)` texts (ASCII) of each record of the chunk
    /// [`seal`](Self::seal) last sealed from `payloads`, in order.
    pub fn sealed<'a, P: AsRef<[u8]>>(
        &'a self,
        payloads: &'a [P],
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        let mut pos = 0;
        payloads.iter().map(move |p| {
            let n = request_data_len(p.as_ref().len());
            let slot = &self.arena[pos..pos + n + HMAC_B64_LEN];
            pos += n + HMAC_B64_LEN;
            slot.split_at(n)
        })
    }

    /// Open `items` (a chunk) without per-record allocation: record `i`'s JSON
    /// is written at the start of its slot in this buffer (slots of
    /// [`crate::json_len_bound`]`(data.len())` bytes, in order); read them back
    /// with [`opened`](Self::opened). On error, the lowest failing index is
    /// reported. `par` may split the chunk across a pool.
    pub fn open<R: ResponseParts + Sync>(
        &mut self,
        opener: &ResponseOpener,
        items: &[R],
        tolerant: bool,
        par: Parallelism,
    ) -> Result<()> {
        let mut total = 0usize;
        let mut bytes = 0usize;
        for r in items {
            total = total.saturating_add(json_len_bound(r.data().len()));
            bytes = bytes.saturating_add(r.data().len());
        }
        let ChunkBuf { arena, lens } = self;
        if arena.len() < total {
            arena.resize(total, 0);
        }
        lens.clear();
        lens.resize(items.len(), 0);
        let slots = split_slots(
            &mut arena[..total],
            items.iter().map(|r| json_len_bound(r.data().len())),
        );
        let mut outs: Vec<(&mut [u8], &mut usize)> =
            slots.into_iter().zip(lens.iter_mut()).collect();
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

    /// The JSON of each record of the chunk [`open`](Self::open) last opened
    /// from `items`, in order.
    pub fn opened<'a, R: ResponseParts>(
        &'a self,
        items: &'a [R],
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        let mut pos = 0;
        items.iter().zip(&self.lens).map(move |(r, &len)| {
            let json = &self.arena[pos..pos + len];
            pos += json_len_bound(r.data().len());
            json
        })
    }
}

fn input<R: ResponseParts>(r: &R) -> ResponseInput<'_> {
    ResponseInput {
        data: r.data(),
        rek: r.rek(),
        hmac: r.hmac(),
    }
}

/// Base64 output is ASCII by construction, so this copies without replacing anything.
fn text(ascii: &[u8]) -> String {
    String::from_utf8_lossy(ascii).into_owned()
}

/// Batch [`crate::encrypt_request`]: many JSON payloads under one key.
pub fn encrypt_request_many<P: AsRef<[u8]> + Sync>(
    key: &Key,
    payloads: &[P],
    par: Parallelism,
) -> Result<Vec<RequestEnvelope>> {
    let sealer = RequestSealer::new(key);
    let mut out = Vec::with_capacity(payloads.len());
    run_chunks(
        payloads,
        par,
        |p| p.as_ref().len(),
        &NoLock,
        |chunk, par, buf| buf.seal(&sealer, chunk, par),
        |chunk, buf| {
            out.extend(buf.sealed(chunk).map(|(data, hmac)| RequestEnvelope {
                data: text(data),
                hmac: text(hmac),
            }));
            Ok(())
        },
    )?;
    Ok(out)
}

/// Batch [`crate::decrypt_response`]: many `(data, rek, hmac)` records under one key.
pub fn decrypt_response_many<R: ResponseParts + Sync>(
    key: &Key,
    items: &[R],
    tolerant: bool,
    par: Parallelism,
) -> Result<Vec<Vec<u8>>> {
    let opener = ResponseOpener::new(key);
    let mut out = Vec::with_capacity(items.len());
    run_chunks(
        items,
        par,
        |r| r.data().len(),
        &NoLock,
        |chunk, par, buf| buf.open(&opener, chunk, tolerant, par),
        |chunk, buf| {
            out.extend(buf.opened(chunk).map(<[u8]>::to_vec));
            Ok(())
        },
    )?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::encrypt_request;
    use crate::error::ErrorKind;
    use crate::pipeline::CHUNK_RECORDS;
    use crate::{decrypt_response, encrypt_response};

    fn key(b: u8) -> Key {
        Key::from([b; 32])
    }

    fn payloads(n: usize) -> Vec<Vec<u8>> {
        (0..n)
            .map(|i| format!("{{\"n\":{i},\"pad\":\"{}\"}}", "x".repeat(i * 37 % 500)).into_bytes())
            .collect()
    }

    #[test]
    fn sealing_into_a_chunk_buffer_equals_single_calls() {
        let k = key(1);
        let sealer = RequestSealer::new(&k);
        for n in [0, 1, 2, 3, 7, 40] {
            let ps = payloads(n);
            for par in Parallelism::test_variants() {
                let mut buf = ChunkBuf::new();
                buf.arena = vec![0xAA; 5]; // reused, bigger or smaller than needed
                buf.seal(&sealer, &ps, par).unwrap();
                let mut pos = 0;
                for (p, (data, hmac)) in ps.iter().zip(buf.sealed(&ps)) {
                    let want = encrypt_request(&k, p).unwrap();
                    let d = request_data_len(p.len());
                    assert_eq!(&buf.arena[pos..pos + d], want.data.as_bytes());
                    assert_eq!((data, hmac), (want.data.as_bytes(), want.hmac.as_bytes()));
                    pos += d + HMAC_B64_LEN;
                }
                assert_eq!(buf.sealed(&ps).count(), n);
            }
        }
    }

    #[test]
    fn batches_of_several_chunks_equal_single_calls() {
        let k = key(3);
        let ps = payloads(2 * CHUNK_RECORDS + 77);
        let want: Vec<RequestEnvelope> =
            ps.iter().map(|p| encrypt_request(&k, p).unwrap()).collect();
        for par in Parallelism::test_variants() {
            assert_eq!(encrypt_request_many(&k, &ps, par).unwrap(), want, "{par:?}");
        }
        let items = responses(2 * CHUNK_RECORDS + 77);
        for par in Parallelism::test_variants() {
            assert_eq!(
                decrypt_response_many(&key(1), &items, false, par).unwrap(),
                payloads(items.len())
            );
        }
    }

    #[test]
    fn invalid_payloads_report_the_lowest_index() {
        let sealer = RequestSealer::new(&key(1));
        let mut ps = payloads(9);
        ps[6] = Vec::new();
        ps[4] = Vec::new();
        for par in Parallelism::test_variants() {
            let err = ChunkBuf::new().seal(&sealer, &ps, par).unwrap_err();
            assert_eq!(
                (err.kind(), err.index()),
                (ErrorKind::InvalidInput, Some(4))
            );
            assert_eq!(err.to_string(), "record 4: payload is empty");
            let err = encrypt_request_many(&key(1), &ps, par).unwrap_err();
            assert_eq!(err.index(), Some(4));
        }
        let mut ps = payloads(3 * CHUNK_RECORDS);
        ps[2 * CHUNK_RECORDS + 5] = Vec::new();
        for par in Parallelism::test_variants() {
            let err = encrypt_request_many(&key(1), &ps, par).unwrap_err();
            assert_eq!(err.index(), Some(2 * CHUNK_RECORDS + 5));
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
        let mut buf = ChunkBuf::new();
        buf.open(&opener, items, false, par)?;
        Ok(buf.opened(items).map(<[u8]>::to_vec).collect())
    }

    #[test]
    fn opening_into_a_chunk_buffer_round_trips() {
        for n in [0, 1, 2, 3, 5, 40] {
            let items = responses(n);
            for par in Parallelism::test_variants() {
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
            for par in Parallelism::test_variants() {
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
}
