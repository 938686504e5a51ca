//! Issue 12, the Versioned strategy, against the fake API server and a real git daemon:
//! each content is an immutable `<name>-<keyed suffix>` Secret, the workloads in
//! `restartWorkloads` get every reference switched in one patch, old versions stay while
//! anything may still need them, and a failed rollout keeps (and with
//! `rollbackOnFailure` restores) the old version. Every test plants the canary and
//! checks that neither it nor its bare SHA-256 shows outside Secret data.

use crate::support::cluster::{
    db, ready_is, wait_applied, wait_until, Cluster, ControllerProcess, CANARY,
};
use crate::support::fake_apiserver::{Match, ResourceType, RolloutBehaviour};
use crate::support::workloads::Workload;
use base64::Engine;
use k8s_openapi::api::apps::v1::Deployment;
use serde_json::{json, Value};
use sha2::{Digest, Sha256};
use sopsync::controller::crd::{RolloutState, SyncStatus};
use sopsync::controller::rotation::versioned::referenced_by;
use std::collections::BTreeSet;

pub(super) const NS: &str = "team";

fn deployments(c: &Cluster) -> ResourceType {
    c.fake.resource_type_raw("apps", "v1", "deployments")
}

/// A Deployment `name` whose pod template uses Secret `secret` in every way a pod can:
/// a secret volume, a projected volume, `env.valueFrom.secretKeyRef` and `envFrom`.
/// It keeps `history` old ReplicaSets and fails after one second without progress;
/// the fake's simulated controllers roll it out.
pub(super) fn deployment_using(c: &Cluster, name: &str, secret: &str, history: i64) {
    let obj = json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NS},
        "spec": {
            "replicas": 2,
            "revisionHistoryLimit": history,
            "progressDeadlineSeconds": 1,
            "selector": {"matchLabels": {"app": name}},
            "template": {
                "metadata": {"labels": {"app": name}},
                "spec": {
                    "volumes": [
                        {"name": "creds", "secret": {"secretName": secret}},
                        {"name": "all", "projected": {"sources": [{"secret": {"name": secret}}]}}
                    ],
                    "initContainers": [{"name": "init", "image": "busybox",
                        "envFrom": [{"secretRef": {"name": secret}}]}],
                    "containers": [{"name": "app", "image": "busybox", "env": [
                        {"name": "DB_PASSWORD", "valueFrom": {"secretKeyRef": {"name": secret, "key": "password"}}}
                    ]}]
                }
            }
        }
    });
    c.fake.put_raw(&deployments(c), NS, name, obj);
}

/// The Secret names a Deployment's pod template references.
fn template_refs(c: &Cluster, name: &str) -> BTreeSet<String> {
    let d = c
        .fake
        .get_raw(&deployments(c), NS, name)
        .expect("the Deployment");
    sopsync::controller::rotation::versioned::referenced_by("Deployment", &d)
}

/// From now on the new pods of Deployment `name` never become available: its rollout
/// stalls and the simulated Deployment controller reports ProgressDeadlineExceeded.
fn break_rollouts(c: &Cluster, name: &str) {
    c.fake
        .set_rollout_behaviour(NS, "Deployment", name, RolloutBehaviour::NeverAvailable);
}

/// The Secrets of the namespace that are versions of `db`.
fn versions_of_db(c: &Cluster) -> BTreeSet<String> {
    let secrets = c.fake.resource_type_raw("", "v1", "secrets");
    c.fake
        .list_raw(&secrets, Some(NS))
        .into_iter()
        .filter(|s| s["metadata"]["annotations"]["sopsync.io/version-of"] == "db")
        .filter_map(|s| s["metadata"]["name"].as_str().map(str::to_string))
        .collect()
}

