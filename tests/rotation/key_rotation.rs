//! The zero-downtime key rotation of docs/rotation.md ("Key rotation"), step by step
//! against the real controller: add the new identity to the cluster's key Secret,
//! re-key the repository in Git (`updatekeys`, then `updatekeys --rotate` without the
//! old recipient), remove the old identity from the cluster. At every step every Secret
//! stays readable (Ready, data unchanged), no Secret is written (resourceVersion and
//! request log), and nothing restarts (the opted-in Deployment's pod template never
//! changes): the decrypted content never changed.

use std::collections::BTreeMap;
use std::path::Path;

use base64::Engine as _;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use serde_json::{json, Value};
use sha2::Digest as _;

use crate::support::cluster::{
    api, db, meta, ready_is, wait_applied, wait_until, Cluster, ControllerProcess, CANARY,
};
use crate::support::fake_apiserver::Match;
use crate::support::workloads::{self, Kind, Workload};
use crate::support::{age_keypair, run, sopsync};

const NS: &str = "team-a";

fn reconciles(ctl: &ControllerProcess) -> f64 {
    let (_, text) = ctl.http("GET", "/metrics", &[], b"");
    text.lines()
        .filter(|l| l.starts_with("sopsync_reconcile_total{kind=\"SecretSource\""))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}

/// Waits for two more reconciles of the source, so that one began after whatever the
/// test just changed (the source resyncs every second).
fn wait_resynced(ctl: &ControllerProcess) {
    let before = reconciles(ctl);
    wait_until("two more reconciles", ctl, || {
        reconciles(ctl) >= before + 2.0
    });
}

/// The cluster's key Secret with these identities, one `*.agekey` entry each.
fn key_secret(c: &Cluster, identities: &[(&str, &Path)]) {
    let data = identities
        .iter()
        .map(|(name, path)| {
            let key = std::fs::read(path).expect("identity file");
            (format!("{name}.agekey"), ByteString(key))
        })
        .collect::<BTreeMap<_, _>>();
    c.fake.put(&Secret {
        metadata: meta(NS, "sopsync-age-key"),
        data: Some(data),
        ..Secret::default()
    });
}

/// `sopsync <args>` in the repository's work tree as the holder of `identity`.
fn sopsync_in_repo(c: &Cluster, identity: &Path, args: &[&str]) {
    let state = c.dir.path().join("xdg-state");
    let out = run(sopsync()
        .current_dir(&c.work)
        .env("SOPS_AGE_KEY_FILE", identity)
        .env("XDG_STATE_HOME", &state)
        .args(args));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "sopsync {args:?} failed: {stderr}");
    assert!(
        !stderr.contains(CANARY),
        "sopsync {args:?} printed a value: {stderr}"
    );
}

/// Pushes what the work tree holds now.
fn push(c: &Cluster, message: &str) -> String {
    use crate::support::git_server::git;
    git(&c.work, &["add", "-A"]);
    git(&c.work, &["commit", "-q", "-m", message]);
    git(&c.work, &["push", "-q", "origin", "HEAD:main"]);
    c.head()
}

/// `status.decryption`: which recipient opened how many files in the last sync.
fn opened_by(c: &Cluster) -> Vec<(String, u32)> {
    c.status(NS, "apps")
        .and_then(|s| s.decryption)
        .map(|d| {
            d.recipients
                .into_iter()
                .map(|r| (r.recipient, r.files))
                .collect()
        })
        .unwrap_or_default()
}

/// What must hold at every step.
struct Baseline {
    data: BTreeMap<String, BTreeMap<String, String>>,
    resource_versions: BTreeMap<String, String>,
    template_changes: usize,
    template: Value,
}

