//! The real `sopsync controller` binary, run as a child process with a kubeconfig
//! against the fake API server (tests/support/fake_apiserver), reading SOPS files made
//! by the real `sops` from a real `git daemon` on loopback.
//!
//! Every Secret value in these tests contains [`CANARY`]; each test ends by checking
//! that the controller's log never carried it.

use crate::support::cluster::*;
use crate::support::fake_apiserver::{Fault, Match};
use crate::support::run_ok;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::{json, Value};
use sopsync::controller::crd::{SecretSource, SopsSecret, SyncStatus};
use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

#[test]
fn secrets_follow_git_through_create_update_and_delete() {
    let c = Cluster::new(&[("apps/db.yaml", &db("one")), ("apps/api.yaml", &api("one"))]);
    c.key_secret("team-a");
    // A Secret sopsync has nothing to do with: never touched.
    let bystander = c.fake.put(&Secret {
        metadata: meta("team-a", "bystander"),
        data: Some(BTreeMap::from([("x".into(), ByteString(b"y".to_vec()))])),
        ..Secret::default()
    });
    let source = c.source(
        "team-a",
        "apps",
        json!({"url": c.url(), "path": "apps", "interval": "1s"}),
    );
    let ctl = c.controller("c1", &["--log-format", "json"]);
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);
    let want_db = map(&[("username", "app"), ("password", &format!("{CANARY}-one"))]);
    assert_eq!(c.data("team-a", "db"), Some(want_db));
    assert_eq!(
        c.data("team-a", "api"),
        Some(map(&[("token", &format!("{CANARY}-one"))]))
    );
    let status = c.status("team-a", "apps").expect("status");
    assert!(ready_is(Some(&status), "True", "Synced"), "{status:?}");
    assert_eq!(status.observed_generation, Some(1));
    let inventory: Vec<_> = status.inventory.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(inventory, ["api", "db"]);
    // Ownership: the owner-uid label and an ownerReference to the SecretSource.
    let uid = source["metadata"]["uid"].as_str().expect("uid").to_string();
    let db_secret = c.secret("team-a", "db").expect("db");
    let labels = db_secret.metadata.labels.clone().unwrap_or_default();
    assert_eq!(labels.get("sopsync.io/owner-uid"), Some(&uid));
    let owners = db_secret
        .metadata
        .owner_references
        .clone()
        .unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(
        (owners[0].kind.as_str(), owners[0].uid.as_str()),
        ("SecretSource", uid.as_str())
    );
    let managers: Vec<_> = db_secret
        .metadata
        .managed_fields
        .iter()
        .flatten()
        .filter_map(|m| m.manager.clone())
        .collect();
    assert_eq!(
        managers,
        ["sopsync"],
        "written by server-side apply as `sopsync` only"
    );

    // Update one value, delete one Secret, add one.
    let second = c.commit(&[
        ("apps/db.yaml", Some(&db("two"))),
        ("apps/api.yaml", None),
        (
            "apps/cache.yaml",
            Some(&secret_manifest(
                "cache",
                None,
                &[("url", &format!("{CANARY}-redis"))],
            )),
        ),
    ]);
    wait_applied(&c, &ctl, "team-a", "apps", &second);
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-two")
    );
    assert!(
        c.secret("team-a", "api").is_none(),
        "api left Git and was pruned"
    );
    assert_eq!(
        c.data("team-a", "cache").expect("cache")["url"],
        format!("{CANARY}-redis")
    );
    let status = c.status("team-a", "apps").expect("status");
    let inventory: Vec<_> = status.inventory.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(inventory, ["cache", "db"]);
    let after = c.secret("team-a", "bystander").expect("bystander kept");
    assert_eq!(
        after.metadata.resource_version,
        bystander.metadata.resource_version
    );

    wait_until("a Normal Applied Event", &ctl, || {
        c.events("team-a")
            .iter()
            .any(|(t, r, _)| t == "Normal" && r == "Applied")
    });
    wait_until("a Normal Pruned Event naming api", &ctl, || {
        c.events("team-a")
            .iter()
            .any(|(t, r, n)| t == "Normal" && r == "Pruned" && n.contains("api"))
    });
    // --log-format json: every line is a JSON object.
    for line in ctl.logs().lines() {
        serde_json::from_str::<Value>(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
    }
    assert_eq!(
        ctl.metric(
            r#"sopsync_secrets_managed{kind="SecretSource",namespace="team-a",name="apps"}"#
        ),
        2.0
    );
    // db twice, api and cache once each; api deleted once.
    assert_eq!(ctl.metric("sopsync_secret_writes_total"), 4.0);
    assert_eq!(ctl.metric("sopsync_secret_deletes_total"), 1.0);
    ctl.assert_no_canary();
}

