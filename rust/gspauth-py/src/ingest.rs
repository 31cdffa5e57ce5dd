//! The ingest classes (`IngestParser`, `IngestBatch`, `IngestChunker`, `IngestChunk`):
//! the same behaviour, signatures and exceptions as `gspauth/ingest/_python`.
//! Parsing, validation, grouping and sealing run in `gspauth_core::ingest`; a call
//! on a large input releases the GIL over data the call owns (a parser taken out
//! of its object, borrowed `bytes`, a body buffer no Python code can see yet).

use std::fmt::Write as _;
use std::sync::Mutex;

use gspauth_core::ingest::{Batch, Chunk, Chunker, ParamError, Parser, RecordError};
use gspauth_core::{RequestSealer, Scratch};
use pyo3::exceptions::{PyRuntimeError, PyTypeError};
use pyo3::prelude::*;
use pyo3::pybacked::PyBackedBytes;
use pyo3::sync::PyOnceLock;
use pyo3::types::{PyBytes, PyInt, PyList, PyString, PyTuple};

use crate::args::key_of;
use crate::error::{guarded, Fail};

pyo3::import_exception!(gspauth.errors, InvalidParameter);

/// Inputs at least this large are processed with the GIL released.
const DETACH_MIN_BYTES: usize = 64 * 1024;

fn param_err(message: String, field: &str) -> PyErr {
    InvalidParameter::new_err((message, field.to_owned()))
}

impl From<ParamErrorPy> for PyErr {
    fn from(e: ParamErrorPy) -> Self {
        param_err(e.0.message, e.0.field)
    }
}

struct ParamErrorPy(ParamError);

fn hex(bytes: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn text(bytes: &[u8]) -> &str {
    std::str::from_utf8(bytes).unwrap_or("")
}

fn error_tuple<'py>(
    py: Python<'py>,
    source: &Py<PyString>,
    e: &RecordError,
) -> PyResult<Bound<'py, PyTuple>> {
    PyTuple::new(
        py,
        [
            source.bind(py).clone().into_any(),
            e.line.into_pyobject(py)?.into_any(),
            PyString::new(py, e.code).into_any(),
            PyString::new(py, &e.message).into_any(),
        ],
    )
}

/// `str` or, when `optional`, `None`; the reference's TypeError otherwise.
fn str_arg(obj: &Bound<'_, PyAny>, name: &str, optional: bool) -> PyResult<Option<String>> {
    if optional && obj.is_none() {
        return Ok(None);
    }
    match obj.cast::<PyString>() {
        Ok(s) => Ok(Some(s.to_str()?.to_owned())),
        Err(_) => Err(PyTypeError::new_err(format!(
            "{name} must be str{}",
            if optional { " or None" } else { "" }
        ))),
    }
}

/// Where a parser is between calls.
enum Slot {
    Ready(Box<Parser>),
    /// Taken out by a call running (on another thread, with the GIL released).
    Busy,
    /// Lost to an internal error (a panic, reported as RuntimeError).
    Broken,
}

/// Streamed reading of one input file (see `gspauth.ingest`).
#[pyclass(name = "IngestParser", module = "gspauth._native")]
pub(crate) struct IngestParser {
    parser: Mutex<Slot>,
    source: Py<PyString>,
}

