//! The pure core: tree, formats, cipher, MAC and key wrapping.
//!
//! Layering rule: nothing in `core` does I/O, spawns threads, reads the
//! environment or the clock, or imports from outside `core` (checked by
//! `tests/layering.rs`). Randomness and time come in as parameters.
//!
//! The operations below are the API the CLI, renderer and controller use
//! (contract: `/work/notes/CORE-API.md`): parse and emit an encrypted file, unwrap
//! its data key, decrypt, encrypt, re-encrypt after an edit, rotate, update keys.

pub mod base64_go;
pub mod cipher;
pub mod creation_rules;
pub mod error;
pub mod formats;
pub mod keys;
pub mod mac;
pub mod metadata;
pub mod number;
pub mod rules;
pub mod secret;
pub mod shamir;
pub mod tree;
pub mod walk;

use self::error::CoreError;
use self::formats::wire;
use self::formats::{Codec, Format, FormatOptions};
use self::keys::{DecryptionOrder, KeyBackend, Recipient};
use self::metadata::{KeyGroup, MasterKey, Metadata, SelectionRule, SOPS_VERSION};
use self::rules::Rule;
use self::secret::DataKey;
use self::tree::{Mapping, Timestamp};
pub use self::walk::IvStash;
use rand_core::CryptoRngCore;
use zeroize::Zeroizing;

/// An encrypted file: its documents (values still `ENC[…]`) and its metadata.
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptedFile {
    /// The store it was read from or will be written as.
    pub format: Format,
    /// The documents without the `sops` block.
    pub documents: Vec<Mapping>,
    /// The `sops` block.
    pub metadata: Metadata,
}

/// Options for [`decrypt`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DecryptOptions {
    /// Skip the MAC check (`--ignore-mac`).
    pub ignore_mac: bool,
    /// Do not remember IVs: the caller only reads the plaintext and will not
    /// re-encrypt it (`decrypt`, `render`), so [`Decrypted::iv_stash`] stays empty.
    pub skip_iv_stash: bool,
}

/// The result of [`decrypt`].
#[derive(Debug)]
pub struct Decrypted {
    /// Plaintext documents.
    pub documents: Vec<Mapping>,
    /// IVs of the decrypted values, for [`reencrypt`] and [`rotate`] (spec §2.4).
    pub iv_stash: IvStash,
    /// Container paths of comments that looked encrypted (or should have been) but did
    /// not decrypt; kept as they are. sops warns about each (spec §1.5).
    pub unreadable_comments: Vec<tree::KeyPath>,
}

/// What to encrypt to, and how.
#[derive(Clone, Debug, PartialEq)]
pub struct EncryptConfig {
    /// Key groups of recipients; one group means any one recipient decrypts (§5.4).
    pub key_groups: Vec<Vec<Recipient>>,
    /// Shamir threshold for several groups; `None` means all groups (§5.4).
    pub shamir_threshold: Option<usize>,
    /// Which values to encrypt (§3.1). Ignored for binary files, as sops does.
    pub rule: SelectionRule,
    /// Hash only encrypted values into the MAC (§4.1).
    pub mac_only_encrypted: bool,
}

/// Injected randomness and clock (STYLE 6).
pub struct CryptoEnv<'a> {
    /// A cryptographic RNG for data keys, IVs and Shamir coefficients.
    pub rng: &'a mut dyn CryptoRngCore,
    /// The current time, in UTC; written as `lastmodified` to the second (§4.3).
    pub now: Timestamp,
}

/// Parses an encrypted file's bytes in `format` and validates its metadata (§6.5).
/// See [`parse_encrypted_with`] for the errors.
pub fn parse_encrypted(
    input: &[u8],
    format: Format,
    opts: &FormatOptions,
) -> Result<EncryptedFile, CoreError> {
    parse_encrypted_with(&*formats::codec(format, opts), format, input)
}

/// Writes an encrypted file in its own format (byte-identical to the input of
/// [`parse_encrypted`] when nothing changed and the file came from sops 3.11).
pub fn emit_encrypted(file: &EncryptedFile, opts: &FormatOptions) -> Result<Vec<u8>, CoreError> {
    emit_encrypted_with(&*formats::codec(file.format, opts), file)
}