#[test]
fn with_prune_off_a_secret_that_left_git_is_kept() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    c.source(
        "team-a",
        "apps",
        json!({"url": c.url(), "interval": "1s", "prune": false}),
    );
    let ctl = c.controller("c1", &[]);
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);
    let second = c.commit(&[("api.yaml", None)]);
    wait_applied(&c, &ctl, "team-a", "apps", &second);
    assert_eq!(
        c.data("team-a", "api"),
        Some(map(&[("token", &format!("{CANARY}-one"))])),
        "prune: false keeps the Secret as it was"
    );
    assert_eq!(ctl.metric("sopsync_secret_deletes_total"), 0.0);
    ctl.assert_no_canary();
}

#[test]
fn an_unowned_secret_is_a_conflict_until_annotated_for_adoption() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    let theirs = c.fake.put(&Secret {
        metadata: meta("team-a", "db"),
        data: Some(BTreeMap::from([(
            "password".into(),
            ByteString(b"theirs".to_vec()),
        )])),
        ..Secret::default()
    });
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let ctl = c.controller("c1", &[]);
    wait_until("the conflict reported", &ctl, || {
        ready_is(c.status("team-a", "apps").as_ref(), "False", "Conflict")
    });
    let status = c.status("team-a", "apps").expect("status");
    let db_result = status
        .secrets
        .iter()
        .find(|r| r.name == "db")
        .expect("db result");
    assert_eq!(format!("{:?}", db_result.result), "Conflict");
    assert!(
        db_result
            .message
            .as_deref()
            .unwrap_or_default()
            .contains("sopsync.io/adopt=true"),
        "{db_result:?}"
    );
    assert_eq!(
        status.last_applied_revision, None,
        "not everything was applied"
    );
    // Ours was written, theirs left exactly as it was, and not in the inventory.
    assert!(c.secret("team-a", "api").is_some());
    let still = c.secret("team-a", "db").expect("db");
    assert_eq!(
        still.metadata.resource_version,
        theirs.metadata.resource_version
    );
    assert_eq!(data_of(&still), map(&[("password", "theirs")]));
    let inventory: Vec<_> = status.inventory.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(inventory, ["api"]);
    // The Event is posted on its own, after the status: wait for it rather than race it.
    wait_until("a Warning Event naming the conflict", &ctl, || {
        c.events("team-a")
            .iter()
            .any(|(t, _, n)| t == "Warning" && n.contains("db"))
    });

    // The owner opts in: sopsync takes it over.
    let mut adopt = still.clone();
    adopt
        .metadata
        .annotations
        .get_or_insert_with(BTreeMap::new)
        .insert("sopsync.io/adopt".into(), "true".into());
    c.fake.put(&adopt);
    let head = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &head);
    let adopted = c.data("team-a", "db").expect("db");
    assert_eq!(adopted["password"], format!("{CANARY}-one"));
    assert!(ready_is(
        c.status("team-a", "apps").as_ref(),
        "True",
        "Synced"
    ));
    ctl.assert_no_canary();
}

#[test]
fn a_resync_with_nothing_changed_writes_nothing() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let ctl = c.controller("c1", &[]);
    let head = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &head);
    // Let the post-sync status and Event writes settle, then count from zero.
    std::thread::sleep(Duration::from_millis(1500));
    c.fake.clear_requests();
    let successes = || {
        ctl.metric(r#"sopsync_reconcile_total{kind="SecretSource",result="success",error="none"}"#)
    };
    let before = successes();
    wait_until("three more reconciles", &ctl, || {
        successes() >= before + 3.0
    });
    let writes = c.fake.writes();
    assert!(
        writes.is_empty(),
        "a resync with nothing changed must not write; it wrote: {:#?}",
        writes
            .iter()
            .map(|w| format!("{} {}", w.method, w.path))
            .collect::<Vec<_>>()
    );
    // It did read: each reconcile lists the Secrets it owns.
    let lists = c
        .fake
        .requests_matching(&Match::verb("list").resource("secrets").namespace("team-a"));
    assert!(lists.len() >= 3, "{} lists", lists.len());
    let (code, text) = ctl.http("GET", "/readyz", &[], b"");
    assert_eq!(code, 200, "{text}\n{}", ctl.logs());
    let (code, _) = ctl.http("GET", "/healthz", &[], b"");
    assert_eq!(code, 200);
    ctl.assert_no_canary();
}

