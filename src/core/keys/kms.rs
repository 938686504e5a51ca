//! AWS KMS master keys (spec §5.6, issue 15): the pure half. The `sops.kms` entry is
//! read and written here, and the key's region is taken from its ARN; the calls to
//! KMS are made by a [`KmsEngine`] (wrapping) and a [`super::KeyBackend`] (unwrapping)
//! that the shell supplies (`src/kms.rs`, the AWS SDK), since the core does no I/O.
//!
//! Guarantees: an entry is written in sops 3.11's shape (stores.go `kmskey`): `arn`,
//! `role` when set, `context` when set (keys sorted, as Go writes a map), `created_at`,
//! `enc` (the ciphertext blob in standard base64), `aws_profile` (always, even empty).
//! Unknown fields of an entry read from a file are kept when it is rewritten unchanged
//! (the entry itself is kept verbatim as `MasterKey::Other`).

use super::KeyError;
use crate::core::base64_go::decode_base64_go;
use crate::core::metadata::{MasterKey, OtherKeyKind};
use crate::core::tree::{Mapping, Value};
use base64::Engine as _;
use std::fmt;
use std::sync::Arc;

/// One AWS KMS key: what sops stores in a `sops.kms` entry besides `enc`.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct KmsKey {
    /// The key's ARN (`arn:aws:kms:REGION:ACCOUNT:key/ID` or `…:alias/NAME`).
    pub arn: String,
    /// A role ARN to assume (STS AssumeRole) before calling KMS, if any.
    pub role: Option<String>,
    /// The encryption context, sorted by key (sops keeps it as a Go map).
    pub context: Vec<(String, String)>,
    /// The AWS profile (shared config) to take credentials from, if any.
    pub aws_profile: Option<String>,
    /// `created_at`, RFC 3339 UTC, as written.
    pub created_at: String,
}

impl fmt::Debug for KmsKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // The context is not secret (KMS logs it in CloudTrail), but keep it short.
        write!(f, "KmsKey({}", self.arn)?;
        if let Some(r) = &self.role {
            write!(f, "+{r}")?;
        }
        write!(f, ")")
    }
}

impl KmsKey {
    /// A key for `arn` (an ARN of a flat list may carry `+ROLE_ARN`, as in sops'
    /// `NewMasterKeyFromArn`; spaces are removed as sops does), stamped `created_at`.
    ///
    /// Errors: [`KeyError::Kms`] when the ARN is not a KMS key or alias ARN
    /// (sops' `^arn:aws[\w-]*:kms:(.+):[0-9]+:(key|alias)/.+$`), since no request could
    /// be routed for it.
    pub fn from_arn(
        arn: &str,
        context: Vec<(String, String)>,
        aws_profile: Option<String>,
        created_at: String,
    ) -> Result<KmsKey, KeyError> {
        let arn: String = arn.chars().filter(|c| *c != ' ').collect();
        let (arn, role) = match arn.find("+arn:") {
            Some(i) if i > 0 => (arn[..i].to_string(), Some(arn[i + 1..].to_string())),
            _ => (arn, None),
        };
        let mut key = KmsKey {
            arn,
            role,
            context,
            aws_profile: aws_profile.filter(|p| !p.is_empty()),
            created_at,
        };
        key.context.sort();
        key.region()?;
        Ok(key)
    }

    /// The region the key lives in, from its ARN (sops routes every request there).
    ///
    /// Errors: [`KeyError::Kms`] saying what a KMS ARN looks like.
    pub fn region(&self) -> Result<&str, KeyError> {
        region_of(&self.arn).ok_or_else(|| KeyError::Kms {
            arn: self.arn.clone(),
            reason: "not an AWS KMS key ARN: expected arn:aws:kms:REGION:ACCOUNT:key/ID (or …:alias/NAME), as `aws kms describe-key` prints it".into(),
        })
    }

    /// Reads a `sops.kms` entry; `None` when `key` is not one.
    ///
    /// Errors: [`KeyError::CorruptKms`] naming the field that is malformed.
    pub fn of_master_key(key: &MasterKey) -> Option<Result<(KmsKey, &Mapping), KeyError>> {
        let MasterKey::Other {
            kind: OtherKeyKind::Kms,
            fields,
        } = key
        else {
            return None;
        };
        Some(KmsKey::from_entry(fields).map(|k| (k, fields)))
    }

