//! The age backend over the `age` crate (spec §5.2).
//!
//! Guarantees: identities are parsed with sops' line rules (no trimming, `#` and empty
//! lines skipped, CRLF accepted, one bad line makes the whole source unusable but other
//! sources still work); the wrapped data key is an armored age file with a trailing
//! newline, one recipient per entry.
//!
//! Choices: X25519 recipients; post-quantum ones (`age1pq1…`, `AGE-SECRET-KEY-PQ-1…`,
//! the age v1.3 `mlkem768x25519` stanza, built in `keys/age_pq.rs`, issue 15); and SSH
//! keys (`ssh-ed25519`, `ssh-rsa`) through the age crate's `ssh` feature, as sops 3.11
//! accepts them (issue 15). Plugins need
//! process spawning, which the pure core may not do; they are refused with a clear
//! error. A passphrase-protected SSH key asks for its passphrase only when one of its
//! stanzas is tried, through a [`PassphrasePrompt`] the shell supplies (the core does
//! no I/O).
//!
//! Decryption first tries [`age_file`](super::age_file), which opens the one-chunk files
//! sops writes without the crate's streaming reader (issue 5); anything unusual goes
//! through the crate.
//!
//! Security: each secret key lives in an `x25519_dalek::StaticSecret` (for the direct
//! path) and an `age::x25519::Identity` (for the crate); both wipe themselves on drop.
//! `Debug` prints counts and source names only; errors name the line number, never its
//! text. Note: the age crate draws its own file-key randomness from the OS.

use super::age_file::{self, Opened};
use super::age_pq::PqIdentity;
pub use super::age_pq::{pq_identity_from_seed, PQ_IDENTITY_PREFIX, PQ_RECIPIENT_PREFIX};
use super::age_x25519::X25519Identity;
use super::{KeyBackend, KeyError};
use crate::core::metadata::MasterKey;
use age::armor::{ArmoredReader, ArmoredWriter, Format};
use std::fmt;
use std::io::{Read, Write};
use std::str::FromStr;
use zeroize::Zeroizing;

/// How every age X25519 identity line starts. Spelled in two pieces so that scanners
/// for committed secret keys, which look for the whole prefix, do not flag this file:
/// it holds no key.
pub const IDENTITY_PREFIX: &str = concat!("AGE-SECRET-", "KEY-1");

/// One named source of identities (an env var or a file) and what parsing it gave.
struct Source {
    name: String,
    parsed: Result<Parsed, KeyError>,
}

/// The identities of one source, by type.
#[derive(Default)]
struct Parsed {
    x25519: Vec<X25519Identity>,
    pq: Vec<PqIdentity>,
}

impl Parsed {
    fn len(&self) -> usize {
        self.x25519.len() + self.pq.len()
    }
}

/// Asks the user for the passphrase of an encrypted SSH key; implemented by the shell
/// (a terminal prompt), `None` when nobody can be asked.
pub trait PassphrasePrompt: Send + Sync {
    /// The passphrase for the key named `key_name` (its path).
    fn passphrase(&self, key_name: &str) -> Option<age::secrecy::SecretString>;
}

/// The age crate's callbacks, answering only passphrase requests through a
/// [`PassphrasePrompt`].
#[derive(Clone)]
struct PromptCallbacks {
    prompt: std::sync::Arc<dyn PassphrasePrompt>,
    key_name: String,
}

impl age::Callbacks for PromptCallbacks {
    fn display_message(&self, _message: &str) {}

    fn confirm(&self, _message: &str, _yes: &str, _no: Option<&str>) -> Option<bool> {
        None
    }

    fn request_public_string(&self, _description: &str) -> Option<String> {
        None
    }

    fn request_passphrase(&self, _description: &str) -> Option<age::secrecy::SecretString> {
        self.prompt.passphrase(&self.key_name)
    }
}

