//! The file MAC (spec §4): SHA-512 over canonical leaf bytes in walk order, stored
//! encrypted with the normalised `lastmodified` as AAD.
//!
//! Guarantees: uppercase hex; the `mac_only_encrypted` seed SHA-256("sops"); the
//! comparison is constant-time; "cannot decrypt", "mismatch" and "no MAC" are
//! distinct errors.

use super::cipher::{self, Canonical, TypeTag, IV_LEN};
use super::error::CoreError;
use super::secret::{DataKey, Text};
use super::tree::{Timestamp, Value};
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

/// An incremental MAC computation.
pub struct MacHasher {
    hash: Sha512,
}

impl MacHasher {
    /// A new hasher; with `mac_only_encrypted` it is seeded with SHA-256("sops") (§4.1).
    pub fn new(mac_only_encrypted: bool) -> Self {
        let mut hash = Sha512::new();
        if mac_only_encrypted {
            hash.update(Sha256::digest(b"sops"));
        }
        MacHasher { hash }
    }

    /// Adds one leaf's canonical bytes.
    pub fn update(&mut self, bytes: &[u8]) {
        self.hash.update(bytes);
    }

    /// Adds a parsed value's canonical bytes (nothing for null, mappings, sequences).
    /// A string's canonical bytes are its own bytes, hashed without a copy.
    pub fn update_value(&mut self, value: &Value) {
        match value {
            Value::Str(t) => self.hash.update(t.expose_secret()),
            other => {
                if let Some(c) = cipher::canonical(other) {
                    self.hash.update(&c.bytes);
                }
            }
        }
    }

    /// The MAC: 128 uppercase hex digits.
    pub fn finish(self) -> String {
        let digest = self.hash.finalize();
        let mut s = String::with_capacity(128);
        for b in digest {
            s.push_str(&format!("{b:02X}"));
        }
        s
    }
}

/// The AAD of the MAC: `lastmodified` formatted again to whole seconds (§4.3).
pub fn mac_aad(last_modified: &Timestamp) -> String {
    last_modified.to_rfc3339()
}

/// Encrypts the MAC text for storage in `mac` (§4.3).
pub fn seal_mac(key: &DataKey, iv: &[u8; IV_LEN], mac: &str, last_modified: &Timestamp) -> String {
    let plain = Canonical {
        tag: TypeTag::Str,
        bytes: Zeroizing::new(mac.as_bytes().to_vec()),
    };
    cipher::seal(key, iv, mac_aad(last_modified).as_bytes(), &plain)
}

/// Checks the stored MAC envelope against the computed MAC (§4.3).
///
/// Errors: [`CoreError::NoMac`] for an empty `mac`, [`CoreError::MacUndecryptable`]
/// when the envelope does not open, [`CoreError::MacMismatch`] when it differs.
pub fn verify(
    key: &DataKey,
    stored: &str,
    last_modified: &Timestamp,
    computed: &str,
) -> Result<(), CoreError> {
    if stored.is_empty() {
        return Err(CoreError::NoMac);
    }
    let opened = cipher::open(key, stored.as_bytes(), mac_aad(last_modified).as_bytes())
        .map_err(|failure| CoreError::MacUndecryptable { failure })?;
    let text = match cipher::parse_typed(opened.tag, &opened.plaintext) {
        Ok(cipher::Plain::Value(Value::Str(t))) => t,
        _ => Text::default(),
    };
    if text.is_empty() {
        return Err(CoreError::NoMac);
    }
    // Constant-time compare (STYLE 5); lengths are public (always 128 when valid).
    if text.expose_secret().ct_eq(computed.as_bytes()).into() {
        Ok(())
    } else {
        Err(CoreError::MacMismatch)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_is_sha256_of_sops_and_modes_differ() {
        assert_eq!(
            Sha256::digest(b"sops")
                .iter()
                .map(|b| format!("{b:02x}"))
                .collect::<String>(),
            "8a3fd2ad54ce66527b1034f3d147be0b0b975b3bf44f72c6fdadec8176f27d69"
        );
        let mut plain = MacHasher::new(false);
        plain.update(b"x");
        let mut seeded = MacHasher::new(true);
        seeded.update(b"x");
        let (a, b) = (plain.finish(), seeded.finish());
        assert_ne!(a, b);
        assert_eq!(a.len(), 128);
        assert!(a
            .bytes()
            .all(|c| c.is_ascii_digit() || (b'A'..=b'F').contains(&c)));
        // SHA-512 of the empty stream, uppercase.
        assert!(MacHasher::new(false)
            .finish()
            .starts_with("CF83E1357EEFB8BD"));
    }

    #[test]
    fn stored_mac_verifies_and_each_failure_is_distinct() {
        let key = DataKey::from_bytes([3; 32]);
        let lm = Timestamp::parse_rfc3339("2026-11-24T13:26:18Z").unwrap();
        let mac = MacHasher::new(false).finish();
        let stored = seal_mac(&key, &[5; 32], &mac, &lm);
        verify(&key, &stored, &lm, &mac).unwrap();
        // +00:00 and a fraction normalise to the same AAD.
        let lm2 = Timestamp::parse_rfc3339("2026-11-24T13:26:18.5+00:00").unwrap();
        verify(&key, &stored, &lm2, &mac).unwrap();
        let other = Timestamp::parse_rfc3339("2026-11-24T13:26:19Z").unwrap();
        assert!(matches!(
            verify(&key, &stored, &other, &mac),
            Err(CoreError::MacUndecryptable { .. })
        ));
        let mut wrong = MacHasher::new(false);
        wrong.update(b"changed");
        assert!(matches!(
            verify(&key, &stored, &lm, &wrong.finish()),
            Err(CoreError::MacMismatch)
        ));
        assert!(matches!(verify(&key, "", &lm, &mac), Err(CoreError::NoMac)));
    }
}
