//! The one error type of the core crate.
//!
//! Every error carries a [`ErrorKind`] (which Python exception class it maps to),
//! the wire `field` it is about and, in batch calls, the `index` of the failing
//! record. Its `Display` text is byte-for-byte the message of the Python reference
//! backend (`gspauth/crypto/_python.py`); the binding relies on that.

use std::borrow::Cow;
use std::fmt;

use crate::{KEY_LEN, MAX_WIRE_CHARS};

/// Which class of failure; maps one-to-one onto the `gspauth.errors` classes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ErrorKind {
    /// A key has the wrong length (`InvalidKey`).
    InvalidKey,
    /// Empty or oversized input (`InvalidInput`).
    InvalidInput,
    /// A wire field, or a decrypted inner text, is not valid Base64 (`InvalidBase64`).
    InvalidBase64,
    /// Bad padding, bad length, wrong key, or unexpected plaintext size (`DecryptionError`).
    Decryption,
    /// HMAC mismatch (`IntegrityError`).
    Integrity,
}

/// What exactly went wrong. The message text is derived from it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// `{field} must be 32 bytes, got {got}`.
    KeyLength {
        /// Length of the key that was given.
        got: usize,
    },
    /// `{field} is larger than {limit} bytes`.
    TooLarge {
        /// The limit that was exceeded.
        limit: usize,
    },
    /// `{field} is longer than {MAX_WIRE_CHARS} characters` (a Base64 wire field).
    TooLong,
    /// `{field} is empty`.
    Empty,
    /// `{field} is not valid Base64` (plus a hint about tolerant mode when strict).
    Base64 {
        /// Whether tolerant mode (whitespace stripping) was on.
        tolerant: bool,
    },
    /// `{field} decrypted to text that is not valid Base64`.
    InnerBase64,
    /// `{field} did not decrypt: length {len} is not a multiple of 16 (truncated?)`.
    BlockLength {
        /// Ciphertext length in bytes.
        len: usize,
    },
    /// `{field} did not decrypt: bad padding (wrong key or corrupted data)`.
    BadPadding,
    /// `{field} decrypted to {got} bytes, expected a 32-byte key (wrong key?)`;
    /// with `session` set the hint reads `(wrong session key?)`.
    KeySize {
        /// Plaintext length that was found.
        got: usize,
        /// The key was a `rek` inside a response envelope.
        session: bool,
    },
    /// `{field} does not match the decrypted payload (tampered data or wrong key)`.
    HmacMismatch,
}

impl Reason {
    /// The exception class this reason belongs to.
    pub fn kind(&self) -> ErrorKind {
        match self {
            Reason::KeyLength { .. } => ErrorKind::InvalidKey,
            Reason::TooLarge { .. } | Reason::TooLong | Reason::Empty => ErrorKind::InvalidInput,
            Reason::Base64 { .. } | Reason::InnerBase64 => ErrorKind::InvalidBase64,
            Reason::BlockLength { .. } | Reason::BadPadding | Reason::KeySize { .. } => {
                ErrorKind::Decryption
            }
            Reason::HmacMismatch => ErrorKind::Integrity,
        }
    }
}

/// A failure of a core operation. Never contains key material or payload bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Error {
    reason: Reason,
    field: Cow<'static, str>,
    index: Option<usize>,
}

impl Error {
    /// A new error about `field`, outside any batch.
    pub fn new(reason: Reason, field: impl Into<Cow<'static, str>>) -> Self {
        Error {
            reason,
            field: field.into(),
            index: None,
        }
    }

    /// The same error, located at record `index` of a batch.
    ///
    /// Key errors are about the call, not a record, and stay without an index
    /// (as in the Python reference).
    #[must_use]
    pub fn at(mut self, index: usize) -> Self {
        if self.reason.kind() != ErrorKind::InvalidKey {
            self.index = Some(index);
        }
        self
    }

    /// The exception class.
    pub fn kind(&self) -> ErrorKind {
        self.reason.kind()
    }

    /// The detailed reason.
    pub fn reason(&self) -> &Reason {
        &self.reason
    }

    /// The wire field the error is about (`"data"`, `"rek"`, `"hmac"`, `"key"` …).
    pub fn field(&self) -> &str {
        &self.field
    }

    /// Position of the failing record in a batch call, else `None`.
    pub fn index(&self) -> Option<usize> {
        self.index
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(i) = self.index {
            write!(f, "record {i}: ")?;
        }
        let field = &*self.field;
        match &self.reason {
            Reason::KeyLength { got } => write!(f, "{field} must be {KEY_LEN} bytes, got {got}"),
            Reason::TooLarge { limit } => write!(f, "{field} is larger than {limit} bytes"),
            Reason::TooLong => write!(f, "{field} is longer than {MAX_WIRE_CHARS} characters"),
            Reason::Empty => write!(f, "{field} is empty"),
            Reason::Base64 { tolerant: true } => write!(f, "{field} is not valid Base64"),
            Reason::Base64 { tolerant: false } => write!(
                f,
                "{field} is not valid Base64; pass tolerant=True to accept embedded whitespace"
            ),
            Reason::InnerBase64 => write!(f, "{field} decrypted to text that is not valid Base64"),
            Reason::BlockLength { len } => write!(
                f,
                "{field} did not decrypt: length {len} is not a multiple of 16 (truncated?)"
            ),
            Reason::BadPadding => write!(
                f,
                "{field} did not decrypt: bad padding (wrong key or corrupted data)"
            ),
            Reason::KeySize { got, session } => write!(
                f,
                "{field} decrypted to {got} bytes, expected a 32-byte key ({})",
                if *session {
                    "wrong session key?"
                } else {
                    "wrong key?"
                }
            ),
            Reason::HmacMismatch => write!(
                f,
                "{field} does not match the decrypted payload (tampered data or wrong key)"
            ),
        }
    }
}

impl std::error::Error for Error {}

/// Result alias of the core crate.
pub type Result<T, E = Error> = std::result::Result<T, E>;
