//! Master keys: the backends that wrap and unwrap the data key (spec §5).
//!
//! One narrow trait ([`KeyBackend`]) unwraps a [`MasterKey`] entry; `Ok(None)` means
//! "not my key type, or none of my identities fits this entry". Wrapping is done for
//! [`Recipient`]s. age is done here; PGP goes through a [`PgpEngine`] (wrapping) and
//! a [`KeyBackend`] (unwrapping) that the shell supplies, since both run the user's
//! GnuPG (§5.3); AWS KMS likewise through a [`KmsEngine`] and a backend over the AWS
//! SDK (§5.6, `src/kms.rs`); the other cloud KMS entries are read and written back
//! verbatim but cannot be unwrapped. A [`Keyring`] tries several backends as one.

pub mod age;
mod age_file;
mod age_pq;
mod age_x25519;
pub mod kms;
pub mod pgp;

use super::metadata::MasterKey;
use zeroize::Zeroizing;

pub use self::age::{AgeIdentities, AgeRecipient, PassphrasePrompt};
pub use self::kms::{KmsEngine, KmsKey, KmsRecipient};
pub use self::pgp::{PgpEngine, PgpFingerprint, PgpRecipient};

/// A key backend failure. Never carries key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum KeyError {
    /// An identity source has a line that is not an identity (spec §5.2). The line
    /// itself is never shown: it may be a secret key.
    #[error(
        "{source_name}: line {line} is not an age identity (must start exactly with {} or {}, no spaces)",
        age::IDENTITY_PREFIX,
        age_pq::PQ_IDENTITY_PREFIX
    )]
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
    #[error("`{}` is not a supported age recipient: {reason}", age::display_recipient(.recipient))]
    BadRecipient {
        /// The recipient text (public).
        recipient: String,
        /// Why.
        reason: String,
    },
    /// The stored `enc` is not a readable age file (corrupted stanza).
    #[error("the age entry for {} is not a valid age file: {reason}", age::display_recipient(.recipient))]
    CorruptEntry {
        /// The entry's recipient.
        recipient: String,
        /// Why.
        reason: String,
    },
    /// Encryption with age failed.
    #[error("age encryption for {} failed: {reason}", age::display_recipient(.recipient))]
    Encrypt {
        /// The recipient.
        recipient: String,
        /// Why.
        reason: String,
    },
    /// GnuPG could not encrypt to, or decrypt with, a PGP key. The reason is GnuPG's
    /// own last word (its stderr holds no key material) or why it could not run.
    #[error("pgp {fingerprint}: {reason}")]
    Pgp {
        /// The key's fingerprint.
        fingerprint: String,
        /// What went wrong.
        reason: String,
    },
    /// AWS KMS could not encrypt or decrypt with a key: what AWS said (its error code
    /// and message hold no key material) or why no request could be made.
    #[error("kms {arn}: {reason}")]
    Kms {
        /// The key's ARN.
        arn: String,
        /// What went wrong, and what to do.
        reason: String,
    },
    /// A `sops.kms` entry of the file is malformed.
    #[error("the kms entry for {arn} is not valid: {reason}")]
    CorruptKms {
        /// The entry's ARN (empty when it has none).
        arn: String,
        /// Which field is wrong.
        reason: String,
    },
}

/// Something that can unwrap data keys (or Shamir shares) from master-key entries.
pub trait KeyBackend {
    /// Unwraps `key`'s `enc`. `Ok(None)`: not my key type, or no identity matched.
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError>;
    /// What was tried, for error messages, e.g. "2 age identities from SOPS_AGE_KEY_FILE=/x".
    fn describe(&self) -> String;
    /// Whether this backend answers entries like `key` (its type), so that "what was
    /// tried" names only the sources that could have opened the file. Default: all.
    fn handles(&self, key: &MasterKey) -> bool {
        let _ = key;
        true
    }
    /// [`KeyBackend::describe`], limited to what could open one of `keys`.
    fn describe_for(&self, keys: &[&MasterKey]) -> String {
        let _ = keys;
        self.describe()
    }
}

/// A key to encrypt the data key to.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Recipient {
    /// An age recipient (X25519 or SSH).
    Age(AgeRecipient),
    /// A PGP key, wrapped for by the user's GnuPG.
    Pgp(PgpRecipient),
    /// An AWS KMS key, wrapped for through the AWS SDK.
    Kms(KmsRecipient),
}