/// Pushes a new password and waits until `api` runs the new version to completion;
/// returns the version.
fn rotate_and_roll_out(c: &Cluster, ctl: &ControllerProcess, password: &str) -> String {
    let old = current(c);
    let head = c.commit(&[("db.yaml", Some(&db(password)))]);
    wait_applied(c, ctl, NS, "apps", &head);
    let new = wait_new_version(c, ctl, &old);
    wait_until(&format!("api rolled out to {new}"), ctl, || {
        template_refs(c, "api") == BTreeSet::from([new.clone()])
            && rollout_state(c, "api") == Some(RolloutState::Complete)
    });
    new
}

/// A cluster with `db` in Git, Deployment `api` using it (keeping `history` old
/// ReplicaSets), and a Versioned source with `extra` rotation settings.
pub(super) fn versioned_with(extra: Value, history: i64) -> (Cluster, ControllerProcess, String) {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret(NS);
    deployment_using(&c, "api", "db", history);
    let mut rotation = json!({"strategy": "Versioned",
        "restartWorkloads": [{"kind": "Deployment", "name": "api"}]});
    for (k, v) in extra.as_object().into_iter().flatten() {
        rotation[k] = v.clone();
    }
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "interval": "1s", "rotation": rotation}),
    );
    let ctl = c.controller("c1", &["--workload-restarts"]);
    let head = c.head();
    wait_applied(&c, &ctl, NS, "apps", &head);
    (c, ctl, head)
}

pub(super) fn versioned(extra: Value) -> (Cluster, ControllerProcess, String) {
    versioned_with(extra, 10)
}

fn status(c: &Cluster) -> SyncStatus {
    c.status(NS, "apps").expect("a status")
}

fn current(c: &Cluster) -> String {
    status(c)
        .rotation
        .and_then(|r| r.secrets.into_iter().find(|v| v.name == "db"))
        .map(|v| format!("db-{}", v.current_version))
        .expect("status.rotation names the current version of db")
}

/// Waits until the status names a current version of `db` other than `old`.
fn wait_new_version(c: &Cluster, ctl: &ControllerProcess, old: &str) -> String {
    let mut found = String::new();
    wait_until("a new current version of db", ctl, || {
        let now = status(c)
            .rotation
            .and_then(|r| r.secrets.into_iter().find(|v| v.name == "db"))
            .map(|v| format!("db-{}", v.current_version));
        match now {
            Some(v) if v != old => {
                found = v;
                true
            }
            _ => false,
        }
    });
    found
}

fn rollout_state(c: &Cluster, name: &str) -> Option<RolloutState> {
    status(c)
        .rotation?
        .workloads
        .into_iter()
        .find(|r| r.name == name)
        .map(|r| r.state)
}