    fn from_entry(fields: &Mapping) -> Result<KmsKey, KeyError> {
        let arn = fields.get("arn").and_then(Value::as_str).unwrap_or("");
        let bad = |reason: &str| KeyError::CorruptKms {
            arn: arn.to_string(),
            reason: reason.to_string(),
        };
        if arn.is_empty() {
            return Err(bad("the entry has no `arn`"));
        }
        let text = |name: &str| -> Result<Option<String>, KeyError> {
            match fields.get(name) {
                None | Some(Value::Null) => Ok(None),
                Some(v) => v
                    .as_str()
                    .map(|s| Some(s.to_string()).filter(|s| !s.is_empty()))
                    .ok_or_else(|| bad(&format!("`{name}` is not a string"))),
            }
        };
        let mut context = Vec::new();
        match fields.get("context") {
            None | Some(Value::Null) => {}
            Some(Value::Map(m)) => {
                for (k, v) in m.pairs() {
                    let v = v
                        .as_str()
                        .ok_or_else(|| bad(&format!("context `{k}` is not a string")))?;
                    context.push((k.to_string(), v.to_string()));
                }
            }
            Some(_) => return Err(bad("`context` is not a mapping")),
        }
        context.sort();
        Ok(KmsKey {
            arn: arn.to_string(),
            role: text("role")?,
            context,
            aws_profile: text("aws_profile")?,
            created_at: text("created_at")?.unwrap_or_default(),
        })
    }

    /// How reports and repository-wide rewrites name this key: `kms:ARN`, then
    /// `+ROLE`, the context and the profile when set. Two keys with the same label
    /// wrap the same way, so a rule whose role or context changed is a change
    /// (`updatekeys` applies it), where comparing ARNs alone would hide it.
    pub fn label(&self) -> String {
        label(
            &self.arn,
            self.role.as_deref(),
            &self.context,
            self.aws_profile.as_deref(),
        )
    }

    /// The ciphertext blob of an entry's `enc`.
    ///
    /// Errors: [`KeyError::CorruptKms`] when `enc` is missing or not base64.
    pub fn blob_of(&self, fields: &Mapping) -> Result<Vec<u8>, KeyError> {
        let enc = fields.get("enc").and_then(Value::as_str).unwrap_or("");
        // sops decodes `enc` with Go's base64.StdEncoding, as it does the envelope.
        decode_base64_go(enc.as_bytes())
            .filter(|b| !b.is_empty())
            .ok_or_else(|| KeyError::CorruptKms {
                arn: self.arn.clone(),
                reason: "`enc` is not a base64 KMS ciphertext".into(),
            })
    }

    /// The `sops.kms` entry holding `blob` (sops' field order, see the module docs).
    pub fn to_master_key(&self, blob: &[u8]) -> MasterKey {
        let mut m = Mapping::new();
        m.push("arn", Value::str(&self.arn));
        if let Some(role) = &self.role {
            m.push("role", Value::str(role));
        }
        if !self.context.is_empty() {
            let mut c = Mapping::new();
            for (k, v) in &self.context {
                c.push(k.as_str(), Value::str(v));
            }
            m.push("context", Value::Map(c));
        }
        m.push("created_at", Value::str(&self.created_at));
        m.push(
            "enc",
            Value::str(&base64::engine::general_purpose::STANDARD.encode(blob)),
        );
        m.push(
            "aws_profile",
            Value::str(self.aws_profile.as_deref().unwrap_or("")),
        );
        MasterKey::Other {
            kind: OtherKeyKind::Kms,
            fields: m,
        }
    }
}

/// The label of a KMS key (see [`KmsKey::label`]); `context` in any order. Public
/// data only: KMS logs the context in CloudTrail, and it never holds a value.
///
/// Unambiguous, because a file's entry is hostile (the `sops` block is not covered by
/// the MAC) and two keys must never share a label: the ARN and role are written as
/// they are only when they hold nothing but the characters of real ARNs (else quoted,
/// as Rust's `{:?}` quotes), and context keys and values and the profile are always
/// quoted. So `+` only ever starts the role, ` (` a context or profile.
pub fn label(
    arn: &str,
    role: Option<&str>,
    context: &[(String, String)],
    aws_profile: Option<&str>,
) -> String {
    fn plain_or_quoted(text: &str) -> String {
        let plain = !text.is_empty()
            && text
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, ':' | '/' | '_' | '.' | '-'));
        if plain {
            text.to_string()
        } else {
            format!("{text:?}")
        }
    }
    let mut out = format!("kms:{}", plain_or_quoted(&arn.replace(' ', "")));
    if let Some(role) = role.filter(|r| !r.is_empty()) {
        out.push('+');
        out.push_str(&plain_or_quoted(role));
    }
    if !context.is_empty() {
        let mut pairs: Vec<String> = context
            .iter()
            .map(|(k, v)| format!("{k:?}={v:?}"))
            .collect();
        pairs.sort();
        out.push_str(&format!(" (context {})", pairs.join(", ")));
    }
    if let Some(p) = aws_profile.filter(|p| !p.is_empty()) {
        out.push_str(&format!(" (profile {p:?})"));
    }
    out
}