/// One SSH private key used as an age identity (sops: `SOPS_AGE_SSH_PRIVATE_KEY_FILE`,
/// `~/.ssh/id_ed25519`, `~/.ssh/id_rsa`).
struct SshKey {
    name: String,
    identity: age::ssh::Identity,
    /// Set for a passphrase-protected key when someone can be asked.
    prompt: Option<std::sync::Arc<dyn PassphrasePrompt>>,
}

impl SshKey {
    /// The identity as the age crate tries it.
    fn for_crate(&self) -> Box<dyn age::Identity + '_> {
        match (&self.identity, &self.prompt) {
            (age::ssh::Identity::Encrypted(_), Some(prompt)) => {
                Box::new(self.identity.clone().with_callbacks(PromptCallbacks {
                    prompt: prompt.clone(),
                    key_name: self.name.clone(),
                }))
            }
            _ => Box::new(self.identity.clone()),
        }
    }
}

/// Age identities collected from any number of sources.
#[derive(Default)]
pub struct AgeIdentities {
    sources: Vec<Source>,
    ssh: Vec<SshKey>,
    /// SSH key files that could not be used, with why (never their content).
    ssh_failed: Vec<String>,
}

impl fmt::Debug for AgeIdentities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeIdentities([REDACTED]; {})", self.describe())
    }
}

impl AgeIdentities {
    /// No identities yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Parses one source's text (spec §5.2) named `source` (e.g. `SOPS_AGE_KEY_FILE=/x`).
    pub fn parse(text: &str, source: &str) -> Result<AgeIdentities, KeyError> {
        let mut ids = AgeIdentities::new();
        ids.add_source(text, source);
        match ids.sources.pop().map(|s| s.parsed) {
            Some(Ok(list)) => {
                ids.sources.push(Source {
                    name: source.to_string(),
                    parsed: Ok(list),
                });
                Ok(ids)
            }
            Some(Err(e)) => Err(e),
            None => Ok(ids),
        }
    }

    /// Adds a source. A bad source is remembered and reported only through
    /// [`describe`](KeyBackend::describe) if decryption fails (spec §5.2).
    pub fn add_source(&mut self, text: &str, source: &str) {
        self.sources.push(Source {
            name: source.to_string(),
            parsed: parse_lines(text, source),
        });
    }

    /// Adds an SSH private key file's content `pem` named `name` (its path). A
    /// passphrase-protected key is asked for through `prompt` when one of its stanzas
    /// is tried; without a prompt (no terminal) it is reported as unusable.
    pub fn add_ssh_key(
        &mut self,
        pem: &[u8],
        name: &str,
        prompt: Option<std::sync::Arc<dyn PassphrasePrompt>>,
    ) {
        match age::ssh::Identity::from_buffer(pem, Some(name.to_string())) {
            Ok(age::ssh::Identity::Unsupported(_)) => self
                .ssh_failed
                .push(format!("{name}: an SSH key type age does not support")),
            Ok(age::ssh::Identity::Encrypted(_)) if prompt.is_none() => self.ssh_failed.push(
                format!(
                    "{name}: the SSH key is passphrase-protected and there is no terminal to ask for its passphrase"
                ),
            ),
            Ok(identity) => self.ssh.push(SshKey {
                name: name.to_string(),
                identity,
                prompt,
            }),
            Err(_) => self
                .ssh_failed
                .push(format!("{name}: not an SSH private key age can use")),
        }
    }

    /// Records a source that could not be read at all (missing file, failed command).
    pub fn add_failed_source(&mut self, source: &str, reason: &str) {
        self.sources.push(Source {
            name: source.to_string(),
            parsed: Err(KeyError::UnsupportedIdentity {
                source_name: format!("{source} ({reason})"),
                what: "an unreadable source",
            }),
        });
    }

    /// Number of usable identities (X25519 and post-quantum; SSH keys are not counted).
    pub fn len(&self) -> usize {
        self.parsed().map(Parsed::len).sum()
    }

    /// True when no usable identity (age or SSH) was found.
    pub fn is_empty(&self) -> bool {
        self.len() == 0 && self.ssh.is_empty()
    }

