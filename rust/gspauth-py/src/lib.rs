//! `gspauth._native`: PyO3 glue over `gspauth-core`. Same functions, positional-only
//! signatures, results, exception classes and messages as `gspauth/crypto/_python.py`.
//!
//! Arguments arrive as plain objects and are type-checked here, in the reference's
//! order, so that a TypeError and a crypto error come out in the same order as there.

use std::panic::{catch_unwind, AssertUnwindSafe};

use gspauth_core as core;
use gspauth_core::{
    ChunkBuf, ErrorKind, Key, Parallelism, Reason, RequestSealer, ResponseOpener, ResponseParts,
    Scratch,
};
use pyo3::exceptions::{PyRuntimeError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyList, PyString, PyTuple};

pyo3::import_exception!(gspauth.errors, InvalidKey);
pyo3::import_exception!(gspauth.errors, InvalidInput);
pyo3::import_exception!(gspauth.errors, InvalidBase64);
pyo3::import_exception!(gspauth.errors, DecryptionError);
pyo3::import_exception!(gspauth.errors, IntegrityError);

/// Inputs at least this large are processed with the GIL released in single calls.
const DETACH_MIN_BYTES: usize = 64 * 1024;

// --- errors -------------------------------------------------------------------------

fn crypto_err(err: &core::Error, message: Py<PyAny>, field: Py<PyAny>) -> PyErr {
    let args = (message, field, err.index());
    match err.kind() {
        ErrorKind::InvalidKey => InvalidKey::new_err(args),
        ErrorKind::InvalidInput => InvalidInput::new_err(args),
        ErrorKind::InvalidBase64 => InvalidBase64::new_err(args),
        ErrorKind::Decryption => DecryptionError::new_err(args),
        ErrorKind::Integrity => IntegrityError::new_err(args),
    }
}

fn to_py(py: Python<'_>, err: core::Error) -> PyErr {
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
fn guarded<T>(f: impl FnOnce() -> T) -> PyResult<T> {
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

/// Core work on `size` input bytes: with the GIL released when large.
fn run<T: Send>(py: Python<'_>, size: usize, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    if size >= DETACH_MIN_BYTES {
        py.detach(|| guarded(f))
    } else {
        guarded(f)
    }
}

/// Run a batch through the core's pipeline with the GIL released. Released
/// over owned data only (`PyBackedBytes` / `PyBackedStr` borrowed from
/// immutable `bytes`/`str`); `deliver` gets each finished chunk, in order, with
/// the GIL taken back.
fn pipeline<T: Sync>(
    py: Python<'_>,
    items: &[T],
    par: Parallelism,
    size: impl Fn(&T) -> usize + Send,
    work: impl Fn(&[T], Parallelism, &mut ChunkBuf) -> core::Result<()> + Sync + Send,
    mut deliver: impl FnMut(Python<'_>, &[T], &ChunkBuf) -> PyResult<()> + Send,
) -> PyResult<()> {
    let run = || {
        core::run_chunks(items, par, size, work, |chunk, buf| -> Result<(), Fail> {
            Ok(Python::attach(|py| deliver(py, chunk, buf))?)
        })
    };
    py.detach(|| guarded(run))?.map_err(|f| f.into_py(py, None))
}

/// A `str` from Base64 output (always ASCII). CPython checks it while copying
/// (`PyUnicode_FromStringAndSize` copies ASCII in one pass), so it is not also
/// checked here; non-ASCII, never produced, would raise instead of being assumed.
fn ascii_str<'py>(py: Python<'py>, raw: &[u8]) -> PyResult<Bound<'py, PyString>> {
    PyString::from_bytes(py, raw)
}

fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

/// Why a record could not be processed: a crypto error, or a TypeError message.
enum Fail {
    Crypto(core::Error),
    Type(String),
    Py(PyErr),
}

impl From<core::Error> for Fail {
    fn from(e: core::Error) -> Self {
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
    fn into_py(self, py: Python<'_>, index: Option<usize>) -> PyErr {
        match (self, index) {
            (Fail::Crypto(e), Some(i)) => to_py(py, e.at(i)),
            (Fail::Crypto(e), None) => to_py(py, e),
            (Fail::Type(m), Some(i)) => PyTypeError::new_err(format!("record {i}: {m}")),
            (Fail::Type(m), None) => PyTypeError::new_err(m),
            (Fail::Py(e), _) => e,
        }
    }
}

// --- argument checks ---------------------------------------------------------------

fn bytes_of<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> Result<&'a [u8], Fail> {
    match obj.cast::<PyBytes>() {
        Ok(b) => Ok(b.as_bytes()),
        Err(_) => Err(Fail::Type(format!(
            "{name} must be bytes, not {}",
            type_name(obj)
        ))),
    }
}

