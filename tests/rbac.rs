//! The controller under the chart's own RBAC (issue 16): the fake API server authorizes
//! every request of the controller's service account from the Roles and bindings that
//! `helm template` renders, so a permission the chart lacks fails here as in a cluster,
//! a permission the chart grants but the controller never uses fails the least-privilege
//! test, and a permission revoked at run time must surface as a condition and an Event.

use crate::support::cluster::{
    api, condition, db, ready_is, secret_manifest, settle, wait_applied, wait_until, ChartRbac,
    Cluster, ControllerProcess, CANARY,
};
use crate::support::fake_apiserver::rbac::expand_rules;
use crate::support::fake_apiserver::RequestRecord;
use crate::support::workloads::Workload;
use serde_json::{json, Value};
use sopsync::controller::crd::SopsSecret;
use std::collections::BTreeSet;

/// The (group, resource[/subresource], verb) triples the service account was allowed.
fn used(requests: &[RequestRecord], user: &str) -> BTreeSet<(String, String, String)> {
    let mut used = BTreeSet::new();
    for r in requests
        .iter()
        .filter(|r| r.user == user && !r.denied && !r.resource.is_empty())
    {
        let res = match &r.subresource {
            Some(s) => format!("{}/{s}", r.resource),
            None => r.resource.clone(),
        };
        if r.authorized_create {
            used.insert((r.group.clone(), res.clone(), "create".to_string()));
        }
        used.insert((r.group.clone(), res, r.verb.clone()));
    }
    used
}

fn denied(requests: &[RequestRecord]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.denied)
        .map(|r| format!("{} {} {}", r.user, r.verb, r.path))
        .collect()
}

fn sops_secret(c: &Cluster, ns: &str, name: &str, encrypted: &str) {
    c.fake.ensure_namespace(ns);
    let rt = c
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "sopssecrets");
    let obj = json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
                     "metadata": {"name": name, "namespace": ns},
                     "spec": { "encrypted": encrypted }});
    c.fake.put_raw(&rt, ns, name, obj);
}

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

/// A signed GitHub push webhook for `commit` (patches the matching SecretSources).
fn announce(c: &Cluster, ctl: &ControllerProcess, commit: &str) {
    let body = json!({"ref": "refs/heads/main", "after": commit,
                      "repository": {"clone_url": c.url()}})
    .to_string();
    let (code, text) = ctl.http(
        "POST",
        "/hooks/git",
        &[
            ("Content-Type", "application/json"),
            ("X-GitHub-Event", "push"),
            (
                "X-Hub-Signature-256",
                &github_signature(b"hook-secret", body.as_bytes()),
            ),
        ],
        body.as_bytes(),
    );
    assert_eq!(code, 202, "{text}");
}

/// Everything the controller does in one run: leader election, a SecretSource and a
/// SopsSecret synced, a Secret changed by someone else restored, one pruned, a webhook
/// push, and a failing file (a Warning Event, repeated).
fn exercise(c: &Cluster, extra: &[&str]) -> ControllerProcess {
    exercise_with(c, extra, json!({"url": c.url(), "interval": "1h"}))
}

/// [`exercise`] with this SecretSource spec.
fn exercise_with(c: &Cluster, extra: &[&str], source: Value) -> ControllerProcess {
    c.key_secret("team-a");
    let hook = c.dir.path().join("webhook-secret");
    std::fs::write(&hook, "hook-secret\n").expect("write");
    // An hour between polls, so that the controller settles between steps; the
    // webhook announces each push.
    c.source("team-a", "apps", source);
    let inline = c.sops_encrypt(&secret_manifest(
        "inline",
        None,
        &[("token", &format!("{CANARY}-inline"))],
    ));
    sops_secret(c, "team-a", "inline", &inline);
    let mut args = vec!["--webhook-secret-file", hook.to_str().expect("utf-8")];
    args.extend_from_slice(extra);
    let ctl = c.controller("c1", &args);
    let first = c.head();
    wait_applied(c, &ctl, "team-a", "apps", &first);
    wait_until("the inline SopsSecret synced", &ctl, || {
        ready_is(
            c.fake
                .get::<SopsSecret>("team-a", "inline")
                .and_then(|s| s.status)
                .as_ref(),
            "True",
            "Synced",
        )
    });
    settle(&ctl);
    // Someone else edits a Secret the controller owns: it is restored.
    let mut s = c.secret("team-a", "db").expect("db");
    s.data.as_mut().expect("data").clear();
    c.fake.put(&s);
    wait_until("db restored", &ctl, || {
        c.data("team-a", "db")
            .is_some_and(|d| d.get("password") == Some(&format!("{CANARY}-one")))
    });
    settle(&ctl);
    // A push removes api.yaml (prune) and is announced by the webhook.
    let second = c.commit(&[("api.yaml", None), ("db.yaml", Some(&db("two")))]);
    announce(c, &ctl, &second);
    wait_applied(c, &ctl, "team-a", "apps", &second);
    wait_until("api pruned", &ctl, || c.secret("team-a", "api").is_none());
    // A file that cannot be decrypted: a Warning Event, repeated on every retry.
    let third = c.commit(&[(
        "broken.yaml",
        // (`kind: "Secret"` quoted, so that the fixture does not encrypt it.)
        Some("apiVersion: v1\nkind: \"Secret\"\nmetadata:\n  name: broken\nsops: {}\n"),
    )]);
    announce(c, &ctl, &third);
    wait_until("the failure reported by a repeated Event", &ctl, || {
        c.fake
            .requests()
            .iter()
            .any(|r| r.group == "events.k8s.io" && r.verb == "patch" && !r.denied)
    });
    ctl
}

