//! A private GnuPG home for the PGP tests (tests/pgp.rs, tests/commands.rs): a fresh
//! encryption-capable key made by the real gpg, its agent stopped on drop.

#![allow(dead_code)]

use crate::support::{run_ok, tool};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A private GnuPG home with one encryption-capable key, its agent stopped on drop.
pub struct GnuPg {
    /// The home directory (GNUPGHOME).
    pub home: PathBuf,
    /// The key's 40-hex-digit fingerprint (empty for [`GnuPg::empty`]).
    pub fingerprint: String,
}

impl GnuPg {
    /// A home under `dir` (short paths: the agent's socket lives there).
    pub fn empty(dir: &Path, name: &str) -> GnuPg {
        let home = dir.join(name);
        std::fs::create_dir(&home).expect("gnupg home");
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .expect("chmod gnupg home");
        GnuPg {
            home,
            fingerprint: String::new(),
        }
    }

    /// A home with a fresh key (DEPENDENCIES.md "PGP": `default default never` gives
    /// an encryption subkey).
    pub fn with_key(dir: &Path, name: &str) -> GnuPg {
        let mut g = GnuPg::empty(dir, name);
        run_ok(g.gpg().args([
            "--batch",
            "--pinentry-mode",
            "loopback",
            "--passphrase",
            "",
            "--quick-gen-key",
            &format!("{name} <{name}@example.test>"),
            "default",
            "default",
            "never",
        ]));
        let listing = run_ok(g.gpg().args(["--batch", "--with-colons", "--list-keys"]));
        g.fingerprint = String::from_utf8(listing)
            .expect("utf-8")
            .lines()
            .find_map(|l| l.strip_prefix("fpr:"))
            .map(|rest| rest.trim_matches(':').to_string())
            .expect("gpg lists the key's fingerprint");
        assert_eq!(g.fingerprint.len(), 40, "{}", g.fingerprint);
        g
    }

    /// `gpg` with this home.
    pub fn gpg(&self) -> Command {
        let mut c = Command::new(tool("gpg"));
        c.env("GNUPGHOME", &self.home);
        c
    }
}

impl Drop for GnuPg {
    fn drop(&mut self) {
        let _ = Command::new(tool("gpgconf"))
            .env("GNUPGHOME", &self.home)
            .args(["--kill", "gpg-agent"])
            .output();
    }
}