#[test]
fn tenants_use_only_their_own_keys_and_their_own_namespace() {
    let c = Cluster::new(&[
        ("a/db.yaml", &db("one")),
        // A manifest in team-a's folder that names another namespace.
        (
            "a/escape.yaml",
            &secret_manifest("escape", Some("team-b"), &[("k", CANARY)]),
        ),
        ("d/db.yaml", &db("d")),
    ]);
    c.key_secret("team-a");
    c.fake.ensure_namespace("team-b");
    c.fake.ensure_namespace("team-d");
    c.fake.ensure_namespace("team-e");
    let controller_key = c.key_file.to_str().expect("utf-8").to_string();
    // team-b has no key of its own and points at team-a's.
    c.source(
        "team-b",
        "borrow",
        json!({"url": c.url(), "path": "d", "interval": "1s",
               "decryption": {"secretRef": {"name": "sopsync-age-key", "namespace": "team-a"}}}),
    );
    c.source(
        "team-a",
        "apps",
        json!({"url": c.url(), "path": "a", "interval": "1s"}),
    );
    // The controller's own key: allowed in team-d only.
    c.source(
        "team-d",
        "shared",
        json!({"url": c.url(), "path": "d", "interval": "1s", "decryption": {"useControllerKey": true}}),
    );
    c.source(
        "team-e",
        "shared",
        json!({"url": c.url(), "path": "d", "interval": "1s", "decryption": {"useControllerKey": true}}),
    );
    let ctl = c.controller(
        "c1",
        &[
            "--controller-key-file",
            &controller_key,
            "--controller-key-namespaces",
            "team-d",
        ],
    );
    wait_until("team-b's borrowed key denied", &ctl, || {
        c.status("team-b", "borrow")
            .as_ref()
            .and_then(|s| condition(s, "Stalled"))
            .is_some_and(|s| s.status == "True" && s.reason == "KeyDenied")
    });
    wait_until("team-e's use of the controller key denied", &ctl, || {
        c.status("team-e", "shared")
            .as_ref()
            .and_then(|s| condition(s, "Stalled"))
            .is_some_and(|s| s.status == "True" && s.reason == "ControllerKeyDenied")
    });
    wait_until("team-a's cross-namespace Secret denied", &ctl, || {
        ready_is(c.status("team-a", "apps").as_ref(), "False", "Denied")
    });
    let head = c.head();
    wait_applied(&c, &ctl, "team-d", "shared", &head);
    assert_eq!(
        c.data("team-d", "db").expect("team-d db")["password"],
        format!("{CANARY}-d")
    );
    assert!(
        c.fake.list::<Secret>(Some("team-b")).is_empty(),
        "nothing written into team-b"
    );
    assert!(
        c.fake.list::<Secret>(Some("team-e")).is_empty(),
        "nothing written into team-e"
    );
    assert!(
        c.secret("team-a", "db").is_some(),
        "team-a's own Secret is written"
    );
    let status = c.status("team-a", "apps").expect("status");
    let escape = status
        .secrets
        .iter()
        .find(|r| r.name == "escape")
        .expect("escape");
    assert_eq!(format!("{:?}", escape.result), "Denied");
    assert_eq!(escape.namespace, "team-b");
    for ns in ["team-b", "team-e"] {
        wait_until(&format!("{ns}: a Warning Event saying why"), &ctl, || {
            c.events(ns)
                .iter()
                .any(|(t, _, n)| t == "Warning" && n.contains("namespace"))
        });
    }
    ctl.assert_no_canary();
}

/// `sha256=<hex>` of the body under `secret`, as GitHub signs a push.
fn github_signature(secret: &[u8], body: &[u8]) -> String {
    use hmac::Mac;
    let mut mac = hmac::Hmac::<sha2::Sha256>::new_from_slice(secret).expect("hmac key");
    mac.update(body);
    let hex: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("sha256={hex}")
}

