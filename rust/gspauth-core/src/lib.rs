//! The GSTN payload crypto of gspauth, in pure Rust (no Python).
//!
//! Spec §0/§4 of the GSTN protocol: `E(k, pt) = B64(AES-256-ECB-PKCS7(k, pt))`,
//! request envelopes `data = E(EK, j64)`, `hmac = B64(HMAC-SHA256(EK, j64))` with
//! `j64 = B64(json)`, response envelopes `rek = E(EK, REK)`, `data = E(REK, j64)`,
//! `hmac = B64(HMAC(REK, j64))`, the EVC `sign` variant and the server-side halves.
//!
//! The behaviour, including every error's class and message, is that of the Python
//! reference `gspauth/crypto/_python.py`; the `gspauth-py` crate exposes it to Python.
//!
//! Hot-path notes: AES uses the `aes` crate (AES-NI detected at run time, 8 blocks
//! in flight), SHA-256 uses SHA-NI when present (`sha2` detects it; batches hash
//! two records at once through the SHA-NI lanes of the private `sha` module), Base64 uses
//! `base64-simd` (AVX2/SSSE3 detected). Each record allocates its outputs once;
//! intermediate text lives in reusable [`Scratch`] buffers; key schedules are
//! built once per batch.
//!
//! Batch parallelism is owned here, in one place: [`pipeline`] cuts a batch into
//! chunks, computes them on a rayon pool ahead of a caller-supplied `deliver`
//! callback, keeps the chunk buffers, and holds every tuning constant of it.
#![deny(unsafe_code)] // one exception, in `sha::ni`, with its SAFETY argument
#![warn(missing_docs)]

pub mod b64;
mod batch;
mod ecb;
mod envelope;
mod error;
pub mod ingest;
mod key;
pub mod pipeline;
mod sha;

pub use batch::{decrypt_response_many, encrypt_request_many, ResponseParts};
pub use ecb::{padded_len, Decryptor, Encryptor};
pub use envelope::{
    aes_decrypt, aes_encrypt, check_payload, check_wire, decode_wire, decrypt_field, decrypt_key,
    decrypt_request, decrypt_response, encrypt_field, encrypt_request, encrypt_request_evc,
    encrypt_response, hmac_sha256, inner_json, json_len_bound, request_data_len, sealed_len,
    RecordKey, RequestEnvelope, RequestSealer, ResponseEnvelope, ResponseOpener, Scratch,
    HMAC_B64_LEN,
};
pub use error::{Error, ErrorKind, Reason, Result};
pub use key::Key;
pub use pipeline::{
    run_chunks, CallerLock, ChunkBuf, NoLock, Parallelism, AUTO_PARALLEL_MIN_BYTES, CHUNK_RECORDS,
};

/// Length of every key (AES-256, and the keys GSTN hands out).
pub const KEY_LEN: usize = 32;
/// AES block length.
pub const BLOCK_LEN: usize = 16;
/// Largest plaintext payload (JSON bytes) accepted for encryption: 32 MiB.
pub const MAX_PAYLOAD_BYTES: usize = 32 * 1024 * 1024;
/// Largest Base64 wire field accepted for decryption: 64 Mi characters.
pub const MAX_WIRE_CHARS: usize = 64 * 1024 * 1024;
