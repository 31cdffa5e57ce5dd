//! The 32-byte AES-256 / HMAC key type.

use std::borrow::Cow;

use crate::error::{Error, Reason, Result};
use crate::KEY_LEN;

/// A 32-byte key (app key, session key EK, response key REK).
///
/// `Debug` never shows the bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct Key([u8; KEY_LEN]);

impl Key {
    /// A key from exactly 32 bytes; the error names the field `"key"`.
    pub fn from_slice(bytes: &[u8]) -> Result<Self> {
        Self::from_slice_named(bytes, "key")
    }

    /// A key from exactly 32 bytes; `field` names it in the error
    /// (`"{field} must be 32 bytes, got {n}"`).
    pub fn from_slice_named(bytes: &[u8], field: impl Into<Cow<'static, str>>) -> Result<Self> {
        match <[u8; KEY_LEN]>::try_from(bytes) {
            Ok(raw) => Ok(Key(raw)),
            Err(_) => Err(Error::new(Reason::KeyLength { got: bytes.len() }, field)),
        }
    }

    /// The raw key bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }
}

impl From<[u8; KEY_LEN]> for Key {
    fn from(raw: [u8; KEY_LEN]) -> Self {
        Key(raw)
    }
}

impl TryFrom<&[u8]> for Key {
    type Error = Error;

    fn try_from(bytes: &[u8]) -> Result<Self> {
        Key::from_slice(bytes)
    }
}

impl std::fmt::Debug for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Key([secure])")
    }
}