#[test]
fn a_signed_push_webhook_syncs_at_once_and_a_bad_signature_is_rejected() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret("team-a");
    let secret_file = c.dir.path().join("webhook-secret");
    std::fs::write(&secret_file, "hook-secret\n").expect("write");
    // An hour between polls: only the webhook can make the change show up in time.
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1h"}));
    let ctl = c.controller(
        "c1",
        &[
            "--webhook-secret-file",
            secret_file.to_str().expect("utf-8"),
        ],
    );
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);
    settle(&ctl);
    let second = c.commit(&[("db.yaml", Some(&db("two")))]);
    let body = json!({"ref": "refs/heads/main", "after": second,
                      "repository": {"clone_url": c.url()}})
    .to_string();
    let push = |signature: &str| {
        ctl.http(
            "POST",
            "/hooks/git",
            &[
                ("Content-Type", "application/json"),
                ("X-GitHub-Event", "push"),
                ("X-Hub-Signature-256", signature),
            ],
            body.as_bytes(),
        )
    };
    let (code, text) = push(&github_signature(b"wrong-secret", body.as_bytes()));
    assert_eq!(code, 401, "{text}");
    assert!(!text.contains("hook-secret"));
    let (code, text) = push("sha256=zz");
    assert_eq!(code, 401, "{text}");
    std::thread::sleep(Duration::from_millis(500));
    let annotations = c
        .fake
        .get::<SecretSource>("team-a", "apps")
        .and_then(|s| s.metadata.annotations)
        .unwrap_or_default();
    assert!(
        !annotations.contains_key("sopsync.io/requested-at"),
        "a rejected hook triggers nothing"
    );
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-one")
    );

    let (code, text) = push(&github_signature(b"hook-secret", body.as_bytes()));
    assert_eq!(code, 202, "{text}");
    assert_eq!(
        serde_json::from_str::<Value>(&text).expect("json")["triggered"],
        1
    );
    wait_applied(&c, &ctl, "team-a", "apps", &second);
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-two")
    );
    assert_eq!(
        ctl.metric(r#"sopsync_webhook_requests_total{result="unauthorized"}"#),
        2.0
    );
    assert_eq!(
        ctl.metric(r#"sopsync_webhook_requests_total{result="accepted"}"#),
        1.0
    );
    ctl.assert_no_canary();
}

#[test]
fn with_leader_election_only_the_leader_writes_and_a_standby_takes_over() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let elect = |id: &str| c.elected(id);
    let mut instances = vec![elect("c1"), elect("c2")];
    let first = c.head();
    wait_applied(&c, &instances[0], "team-a", "apps", &first);
    let leader_id = c.lease_holder().expect("a lease holder");
    let (leader, standby) = if leader_id == "c1" { (0, 1) } else { (1, 0) };
    assert_eq!(instances[leader].metric("sopsync_leader"), 1.0);
    assert_eq!(instances[standby].metric("sopsync_leader"), 0.0);
    assert_eq!(instances[leader].metric("sopsync_secret_writes_total"), 1.0);
    assert_eq!(
        instances[standby].metric("sopsync_secret_writes_total"),
        0.0
    );
    assert_eq!(
        instances[standby].metric(
            r#"sopsync_reconcile_total{kind="SecretSource",result="success",error="none"}"#
        ),
        0.0,
        "the standby does not reconcile"
    );
    // A standby is ready (it can take over) and serves its endpoints.
    assert_eq!(instances[standby].http("GET", "/readyz", &[], b"").0, 200);

    // Graceful stop: the leader releases the lease, the standby takes over at once.
    let status = instances[leader].terminate();
    assert!(status.success(), "SIGTERM exits cleanly: {status}");
    assert!(
        instances[leader]
            .logs()
            .contains("released the leader lease"),
        "{}",
        instances[leader].logs()
    );
    let next = if leader_id == "c1" { "c2" } else { "c1" };
    wait_until("the standby holds the lease", &instances[standby], || {
        c.lease_holder().as_deref() == Some(next)
    });
    let second = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &instances[standby], "team-a", "apps", &second);
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-two")
    );
    assert!(instances[standby].metric("sopsync_secret_writes_total") >= 1.0);

    // A leader that dies without releasing: a third instance takes over after expiry.
    instances.push(elect("c3"));
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        c.lease_holder().as_deref(),
        Some(next),
        "c3 waits as a standby"
    );
    let mut dead = instances.remove(standby);
    dead.child.kill().expect("SIGKILL");
    dead.child.wait().expect("reaped");
    let c3 = instances.last().expect("c3");
    wait_until("c3 holds the expired lease", c3, || {
        c.lease_holder().as_deref() == Some("c3")
    });
    let third = c.commit(&[("db.yaml", Some(&db("three")))]);
    wait_applied(&c, c3, "team-a", "apps", &third);
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-three")
    );
    for i in &instances {
        i.assert_no_canary();
    }
    dead.assert_no_canary();
}

