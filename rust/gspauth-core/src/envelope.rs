//! GSTN envelopes (spec §4): request `data`+`hmac`, EVC `data`+`sign`, response
//! `data`+`rek`(+`hmac`), and the server-side halves, as reusable per-key contexts
//! ([`RequestSealer`], [`ResponseOpener`]) plus one-shot functions.
//!
//! Wire fields are taken as `&[u8]` holding the field's text as UTF-8 (any
//! non-ASCII byte makes the text invalid Base64, as in the reference).

use std::borrow::Cow;

use subtle::ConstantTimeEq;

use crate::b64;
use crate::ecb::{padded_len, Decryptor, Encryptor};
use crate::error::{Error, Reason, Result};
use crate::key::Key;
use crate::sha::{self, HmacKey};
use crate::{MAX_PAYLOAD_BYTES, MAX_WIRE_CHARS};

fn owned(field: &str) -> Cow<'static, str> {
    Cow::Owned(field.to_owned())
}

/// Reusable buffers for one worker: decoded/decrypted text, an auxiliary
/// buffer (decoded MACs, the request's Base64 text) and whitespace stripping.
#[derive(Default)]
pub struct Scratch {
    pub(crate) text: Vec<u8>,
    pub(crate) aux: Vec<u8>,
    pub(crate) ws: Vec<u8>,
}

impl Scratch {
    /// Empty buffers; they grow to the largest record seen and are then reused.
    pub fn new() -> Self {
        Self::default()
    }

    /// Bytes currently reserved by the buffers.
    pub fn capacity(&self) -> usize {
        self.text.capacity() + self.aux.capacity() + self.ws.capacity()
    }
}

impl std::fmt::Debug for Scratch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Scratch([secure])")
    }
}

/// `(data, hmac)` of a request, or `(data, sign)` of an EVC filing.
#[derive(Clone, PartialEq, Eq)]
pub struct RequestEnvelope {
    /// `B64(AES(EK, j64))`.
    pub data: String,
    /// `B64(HMAC(EK, j64))` (or the EVC `sign`).
    pub hmac: String,
}

impl std::fmt::Debug for RequestEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestEnvelope([secure])")
    }
}

/// `(data, rek, hmac)` wire fields of a response (server side).
#[derive(Clone, PartialEq, Eq)]
pub struct ResponseEnvelope {
    /// `B64(AES(REK, j64))`.
    pub data: String,
    /// `B64(AES(EK, REK))`.
    pub rek: String,
    /// `B64(HMAC(REK, j64))`.
    pub hmac: String,
}

impl std::fmt::Debug for ResponseEnvelope {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseEnvelope([secure])")
    }
}

// --- checks shared by every entry point ---------------------------------------

/// Size check of a plaintext payload (`{field} is larger than 33554432 bytes`).
#[inline]
pub fn check_payload(payload: &[u8], field: &'static str) -> Result<()> {
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(Error::new(
            Reason::TooLarge {
                limit: MAX_PAYLOAD_BYTES,
            },
            field,
        ));
    }
    Ok(())
}

/// Number of characters of UTF-8 text (bytes that do not continue a sequence).
fn char_count(text: &[u8]) -> usize {
    text.iter().filter(|&&b| (b & 0xC0) != 0x80).count()
}

/// Size check of a Base64 wire field, counted in characters as Python's `len(str)`.
#[inline]
pub fn check_wire(text: &[u8], field: &str) -> Result<()> {
    // Byte length bounds the character count, so counting is only needed when long.
    if text.len() > MAX_WIRE_CHARS && char_count(text) > MAX_WIRE_CHARS {
        return Err(Error::new(Reason::TooLong, owned(field)));
    }
    Ok(())
}

/// Decode a wire field (size check, whitespace removal when tolerant, strict
/// Base64) into `out`, replacing its contents.
pub fn decode_wire(
    text: &[u8],
    field: &str,
    tolerant: bool,
    out: &mut Vec<u8>,
    ws: &mut Vec<u8>,
) -> Result<()> {
    check_wire(text, field)?;
    let text = if tolerant {
        b64::strip_whitespace(text, ws)
    } else {
        text
    };
    out.clear();
    b64::decode_append(text, out).map_err(|_| Error::new(Reason::Base64 { tolerant }, owned(field)))
}

