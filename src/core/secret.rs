//! Secret-holding newtypes: the data key and plaintext text.
//!
//! Guarantees: every type here zeroizes its bytes on drop, has no `Display` or
//! `Serialize`, and prints `[REDACTED]` under `Debug`. Bytes are read only through
//! `expose_secret()` (or the narrow accessors on [`Text`]).

use std::fmt;
use zeroize::{Zeroize, Zeroizing};

/// The 32-byte AES-256 key that encrypts every value of one sops file (spec §5.1).
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl DataKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    /// Builds a data key from a slice; `None` unless it is exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        let arr: [u8; 32] = bytes.try_into().ok()?;
        Some(Self::from_bytes(arr))
    }

    /// The raw key bytes. Keep the borrow short.
    pub fn expose_secret(&self) -> &[u8; 32] {
        &self.0
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("DataKey([REDACTED])")
    }
}

/// A byte string that may be secret: a value or a comment of a document.
///
/// sops strings are byte strings (spec §1, `!!binary` can make invalid UTF-8), so
/// this holds bytes. Zeroized on drop; `Debug` is redacted.
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Text(Vec<u8>);

impl Text {
    /// Wraps bytes.
    pub fn new(bytes: impl Into<Vec<u8>>) -> Self {
        Text(bytes.into())
    }

    /// The bytes. Keep the borrow short; never log them.
    pub fn expose_secret(&self) -> &[u8] {
        &self.0
    }

    /// The text as `&str` when it is valid UTF-8.
    pub fn as_str(&self) -> Option<&str> {
        std::str::from_utf8(&self.0).ok()
    }

    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// True for the empty string.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Consumes the text, handing the bytes over in a zeroizing buffer.
    pub fn into_zeroizing(mut self) -> Zeroizing<Vec<u8>> {
        Zeroizing::new(std::mem::take(&mut self.0))
    }
}

impl From<&str> for Text {
    fn from(s: &str) -> Self {
        Text(s.as_bytes().to_vec())
    }
}

impl From<String> for Text {
    fn from(s: String) -> Self {
        Text(s.into_bytes())
    }
}

impl From<Vec<u8>> for Text {
    fn from(v: Vec<u8>) -> Self {
        Text(v)
    }
}

impl Drop for Text {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl fmt::Debug for Text {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[REDACTED]")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn debug_output_is_redacted() {
        let key = DataKey::from_bytes([7; 32]);
        let text = Text::from("canary-value-123");
        assert_eq!(format!("{key:?}"), "DataKey([REDACTED])");
        assert_eq!(format!("{text:?}"), "[REDACTED]");
        assert!(!format!("{:?}", vec![text]).contains("canary"));
    }
}