fn key_of(obj: &Bound<'_, PyAny>, name: &'static str) -> Result<Key, Fail> {
    Ok(Key::from_slice_named(bytes_of(obj, name)?, name)?)
}

/// A wire field's text as UTF-8 bytes, borrowed from the Python `str`. A `str`
/// holding lone surrogates (not UTF-8) is encoded with `surrogatepass`: it is then
/// rejected as invalid Base64 after the size check, as in the reference.
enum Wire {
    Str(PyBackedStr),
    Bytes(PyBackedBytes),
}

impl AsRef<[u8]> for Wire {
    fn as_ref(&self) -> &[u8] {
        match self {
            Wire::Str(s) => s.as_bytes(),
            Wire::Bytes(b) => b,
        }
    }
}

/// `Ok(None)` when `obj` is not a `str` (the caller raises the TypeError in order).
fn wire_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Wire>> {
    let Ok(s) = obj.cast::<PyString>() else {
        return Ok(None);
    };
    match PyBackedStr::try_from(s.clone()) {
        Ok(text) => Ok(Some(Wire::Str(text))),
        Err(_) => {
            let raw = s
                .call_method1("encode", ("utf-8", "surrogatepass"))?
                .cast_into::<PyBytes>()?;
            Ok(Some(Wire::Bytes(PyBackedBytes::from(raw))))
        }
    }
}

fn wire_or_fail(obj: &Bound<'_, PyAny>, field: &str) -> Result<Wire, Fail> {
    wire_of(obj)?.ok_or_else(|| Fail::Type(format!("{field} must be str, not {}", type_name(obj))))
}

/// `threads`: 0 = automatic (a pool above `gspauth_core::AUTO_PARALLEL_MIN_BYTES`
/// of input, measured and documented there), 1 = calling thread, N = at most N.
/// Any int >= 0 as the reference accepts it: one beyond `i64` means "as many as possible".
fn threads_of(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    let negative = || PyValueError::new_err("threads must be >= 0 (0 = automatic)");
    match obj.extract::<i64>() {
        Ok(n) => usize::try_from(n).map_err(|_| negative()),
        Err(e) if e.is_instance_of::<pyo3::exceptions::PyOverflowError>(obj.py()) => {
            if obj.lt(0)? {
                Err(negative())
            } else {
                Ok(usize::MAX)
            }
        }
        Err(e) => Err(e),
    }
}

fn py_bytes(py: Python<'_>, v: &[u8]) -> Py<PyAny> {
    PyBytes::new(py, v).into_any().unbind()
}

fn py_str(py: Python<'_>, s: &str) -> Py<PyAny> {
    PyString::new(py, s).into_any().unbind()
}

// --- primitives ------------------------------------------------------------------------

/// AES-256-ECB with PKCS#7 padding. Empty plaintext gives one padding block.
#[pyfunction]
#[pyo3(signature = (key, plaintext, /))]
fn aes_encrypt(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    plaintext: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let pt = bytes_of(plaintext, "plaintext")?;
        let out = run(py, pt.len(), || core::aes_encrypt(&key, pt))??;
        Ok(py_bytes(py, &out))
    };
    go().map_err(|f| f.into_py(py, None))
}

/// Inverse of aes_encrypt; raises DecryptionError on bad padding.
#[pyfunction]
#[pyo3(signature = (key, ciphertext, /))]
fn aes_decrypt(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    ciphertext: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let ct = bytes_of(ciphertext, "ciphertext")?;
        let out = run(py, ct.len(), || core::aes_decrypt(&key, ct))??;
        Ok(py_bytes(py, &out))
    };
    go().map_err(|f| f.into_py(py, None))
}

