//! Core errors: what went wrong and where (the key path), never a value.
//!
//! Callers add the file name. `exit_code()` mirrors sops 3.11 (spec §9.5) so a CLI
//! that mirrors a sops command exits the way sops would.
//!
//! Security: no variant carries plaintext, key material or ciphertext. Paths are
//! key names only; identity sources are described by `KeyBackend::describe`.

use super::formats::FormatError;
use super::keys::KeyError;
use super::tree::KeyPath;

/// Why one value could not be decrypted (spec §2.3). All of these are sops exit 25.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ValueFailure {
    /// The text does not match `ENC[AES256_GCM,data:…,iv:…,tag:…,type:…]`.
    #[error("the value is not a sops ENC[AES256_GCM,...] envelope")]
    NotAnEnvelope,
    /// One of the base64 fields does not decode.
    #[error("the envelope's {field} field is not valid base64")]
    BadBase64 {
        /// `data`, `iv` or `tag`.
        field: &'static str,
    },
    /// The IV length is one this build cannot use with AES-GCM.
    #[error("the envelope's IV is {len} bytes; only 12, 16 and 32 are supported")]
    UnsupportedIvLength {
        /// The length found.
        len: usize,
    },
    /// The tag is not 16 bytes.
    #[error("the envelope's tag is {len} bytes, expected 16")]
    BadTagLength {
        /// The length found.
        len: usize,
    },
    /// GCM authentication failed: the value, its IV or tag were changed, it was moved
    /// to another key path, or the data key is not this file's.
    #[error("could not decrypt with AES_GCM: the value was tampered with, moved to another key, or the data key is wrong")]
    Authentication,
    /// `type:` names no known type (tags are case-sensitive).
    #[error("unknown value type `{tag}`")]
    UnknownType {
        /// The tag as written (a type name, never a value).
        tag: String,
    },
    /// The decrypted bytes do not parse as the envelope's type.
    #[error("the decrypted value does not parse as type `{tag}`")]
    BadPlaintext {
        /// The type tag.
        tag: &'static str,
    },
}

/// Everything the core can fail with. Each variant names where (key path, metadata
/// field, key group); the caller adds the file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CoreError {
    /// The file has no `sops` metadata (sops: "sops metadata not found", exit 1).
    #[error("sops metadata not found: the file is not encrypted with sops")]
    MetadataNotFound,
    /// A metadata field is missing or malformed (spec §6.5; exit 1).
    #[error("invalid sops metadata: {field}: {reason}")]
    InvalidMetadata {
        /// The field, like `lastmodified` or `age[0].enc`.
        field: String,
        /// What is wrong (no values).
        reason: String,
    },
    /// The input could not be parsed or written (exit per kind: 2, 4, 23 or 92).
    #[error(transparent)]
    Format(#[from] FormatError),
    /// An encrypted file's bytes do not parse in its format. sops exits 1 here, not 2
    /// as for plaintext input (observed with sops 3.11 on a truncated JSON file).
    #[error("the encrypted file cannot be read: {0}")]
    UnreadableEncrypted(FormatError),
    /// The plaintext already carries sops metadata (spec §6.3; exit 203).
    #[error("file already encrypted: it has a top-level `{key}` key")]
    AlreadyEncrypted {
        /// `sops`, or the `sops_…` dotenv key.
        key: String,
    },
    /// A value could not be encrypted (exit 23).
    #[error("could not encrypt the value at {path}: {reason}")]
    EncryptValue {
        /// Where.
        path: KeyPath,
        /// Why.
        reason: String,
    },
    /// A value could not be decrypted (exit 25).
    #[error("could not decrypt the value at {path}: {failure}")]
    DecryptValue {
        /// Where.
        path: KeyPath,
        /// Why.
        failure: ValueFailure,
    },
    /// A value under an encrypted path is not a string at all, so it cannot be
    /// ciphertext: it was added in clear by hand (sops 3.11 crashes here with exit 2).
    #[error("the value at {path} should be encrypted but is a plain {kind}; it was added or edited in clear")]
    NotCiphertext {
        /// Where.
        path: KeyPath,
        /// `int`, `bool`, `float`, `time`, `map` or `seq`.
        kind: &'static str,
    },
    /// The stored MAC cannot be decrypted: `lastmodified` or `mac` was changed, or
    /// the data key is wrong (spec §4.3; exit 51).
    #[error("cannot decrypt MAC: `mac` or `lastmodified` was changed, or the data key is not this file's")]
    MacUndecryptable {
        /// Why the envelope failed.
        failure: ValueFailure,
    },
    /// The MAC does not match the values: something was changed (exit 51).
    #[error("MAC mismatch: the file's values were changed after it was encrypted")]
    MacMismatch,
    /// The file has an empty or missing MAC (exit 51).
    #[error("file has no MAC")]
    NoMac,
    /// No identity could unwrap the data key (exit 128).
    #[error("failed to get the data key required to decrypt the file: {detail}; tried {tried}")]
    NoMatchingKey {
        /// Per key group: which key types were there and what happened.
        detail: String,
        /// What identities were tried, from where (`KeyBackend::describe`).
        tried: String,
    },
    /// Fewer key groups yielded a share than the Shamir threshold needs (exit 128).
    #[error("failed to get the data key: {got} of {needed} required key groups could be decrypted ({detail}); tried {tried}")]
    NotEnoughShares {
        /// The threshold.
        needed: usize,
        /// Groups that gave a share.
        got: usize,
        /// Per key group report.
        detail: String,
        /// What identities were tried.
        tried: String,
    },
    /// The unwrapped data key is not 32 bytes, e.g. a Shamir share in a file whose other
    /// key groups were deleted. sops fails later, creating the AES cipher (exit 25).
    #[error("the data key unwrapped from the key groups is {len} bytes, not 32: the key groups were edited")]
    BadDataKey {
        /// The length found.
        len: usize,
    },
    /// The Shamir shares cannot be combined (exit 128).
    #[error("the Shamir shares from the key groups cannot be combined: {reason}")]
    ShamirCombine {
        /// Why (lengths, duplicate share coordinates).
        reason: String,
    },
    /// No recipients were given to encrypt to (sops exit 111).
    #[error("no encryption key: give at least one recipient per key group")]
    NoRecipients,
    /// Shamir parameters are out of range (exit 1).
    #[error("invalid key groups: {reason}")]
    InvalidKeyGroups {
        /// Why.
        reason: String,
    },
    /// Wrapping the data key for a recipient failed (exit 128 as sops' key-service errors).
    #[error("could not wrap the data key for key group {group}: {source}")]
    Wrap {
        /// 0-based key group.
        group: usize,
        /// The backend error.
        source: KeyError,
    },
    /// A selection rule (regex) does not compile (exit 1).
    #[error("invalid {rule}: {reason}")]
    InvalidRule {
        /// The metadata key of the rule.
        rule: &'static str,
        /// The regex error.
        reason: String,
    },
    /// An encrypted comment matches `unencrypted_comment_regex` by chance, which sops
    /// refuses (spec §3.2; exit 23).
    #[error("the encrypted comment at {path} matches unencrypted_comment_regex; change the comment or the regex")]
    CommentCiphertextMatchesRule {
        /// Container path of the comment.
        path: KeyPath,
    },
}

