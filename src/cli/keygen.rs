//! `sopsync keygen`: a new age identity, written like `age-keygen` does; `--pq` makes a
//! post-quantum one, like `age-keygen -pq` (age v1.3, issue 15).

use super::{now_utc, write_stdout};
use crate::core::keys::age::pq_identity_from_seed;
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
    /// Generate a post-quantum (ML-KEM-768 + X25519) identity: an `age1pq1…` recipient,
    /// which sops 3.11 and age 1.3 can encrypt to.
    #[arg(long)]
    pq: bool,
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    let (secret, recipient) = if a.pq {
        // age §PQ: the identity is 32 bytes from a CSPRNG (the core takes the seed).
        let mut seed = zeroize::Zeroizing::new([0u8; 32]);
        rand_core::RngCore::fill_bytes(&mut rand_core::OsRng, &mut seed[..]);
        pq_identity_from_seed(&seed)
    } else {
        let id = age::x25519::Identity::generate();
        let secret = zeroize::Zeroizing::new(id.to_string().expose_secret().to_string());
        (secret, id.to_public().to_string())
    };
    let text = zeroize::Zeroizing::new(format!(
        "# created: {}\n# public key: {recipient}\n{}\n",
        now_utc().to_rfc3339(),
        &*secret
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
