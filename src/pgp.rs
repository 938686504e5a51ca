//! PGP through the user's GnuPG (spec §5.3, issue 15): the `gpg` binary and its agent,
//! as sops runs them, so that smartcards, agents and pinentry work as the user has
//! set them up. The pure half (fingerprints, the `sops.pgp` entry) is
//! `core::keys::pgp`.
//!
//! Guarantees:
//! - the command lines are sops' (pgp/keysource.go): encrypt with
//!   `--no-default-recipient --yes --encrypt --armor --recipient FP --trusted-key ID
//!   --no-encrypt-to`, decrypt with `--decrypt`; the only user string on them is a
//!   fingerprint validated as hex ([`PgpFingerprint`]), so none can be read as an
//!   option, and no file name is ever passed;
//! - the data key and the wrapped message go through a pipe on standard input, never
//!   a file or an argument; the unwrapped key comes back on a pipe into a zeroizing
//!   buffer;
//! - gpg runs under [`crate::child`]'s deadline and output caps
//!   (`SOPSYNC_GPG_TIMEOUT` seconds, default 60), with an environment built from a
//!   list of the variables GnuPG and its pinentry read, not inherited wholesale;
//! - a failure is reported as gpg's own last `gpg:` line (gpg prints no key material
//!   on standard error) with the fingerprint.
//!
//! Assumptions: `SOPS_GPG_EXEC` names GnuPG when `gpg` on PATH is not it (as in sops).

use crate::core::keys::{KeyBackend, KeyError, PgpEngine, PgpFingerprint};
use crate::core::metadata::MasterKey;
use std::ffi::OsString;
use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;
use zeroize::Zeroizing;

/// Most bytes handed to gpg on standard input. They are written into the pipe before
/// gpg starts, so they must fit its buffer even at its smallest (one 4 KiB page, when
/// a user has used up `pipe-user-pages-soft`). A data key is 32 bytes and one
/// recipient's armored message under 2 KiB even for RSA 4096.
const MAX_STDIN: usize = 4096;

/// Most standard output kept: an armored message for one recipient, or a data key.
const MAX_STDOUT: usize = 64 * 1024;

/// Standard error kept for the error message.
const MAX_STDERR: usize = 16 * 1024;

/// Default of `SOPSYNC_GPG_TIMEOUT`: long enough for a person to answer pinentry or
/// touch a smartcard, short enough that a stuck agent ends.
const DEFAULT_TIMEOUT_SECS: u64 = 60;

/// The variables GnuPG, its agent and pinentry read, passed through from our
/// environment when set (STYLE.md 26: the environment is built, not inherited).
const PASSED_ENV: &[&str] = &[
    "PATH",
    "HOME",
    "GNUPGHOME",
    "GPG_TTY",
    "TERM",
    "DISPLAY",
    "WAYLAND_DISPLAY",
    "XAUTHORITY",
    "DBUS_SESSION_BUS_ADDRESS",
    "PINENTRY_USER_DATA",
    "XDG_RUNTIME_DIR",
    "LANG",
    "LANGUAGE",
    "LC_ALL",
    "LC_CTYPE",
    "LC_MESSAGES",
];

/// The user's GnuPG (the CLI) or a private one (the controller).
#[derive(Clone, Debug)]
pub struct Gpg {
    program: OsString,
    /// `--homedir`: set for a private home; `None` uses GNUPGHOME or ~/.gnupg.
    home: Option<PathBuf>,
    env: Vec<(OsString, OsString)>,
    timeout: Duration,
    /// A person may answer pinentry on this terminal: gpg stays in our foreground
    /// process group and runs without `--batch`.
    on_terminal: bool,
    /// Set once a `pgp` entry has been tried: "what was tried" lists name GnuPG only
    /// then (a file without PGP entries never runs gpg). Shared by clones.
    tried: Arc<AtomicBool>,
}