/// The engines that wrap for keys the core cannot wrap for itself, when the shell has
/// them: the user's GnuPG, AWS KMS.
#[derive(Clone, Default)]
pub struct Engines {
    /// Wraps for PGP keys.
    pub pgp: Option<std::sync::Arc<dyn PgpEngine>>,
    /// Wraps for AWS KMS keys.
    pub kms: Option<std::sync::Arc<dyn KmsEngine>>,
}

impl Recipient {
    /// Wraps `secret` (the data key or a share) for this recipient.
    pub fn wrap(&self, secret: &[u8]) -> Result<MasterKey, KeyError> {
        match self {
            Recipient::Age(r) => r.wrap(secret),
            Recipient::Pgp(r) => r.wrap(secret),
            Recipient::Kms(r) => r.wrap(secret),
        }
    }

    /// The recipient of an existing entry, when sopsync can wrap for it again without
    /// GnuPG (age entries); see [`Recipient::of_master_key_with`].
    pub fn of_master_key(key: &MasterKey) -> Option<Recipient> {
        Recipient::of_master_key_with(key, None)
    }

    /// The recipient of an existing entry, when sopsync can wrap for it again: age
    /// entries, and PGP entries when `pgp` is given (keeping the entry's `created_at`,
    /// as sops does when it re-wraps for a key already in the file).
    pub fn of_master_key_with(
        key: &MasterKey,
        pgp: Option<&std::sync::Arc<dyn PgpEngine>>,
    ) -> Option<Recipient> {
        let engines = Engines {
            pgp: pgp.cloned(),
            kms: None,
        };
        Recipient::of_master_key_in(key, &engines)
    }

    /// The recipient of an existing entry, when sopsync can wrap for it again with
    /// `engines`: age entries always, PGP and AWS KMS entries when their engine is
    /// given (keeping the entry's `created_at`, role, context and profile, as sops does
    /// when it re-wraps for a key already in the file).
    pub fn of_master_key_in(key: &MasterKey, engines: &Engines) -> Option<Recipient> {
        let pgp = engines.pgp.as_ref();
        match key {
            MasterKey::Age { recipient, .. } => {
                AgeRecipient::parse(recipient).ok().map(Recipient::Age)
            }
            MasterKey::Pgp {
                fingerprint,
                created_at,
                ..
            } => {
                let engine = pgp?;
                let fp = PgpFingerprint::parse(fingerprint).ok()?;
                Some(Recipient::Pgp(PgpRecipient::new(
                    fp,
                    created_at.clone(),
                    engine.clone(),
                )))
            }
            MasterKey::Other { .. } => {
                let engine = engines.kms.as_ref()?;
                let (kms, _) = KmsKey::of_master_key(key)?.ok()?;
                Some(Recipient::Kms(KmsRecipient::new(kms, engine.clone())))
            }
        }
    }

    /// How reports and `.sops.yaml` comparisons name it: the age recipient text, or
    /// `pgp:<fingerprint>`, [`KmsKey::label`] (as `repo::rekey::recipient_label`
    /// names entries).
    pub fn label(&self) -> String {
        match self {
            Recipient::Age(r) => r.as_str().to_string(),
            Recipient::Pgp(r) => format!("pgp:{}", r.fingerprint()),
            Recipient::Kms(r) => r.key().label(),
        }
    }
}

/// Several key backends tried as one: the first that unwraps an entry wins (each
/// answers `Ok(None)` for entries of other types). The CLI holds the age identities
/// and the user's GnuPG here; the controller its key Secret's age and PGP keys.
#[derive(Default)]
pub struct Keyring {
    backends: Vec<Box<dyn KeyBackend + Send + Sync>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keyring([REDACTED]; {})", self.describe())
    }
}

impl Keyring {
    /// No backends yet.
    pub fn new() -> Keyring {
        Keyring::default()
    }

    /// Adds `backend`, tried after those added before.
    pub fn push(&mut self, backend: impl KeyBackend + Send + Sync + 'static) {
        self.backends.push(Box::new(backend));
    }
}

