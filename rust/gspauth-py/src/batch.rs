//! Batch functions over the core's chunk pipeline (`gspauth_core::run_chunks`):
//! the core computes chunks on its pool without the GIL; each finished chunk
//! comes back here, in order, to become Python objects with the GIL held.

use gspauth_core as core;
use gspauth_core::{
    CallerLock, ChunkBuf, Parallelism, RequestSealer, ResponseOpener, ResponseParts,
};
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

use crate::args::{key_of, payloads_of, records_of, threads_of};
use crate::error::{guarded, to_py, Fail};

/// The GIL as the lock the core's pipeline releases while it computes.
struct Gil<'py>(Python<'py>);

impl CallerLock for Gil<'_> {
    fn released<R: Send>(&self, f: impl FnOnce() -> R + Send) -> R {
        self.0.detach(f)
    }
    fn retaken<R>(f: impl FnOnce() -> R) -> R {
        Python::attach(|_| f())
    }
}

/// Run a batch through the core's pipeline: the GIL is released while chunks
/// are computed, over owned data only (`PyBackedBytes` / `PyBackedStr` of
/// immutable `bytes`/`str`), and held while `deliver` turns each finished
/// chunk, in order, into Python objects.
fn pipeline<T: Sync>(
    py: Python<'_>,
    items: &[T],
    par: Parallelism,
    size: impl Fn(&T) -> usize,
    work: impl Fn(&[T], Parallelism, &mut ChunkBuf) -> core::Result<()> + Sync,
    mut deliver: impl FnMut(Python<'_>, &[T], &ChunkBuf) -> PyResult<()> + Send,
) -> PyResult<()> {
    let deliver = |chunk: &[T], buf: &ChunkBuf| -> Result<(), Fail> {
        // the GIL is held here: `attach` only hands out the token
        Ok(Python::attach(|py| deliver(py, chunk, buf))?)
    };
    guarded(|| core::run_chunks(items, par, size, &Gil(py), work, deliver))?
        .map_err(|f| f.into_py(py, None))
}

/// A `str` from Base64 output (always ASCII). CPython checks it while copying
/// (`PyUnicode_FromStringAndSize` copies ASCII in one pass), so it is not also
/// checked here; non-ASCII, never produced, would raise instead of being assumed.
fn ascii_str<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyString>> {
    PyString::from_bytes(py, raw)
}

/// Batch form of encrypt_request. threads: 0 = auto, 1 = this thread, N = at most N.
#[pyfunction]
#[pyo3(signature = (key, payloads, threads, /))]
pub(crate) fn encrypt_request_many<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    payloads: &Bound<'py, PyAny>,
    threads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let key = key_of(key, "key").map_err(|f| f.into_py(py, None))?;
    let par = Parallelism::new(threads_of(threads)?);
    let (held, stop) = payloads_of(payloads)?;
    // Only payload sizes can fail, so the lowest failing record is known before any work.
    for (i, p) in held.iter().enumerate() {
        RequestSealer::check(p).map_err(|e| to_py(py, e.at(i)))?;
    }
    if let Some(e) = stop {
        return Err(e);
    }
    let sealer = RequestSealer::new(&key);
    let list = PyList::empty(py).unbind();
    pipeline(
        py,
        &held,
        par,
        |p| p.len(),
        |chunk, par, buf| buf.seal(&sealer, chunk, par),
        |py, chunk, buf| {
            let list = list.bind(py);
            for (data, mac) in buf.sealed(chunk) {
                list.append(PyTuple::new(
                    py,
                    [ascii_str(py, data)?, ascii_str(py, mac)?],
                )?)?;
            }
            Ok(())
        },
    )?;
    Ok(list.into_bound(py))
}

/// Batch form of decrypt_response; each item is (data, rek, hmac_or_None).
#[pyfunction]
#[pyo3(signature = (key, items, tolerant, threads, /))]
pub(crate) fn decrypt_response_many<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    items: &Bound<'py, PyAny>,
    tolerant: &Bound<'py, PyAny>,
    threads: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyList>> {
    let key = key_of(key, "key").map_err(|f| f.into_py(py, None))?;
    let par = Parallelism::new(threads_of(threads)?);
    let tolerant = tolerant.is_truthy()?;
    let (held, stop) = records_of(items)?;
    let opener = ResponseOpener::new(&key);
    let list = PyList::empty(py).unbind();
    pipeline(
        py,
        &held,
        par,
        |r| r.data().len(),
        |chunk, par, buf| buf.open(&opener, chunk, tolerant, par),
        |py, chunk, buf| {
            let list = list.bind(py);
            for json in buf.opened(chunk) {
                list.append(PyBytes::new(py, json))?;
            }
            Ok(())
        },
    )?;
    match stop {
        None => Ok(list.into_bound(py)),
        Some(stop) => Err(stop.into_py(py, &opener, tolerant)),
    }
}
