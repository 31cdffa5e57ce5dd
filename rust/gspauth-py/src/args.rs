//! Arguments arrive as plain objects and are typed here, in the reference's order,
//! so that a TypeError and a crypto error come out in the same order as there.
//! Byte arguments are borrowed from the Python objects, never copied.

use gspauth_core::{Key, RecordKey, ResponseOpener, ResponseParts, Scratch};
use pyo3::exceptions::{PyOverflowError, PyTypeError, PyValueError};
use pyo3::prelude::*;
use pyo3::pybacked::{PyBackedBytes, PyBackedStr};
use pyo3::types::{PyBytes, PyString, PyTuple};

use crate::error::{guarded, Fail};
use crate::exceptions::InvalidInput;

pub(crate) fn type_name(obj: &Bound<'_, PyAny>) -> String {
    obj.get_type()
        .name()
        .map(|n| n.to_string())
        .unwrap_or_else(|_| "object".to_owned())
}

pub(crate) fn bytes_of<'a>(obj: &'a Bound<'_, PyAny>, name: &str) -> Result<&'a [u8], Fail> {
    match obj.cast::<PyBytes>() {
        Ok(b) => Ok(b.as_bytes()),
        Err(_) => Err(Fail::Type(format!(
            "{name} must be bytes, not {}",
            type_name(obj)
        ))),
    }
}

pub(crate) fn key_of(obj: &Bound<'_, PyAny>, name: &'static str) -> Result<Key, Fail> {
    Ok(Key::from_slice_named(bytes_of(obj, name)?, name)?)
}

