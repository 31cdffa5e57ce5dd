//! The exception classes are defined once, in Python (`gspauth/errors.py`), and imported.

pyo3::import_exception!(gspauth.errors, InvalidKey);
pyo3::import_exception!(gspauth.errors, InvalidInput);
pyo3::import_exception!(gspauth.errors, InvalidBase64);
pyo3::import_exception!(gspauth.errors, DecryptionError);
pyo3::import_exception!(gspauth.errors, IntegrityError);