/// Reconciles so far (all kinds and results).
fn reconciles(ctl: &ControllerProcess) -> f64 {
    let (_, text) = ctl.http("GET", "/metrics", &[], b"");
    text.lines()
        .filter(|l| l.starts_with("sopsync_reconcile_total{"))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

fn switch_patches(c: &Cluster, name: &str) -> usize {
    c.fake
        .requests_matching(
            &Match::verb("patch")
                .resource("deployments")
                .namespace(NS)
                .name(name),
        )
        .len()
}

/// Neither the canary nor its bare SHA-256 (hex, its 10-digit prefix, base64) appears
/// in any name, label, annotation, pod template, status, Event, metric or log line
/// (the shared check of this test module), nor in the ReplicaSets and
/// ControllerRevisions that keep old pod templates; and no version suffix is a piece of
/// an unkeyed digest of the data (the content hash kept beside the data).
fn assert_no_canary_anywhere(c: &Cluster, ctl: &ControllerProcess, values: &[&str]) {
    let values: Vec<String> = values.iter().map(|v| v.to_string()).collect();
    super::assert_no_plaintext_anywhere(c, ctl, &values);
    let mut history = Vec::new();
    for plural in ["replicasets", "controllerrevisions"] {
        let rt = c.fake.resource_type_raw("apps", "v1", plural);
        history.extend(c.fake.list_raw(&rt, Some(NS)));
    }
    let history = serde_json::to_string(&history).expect("JSON");
    for v in &values {
        let digest = Sha256::digest(v.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        for form in [
            v.clone(),
            hex[..10].to_string(),
            hex,
            base64::engine::general_purpose::STANDARD.encode(digest),
        ] {
            assert!(!history.contains(&form), "revision history shows {form:?}");
        }
    }
    let secrets = c.fake.resource_type_raw("", "v1", "secrets");
    let content_hashes: Vec<String> = c
        .fake
        .list_raw(&secrets, Some(NS))
        .iter()
        .filter_map(|s| s["metadata"]["annotations"]["sopsync.io/content-hash"].as_str())
        .map(|h| h.trim_start_matches("sha256:").to_string())
        .collect();
    for v in status(c).rotation.into_iter().flat_map(|r| r.secrets) {
        for suffix in std::iter::once(&v.current_version).chain(&v.versions_kept) {
            for h in &content_hashes {
                assert!(
                    !h.starts_with(suffix.as_str()),
                    "the version name {}-{suffix} carries an unkeyed digest of the data",
                    v.name
                );
            }
        }
    }
}

#[test]
fn every_reference_is_switched_in_one_patch_to_an_immutable_version() {
    let (c, ctl, _) = versioned(json!({}));
    let first = current(&c);
    assert!(first.starts_with("db-"), "{first}");
    let v1 = c.secret(NS, &first).expect("the first version exists");
    assert_eq!(v1.immutable, Some(true), "a version is immutable");
    wait_until("api switched to the first version", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([first.clone()])
    });
    assert_eq!(
        switch_patches(&c, "api"),
        1,
        "one patch moved all four references"
    );
    assert!(
        c.secret(NS, "db").is_none(),
        "no plain Secret without keepPlainSecret"
    );

    wait_until("the first rollout complete", &ctl, || {
        rollout_state(&c, "api") == Some(RolloutState::Complete)
    });
    let second = rotate_and_roll_out(&c, &ctl, "two");
    assert_eq!(
        switch_patches(&c, "api"),
        2,
        "one more patch for the new version"
    );
    assert!(
        c.secret(NS, &first).is_some(),
        "the previous version is kept"
    );
    assert_eq!(
        c.data(NS, &second).expect("second")["password"],
        format!("{CANARY}-two")
    );
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

#[test]
fn a_failed_rollout_keeps_the_old_version_and_says_so() {
    let (c, ctl, _) = versioned(json!({}));
    let first = current(&c);
    wait_until("api on the first version", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([first.clone()])
    });
    wait_until("the first rollout complete", &ctl, || {
        rollout_state(&c, "api") == Some(RolloutState::Complete)
    });
    break_rollouts(&c, "api");
    let head = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &head);
    let second = wait_new_version(&c, &ctl, &first);
    wait_until("api on the second version", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([second.clone()])
    });
    wait_until("Degraded RolloutFailed", &ctl, || {
        ready_is(c.status(NS, "apps").as_ref(), "False", "RolloutFailed")
    });
    assert_eq!(rollout_state(&c, "api"), Some(RolloutState::Failed));
    assert!(c.secret(NS, &first).is_some(), "the old version is kept");
    assert_eq!(
        template_refs(&c, "api"),
        BTreeSet::from([second.clone()]),
        "without rollbackOnFailure the references stay"
    );
    assert!(c
        .events(NS)
        .iter()
        .any(|(t, r, _)| t == "Warning" && r == "RolloutFailed"));
    assert_eq!(
        ctl.metric("sopsync_rollouts_failed_total{strategy=\"Versioned\"}"),
        1.0
    );
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

