//! The domain form of the `sops` metadata block (spec §6). Its wire form (field
//! order, per-store shapes, legacy readers) lives in `formats/wire.rs`.

use super::tree::{Mapping, Timestamp};
use std::fmt;

/// The sops version we write on new files. We write files in sops 3.11's format, and
/// sops ≥ 3.x compares this as semver (§6.5), so naming the format we follow keeps
/// every sops reader on the right code path.
pub const SOPS_VERSION: &str = "3.11.0";

/// The sops metadata of an encrypted file.
#[derive(Clone, Debug, PartialEq)]
pub struct Metadata {
    /// Key groups; one group is written as flat lists (§6.1).
    pub key_groups: Vec<KeyGroup>,
    /// Shamir threshold; `None` when not written (one group, or legacy zero).
    pub shamir_threshold: Option<usize>,
    /// `lastmodified` (§4.3).
    pub last_modified: Timestamp,
    /// The `mac` envelope text as stored (empty when missing).
    pub mac: String,
    /// The selection rule written in the file; `None` when the file has none (binary
    /// files, pre-3.0 files): the default `_unencrypted` suffix then applies (§3.1).
    pub rule: Option<SelectionRule>,
    /// `mac_only_encrypted` (§4.1).
    pub mac_only_encrypted: bool,
    /// `version` as written.
    pub version: String,
}

impl Metadata {
    /// The rule the walk applies: the stored one or the default (§3.1).
    pub fn effective_rule(&self) -> SelectionRule {
        self.rule.clone().unwrap_or_default()
    }

    /// The Shamir threshold in effect: the stored one, or the number of groups (§5.4).
    pub fn effective_threshold(&self) -> usize {
        self.shamir_threshold.unwrap_or(self.key_groups.len())
    }
}

/// One key group: any one of its keys recovers the group's secret (§5.4).
#[derive(Clone, Debug, PartialEq, Default)]
pub struct KeyGroup {
    /// The keys, in the order they are written.
    pub keys: Vec<MasterKey>,
}

/// One master key entry.
#[derive(Clone, PartialEq)]
pub enum MasterKey {
    /// An `age` entry (§6.2).
    Age {
        /// `age1…`, or an SSH public key line.
        recipient: String,
        /// The armored age file wrapping the data key or share.
        enc: String,
    },
    /// A `pgp` entry, kept verbatim; sopsync cannot unwrap it.
    Pgp {
        /// `fp`.
        fingerprint: String,
        /// `created_at`, as written.
        created_at: String,
        /// The armored PGP message.
        enc: String,
    },
    /// A cloud KMS or Vault entry, kept verbatim (§5.6); sopsync cannot unwrap it.
    Other {
        /// Which list it came from.
        kind: OtherKeyKind,
        /// Its fields as read.
        fields: Mapping,
    },
}

impl MasterKey {
    /// The metadata list name of this key's type (`age`, `pgp`, `kms`, …).
    pub fn type_name(&self) -> &'static str {
        match self {
            MasterKey::Age { .. } => "age",
            MasterKey::Pgp { .. } => "pgp",
            MasterKey::Other { kind, .. } => kind.list_name(),
        }
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Recipients are public; wrapped keys are not secret either, but long and noisy.
        match self {
            MasterKey::Age { recipient, .. } => write!(f, "Age({recipient})"),
            MasterKey::Pgp { fingerprint, .. } => write!(f, "Pgp({fingerprint})"),
            MasterKey::Other { kind, .. } => write!(f, "{kind:?}"),
        }
    }
}

/// The key types sopsync reads and round-trips but cannot use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum OtherKeyKind {
    /// AWS KMS (`kms`).
    Kms,
    /// GCP KMS (`gcp_kms`).
    GcpKms,
    /// Azure Key Vault (`azure_kv`).
    AzureKv,
    /// HashiCorp Vault transit (`hc_vault`).
    HcVault,
    /// HuaweiCloud KMS (`hckms`: the list name sops 3.11 writes, with the fields
    /// `key_id`, `created_at`, `enc`).
    HcKms,
}

impl OtherKeyKind {
    /// The metadata list name.
    pub fn list_name(self) -> &'static str {
        match self {
            OtherKeyKind::Kms => "kms",
            OtherKeyKind::GcpKms => "gcp_kms",
            OtherKeyKind::AzureKv => "azure_kv",
            OtherKeyKind::HcVault => "hc_vault",
            OtherKeyKind::HcKms => "hckms",
        }
    }
}

/// Which values are encrypted (§3.1). A file carries exactly one.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SelectionRule {
    /// `unencrypted_suffix`.
    UnencryptedSuffix(String),
    /// `encrypted_suffix`.
    EncryptedSuffix(String),
    /// `unencrypted_regex`.
    UnencryptedRegex(String),
    /// `encrypted_regex`.
    EncryptedRegex(String),
    /// `unencrypted_comment_regex`.
    UnencryptedCommentRegex(String),
    /// `encrypted_comment_regex`.
    EncryptedCommentRegex(String),
}

impl Default for SelectionRule {
    /// `unencrypted_suffix: _unencrypted` (§3.1).
    fn default() -> Self {
        SelectionRule::UnencryptedSuffix("_unencrypted".into())
    }
}

impl SelectionRule {
    /// The metadata key of the rule.
    pub fn key(&self) -> &'static str {
        match self {
            SelectionRule::UnencryptedSuffix(_) => "unencrypted_suffix",
            SelectionRule::EncryptedSuffix(_) => "encrypted_suffix",
            SelectionRule::UnencryptedRegex(_) => "unencrypted_regex",
            SelectionRule::EncryptedRegex(_) => "encrypted_regex",
            SelectionRule::UnencryptedCommentRegex(_) => "unencrypted_comment_regex",
            SelectionRule::EncryptedCommentRegex(_) => "encrypted_comment_regex",
        }
    }

    /// The suffix or regex text.
    pub fn value(&self) -> &str {
        match self {
            SelectionRule::UnencryptedSuffix(s)
            | SelectionRule::EncryptedSuffix(s)
            | SelectionRule::UnencryptedRegex(s)
            | SelectionRule::EncryptedRegex(s)
            | SelectionRule::UnencryptedCommentRegex(s)
            | SelectionRule::EncryptedCommentRegex(s) => s,
        }
    }

    /// Builds a rule from its metadata key; `None` for an unknown key.
    pub fn from_key(key: &str, value: String) -> Option<SelectionRule> {
        Some(match key {
            "unencrypted_suffix" => SelectionRule::UnencryptedSuffix(value),
            "encrypted_suffix" => SelectionRule::EncryptedSuffix(value),
            "unencrypted_regex" => SelectionRule::UnencryptedRegex(value),
            "encrypted_regex" => SelectionRule::EncryptedRegex(value),
            "unencrypted_comment_regex" => SelectionRule::UnencryptedCommentRegex(value),
            "encrypted_comment_regex" => SelectionRule::EncryptedCommentRegex(value),
            _ => return None,
        })
    }

    /// The six metadata keys, in the order sops writes them (§6.1).
    pub const KEYS: [&'static str; 6] = [
        "unencrypted_suffix",
        "encrypted_suffix",
        "unencrypted_regex",
        "encrypted_regex",
        "unencrypted_comment_regex",
        "encrypted_comment_regex",
    ];
}