/// `D(key, text)` into `out`: decode, then decrypt in place and unpad.
fn open_field(
    dec: &Decryptor,
    text: &[u8],
    field: &str,
    tolerant: bool,
    out: &mut Vec<u8>,
    ws: &mut Vec<u8>,
) -> Result<()> {
    decode_wire(text, field, tolerant, out, ws)?;
    let n = dec.decrypt_in_place_named(out, || owned(field))?;
    out.truncate(n);
    Ok(())
}

/// Constant-time comparison of a received (decoded) tag with the computed one.
fn check_tag(received: &[u8], computed: &[u8; 32]) -> Result<()> {
    // ct_eq on slices of different lengths is false without looking at content
    if bool::from(received.ct_eq(computed.as_slice())) {
        Ok(())
    } else {
        Err(Error::new(Reason::HmacMismatch, "hmac"))
    }
}

/// The JSON bytes inside a decrypted Base64 text (`{field} decrypted to text that
/// is not valid Base64` otherwise).
pub fn inner_json(j64: &[u8], field: &str) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    b64::decode_append(j64, &mut out).map_err(|_| Error::new(Reason::InnerBase64, owned(field)))?;
    Ok(out)
}

/// [`inner_json`] of a response's `data` into `out`; returns the JSON length.
fn json_into(j64: &[u8], out: &mut [u8]) -> Result<usize> {
    b64::decode_into(j64, out).map_err(|_| Error::new(Reason::InnerBase64, "data"))
}

/// Upper bound of the JSON length inside a response/request `data` field of
/// `data_len` characters (0 when the field is over the size limit and will fail).
#[inline]
pub const fn json_len_bound(data_len: usize) -> usize {
    if data_len > MAX_WIRE_CHARS {
        0
    } else {
        data_len / 4 * 3 / 4 * 3
    }
}

/// `HMAC-SHA256(key, message)`; any key length is valid (RFC 2104).
pub fn hmac_sha256(key: &[u8], message: &[u8]) -> [u8; 32] {
    sha::hmac(&HmacKey::new(key), message)
}

// --- primitives ---------------------------------------------------------------

/// AES-256-ECB + PKCS#7. Empty plaintext gives one padding block.
pub fn aes_encrypt(key: &Key, plaintext: &[u8]) -> Result<Vec<u8>> {
    check_payload(plaintext, "plaintext")?;
    Ok(Encryptor::new(key).encrypt_vec(plaintext))
}

/// Inverse of [`aes_encrypt`]: empty → `InvalidInput`; bad length or padding → `Decryption`.
pub fn aes_decrypt(key: &Key, ciphertext: &[u8]) -> Result<Vec<u8>> {
    if ciphertext.len() > MAX_WIRE_CHARS {
        return Err(Error::new(
            Reason::TooLarge {
                limit: MAX_WIRE_CHARS,
            },
            "ciphertext",
        ));
    }
    let mut buf = ciphertext.to_vec();
    let n = Decryptor::new(key).decrypt_in_place(&mut buf, "ciphertext")?;
    buf.truncate(n);
    Ok(buf)
}

/// `E(key, plaintext)`: Base64 of the AES ciphertext (OTP, `sek`, refresh `app_key`).
pub fn encrypt_field(key: &Key, plaintext: &[u8]) -> Result<String> {
    check_payload(plaintext, "plaintext")?;
    let mut buf = Vec::new();
    Ok(seal_field(&Encryptor::new(key), plaintext, &mut buf))
}

fn seal_field(enc: &Encryptor, plaintext: &[u8], buf: &mut Vec<u8>) -> String {
    let p = padded_len(plaintext.len());
    buf.clear();
    buf.reserve_exact(p);
    buf.extend_from_slice(plaintext);
    buf.resize(p, 0);
    enc.encrypt_padded_in_place(buf, plaintext.len());
    b64::encode(buf)
}