fn snapshot(c: &Cluster, web: &Workload) -> Baseline {
    let mut data = BTreeMap::new();
    let mut resource_versions = BTreeMap::new();
    for name in ["db", "api"] {
        data.insert(
            name.to_string(),
            c.data(NS, name).expect("the Secret exists"),
        );
        let s = c.secret(NS, name).expect("the Secret exists");
        resource_versions.insert(name.to_string(), s.metadata.resource_version.expect("rv"));
    }
    let obj = web.get(&c.fake);
    Baseline {
        data,
        resource_versions,
        template_changes: web.template_changes(&c.fake),
        template: obj
            .pointer(Kind::Deployment.template_pointer())
            .cloned()
            .expect("template"),
    }
}

fn assert_unchanged(c: &Cluster, web: &Workload, base: &Baseline, step: &str) {
    let status = c.status(NS, "apps");
    assert!(
        ready_is(status.as_ref(), "True", "Synced"),
        "{step}: not Ready: {status:?}"
    );
    let now = snapshot(c, web);
    assert_eq!(now.data, base.data, "{step}: the decrypted data changed");
    assert_eq!(
        now.resource_versions, base.resource_versions,
        "{step}: a Secret was written"
    );
    assert_eq!(
        now.template_changes, base.template_changes,
        "{step}: a workload was restarted"
    );
    assert_eq!(
        now.template, base.template,
        "{step}: the pod template changed"
    );
    let writes: Vec<_> = c
        .fake
        .requests_matching(&Match::any().resource("secrets").namespace(NS))
        .into_iter()
        .filter(|r| r.is_write() && matches!(r.name.as_deref(), Some("db" | "api")))
        .collect();
    assert!(
        writes.is_empty(),
        "{step}: the controller wrote a Secret: {writes:?}"
    );
    let patches = c
        .fake
        .requests_matching(&Match::verb("patch").resource("deployments"));
    assert!(
        patches.is_empty(),
        "{step}: the controller patched a workload: {patches:?}"
    );
}

/// The canary's values, their bare SHA-256 in hex and base64, must appear nowhere a
/// reader of the cluster or the log could see them.
fn assert_no_canary_anywhere(c: &Cluster, ctl: &ControllerProcess, web: &Workload) {
    let values: Vec<String> = ["one", "two"]
        .iter()
        .map(|v| format!("{CANARY}-{v}"))
        .collect();
    let mut needles = vec![CANARY.to_string()];
    for v in &values {
        let d = sha2::Sha256::digest(v.as_bytes());
        needles.push(d.iter().map(|b| format!("{b:02x}")).collect());
        needles.push(base64::engine::general_purpose::STANDARD.encode(d));
    }
    let mut seen = vec![
        ("log", ctl.logs()),
        ("workload", web.get(&c.fake).to_string()),
        ("events", format!("{:?}", c.events(NS))),
        ("status", format!("{:?}", c.status(NS, "apps"))),
    ];
    let (_, metrics) = ctl.http("GET", "/metrics", &[], b"");
    seen.push(("metrics", metrics));
    for (what, text) in &seen {
        for n in &needles {
            assert!(
                !text.contains(n.as_str()),
                "the {what} holds {n:?} (a value or its bare digest)"
            );
        }
    }
}

