//! PGP master keys (spec §5.3): the pure half. A fingerprint is validated here; the
//! wrapping itself is done by a [`PgpEngine`] the shell supplies (the user's GnuPG,
//! in `src/pgp.rs`), since it needs a process and the core does no I/O.
//!
//! Guarantees: a [`PgpFingerprint`] holds only hex digits (and sops' optional trailing
//! `!`), so it can never be read as an option by the program it is handed to; the
//! `sops.pgp` entry written is sops' shape: `fp` as given (spaces removed, as sops
//! does), `created_at` in RFC 3339 UTC, `enc` the armored message without a trailing
//! newline (sops trims gpg's output).

use super::KeyError;
use crate::core::metadata::MasterKey;
use std::fmt;
use std::sync::Arc;

/// A PGP key fingerprint or long key ID, as given to `--pgp`, `SOPS_PGP_FP` or a
/// `pgp:` rule.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct PgpFingerprint(String);

impl PgpFingerprint {
    /// Validates `text`: spaces are removed (sops: `strings.Replace(fp, " ", "", -1)`),
    /// then 16 (a long key ID), 40 (a v4 fingerprint) or 64 (v5) hex digits, optionally
    /// followed by `!` (GnuPG's "exactly this subkey").
    ///
    /// Errors: [`KeyError::BadRecipient`] saying what a fingerprint looks like.
    pub fn parse(text: &str) -> Result<PgpFingerprint, KeyError> {
        let fp: String = text.chars().filter(|c| *c != ' ').collect();
        let hex = fp.strip_suffix('!').unwrap_or(&fp);
        let ok = matches!(hex.len(), 16 | 40 | 64) && hex.bytes().all(|b| b.is_ascii_hexdigit());
        if !ok {
            return Err(KeyError::BadRecipient {
                recipient: text.to_string(),
                reason: "a PGP key is named by its fingerprint: 40 hex digits (or 64, or a 16-digit long key ID), as `gpg --list-keys --with-colons` prints it".into(),
            });
        }
        Ok(PgpFingerprint(fp))
    }

    /// The fingerprint as written to the file.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last 16 hex digits (the long key ID), with the `!` when there is one: what
    /// sops hands to `--trusted-key` (its `shortenFingerprint`).
    pub fn key_id(&self) -> &str {
        let bang = usize::from(self.0.ends_with('!'));
        let start = self.0.len().saturating_sub(16 + bang);
        &self.0[start..]
    }
}

impl fmt::Debug for PgpFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgpFingerprint({})", self.0)
    }
}

impl fmt::Display for PgpFingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Encrypts a data key (or a Shamir share) to a PGP key: implemented by the shell
/// with the user's GnuPG.
pub trait PgpEngine: Send + Sync {
    /// The ASCII-armored PGP message holding `secret`, encrypted to `fingerprint`.
    ///
    /// Errors: [`KeyError::Pgp`] naming the fingerprint and what went wrong.
    fn encrypt(&self, fingerprint: &PgpFingerprint, secret: &[u8]) -> Result<String, KeyError>;
}

/// A PGP key to wrap data keys for, with the engine that does it.
#[derive(Clone)]
pub struct PgpRecipient {
    fingerprint: PgpFingerprint,
    /// `created_at` for the entry: the time the key was added to the file (sops keeps
    /// an existing entry's, and stamps a new key with the current time).
    created_at: String,
    engine: Arc<dyn PgpEngine>,
}

impl PgpRecipient {
    /// A recipient for `fingerprint`, stamped `created_at` (RFC 3339, UTC).
    pub fn new(
        fingerprint: PgpFingerprint,
        created_at: String,
        engine: Arc<dyn PgpEngine>,
    ) -> PgpRecipient {
        PgpRecipient {
            fingerprint,
            created_at,
            engine,
        }
    }

    /// The key's fingerprint.
    pub fn fingerprint(&self) -> &PgpFingerprint {
        &self.fingerprint
    }

    /// Wraps `secret` into a `sops.pgp` entry.
    pub fn wrap(&self, secret: &[u8]) -> Result<MasterKey, KeyError> {
        let armored = self.engine.encrypt(&self.fingerprint, secret)?;
        Ok(MasterKey::Pgp {
            fingerprint: self.fingerprint.0.clone(),
            created_at: self.created_at.clone(),
            // sops stores gpg's output with surrounding whitespace trimmed.
            enc: armored.trim().to_string(),
        })
    }
}

impl PartialEq for PgpRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.fingerprint == other.fingerprint
    }
}

impl Eq for PgpRecipient {}

impl fmt::Debug for PgpRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PgpRecipient({})", self.fingerprint.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fingerprints_are_hex_with_spaces_removed_and_anything_else_is_refused() {
        let fp =
            PgpFingerprint::parse("FBC7 B9E2 A4F9 289A C0C1  D4FA 62F0 6C2E 1F2B 4D3A").unwrap();
        assert_eq!(fp.as_str(), "FBC7B9E2A4F9289AC0C1D4FA62F06C2E1F2B4D3A");
        assert_eq!(fp.key_id(), "62F06C2E1F2B4D3A");
        let bang = PgpFingerprint::parse("FBC7B9E2A4F9289AC0C1D4FA62F06C2E1F2B4D3A!").unwrap();
        assert_eq!(bang.key_id(), "62F06C2E1F2B4D3A!");
        for bad in [
            "",
            "--homedir=/tmp",
            "-rFBC7B9E2A4F9289AC0C1D4FA62F06C2E1F2B4D3",
            "FBC7B9E2",
            "FBC7B9E2A4F9289AC0C1D4FA62F06C2E1F2B4D3G",
            "FBC7B9E2A4F9289AC0C1D4FA62F06C2E1F2B4D3A!!",
            "alice@example.com",
        ] {
            assert!(PgpFingerprint::parse(bad).is_err(), "{bad:?} was accepted");
        }
    }

    struct Fixed;
    impl PgpEngine for Fixed {
        fn encrypt(&self, _: &PgpFingerprint, _: &[u8]) -> Result<String, KeyError> {
            Ok("-----BEGIN PGP MESSAGE-----\n\nx\n-----END PGP MESSAGE-----\n".into())
        }
    }

    #[test]
    fn the_entry_is_sops_shape_with_the_armor_trimmed() {
        let fp = PgpFingerprint::parse("62F06C2E1F2B4D3A").unwrap();
        let r = PgpRecipient::new(fp, "2026-12-04T10:00:00Z".into(), Arc::new(Fixed));
        assert_eq!(format!("{r:?}"), "PgpRecipient(62F06C2E1F2B4D3A)");
        let MasterKey::Pgp {
            fingerprint,
            created_at,
            enc,
        } = r.wrap(&[1; 32]).unwrap()
        else {
            panic!("not a pgp entry")
        };
        assert_eq!(fingerprint, "62F06C2E1F2B4D3A");
        assert_eq!(created_at, "2026-12-04T10:00:00Z");
        assert_eq!(
            enc,
            "-----BEGIN PGP MESSAGE-----\n\nx\n-----END PGP MESSAGE-----"
        );
    }
}