/// `D(key, text)`; `field` names the wire field in errors.
pub fn decrypt_field(key: &Key, text: &[u8], field: &str, tolerant: bool) -> Result<Vec<u8>> {
    let mut out = Vec::new();
    open_field(
        &Decryptor::new(key),
        text,
        field,
        tolerant,
        &mut out,
        &mut Vec::new(),
    )?;
    Ok(out)
}

/// `D(key, text)` that must give a 32-byte key (`sek`, `rek`, refresh `app_key`).
pub fn decrypt_key(key: &Key, text: &[u8], field: &str, tolerant: bool) -> Result<Key> {
    let raw = decrypt_field(key, text, field, tolerant)?;
    Key::from_slice(&raw).map_err(|_| {
        Error::new(
            Reason::KeySize {
                got: raw.len(),
                session: false,
            },
            owned(field),
        )
    })
}

// --- request envelope -----------------------------------------------------------

/// Per-key context for request envelopes: the AES key schedule and the keyed
/// HMAC state are computed once and reused for every record.
#[derive(Clone)]
pub struct RequestSealer {
    enc: Encryptor,
    mac: HmacKey,
}

impl std::fmt::Debug for RequestSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RequestSealer([secure])")
    }
}

impl RequestSealer {
    /// Context for session key `key` (EK).
    pub fn new(key: &Key) -> Self {
        RequestSealer {
            enc: Encryptor::new(key),
            mac: HmacKey::new(key.as_bytes()),
        }
    }

    /// JSON bytes → `(data, hmac)`. Errors: payload too large, payload empty.
    pub fn seal(&self, payload: &[u8], scratch: &mut Scratch) -> Result<RequestEnvelope> {
        self.seal_with(payload, &self.mac, scratch)
    }

    /// EVC form: `(data, sign)` with `sign = B64(HMAC(sid, j64))`.
    pub fn seal_evc(
        &self,
        sid: &[u8],
        payload: &[u8],
        scratch: &mut Scratch,
    ) -> Result<RequestEnvelope> {
        if sid.is_empty() {
            return Err(Error::new(Reason::Empty, "sid"));
        }
        self.seal_with(payload, &HmacKey::new(sid), scratch)
    }

    fn seal_with(
        &self,
        payload: &[u8],
        mac: &HmacKey,
        scratch: &mut Scratch,
    ) -> Result<RequestEnvelope> {
        Self::check(payload)?;
        let (data, hmac) = seal_j64(&self.enc, mac, payload, &mut scratch.text);
        Ok(RequestEnvelope { data, hmac })
    }

    /// The only ways a request payload can fail: too large, or empty.
    #[inline]
    pub fn check(payload: &[u8]) -> Result<()> {
        check_payload(payload, "payload")?;
        if payload.is_empty() {
            return Err(Error::new(Reason::Empty, "payload"));
        }
        Ok(())
    }

    /// Seal into `out`, which must be exactly [`sealed_len`]`(payload.len())` bytes:
    /// the `data` text followed by the 44 characters of `hmac`. No allocation
    /// beyond `scratch` growing to the largest record.
    pub fn seal_into(&self, payload: &[u8], out: &mut [u8], scratch: &mut Scratch) -> Result<()> {
        Self::check(payload)?;
        check_slot(payload, out)?;
        let (m, p) = prepare_j64(payload, &mut scratch.text);
        let tag = sha::hmac(&self.mac, &scratch.text[..m]);
        self.finish_into(&mut scratch.text[..p], m, &tag, out);
        Ok(())
    }