#[test]
fn a_failed_rollout_with_rollback_switches_the_references_back() {
    let (c, ctl, _) = versioned(json!({"rollbackOnFailure": true}));
    let first = current(&c);
    wait_until("api on the first version", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([first.clone()])
    });
    wait_until("the first rollout complete", &ctl, || {
        rollout_state(&c, "api") == Some(RolloutState::Complete)
    });
    break_rollouts(&c, "api");
    let head = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &head);
    let second = wait_new_version(&c, &ctl, &first);
    wait_until("api on the second version", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([second.clone()])
    });
    wait_until("api switched back to the first version", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([first.clone()])
    });
    wait_until("rolled back and Degraded", &ctl, || {
        rollout_state(&c, "api") == Some(RolloutState::RolledBack)
            && ready_is(c.status(NS, "apps").as_ref(), "False", "RolloutFailed")
    });
    assert!(c.secret(NS, &first).is_some(), "the old version is kept");
    assert!(c.events(NS).iter().any(|(_, r, _)| r == "RolledBack"));
    // It does not switch forward again by itself: the same content waits for a fix.
    let patches = switch_patches(&c, "api");
    let seen = reconciles(&ctl);
    wait_until("three more syncs", &ctl, || reconciles(&ctl) >= seen + 3.0);
    assert_eq!(switch_patches(&c, "api"), patches);
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

#[test]
fn keep_plain_secret_also_keeps_the_plain_name_up_to_date() {
    let (c, ctl, _) = versioned(json!({"keepPlainSecret": true}));
    assert_eq!(
        c.data(NS, "db").expect("the plain Secret")["password"],
        format!("{CANARY}-one")
    );
    let first = current(&c);
    let head = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &head);
    wait_new_version(&c, &ctl, &first);
    assert_eq!(
        c.data(NS, "db").expect("the plain Secret")["password"],
        format!("{CANARY}-two")
    );
    assert_ne!(c.secret(NS, "db").and_then(|s| s.immutable), Some(true));
    let _: Option<Deployment> = c.fake.get(NS, "api");
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

#[test]
fn retain_versions_are_kept_and_older_ones_are_deleted_after_their_rollouts() {
    // No ReplicaSet history: only `retain` and the rollouts decide.
    let (c, ctl, _) = versioned_with(json!({"retain": 1}), 0);
    let first = current(&c);
    wait_until("the first rollout complete", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([first.clone()])
            && rollout_state(&c, "api") == Some(RolloutState::Complete)
    });
    let second = rotate_and_roll_out(&c, &ctl, "two");
    let third = rotate_and_roll_out(&c, &ctl, "three");
    wait_until("the first version deleted", &ctl, || {
        versions_of_db(&c) == BTreeSet::from([second.clone(), third.clone()])
    });
    let kept = status(&c).rotation.expect("rotation status").secrets;
    assert_eq!(kept.len(), 1);
    assert_eq!(format!("db-{}", kept[0].current_version), third);
    assert_eq!(
        kept[0]
            .versions_kept
            .iter()
            .map(|v| format!("db-{v}"))
            .collect::<Vec<_>>(),
        vec![second.clone()],
        "exactly `retain` previous versions are kept"
    );
    assert!(c
        .events(NS)
        .iter()
        .any(|(_, r, n)| r == "VersionsDeleted" && n.contains(&first)));
    assert!(
        !status(&c).inventory.iter().any(|e| e.name == first),
        "a deleted version leaves the inventory"
    );
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[
            &format!("{CANARY}-one"),
            &format!("{CANARY}-two"),
            &format!("{CANARY}-three"),
        ],
    );
}

