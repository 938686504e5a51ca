//! `sopsync keygen`: a new age identity, written like `age-keygen` does.

use super::{now_utc, write_stdout};
use crate::error::CliError;
use age::secrecy::ExposeSecret;
use std::io::Write;
use std::path::PathBuf;

/// `keygen` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write the identity to this file (mode 0600; refused if it exists) instead of stdout.
    #[arg(short = 'o', long)]
    output: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    let id = age::x25519::Identity::generate();
    let recipient = id.to_public().to_string();
    let secret = id.to_string();
    let text = zeroize::Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        now_utc().to_rfc3339(),
        secret.expose_secret()
    ));
    match a.output {
        None => write_stdout(text.as_bytes()),
        Some(path) => {
            use std::os::unix::fs::OpenOptionsExt;
            let werr = |source| CliError::Write {
                path: path.display().to_string(),
                source,
            };
            let mut f = std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(0o600)
                .open(&path)
                .map_err(werr)?;
            f.write_all(text.as_bytes()).map_err(werr)?;
            eprintln!("Public key: {recipient}");
            Ok(())
        }
    }
}
