//! The only reader of sops' key environment (spec §5.2, §9.4): `SOPS_AGE_KEY`,
//! `SOPS_AGE_KEY_FILE`, `SOPS_AGE_KEY_CMD`, the default `keys.txt`, SSH keys
//! (`SOPS_AGE_SSH_PRIVATE_KEY_FILE`, `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`), and
//! `SOPS_AGE_RECIPIENTS`. Every source found is combined; a failing source is only
//! reported if decryption fails in the end. Also where the CLI's PGP keys come from:
//! the user's GnuPG (`SOPS_GPG_EXEC`) and `SOPS_PGP_FP`; its AWS KMS keys
//! (`SOPS_KMS_ARN`, the AWS SDK's default credentials chain); and where rule keys
//! become recipients.

use crate::core::keys::AgeIdentities;
use std::io::IsTerminal;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Most bytes a key file may hold. An age identity line is 74 bytes and age-keygen adds
/// two comment lines, ~200 bytes a key: a megabyte is thousands of keys, and a file
/// larger than that is not a key file (or is `/dev/zero`).
pub const MAX_KEY_FILE_BYTES: u64 = 1 << 20;

/// Reads a key file (`SOPS_AGE_KEY_FILE`, the default `keys.txt`, the controller's
/// `--controller-key-file`).
///
/// Guarantees: returns promptly whatever the path names. The file is opened with
/// `O_NONBLOCK`, so a FIFO does not wait for a writer, and its type is checked on the
/// open descriptor (no race with a rename): anything but a regular file (FIFO, device,
/// socket, directory) is refused. At most [`MAX_KEY_FILE_BYTES`] are read.
///
/// Errors: a sentence saying what is wrong with the file (never its content).
pub fn read_key_file(path: &Path) -> Result<Zeroizing<String>, String> {
    use crate::small_file::{read_small_file, SmallFileError};
    let mut bytes = read_small_file(path, MAX_KEY_FILE_BYTES).map_err(|e| match e {
        SmallFileError::NotRegular => format!("{e}; point it at a file holding age identities"),
        SmallFileError::TooLarge(_) => {
            format!("{e}, more than any key file holds; is it the right file?")
        }
        e => e.to_string(),
    })?;
    let text = String::from_utf8(std::mem::take(&mut *bytes)).map_err(|e| {
        // The rejected bytes are key material: wipe them too.
        drop(Zeroizing::new(e.into_bytes()));
        "not UTF-8 text".to_string()
    })?;
    Ok(Zeroizing::new(text))
}

/// The default key file: `$XDG_CONFIG_HOME/sops/age/keys.txt`, else
/// `~/.config/sops/age/keys.txt` (Linux and other Unix).
pub fn default_key_file() -> Option<PathBuf> {
    if let Some(x) = std::env::var_os("XDG_CONFIG_HOME").filter(|v| !v.is_empty()) {
        return Some(PathBuf::from(x).join("sops/age/keys.txt"));
    }
    std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".config/sops/age/keys.txt"))
}

/// Splits a command line shell-style (quotes and backslashes), without a shell.
pub fn split_command(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut have = false;
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        match c {
            '\'' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                have = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(ch @ ('"' | '\\' | '$' | '`')) => cur.push(ch),
                            Some(ch) => {
                                cur.push('\\');
                                cur.push(ch);
                            }
                            None => return Err("unterminated double quote".into()),
                        },
                        Some(ch) => cur.push(ch),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                have = true;
                if let Some(ch) = chars.next() {
                    cur.push(ch);
                }
            }
            c if c.is_whitespace() => {
                if have {
                    out.push(std::mem::take(&mut cur));
                    have = false;
                }
            }
            c => {
                have = true;
                cur.push(c);
            }
        }
    }
    if have {
        out.push(cur);
    }
    Ok(out)
}

/// The default of `SOPSYNC_AGE_KEY_CMD_TIMEOUT`: long enough for a person to answer
/// a pinentry or password-manager prompt, short enough that a stuck command ends.
const KEY_COMMAND_TIMEOUT_SECS: u64 = 60;

/// Most output accepted from the key command: a file of thousands of age identities
/// is far smaller.
const KEY_COMMAND_MAX_OUTPUT: usize = 1 << 20;