#[test]
fn a_version_in_a_pod_template_or_in_revision_history_is_never_deleted() {
    // retain 0: nothing but the two rules below keeps an old version.
    let (c, ctl, _) = versioned_with(json!({"retain": 0, "restart": "None"}), 0);
    let first = current(&c);
    wait_until("the first rollout complete", &ctl, || {
        template_refs(&c, "api") == BTreeSet::from([first.clone()])
            && rollout_state(&c, "api") == Some(RolloutState::Complete)
    });
    // A workload sopsync does not switch names the first version itself.
    deployment_using(&c, "pinned", &first, 0);
    let second = rotate_and_roll_out(&c, &ctl, "two");
    assert!(
        c.secret(NS, &first).is_some(),
        "a version a pod template names is kept"
    );
    assert_eq!(template_refs(&c, "pinned"), BTreeSet::from([first.clone()]));
    // The same version is kept while only revision history names it: a ReplicaSet the
    // Deployment keeps for `kubectl rollout undo`.
    let rt = deployments(&c);
    let mut pinned = c.fake.get_raw(&rt, NS, "pinned").expect("pinned");
    pinned["spec"]["revisionHistoryLimit"] = json!(10);
    pinned["spec"]["template"]["spec"]["containers"][0]["env"] = json!([]);
    pinned["spec"]["template"]["spec"]["initContainers"][0]["envFrom"] = json!([]);
    pinned["spec"]["template"]["spec"]["volumes"] = json!([]);
    c.fake.put_raw(&rt, NS, "pinned", pinned);
    wait_until(
        "pinned's old ReplicaSet is the only user of the first version",
        &ctl,
        || {
            let rs = c.fake.resource_type_raw("apps", "v1", "replicasets");
            c.fake.list_raw(&rs, Some(NS)).iter().any(|r| {
                sopsync::controller::rotation::versioned::referenced_by("ReplicaSet", r)
                    .contains(&first)
            }) && !template_refs(&c, "pinned").contains(&first)
        },
    );
    let third = rotate_and_roll_out(&c, &ctl, "three");
    assert!(
        c.secret(NS, &first).is_some(),
        "a version in retained revision history is kept"
    );
    wait_until("the unused second version deleted", &ctl, || {
        versions_of_db(&c) == BTreeSet::from([first.clone(), third.clone()])
    });
    assert!(c.secret(NS, &second).is_none());
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[
            &format!("{CANARY}-one"),
            &format!("{CANARY}-two"),
            &format!("{CANARY}-three"),
        ],
    );
}

#[test]
fn a_statefulset_is_switched_and_its_controller_revisions_keep_the_old_version() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret(NS);
    let store = Workload::statefulset(NS, "store")
        .env_key("db", "password")
        .volume("db");
    store.put(&c.fake);
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "interval": "1s", "rotation": {
            "strategy": "Versioned", "retain": 0, "restart": "None",
            "restartWorkloads": [{"kind": "StatefulSet", "name": "store"}]}}),
    );
    let ctl = c.controller("c1", &["--workload-restarts"]);
    wait_applied(&c, &ctl, NS, "apps", &c.head());
    let refs = || referenced_by("StatefulSet", &store.get(&c.fake));
    let first = current(&c);
    wait_until("store rolled out to the first version", &ctl, || {
        refs() == BTreeSet::from([first.clone()])
            && rollout_state(&c, "store") == Some(RolloutState::Complete)
    });
    let head = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &head);
    let second = wait_new_version(&c, &ctl, &first);
    wait_until("store rolled out to the second version", &ctl, || {
        refs() == BTreeSet::from([second.clone()])
            && rollout_state(&c, "store") == Some(RolloutState::Complete)
    });
    // Past retain 0 and in no workload's template: only the StatefulSet's revision
    // history (a ControllerRevision, what `kubectl rollout undo` restores) names it.
    let revisions = c
        .fake
        .resource_type_raw("apps", "v1", "controllerrevisions");
    assert!(c
        .fake
        .list_raw(&revisions, Some(NS))
        .iter()
        .any(|r| r["data"].to_string().contains(&format!("\"{first}\""))));
    let seen = reconciles(&ctl);
    wait_until("three more syncs", &ctl, || reconciles(&ctl) >= seen + 3.0);
    assert!(
        c.secret(NS, &first).is_some(),
        "a version in a ControllerRevision is kept"
    );
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