/// HMAC-SHA256 (32 bytes). Any key length is valid, as in RFC 2104.
#[pyfunction]
#[pyo3(signature = (key, message, /))]
fn hmac_sha256(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    message: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let (Ok(k), Ok(m)) = (key.cast::<PyBytes>(), message.cast::<PyBytes>()) else {
        return Err(PyTypeError::new_err("key and message must be bytes"));
    };
    let (k, m) = (k.as_bytes(), m.as_bytes());
    let tag = run(py, m.len(), || core::hmac_sha256(k, m))?;
    Ok(py_bytes(py, &tag))
}

/// E(key, plaintext): Base64 of the AES ciphertext (OTP, refresh app_key...).
#[pyfunction]
#[pyo3(signature = (key, plaintext, /))]
fn encrypt_field(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    plaintext: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let pt = bytes_of(plaintext, "plaintext")?;
        let out = run(py, pt.len(), || core::encrypt_field(&key, pt))??;
        Ok(py_str(py, &out))
    };
    go().map_err(|f| f.into_py(py, None))
}

/// Shared body of decrypt_field / decrypt_key. `field` may be any object: the
/// reference formats it with `f"{field}"` and stores it as the exception's `field`.
fn field_call(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    text: &Bound<'_, PyAny>,
    field: &Bound<'_, PyAny>,
    tolerant: &Bound<'_, PyAny>,
    want_key: bool,
) -> PyResult<Py<PyAny>> {
    let key = key_of(key, "key").map_err(|f| f.into_py(py, None))?;
    // The field's text for messages; a str that is not UTF-8 is spliced in Python.
    let field_str = field.str()?;
    let plain_name = field_str.to_str().ok().map(str::to_owned);
    let name = plain_name.as_deref().unwrap_or("\u{0}");
    let Some(wire) = wire_of(text)? else {
        // spliced in Python: `field` may hold lone surrogates
        let message = field_str.add(format!(" must be str, not {}", type_name(text)))?;
        return Err(PyTypeError::new_err(message.unbind()));
    };
    let tolerant = tolerant.is_truthy()?;
    let t = wire.as_ref();
    let result = run(py, t.len(), || {
        if want_key {
            core::decrypt_key(&key, t, name, tolerant).map(|k| k.as_bytes().to_vec())
        } else {
            core::decrypt_field(&key, t, name, tolerant)
        }
    })?;
    match result {
        Ok(out) => Ok(py_bytes(py, &out)),
        Err(err) => {
            let msg = err.to_string();
            let message = match (&plain_name, msg.strip_prefix(name)) {
                (None, Some(rest)) => field_str.add(rest)?.unbind(),
                _ => PyString::new(py, &msg).into_any().unbind(),
            };
            Err(crypto_err(&err, message, field.clone().unbind()))
        }
    }
}

/// D(key, text). `field` names the wire field in error messages.
#[pyfunction]
#[pyo3(signature = (key, text, field, tolerant, /))]
fn decrypt_field(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    text: &Bound<'_, PyAny>,
    field: &Bound<'_, PyAny>,
    tolerant: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    field_call(py, key, text, field, tolerant, false)
}

/// D(key, text) that must yield a 32-byte key (sek, rek, refresh app_key).
#[pyfunction]
#[pyo3(signature = (key, text, field, tolerant, /))]
fn decrypt_key(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    text: &Bound<'_, PyAny>,
    field: &Bound<'_, PyAny>,
    tolerant: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    field_call(py, key, text, field, tolerant, true)
}

// --- request envelope ---------------------------------------------------------------------

fn pair(py: Python<'_>, env: &core::RequestEnvelope) -> PyResult<Py<PyAny>> {
    Ok(
        PyTuple::new(py, [py_str(py, &env.data), py_str(py, &env.hmac)])?
            .into_any()
            .unbind(),
    )
}

/// JSON bytes -> (data, hmac) under the session key EK (spec §4).
#[pyfunction]
#[pyo3(signature = (key, payload, /))]
fn encrypt_request(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    payload: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let p = bytes_of(payload, "payload")?;
        let env = run(py, p.len(), || core::encrypt_request(&key, p))??;
        Ok(pair(py, &env)?)
    };
    go().map_err(|f| f.into_py(py, None))
}