/// Least privilege, measured: every (group, resource, verb) the chart grants is used by
/// the controller in [`exercise`], and nothing it does is refused.
fn assert_least_privilege(c: &Cluster, rbac: &ChartRbac) {
    let requests = c.fake.requests();
    assert!(
        denied(&requests).is_empty(),
        "the chart's RBAC refused requests the controller needs:\n{:#?}",
        denied(&requests)
    );
    let used = used(&requests, &rbac.user());
    let granted: BTreeSet<(String, String, String)> = rbac
        .docs
        .iter()
        .filter(|d| matches!(d["kind"].as_str(), Some("Role" | "ClusterRole")))
        .flat_map(expand_rules)
        .collect();
    let unused: Vec<_> = granted.difference(&used).collect();
    assert!(
        unused.is_empty(),
        "the chart grants permissions the controller never used (group, resource, verb):\n{unused:#?}\nused: {used:#?}"
    );
}

#[test]
fn every_permission_the_chart_grants_cluster_wide_with_leader_election_is_used_and_none_is_missing()
{
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    let extra = [
        "--leader-elect",
        "--lease-namespace",
        "sopsync-system",
        "--lease-name",
        "sopsync",
    ];
    c.fake.ensure_namespace("sopsync-system");
    let ctl = exercise(&c, &extra);
    let rbac = ChartRbac::for_controller_args(&extra);
    assert!(rbac.docs.iter().any(|d| d["kind"] == "ClusterRole"));
    assert_least_privilege(&c, &rbac);
    ctl.assert_no_canary();
}

#[test]
fn with_watch_namespace_the_namespaced_role_is_enough_and_every_permission_is_used() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    let extra = ["--namespace", "team-a"];
    let ctl = exercise(&c, &extra);
    let rbac = ChartRbac::for_controller_args(&extra);
    assert!(
        rbac.docs.iter().all(|d| d["kind"] != "ClusterRole"),
        "watchNamespace renders no ClusterRole"
    );
    assert_least_privilege(&c, &rbac);
    ctl.assert_no_canary();
}