    fn parsed(&self) -> impl Iterator<Item = &Parsed> {
        self.sources.iter().filter_map(|s| s.parsed.as_ref().ok())
    }

    fn identities(&self) -> impl Iterator<Item = &X25519Identity> {
        self.parsed().flat_map(|p| &p.x25519)
    }

    fn pq_identities(&self) -> impl Iterator<Item = &PqIdentity> {
        self.parsed().flat_map(|p| &p.pq)
    }

    /// The public recipients of the usable identities (X25519, then post-quantum).
    pub fn recipients(&self) -> Vec<String> {
        self.identities()
            .map(|i| i.for_crate.to_public().to_string())
            .chain(self.pq_identities().map(|i| i.recipient().to_string()))
            .collect()
    }
}

fn parse_lines(text: &str, source: &str) -> Result<Parsed, KeyError> {
    // §5.2: an age-encrypted identity file needs a passphrase prompt.
    if text.starts_with("age-encryption") || text.starts_with("-----BEGIN AGE") {
        return Err(KeyError::UnsupportedIdentity {
            source_name: source.to_string(),
            what: "a passphrase-protected (age-encrypted) identity file",
        });
    }
    let mut out = Parsed::default();
    for (n, raw) in text.split('\n').enumerate() {
        // §5.2: split on \n, drop one trailing \r, no other trimming.
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if line.starts_with("AGE-PLUGIN-") {
            return Err(KeyError::UnsupportedIdentity {
                source_name: source.to_string(),
                what: "an age plugin identity (AGE-PLUGIN-…)",
            });
        }
        let bad = || KeyError::BadIdentityLine {
            source_name: source.to_string(),
            line: n + 1,
        };
        // A post-quantum line is an identity like any other (issue 15: refusing it made
        // the X25519 keys beside it unusable too).
        if line.starts_with(PQ_IDENTITY_PREFIX) {
            out.pq.push(PqIdentity::parse(line).ok_or_else(bad)?);
            continue;
        }
        if !line.starts_with(IDENTITY_PREFIX) {
            return Err(bad());
        }
        out.x25519
            .push(X25519Identity::parse(line).ok_or_else(bad)?);
    }
    Ok(out)
}

impl KeyBackend for AgeIdentities {
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        let MasterKey::Age { recipient, enc } = key else {
            return Ok(None);
        };
        if self.is_empty() {
            return Ok(None);
        }
        let corrupt = |reason: String| KeyError::CorruptEntry {
            recipient: recipient.clone(),
            reason,
        };
        let identities: Vec<&X25519Identity> = self.identities().collect();
        match age_file::open(enc, recipient, &identities) {
            Opened::Plaintext(plaintext) => return Ok(Some(plaintext)),
            // The direct path knows X25519 stanzas only; SSH and post-quantum ones go
            // to the crate.
            Opened::NotForUs if self.ssh.is_empty() && self.pq_identities().next().is_none() => {
                return Ok(None)
            }
            Opened::NotForUs | Opened::Unusual => {}
        }
        let decryptor = age::Decryptor::new(ArmoredReader::new(enc.as_bytes()))
            .map_err(|e| corrupt(e.to_string()))?;
        let ssh: Vec<Box<dyn age::Identity + '_>> =
            self.ssh.iter().map(SshKey::for_crate).collect();
        let mut reader = match decryptor.decrypt(
            identities
                .iter()
                .map(|i| &i.for_crate as &dyn age::Identity)
                .chain(self.pq_identities().map(|i| i as &dyn age::Identity))
                .chain(ssh.iter().map(|b| b.as_ref())),
        ) {
            Ok(r) => r,
            Err(age::DecryptError::NoMatchingKeys) => return Ok(None),
            Err(e) => return Err(corrupt(e.to_string())),
        };
        let mut out = Zeroizing::new(Vec::new());
        reader
            .read_to_end(&mut out)
            .map_err(|e| corrupt(e.to_string()))?;
        Ok(Some(out))
    }

    fn describe(&self) -> String {
        if self.sources.is_empty() && self.ssh.is_empty() && self.ssh_failed.is_empty() {
            return "no age identities (set SOPS_AGE_KEY, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY_CMD)"
                .into();
        }
        let mut parts: Vec<String> = self
            .sources
            .iter()
            .map(|s| match &s.parsed {
                Ok(list) => format!(
                    "{} age identit{} from {}{}",
                    list.len(),
                    if list.len() == 1 { "y" } else { "ies" },
                    s.name,
                    match list.pq.len() {
                        0 => String::new(),
                        n => format!(" ({n} post-quantum)"),
                    }
                ),
                Err(e) => format!("unusable source: {e}"),
            })
            .collect();
        parts.extend(self.ssh.iter().map(|k| format!("SSH key {}", k.name)));
        parts.extend(
            self.ssh_failed
                .iter()
                .map(|why| format!("unusable SSH key: {why}")),
        );
        parts.join("; ")
    }
}