    /// [`seal_into`](Self::seal_into) for two records at once: their HMACs are
    /// computed together (two SHA-NI lanes). `scratch_b` is a second buffer set.
    pub fn seal_pair_into(
        &self,
        (payload_a, out_a): (&[u8], &mut [u8]),
        (payload_b, out_b): (&[u8], &mut [u8]),
        scratch_a: &mut Scratch,
        scratch_b: &mut Scratch,
    ) -> Result<()> {
        Self::check(payload_a)?;
        Self::check(payload_b)?;
        check_slot(payload_a, out_a)?;
        check_slot(payload_b, out_b)?;
        let (ma, pa) = prepare_j64(payload_a, &mut scratch_a.text);
        let (mb, pb) = prepare_j64(payload_b, &mut scratch_b.text);
        let (ta, tb) = sha::hmac_two(
            &self.mac,
            &scratch_a.text[..ma],
            &self.mac,
            &scratch_b.text[..mb],
        );
        self.finish_into(&mut scratch_a.text[..pa], ma, &ta, out_a);
        self.finish_into(&mut scratch_b.text[..pb], mb, &tb, out_b);
        Ok(())
    }

    /// Pad and encrypt j64 (the first `m` bytes of `block`), then write
    /// `B64(ciphertext)` and `B64(tag)` into `out`.
    fn finish_into(&self, block: &mut [u8], m: usize, tag: &[u8; 32], out: &mut [u8]) {
        self.enc.encrypt_padded_in_place(block, m);
        let (data, mac) = out.split_at_mut(b64::encoded_len(block.len()));
        b64::encode_into(block, data);
        b64::encode_into(tag, mac);
    }
}

/// A slot of the wrong length is a caller bug; it is reported, never written past.
fn check_slot(payload: &[u8], out: &[u8]) -> Result<()> {
    if out.len() != sealed_len(payload.len()) {
        return Err(Error::new(Reason::TooLarge { limit: out.len() }, "payload"));
    }
    Ok(())
}

/// Write `j64 = B64(payload)` at the start of `buf` (grown as needed, never
/// shrunk); returns j64's length and its PKCS#7-padded length.
fn prepare_j64(payload: &[u8], buf: &mut Vec<u8>) -> (usize, usize) {
    let m = b64::encoded_len(payload.len());
    let p = padded_len(m);
    if buf.len() < p {
        buf.resize(p, 0);
    }
    b64::encode_into(payload, &mut buf[..m]);
    (m, p)
}

/// Length of the Base64 `hmac` (or `sign`) field.
pub const HMAC_B64_LEN: usize = 44;

/// Length of the `data` field sealed from a payload of `payload_len` bytes.
#[inline]
pub const fn request_data_len(payload_len: usize) -> usize {
    b64::encoded_len(padded_len(b64::encoded_len(payload_len)))
}

/// `data` plus `hmac` lengths: the slot [`RequestSealer::seal_into`] fills.
#[inline]
pub const fn sealed_len(payload_len: usize) -> usize {
    request_data_len(payload_len) + HMAC_B64_LEN
}

/// `j64 = B64(payload)`; returns `(B64(AES(enc, j64)), B64(HMAC(mac, j64)))`.
/// One pass writes j64 into `buf`, MACs it, pads and encrypts it in place.
fn seal_j64(enc: &Encryptor, mac: &HmacKey, payload: &[u8], buf: &mut Vec<u8>) -> (String, String) {
    let (m, p) = prepare_j64(payload, buf);
    let block = &mut buf[..p];
    let tag = sha::hmac(mac, &block[..m]);
    enc.encrypt_padded_in_place(block, m);
    (b64::encode(block), b64::encode(&tag))
}

/// `E`-envelope of a request under `key`: JSON bytes → `(data, hmac)` (spec §4).
pub fn encrypt_request(key: &Key, payload: &[u8]) -> Result<RequestEnvelope> {
    RequestSealer::new(key).seal(payload, &mut Scratch::new())
}

/// EVC filing envelope (spec §3.6): `(data, sign)`, `sign = B64(HMAC(sid, j64))`.
pub fn encrypt_request_evc(key: &Key, sid: &[u8], payload: &[u8]) -> Result<RequestEnvelope> {
    RequestSealer::new(key).seal_evc(sid, payload, &mut Scratch::new())
}