#[test]
fn a_permission_revoked_at_run_time_surfaces_as_a_condition_and_an_event_and_recovers() {
    let c = Cluster::new(&[("db.yaml", &db("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let mut ctl = c.controller("c1", &[]);
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);
    // Revoke writing Secrets: the chart's ClusterRole without `patch` on secrets.
    let rbac = ChartRbac::for_controller_args(&[]);
    let revoked: Vec<Value> = rbac
        .docs
        .iter()
        .cloned()
        .map(|mut d| {
            if d["kind"] == "ClusterRole" {
                for rule in d["rules"].as_array_mut().expect("rules") {
                    if rule["resources"] == json!(["secrets"]) {
                        rule["verbs"] = json!(["get", "list", "watch"]);
                    }
                }
            }
            d
        })
        .collect();
    c.fake.grant(&revoked);
    let second = c.commit(&[("db.yaml", Some(&db("two")))]);
    wait_until("Ready=False saying the write was forbidden", &ctl, || {
        c.status("team-a", "apps").is_some_and(|s| {
            condition(&s, "Ready").is_some_and(|r| {
                r.status == "False" && r.message.to_lowercase().contains("forbidden")
            })
        })
    });
    wait_until(
        "a Warning Event saying the write was forbidden",
        &ctl,
        || {
            c.events("team-a")
                .iter()
                .any(|(t, _, note)| t == "Warning" && note.to_lowercase().contains("forbidden"))
        },
    );
    assert!(
        ctl.child.try_wait().expect("wait").is_none(),
        "the controller exited on a 403:\n{}",
        ctl.logs()
    );
    assert_eq!(
        c.data("team-a", "db").expect("db kept")["password"],
        format!("{CANARY}-one"),
        "the last good Secret is kept"
    );
    // The permission comes back: the next retry applies the new revision.
    c.fake.grant(&rbac.docs);
    wait_applied(&c, &ctl, "team-a", "apps", &second);
    assert_eq!(
        c.data("team-a", "db").expect("db")["password"],
        format!("{CANARY}-two")
    );
    ctl.assert_no_canary();
    assert!(ctl.terminate().success());
}

/// [`exercise`] with workload restarts on (issue 12): one opted-in workload of each
/// kind uses `db` (listed, then patched when the second commit changes it), and
/// `restartWorkloads` names a missing one of each kind (read by name: 404).
fn exercise_restarts(c: &Cluster, extra: &[&str]) -> ControllerProcess {
    for w in [
        Workload::deployment("team-a", "web"),
        Workload::statefulset("team-a", "store"),
        Workload::daemonset("team-a", "agent"),
        Workload::cronjob("team-a", "report"),
    ] {
        w.env_from("db")
            .annotate("sopsync.io/restart-on-change", "true")
            .put(&c.fake);
    }
    let missing: Vec<Value> = ["Deployment", "StatefulSet", "DaemonSet", "CronJob"]
        .iter()
        .map(|k| json!({"kind": k, "name": "missing"}))
        .collect();
    let source = json!({"url": c.url(), "interval": "1h",
                        "rotation": {"debounce": "0s", "restartWorkloads": missing}});
    // A Versioned source beside it (v12): the second commit makes its first version of
    // `db` old, so it lists the namespace's pod templates (revision history included)
    // before deleting it.
    c.source(
        "team-a",
        "versioned",
        json!({"url": c.url(), "interval": "1h",
               "rotation": {"strategy": "Versioned", "retain": 0, "restart": "None"}}),
    );
    let ctl = exercise_with(c, extra, source);
    wait_until(
        "the Versioned source listed the revision history",
        &ctl,
        || {
            c.fake
                .requests()
                .iter()
                .any(|r| r.resource == "controllerrevisions" && r.verb == "list" && !r.denied)
        },
    );
    for kind in ["deployments", "statefulsets", "daemonsets", "cronjobs"] {
        assert!(
            c.restarts()
                .iter()
                .any(|(ns, r, _)| ns == "team-a" && r == kind),
            "no {kind} restarted: {:?}\n{}",
            c.restarts(),
            ctl.logs()
        );
    }
    ctl
}

#[test]
fn with_workload_restarts_every_permission_the_chart_grants_cluster_wide_is_used_and_none_is_missing(
) {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    let extra = ["--workload-restarts"];
    let ctl = exercise_restarts(&c, &extra);
    let rbac = ChartRbac::for_controller_args(&extra);
    assert_least_privilege(&c, &rbac);
    ctl.assert_no_canary();
}

#[test]
fn with_workload_restarts_and_watch_namespace_the_roles_are_enough_and_every_permission_is_used() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    let extra = ["--namespace", "team-a", "--workload-restarts"];
    let ctl = exercise_restarts(&c, &extra);
    let rbac = ChartRbac::for_controller_args(&extra);
    assert!(
        rbac.docs.iter().all(|d| d["kind"] != "ClusterRole"),
        "watchNamespace renders no ClusterRole"
    );
    assert!(
        rbac.docs.iter().any(|d| d["kind"] == "Role"
            && d["metadata"]["namespace"] == "sopsync-system"
            && d["rules"].to_string().contains("sopsync-digest-key")),
        "the digest key Secret is granted by name in the release namespace"
    );
    assert_least_privilege(&c, &rbac);
    ctl.assert_no_canary();
}

#[test]
fn without_the_opt_in_the_chart_grants_nothing_on_workloads() {
    let rbac = ChartRbac::for_controller_args(&[]);
    let text = serde_json::to_string(&rbac.docs).expect("JSON");
    for resource in ["deployments", "statefulsets", "daemonsets", "cronjobs"] {
        assert!(
            !text.contains(resource),
            "{resource} granted without the opt-in"
        );
    }
}