/// True when `label` (a key's [`label`]) is the key `name` names: the same label, or
/// for AWS KMS, `kms:ARN` naming every key of that ARN whatever its role, context or
/// profile (as `--rm-kms ARN` removes by ARN in sops).
pub fn label_is_named_by(label: &str, name: &str) -> bool {
    label == name
        || (name.starts_with("kms:")
            && label
                .strip_prefix(name)
                .is_some_and(|rest| rest.starts_with('+') || rest.starts_with(" (")))
}

/// The region of a KMS key ARN, as sops' `arnRegex` captures it; `None` when `arn` is
/// not one.
fn region_of(arn: &str) -> Option<&str> {
    let mut parts = arn.splitn(6, ':');
    let (scheme, partition, service, region, account, resource) = (
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
        parts.next()?,
    );
    let partition_ok = partition.strip_prefix("aws").is_some_and(|rest| {
        rest.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
    });
    let resource_ok = ["key/", "alias/"]
        .iter()
        .any(|p| resource.strip_prefix(p).is_some_and(|r| !r.is_empty()));
    // The SDK builds the endpoint as `kms.<region>.<dns suffix>` and falls back to the
    // `aws` partition for a region it does not know, so a region such as
    // `evil.example/` would send the request (and the data key in it) to another host:
    // a region must be one DNS label of the shape AWS uses (`us-east-1`,
    // `us-gov-west-1`, `cn-north-1`): lowercase letters and digits joined by single
    // hyphens, at most 63 bytes.
    let region_ok = region.len() <= 63
        && !region.is_empty()
        && region.split('-').all(|part| {
            !part.is_empty()
                && part
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        });
    let ok = scheme == "arn"
        && partition_ok
        && service == "kms"
        && region_ok
        && !account.is_empty()
        && account.bytes().all(|b| b.is_ascii_digit())
        && resource_ok;
    ok.then_some(region)
}

/// Parses an encryption context as sops' `--encryption-context` takes it:
/// `key:value` pairs separated by commas (sops' `ParseKMSContext`).
///
/// Errors: the malformed pair. sops ignores the whole context then (with a warning),
/// which would wrap the key without the context the user asked for; sopsync refuses.
pub fn parse_context(text: &str) -> Result<Vec<(String, String)>, String> {
    let mut out: Vec<(String, String)> = Vec::new();
    for pair in text.split(',').filter(|p| !p.is_empty()) {
        let kv: Vec<&str> = pair.split(':').collect();
        let [k, v] = kv[..] else {
            return Err(format!(
                "encryption context entry {pair:?} is not one `key:value` pair"
            ));
        };
        out.retain(|(existing, _)| existing != k);
        out.push((k.to_string(), v.to_string()));
    }
    out.sort();
    Ok(out)
}

/// Encrypts a data key (or a Shamir share) with an AWS KMS key: implemented by the
/// shell with the AWS SDK.
pub trait KmsEngine: Send + Sync {
    /// The ciphertext blob KMS returns for `secret` under `key` (with its context).
    ///
    /// Errors: [`KeyError::Kms`] naming the ARN and what AWS said.
    fn encrypt(&self, key: &KmsKey, secret: &[u8]) -> Result<Vec<u8>, KeyError>;
}

/// An AWS KMS key to wrap data keys for, with the engine that does it.
#[derive(Clone)]
pub struct KmsRecipient {
    key: KmsKey,
    engine: Arc<dyn KmsEngine>,
}

impl KmsRecipient {
    /// A recipient for `key`.
    pub fn new(key: KmsKey, engine: Arc<dyn KmsEngine>) -> KmsRecipient {
        KmsRecipient { key, engine }
    }

    /// The key.
    pub fn key(&self) -> &KmsKey {
        &self.key
    }

    /// Wraps `secret` into a `sops.kms` entry.
    pub fn wrap(&self, secret: &[u8]) -> Result<MasterKey, KeyError> {
        let blob = self.engine.encrypt(&self.key, secret)?;
        Ok(self.key.to_master_key(&blob))
    }
}

impl PartialEq for KmsRecipient {
    fn eq(&self, other: &Self) -> bool {
        self.key.arn == other.key.arn && self.key.role == other.key.role
    }
}

impl Eq for KmsRecipient {}