/// The key command's time limit: `SOPSYNC_AGE_KEY_CMD_TIMEOUT` seconds when set (a
/// positive whole number), else the default.
fn key_command_timeout() -> Result<std::time::Duration, String> {
    let secs = match std::env::var("SOPSYNC_AGE_KEY_CMD_TIMEOUT") {
        Err(_) => KEY_COMMAND_TIMEOUT_SECS,
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| {
                format!("SOPSYNC_AGE_KEY_CMD_TIMEOUT={v:?} is not a positive number of seconds")
            })?,
    };
    Ok(std::time::Duration::from_secs(secs))
}

/// Runs the key command (no shell) under a deadline and an output cap; on timeout its
/// whole process group is ended (see [`crate::child`]).
fn run_key_command(line: &str) -> Result<Zeroizing<String>, String> {
    let argv = split_command(line)?;
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let limits = crate::child::Limits {
        timeout: key_command_timeout()?,
        max_stdout: KEY_COMMAND_MAX_OUTPUT,
        // Its prompts and errors go to our stderr, as with sops.
        max_stderr: None,
        // A person at a terminal may be asked for a passphrase (pinentry-curses, a
        // password manager opening /dev/tty): the command must stay in the foreground
        // process group to read it. Without a terminal (CI, the controller) it leads
        // its own group, so a timeout ends everything it started.
        on_terminal: std::io::stdin().is_terminal() || std::io::stderr().is_terminal(),
    };
    let mut cmd = std::process::Command::new(prog);
    cmd.args(args).stdin(std::process::Stdio::null());
    let out = crate::child::run(&mut cmd, &limits).map_err(|e| match e {
        crate::child::ChildError::Timeout(_) => format!(
            "`{prog}` {e} and was ended; raise SOPSYNC_AGE_KEY_CMD_TIMEOUT (seconds) if it needs longer"
        ),
        _ => format!("`{prog}`: {e}"),
    })?;
    let text = Zeroizing::new(
        String::from_utf8(out.stdout.to_vec()).map_err(|_| "output is not UTF-8".to_string())?,
    );
    if !out.status.success() {
        return Err(format!("`{prog}` exited with {}", out.status));
    }
    Ok(text)
}

/// Collects age identities from every sops source present in the environment.
pub fn age_identities() -> AgeIdentities {
    let mut ids = AgeIdentities::new();
    if let Ok(key) = std::env::var("SOPS_AGE_KEY") {
        let key = Zeroizing::new(key);
        ids.add_source(&key, "SOPS_AGE_KEY");
    }
    if let Some(path) = std::env::var_os("SOPS_AGE_KEY_FILE") {
        let name = format!("SOPS_AGE_KEY_FILE={}", PathBuf::from(&path).display());
        match read_key_file(path.as_ref()) {
            Ok(text) => ids.add_source(&text, &name),
            Err(e) => ids.add_failed_source(&name, &e),
        }
    }
    if let Ok(cmd) = std::env::var("SOPS_AGE_KEY_CMD") {
        let name = "SOPS_AGE_KEY_CMD";
        match run_key_command(&cmd) {
            Ok(text) => ids.add_source(&text, name),
            Err(e) => ids.add_failed_source(name, &e),
        }
    }
    if let Some(path) = default_key_file() {
        if path.exists() {
            let name = path.display().to_string();
            match read_key_file(&path) {
                Ok(text) => ids.add_source(&text, &name),
                Err(e) => ids.add_failed_source(&name, &e),
            }
        }
    }
    add_ssh_keys(&mut ids);
    ids
}

/// SSH private keys as sops 3.11 loads them (age/keysource.go): the file named by
/// `SOPS_AGE_SSH_PRIVATE_KEY_FILE` when set, and also `~/.ssh/id_ed25519` and
/// `~/.ssh/id_rsa` when they exist.
fn add_ssh_keys(ids: &mut AgeIdentities) {
    let mut paths = Vec::new();
    if let Some(path) = std::env::var_os("SOPS_AGE_SSH_PRIVATE_KEY_FILE") {
        paths.push(PathBuf::from(path));
    }
    if let Some(home) = std::env::var_os("HOME").filter(|h| !h.is_empty()) {
        for name in ["id_ed25519", "id_rsa"] {
            let p = PathBuf::from(&home).join(".ssh").join(name);
            if p.exists() {
                paths.push(p);
            }
        }
    }
    for path in paths {
        let name = path.display().to_string();
        match std::fs::read(&path) {
            Ok(pem) => ids.add_ssh_key(&Zeroizing::new(pem), &name, TtyPrompt::open()),
            Err(e) => ids.add_failed_source(&name, &e.to_string()),
        }
    }
}