#[test]
fn api_server_faults_and_git_outages_lose_nothing() {
    let mut c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let ctl = c.controller("c1", &[]);
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);

    // 500s on Secret writes, a dropped connection on a list, a 409 on the status
    // write, a slow key read, and every watch cut: the change still lands.
    c.fake.fail_times(
        Match::verb("PATCH").resource("secrets"),
        Fault::Status(500),
        2,
    );
    c.fake.fail_next(
        Match::verb("list").resource("secrets").namespace("team-a"),
        Fault::DropConnection,
    );
    c.fake.fail_next(
        Match::verb("PATCH")
            .resource("secretsources")
            .subresource("status"),
        Fault::Conflict,
    );
    c.fake.fail_next(
        Match::verb("get")
            .resource("secrets")
            .name("sopsync-age-key"),
        Fault::Delay(Duration::from_secs(3)),
    );
    c.fake.drop_watches();
    let second = c.commit(&[("db.yaml", Some(&db("two"))), ("api.yaml", None)]);
    let deadline = Instant::now() + CONVERGE;
    loop {
        // db is never missing or half-written while the faults play out.
        let data = c.data("team-a", "db").expect("db must never disappear");
        assert_eq!(data["username"], "app");
        assert!(
            data["password"] == format!("{CANARY}-one")
                || data["password"] == format!("{CANARY}-two"),
            "db holds one whole value or the other"
        );
        let done = c
            .status("team-a", "apps")
            .is_some_and(|s| s.last_applied_revision.as_deref() == Some(&second));
        if done {
            break;
        }
        assert!(Instant::now() < deadline, "no convergence:\n{}", ctl.logs());
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-two")
    );
    assert!(c.secret("team-a", "api").is_none());
    let refused = c
        .fake
        .requests_matching(&Match::verb("PATCH").resource("secrets"))
        .iter()
        .filter(|r| r.status == 500)
        .count();
    assert_eq!(refused, 2, "both injected 500s were met and retried");
    assert!(
        ctl.metric(r#"sopsync_reconcile_total{kind="SecretSource",result="error",error="write"}"#)
            >= 1.0
    );

    // Git goes down: the Secrets stay as they are and the status says why.
    c.daemon.stop();
    c.commit(&[("db.yaml", Some(&db("three")))]);
    wait_until("the fetch failure reported", &ctl, || {
        c.status("team-a", "apps")
            .as_ref()
            .and_then(|s| condition(s, "Reconciling"))
            .is_some_and(|r| r.status == "True" && r.reason == "GitFetchFailed")
    });
    std::thread::sleep(Duration::from_secs(2));
    let status = c.status("team-a", "apps").expect("status");
    assert!(
        ready_is(Some(&status), "False", "GitFetchFailed"),
        "{status:?}"
    );
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(second.as_str())
    );
    let inventory: Vec<_> = status.inventory.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(inventory, ["db"], "the inventory is kept");
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-two")
    );
    let message = &condition(&status, "Ready").expect("ready").message;
    assert!(
        message.contains("127.0.0.1"),
        "the message names the remote: {message}"
    );
    // Retries back off exponentially (--base-backoff 1: about 1, 2, 4, 8 s apart), so
    // an 8 s window holds a few attempts, not the eight a fixed 1 s retry would make.
    // Load can only lower the count.
    let failed_fetches =
        || ctl.metric(r#"sopsync_git_fetch_duration_seconds_count{result="error"}"#);
    wait_until("a retry of the fetch", &ctl, || failed_fetches() >= 2.0);
    let before = failed_fetches();
    std::thread::sleep(Duration::from_secs(8));
    let attempts = failed_fetches() - before;
    assert!(
        (1.0..=3.0).contains(&attempts),
        "{attempts} fetch attempts in 8 s"
    );
    ctl.assert_no_canary();
}

fn sops_secret(c: &Cluster, ns: &str, name: &str, encrypted: &str) {
    c.fake.ensure_namespace(ns);
    let rt = c
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "sopssecrets");
    let mut obj = c.fake.get_raw(&rt, ns, name).unwrap_or_else(|| {
        json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
               "metadata": {"name": name, "namespace": ns}})
    });
    obj["spec"] = json!({ "encrypted": encrypted });
    c.fake.put_raw(&rt, ns, name, obj);
}

fn sops_secret_status(c: &Cluster, ns: &str, name: &str) -> Option<SyncStatus> {
    c.fake.get::<SopsSecret>(ns, name).and_then(|s| s.status)
}

#[test]
fn an_inline_sops_secret_is_decrypted_and_a_tampered_one_changes_nothing() {
    let c = Cluster::new(&[]);
    c.key_secret("team-a");
    let good = c.sops_encrypt(&secret_manifest(
        "app",
        None,
        &[("token", &format!("{CANARY}-inline"))],
    ));
    sops_secret(&c, "team-a", "app", &good);
    let ctl = c.controller("c1", &[]);
    wait_until("the inline Secret synced", &ctl, || {
        ready_is(
            sops_secret_status(&c, "team-a", "app").as_ref(),
            "True",
            "Synced",
        )
    });
    assert_eq!(
        c.data("team-a", "app"),
        Some(map(&[("token", &format!("{CANARY}-inline"))]))
    );
    let owners = c
        .secret("team-a", "app")
        .and_then(|s| s.metadata.owner_references)
        .unwrap_or_default();
    assert_eq!(owners.len(), 1);
    assert_eq!(owners[0].kind, "SopsSecret");

    // Change one character of the MAC: refused, the Secret keeps its last good value.
    let tampered = tamper_mac(&good);
    sops_secret(&c, "team-a", "app", &tampered);
    wait_until("the tampered manifest refused", &ctl, || {
        sops_secret_status(&c, "team-a", "app")
            .as_ref()
            .and_then(|s| condition(s, "Stalled"))
            .is_some_and(|s| s.status == "True" && s.reason == "DecryptFailed")
    });
    let status = sops_secret_status(&c, "team-a", "app").expect("status");
    let message = &condition(&status, "Stalled").expect("stalled").message;
    assert!(message.to_lowercase().contains("mac"), "{message}");
    assert!(!message.contains(CANARY));
    assert_eq!(
        c.data("team-a", "app"),
        Some(map(&[("token", &format!("{CANARY}-inline"))]))
    );
    wait_until("a Warning DecryptFailed Event", &ctl, || {
        c.events("team-a")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "DecryptFailed")
    });
    assert!(c
        .events("team-a")
        .iter()
        .all(|(_, _, n)| !n.contains(CANARY)));
    ctl.assert_no_canary();
}