/// A DaemonSet and a CronJob named in `restartWorkloads` are switched to each new
/// version like a Deployment (the CronJob through its `jobTemplate`), the DaemonSet
/// rolls out by kubectl's DaemonSet rules, and the CronJob, which has no rollout, is
/// complete at once.
#[test]
fn a_daemonset_and_a_cronjob_are_switched_to_each_new_version() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret(NS);
    let agent = Workload::daemonset(NS, "agent")
        .env_key("db", "password")
        .volume("db");
    let report = Workload::cronjob(NS, "report")
        .env_from("db")
        .projected(&["db"]);
    agent.put(&c.fake);
    report.put(&c.fake);
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "interval": "1s", "rotation": {
        "strategy": "Versioned", "restart": "None",
        "restartWorkloads": [
            {"kind": "DaemonSet", "name": "agent"},
            {"kind": "CronJob", "name": "report"}
        ]}}),
    );
    let ctl = c.controller("c1", &["--workload-restarts"]);
    wait_applied(&c, &ctl, NS, "apps", &c.head());
    let refs = |w: &Workload| referenced_by(w.kind.name(), &w.get(&c.fake));
    let both_on = |version: &str| {
        refs(&agent) == BTreeSet::from([version.to_string()])
            && refs(&report) == BTreeSet::from([version.to_string()])
            && rollout_state(&c, "agent") == Some(RolloutState::Complete)
            && rollout_state(&c, "report") == Some(RolloutState::Complete)
    };
    let first = current(&c);
    wait_until("agent and report on the first version", &ctl, || {
        both_on(&first)
    });
    let head = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &head);
    let second = wait_new_version(&c, &ctl, &first);
    wait_until("agent and report on the second version", &ctl, || {
        both_on(&second)
    });
    assert_eq!(
        agent.template_changes(&c.fake),
        2,
        "one pod-template change per version"
    );
    assert_eq!(report.template_changes(&c.fake), 2);
    let job_template = &report.get(&c.fake)["spec"]["jobTemplate"]["spec"]["template"];
    assert!(
        job_template.to_string().contains(&format!("\"{second}\"")),
        "the CronJob's jobTemplate names the new version: {job_template}"
    );
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

/// Under Versioned, `restart: Annotated` (the default) switches the workloads using the
/// Secret that opt in by annotation (sopsync's own or Reloader's), and no other.
#[test]
fn versioned_switches_exactly_the_workloads_opted_in_by_annotation() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret(NS);
    let opted = Workload::deployment(NS, "opted")
        .env_from("db")
        .annotate("sopsync.io/restart-on-change", "true");
    let reloader = Workload::statefulset(NS, "reloader")
        .volume("db")
        .annotate("reloader.stakater.com/auto", "true");
    let plain = Workload::deployment(NS, "plain").env_from("db");
    let opted_out = Workload::deployment(NS, "opted-out")
        .env_from("db")
        .annotate("sopsync.io/restart-on-change", "false");
    for w in [&opted, &reloader, &plain, &opted_out] {
        w.put(&c.fake);
    }
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "interval": "1s", "rotation": {"strategy": "Versioned"}}),
    );
    let ctl = c.controller("c1", &["--workload-restarts"]);
    wait_applied(&c, &ctl, NS, "apps", &c.head());
    let refs = |w: &Workload| referenced_by(w.kind.name(), &w.get(&c.fake));
    let first = current(&c);
    wait_until("the opted-in workloads on the first version", &ctl, || {
        refs(&opted) == BTreeSet::from([first.clone()])
            && refs(&reloader) == BTreeSet::from([first.clone()])
            && rollout_state(&c, "opted") == Some(RolloutState::Complete)
            && rollout_state(&c, "reloader") == Some(RolloutState::Complete)
    });
    let head = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &head);
    let second = wait_new_version(&c, &ctl, &first);
    wait_until("the opted-in workloads on the second version", &ctl, || {
        refs(&opted) == BTreeSet::from([second.clone()])
            && refs(&reloader) == BTreeSet::from([second.clone()])
            && rollout_state(&c, "opted") == Some(RolloutState::Complete)
            && rollout_state(&c, "reloader") == Some(RolloutState::Complete)
    });
    for w in [&plain, &opted_out] {
        assert_eq!(
            refs(w),
            BTreeSet::from(["db".to_string()]),
            "{} did not opt in: left on the plain name",
            w.name
        );
        assert_eq!(w.template_changes(&c.fake), 0, "{}", w.name);
        assert_eq!(rollout_state(&c, &w.name), None, "{}", w.name);
    }
    assert_no_canary_anywhere(
        &c,
        &ctl,
        &[&format!("{CANARY}-one"), &format!("{CANARY}-two")],
    );
}