impl IngestParser {
    fn slot(&self) -> PyResult<std::sync::MutexGuard<'_, Slot>> {
        self.parser
            .lock()
            .map_err(|_| PyRuntimeError::new_err("parser state poisoned"))
    }

    /// Run `f` on the parser, taken out of the object (so the GIL can be released over it).
    fn with<'py>(
        &self,
        py: Python<'py>,
        size: usize,
        f: impl FnOnce(&mut Parser) -> Result<Batch, ParamError> + Send,
    ) -> PyResult<IngestBatch> {
        let mut parser = match std::mem::replace(&mut *self.slot()?, Slot::Busy) {
            Slot::Ready(p) => p,
            Slot::Busy => {
                return Err(PyRuntimeError::new_err(
                    "the parser is in use by another thread",
                ))
            }
            Slot::Broken => {
                *self.slot()? = Slot::Broken;
                return Err(PyRuntimeError::new_err(
                    "the parser stopped after an internal error; make a new one",
                ));
            }
        };
        let run = || (f(&mut parser), parser);
        let result = if size >= DETACH_MIN_BYTES {
            py.detach(|| guarded(run))
        } else {
            guarded(run)
        };
        let (batch, parser) = match result {
            Ok(done) => done,
            Err(e) => {
                *self.slot()? = Slot::Broken;
                return Err(e);
            }
        };
        *self.slot()? = Slot::Ready(parser);
        Ok(IngestBatch {
            batch: batch.map_err(ParamErrorPy)?,
            source: self.source.clone_ref(py),
        })
    }
}

#[pymethods]
impl IngestParser {
    #[new]
    #[pyo3(signature = (format, source, section, gstin, fp, /))]
    fn new(
        format: &Bound<'_, PyAny>,
        source: &Bound<'_, PyAny>,
        section: &Bound<'_, PyAny>,
        gstin: &Bound<'_, PyAny>,
        fp: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let format = str_arg(format, "format", false)?.unwrap_or_default();
        str_arg(source, "source", false)?;
        let section = str_arg(section, "section", true)?;
        let gstin = str_arg(gstin, "gstin", true)?;
        let fp = str_arg(fp, "fp", true)?;
        let parser = Parser::new(&format, section.as_deref(), gstin.as_deref(), fp.as_deref())
            .map_err(ParamErrorPy)?;
        Ok(IngestParser {
            parser: Mutex::new(Slot::Ready(Box::new(parser))),
            source: source.cast::<PyString>()?.clone().unbind(),
        })
    }

    /// ``True`` once a fatal (file-level) error was reported.
    #[getter]
    fn failed(&self) -> PyResult<bool> {
        Ok(match &*self.slot()? {
            Slot::Ready(p) => p.failed(),
            Slot::Busy => false,
            Slot::Broken => true,
        })
    }

    /// Parse the next bytes of the file (any split); returns the records and errors completed.
    #[pyo3(signature = (data, /))]
    fn feed(&self, py: Python<'_>, data: &Bound<'_, PyAny>) -> PyResult<IngestBatch> {
        let Ok(bytes) = data.cast::<PyBytes>() else {
            return Err(PyTypeError::new_err("data must be bytes"));
        };
        let data = PyBackedBytes::from(bytes.clone());
        self.with(py, data.len(), |p| p.feed(&data))
    }

    /// End of input: completes or reports what the last bytes left open.
    fn finish(&self, py: Python<'_>) -> PyResult<IngestBatch> {
        self.with(py, 0, Parser::finish)
    }
}

/// What one ``feed`` or ``finish`` produced.
#[pyclass(name = "IngestBatch", module = "gspauth._native", frozen)]
pub(crate) struct IngestBatch {
    batch: Batch,
    source: Py<PyString>,
}

#[pymethods]
impl IngestBatch {
    /// The file the batch came from.
    #[getter]
    fn source(&self, py: Python<'_>) -> Py<PyString> {
        self.source.clone_ref(py)
    }

    fn __len__(&self) -> usize {
        self.batch.len()
    }