#[test]
fn key_rotation_in_three_steps_keeps_every_secret_readable_and_writes_and_restarts_nothing() {
    let c = Cluster::new(&[("apps/db.yaml", &db("one")), ("apps/api.yaml", &api("one"))]);
    // Identity A decrypts today; .sops.yaml names it for the repository's files.
    std::fs::write(
        c.work.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: ^apps/.*\\.yaml$\n    age: {}\n",
            c.recipient
        ),
    )
    .expect("write .sops.yaml");
    push(&c, "creation rule for A");
    let a = c.key_file.clone();
    key_secret(&c, &[("a", &a)]);
    let web = Workload::deployment(NS, "web")
        .env_from("db")
        .volume("api")
        .annotate("sopsync.io/restart-on-change", "true");
    web.put(&c.fake);
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "path": "apps", "interval": "1s"}),
    );
    let args = ["--workload-restarts", "--rotation-debounce", "0s"];
    workloads::grant_restarts(&c.fake, &args, NS);
    let ctl = c.controller("c1", &args);
    wait_applied(&c, &ctl, NS, "apps", &c.head());

    // The restart pipeline is live: a change of a value rolls the Deployment once.
    let before = web.template_changes(&c.fake);
    let changed = c.commit(&[("apps/db.yaml", Some(&db("two")))]);
    wait_applied(&c, &ctl, NS, "apps", &changed);
    wait_until("the value change restarted web", &ctl, || {
        web.template_changes(&c.fake) > before
    });
    c.fake.block_on(workloads::wait_rolled_out(&c.fake, &web));
    wait_resynced(&ctl);
    let base = snapshot(&c, &web);
    assert_eq!(
        base.data["db"]["password"],
        format!("{CANARY}-two"),
        "the new value is in the cluster"
    );
    c.fake.clear_requests();

    // Step 1: the cluster's key Secret holds A and the new identity B.
    let (b, b_recipient) = age_keypair(c.dir.path(), "b");
    key_secret(&c, &[("a", &a), ("b", &b)]);
    wait_resynced(&ctl);
    assert_unchanged(&c, &web, &base, "step 1 (B added to the cluster)");

    // Step 2a: in Git, B becomes a recipient of every file (same data key).
    std::fs::write(
        c.work.join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: ^apps/.*\\.yaml$\n    age: {},{b_recipient}\n",
            c.recipient
        ),
    )
    .expect("write .sops.yaml");
    let before_files = std::fs::read(c.work.join("apps/db.yaml")).expect("db.yaml");
    sopsync_in_repo(&c, &a, &["updatekeys", "--recursive", "-y", "apps"]);
    assert_ne!(
        std::fs::read(c.work.join("apps/db.yaml")).expect("db.yaml"),
        before_files,
        "updatekeys added B"
    );
    let rev = push(&c, "add recipient B");
    wait_applied(&c, &ctl, NS, "apps", &rev);
    wait_resynced(&ctl);
    assert_unchanged(&c, &web, &base, "step 2a (updatekeys adds B in Git)");
    // A, first in each file, still opens them: not yet time to remove it.
    assert_eq!(
        opened_by(&c),
        [(c.recipient.clone(), 2)],
        "step 2a: status.decryption"
    );

    // Step 2b: A leaves the recipients, and a new data key A never knew (rotate).
    std::fs::write(
        c.work.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: ^apps/.*\\.yaml$\n    age: {b_recipient}\n"),
    )
    .expect("write .sops.yaml");
    sopsync_in_repo(
        &c,
        &b,
        &["updatekeys", "--recursive", "-y", "--rotate", "apps"],
    );
    let rev = push(&c, "remove recipient A, new data keys");
    wait_applied(&c, &ctl, NS, "apps", &rev);
    wait_resynced(&ctl);
    assert_unchanged(
        &c,
        &web,
        &base,
        "step 2b (updatekeys --rotate without A in Git)",
    );
    // A can no longer open the repository's files.
    let out = run(sopsync()
        .env("SOPS_AGE_KEY_FILE", &a)
        .args(["decrypt"])
        .arg(c.work.join("apps/db.yaml")));
    assert!(
        !out.status.success(),
        "A still decrypts db.yaml after the rotation"
    );
    assert!(!String::from_utf8_lossy(&out.stdout).contains(CANARY));
    // The status says what step 3 needs to know: A opened nothing in the last sync.
    assert_eq!(
        opened_by(&c),
        [(b_recipient.clone(), 2)],
        "step 2b: status.decryption"
    );

    // Step 3: the cluster forgets A.
    key_secret(&c, &[("b", &b)]);
    wait_resynced(&ctl);
    assert_unchanged(&c, &web, &base, "step 3 (A removed from the cluster)");

    assert_no_canary_anywhere(&c, &ctl, &web);
}