/// Parses an encrypted file's bytes with `codec` and validates its metadata (§6.5).
///
/// Errors: [`CoreError::UnreadableEncrypted`] for unparsable input (exit 1, as sops
/// `decrypt`), [`CoreError::MetadataNotFound`]
/// without a `sops` block, [`CoreError::InvalidMetadata`] naming the bad field.
pub fn parse_encrypted_with(
    codec: &dyn Codec,
    format: Format,
    input: &[u8],
) -> Result<EncryptedFile, CoreError> {
    let (documents, block) = codec
        .parse_encrypted(input)
        .map_err(CoreError::UnreadableEncrypted)?;
    let block = block.ok_or(CoreError::MetadataNotFound)?;
    let metadata = wire::metadata_from_mapping(&block, format)?;
    Ok(EncryptedFile {
        format,
        documents,
        metadata,
    })
}

/// Writes an encrypted file with `codec` (byte-identical to sops' output for the same
/// tree and metadata).
pub fn emit_encrypted_with(codec: &dyn Codec, file: &EncryptedFile) -> Result<Vec<u8>, CoreError> {
    let block = wire::metadata_to_mapping(&file.metadata, file.format);
    Ok(codec.emit_encrypted(&file.documents, &block)?)
}

/// Recovers the data key with whatever identities `keys` holds (spec §5.5).
///
/// Errors: [`CoreError::NoMatchingKey`] (one group; says what was tried and which key
/// types the file has), [`CoreError::NotEnoughShares`] (several groups),
/// [`CoreError::ShamirCombine`] / [`CoreError::BadDataKey`] when the result is malformed.
pub fn unwrap_data_key(metadata: &Metadata, keys: &dyn KeyBackend) -> Result<DataKey, CoreError> {
    unwrap_data_key_in_order(metadata, keys, &DecryptionOrder::default())
}

/// [`unwrap_data_key`] with a custom key-type order (`--decryption-order`, §5.5).
pub fn unwrap_data_key_in_order(
    metadata: &Metadata,
    keys: &dyn KeyBackend,
    order: &DecryptionOrder,
) -> Result<DataKey, CoreError> {
    let mut secrets: Vec<Zeroizing<Vec<u8>>> = Vec::new();
    let mut report = Vec::new();
    for (gi, group) in metadata.key_groups.iter().enumerate() {
        // §5.5: age, then pgp, then the rest, each in file order (a stable sort).
        let mut found = None;
        let mut notes = Vec::new();
        for key in order.sort(&group.keys) {
            match keys.unwrap(key) {
                Ok(Some(secret)) => {
                    found = Some(secret);
                    break;
                }
                Ok(None) => notes.push(match key {
                    MasterKey::Age { recipient, .. } => {
                        format!(
                            "age {}: no identity matched",
                            keys::age::display_recipient(recipient)
                        )
                    }
                    MasterKey::Pgp { fingerprint, .. } => {
                        format!("pgp {fingerprint}: no PGP key source was given (GnuPG, or a key Secret's *.asc entry)")
                    }
                    other => format!(
                        "{} key: sopsync cannot unwrap this key type (only age and pgp)",
                        other.type_name()
                    ),
                }),
                Err(e) => notes.push(e.to_string()),
            }
        }
        match found {
            Some(secret) => secrets.push(secret),
            None => report.push(format!("group {}: {}", gi + 1, notes.join(", "))),
        }
    }
    let detail = report.join("; ");
    let entries: Vec<&MasterKey> = metadata.key_groups.iter().flat_map(|g| &g.keys).collect();
    let tried = keys.describe_for(&entries);
    if metadata.key_groups.len() <= 1 {
        let secret = secrets
            .pop()
            .ok_or(CoreError::NoMatchingKey { detail, tried })?;
        return DataKey::from_slice(&secret).ok_or(CoreError::BadDataKey { len: secret.len() });
    }
    let needed = metadata.effective_threshold();
    if secrets.len() < needed.max(2) {
        return Err(CoreError::NotEnoughShares {
            needed,
            got: secrets.len(),
            detail,
            tried,
        });
    }
    let shares: Vec<&[u8]> = secrets.iter().map(|s| &s[..]).collect();
    let key = shamir::combine(&shares).map_err(|e| CoreError::ShamirCombine {
        reason: e.to_string(),
    })?;
    DataKey::from_slice(&key).ok_or(CoreError::BadDataKey { len: key.len() })
}

