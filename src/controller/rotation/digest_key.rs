//! The per-installation digest key: 32 random bytes in a Secret of the controller's own
//! namespace (default `sopsync-digest-key`, data key `key`), created by whichever
//! replica needs it first and never rewritten.
//!
//! Guarantees:
//! - Race-safe between replicas and shards: each tries to create the Secret; the one
//!   that loses gets 409 AlreadyExists and reads the winner's key. Every replica ends
//!   with the same key.
//! - Stable: it does not depend on the age keys or the SOPS data keys, so rotating
//!   those changes no digest (and restarts nothing). The Secret is created immutable.
//! - Never rewritten: a Secret that exists but holds no valid key is an error naming the
//!   Secret (restore it from the backup), not a reason to make a new key, which would
//!   change every digest and restart every opted-in workload once.
//!
//! Backup (docs/rotation.md): `kubectl -n <ns> get secret sopsync-digest-key -o yaml`
//! into the same vault as the age keys. Losing it costs one extra rollout of each
//! opted-in workload and new names for versioned Secrets, nothing more.
//!
//! The key is read when a restart is due, not cached: the controller holds no
//! key material between syncs (STYLE.md 25).

use super::digest::{DigestKey, KEY_LEN};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use k8s_openapi::ByteString;
use kube::api::{Api, PostParams};
use kube::Client;
use rand_core::{OsRng, RngCore};
use std::collections::BTreeMap;
use zeroize::Zeroize;

/// The default name of the digest key Secret.
pub const DEFAULT_SECRET: &str = "sopsync-digest-key";
/// The data key holding the 32 key bytes.
pub const DATA_KEY: &str = "key";

/// Why the digest key is unavailable.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DigestKeyError {
    /// The API server refused or failed a read or the create.
    #[error("the digest key Secret {namespace}/{name}: {source}; check the controller's RBAC (create/get on that Secret)")]
    Api {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
        /// The API error.
        source: kube::Error,
    },
    /// The Secret exists but holds no 32-byte `key`.
    #[error("the digest key Secret {namespace}/{name} holds no 32-byte `key`; restore it from your backup (docs/rotation.md), or delete it to have a new one made (every opted-in workload then restarts once)")]
    Invalid {
        /// The Secret's namespace.
        namespace: String,
        /// The Secret's name.
        name: String,
    },
}

/// The key held by `secret`, if it holds a valid one.
fn key_of(secret: &Secret) -> Option<DigestKey> {
    let bytes = secret.data.as_ref()?.get(DATA_KEY)?;
    DigestKey::from_slice(&bytes.0)
}

/// The new Secret holding `key`.
fn new_secret(name: &str, key: &DigestKey) -> Secret {
    Secret {
        metadata: ObjectMeta {
            name: Some(name.to_string()),
            labels: Some(BTreeMap::from([(
                "app.kubernetes.io/managed-by".to_string(),
                "sopsync".to_string(),
            )])),
            annotations: Some(BTreeMap::from([(
                "sopsync.io/purpose".to_string(),
                "the key of sopsync's keyed digests (docs/rotation.md); back it up, never edit it"
                    .to_string(),
            )])),
            ..ObjectMeta::default()
        },
        immutable: Some(true),
        type_: Some("Opaque".into()),
        data: Some(BTreeMap::from([(
            DATA_KEY.to_string(),
            ByteString(key.expose_secret().to_vec()),
        )])),
        ..Secret::default()
    }
}

/// Reads the digest key, creating it first when it does not exist.
///
/// Errors: [`DigestKeyError::Api`] when the Secret can be neither read nor created,
/// [`DigestKeyError::Invalid`] when it exists without a valid key (never overwritten).
pub async fn load_or_create(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<DigestKey, DigestKeyError> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let api_error = |source| DigestKeyError::Api {
        namespace: namespace.into(),
        name: name.into(),
        source,
    };
    let invalid = || DigestKeyError::Invalid {
        namespace: namespace.into(),
        name: name.into(),
    };
    if let Some(mut existing) = api.get_opt(name).await.map_err(api_error)? {
        let key = key_of(&existing);
        wipe(&mut existing);
        return key.ok_or_else(invalid);
    }
    let mut bytes = [0u8; KEY_LEN];
    OsRng.fill_bytes(&mut bytes);
    let key = DigestKey::from_bytes(bytes);
    bytes.zeroize();
    let mut body = new_secret(name, &key);
    let created = api.create(&PostParams::default(), &body).await;
    wipe(&mut body);
    match created {
        Ok(mut s) => {
            wipe(&mut s);
            tracing::info!(secret = %format!("{namespace}/{name}"), "created the digest key Secret; back it up (docs/rotation.md)");
            Ok(key)
        }
        // Another replica created it first: use its key, drop ours.
        Err(kube::Error::Api(s)) if s.code == 409 => {
            let mut existing = api.get(name).await.map_err(api_error)?;
            let key = key_of(&existing);
            wipe(&mut existing);
            key.ok_or_else(invalid)
        }
        Err(e) => Err(api_error(e)),
    }
}

fn wipe(secret: &mut Secret) {
    for v in secret.data.iter_mut().flat_map(|d| d.values_mut()) {
        v.0.zeroize();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_new_secret_is_immutable_and_holds_the_key_under_key() {
        let key = DigestKey::from_bytes([7; KEY_LEN]);
        let s = new_secret(DEFAULT_SECRET, &key);
        assert_eq!(s.immutable, Some(true));
        let back = key_of(&s).expect("a valid key");
        assert_eq!(back.expose_secret(), key.expose_secret());
    }

    #[test]
    fn a_secret_with_a_short_key_is_invalid() {
        let mut s = new_secret(DEFAULT_SECRET, &DigestKey::from_bytes([7; KEY_LEN]));
        if let Some(d) = s.data.as_mut() {
            d.insert(DATA_KEY.into(), ByteString(vec![1; 16]));
        }
        assert!(key_of(&s).is_none());
    }
}