/// Server side of [`encrypt_request`]: `data` (+ `hmac`) → JSON bytes. The HMAC
/// is checked over the exact decrypted Base64 text.
pub fn decrypt_request(
    key: &Key,
    data: &[u8],
    hmac: Option<&[u8]>,
    tolerant: bool,
) -> Result<Vec<u8>> {
    let mut s = Scratch::new();
    open_field(
        &Decryptor::new(key),
        data,
        "data",
        tolerant,
        &mut s.text,
        &mut s.ws,
    )?;
    if let Some(mac) = hmac {
        decode_wire(mac, "hmac", tolerant, &mut s.aux, &mut s.ws)?;
        check_tag(&s.aux, &sha::hmac(&HmacKey::new(key.as_bytes()), &s.text))?;
    }
    inner_json(&s.text, "data")
}

// --- response envelope ------------------------------------------------------------

/// Per-key context for response envelopes: the session key's decryption schedule
/// is computed once; each record's REK gets its own.
#[derive(Clone)]
pub struct ResponseOpener {
    dec: Decryptor,
}

impl std::fmt::Debug for ResponseOpener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ResponseOpener([secure])")
    }
}

/// A record's response key REK, ready to open that record's `data`.
pub struct RecordKey {
    mac: HmacKey,
    dec: Decryptor,
}

impl std::fmt::Debug for RecordKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RecordKey([secure])")
    }
}

impl ResponseOpener {
    /// Context for session key `key` (EK).
    pub fn new(key: &Key) -> Self {
        ResponseOpener {
            dec: Decryptor::new(key),
        }
    }

    /// Step 1: the `rek` wire field → REK (must be 32 bytes).
    pub fn open_rek(&self, rek: &[u8], tolerant: bool, scratch: &mut Scratch) -> Result<RecordKey> {
        open_field(
            &self.dec,
            rek,
            "rek",
            tolerant,
            &mut scratch.aux,
            &mut scratch.ws,
        )?;
        let key = Key::from_slice(&scratch.aux).map_err(|_| {
            Error::new(
                Reason::KeySize {
                    got: scratch.aux.len(),
                    session: true,
                },
                "rek",
            )
        })?;
        Ok(RecordKey {
            dec: Decryptor::new(&key),
            mac: HmacKey::new(key.as_bytes()),
        })
    }

    /// `rek` → `data` → `hmac` (when present), leaving j64 in `scratch.text`.
    fn open_j64(
        &self,
        data: &[u8],
        rek: &[u8],
        hmac: Option<&[u8]>,
        tolerant: bool,
        scratch: &mut Scratch,
    ) -> Result<()> {
        let rk = self.open_rek(rek, tolerant, scratch)?;
        rk.open_data(data, tolerant, scratch)?;
        if let Some(mac) = hmac {
            rk.verify(mac, tolerant, scratch)?;
        }
        Ok(())
    }

    /// The whole record: `rek` → `data` → `hmac` (when present) → inner Base64.
    pub fn open(
        &self,
        data: &[u8],
        rek: &[u8],
        hmac: Option<&[u8]>,
        tolerant: bool,
        scratch: &mut Scratch,
    ) -> Result<Vec<u8>> {
        self.open_j64(data, rek, hmac, tolerant, scratch)?;
        RecordKey::finish(scratch)
    }

    /// [`open`](Self::open) writing the JSON into `out` (at least
    /// [`json_len_bound`]`(data.len())` bytes); returns its length.
    pub fn open_into(
        &self,
        data: &[u8],
        rek: &[u8],
        hmac: Option<&[u8]>,
        tolerant: bool,
        scratch: &mut Scratch,
        out: &mut [u8],
    ) -> Result<usize> {
        self.open_j64(data, rek, hmac, tolerant, scratch)?;
        json_into(&scratch.text, out)
    }