/// Decrypts every value and verifies the MAC unless `opts.ignore_mac` (spec §2–§4).
///
/// Errors: [`CoreError::DecryptValue`] naming the key path (tampered value, IV or tag,
/// moved value, wrong data key), [`CoreError::NotCiphertext`], then the MAC errors
/// [`CoreError::MacUndecryptable`], [`CoreError::MacMismatch`], [`CoreError::NoMac`].
///
/// Security: the plaintext is returned in [`Text`](secret::Text) leaves (zeroized).
pub fn decrypt(
    file: &EncryptedFile,
    data_key: &DataKey,
    opts: &DecryptOptions,
) -> Result<Decrypted, CoreError> {
    decrypt_documents_of(file.documents.clone(), &file.metadata, data_key, opts)
}

/// [`decrypt`] for a caller that no longer needs the encrypted file: the documents
/// are decrypted in place instead of being copied first (a large file is one deep
/// copy of its tree cheaper).
pub fn decrypt_owned(
    file: EncryptedFile,
    data_key: &DataKey,
    opts: &DecryptOptions,
) -> Result<Decrypted, CoreError> {
    decrypt_documents_of(file.documents, &file.metadata, data_key, opts)
}

fn decrypt_documents_of(
    mut documents: Vec<Mapping>,
    md: &Metadata,
    data_key: &DataKey,
    opts: &DecryptOptions,
) -> Result<Decrypted, CoreError> {
    let rule = Rule::compile(&md.effective_rule())?;
    let walk = walk::decrypt_documents_keeping(
        &mut documents,
        data_key,
        &rule,
        md.mac_only_encrypted,
        !opts.skip_iv_stash,
    )?;
    if !opts.ignore_mac {
        mac::verify(data_key, &md.mac, &md.last_modified, &walk.mac)?;
    }
    Ok(Decrypted {
        documents,
        iv_stash: walk.stash,
        unreadable_comments: walk.unreadable_comments,
    })
}

/// Refuses plaintext that already carries sops metadata (spec §6.3; exit 203).
fn refuse_encrypted_input(documents: &[Mapping], format: Format) -> Result<(), CoreError> {
    for doc in documents {
        for (key, _) in doc.pairs() {
            if key == "sops" || (format == Format::Dotenv && key.starts_with("sops_")) {
                return Err(CoreError::AlreadyEncrypted { key: key.into() });
            }
        }
    }
    Ok(())
}

fn new_data_key(rng: &mut dyn CryptoRngCore) -> DataKey {
    let mut bytes = Zeroizing::new([0u8; 32]);
    rng.fill_bytes(&mut bytes[..]);
    DataKey::from_bytes(*bytes)
}

/// `lastmodified` for a write: the current time to the second (§4.3).
/// sops writes it in UTC, so a caller's offset is folded in.
fn stamp(now: &Timestamp) -> Timestamp {
    let days = days_from_civil(now.year, now.month, now.day);
    let secs = days * 86_400
        + i64::from(now.hour) * 3600
        + i64::from(now.minute) * 60
        + i64::from(now.second)
        - i64::from(now.offset_seconds);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    let (year, month, day) = civil_from_days(days);
    Timestamp {
        year,
        month,
        day,
        hour: (rem / 3600) as u8,
        minute: (rem % 3600 / 60) as u8,
        second: (rem % 60) as u8,
        nanos: 0,
        offset_seconds: 0,
    }
}