/// Batch form of encrypt_request. threads: 0 = auto, 1 = this thread, N = at most N.
#[pyfunction]
#[pyo3(signature = (key, payloads, threads, /))]
fn encrypt_request_many(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    payloads: &Bound<'_, PyAny>,
    threads: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let key = key_of(key, "key").map_err(|f| f.into_py(py, None))?;
    let par = Parallelism::new(threads_of(threads)?);
    // Borrow every payload (no copies); stop at the first non-bytes item: records
    // after it are never reached by the reference either.
    let mut held: Vec<PyBackedBytes> = Vec::with_capacity(payloads.len().unwrap_or(0));
    let mut stop: Option<PyErr> = None;
    for (i, item) in payloads.try_iter()?.enumerate() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                stop = Some(e);
                break;
            }
        };
        match item.cast_into::<PyBytes>() {
            Ok(b) => held.push(PyBackedBytes::from(b)),
            Err(e) => {
                let name = type_name(e.into_inner().as_any());
                stop = Some(PyTypeError::new_err(format!(
                    "record {i}: payload must be bytes, not {name}"
                )));
                break;
            }
        }
    }
    // Only payload sizes can fail, so the lowest failing record is known before any work.
    for (i, p) in held.iter().enumerate() {
        RequestSealer::check(p).map_err(|e| to_py(py, e.at(i)))?;
    }
    if let Some(e) = stop {
        return Err(e);
    }
    let sealer = RequestSealer::new(&key);
    let list: Py<PyList> = PyList::empty(py).unbind();
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
    Ok(list.into_any())
}

/// EVC filing (spec §3.6): (data, sign), sign = B64(HMAC(sid, j64)).
#[pyfunction]
#[pyo3(signature = (key, sid, payload, /))]
fn encrypt_request_evc(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    sid: &Bound<'_, PyAny>,
    payload: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let sid = bytes_of(sid, "sid")?;
        if sid.is_empty() {
            return Err(core::Error::new(Reason::Empty, "sid").into());
        }
        let p = bytes_of(payload, "payload")?;
        let env = run(py, p.len(), || core::encrypt_request_evc(&key, sid, p))??;
        Ok(pair(py, &env)?)
    };
    go().map_err(|f| f.into_py(py, None))
}

// --- response envelope ----------------------------------------------------------------------

/// One well-typed response record, borrowed from Python objects.
struct Record {
    data: Wire,
    rek: Wire,
    hmac: Option<Wire>,
}

impl ResponseParts for Record {
    fn data(&self) -> &[u8] {
        self.data.as_ref()
    }
    fn rek(&self) -> &[u8] {
        self.rek.as_ref()
    }
    fn hmac(&self) -> Option<&[u8]> {
        self.hmac.as_ref().map(AsRef::as_ref)
    }
}

/// The fields of a record as objects, in the reference's processing order.
struct Loose<'py> {
    data: Bound<'py, PyAny>,
    rek: Bound<'py, PyAny>,
    hmac: Bound<'py, PyAny>,
}

impl<'py> Loose<'py> {
    /// All three typed as the reference wants them, or `None`.
    fn typed(&self) -> PyResult<Option<Record>> {
        let (Some(rek), Some(data)) = (wire_of(&self.rek)?, wire_of(&self.data)?) else {
            return Ok(None);
        };
        let hmac = if self.hmac.is_none() {
            None
        } else {
            match wire_of(&self.hmac)? {
                Some(w) => Some(w),
                None => return Ok(None),
            }
        };
        Ok(Some(Record { data, rek, hmac }))
    }

    /// The reference's step order (rek, data, hmac, inner Base64) with each
    /// field's type checked just before its step; used when a field has a wrong type.
    fn staged(&self, opener: &ResponseOpener, tolerant: bool) -> Result<Vec<u8>, Fail> {
        let mut s = Scratch::new();
        let rek = wire_or_fail(&self.rek, "rek")?;
        let rk = guarded(|| opener.open_rek(rek.as_ref(), tolerant, &mut s))??;
        let data = wire_or_fail(&self.data, "data")?;
        guarded(|| rk.open_data(data.as_ref(), tolerant, &mut s))??;
        if !self.hmac.is_none() {
            let mac = wire_or_fail(&self.hmac, "hmac")?;
            guarded(|| rk.verify(mac.as_ref(), tolerant, &mut s))??;
        }
        Ok(guarded(|| core::RecordKey::finish(&s))??)
    }
}