/// A SecretSource with labels.
fn labelled_source(c: &Cluster, ns: &str, name: &str, labels: Value, spec: Value) {
    c.source(ns, name, spec);
    let rt = c
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "secretsources");
    let mut obj = c.fake.get_raw(&rt, ns, name).expect("source");
    obj["metadata"]["labels"] = labels;
    c.fake.put_raw(&rt, ns, name, obj);
}

#[test]
fn shards_split_the_sources_by_label_and_a_suspended_source_is_left_alone() {
    let c = Cluster::new(&[("a/db.yaml", &db("a")), ("b/db.yaml", &db("b"))]);
    for ns in ["team-a", "team-b", "team-c"] {
        c.key_secret(ns);
    }
    let spec = |path: &str| json!({"url": c.url(), "path": path, "interval": "1s"});
    labelled_source(&c, "team-a", "apps", json!({"shard": "one"}), spec("a"));
    labelled_source(&c, "team-b", "apps", json!({"shard": "two"}), spec("b"));
    // In no shard: neither instance touches it.
    c.source("team-c", "apps", spec("a"));
    let one = c.controller("one", &["--shard-selector", "shard=one"]);
    let two = c.controller("two", &["--shard-selector", "shard=two"]);
    let head = c.head();
    for (ns, ctl) in [("team-a", &one), ("team-b", &two)] {
        wait_applied(&c, ctl, ns, "apps", &head);
    }
    assert_eq!(
        c.data("team-a", "db").expect("a")["password"],
        format!("{CANARY}-a")
    );
    assert_eq!(
        c.data("team-b", "db").expect("b")["password"],
        format!("{CANARY}-b")
    );
    let managed = |ctl: &ControllerProcess, ns: &str| {
        ctl.metric(&format!(
            r#"sopsync_secrets_managed{{kind="SecretSource",namespace="{ns}",name="apps"}}"#
        ))
    };
    assert_eq!(
        (managed(&one, "team-a"), managed(&one, "team-b")),
        (1.0, 0.0)
    );
    assert_eq!(
        (managed(&two, "team-a"), managed(&two, "team-b")),
        (0.0, 1.0)
    );
    // Absence takes a wait: two more intervals of both instances.
    std::thread::sleep(Duration::from_secs(2));
    assert!(
        c.status("team-c", "apps").is_none(),
        "no shard owns team-c's source"
    );
    assert!(c.secret("team-c", "db").is_none());

    // Suspend team-a's source, then change Git: nothing is fetched or written for it.
    let mut suspended = spec("a");
    suspended["suspend"] = json!(true);
    labelled_source(&c, "team-a", "apps", json!({"shard": "one"}), suspended);
    wait_until("the suspension reported", &one, || {
        ready_is(c.status("team-a", "apps").as_ref(), "False", "Suspended")
    });
    let second = c.commit(&[
        ("a/db.yaml", Some(&db("a2"))),
        ("b/db.yaml", Some(&db("b2"))),
    ]);
    wait_applied(&c, &two, "team-b", "apps", &second);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        c.data("team-a", "db").expect("a")["password"],
        format!("{CANARY}-a")
    );
    // Resumed: it catches up.
    labelled_source(&c, "team-a", "apps", json!({"shard": "one"}), spec("a"));
    wait_applied(&c, &one, "team-a", "apps", &second);
    assert_eq!(
        c.data("team-a", "db").expect("a")["password"],
        format!("{CANARY}-a2")
    );
    // The metrics a dashboard needs are there.
    for series in [
        r#"sopsync_git_fetch_duration_seconds_count{result="success"}"#,
        r#"sopsync_reconcile_duration_seconds_count{kind="SecretSource",result="success",error="none"}"#,
        r#"sopsync_last_success_timestamp_seconds{kind="SecretSource",namespace="team-a",name="apps"}"#,
    ] {
        assert!(one.metric(series) > 0.0, "{series}");
    }
    one.assert_no_canary();
    two.assert_no_canary();
}

/// `text` with one character of its `mac: ENC[...]` changed.
fn tamper_mac(text: &str) -> String {
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("mac: ENC["))
        .expect("a mac line");
    let at = line.find("data:").expect("data") + 5;
    let mut tampered = line.to_string();
    let new = if tampered.as_bytes()[at] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(at..at + 1, new);
    text.replace(line, &tampered)
}

#[test]
fn a_file_that_fails_its_mac_keeps_its_secret_and_stops_pruning() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let ctl = c.controller("c1", &[]);
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);
    // api.yaml now fails its MAC, and db.yaml leaves Git in the same commit.
    let tampered = tamper_mac(&std::fs::read_to_string(c.work.join("api.yaml")).expect("read"));
    std::fs::write(c.work.join("api.yaml"), tampered).expect("write");
    let second = c.commit(&[("db.yaml", None)]);
    wait_attempted(&c, &ctl, "team-a", "apps", &second);
    let status = c.status("team-a", "apps").expect("status");
    assert!(
        ready_is(Some(&status), "False", "RenderFailed"),
        "{status:?}"
    );
    let message = &condition(&status, "Ready").expect("ready").message;
    assert!(message.contains("api.yaml"), "names the file: {message}");
    assert!(
        message.to_lowercase().contains("mac"),
        "says why: {message}"
    );
    assert_eq!(
        status.last_applied_revision.as_deref(),
        Some(first.as_str())
    );
    // Nothing pruned while a file fails, and the failing file's Secret is kept.
    assert_eq!(
        c.data("team-a", "db").expect("db kept")["password"],
        format!("{CANARY}-one")
    );
    assert_eq!(
        c.data("team-a", "api").expect("api kept")["token"],
        format!("{CANARY}-one")
    );
    let inventory: Vec<_> = status.inventory.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(inventory, ["api", "db"]);
    ctl.assert_no_canary();
}