/// An age recipient sopsync can encrypt to: X25519 (`age1…`), post-quantum
/// (`age1pq1…`), or an SSH public key (`ssh-ed25519 …`, `ssh-rsa …`).
#[derive(Clone)]
pub struct AgeRecipient {
    text: String,
    inner: RecipientKey,
}

#[derive(Clone)]
enum RecipientKey {
    X25519(age::x25519::Recipient),
    /// Boxed: an ML-KEM key is 1.6 KB, the other variants are small.
    Pq(Box<super::age_pq::PqRecipient>),
    Ssh(age::ssh::Recipient),
}

impl PartialEq for AgeRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for AgeRecipient {}

impl fmt::Debug for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "AgeRecipient({})", self.text)
    }
}

impl fmt::Display for AgeRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

/// A recipient as messages show it: a post-quantum one (`age1pq1…`, 1959 characters)
/// is cut to its first 16 and last 8 characters around an ellipsis, as age shows long
/// recipients, so that an error stays readable; the last characters (the bech32
/// checksum) still tell two keys apart. Anything else is shown whole.
pub fn display_recipient(text: &str) -> std::borrow::Cow<'_, str> {
    const HEAD: usize = 16;
    const TAIL: usize = 8;
    if !text.starts_with("age1pq1") || !text.is_ascii() || text.len() <= HEAD + TAIL + 3 {
        return std::borrow::Cow::Borrowed(text);
    }
    std::borrow::Cow::Owned(format!("{}…{}", &text[..HEAD], &text[text.len() - TAIL..]))
}

impl AgeRecipient {
    /// Parses one recipient; surrounding whitespace is trimmed as sops does (§5.2).
    pub fn parse(s: &str) -> Result<AgeRecipient, KeyError> {
        let text = s.trim();
        let bad = |reason: &str| KeyError::BadRecipient {
            recipient: display_recipient(text).chars().take(100).collect(),
            reason: reason.to_string(),
        };
        if text.starts_with("ssh-") {
            // As sops (age/keysource.go): an SSH public key line, comment allowed.
            let inner = age::ssh::Recipient::from_str(text).map_err(|e| {
                bad(&match e {
                    age::ssh::ParseRecipientKeyError::RsaModulusTooSmall => {
                        "the ssh-rsa key is shorter than 2048 bits".to_string()
                    }
                    age::ssh::ParseRecipientKeyError::RsaModulusTooLarge => {
                        "the ssh-rsa key is too large".to_string()
                    }
                    age::ssh::ParseRecipientKeyError::Unsupported(kind) => {
                        format!("{kind} keys cannot be age recipients (use ssh-ed25519 or ssh-rsa)")
                    }
                    _ => "not a valid SSH public key".to_string(),
                })
            })?;
            return Ok(AgeRecipient {
                text: text.to_string(),
                inner: RecipientKey::Ssh(inner),
            });
        }
        if text.starts_with(PQ_RECIPIENT_PREFIX) {
            let inner = super::age_pq::PqRecipient::parse(text).map_err(bad)?;
            return Ok(AgeRecipient {
                text: text.to_string(),
                inner: RecipientKey::Pq(Box::new(inner)),
            });
        }
        if !text.starts_with("age1") {
            return Err(bad(
                "expected an age1… X25519 recipient, an age1pq1… post-quantum one, or an SSH public key",
            ));
        }
        if text.matches('1').count() > 1 {
            return Err(bad("age plugin recipients are not supported by sopsync"));
        }
        let inner = age::x25519::Recipient::from_str(text).map_err(bad)?;
        Ok(AgeRecipient {
            text: text.to_string(),
            inner: RecipientKey::X25519(inner),
        })
    }