/// data + rek (+ hmac) -> JSON bytes, verifying the HMAC when present.
#[pyfunction]
#[pyo3(signature = (key, data, rek, hmac, tolerant, /))]
fn decrypt_response(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    rek: &Bound<'_, PyAny>,
    hmac: &Bound<'_, PyAny>,
    tolerant: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let tolerant = tolerant.is_truthy()?;
        let opener = ResponseOpener::new(&key);
        let loose = Loose {
            data: data.clone(),
            rek: rek.clone(),
            hmac: hmac.clone(),
        };
        let out = match loose.typed()? {
            Some(r) => run(py, r.data().len(), || {
                opener.open(r.data(), r.rek(), r.hmac(), tolerant, &mut Scratch::new())
            })??,
            None => loose.staged(&opener, tolerant)?,
        };
        Ok(py_bytes(py, &out))
    };
    go().map_err(|f| f.into_py(py, None))
}

/// Where a response batch stopped collecting records.
enum Stop<'py> {
    /// Iterating over the items raised (propagates unchanged, as in the reference).
    Iter(PyErr),
    /// Item `i` could not be unpacked into three fields.
    Bad(usize, Fail),
    /// Item `i` has a field of the wrong type.
    Loose(usize, Loose<'py>),
}

/// Unpack one batch item like `data, rek, mac = item`.
fn unpack<'py>(item: &Bound<'py, PyAny>) -> Result<Loose<'py>, Fail> {
    if let Ok(t) = item.cast::<PyTuple>() {
        if t.len() == 3 {
            return Ok(Loose {
                data: t.get_item(0)?,
                rek: t.get_item(1)?,
                hmac: t.get_item(2)?,
            });
        }
        return Err(Fail::Type("expected a (data, rek, hmac) tuple".to_owned()));
    }
    let py = item.py();
    // what the reference's `except` clauses around the unpacking make of an error
    let caught = |e: PyErr| -> Fail {
        if e.is_instance_of::<PyValueError>(py) {
            Fail::Type("expected a (data, rek, hmac) tuple".to_owned())
        } else if e.is_instance_of::<PyTypeError>(py) {
            // the message alone, as `f"{exc}"` gives it (PyErr's Display adds the class)
            Fail::Type(e.value(py).to_string())
        } else {
            Fail::Py(e)
        }
    };
    let iter = match item.try_iter() {
        Ok(iter) => iter,
        Err(e) => {
            let name = type_name(item);
            let not_iterable = e.is_instance_of::<PyTypeError>(py)
                && e.value(py).to_string() == format!("'{name}' object is not iterable");
            return Err(if not_iterable {
                Fail::Type(format!("cannot unpack non-iterable {name} object"))
            } else {
                caught(e) // raised by the item's own __iter__
            });
        }
    };
    let mut parts = Vec::with_capacity(3);
    for part in iter {
        match part {
            Ok(p) => parts.push(p),
            Err(e) => return Err(caught(e)),
        }
        if parts.len() > 3 {
            break;
        }
    }
    match <[Bound<'py, PyAny>; 3]>::try_from(parts) {
        Ok([data, rek, hmac]) => Ok(Loose { data, rek, hmac }),
        Err(_) => Err(Fail::Type("expected a (data, rek, hmac) tuple".to_owned())),
    }
}

/// Batch form of decrypt_response; each item is (data, rek, hmac_or_None).
#[pyfunction]
#[pyo3(signature = (key, items, tolerant, threads, /))]
fn decrypt_response_many(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    items: &Bound<'_, PyAny>,
    tolerant: &Bound<'_, PyAny>,
    threads: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let key = key_of(key, "key").map_err(|f| f.into_py(py, None))?;
    let par = Parallelism::new(threads_of(threads)?);
    let tolerant = tolerant.is_truthy()?;
    let mut held: Vec<Record> = Vec::with_capacity(items.len().unwrap_or(0));
    // The first item that is not a well-typed record stops the collection: it is
    // handled on its own, in the reference's step order, after the records before it.
    let mut stop: Option<Stop<'_>> = None;
    for (i, item) in items.try_iter()?.enumerate() {
        let item = match item {
            Ok(item) => item,
            Err(e) => {
                stop = Some(Stop::Iter(e));
                break;
            }
        };
        match unpack(&item) {
            Ok(loose) => match loose.typed()? {
                Some(r) => held.push(r),
                None => {
                    stop = Some(Stop::Loose(i, loose));
                    break;
                }
            },
            Err(f) => {
                stop = Some(Stop::Bad(i, f));
                break;
            }
        }
    }
    let opener = ResponseOpener::new(&key);
    let list: Py<PyList> = PyList::empty(py).unbind();
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
        None => Ok(list.into_any()),
        Some(Stop::Iter(e)) => Err(e),
        Some(Stop::Bad(i, f)) => Err(f.into_py(py, Some(i))),
        Some(Stop::Loose(i, loose)) => {
            let err = match loose.staged(&opener, tolerant) {
                Err(f) => f,
                // not reached: a loose record always has a mistyped field
                Ok(_) => Fail::Type("expected a (data, rek, hmac) tuple".to_owned()),
            };
            Err(err.into_py(py, Some(i)))
        }
    }
}

