//! `gspauth._native`: PyO3 glue over `gspauth-core`. Same functions, positional-only
//! signatures, results, exception classes and messages as `gspauth/crypto/_python.py`.
//! The logic, including batch parallelism, lives in the core crate.
//!
//! One concern per file:
//! - `exceptions.rs`: the exception classes, imported from `gspauth.errors`;
//! - `error.rs`: core errors and panics → those exceptions;
//! - `args.rs`: argument typing in the reference's TypeError order;
//! - `single.rs`: one-shot functions; `batch.rs`: batch functions over the core's pipeline.
//!
//! Adding bindings: write them in a new file `src/<concern>.rs` as `pub(crate)`
//! `#[pyfunction]`s (explicit `#[pyo3(signature = (…, /))]`, a docstring) or
//! `#[pyclass]`es, declare `mod <concern>;` below, and export each name once
//! with a `#[pymodule_export] use crate::<concern>::{…};` line in `mod _native`.
//! Nothing else lists names: `__all__` is computed from what the module exports.
//! Then declare the names in `gspauth/_native.pyi` (its `__all__` too);
//! `python -m mypy.stubtest gspauth._native` checks the two agree. (Today every
//! name is crypto, and `tests/crypto/test_backend.py` asserts that `__all__`
//! equals the reference's: names of another concern go beside that list there.)
//! Release the GIL only over immutable or owned data (`&[u8]` of `bytes`,
//! `PyBackedBytes`, `PyBackedStr`), never over a shared mutable buffer; heavy
//! or parallel work belongs in `gspauth-core` (batches: `gspauth_core::run_chunks`).

mod args;
mod batch;
mod error;
mod exceptions;
mod ingest;
mod single;

#[pyo3::pymodule]
mod _native {
    use pyo3::prelude::*;
    use pyo3::types::PyList;

    #[pymodule_export]
    use crate::batch::{decrypt_response_many, encrypt_request_many};
    #[pymodule_export]
    use crate::ingest::{IngestBatch, IngestChunk, IngestChunker, IngestParser};
    #[pymodule_export]
    use crate::single::{
        aes_decrypt, aes_encrypt, decrypt_field, decrypt_key, decrypt_request, decrypt_response,
        encrypt_field, encrypt_request, encrypt_request_evc, encrypt_response, hmac_sha256,
    };

    #[pymodule_export]
    const MAX_PAYLOAD_BYTES: usize = gspauth_core::MAX_PAYLOAD_BYTES;
    #[pymodule_export]
    const MAX_WIRE_CHARS: usize = gspauth_core::MAX_WIRE_CHARS;

    #[pymodule_init]
    fn init(m: &Bound<'_, PyModule>) -> PyResult<()> {
        m.add("__version__", env!("CARGO_PKG_VERSION"))?;
        // `__all__`: every public name exported above, sorted (the reference's order).
        // Set last, and with setattr: `add` appends to `__all__`.
        let mut all: Vec<String> = m
            .dict()
            .keys()
            .iter()
            .map(|k| k.extract::<String>())
            .collect::<PyResult<_>>()?;
        all.retain(|name| !name.starts_with('_'));
        all.sort_unstable();
        m.setattr("__all__", PyList::new(m.py(), all)?)
    }
}
