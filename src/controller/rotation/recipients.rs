//! Which recipients opened a sync's files (`status.decryption`), for key rotation: the
//! old key may leave the cluster once no file needs it (docs/rotation.md, "Key
//! rotation").
//!
//! [`Counting`] wraps the sync's key backend and counts, per recipient named in the
//! files, the data keys it unwrapped. It sees only public data (the file's recipient
//! line, the PGP fingerprint), never an identity or a data key. The status holds the
//! aggregate, one entry per recipient whatever the number of files, at most
//! [`MAX_RECIPIENTS_IN_STATUS`].

use crate::controller::crd::{DecryptionStatus, RecipientFiles, MAX_RECIPIENTS_IN_STATUS};
use crate::core::keys::{KeyBackend, KeyError};
use crate::core::metadata::MasterKey;
use std::collections::BTreeMap;
use std::sync::Mutex;
use zeroize::Zeroizing;

/// The longest recipient text kept in the status (an SSH recipient line carries a
/// comment of any length; the files come from Git, so the length is bounded here).
const MAX_RECIPIENT_CHARS: usize = 128;

/// A key backend that counts which recipients it opened files for.
pub struct Counting<'a> {
    inner: &'a (dyn KeyBackend + Sync),
    opened: Mutex<BTreeMap<String, u32>>,
}

impl<'a> Counting<'a> {
    /// Counts what `inner` unwraps.
    pub fn new(inner: &'a (dyn KeyBackend + Sync)) -> Self {
        Counting {
            inner,
            opened: Mutex::new(BTreeMap::new()),
        }
    }

    /// The counts so far, bounded for the status.
    pub fn status(&self) -> DecryptionStatus {
        let opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
        summarize(&opened)
    }
}

impl KeyBackend for Counting<'_> {
    fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
        let result = self.inner.unwrap(key);
        if let Ok(Some(_)) = &result {
            let mut opened = self.opened.lock().unwrap_or_else(|p| p.into_inner());
            *opened.entry(recipient_of(key)).or_default() += 1;
        }
        result
    }

    fn describe(&self) -> String {
        self.inner.describe()
    }
}

/// The public name of the recipient a master key entry was wrapped for.
fn recipient_of(key: &MasterKey) -> String {
    let name = match key {
        MasterKey::Age { recipient, .. } => recipient.trim().to_string(),
        MasterKey::Pgp { fingerprint, .. } => format!("pgp:{}", fingerprint.trim()),
        other => other.type_name().to_string(),
    };
    if name.chars().count() <= MAX_RECIPIENT_CHARS {
        return name;
    }
    let mut cut: String = name.chars().take(MAX_RECIPIENT_CHARS - 3).collect();
    cut.push_str("...");
    cut
}

/// Most files first (then by name, so the status is stable), at most
/// [`MAX_RECIPIENTS_IN_STATUS`] entries, the rest counted.
fn summarize(opened: &BTreeMap<String, u32>) -> DecryptionStatus {
    let mut all: Vec<RecipientFiles> = opened
        .iter()
        .map(|(recipient, files)| RecipientFiles {
            recipient: recipient.clone(),
            files: *files,
        })
        .collect();
    all.sort_by(|a, b| b.files.cmp(&a.files).then(a.recipient.cmp(&b.recipient)));
    let omitted = all.len().saturating_sub(MAX_RECIPIENTS_IN_STATUS);
    all.truncate(MAX_RECIPIENTS_IN_STATUS);
    DecryptionStatus {
        recipients: all,
        recipients_omitted: u32::try_from(omitted).unwrap_or(u32::MAX),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Opens every age entry whose recipient starts with `age1yes`.
    struct Opens;
    impl KeyBackend for Opens {
        fn unwrap(&self, key: &MasterKey) -> Result<Option<Zeroizing<Vec<u8>>>, KeyError> {
            Ok(match key {
                MasterKey::Age { recipient, .. } if recipient.starts_with("age1yes") => {
                    Some(Zeroizing::new(vec![0; 32]))
                }
                _ => None,
            })
        }
        fn describe(&self) -> String {
            "test".into()
        }
    }

    fn age(recipient: &str) -> MasterKey {
        MasterKey::Age {
            recipient: recipient.into(),
            enc: String::new(),
        }
    }

    #[test]
    fn only_recipients_that_opened_a_file_are_counted() {
        let c = Counting::new(&Opens);
        for _ in 0..3 {
            assert!(c.unwrap(&age("age1no")).expect("ok").is_none());
            assert!(c.unwrap(&age("age1yes-a")).expect("ok").is_some());
        }
        assert!(c.unwrap(&age("age1yes-b")).expect("ok").is_some());
        let status = c.status();
        let counts: Vec<(&str, u32)> = status
            .recipients
            .iter()
            .map(|r| (r.recipient.as_str(), r.files))
            .collect();
        assert_eq!(counts, [("age1yes-a", 3), ("age1yes-b", 1)]);
        assert_eq!(status.recipients_omitted, 0);
    }

    #[test]
    fn the_aggregate_is_bounded_and_counts_what_it_leaves_out() {
        let opened: BTreeMap<String, u32> = (0..50u32)
            .map(|i| (format!("age1yes{i:02}"), i + 1))
            .collect();
        let status = summarize(&opened);
        assert_eq!(status.recipients.len(), MAX_RECIPIENTS_IN_STATUS);
        assert_eq!(status.recipients[0].recipient, "age1yes49");
        assert_eq!(status.recipients_omitted, 30);
        let long = recipient_of(&age(&format!("ssh-ed25519 AAAA {}", "x".repeat(500))));
        assert_eq!(long.chars().count(), MAX_RECIPIENT_CHARS);
    }
}