impl KeyBackend for Keyring {
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        for backend in &self.backends {
            if let Some(secret) = backend.unwrap(key)? {
                return Ok(Some(secret));
            }
        }
        Ok(None)
    }

    /// The backends' descriptions; one that has nothing to say (an empty string, e.g.
    /// GnuPG when no PGP entry was tried) is left out.
    fn describe(&self) -> String {
        let parts: Vec<String> = self
            .backends
            .iter()
            .map(|b| b.describe())
            .filter(|d| !d.is_empty())
            .collect();
        parts.join("; ")
    }

    fn handles(&self, key: &MasterKey) -> bool {
        self.backends.iter().any(|b| b.handles(key))
    }

    fn describe_for(&self, keys: &[&MasterKey]) -> String {
        let parts: Vec<String> = self
            .backends
            .iter()
            .filter(|b| keys.iter().any(|k| b.handles(k)))
            .map(|b| b.describe_for(keys))
            .collect();
        if parts.is_empty() {
            return self.describe();
        }
        parts.join("; ")
    }
}

/// The order in which key types are tried within a group (spec §5.5): the default is
/// `age`, `pgp`, then every other type in file order. `--decryption-order` /
/// `SOPS_DECRYPTION_ORDER` replace the listed part; unlisted types keep their relative
/// order after the listed ones.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DecryptionOrder(Vec<String>);

impl Default for DecryptionOrder {
    fn default() -> Self {
        DecryptionOrder(vec!["age".into(), "pgp".into()])
    }
}

impl DecryptionOrder {
    /// Parses a comma-separated list of key type names (`age,pgp,kms`).
    ///
    /// Errors: the duplicated name (sops exit 112).
    pub fn parse(list: &str) -> Result<DecryptionOrder, String> {
        let mut names: Vec<String> = Vec::new();
        for name in list.split(',').map(str::trim).filter(|n| !n.is_empty()) {
            if names.iter().any(|n| n == name) {
                return Err(name.to_string());
            }
            names.push(name.to_string());
        }
        Ok(DecryptionOrder(names))
    }

    /// The rank of a key: its type's position in the list, or after all listed types.
    pub fn rank(&self, key: &MasterKey) -> usize {
        let name = key.type_name();
        self.0
            .iter()
            .position(|n| n == name)
            .unwrap_or(self.0.len())
    }

    /// `keys` sorted for trying (a stable sort, so file order breaks ties).
    pub fn sort<'a>(&self, keys: &'a [MasterKey]) -> Vec<&'a MasterKey> {
        let mut order: Vec<&MasterKey> = keys.iter().collect();
        order.sort_by_key(|k| self.rank(k));
        order
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::metadata::OtherKeyKind;
    use crate::core::tree::Mapping;

    #[test]
    fn a_bad_identity_line_names_the_prefix_it_needs() {
        let e = KeyError::BadIdentityLine {
            source_name: "SOPS_AGE_KEY".into(),
            line: 2,
        };
        assert_eq!(
            e.to_string(),
            concat!(
                "SOPS_AGE_KEY: line 2 is not an age identity (must start exactly with AGE-SECRET-",
                "KEY-1 or AGE-SECRET-",
                "KEY-PQ-1, no spaces)"
            )
        );
    }

    #[test]
    fn default_order_is_age_pgp_then_file_order() {
        let kms = MasterKey::Other {
            kind: OtherKeyKind::Kms,
            fields: Mapping::new(),
        };
        let vault = MasterKey::Other {
            kind: OtherKeyKind::HcVault,
            fields: Mapping::new(),
        };
        let pgp = MasterKey::Pgp {
            fingerprint: "F".into(),
            created_at: String::new(),
            enc: String::new(),
        };
        let age = MasterKey::Age {
            recipient: "age1x".into(),
            enc: String::new(),
        };
        let keys = [kms.clone(), vault.clone(), pgp.clone(), age.clone()];
        let names = |o: &DecryptionOrder| {
            o.sort(&keys)
                .iter()
                .map(|k| k.type_name())
                .collect::<Vec<_>>()
        };
        assert_eq!(
            names(&DecryptionOrder::default()),
            ["age", "pgp", "kms", "hc_vault"]
        );
        let custom = DecryptionOrder::parse("hc_vault, pgp").unwrap();
        assert_eq!(names(&custom), ["hc_vault", "pgp", "kms", "age"]);
        assert_eq!(DecryptionOrder::parse("age,pgp,age"), Err("age".into()));
    }
}
