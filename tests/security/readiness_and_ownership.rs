//! Issue 11, point 8. /readyz with leader election, and ownership by ownerReference uid.
//!
//! What `/readyz` means is written in `src/server/readiness.rs`: a leader (or the only
//! replica) is ready once its caches have synced; a standby is ready while it waits for
//! the lease (otherwise a rolling upgrade of two replicas deadlocks).

use crate::support::cluster::*;
use crate::support::fake_apiserver::{Fault, Match};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::json;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

#[test]
fn a_leader_is_not_ready_until_its_caches_sync_and_a_standby_is_ready_while_it_waits() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    // The SecretSource informer cannot list: the leader's caches never sync.
    let blocked = Match::verb("list").resource("secretsources");
    c.fake.fail_always(blocked, Fault::Status(500));
    let leader = c.elected("c1");
    wait_until("c1 holds the lease", &leader, || {
        c.lease_holder().as_deref() == Some("c1")
    });
    // Not ready for as long as the caches do not sync (checked over 2 s, not once).
    let until = Instant::now() + Duration::from_secs(2);
    while Instant::now() < until {
        assert_eq!(
            leader.http("GET", "/readyz", &[], b""),
            (503, "not ready: caches syncing\n".to_string()),
            "a leader whose caches have not synced is not ready"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(leader.metric("sopsync_leader"), 1.0);

    // A standby is ready: it is healthy and can take over.
    let standby = c.elected("c2");
    wait_until("c2 is a ready standby", &standby, || {
        standby.http("GET", "/readyz", &[], b"")
            == (
                200,
                "ready: standby, waiting for the leader lease\n".to_string(),
            )
    });
    assert_eq!(c.lease_holder().as_deref(), Some("c1"));

    // The fault ends: the leader's caches sync, it becomes ready and syncs the source.
    c.fake.clear_faults();
    wait_until("the leader is ready", &leader, || {
        leader.http("GET", "/readyz", &[], b"") == (200, "ready: caches synced\n".to_string())
    });
    wait_applied(&c, &leader, "team-a", "apps", &c.head());
    leader.assert_no_canary();
    standby.assert_no_canary();
}

#[test]
fn the_owner_label_alone_does_not_make_a_secret_ours() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret("team-a");
    let source = c.source("team-a", "apps", json!({"url": c.url(), "interval": "1h"}));
    let uid = source["metadata"]["uid"].as_str().expect("uid").to_string();
    // Someone else's Secret, labelled with the source's uid but without the
    // controller ownerReference: a forged claim, not ownership.
    c.fake.put(&Secret {
        metadata: kube::api::ObjectMeta {
            name: Some("db".into()),
            namespace: Some("team-a".into()),
            labels: Some(BTreeMap::from([("sopsync.io/owner-uid".to_string(), uid)])),
            ..Default::default()
        },
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"theirs".to_vec()),
        )])),
        ..Secret::default()
    });
    let ctl = c.controller("c1", &[]);
    wait_until("the conflict reported", &ctl, || {
        c.status("team-a", "apps").is_some_and(|s| {
            s.secrets
                .iter()
                .any(|r| r.name == "db" && format!("{:?}", r.result) == "Conflict")
        })
    });
    let still = c.secret("team-a", "db").expect("db");
    assert_eq!(
        data_of(&still),
        map(&[("password", "theirs")]),
        "left exactly as it was"
    );
    assert!(
        still
            .metadata
            .owner_references
            .unwrap_or_default()
            .is_empty(),
        "not taken over"
    );
    assert_eq!(ctl.metric("sopsync_secret_writes_total"), 0.0);
    ctl.assert_no_canary();
}