    /// [`open_into`](Self::open_into) for two records at once: when both carry an
    /// `hmac`, the two HMACs are computed together (two SHA-NI lanes). Each
    /// record's result is independent of the other's.
    pub fn open_pair_into(
        &self,
        a: ResponseInput<'_>,
        b: ResponseInput<'_>,
        tolerant: bool,
        (scratch_a, scratch_b): (&mut Scratch, &mut Scratch),
        (out_a, out_b): (&mut [u8], &mut [u8]),
    ) -> (Result<usize>, Result<usize>) {
        // rek, data and the received tag of each record; then both HMACs at once
        let step = |r: &ResponseInput<'_>, s: &mut Scratch| -> Result<(RecordKey, bool)> {
            let rk = self.open_rek(r.rek, tolerant, s)?;
            rk.open_data(r.data, tolerant, s)?;
            if let Some(mac) = r.hmac {
                decode_wire(mac, "hmac", tolerant, &mut s.aux, &mut s.ws)?;
            }
            Ok((rk, r.hmac.is_some()))
        };
        let ra = step(&a, scratch_a);
        let rb = step(&b, scratch_b);
        let (ta, tb) = match (&ra, &rb) {
            (Ok((ka, true)), Ok((kb, true))) => {
                let (x, y) = sha::hmac_two(&ka.mac, &scratch_a.text, &kb.mac, &scratch_b.text);
                (Some(x), Some(y))
            }
            _ => (
                ra.as_ref()
                    .ok()
                    .filter(|(_, m)| *m)
                    .map(|(k, _)| sha::hmac(&k.mac, &scratch_a.text)),
                rb.as_ref()
                    .ok()
                    .filter(|(_, m)| *m)
                    .map(|(k, _)| sha::hmac(&k.mac, &scratch_b.text)),
            ),
        };
        let finish =
            |r: Result<(RecordKey, bool)>, tag: Option<[u8; 32]>, s: &Scratch, out: &mut [u8]| {
                r?;
                if let Some(t) = tag {
                    check_tag(&s.aux, &t)?;
                }
                json_into(&s.text, out)
            };
        (
            finish(ra, ta, scratch_a, out_a),
            finish(rb, tb, scratch_b, out_b),
        )
    }
}

/// One response record's wire fields, as UTF-8 text.
#[derive(Clone, Copy)]
pub struct ResponseInput<'a> {
    /// The `data` field.
    pub data: &'a [u8],
    /// The `rek` field.
    pub rek: &'a [u8],
    /// The `hmac` field, when present.
    pub hmac: Option<&'a [u8]>,
}

impl RecordKey {
    /// Step 2: the `data` wire field → its Base64 text j64 (kept in `scratch`).
    pub fn open_data(&self, data: &[u8], tolerant: bool, scratch: &mut Scratch) -> Result<()> {
        open_field(
            &self.dec,
            data,
            "data",
            tolerant,
            &mut scratch.text,
            &mut scratch.ws,
        )
    }

    /// Step 3: check the `hmac` wire field against `HMAC(REK, j64)` from step 2.
    pub fn verify(&self, mac: &[u8], tolerant: bool, scratch: &mut Scratch) -> Result<()> {
        decode_wire(mac, "hmac", tolerant, &mut scratch.aux, &mut scratch.ws)?;
        check_tag(&scratch.aux, &sha::hmac(&self.mac, &scratch.text))
    }

    /// Step 4: the JSON bytes inside j64 from step 2.
    pub fn finish(scratch: &Scratch) -> Result<Vec<u8>> {
        inner_json(&scratch.text, "data")
    }
}

/// `data` + `rek` (+ `hmac`) → JSON bytes, verifying the HMAC when present.
pub fn decrypt_response(
    key: &Key,
    data: &[u8],
    rek: &[u8],
    hmac: Option<&[u8]>,
    tolerant: bool,
) -> Result<Vec<u8>> {
    ResponseOpener::new(key).open(data, rek, hmac, tolerant, &mut Scratch::new())
}

/// Server side of [`decrypt_response`]: `(data, rek, hmac)` for payload under REK `rek`.
pub fn encrypt_response(key: &Key, rek: &Key, payload: &[u8]) -> Result<ResponseEnvelope> {
    check_payload(payload, "payload")?;
    let mut buf = Vec::new();
    let (data, hmac) = seal_j64(
        &Encryptor::new(rek),
        &HmacKey::new(rek.as_bytes()),
        payload,
        &mut buf,
    );
    let rek_wire = seal_field(&Encryptor::new(key), rek.as_bytes(), &mut buf);
    Ok(ResponseEnvelope {
        data,
        rek: rek_wire,
        hmac,
    })
}