impl fmt::Debug for KmsRecipient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KmsRecipient({:?})", self.key)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_of_different_keys_never_collide_whatever_a_file_writes() {
        let ctx = |pairs: &[(&str, &str)]| -> Vec<(String, String)> {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        const A: &str = "arn:aws:kms:eu-west-1:1:key/k";
        let rule = label(A, None, &ctx(&[("app", "x"), ("team", "a")]), Some("prod"));
        assert_eq!(
            rule,
            format!("kms:{A} (context \"app\"=\"x\", \"team\"=\"a\") (profile \"prod\")")
        );
        // A context value written to render like another key's context and profile.
        let forged = label(
            A,
            None,
            &ctx(&[("app", "x\", \"team\"=\"a\") (profile \"prod")]),
            None,
        );
        assert_ne!(forged, rule);
        // An ARN carrying a `+ROLE`, and a role carrying a context.
        let role = "arn:aws:iam::1:role/r";
        assert_ne!(
            label(&format!("{A}+{role}"), None, &[], None),
            label(A, Some(role), &[], None)
        );
        assert_ne!(
            label(
                A,
                Some(&format!("{role} (context \"app\"=\"x\")")),
                &[],
                None
            ),
            label(A, Some(role), &ctx(&[("app", "x")]), None)
        );
        // Real ARNs and roles read as they are.
        assert_eq!(label(A, Some(role), &[], None), format!("kms:{A}+{role}"));
    }

    const ARN: &str = "arn:aws:kms:eu-west-1:123456789012:key/0b1c2d3e-aaaa-bbbb-cccc-0123456789ab";

    #[test]
    fn the_region_comes_from_the_arn_and_anything_else_is_refused() {
        let k = KmsKey::from_arn(ARN, vec![], None, String::new()).unwrap();
        assert_eq!(k.region().unwrap(), "eu-west-1");
        let alias = "arn:aws-us-gov:kms:us-gov-west-1:123456789012:alias/sops";
        assert_eq!(region_of(alias), Some("us-gov-west-1"));
        for bad in [
            "",
            "0b1c2d3e-aaaa-bbbb-cccc-0123456789ab",
            "alias/sops",
            "arn:aws:s3:eu-west-1:123456789012:key/x",
            "arn:aws:kms::123456789012:key/x",
            "arn:aws:kms:eu-west-1:12345678901a:key/x",
            "arn:aws:kms:eu-west-1:123456789012:key/",
            "arn:aws:kms:eu-west-1:123456789012:grant/x",
            "--endpoint-url=http://evil",
            // The SDK would put these into the endpoint's host name.
            "arn:aws:kms:evil.example/:123456789012:key/x",
            "arn:aws:kms:evil.example:123456789012:key/x",
            "arn:aws:kms:EU-west-1:123456789012:key/x",
            "arn:aws:kms:eu--west-1:123456789012:key/x",
            "arn:aws:kms:eu-west-1-:123456789012:key/x",
        ] {
            assert!(
                KmsKey::from_arn(bad, vec![], None, String::new()).is_err(),
                "{bad:?} was accepted"
            );
        }
    }

    #[test]
    fn a_flat_arn_may_carry_a_role_after_a_plus() {
        let role = "arn:aws:iam::123456789012:role/sops";
        let k = KmsKey::from_arn(&format!("{ARN} +{role}"), vec![], None, String::new()).unwrap();
        assert_eq!(k.arn, ARN);
        assert_eq!(k.role.as_deref(), Some(role));
    }

    #[test]
    fn the_entry_is_sops_shape_and_reads_back() {
        let ctx = parse_context("team:web,env:prod").unwrap();
        let k =
            KmsKey::from_arn(ARN, ctx, Some("dev".into()), "2026-12-04T10:00:00Z".into()).unwrap();
        let entry = k.to_master_key(&[1, 2, 3]);
        let MasterKey::Other { fields, .. } = &entry else {
            panic!("not an Other entry")
        };
        let keys: Vec<&str> = fields.pairs().map(|(k, _)| k).collect();
        assert_eq!(keys, ["arn", "context", "created_at", "enc", "aws_profile"]);
        let Some(Value::Map(c)) = fields.get("context") else {
            panic!("no context")
        };
        let ckeys: Vec<&str> = c.pairs().map(|(k, _)| k).collect();
        assert_eq!(ckeys, ["env", "team"], "sorted as Go writes a map");
        let (back, f) = KmsKey::of_master_key(&entry).unwrap().unwrap();
        assert_eq!(back, k);
        assert_eq!(back.blob_of(f).unwrap(), [1, 2, 3]);
        assert_eq!(format!("{back:?}"), format!("KmsKey({ARN})"));
    }

    #[test]
    fn a_malformed_context_is_refused_instead_of_dropped() {
        assert!(parse_context("a:b:c").is_err());
        assert!(parse_context("novalue").is_err());
        assert_eq!(parse_context("").unwrap(), vec![]);
    }
}