/// Days since 1970-01-01 of a proleptic Gregorian date (H. Hinnant's algorithm).
fn days_from_civil(year: i32, month: u8, day: u8) -> i64 {
    let y = i64::from(year) - i64::from(month <= 2);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let m = i64::from(month);
    let doy = (153 * (if m > 2 { m - 3 } else { m + 9 }) + 2) / 5 + i64::from(day) - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// The inverse of [`days_from_civil`].
fn civil_from_days(days: i64) -> (i32, u8, u8) {
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u8;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u8;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    (year, month, day)
}

/// Wraps the data key for the key groups: the key itself for one group, Shamir shares
/// for several (§5.4). Returns the groups and the threshold to record.
fn wrap_groups(
    key: &DataKey,
    groups: &[Vec<Recipient>],
    threshold: Option<usize>,
    rng: &mut dyn CryptoRngCore,
) -> Result<(Vec<KeyGroup>, Option<usize>), CoreError> {
    if groups.is_empty() || groups.iter().any(|g| g.is_empty()) {
        return Err(CoreError::NoRecipients);
    }
    let wrap_all = |gi: usize, recipients: &[Recipient], secret: &[u8]| {
        recipients
            .iter()
            .map(|r| {
                r.wrap(secret)
                    .map_err(|source| CoreError::Wrap { group: gi, source })
            })
            .collect::<Result<Vec<_>, _>>()
            .map(|keys| KeyGroup { keys })
    };
    if groups.len() == 1 {
        let group = wrap_all(0, &groups[0], key.expose_secret())?;
        return Ok((vec![group], threshold.filter(|&t| t > 0)));
    }
    let t = threshold.filter(|&t| t > 0).unwrap_or(groups.len());
    let shares = shamir::split(key.expose_secret(), groups.len(), t, rng).map_err(|e| {
        CoreError::InvalidKeyGroups {
            reason: e.to_string(),
        }
    })?;
    let wrapped = groups
        .iter()
        .zip(&shares)
        .enumerate()
        .map(|(gi, (g, share))| wrap_all(gi, g, share))
        .collect::<Result<Vec<_>, _>>()?;
    Ok((wrapped, Some(t)))
}

/// Encrypts `documents` and seals the MAC with `key`, returning the new metadata
/// fields (`lastmodified`, `mac`).
fn seal_documents(
    documents: &mut [Mapping],
    key: &DataKey,
    rule: &Rule,
    mac_only_encrypted: bool,
    stash: Option<&IvStash>,
    env: &mut CryptoEnv,
) -> Result<(Timestamp, String), CoreError> {
    let mac = walk::encrypt_documents(documents, key, rule, mac_only_encrypted, stash, env.rng)?;
    let last_modified = stamp(&env.now);
    let mut iv = [0u8; cipher::IV_LEN];
    env.rng.fill_bytes(&mut iv);
    Ok((last_modified, mac::seal_mac(key, &iv, &mac, &last_modified)))
}

/// Encrypts plaintext documents to the given recipients with a new data key.
///
/// Errors: [`CoreError::AlreadyEncrypted`] (exit 203), [`CoreError::NoRecipients`],
/// [`CoreError::InvalidRule`], [`CoreError::InvalidKeyGroups`], [`CoreError::Wrap`].
pub fn encrypt(
    mut documents: Vec<Mapping>,
    format: Format,
    config: &EncryptConfig,
    env: &mut CryptoEnv,
) -> Result<EncryptedFile, CoreError> {
    refuse_encrypted_input(&documents, format)?;
    if config.key_groups.is_empty() || config.key_groups.iter().any(|g| g.is_empty()) {
        return Err(CoreError::NoRecipients);
    }
    // §3.1: the binary store ignores the rules and records none. sops 3.11 also
    // ignores mac_only_encrypted for binary files (seen with a creation rule).
    let stored_rule = (format != Format::Binary).then(|| config.rule.clone());
    let mac_only_encrypted = config.mac_only_encrypted && format != Format::Binary;
    let rule = Rule::compile(&stored_rule.clone().unwrap_or_default())?;
    let key = new_data_key(env.rng);
    let (last_modified, mac) =
        seal_documents(&mut documents, &key, &rule, mac_only_encrypted, None, env)?;
    let (key_groups, shamir_threshold) =
        wrap_groups(&key, &config.key_groups, config.shamir_threshold, env.rng)?;
    Ok(EncryptedFile {
        format,
        documents,
        metadata: Metadata {
            key_groups,
            shamir_threshold,
            last_modified,
            mac,
            rule: stored_rule,
            mac_only_encrypted,
            // We write sops 3.11's format, so we say so (see SOPS_VERSION).
            version: SOPS_VERSION.to_string(),
        },
    })
}

/// Re-encrypts edited plaintext with the same data key, reusing the IVs of unchanged
/// values (`edit`, `set`, `unset`; spec §2.4). Keys, rule and `version` are kept; `mac`
/// and `lastmodified` are new. (sops `edit` also raises `version`; callers that mirror
/// it set `metadata.version` afterwards.)
pub fn reencrypt(
    mut documents: Vec<Mapping>,
    previous: &EncryptedFile,
    data_key: &DataKey,
    stash: &IvStash,
    env: &mut CryptoEnv,
) -> Result<EncryptedFile, CoreError> {
    refuse_encrypted_input(&documents, previous.format)?;
    let md = &previous.metadata;
    let rule = Rule::compile(&md.effective_rule())?;
    let (last_modified, mac) = seal_documents(
        &mut documents,
        data_key,
        &rule,
        md.mac_only_encrypted,
        Some(stash),
        env,
    )?;
    Ok(EncryptedFile {
        format: previous.format,
        documents,
        metadata: Metadata {
            last_modified,
            mac,
            ..md.clone()
        },
    })
}

/// The recipients of an existing file's key groups, for rotate/updatekeys when the
/// caller keeps them.
///
/// Errors: [`CoreError::InvalidKeyGroups`] when a group holds a key type sopsync cannot
/// wrap for (PGP without an engine, cloud KMS).
pub fn recipients_of(metadata: &Metadata) -> Result<Vec<Vec<Recipient>>, CoreError> {
    recipients_of_with(metadata, None)
}

/// [`recipients_of`], wrapping PGP entries again with `pgp` when it is given.
pub fn recipients_of_with(
    metadata: &Metadata,
    pgp: Option<&std::sync::Arc<dyn keys::PgpEngine>>,
) -> Result<Vec<Vec<Recipient>>, CoreError> {
    let engines = keys::Engines {
        pgp: pgp.cloned(),
        kms: None,
    };
    recipients_of_in(metadata, &engines)
}

/// [`recipients_of`], wrapping PGP and AWS KMS entries again with the `engines` given.
pub fn recipients_of_in(
    metadata: &Metadata,
    engines: &keys::Engines,
) -> Result<Vec<Vec<Recipient>>, CoreError> {
    metadata
        .key_groups
        .iter()
        .enumerate()
        .map(|(gi, g)| {
            g.keys
                .iter()
                .map(|k| {
                    Recipient::of_master_key_in(k, engines).ok_or_else(|| CoreError::InvalidKeyGroups {
                        reason: format!(
                            "key group {} has a {} key, which sopsync cannot encrypt to; remove it or use sops",
                            gi + 1,
                            k.type_name()
                        ),
                    })
                })
                .collect()
        })
        .collect()
}

/// Rotates the data key: a new key, every value re-encrypted under it reusing the IVs
/// from `stash` (spec §2.4, §5.1), and wrapped for `key_groups` (`None`: the file's
/// current recipients; add or remove recipients by passing an edited list from
/// [`recipients_of`]). `version` is kept, as sops does.
pub fn rotate(
    mut documents: Vec<Mapping>,
    previous: &EncryptedFile,
    stash: &IvStash,
    key_groups: Option<Vec<Vec<Recipient>>>,
    shamir_threshold: Option<usize>,
    env: &mut CryptoEnv,
) -> Result<EncryptedFile, CoreError> {
    refuse_encrypted_input(&documents, previous.format)?;
    let md = &previous.metadata;
    let groups = match key_groups {
        Some(g) => g,
        None => recipients_of(md)?,
    };
    let threshold = shamir_threshold.or(md.shamir_threshold);
    let rule = Rule::compile(&md.effective_rule())?;
    let key = new_data_key(env.rng);
    let (last_modified, mac) = seal_documents(
        &mut documents,
        &key,
        &rule,
        md.mac_only_encrypted,
        Some(stash),
        env,
    )?;
    let (key_groups, shamir_threshold) = wrap_groups(&key, &groups, threshold, env.rng)?;
    Ok(EncryptedFile {
        format: previous.format,
        documents,
        metadata: Metadata {
            key_groups,
            shamir_threshold,
            last_modified,
            mac,
            ..md.clone()
        },
    })
}

/// Rewraps the same data key for new key groups (`updatekeys`): values, `mac` and
/// `lastmodified` stay byte-identical (spec §4.3).
pub fn update_keys(
    file: &EncryptedFile,
    data_key: &DataKey,
    key_groups: Vec<Vec<Recipient>>,
    threshold: Option<usize>,
    env: &mut CryptoEnv,
) -> Result<EncryptedFile, CoreError> {
    let (groups, shamir_threshold) = wrap_groups(data_key, &key_groups, threshold, env.rng)?;
    let mut out = file.clone();
    out.metadata.key_groups = groups;
    out.metadata.shamir_threshold = shamir_threshold;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::keys::{AgeIdentities, AgeRecipient};
    use super::tree::{SeqEntry, Sequence, Value};
    use super::*;
    use age::secrecy::ExposeSecret;

    fn env_rng() -> rand_core::OsRng {
        rand_core::OsRng
    }

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-24T15:00:00.25Z").unwrap()
    }

    fn keypair() -> (AgeIdentities, Recipient) {
        let (secret, r) = keypair_text();
        (AgeIdentities::parse(&secret, "test").unwrap(), r)
    }

    fn keypair_text() -> (String, Recipient) {
        let id = age::x25519::Identity::generate();
        let r = AgeRecipient::parse(&id.to_public().to_string()).unwrap();
        (
            id.to_string().expose_secret().to_string(),
            Recipient::Age(r),
        )
    }

    fn doc() -> Mapping {
        let mut m = Mapping::new();
        m.push("password", Value::str("canary-hunter2"));
        m.push("n", Value::Int(7));
        m.push(
            "list",
            Value::Seq(Sequence {
                items: vec![SeqEntry::Value(Value::Float(0.5))],
            }),
        );
        m
    }

    fn config(groups: Vec<Vec<Recipient>>, t: Option<usize>) -> EncryptConfig {
        EncryptConfig {
            key_groups: groups,
            shamir_threshold: t,
            rule: SelectionRule::default(),
            mac_only_encrypted: false,
        }
    }

    #[test]
    fn encrypt_unwrap_decrypt_round_trip() {
        let (ids, r) = keypair();
        let mut rng = env_rng();
        let mut env = CryptoEnv {
            rng: &mut rng,
            now: now(),
        };
        let file = encrypt(
            vec![doc()],
            Format::Json,
            &config(vec![vec![r]], None),
            &mut env,
        )
        .unwrap();
        assert_eq!(
            file.metadata.last_modified.to_rfc3339_nano(),
            "2026-11-24T15:00:00Z"
        );
        assert_eq!(file.metadata.version, "3.11.0");
        let key = unwrap_data_key(&file.metadata, &ids).unwrap();
        let plain = decrypt(&file, &key, &DecryptOptions::default()).unwrap();
        assert_eq!(plain.documents, vec![doc()]);
    }

    #[test]
    fn lastmodified_is_utc_to_the_second() {
        let t = Timestamp::parse_rfc3339("2024-03-01T01:30:05.9+02:00").unwrap();
        assert_eq!(stamp(&t).to_rfc3339(), "2024-02-29T23:30:05Z");
        let t = Timestamp::parse_rfc3339("1999-12-31T22:00:00-03:00").unwrap();
        assert_eq!(stamp(&t).to_rfc3339(), "2000-01-01T01:00:00Z");
        assert_eq!(stamp(&now()).to_rfc3339(), "2026-11-24T15:00:00Z");
    }

    #[test]
    fn refuses_input_with_sops_key() {
        let (_, r) = keypair();
        let mut m = doc();
        m.push("sops", Value::Null);
        let mut rng = env_rng();
        let mut env = CryptoEnv {
            rng: &mut rng,
            now: now(),
        };
        let err = encrypt(
            vec![m],
            Format::Yaml,
            &config(vec![vec![r.clone()]], None),
            &mut env,
        )
        .unwrap_err();
        assert_eq!(err.exit_code(), 203);
        // dotenv: any `sops_` key (spec §6.3); a nested `sops` key elsewhere is fine.
        let mut d = doc();
        d.push("sops_version", Value::str("x"));
        let err = encrypt(
            vec![d],
            Format::Dotenv,
            &config(vec![vec![r.clone()]], None),
            &mut env,
        )
        .unwrap_err();
        assert!(matches!(&err, CoreError::AlreadyEncrypted { key } if key == "sops_version"));
        let mut inner = Mapping::new();
        inner.push("sops", Value::str("fine"));
        let mut nested = doc();
        nested.push("outer", Value::Map(inner));
        assert!(encrypt(
            vec![nested],
            Format::Yaml,
            &config(vec![vec![r]], None),
            &mut env
        )
        .is_ok());
    }

    #[test]
    fn shamir_two_of_three_needs_two_groups() {
        let (a, ra) = keypair_text();
        let (b, rb) = keypair_text();
        let (_c, rc) = keypair_text();
        let mut rng = env_rng();
        let mut env = CryptoEnv {
            rng: &mut rng,
            now: now(),
        };
        let file = encrypt(
            vec![doc()],
            Format::Yaml,
            &config(vec![vec![ra], vec![rb], vec![rc]], Some(2)),
            &mut env,
        )
        .unwrap();
        assert_eq!(file.metadata.shamir_threshold, Some(2));
        let only_a = AgeIdentities::parse(&a, "a").unwrap();
        let err = unwrap_data_key(&file.metadata, &only_a).unwrap_err();
        assert!(
            matches!(
                err,
                CoreError::NotEnoughShares {
                    needed: 2,
                    got: 1,
                    ..
                }
            ),
            "{err}"
        );
        assert_eq!(err.exit_code(), 128);
        let a_and_b = AgeIdentities::parse(&format!("{a}\n{b}\n"), "a+b").unwrap();
        let key = unwrap_data_key(&file.metadata, &a_and_b).unwrap();
        let plain = decrypt(&file, &key, &DecryptOptions::default()).unwrap();
        assert_eq!(plain.documents, vec![doc()]);
    }

    #[test]
    fn update_keys_keeps_values_mac_and_lastmodified() {
        let (a, ra) = keypair();
        let (b, rb) = keypair();
        let mut rng = env_rng();
        let mut env = CryptoEnv {
            rng: &mut rng,
            now: now(),
        };
        let file = encrypt(
            vec![doc()],
            Format::Json,
            &config(vec![vec![ra]], None),
            &mut env,
        )
        .unwrap();
        let key = unwrap_data_key(&file.metadata, &a).unwrap();
        let updated = update_keys(&file, &key, vec![vec![rb]], None, &mut env).unwrap();
        assert_eq!(updated.documents, file.documents);
        assert_eq!(updated.metadata.mac, file.metadata.mac);
        assert_eq!(updated.metadata.last_modified, file.metadata.last_modified);
        assert!(unwrap_data_key(&updated.metadata, &a).is_err());
        let key2 = unwrap_data_key(&updated.metadata, &b).unwrap();
        assert_eq!(key2.expose_secret(), key.expose_secret());
    }

    #[test]
    fn reencrypt_reuses_ivs_and_rotate_changes_the_key() {
        let (a, ra) = keypair();
        let mut rng = env_rng();
        let mut env = CryptoEnv {
            rng: &mut rng,
            now: now(),
        };
        let file = encrypt(
            vec![doc()],
            Format::Json,
            &config(vec![vec![ra]], None),
            &mut env,
        )
        .unwrap();
        let key = unwrap_data_key(&file.metadata, &a).unwrap();
        let plain = decrypt(&file, &key, &DecryptOptions::default()).unwrap();
        let mut edited = plain.documents.clone();
        *edited[0].get_mut("n").unwrap() = Value::Int(8);
        let again = reencrypt(edited, &file, &key, &plain.iv_stash, &mut env).unwrap();
        assert_eq!(
            again.documents[0].get("password"),
            file.documents[0].get("password")
        );
        assert_ne!(again.documents[0].get("n"), file.documents[0].get("n"));
        let rotated = rotate(
            plain.documents.clone(),
            &file,
            &plain.iv_stash,
            None,
            None,
            &mut env,
        )
        .unwrap();
        let key2 = unwrap_data_key(&rotated.metadata, &a).unwrap();
        assert_ne!(key2.expose_secret(), key.expose_secret());
        let back = decrypt(&rotated, &key2, &DecryptOptions::default()).unwrap();
        assert_eq!(back.documents, plain.documents);
    }
}
