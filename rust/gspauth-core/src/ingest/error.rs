//! Record errors: a short stable code and a message that depends on neither the
//! backend nor the JSON parser (the same text as `gspauth/ingest/_python`).

/// One rejected record, or the fatal error of a file: the line it starts on,
/// a code from the documented list (`docs/ingest.md`) and a message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordError {
    /// 1-based line (LF-counted) where the record or the fault starts.
    pub line: u64,
    /// Stable short code such as `tax`, `ctin` or `unknown-field`.
    pub code: &'static str,
    /// What is wrong, for a person.
    pub message: String,
}

/// Why a record (or file) is refused, before the line is attached.
#[derive(Debug)]
pub(crate) struct Reject {
    pub code: &'static str,
    pub message: String,
    /// Overrides the record's line (CSV rows report their own line).
    pub line: Option<u64>,
}

impl Reject {
    pub fn new(code: &'static str, message: impl Into<String>) -> Self {
        Reject {
            code,
            message: message.into(),
            line: None,
        }
    }
}

pub(crate) type Res<T> = Result<T, Reject>;

/// `Err(Reject)` in one expression.
macro_rules! reject {
    ($code:expr, $($arg:tt)*) => {
        return Err($crate::ingest::error::Reject::new($code, format!($($arg)*)))
    };
}
pub(crate) use reject;