impl Gpg {
    /// The user's GnuPG as sops finds it: `SOPS_GPG_EXEC`, else `gpg` on PATH, with
    /// GNUPGHOME (or ~/.gnupg) and the agent it finds there.
    ///
    /// Errors: `SOPSYNC_GPG_TIMEOUT` is not a positive number of seconds.
    pub fn from_env() -> Result<Gpg, String> {
        let program = std::env::var_os("SOPS_GPG_EXEC")
            .filter(|p| !p.is_empty())
            .unwrap_or_else(|| "gpg".into());
        let env = PASSED_ENV
            .iter()
            .filter_map(|k| std::env::var_os(k).map(|v| (OsString::from(k), v)))
            .collect();
        let timeout = match std::env::var("SOPSYNC_GPG_TIMEOUT") {
            Err(_) => DEFAULT_TIMEOUT_SECS,
            Ok(v) => v
                .trim()
                .parse::<u64>()
                .ok()
                .filter(|s| *s > 0)
                .ok_or_else(|| {
                    format!("SOPSYNC_GPG_TIMEOUT={v:?} is not a positive number of seconds")
                })?,
        };
        Ok(Gpg {
            program,
            home: None,
            env,
            timeout: Duration::from_secs(timeout),
            on_terminal: std::io::stdin().is_terminal() || std::io::stderr().is_terminal(),
            tried: Arc::default(),
        })
    }

    /// A GnuPG confined to `home` (a private 0700 directory), never prompting: the
    /// controller's, which imports a key Secret's `*.asc` entries there.
    pub fn isolated(program: OsString, home: PathBuf, timeout: Duration) -> Gpg {
        let env = [("PATH", std::env::var_os("PATH"))]
            .into_iter()
            .filter_map(|(k, v)| v.map(|v| (OsString::from(k), v)))
            .chain([
                (OsString::from("HOME"), home.clone().into_os_string()),
                (OsString::from("GNUPGHOME"), home.clone().into_os_string()),
                // gpg's messages are summarized in errors and logs: keep them stable.
                (OsString::from("LC_ALL"), OsString::from("C")),
            ])
            .collect();
        Gpg {
            program,
            home: Some(home),
            env,
            timeout,
            on_terminal: false,
            tried: Arc::default(),
        }
    }

    /// Runs gpg with `args` (after the common options), `input` on standard input.
    ///
    /// Errors: a sentence saying why gpg did not succeed (never the input).
    pub fn run(&self, args: &[&str], input: &[u8]) -> Result<Zeroizing<Vec<u8>>, String> {
        if input.len() > MAX_STDIN {
            return Err(format!(
                "{} bytes to hand to gpg, more than a sops PGP entry holds ({MAX_STDIN})",
                input.len()
            ));
        }
        let (reader, mut writer) =
            std::io::pipe().map_err(|e| format!("cannot make a pipe for gpg: {e}"))?;
        // Fits the pipe's buffer (MAX_STDIN), so this returns before gpg starts.
        writer
            .write_all(input)
            .map_err(|e| format!("cannot write to gpg's pipe: {e}"))?;
        drop(writer);
        self.run_with_stdin(args, Stdio::from(reader))
    }

    /// [`Gpg::run`] with standard input already set up.
    fn run_with_stdin(&self, args: &[&str], stdin: Stdio) -> Result<Zeroizing<Vec<u8>>, String> {
        let mut cmd = Command::new(&self.program);
        cmd.env_clear().envs(self.env.iter().map(|(k, v)| (k, v)));
        if let Some(home) = &self.home {
            cmd.arg("--homedir").arg(home);
        }
        if !self.on_terminal {
            // Nobody can answer a prompt: fail instead of waiting for the deadline.
            cmd.arg("--batch");
        }
        cmd.args(args).stdin(stdin);
        let limits = crate::child::Limits {
            timeout: self.timeout,
            max_stdout: MAX_STDOUT,
            max_stderr: Some(MAX_STDERR),
            on_terminal: self.on_terminal,
        };
        let shown = PathBuf::from(&self.program).display().to_string();
        let out = crate::child::run(&mut cmd, &limits).map_err(|e| match e {
            crate::child::ChildError::Spawn(err) => format!(
                "cannot start `{shown}` ({err}); install GnuPG or set SOPS_GPG_EXEC to its path"
            ),
            crate::child::ChildError::Timeout(_) => format!(
                "`{shown}` {e} and was ended; raise SOPSYNC_GPG_TIMEOUT (seconds) if it needs longer"
            ),
            e => format!("`{shown}`: {e}"),
        })?;
        if !out.status.success() {
            return Err(format!(
                "gpg failed ({}): {}",
                out.status,
                summarize_stderr(&out.stderr)
            ));
        }
        Ok(out.stdout)
    }