/// Asks for an SSH key's passphrase on the controlling terminal (`/dev/tty`), with
/// echo off, as sops does; there is none without a terminal.
struct TtyPrompt;

impl TtyPrompt {
    fn open() -> Option<std::sync::Arc<dyn crate::core::keys::PassphrasePrompt>> {
        std::fs::File::open("/dev/tty")
            .is_ok()
            .then(|| std::sync::Arc::new(TtyPrompt) as _)
    }
}

impl crate::core::keys::PassphrasePrompt for TtyPrompt {
    fn passphrase(&self, key_name: &str) -> Option<age::secrecy::SecretString> {
        use rustix::termios::{tcgetattr, tcsetattr, LocalModes, OptionalActions};
        use std::io::{BufRead, Write};
        let mut tty = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .open("/dev/tty")
            .ok()?;
        let saved = tcgetattr(&tty).ok()?;
        let mut quiet = saved.clone();
        quiet.local_modes.remove(LocalModes::ECHO);
        tcsetattr(&tty, OptionalActions::Now, &quiet).ok()?;
        let _ = write!(tty, "Enter passphrase for {key_name:?}: ");
        let _ = tty.flush();
        let mut line = Zeroizing::new(String::new());
        let read = std::io::BufReader::new(&tty).read_line(&mut line);
        // Echo comes back whatever the read gave.
        let _ = tcsetattr(&tty, OptionalActions::Now, &saved);
        let _ = writeln!(tty);
        read.ok()?;
        let pass = line.trim_end_matches(['\n', '\r']);
        Some(age::secrecy::SecretString::from(pass.to_string()))
    }
}

/// Every key source of the CLI as one backend: the age identities, then the user's
/// GnuPG, then AWS KMS (sops tries age, then pgp, then the other types, §5.5; gpg runs
/// only for a `pgp` entry, KMS is called only for a `kms` entry).
pub fn keys() -> crate::core::keys::Keyring {
    let mut ring = crate::core::keys::Keyring::new();
    ring.push(age_identities());
    match crate::pgp::Gpg::from_env() {
        Ok(gpg) => ring.push(gpg),
        Err(reason) => ring.push(Unusable {
            what: "GnuPG",
            kind: "pgp",
            reason,
        }),
    }
    match crate::kms::AwsKms::from_default_chain() {
        Ok(kms) => ring.push(kms),
        Err(reason) => ring.push(Unusable {
            what: "AWS KMS",
            kind: "kms",
            reason,
        }),
    }
    ring
}

/// A backend that could not be set up: says why for each entry of its type.
pub struct Unusable {
    /// What could not be set up, for "what was tried" lists.
    pub what: &'static str,
    /// The metadata list name of the entries it answers (`pgp`, `kms`).
    pub kind: &'static str,
    /// Why, and what to do.
    pub reason: String,
}

impl crate::core::keys::KeyBackend for Unusable {
    fn unwrap(
        &self,
        key: &crate::core::metadata::MasterKey,
    ) -> Result<Option<Zeroizing<Vec<u8>>>, crate::core::keys::KeyError> {
        if key.type_name() != self.kind {
            return Ok(None);
        }
        match key {
            crate::core::metadata::MasterKey::Pgp { fingerprint, .. } => {
                Err(crate::core::keys::KeyError::Pgp {
                    fingerprint: fingerprint.clone(),
                    reason: self.reason.clone(),
                })
            }
            crate::core::metadata::MasterKey::Other { fields, .. } => {
                Err(crate::core::keys::KeyError::Kms {
                    arn: fields
                        .get("arn")
                        .and_then(crate::core::tree::Value::as_str)
                        .unwrap_or("")
                        .to_string(),
                    reason: self.reason.clone(),
                })
            }
            _ => Ok(None),
        }
    }

    fn handles(&self, key: &crate::core::metadata::MasterKey) -> bool {
        key.type_name() == self.kind
    }

    fn describe(&self) -> String {
        format!("{} (unusable: {})", self.what, self.reason)
    }
}