    /// ``(gstin, fp, section, ident, sha256hex, line)`` per accepted record, in input order.
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let b = &self.batch;
        let items = b
            .records()
            .iter()
            .map(|r| {
                PyTuple::new(
                    py,
                    [
                        PyString::new(py, text(&r.gstin)).into_any(),
                        PyString::new(py, text(&r.fp)).into_any(),
                        PyString::new(py, r.section.name()).into_any(),
                        PyString::new(py, b.ident(r)).into_any(),
                        PyString::new(py, &hex(&r.sha256)).into_any(),
                        r.line.into_pyobject(py)?.into_any(),
                    ],
                )
            })
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// ``(source, line, code, message)`` per rejected record (and a fatal file error), in input order.
    fn errors<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = self
            .batch
            .errors()
            .iter()
            .map(|e| error_tuple(py, &self.source, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    fn __repr__(&self, py: Python<'_>) -> PyResult<String> {
        Ok(format!(
            "<Batch {}: {} records, {} errors>",
            self.source.bind(py).repr()?,
            self.batch.len(),
            self.batch.errors().len()
        ))
    }
}

/// One RETSAVE payload: canonical JSON ``{"<section>": …, "fp": …, "gstin": …}``.
#[pyclass(name = "IngestChunk", module = "gspauth._native", frozen)]
pub(crate) struct IngestChunk {
    chunk: Chunk,
    /// The payload as a Python `bytes`, made on first use: sending a chunk needs
    /// only its body, and a copy of a 2 MiB payload per chunk costs for nothing.
    payload: PyOnceLock<Py<PyBytes>>,
}

#[pymethods]
impl IngestChunk {
    #[getter]
    fn gstin(&self) -> &str {
        text(&self.chunk.gstin)
    }

    #[getter]
    fn fp(&self) -> &str {
        text(&self.chunk.fp)
    }

    #[getter]
    fn section(&self) -> &'static str {
        self.chunk.section.name()
    }

    #[getter]
    fn payload(&self, py: Python<'_>) -> Py<PyBytes> {
        self.payload
            .get_or_init(py, || PyBytes::new(py, &self.chunk.payload).unbind())
            .clone_ref(py)
    }

    #[getter]
    fn sha256(&self) -> String {
        hex(&self.chunk.sha256)
    }

    #[getter]
    fn count(&self) -> usize {
        self.chunk.records().len()
    }

    /// ``(ident, sha256hex)`` of each record in the chunk, in arrival order.
    #[getter]
    fn records<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let c = &self.chunk;
        let items = c
            .records()
            .iter()
            .map(|r| (c.ident(r), hex(&r.sha256)).into_pyobject(py))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// The request body ``{"action","data","hmac"}``: ``gspauth.protocol.wrap_payload_content``.
    #[pyo3(signature = (sek, action, /))]
    fn body<'py>(
        &self,
        py: Python<'py>,
        sek: &Bound<'py, PyAny>,
        action: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyBytes>> {
        let Ok(action) = action.cast::<PyString>() else {
            return Err(PyTypeError::new_err("action must be str"));
        };
        let key = key_of(sek, "key").map_err(|f| f.into_py(py, None))?;
        gspauth_core::RequestSealer::check(&self.chunk.payload)
            .map_err(|e| Fail::Crypto(e).into_py(py, None))?;
        let action = action.to_str()?;
        let sealer = RequestSealer::new(&key);
        let chunk = &self.chunk;
        let len = chunk.body_len(action);
        let mut failed = None;
        let out = PyBytes::new_with(py, len, |buf| {
            // The buffer belongs to a bytes object no Python code can see yet.
            let seal = || chunk.write_body(&sealer, action, buf, &mut Scratch::new());
            let result = if chunk.payload.len() >= DETACH_MIN_BYTES {
                py.detach(|| guarded(seal))
            } else {
                guarded(seal)
            }?;
            if let Err(e) = result {
                failed = Some(e);
            }
            Ok(())
        })?;
        match failed {
            Some(e) => Err(Fail::Crypto(e).into_py(py, None)),
            None => Ok(out),
        }
    }

    fn __repr__(&self) -> String {
        format!(
            "<Chunk {} {} {}: {} records, {} bytes>",
            text(&self.chunk.gstin),
            text(&self.chunk.fp),
            self.chunk.section.name(),
            self.chunk.records().len(),
            self.chunk.payload.len()
        )
    }
}

/// A chunk-size or buffer limit: an ``int`` (not ``bool``) of at least 1.
fn limit_arg(obj: &Bound<'_, PyAny>, name: &'static str) -> PyResult<usize> {
    if obj.cast::<PyInt>().is_err() || obj.is_instance_of::<pyo3::types::PyBool>() {
        return Err(PyTypeError::new_err(format!("{name} must be int")));
    }
    if obj.lt(1)? {
        return Err(param_err(format!("{name} must be at least 1"), name));
    }
    // Past usize there is no difference: nothing is that large.
    Ok(obj.extract::<usize>().unwrap_or(usize::MAX))
}

/// Groups the records of batches into chunks under a byte limit.
#[pyclass(name = "IngestChunker", module = "gspauth._native")]
pub(crate) struct IngestChunker {
    chunker: Chunker,
    errors: Vec<(Py<PyString>, RecordError)>,
}

fn chunks<'py>(py: Python<'py>, out: Vec<Chunk>) -> PyResult<Bound<'py, PyList>> {
    let items = out
        .into_iter()
        .map(|chunk| {
            Bound::new(
                py,
                IngestChunk {
                    chunk,
                    payload: PyOnceLock::new(),
                },
            )
        })
        .collect::<PyResult<Vec<_>>>()?;
    PyList::new(py, items)
}