#[test]
fn git_credentials_come_from_a_secret_in_the_sources_namespace_and_are_never_shown() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret("team-a");
    let password = format!("{CANARY}-git-password");
    let http =
        crate::support::git_server::git_http(&c.dir.path().join("served"), "deploy", &password);
    let url = format!("http://127.0.0.1:{}/gitops.git", http.port);
    let creds = |pass: &str| Secret {
        metadata: meta("team-a", "git-creds"),
        data: Some(BTreeMap::from([
            ("username".into(), ByteString(b"deploy".to_vec())),
            ("password".into(), ByteString(pass.as_bytes().to_vec())),
        ])),
        ..Secret::default()
    };
    c.fake.put(&creds("wrong"));
    c.source(
        "team-a",
        "apps",
        json!({"url": url, "interval": "1s", "authSecretRef": {"name": "git-creds"}}),
    );
    let ctl = c.controller("c1", &[]);
    wait_until("wrong credentials reported", &ctl, || {
        ready_is(
            c.status("team-a", "apps").as_ref(),
            "False",
            "GitFetchFailed",
        )
    });
    let status = c.status("team-a", "apps").expect("status");
    let message = &condition(&status, "Ready").expect("ready").message;
    assert!(message.contains("Authentication failed"), "{message}");
    assert!(c.secret("team-a", "db").is_none());
    // The right password (fixed in the Secret) is picked up on the next retry.
    c.fake.put(&creds(&password));
    wait_applied(&c, &ctl, "team-a", "apps", &c.head());
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-one")
    );
    let status = serde_json::to_string(&c.status("team-a", "apps")).expect("json");
    assert!(!status.contains(CANARY), "no credential in the status");
    assert!(c
        .events("team-a")
        .iter()
        .all(|(_, _, n)| !n.contains(CANARY)));
    ctl.assert_no_canary();
}

#[test]
fn an_ssh_source_uses_the_identity_and_known_hosts_from_its_auth_secret() {
    let c = Cluster::new(&[("db.yaml", &db("ssh"))]);
    c.key_secret("team-a");
    let ssh_dir = c.dir.path().join("ssh");
    std::fs::create_dir_all(&ssh_dir).expect("mkdir");
    let sshd = crate::support::git_server::sshd(&ssh_dir);
    let bare = c.dir.path().join("served/gitops.git");
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.server.port,
        bare.display()
    );
    let read = |p: &Path| ByteString(std::fs::read(p).expect("read"));
    let auth = |known_hosts: ByteString| Secret {
        metadata: meta("team-a", "git-ssh"),
        data: Some(BTreeMap::from([
            ("identity".into(), read(&sshd.user_key)),
            ("known_hosts".into(), known_hosts),
        ])),
        ..Secret::default()
    };
    // A known_hosts entry with another key for the host: refused, nothing written.
    let other_host = ssh_dir.join("other_ed25519");
    run_ok(
        Command::new(crate::support::tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(&other_host),
    );
    let other_pub = std::fs::read_to_string(ssh_dir.join("other_ed25519.pub")).expect("pub");
    let mut parts = other_pub.split_whitespace();
    let wrong = format!(
        "[127.0.0.1]:{} {} {}\n",
        sshd.server.port,
        parts.next().expect("type"),
        parts.next().expect("key")
    );
    c.fake.put(&auth(ByteString(wrong.into_bytes())));
    c.source(
        "team-a",
        "apps",
        json!({"url": url, "interval": "1s", "authSecretRef": {"name": "git-ssh"}}),
    );
    let ctl = c.controller("c1", &[]);
    wait_until("the wrong host key refused", &ctl, || {
        ready_is(
            c.status("team-a", "apps").as_ref(),
            "False",
            "GitFetchFailed",
        )
    });
    assert!(c.secret("team-a", "db").is_none());
    // The right known_hosts: synced over ssh.
    c.fake.put(&auth(read(&sshd.known_hosts)));
    wait_applied(&c, &ctl, "team-a", "apps", &c.head());
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-ssh")
    );
    let logs = ctl.logs();
    assert!(
        !logs.contains("PRIVATE KEY"),
        "the identity never reaches the log"
    );
    ctl.assert_no_canary();
}