/// The user's GnuPG, as the engine that wraps data keys for PGP recipients.
pub fn pgp_engine() -> Result<std::sync::Arc<dyn crate::core::keys::PgpEngine>, String> {
    Ok(std::sync::Arc::new(crate::pgp::Gpg::from_env()?))
}

/// `SOPS_PGP_FP`, when set and non-empty (sops: the `--pgp` flag's variable).
pub fn env_pgp_fingerprints() -> Option<String> {
    std::env::var("SOPS_PGP_FP")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// `SOPS_KMS_ARN`, when set and non-empty (sops: the `--kms` flag's variable).
pub fn env_kms_arns() -> Option<String> {
    std::env::var("SOPS_KMS_ARN")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

/// Recipients for keys named by text: age recipients, PGP fingerprints, AWS KMS ARNs
/// (new PGP and KMS keys are stamped `created_at` now, as sops does).
pub struct RecipientMaker {
    pgp: Option<std::sync::Arc<dyn crate::core::keys::PgpEngine>>,
    kms: Option<std::sync::Arc<crate::kms::AwsKms>>,
    /// `--encryption-context` for KMS keys named on the command line.
    kms_context: Vec<(String, String)>,
    /// `--aws-profile` for KMS keys named on the command line.
    aws_profile: Option<String>,
    now: String,
}

impl RecipientMaker {
    /// A maker stamping PGP and KMS keys with `now` (RFC 3339, UTC). GnuPG and the AWS
    /// SDK are set up only when a key of theirs is made.
    pub fn new(now: String) -> RecipientMaker {
        RecipientMaker {
            pgp: None,
            kms: None,
            kms_context: Vec::new(),
            aws_profile: None,
            now,
        }
    }

    /// Sets the encryption context (`--encryption-context`) and profile
    /// (`--aws-profile`) of KMS keys named on the command line.
    ///
    /// Errors: a malformed context (a pair that is not `key:value`).
    pub fn with_kms_options(
        mut self,
        context: Option<&str>,
        aws_profile: Option<&str>,
    ) -> Result<RecipientMaker, String> {
        self.kms_context = crate::core::keys::kms::parse_context(context.unwrap_or(""))
            .map_err(|e| format!("--encryption-context: {e}"))?;
        self.aws_profile = aws_profile.filter(|p| !p.is_empty()).map(String::from);
        Ok(self)
    }

    /// The AWS KMS engine, set up on first use.
    pub fn kms_engine(&mut self) -> Result<std::sync::Arc<crate::kms::AwsKms>, String> {
        if let Some(e) = &self.kms {
            return Ok(e.clone());
        }
        let e = std::sync::Arc::new(crate::kms::AwsKms::from_default_chain()?);
        self.kms = Some(e.clone());
        Ok(e)
    }

    /// The engines for the file's existing PGP and KMS entries (re-wrapping them).
    pub fn engines_for(
        &mut self,
        metadata: &crate::core::metadata::Metadata,
    ) -> Result<crate::core::keys::Engines, String> {
        let has = |name: &str| {
            metadata
                .key_groups
                .iter()
                .flat_map(|g| &g.keys)
                .any(|k| k.type_name() == name)
        };
        let mut engines = crate::core::keys::Engines::default();
        if has("pgp") {
            engines.pgp = Some(self.pgp_engine()?);
        }
        if has("kms") {
            engines.kms = Some(self.kms_engine()? as _);
        }
        Ok(engines)
    }

    /// An AWS KMS recipient for `arn` (`ARN` or `ARN+ROLE_ARN`, as sops takes them),
    /// with the command line's context and profile.
    pub fn kms(&mut self, arn: &str) -> Result<crate::core::keys::Recipient, String> {
        let key = self.kms_key(arn)?;
        self.kms_recipient(key)
    }

    /// The AWS KMS key `arn` names (`ARN` or `ARN+ROLE_ARN`), with the command line's
    /// context and profile, stamped now.
    pub fn kms_key(&self, arn: &str) -> Result<crate::core::keys::KmsKey, String> {
        crate::core::keys::KmsKey::from_arn(
            arn,
            self.kms_context.clone(),
            self.aws_profile.clone(),
            self.now.clone(),
        )
        .map_err(|e| format!("invalid KMS key: {e}"))
    }

    /// A recipient wrapping for `key` through the AWS SDK.
    pub fn kms_recipient(
        &mut self,
        key: crate::core::keys::KmsKey,
    ) -> Result<crate::core::keys::Recipient, String> {
        Ok(crate::core::keys::Recipient::Kms(
            crate::core::keys::KmsRecipient::new(key, self.kms_engine()?),
        ))
    }

    /// A rule's AWS KMS key, stamped now.
    ///
    /// Errors: an ARN no request could be routed for.
    pub fn rule_kms_key(
        &self,
        k: &crate::core::creation_rules::KmsRuleKey,
    ) -> Result<crate::core::keys::KmsKey, String> {
        let mut context = k.context.clone();
        context.sort();
        let key = crate::core::keys::KmsKey {
            arn: k.arn.replace(' ', ""),
            role: k.role.clone(),
            context,
            aws_profile: k.aws_profile.clone(),
            created_at: self.now.clone(),
        };
        key.region()
            .map_err(|e| format!("invalid KMS key in .sops.yaml: {e}"))?;
        Ok(key)
    }

    /// The engine for PGP keys, set up on first use.
    pub fn pgp_engine(
        &mut self,
    ) -> Result<std::sync::Arc<dyn crate::core::keys::PgpEngine>, String> {
        if let Some(e) = &self.pgp {
            return Ok(e.clone());
        }
        let e = pgp_engine()?;
        self.pgp = Some(e.clone());
        Ok(e)
    }

    /// An age recipient.
    pub fn age(&self, text: &str) -> Result<crate::core::keys::Recipient, String> {
        crate::core::keys::AgeRecipient::parse(text)
            .map(crate::core::keys::Recipient::Age)
            .map_err(|e| {
                let shown = crate::core::keys::age::display_recipient(text);
                format!("invalid age recipient `{shown}`: {e}")
            })
    }

    /// A PGP recipient.
    pub fn pgp(&mut self, fingerprint: &str) -> Result<crate::core::keys::Recipient, String> {
        let fp = crate::core::keys::PgpFingerprint::parse(fingerprint)
            .map_err(|e| format!("invalid PGP fingerprint: {e}"))?;
        Ok(crate::core::keys::Recipient::Pgp(
            crate::core::keys::PgpRecipient::new(fp, self.now.clone(), self.pgp_engine()?),
        ))
    }

    /// A rule's key.
    pub fn rule_key(
        &mut self,
        key: &crate::core::creation_rules::RuleKey,
    ) -> Result<crate::core::keys::Recipient, String> {
        use crate::core::creation_rules::RuleKey;
        match key {
            RuleKey::Age(r) => self.age(r),
            RuleKey::Pgp(fp) => self.pgp(fp),
            RuleKey::Kms(k) => {
                let key = self.rule_kms_key(k)?;
                self.kms_recipient(key)
            }
        }
    }

    /// A rule's key groups.
    pub fn rule_groups(
        &mut self,
        groups: &[Vec<crate::core::creation_rules::RuleKey>],
    ) -> Result<Vec<Vec<crate::core::keys::Recipient>>, String> {
        groups
            .iter()
            .map(|g| g.iter().map(|k| self.rule_key(k)).collect())
            .collect()
    }

    /// A key by its label (`repo::rekey`): `pgp:<fingerprint>`, else an age recipient.
    /// An AWS KMS label does not carry everything the key wraps with (its role,
    /// context and profile as given), so the caller resolves KMS labels to the keys
    /// they came from (`kms_recipient`) and a `kms:` label reaching here is refused.
    pub fn label(&mut self, label: &str) -> Result<crate::core::keys::Recipient, String> {
        if let Some(fp) = label.strip_prefix("pgp:") {
            self.pgp(fp)
        } else if label.starts_with("kms:") {
            Err(format!(
                "{label}: no AWS KMS key of the rule, the flags or the file has this label"
            ))
        } else {
            self.age(label)
        }
    }
}

/// `SOPS_AGE_RECIPIENTS`, when set and non-empty.
pub fn env_recipients() -> Option<String> {
    std::env::var("SOPS_AGE_RECIPIENTS")
        .ok()
        .filter(|s| !s.trim().is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_like_a_shell() {
        assert_eq!(
            split_command(r#"cat "/a b/key" 'x y' z\ w"#).unwrap(),
            vec!["cat", "/a b/key", "x y", "z w"]
        );
        assert!(split_command("echo 'open").is_err());
    }
}