#[pymethods]
impl IngestChunker {
    #[new]
    #[pyo3(signature = (max_chunk_bytes, max_buffer_bytes, /))]
    fn new(
        max_chunk_bytes: &Bound<'_, PyAny>,
        max_buffer_bytes: &Bound<'_, PyAny>,
    ) -> PyResult<Self> {
        let chunk = limit_arg(max_chunk_bytes, "max_chunk_bytes")?;
        let buffer = limit_arg(max_buffer_bytes, "max_buffer_bytes")?;
        let chunker = Chunker::new(chunk, buffer).map_err(|e| param_err(e.message, e.field))?;
        Ok(IngestChunker {
            chunker,
            errors: Vec::new(),
        })
    }

    /// Canonical record bytes held in open chunks now.
    #[getter]
    fn buffered_bytes(&self) -> usize {
        self.chunker.buffered_bytes()
    }

    /// The most ``buffered_bytes`` has been after placing a record.
    #[getter]
    fn peak_buffered_bytes(&self) -> usize {
        self.chunker.peak_buffered_bytes()
    }

    /// Records refused since the last call (``too-large``); clears the list.
    fn errors<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let items = std::mem::take(&mut self.errors)
            .iter()
            .map(|(source, e)| error_tuple(py, source, e))
            .collect::<PyResult<Vec<_>>>()?;
        PyList::new(py, items)
    }

    /// Add the records of ``batch`` except where ``skip[i]`` is non-zero; returns the chunks completed.
    #[pyo3(signature = (batch, skip, /))]
    fn add<'py>(
        &mut self,
        py: Python<'py>,
        batch: &Bound<'py, PyAny>,
        skip: &Bound<'py, PyAny>,
    ) -> PyResult<Bound<'py, PyList>> {
        let Ok(batch) = batch.cast::<IngestBatch>() else {
            return Err(PyTypeError::new_err(
                "batch must be a Batch of this backend",
            ));
        };
        let skip = if skip.is_none() {
            None
        } else {
            match skip.cast::<PyBytes>() {
                Ok(b) => Some(b.as_bytes()),
                Err(_) => return Err(PyTypeError::new_err("skip must be bytes or None")),
            }
        };
        let b = batch.get();
        let out = guarded(|| self.chunker.add(&b.batch, skip))?
            .map_err(|e| param_err(e.message, e.field))?;
        for e in self.chunker.take_errors() {
            self.errors.push((b.source.clone_ref(py), e));
        }
        chunks(py, out)
    }

    /// Emit every open chunk, in the order their groups were opened.
    fn flush<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyList>> {
        let out = guarded(|| self.chunker.flush())?;
        chunks(py, out)
    }

    fn __repr__(&self) -> String {
        format!(
            "<Chunker: {} bytes buffered>",
            self.chunker.buffered_bytes()
        )
    }
}
