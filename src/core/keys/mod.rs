//! Master keys: the backends that wrap and unwrap the data key (spec §5).
//!
//! One narrow trait ([`KeyBackend`]) unwraps a [`MasterKey`] entry; `Ok(None)` means
//! "not my key type, or none of my identities fits this entry". Wrapping is done for
//! [`Recipient`]s. Only age is implemented; PGP and cloud KMS entries are read and
//! written back verbatim but cannot be unwrapped here (§5.3, §5.6).

pub mod age;

use super::metadata::MasterKey;
use zeroize::Zeroizing;

pub use self::age::{AgeIdentities, AgeRecipient};

/// A key backend failure. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An identity source has a line that is not an identity (spec §5.2). The line
    /// itself is never shown: it may be a secret key.
    #[error("{source_name}: line {line} is not an age identity (must start exactly with AGE-SECRET-KEY-1, no spaces)")]
    BadIdentityLine {
        /// Where the identities came from (an env var name or a path).
        source_name: String,
        /// 1-based line number.
        line: usize,
    },
    /// An identity source uses a feature sopsync does not have (age plugins, passphrase
    /// protected identity files).
    #[error("{source_name}: {what} is not supported")]
    UnsupportedIdentity {
        /// Where.
        source_name: String,
        /// What.
        what: &'static str,
    },
    /// A recipient string is not one sopsync can encrypt to.
    #[error("`{recipient}` is not a supported age recipient: {reason}")]
    BadRecipient {
        /// The recipient text (public).
        recipient: String,
        /// Why.
        reason: String,
    },
    /// The stored `enc` is not a readable age file (corrupted stanza).
    #[error("the age entry for {recipient} is not a valid age file: {reason}")]
    CorruptEntry {
        /// The entry's recipient.
        recipient: String,
        /// Why.
        reason: String,
    },
    /// Encryption with age failed.
    #[error("age encryption for {recipient} failed: {reason}")]
    Encrypt {
        /// The recipient.
        recipient: String,
        /// Why.
        reason: String,
    },
}

/// Something that can unwrap data keys (or Shamir shares) from master-key entries.
pub trait KeyBackend {
    /// Unwraps `key`'s `enc`. `Ok(None)`: not my key type, or no identity matched.
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError>;
    /// What was tried, for error messages, e.g. "2 age identities from SOPS_AGE_KEY_FILE=/x".
    fn describe(&self) -> String;
}

/// A key to encrypt the data key to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipient {
    /// An age X25519 recipient.
    Age(AgeRecipient),
}

impl Recipient {
    /// Wraps `secret` (the data key or a share) for this recipient.
    pub fn wrap(&self, secret: &[u8]) -> Result<MasterKey, KeyError> {
        match self {
            Recipient::Age(r) => r.wrap(secret),
        }
    }

    /// The recipient of an existing entry, when sopsync can wrap for it again.
    pub fn of_master_key(key: &MasterKey) -> Option<Recipient> {
        match key {
            MasterKey::Age { recipient, .. } => {
                AgeRecipient::parse(recipient).ok().map(Recipient::Age)
            }
            _ => None,
        }
    }
}

/// The position of a key type in sops' default decryption order: age, pgp, then the
/// rest in file order (spec §5.5).
pub fn decryption_rank(key: &MasterKey) -> u8 {
    match key {
        MasterKey::Age { .. } => 0,
        MasterKey::Pgp { .. } => 1,
        MasterKey::Other { .. } => 2,
    }
}