    /// A short description for "what was tried" lists.
    fn describe_home(&self) -> String {
        match &self.home {
            Some(h) => format!("--homedir {}", h.display()),
            None => match self.env.iter().find(|(k, _)| k == "GNUPGHOME") {
                Some((_, v)) => format!("GNUPGHOME={}", PathBuf::from(v).display()),
                None => "~/.gnupg".into(),
            },
        }
    }
}

/// gpg's last `gpg:` line (its conclusion, e.g. "decryption failed: No secret key"),
/// else its last line; at most 300 characters.
fn summarize_stderr(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect();
    let line = lines
        .iter()
        .rev()
        .find_map(|l| l.strip_prefix("gpg: "))
        .or_else(|| lines.last().copied())
        .unwrap_or("no message on standard error");
    line.chars().take(300).collect()
}

impl PgpEngine for Gpg {
    fn encrypt(&self, fingerprint: &PgpFingerprint, secret: &[u8]) -> Result<String, KeyError> {
        let fp = fingerprint.as_str();
        let args = [
            "--no-default-recipient",
            "--yes",
            "--encrypt",
            "--armor",
            "--recipient",
            fp,
            "--trusted-key",
            fingerprint.key_id(),
            "--no-encrypt-to",
        ];
        let fail = |reason: String| KeyError::Pgp {
            fingerprint: fp.to_string(),
            reason: format!("cannot encrypt the data key: {reason}"),
        };
        let out = self.run(&args, secret).map_err(fail)?;
        let text = String::from_utf8(out.to_vec())
            .map_err(|_| fail("gpg's output is not ASCII armor".into()))?;
        if !text.trim_start().starts_with("-----BEGIN PGP MESSAGE-----") {
            return Err(fail("gpg's output is not an armored PGP message".into()));
        }
        Ok(text)
    }
}

impl KeyBackend for Gpg {
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        let MasterKey::Pgp {
            fingerprint, enc, ..
        } = key
        else {
            return Ok(None);
        };
        self.tried.store(true, Ordering::Relaxed);
        let fail = |reason: String| KeyError::Pgp {
            fingerprint: fingerprint.clone(),
            reason,
        };
        let out = self.run(&["--decrypt"], enc.as_bytes()).map_err(fail)?;
        if out.is_empty() {
            // sops: an old GnuPG drops AEAD packets it cannot read and exits 0.
            return Err(fail(
                "gpg returned no data key (an AEAD message read by an older GnuPG?)".into(),
            ));
        }
        Ok(Some(out))
    }

    fn handles(&self, key: &MasterKey) -> bool {
        matches!(key, MasterKey::Pgp { .. })
    }

    fn describe(&self) -> String {
        if !self.tried.load(Ordering::Relaxed) {
            return String::new();
        }
        format!(
            "GnuPG `{}` ({})",
            PathBuf::from(&self.program).display(),
            self.describe_home()
        )
    }
}

/// Most bytes of one `*.asc` key entry: an armored RSA 4096 secret key with subkeys
/// is under 16 KiB; a megabyte is not a key.
const MAX_KEY_ENTRY: usize = 1 << 20;

