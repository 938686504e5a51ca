//! Keyed digests of Secret data (pure: no I/O). Everything rotation places where the
//! plaintext is not (a pod-template annotation, a versioned Secret name, the status,
//! Events) is derived from these, never from a bare hash: a bare SHA-256 of a
//! low-entropy value (a PIN, a short password) is brute-forced in seconds by anyone who
//! can read a Deployment. The key is the installation's [`DigestKey`], which only the
//! controller reads ([`super::digest_key`]).
//!
//! The encodings are unambiguous: a domain tag per use, then every field
//! length-prefixed (u64, big endian), keys in sorted order, so no two different inputs
//! share an encoding.

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::collections::BTreeMap;
use zeroize::Zeroizing;

/// The length of a digest key, in bytes.
pub const KEY_LEN: usize = 32;

/// How many hex digits of a Secret's keyed digest a versioned name carries (40 bits:
/// names stay short, and a collision among one Secret's few kept versions is
/// negligible; the digest being keyed, the suffix says nothing about the value).
pub const VERSION_HEX_DIGITS: usize = 10;

/// Domain tag of [`secret_digest`].
const TAG_SECRET: &[u8] = b"sopsync/rotation/secret-data/v1";
/// Domain tag of [`combined_digest`].
const TAG_COMBINED: &[u8] = b"sopsync/rotation/workload-secrets/v1";

/// The per-installation HMAC key. No `Display`; `Debug` prints `[REDACTED]`.
#[derive(Clone)]
pub struct DigestKey(Zeroizing<[u8; KEY_LEN]>);

impl DigestKey {
    /// A key from its bytes (the caller checked the length).
    pub fn from_bytes(bytes: [u8; KEY_LEN]) -> DigestKey {
        DigestKey(Zeroizing::new(bytes))
    }

    /// A key from a slice, if it has exactly [`KEY_LEN`] bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<DigestKey> {
        let array: [u8; KEY_LEN] = bytes.try_into().ok()?;
        Some(DigestKey::from_bytes(array))
    }

    /// The key's bytes (to store it once in its Secret).
    pub fn expose_secret(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    fn mac(&self, tag: &[u8]) -> Hmac<Sha256> {
        // HMAC takes a key of any length; 32 bytes is never refused.
        let mut m = <Hmac<Sha256> as Mac>::new_from_slice(&self.0[..])
            .unwrap_or_else(|_| unreachable!("HMAC accepts every key length"));
        field(&mut m, tag);
        m
    }
}

impl std::fmt::Debug for DigestKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DigestKey([REDACTED])")
    }
}

/// A keyed digest (HMAC-SHA256).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Digest([u8; 32]);

impl Digest {
    /// Lowercase hex, 64 digits.
    pub fn to_hex(&self) -> String {
        self.0.iter().map(|b| format!("{b:02x}")).collect()
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }
}

fn field(m: &mut Hmac<Sha256>, bytes: &[u8]) {
    m.update(&(bytes.len() as u64).to_be_bytes());
    m.update(bytes);
}

fn finish(m: Hmac<Sha256>) -> Digest {
    Digest(m.finalize().into_bytes().into())
}

/// The keyed digest of one Secret's data in `namespace`: HMAC-SHA256 over the namespace,
/// the number of entries, then each key and value in sorted key order.
///
/// The namespace is part of the input because one installation key serves every
/// namespace: without it, a tenant who can read another namespace's workloads could
/// render guesses of a low-entropy value in its own namespace and compare the digests
/// (versioned names, restart annotations) with that namespace's.
pub fn secret_digest<V: AsRef<[u8]>>(
    key: &DigestKey,
    namespace: &str,
    data: &BTreeMap<String, V>,
) -> Digest {
    let mut m = key.mac(TAG_SECRET);
    field(&mut m, namespace.as_bytes());
    m.update(&(data.len() as u64).to_be_bytes());
    for (k, v) in data {
        field(&mut m, k.as_bytes());
        field(&mut m, v.as_ref());
    }
    finish(m)
}

/// The keyed digest of the Secrets a workload uses, by name: what the workload's
/// pod-template annotation carries. Two Secrets changing at once change it once (one
/// rollout); an unchanged set of values gives the same digest (no rollout).
pub fn combined_digest(key: &DigestKey, secrets: &BTreeMap<String, Digest>) -> Digest {
    let mut m = key.mac(TAG_COMBINED);
    m.update(&(secrets.len() as u64).to_be_bytes());
    for (name, d) in secrets {
        field(&mut m, name.as_bytes());
        field(&mut m, d.as_bytes());
    }
    finish(m)
}

