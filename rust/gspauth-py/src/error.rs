//! Core errors and panics as the exceptions the Python reference raises.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gspauth_core::{Error, ErrorKind};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::types::PyString;

use crate::exceptions::{DecryptionError, IntegrityError, InvalidBase64, InvalidInput, InvalidKey};

/// The exception class of `err`, raised with the reference's `(message, field, index)`.
pub(crate) fn crypto_err(err: &Error, message: Py<PyAny>, field: Py<PyAny>) -> PyErr {
    let args = (message, field, err.index());
    match err.kind() {
        ErrorKind::InvalidKey => InvalidKey::new_err(args),
        ErrorKind::InvalidInput => InvalidInput::new_err(args),
        ErrorKind::InvalidBase64 => InvalidBase64::new_err(args),
        ErrorKind::Decryption => DecryptionError::new_err(args),
        ErrorKind::Integrity => IntegrityError::new_err(args),
    }
}

pub(crate) fn to_py(py: Python<'_>, err: Error) -> PyErr {
    let message = err
        .to_string()
        .into_pyobject(py)
        .map(|s| s.into_any().unbind());
    let field = PyString::new(py, err.field()).into_any().unbind();
    match message {
        Ok(m) => crypto_err(&err, m, field),
        Err(e) => e.into(),
    }
}

/// Run core code, turning a panic (a bug; none is expected) into a RuntimeError
/// instead of letting it cross into Python.
pub(crate) fn guarded<T>(f: impl FnOnce() -> T) -> PyResult<T> {
    catch_unwind(AssertUnwindSafe(f)).map_err(|payload| {
        let what = payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_owned())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "unknown panic".to_owned());
        PyRuntimeError::new_err(format!(
            "gspauth._native internal error (please report): {what}"
        ))
    })
}

/// Why a call or a record failed: a crypto error, a TypeError message, or a
/// Python error raised on the way (propagated unchanged).
pub(crate) enum Fail {
    Crypto(Error),
    Type(String),
    Py(PyErr),
}

impl From<Error> for Fail {
    fn from(e: Error) -> Self {
        Fail::Crypto(e)
    }
}

impl From<PyErr> for Fail {
    fn from(e: PyErr) -> Self {
        Fail::Py(e)
    }
}

impl Fail {
    /// As raised by a single call (`index == None`) or by record `index` of a batch
    /// (`_in_batch` of the reference: `record {i}: ` prefix, `index` set).
    pub(crate) fn into_py(self, py: Python<'_>, index: Option<usize>) -> PyErr {
        match (self, index) {
            (Fail::Crypto(e), Some(i)) => to_py(py, e.at(i)),
            (Fail::Crypto(e), None) => to_py(py, e),
            (Fail::Type(m), Some(i)) => PyTypeError::new_err(format!("record {i}: {m}")),
            (Fail::Type(m), None) => PyTypeError::new_err(m),
            (Fail::Py(e), _) => e,
        }
    }
}