/// The controller's GnuPG for one reconcile (issue 15): a private home, 0700, in the
/// temporary directory (the chart mounts `/tmp` in memory), holding the `*.asc` keys of
/// one key Secret. Dropping it stops the agent GnuPG started there (`gpgconf --kill`,
/// since the agent leaves gpg's process group) and removes the directory with the
/// keys GnuPG stored in it (STYLE.md 25: keys live for one reconcile).
pub struct PrivateGnupg {
    gpg: Gpg,
    /// Removed on drop, after the agent has been stopped (field order: `gpg` first).
    dir: tempfile::TempDir,
    /// The entries imported, for "what was tried" lists.
    names: Vec<String>,
}

impl PrivateGnupg {
    /// A new empty home (GnuPG from `SOPS_GPG_EXEC`, else `gpg` on PATH).
    ///
    /// Errors: the directory cannot be made, or `SOPSYNC_GPG_TIMEOUT` is malformed.
    pub fn new() -> Result<PrivateGnupg, String> {
        let user = Gpg::from_env()?;
        let dir = tempfile::Builder::new()
            .prefix("sopsync-gnupg-")
            .tempdir()
            .map_err(|e| format!("cannot make a private GnuPG home: {e}"))?;
        let gpg = Gpg::isolated(user.program, dir.path().to_path_buf(), user.timeout);
        Ok(PrivateGnupg {
            gpg,
            dir,
            names: Vec::new(),
        })
    }

    /// Imports one armored key (`name` says where it came from, for messages). The key
    /// reaches gpg through a pipe, never a file of ours.
    ///
    /// Errors: gpg's reason, or a key larger than any key.
    pub fn import(&mut self, armored: &[u8], name: &str) -> Result<(), String> {
        if armored.len() > MAX_KEY_ENTRY {
            return Err(format!(
                "{name}: larger than any PGP key ({MAX_KEY_ENTRY} bytes)"
            ));
        }
        let (reader, mut writer) =
            std::io::pipe().map_err(|e| format!("cannot make a pipe for gpg: {e}"))?;
        // A key may exceed the pipe's buffer: a thread feeds it while gpg reads. If
        // gpg stops reading, the thread gets EPIPE once gpg and our copy of the read
        // end are gone, and ends.
        let data = Zeroizing::new(armored.to_vec());
        let feeder = std::thread::spawn(move || {
            let _ = writer.write_all(&data);
        });
        let result = self.gpg.run_with_stdin(&["--import"], Stdio::from(reader));
        let _ = feeder.join();
        result.map_err(|e| format!("{name}: cannot import the key: {e}"))?;
        self.names.push(name.to_string());
        Ok(())
    }

    /// True when no key has been imported.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }
}

impl KeyBackend for PrivateGnupg {
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        self.gpg.unwrap(key)
    }

    fn handles(&self, key: &MasterKey) -> bool {
        matches!(key, MasterKey::Pgp { .. })
    }

    fn describe(&self) -> String {
        format!("PGP keys from {}", self.names.join(", "))
    }
}

impl Drop for PrivateGnupg {
    fn drop(&mut self) {
        let mut cmd = Command::new("gpgconf");
        cmd.env_clear()
            .envs(self.gpg.env.iter().map(|(k, v)| (k, v)))
            .arg("--homedir")
            .arg(self.dir.path())
            .args(["--kill", "gpg-agent"])
            .stdin(Stdio::null());
        let limits = crate::child::Limits {
            timeout: Duration::from_secs(10),
            max_stdout: 4096,
            max_stderr: Some(4096),
            on_terminal: false,
        };
        if let Err(e) = crate::child::run(&mut cmd, &limits) {
            tracing::warn!(error = %e, "could not stop the gpg-agent of a private GnuPG home");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_is_gpgs_last_word() {
        let stderr = b"gpg: encrypted with 3072-bit RSA key, ID 0123456789ABCDEF, created 2026-01-01\n      \"a <a@b>\"\ngpg: decryption failed: No secret key\n";
        assert_eq!(summarize_stderr(stderr), "decryption failed: No secret key");
        assert_eq!(summarize_stderr(b"boom\n"), "boom");
        assert_eq!(summarize_stderr(b""), "no message on standard error");
    }
}