/// Versioned applies to a SopsSecret as to a SecretSource: its Secret becomes immutable
/// versions, the workload is switched to each, and the status names them.
#[test]
fn versioned_on_a_sops_secret_switches_its_workload_to_each_new_version() {
    use crate::support::cluster::secret_manifest;
    use sopsync::controller::crd::SopsSecret;
    let c = Cluster::new(&[]);
    c.key_secret(NS);
    let api = Workload::deployment(NS, "api").env_key("token", "token");
    api.put(&c.fake);
    let rt = c
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "sopssecrets");
    let put = |value: &str| {
        let encrypted = c.sops_encrypt(&secret_manifest(
            "token",
            None,
            &[("token", &format!("{CANARY}-{value}"))],
        ));
        let mut obj = c.fake.get_raw(&rt, NS, "token").unwrap_or_else(|| {
            json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
                   "metadata": {"name": "token", "namespace": NS}})
        });
        obj["spec"] = json!({"encrypted": encrypted, "rotation": {
            "strategy": "Versioned", "restart": "None",
            "restartWorkloads": [{"kind": "Deployment", "name": "api"}]}});
        let stored = c.fake.put_raw(&rt, NS, "token", obj);
        format!("generation-{}", stored["metadata"]["generation"])
    };
    let sops_status = || c.fake.get::<SopsSecret>(NS, "token").and_then(|s| s.status);
    let current_version = || {
        sops_status()
            .and_then(|s| s.rotation)
            .and_then(|r| r.secrets.into_iter().find(|v| v.name == "token"))
            .map(|v| format!("token-{}", v.current_version))
    };
    let state = || {
        sops_status()
            .and_then(|s| s.rotation)
            .and_then(|r| r.workloads.into_iter().find(|w| w.name == "api"))
            .map(|w| w.state)
    };
    let refs = || referenced_by("Deployment", &api.get(&c.fake));
    let first_revision = put("one");
    let ctl = c.controller("c1", &["--workload-restarts"]);
    let mut first = String::new();
    wait_until("api on the first version of token", &ctl, || {
        let Some(v) = current_version() else {
            return false;
        };
        first = v.clone();
        sops_status()
            .and_then(|s| s.last_applied_revision)
            .as_deref()
            == Some(first_revision.as_str())
            && refs() == BTreeSet::from([v])
            && state() == Some(RolloutState::Complete)
    });
    let v1 = c.secret(NS, &first).expect("the first version exists");
    assert_eq!(v1.immutable, Some(true), "a version is immutable");
    put("two");
    let mut second = String::new();
    wait_until("api on the second version of token", &ctl, || {
        let Some(v) = current_version().filter(|v| *v != first) else {
            return false;
        };
        second = v.clone();
        refs() == BTreeSet::from([v]) && state() == Some(RolloutState::Complete)
    });
    assert_eq!(
        c.data(NS, &second).expect("the second version")["token"],
        format!("{CANARY}-two")
    );
    assert!(
        c.secret(NS, &first).is_some(),
        "the previous version is retained (retain 2)"
    );
    assert_eq!(api.template_changes(&c.fake), 2);
    // The shared check (this module's own reads a SecretSource's status).
    super::assert_no_plaintext_anywhere(
        &c,
        &ctl,
        &[format!("{CANARY}-one"), format!("{CANARY}-two")],
    );
}
