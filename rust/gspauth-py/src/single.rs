//! One-shot functions: one record per call.

use gspauth_core as core;
use gspauth_core::{
    Reason, RequestEnvelope, ResponseEnvelope, ResponseOpener, ResponseParts, Scratch,
};
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::args::{bytes_of, key_of, type_name, wire_of, wire_or_fail, Loose};
use crate::error::{crypto_err, guarded, Fail};

/// Inputs at least this large are processed with the GIL released (smaller ones
/// finish sooner than a release and re-acquire would take).
const DETACH_MIN_BYTES: usize = 64 * 1024;

/// `f` over `size` input bytes: without the GIL when large; a panic becomes a RuntimeError.
fn detached<T: Send>(py: Python<'_>, size: usize, f: impl FnOnce() -> T + Send) -> PyResult<T> {
    if size >= DETACH_MIN_BYTES {
        py.detach(|| guarded(f))
    } else {
        guarded(f)
    }
}

/// Handed to the body of a one-shot function to run the core.
#[derive(Clone, Copy)]
struct Run<'py>(Python<'py>);

impl Run<'_> {
    /// Core work `f` over `size` input bytes (see [`detached`]).
    fn core<T: Send>(
        self,
        size: usize,
        f: impl FnOnce() -> core::Result<T> + Send,
    ) -> Result<T, Fail> {
        Ok(detached(self.0, size, f)??)
    }
}

/// The shape of every one-shot function: `body` checks the arguments in the
/// reference's order and runs the core through [`Run::core`]; `out` turns the
/// result into Python objects. A failure is raised as the reference raises it.
fn one_shot<'py, O, R>(
    py: Python<'py>,
    out: impl FnOnce(Python<'py>, O) -> PyResult<Bound<'py, R>>,
    body: impl FnOnce(Run<'py>) -> Result<O, Fail>,
) -> PyResult<Bound<'py, R>> {
    match body(Run(py)) {
        Ok(o) => out(py, o),
        Err(f) => Err(f.into_py(py, None)),
    }
}

fn bytes<'py>(py: Python<'py>, v: impl AsRef<[u8]>) -> PyResult<Bound<'py, PyBytes>> {
    Ok(PyBytes::new(py, v.as_ref()))
}

fn text(py: Python<'_>, s: String) -> PyResult<Bound<'_, PyString>> {
    Ok(PyString::new(py, &s))
}

fn pair(py: Python<'_>, env: RequestEnvelope) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(py, [&env.data, &env.hmac].map(|s| PyString::new(py, s)))
}

fn triple(py: Python<'_>, env: ResponseEnvelope) -> PyResult<Bound<'_, PyTuple>> {
    PyTuple::new(
        py,
        [&env.data, &env.rek, &env.hmac].map(|s| PyString::new(py, s)),
    )
}

/// AES-256-ECB with PKCS#7 padding. Empty plaintext gives one padding block.
#[pyfunction]
#[pyo3(signature = (key, plaintext, /))]
pub(crate) fn aes_encrypt<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    plaintext: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    one_shot(py, bytes, |run| {
        let key = key_of(key, "key")?;
        let pt = bytes_of(plaintext, "plaintext")?;
        run.core(pt.len(), || core::aes_encrypt(&key, pt))
    })
}

/// Inverse of aes_encrypt; raises DecryptionError on bad padding.
#[pyfunction]
#[pyo3(signature = (key, ciphertext, /))]
pub(crate) fn aes_decrypt<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    ciphertext: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    one_shot(py, bytes, |run| {
        let key = key_of(key, "key")?;
        let ct = bytes_of(ciphertext, "ciphertext")?;
        run.core(ct.len(), || core::aes_decrypt(&key, ct))
    })
}

/// HMAC-SHA256 (32 bytes). Any key length is valid, as in RFC 2104.
#[pyfunction]
#[pyo3(signature = (key, message, /))]
pub(crate) fn hmac_sha256<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    message: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    one_shot(py, bytes, |run| {
        let (Ok(k), Ok(m)) = (key.cast::<PyBytes>(), message.cast::<PyBytes>()) else {
            return Err(Fail::Type("key and message must be bytes".to_owned()));
        };
        let (k, m) = (k.as_bytes(), m.as_bytes());
        run.core(m.len(), || Ok(core::hmac_sha256(k, m)))
    })
}

/// E(key, plaintext): Base64 of the AES ciphertext (OTP, refresh app_key...).
#[pyfunction]
#[pyo3(signature = (key, plaintext, /))]
pub(crate) fn encrypt_field<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    plaintext: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyString>> {
    one_shot(py, text, |run| {
        let key = key_of(key, "key")?;
        let pt = bytes_of(plaintext, "plaintext")?;
        run.core(pt.len(), || core::encrypt_field(&key, pt))
    })
}

/// D(key, text). `field` names the wire field in error messages.
#[pyfunction]
#[pyo3(signature = (key, text, field, tolerant, /))]
pub(crate) fn decrypt_field<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    text: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    tolerant: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    field_call(py, key, text, field, tolerant, false)
}