/// A wire field's text as UTF-8 bytes, borrowed from the Python `str`. A `str`
/// holding lone surrogates (not UTF-8) is encoded with `surrogatepass`: it is then
/// rejected as invalid Base64 after the size check, as in the reference.
pub(crate) enum Wire {
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
pub(crate) fn wire_of(obj: &Bound<'_, PyAny>) -> PyResult<Option<Wire>> {
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

pub(crate) fn wire_or_fail(obj: &Bound<'_, PyAny>, field: &str) -> Result<Wire, Fail> {
    wire_of(obj)?.ok_or_else(|| Fail::Type(format!("{field} must be str, not {}", type_name(obj))))
}

/// `threads`: 0 = automatic (a pool above `gspauth_core::AUTO_PARALLEL_MIN_BYTES`
/// of input, measured and documented there), 1 = calling thread, N = at most N.
/// Any int >= 0 as the reference accepts it: one beyond `i64` means "as many as possible".
pub(crate) fn threads_of(obj: &Bound<'_, PyAny>) -> PyResult<usize> {
    // InvalidInput (a ValueError) with field "threads", as the reference raises it.
    let negative = || InvalidInput::new_err(("threads must be >= 0 (0 = automatic)", "threads"));
    match obj.extract::<i64>() {
        Ok(n) => usize::try_from(n).map_err(|_| negative()),
        Err(e) if e.is_instance_of::<PyOverflowError>(obj.py()) => {
            if obj.lt(0)? {
                Err(negative())
            } else {
                Ok(usize::MAX)
            }
        }
        Err(e) => Err(e),
    }
}

/// The payloads of a request batch, borrowed, up to the first item that is not
/// `bytes` (records after it are never reached by the reference either); with
/// the error that item, or the iteration, raises.
pub(crate) fn payloads_of(
    payloads: &Bound<'_, PyAny>,
) -> PyResult<(Vec<PyBackedBytes>, Option<PyErr>)> {
    let mut held = Vec::with_capacity(payloads.len().unwrap_or(0));
    for (i, item) in payloads.try_iter()?.enumerate() {
        let item = match item {
            Ok(item) => item,
            Err(e) => return Ok((held, Some(e))),
        };
        match item.cast_into::<PyBytes>() {
            Ok(b) => held.push(PyBackedBytes::from(b)),
            Err(e) => {
                let name = type_name(e.into_inner().as_any());
                let err =
                    PyTypeError::new_err(format!("record {i}: payload must be bytes, not {name}"));
                return Ok((held, Some(err)));
            }
        }
    }
    Ok((held, None))
}

// --- response records ---------------------------------------------------------------

/// One well-typed response record, borrowed from Python objects.
pub(crate) struct Record {
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
pub(crate) struct Loose<'py> {
    pub(crate) data: Bound<'py, PyAny>,
    pub(crate) rek: Bound<'py, PyAny>,
    pub(crate) hmac: Bound<'py, PyAny>,
}

impl Loose<'_> {
    /// All three typed as the reference wants them, or `None`.
    pub(crate) fn typed(&self) -> PyResult<Option<Record>> {
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
    pub(crate) fn staged(&self, opener: &ResponseOpener, tolerant: bool) -> Result<Vec<u8>, Fail> {
        let mut s = Scratch::new();
        let rek = wire_or_fail(&self.rek, "rek")?;
        let rk = guarded(|| opener.open_rek(rek.as_ref(), tolerant, &mut s))??;
        let data = wire_or_fail(&self.data, "data")?;
        guarded(|| rk.open_data(data.as_ref(), tolerant, &mut s))??;
        if !self.hmac.is_none() {
            let mac = wire_or_fail(&self.hmac, "hmac")?;
            guarded(|| rk.verify(mac.as_ref(), tolerant, &mut s))??;
        }
        Ok(guarded(|| RecordKey::finish(&s))??)
    }
}

const NOT_A_TRIPLE: &str = "expected a (data, rek, hmac) tuple";

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
        return Err(Fail::Type(NOT_A_TRIPLE.to_owned()));
    }
    let py = item.py();
    // what the reference's `except` clauses around the unpacking make of an error
    let caught = |e: PyErr| -> Fail {
        if e.is_instance_of::<PyValueError>(py) {
            Fail::Type(NOT_A_TRIPLE.to_owned())
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
        Err(_) => Err(Fail::Type(NOT_A_TRIPLE.to_owned())),
    }
}

/// Where a response batch stopped collecting records.
pub(crate) enum Stop<'py> {
    /// Iterating over the items raised (propagates unchanged, as in the reference).
    Iter(PyErr),
    /// Item `i` could not be unpacked into three fields.
    Bad(usize, Fail),
    /// Item `i` has a field of the wrong type.
    Loose(usize, Loose<'py>),
}

impl Stop<'_> {
    /// The error the reference raises there; a mistyped record is run step by
    /// step (after the records before it) to find which error comes first.
    pub(crate) fn into_py(self, py: Python<'_>, opener: &ResponseOpener, tolerant: bool) -> PyErr {
        match self {
            Stop::Iter(e) => e,
            Stop::Bad(i, f) => f.into_py(py, Some(i)),
            Stop::Loose(i, loose) => {
                let err = match loose.staged(opener, tolerant) {
                    Err(f) => f,
                    // not reached: a loose record always has a mistyped field
                    Ok(_) => Fail::Type(NOT_A_TRIPLE.to_owned()),
                };
                err.into_py(py, Some(i))
            }
        }
    }
}

/// The records of a response batch, borrowed, up to the first item that is not
/// a well-typed record: that one is handled on its own, in the reference's step
/// order, after the records before it.
pub(crate) fn records_of<'py>(
    items: &Bound<'py, PyAny>,
) -> PyResult<(Vec<Record>, Option<Stop<'py>>)> {
    let mut held = Vec::with_capacity(items.len().unwrap_or(0));
    for (i, item) in items.try_iter()?.enumerate() {
        let item = match item {
            Ok(item) => item,
            Err(e) => return Ok((held, Some(Stop::Iter(e)))),
        };
        match unpack(&item) {
            Ok(loose) => match loose.typed()? {
                Some(r) => held.push(r),
                None => return Ok((held, Some(Stop::Loose(i, loose)))),
            },
            Err(f) => return Ok((held, Some(Stop::Bad(i, f)))),
        }
    }
    Ok((held, None))
}