    /// The recipient text as stored in `sops.age[].recipient`.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Wraps `secret` into an armored age file with a trailing newline (§5.2).
    pub fn wrap(&self, secret: &[u8]) -> Result<MasterKey, KeyError> {
        let fail = |reason: String| KeyError::Encrypt {
            recipient: self.text.clone(),
            reason,
        };
        let recipient: &dyn age::Recipient = match &self.inner {
            RecipientKey::X25519(r) => r,
            RecipientKey::Pq(r) => &**r,
            RecipientKey::Ssh(r) => r,
        };
        let encryptor = age::Encryptor::with_recipients(std::iter::once(recipient))
            .map_err(|e| fail(e.to_string()))?;
        let mut out = Vec::new();
        let armor = ArmoredWriter::wrap_output(&mut out, Format::AsciiArmor)
            .map_err(|e| fail(e.to_string()))?;
        let mut writer = encryptor
            .wrap_output(armor)
            .map_err(|e| fail(e.to_string()))?;
        writer.write_all(secret).map_err(|e| fail(e.to_string()))?;
        writer
            .finish()
            .and_then(|armor| armor.finish())
            .map_err(|e| fail(e.to_string()))?;
        let mut enc = String::from_utf8(out).map_err(|e| fail(e.to_string()))?;
        if !enc.ends_with('\n') {
            enc.push('\n');
        }
        Ok(MasterKey::Age {
            recipient: self.text.clone(),
            enc,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use age::secrecy::ExposeSecret;

    fn fresh() -> (String, String) {
        let id = age::x25519::Identity::generate();
        (
            id.to_string().expose_secret().to_string(),
            id.to_public().to_string(),
        )
    }

    #[test]
    fn display_recipient_shortens_post_quantum_recipients_only() {
        let (_, x25519) = fresh();
        assert_eq!(display_recipient(&x25519), x25519);
        let pq = format!("age1pq1{}", "q".repeat(1944) + "abcd1234");
        assert_eq!(pq.len(), 1959);
        assert_eq!(display_recipient(&pq), "age1pq1qqqqqqqqq…abcd1234");
        // Too short to gain anything (a truncated paste): shown whole.
        assert_eq!(display_recipient("age1pq1abc"), "age1pq1abc");
    }

    #[test]
    fn wrap_then_unwrap_round_trips_and_is_armored_with_newline() {
        let (secret, public) = fresh();
        let r = AgeRecipient::parse(&format!("  {public} ")).unwrap();
        let entry = r.wrap(&[42; 32]).unwrap();
        let MasterKey::Age { enc, recipient } = &entry else {
            panic!()
        };
        assert_eq!(recipient, &public);
        assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\n"));
        assert!(enc.ends_with("-----END AGE ENCRYPTED FILE-----\n"));
        let text = format!("# created: x\r\n# public key: {public}\r\n{secret}\r\n");
        let ids = AgeIdentities::parse(&text, "test").unwrap();
        assert_eq!(ids.len(), 1);
        assert_eq!(&ids.unwrap(&entry).unwrap().unwrap()[..], &[42; 32]);
        let (other, _) = fresh();
        let wrong = AgeIdentities::parse(&other, "other").unwrap();
        assert!(wrong.unwrap(&entry).unwrap().is_none());
    }

    #[test]
    fn line_rules_follow_sops() {
        let (secret, _) = fresh();
        assert!(AgeIdentities::parse(&format!(" {secret}"), "s").is_err());
        assert!(AgeIdentities::parse(&format!("{secret} "), "s").is_err());
        assert!(AgeIdentities::parse(&secret.to_lowercase(), "s").is_err());
        let err =
            AgeIdentities::parse(&format!("# c\n\n{secret}\nnot-a-key\n"), "FILE").unwrap_err();
        assert_eq!(
            err,
            KeyError::BadIdentityLine {
                source_name: "FILE".into(),
                line: 4
            }
        );
        assert!(!err.to_string().contains("not-a-key"));
        // A bad source next to a good one still leaves the good identities usable.
        let mut ids = AgeIdentities::new();
        ids.add_source("garbage", "SOPS_AGE_KEY_FILE=/bad");
        ids.add_source(&secret, "SOPS_AGE_KEY");
        assert_eq!(ids.len(), 1);
        let d = ids.describe();
        assert!(d.contains("1 age identity from SOPS_AGE_KEY"), "{d}");
        assert!(d.contains("SOPS_AGE_KEY_FILE=/bad"), "{d}");
        assert!(!format!("{ids:?}").contains(&secret[16..]));
    }

    #[test]
    fn a_source_mixing_x25519_and_pq_lines_loads_both_and_opens_either_entry() {
        // Issue 15: one post-quantum line used to make the whole source unusable.
        let (x25519_secret, x25519_public) = fresh();
        let (pq_secret, pq_public) = pq_identity_from_seed(&[4; 32]);
        let text = format!(
            "# post-quantum\n{}\n# classic\n{x25519_secret}\n",
            &*pq_secret
        );
        let ids = AgeIdentities::parse(&text, "keys.txt").unwrap();
        assert_eq!(ids.len(), 2);
        assert_eq!(ids.recipients(), [x25519_public.clone(), pq_public.clone()]);
        assert!(ids
            .describe()
            .contains("2 age identities from keys.txt (1 post-quantum)"));
        for public in [&x25519_public, &pq_public] {
            let entry = AgeRecipient::parse(public).unwrap().wrap(&[8; 32]).unwrap();
            assert_eq!(
                &ids.unwrap(&entry).unwrap().unwrap()[..],
                &[8; 32],
                "{public}"
            );
        }
        // A PQ entry is "not mine" for an X25519-only source, and the other way round.
        let pq_entry = AgeRecipient::parse(&pq_public).unwrap().wrap(&[1]).unwrap();
        let x25519_only = AgeIdentities::parse(&x25519_secret, "x").unwrap();
        assert!(x25519_only.unwrap(&pq_entry).unwrap().is_none());
        let x25519_entry = AgeRecipient::parse(&x25519_public)
            .unwrap()
            .wrap(&[1])
            .unwrap();
        let pq_only = AgeIdentities::parse(&pq_secret, "pq").unwrap();
        assert!(pq_only.unwrap(&x25519_entry).unwrap().is_none());
        assert!(!format!("{ids:?}").contains(&pq_secret[20..]));
        // A damaged PQ line is a bad line like any other, named by number only.
        let damaged = format!("{}x\n", &*pq_secret);
        let err = AgeIdentities::parse(&damaged, "keys.txt").unwrap_err();
        assert_eq!(
            err,
            KeyError::BadIdentityLine {
                source_name: "keys.txt".into(),
                line: 1
            }
        );
    }

    #[test]
    fn unsupported_recipients_are_refused_clearly() {
        assert!(AgeRecipient::parse("ssh-ed25519 AAAA x").is_err());
        assert!(AgeRecipient::parse("ssh-dss AAAAB3NzaC1kc3M x").is_err());
        assert!(AgeRecipient::parse("age1yubikey1qqq").is_err());
        assert!(AgeRecipient::parse("nope").is_err());
    }
}