/// D(key, text) that must yield a 32-byte key (sek, rek, refresh app_key).
#[pyfunction]
#[pyo3(signature = (key, text, field, tolerant, /))]
pub(crate) fn decrypt_key<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    text: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    tolerant: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    field_call(py, key, text, field, tolerant, true)
}

/// Shared body of decrypt_field / decrypt_key. `field` may be any object: the
/// reference formats it with `f"{field}"` and stores it as the exception's `field`.
fn field_call<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    text: &Bound<'py, PyAny>,
    field: &Bound<'py, PyAny>,
    tolerant: &Bound<'py, PyAny>,
    want_key: bool,
) -> PyResult<Bound<'py, PyBytes>> {
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
    let result = detached(py, t.len(), || {
        if want_key {
            core::decrypt_key(&key, t, name, tolerant).map(|k| k.as_bytes().to_vec())
        } else {
            core::decrypt_field(&key, t, name, tolerant)
        }
    })?;
    match result {
        Ok(out) => bytes(py, out),
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

/// JSON bytes -> (data, hmac) under the session key EK (spec §4).
#[pyfunction]
#[pyo3(signature = (key, payload, /))]
pub(crate) fn encrypt_request<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    payload: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    one_shot(py, pair, |run| {
        let key = key_of(key, "key")?;
        let p = bytes_of(payload, "payload")?;
        run.core(p.len(), || core::encrypt_request(&key, p))
    })
}

/// EVC filing (spec §3.6): (data, sign), sign = B64(HMAC(sid, j64)).
#[pyfunction]
#[pyo3(signature = (key, sid, payload, /))]
pub(crate) fn encrypt_request_evc<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    sid: &Bound<'py, PyAny>,
    payload: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    one_shot(py, pair, |run| {
        let key = key_of(key, "key")?;
        let sid = bytes_of(sid, "sid")?;
        if sid.is_empty() {
            return Err(core::Error::new(Reason::Empty, "sid").into());
        }
        let p = bytes_of(payload, "payload")?;
        run.core(p.len(), || core::encrypt_request_evc(&key, sid, p))
    })
}

/// data + rek (+ hmac) -> JSON bytes, verifying the HMAC when present.
#[pyfunction]
#[pyo3(signature = (key, data, rek, hmac, tolerant, /))]
pub(crate) fn decrypt_response<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    rek: &Bound<'py, PyAny>,
    hmac: &Bound<'py, PyAny>,
    tolerant: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    one_shot(py, bytes, |run| {
        let key = key_of(key, "key")?;
        let tolerant = tolerant.is_truthy()?;
        let opener = ResponseOpener::new(&key);
        let loose = Loose {
            data: data.clone(),
            rek: rek.clone(),
            hmac: hmac.clone(),
        };
        match loose.typed()? {
            Some(r) => run.core(r.data().len(), || {
                opener.open(r.data(), r.rek(), r.hmac(), tolerant, &mut Scratch::new())
            }),
            None => loose.staged(&opener, tolerant),
        }
    })
}

/// Server side of encrypt_request: data (+ hmac) -> JSON bytes.
#[pyfunction]
#[pyo3(signature = (key, data, hmac, tolerant, /))]
pub(crate) fn decrypt_request<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    data: &Bound<'py, PyAny>,
    hmac: &Bound<'py, PyAny>,
    tolerant: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyBytes>> {
    one_shot(py, bytes, |run| {
        let key = key_of(key, "key")?;
        let tolerant = tolerant.is_truthy()?;
        let data = wire_or_fail(data, "data")?;
        let d = data.as_ref();
        let mac = if hmac.is_none() { None } else { wire_of(hmac)? };
        if hmac.is_none() || mac.is_some() {
            let m = mac.as_ref().map(AsRef::as_ref);
            return run.core(d.len(), || core::decrypt_request(&key, d, m, tolerant));
        }
        // hmac has a wrong type: data is processed first, as in the reference
        run.core(d.len(), || core::decrypt_field(&key, d, "data", tolerant))?;
        Err(Fail::Type(format!(
            "hmac must be str, not {}",
            type_name(hmac)
        )))
    })
}

/// Server side of decrypt_response: -> (data, rek, hmac) wire fields.
#[pyfunction]
#[pyo3(signature = (key, rek, payload, /))]
pub(crate) fn encrypt_response<'py>(
    py: Python<'py>,
    key: &Bound<'py, PyAny>,
    rek: &Bound<'py, PyAny>,
    payload: &Bound<'py, PyAny>,
) -> PyResult<Bound<'py, PyTuple>> {
    one_shot(py, triple, |run| {
        let key = key_of(key, "key")?;
        let rek = key_of(rek, "rek")?;
        let p = bytes_of(payload, "payload")?;
        run.core(p.len(), || core::encrypt_response(&key, &rek, p))
    })
}