/// The version suffix of a Secret's content: the first [`VERSION_HEX_DIGITS`] hex
/// digits of its keyed digest.
pub fn version_of(digest: &Digest) -> String {
    let mut hex = digest.to_hex();
    hex.truncate(VERSION_HEX_DIGITS);
    hex
}

/// The name of a versioned Secret: `<name>-<version>` (Versioned strategy). Keyed, so
/// a reader of the name learns nothing about the value, unlike the bare SHA-256 prefix
/// this replaces.
pub fn versioned_name(name: &str, digest: &Digest) -> String {
    format!("{name}-{}", version_of(digest))
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest as _;

    fn key(b: u8) -> DigestKey {
        DigestKey::from_bytes([b; KEY_LEN])
    }

    fn data(pairs: &[(&str, &str)]) -> BTreeMap<String, Vec<u8>> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    #[test]
    fn the_same_data_in_two_namespaces_has_different_digests_and_versions() {
        // One installation key serves every namespace: a tenant must not be able to
        // reproduce another namespace's digest (or version suffix) by rendering a guess.
        let d = data(&[("pin", "1234")]);
        let a = secret_digest(&key(1), "team-a", &d);
        let b = secret_digest(&key(1), "team-b", &d);
        assert_ne!(a, b);
        assert_ne!(versioned_name("db", &a), versioned_name("db", &b));
        // Length-prefixed: the namespace cannot slide into the data.
        assert_ne!(
            secret_digest(&key(1), "a", &data(&[("b", "")])),
            secret_digest(&key(1), "ab", &data(&[("", "")]))
        );
    }

    #[test]
    fn the_digest_depends_on_the_key_and_on_every_key_and_value() {
        let d = data(&[("a", "1"), ("b", "2")]);
        let base = secret_digest(&key(1), "ns", &d);
        assert_eq!(base, secret_digest(&key(1), "ns", &d.clone()));
        assert_ne!(base, secret_digest(&key(2), "ns", &d));
        assert_ne!(
            base,
            secret_digest(&key(1), "ns", &data(&[("a", "1"), ("b", "3")]))
        );
        assert_ne!(
            base,
            secret_digest(&key(1), "ns", &data(&[("a", "1"), ("c", "2")]))
        );
        assert_ne!(base, secret_digest(&key(1), "ns", &data(&[("a", "1")])));
    }

    #[test]
    fn the_encoding_is_unambiguous() {
        // Moving a byte between key and value, or between two entries, changes the digest.
        let k = key(1);
        assert_ne!(
            secret_digest(&k, "ns", &data(&[("ab", "c")])),
            secret_digest(&k, "ns", &data(&[("a", "bc")]))
        );
        assert_ne!(
            secret_digest(&k, "ns", &data(&[("a", "b"), ("c", "")])),
            secret_digest(&k, "ns", &data(&[("a", ""), ("bc", "")]))
        );
    }

    #[test]
    fn the_digest_is_not_the_bare_sha256_of_the_value() {
        let pin = "4711";
        let d = secret_digest(&key(9), "ns", &data(&[("pin", pin)]));
        let bare: String = sha2::Sha256::digest(pin.as_bytes())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        assert_ne!(d.to_hex(), bare);
        assert!(!versioned_name("db", &d).contains(&bare[..VERSION_HEX_DIGITS]));
    }

    #[test]
    fn the_combined_digest_covers_names_and_digests() {
        let k = key(1);
        let a = secret_digest(&k, "ns", &data(&[("x", "1")]));
        let b = secret_digest(&k, "ns", &data(&[("x", "2")]));
        let one = BTreeMap::from([("s1".to_string(), a), ("s2".to_string(), b)]);
        let swapped = BTreeMap::from([("s1".to_string(), b), ("s2".to_string(), a)]);
        assert_ne!(combined_digest(&k, &one), combined_digest(&k, &swapped));
        assert_eq!(combined_digest(&k, &one), combined_digest(&k, &one.clone()));
    }

    #[test]
    fn versioned_names_carry_ten_hex_digits_of_the_keyed_digest() {
        let d = secret_digest(&key(1), "ns", &data(&[("a", "1")]));
        let name = versioned_name("db", &d);
        assert_eq!(name.len(), "db-".len() + VERSION_HEX_DIGITS);
        assert!(name.starts_with("db-"));
        assert_eq!(&name[3..], &d.to_hex()[..VERSION_HEX_DIGITS]);
    }

    #[test]
    fn a_digest_key_debug_print_is_redacted() {
        assert_eq!(format!("{:?}", key(7)), "DigestKey([REDACTED])");
    }
}
