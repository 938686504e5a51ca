//! The per-installation digest key (issue 12, "Digests never reveal plaintext"): created
//! once, race-safe between replicas, never rewritten.

use crate::support::fake_apiserver::FakeApiServer;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use sopsync::controller::rotation::digest_key::{load_or_create, DigestKeyError, DEFAULT_SECRET};
use std::collections::BTreeMap;

#[test]
fn two_replicas_racing_to_create_the_digest_key_end_with_one_key() {
    let fake = FakeApiServer::start();
    fake.ensure_namespace("sopsync-system");
    let (a, b) = fake.block_on(async {
        let (c1, c2) = (fake.client().await, fake.client().await);
        futures::join!(
            load_or_create(&c1, "sopsync-system", DEFAULT_SECRET),
            load_or_create(&c2, "sopsync-system", DEFAULT_SECRET)
        )
    });
    let (a, b) = (a.expect("replica 1"), b.expect("replica 2"));
    assert_eq!(
        a.expose_secret(),
        b.expose_secret(),
        "both use the same key"
    );
    let stored: Secret = fake
        .get("sopsync-system", DEFAULT_SECRET)
        .expect("the key Secret");
    assert_eq!(stored.immutable, Some(true));
    assert_eq!(
        &stored.data.expect("data")["key"].0[..],
        &a.expose_secret()[..]
    );
    let creates = fake
        .requests()
        .iter()
        .filter(|r| r.verb == "create" && r.resource == "secrets" && (200..300).contains(&r.status))
        .count();
    assert_eq!(creates, 1, "exactly one replica created it");
    // A later start reads the same key and writes nothing.
    fake.clear_requests();
    let again = fake
        .block_on(async {
            load_or_create(&fake.client().await, "sopsync-system", DEFAULT_SECRET).await
        })
        .expect("read");
    assert_eq!(again.expose_secret(), a.expose_secret());
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}

#[test]
fn a_digest_key_secret_without_a_valid_key_is_reported_and_never_rewritten() {
    let fake = FakeApiServer::start();
    fake.ensure_namespace("sopsync-system");
    fake.put(&Secret {
        metadata: crate::support::cluster::meta("sopsync-system", DEFAULT_SECRET),
        data: Some(BTreeMap::from([("key".into(), ByteString(vec![1; 16]))])),
        ..Secret::default()
    });
    fake.clear_requests();
    let err = fake
        .block_on(async {
            load_or_create(&fake.client().await, "sopsync-system", DEFAULT_SECRET).await
        })
        .expect_err("a 16-byte key is refused");
    assert!(matches!(err, DigestKeyError::Invalid { .. }), "{err}");
    let text = err.to_string();
    assert!(text.contains("sopsync-system/sopsync-digest-key"), "{text}");
    assert!(text.contains("restore it from your backup"), "{text}");
    assert!(fake.writes().is_empty(), "{:?}", fake.writes());
}