impl CoreError {
    /// The exit code sops 3.11 uses for the same failure (spec §9.5).
    pub fn exit_code(&self) -> i32 {
        match self {
            CoreError::MetadataNotFound
            | CoreError::InvalidMetadata { .. }
            | CoreError::InvalidKeyGroups { .. }
            | CoreError::InvalidRule { .. }
            | CoreError::UnreadableEncrypted(_) => 1,
            CoreError::Format(f) => match f {
                FormatError::NonStringKey { .. } | FormatError::Uint64Value { .. } => 23,
                FormatError::NoDocuments => 92,
                FormatError::Emit { .. } => 4,
                _ => 2,
            },
            CoreError::AlreadyEncrypted { .. } => 203,
            CoreError::EncryptValue { .. } | CoreError::CommentCiphertextMatchesRule { .. } => 23,
            CoreError::DecryptValue { .. } => 25,
            // sops 3.11 panics on a non-string under an encrypted path; a Go panic exits 2.
            CoreError::NotCiphertext { .. } => 2,
            CoreError::MacUndecryptable { .. } | CoreError::MacMismatch | CoreError::NoMac => 51,
            CoreError::NoMatchingKey { .. }
            | CoreError::NotEnoughShares { .. }
            | CoreError::ShamirCombine { .. }
            | CoreError::Wrap { .. } => 128,
            // sops only notices when it builds the AES cipher while walking the tree.
            CoreError::BadDataKey { .. } => 25,
            CoreError::NoRecipients => 111,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_codes_mirror_sops() {
        assert_eq!(CoreError::MetadataNotFound.exit_code(), 1);
        assert_eq!(CoreError::MacMismatch.exit_code(), 51);
        assert_eq!(CoreError::NoMac.exit_code(), 51);
        assert_eq!(
            CoreError::AlreadyEncrypted { key: "sops".into() }.exit_code(),
            203
        );
        assert_eq!(CoreError::Format(FormatError::NoDocuments).exit_code(), 92);
        let e = CoreError::DecryptValue {
            path: KeyPath(vec!["a".into(), "b".into()]),
            failure: ValueFailure::Authentication,
        };
        assert_eq!(e.exit_code(), 25);
        assert!(e.to_string().contains(r#"["a"]["b"]"#), "{e}");
    }
}