// --- server side ----------------------------------------------------------------------------

/// Server side of encrypt_request: data (+ hmac) -> JSON bytes.
#[pyfunction]
#[pyo3(signature = (key, data, hmac, tolerant, /))]
fn decrypt_request(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    data: &Bound<'_, PyAny>,
    hmac: &Bound<'_, PyAny>,
    tolerant: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let tolerant = tolerant.is_truthy()?;
        let data = wire_or_fail(data, "data")?;
        let d = data.as_ref();
        let mac = if hmac.is_none() { None } else { wire_of(hmac)? };
        let out = if hmac.is_none() || mac.is_some() {
            let m = mac.as_ref().map(AsRef::as_ref);
            run(py, d.len(), || core::decrypt_request(&key, d, m, tolerant))??
        } else {
            // hmac has a wrong type: data is processed first, as in the reference
            run(py, d.len(), || {
                core::decrypt_field(&key, d, "data", tolerant)
            })??;
            return Err(Fail::Type(format!(
                "hmac must be str, not {}",
                type_name(hmac)
            )));
        };
        Ok(py_bytes(py, &out))
    };
    go().map_err(|f| f.into_py(py, None))
}

/// Server side of decrypt_response: -> (data, rek, hmac) wire fields.
#[pyfunction]
#[pyo3(signature = (key, rek, payload, /))]
fn encrypt_response(
    py: Python<'_>,
    key: &Bound<'_, PyAny>,
    rek: &Bound<'_, PyAny>,
    payload: &Bound<'_, PyAny>,
) -> PyResult<Py<PyAny>> {
    let go = || -> Result<Py<PyAny>, Fail> {
        let key = key_of(key, "key")?;
        let rek = key_of(rek, "rek")?;
        let p = bytes_of(payload, "payload")?;
        let env = run(py, p.len(), || core::encrypt_response(&key, &rek, p))??;
        let t = PyTuple::new(
            py,
            [
                py_str(py, &env.data),
                py_str(py, &env.rek),
                py_str(py, &env.hmac),
            ],
        )?;
        Ok(t.into_any().unbind())
    };
    go().map_err(|f| f.into_py(py, None))
}

#[pymodule]
fn _native(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add("__version__", env!("CARGO_PKG_VERSION"))?;
    m.add("MAX_PAYLOAD_BYTES", core::MAX_PAYLOAD_BYTES)?;
    m.add("MAX_WIRE_CHARS", core::MAX_WIRE_CHARS)?;
    m.add_function(wrap_pyfunction!(aes_decrypt, m)?)?;
    m.add_function(wrap_pyfunction!(aes_encrypt, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_field, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_key, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_request, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_response, m)?)?;
    m.add_function(wrap_pyfunction!(decrypt_response_many, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_field, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_request, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_request_evc, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_request_many, m)?)?;
    m.add_function(wrap_pyfunction!(encrypt_response, m)?)?;
    m.add_function(wrap_pyfunction!(hmac_sha256, m)?)?;
    // The public names of the reference backend, in its order (not __version__).
    let all = [
        "MAX_PAYLOAD_BYTES",
        "MAX_WIRE_CHARS",
        "aes_decrypt",
        "aes_encrypt",
        "decrypt_field",
        "decrypt_key",
        "decrypt_request",
        "decrypt_response",
        "decrypt_response_many",
        "encrypt_field",
        "encrypt_request",
        "encrypt_request_evc",
        "encrypt_request_many",
        "encrypt_response",
        "hmac_sha256",
    ];
    m.setattr("__all__", PyList::new(m.py(), all)?)?;
    Ok(())
}