#[test]
fn a_source_with_more_secrets_than_a_list_page_syncs_them_all_and_sees_a_conflict_on_a_later_page()
{
    // 150 Secrets in one multi-document file (one sops call), and 110 unowned
    // Secrets already in the namespace: both lists of a sync take several pages of
    // 100, and the conflicting `zz-taken` comes last in the listing.
    let mut docs: Vec<String> = (0..150)
        .map(|i| {
            secret_manifest(
                &format!("app-{i:03}"),
                None,
                &[("v", &format!("{CANARY}-{i}"))],
            )
        })
        .collect();
    docs.push(secret_manifest("zz-taken", None, &[("v", CANARY)]));
    let c = Cluster::new(&[("many/all.yaml", &docs.join("---\n"))]);
    c.key_secret("team-a");
    for i in 0..110 {
        c.fake.put(&Secret {
            metadata: meta("team-a", &format!("other-{i:03}")),
            ..Secret::default()
        });
    }
    c.fake.put(&Secret {
        metadata: meta("team-a", "zz-taken"),
        data: Some(BTreeMap::from([(
            "v".into(),
            ByteString(b"theirs".to_vec()),
        )])),
        ..Secret::default()
    });
    c.source(
        "team-a",
        "apps",
        json!({"url": c.url(), "path": "many", "interval": "2s"}),
    );
    let ctl = c.controller("c1", &[]);
    wait_until("the conflict reported", &ctl, || {
        ready_is(c.status("team-a", "apps").as_ref(), "False", "Conflict")
    });
    let status = c.status("team-a", "apps").expect("status");
    let conflicts: Vec<_> = status
        .secrets
        .iter()
        .filter(|r| format!("{:?}", r.result) == "Conflict")
        .map(|r| r.name.as_str())
        .collect();
    assert_eq!(conflicts, ["zz-taken"]);
    assert_eq!(status.inventory.len(), 150);
    for i in [0, 99, 100, 149] {
        let data = c.data("team-a", &format!("app-{i:03}")).expect("written");
        assert_eq!(data["v"], format!("{CANARY}-{i}"));
    }
    assert_eq!(
        data_of(&c.secret("team-a", "zz-taken").expect("theirs")),
        map(&[("v", "theirs")])
    );

    // Once everything is written, a resync reads its 150 Secrets in pages and
    // writes nothing.
    settle(&ctl);
    c.fake.clear_requests();
    let degraded = || {
        ctl.metric(
            r#"sopsync_reconcile_total{kind="SecretSource",result="error",error="Conflict"}"#,
        )
    };
    let before = degraded();
    wait_until("two more reconciles", &ctl, || degraded() >= before + 2.0);
    let writes = c.fake.writes();
    assert!(
        writes.is_empty(),
        "nothing changed, yet it wrote: {:?}",
        writes.iter().map(|w| &w.path).collect::<Vec<_>>()
    );
    let pages = c
        .fake
        .requests_matching(&Match::verb("list").resource("secrets").namespace("team-a"));
    assert!(
        pages.iter().all(|r| r.query.contains("limit=100")),
        "every list is paged"
    );
    assert!(
        pages.iter().any(|r| r.query.contains("continue=")),
        "150 owned Secrets take more than one page"
    );
    ctl.assert_no_canary();
}

#[test]
fn a_secret_changed_or_deleted_by_someone_else_is_restored_at_once_and_our_own_writes_do_not_resync(
) {
    use kube::api::{Api, Patch, PatchParams};
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    // An hour: anything restored below was restored by the watch, not a resync.
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1h"}));
    let ctl = c.controller("c1", &[]);
    let head = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &head);
    settle(&ctl);
    let reconciles = || {
        ctl.metric(r#"sopsync_reconcile_total{kind="SecretSource",result="success",error="none"}"#)
    };
    assert_eq!(
        reconciles(),
        1.0,
        "the watch brought back our own two writes; they must not reconcile the source again"
    );

    // Someone edits a value with another field manager: put back without waiting.
    c.fake.block_on(async {
        let secrets: Api<Secret> = Api::namespaced(c.fake.client().await, "team-a");
        let edit = PatchParams {
            field_manager: Some("kubectl-edit".into()),
            ..PatchParams::default()
        };
        let patch = json!({"data": {"password": "dGFtcGVyZWQ="}});
        secrets
            .patch("db", &edit, &Patch::Merge(&patch))
            .await
            .expect("edit the Secret");
    });
    wait_until("db restored from Git", &ctl, || {
        c.data("team-a", "db")
            .is_some_and(|d| d["password"] == format!("{CANARY}-one"))
    });

    // Someone deletes one: written again.
    c.fake
        .delete_raw(&c.fake.resource_type::<Secret>(), "team-a", "api")
        .expect("delete the Secret");
    wait_until("api written again", &ctl, || {
        c.data("team-a", "api")
            .is_some_and(|d| d["token"] == format!("{CANARY}-one"))
    });
    ctl.assert_no_canary();
}
