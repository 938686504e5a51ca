//! The binary's errors: what went wrong, where, the exit code (sops' codes where we
//! mirror a sops command, spec §9.5) and one line saying what to do. Never a value.

use crate::core::error::CoreError;
use std::path::PathBuf;

/// A failure of a CLI command.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum CliError {
    /// A core operation failed on a file.
    #[error("{file}: {source}")]
    Core {
        /// The file.
        file: String,
        /// What failed.
        source: CoreError,
    },
    /// The input file does not exist or cannot be read (sops exit 100 / 2).
    #[error("{path}: {source}")]
    Read {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// Output could not be written (sops exit 3).
    #[error("could not write {path}: {source}")]
    Write {
        /// Where.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
    /// `.sops.yaml` is invalid or missing what is needed (sops exit 1).
    #[error("{0}")]
    Config(String),
    /// Flags that cannot be combined (sops exit 8).
    #[error("{0}")]
    Conflict(String),
    /// `--extract` path syntax or lookup problems (sops exit 91 / 1).
    #[error("{message}")]
    Extract {
        /// What is wrong.
        message: String,
        /// 91 for bad syntax, 1 for a missing path.
        code: i32,
    },
    /// Encryption found no recipients (sops exit 1 for the config case).
    #[error("no recipients: config file not found, or has no creation rules, and no keys provided through command line options")]
    NoRecipients,
    /// A render or other sopsync-only failure with its own exit code.
    #[error("{message}")]
    Other {
        /// What is wrong.
        message: String,
        /// Exit code.
        code: i32,
        /// What to do.
        hint: Option<String>,
    },
}

impl CliError {
    /// The process exit code.
    pub fn exit_code(&self) -> i32 {
        match self {
            CliError::Core { source, .. } => source.exit_code(),
            CliError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => 100,
            CliError::Read { .. } => 2,
            CliError::Write { .. } => 3,
            CliError::Config(_) | CliError::NoRecipients => 1,
            CliError::Conflict(_) => 8,
            CliError::Extract { code, .. } => *code,
            CliError::Other { code, .. } => *code,
        }
    }

    /// One line saying what to do, when there is something useful to say.
    pub fn hint(&self) -> Option<String> {
        match self {
            CliError::Core { source, .. } => match source {
                CoreError::NoMatchingKey { .. } | CoreError::NotEnoughShares { .. } => Some(
                    // sopsync tries age identities, then GnuPG (§5.5): one line for each.
                    "for an age recipient, set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY / SOPS_AGE_KEY_CMD, or SOPS_AGE_SSH_PRIVATE_KEY_FILE for an SSH key) to its identity; for a pgp fingerprint, import its secret key into GnuPG (gpg --import; GNUPGHOME names the keyring)".into(),
                ),
                CoreError::MacMismatch | CoreError::MacUndecryptable { .. } | CoreError::NoMac => Some(
                    "the file was modified outside sops; restore it from version control (or pass --ignore-mac to inspect it)".into(),
                ),
                CoreError::DecryptValue { .. } | CoreError::NotCiphertext { .. } => {
                    Some("the file was modified outside sops; restore it from version control".into())
                }
                CoreError::MetadataNotFound => Some("encrypt it first: sopsync encrypt --age <recipient> FILE".into()),
                CoreError::AlreadyEncrypted { .. } => Some("decrypt it first, or edit it with sopsync edit".into()),
                _ => None,
            },
            CliError::NoRecipients => Some("pass --age age1..., set SOPS_AGE_RECIPIENTS, or add a creation rule to .sops.yaml".into()),
            CliError::Read { source, .. } if source.kind() == std::io::ErrorKind::NotFound => Some("check the path".into()),
            CliError::Other { hint, .. } => hint.clone(),
            _ => None,
        }
    }
}
