//! Issue 12's measurement: the real controller with workload restarts on, in a fake
//! cluster holding many Secrets that are not its own and many Deployments (some opted
//! in to restarts); reports the controller's peak RSS and the time from a signed push
//! webhook to the workload patches. `scripts/measure-rotation-memory` runs it; it never
//! runs under `cargo test`, and it asserts nothing about time: it measures and prints.
//!
//! What it does:
//! 1. A Git repository (served by `git daemon`) with one SOPS-encrypted Secret `db`
//!    (encrypted by the real sops: the test tools must be installed), one SecretSource
//!    `apps` in namespace `ns-0` polling hourly (only the webhook makes it sync).
//! 2. `--secrets` Secrets of other owners (3 values of 32 bytes each) and
//!    `--deployments` Deployments spread over `--namespaces` namespaces; `--opted-in` of
//!    the Deployments, in `ns-0`, use `db` and carry `sopsync.io/restart-on-change`; the
//!    others use a Secret of their own and are left alone by the simulated rollouts.
//! 3. Spawns the real `sopsync controller` of this build profile as the chart's service
//!    account (with the restart RBAC), waits for the first sync, then changes `db` in
//!    Git, POSTs the signed push webhook and times the Secret's write and the workload
//!    patches (the fake's request log, polled every millisecond).
//! 4. Reports the controller's VmHWM and VmRSS (/proc), and every list or watch of
//!    Secrets the controller made, to show it holds no cluster-wide Secret cache.
//!
//! Options: `--secrets N` (10000), `--deployments N` (1000), `--opted-in N` (100),
//! `--namespaces N` (10), `--json PATH` (also write the figures as JSON), `--quick`
//! (100 Secrets, 20 Deployments, 5 opted in: keeps the harness from rotting).

#![allow(dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use serde_json::{json, Value};
use std::time::{Duration, Instant};
use support::cluster::{db, wait_applied, Cluster};
use support::fake_apiserver::{Match, RolloutBehaviour};
use support::workloads::{self, Workload};

/// How long the bench waits for anything before giving up (not a target).
const GIVE_UP: Duration = Duration::from_secs(300);

struct Options {
    secrets: usize,
    deployments: usize,
    opted_in: usize,
    namespaces: usize,
    json: Option<std::path::PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        secrets: 10_000,
        deployments: 1_000,
        opted_in: 100,
        namespaces: 10,
        json: None,
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let mut value = |name: &str| {
            args.next()
                .unwrap_or_else(|| panic!("{name} needs a value"))
        };
        let number = |name: &str, v: String| -> usize {
            v.parse()
                .unwrap_or_else(|_| panic!("{name}: expected a number, got {v:?}"))
        };
        match a.as_str() {
            // cargo bench passes --bench to harness-less targets.
            "--bench" => {}
            "--quick" => {
                o.secrets = 100;
                o.deployments = 20;
                o.opted_in = 5;
                o.namespaces = 2;
            }
            "--secrets" => o.secrets = number("--secrets", value("--secrets")),
            "--deployments" => o.deployments = number("--deployments", value("--deployments")),
            "--opted-in" => o.opted_in = number("--opted-in", value("--opted-in")),
            "--namespaces" => o.namespaces = number("--namespaces", value("--namespaces")),
            "--json" => o.json = Some(value("--json").into()),
            other => {
                panic!("rotation_memory: unknown argument {other:?} (see the file's doc comment)")
            }
        }
    }
    assert!(
        o.namespaces > 0 && o.opted_in <= o.deployments,
        "need a namespace, and no more opted-in Deployments than Deployments"
    );
    o
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

/// A field of /proc/<pid>/status in KiB.
fn proc_kib(pid: u32, field: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|r| r.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

fn wait(what: &str, mut check: impl FnMut() -> bool) {
    let start = Instant::now();
    while !check() {
        assert!(start.elapsed() < GIVE_UP, "gave up waiting for {what}");
        std::thread::sleep(Duration::from_millis(1));
    }
}

fn main() {
    let o = options();
    let c = Cluster::new(&[("apps/db.yaml", &db("one"))]);
    let ns = |i: usize| format!("ns-{}", i % o.namespaces);
    c.key_secret("ns-0");
    let secrets = c.fake.resource_type_raw("", "v1", "secrets");
    for i in 0..o.secrets {
        let n = ns(i);
        c.fake.ensure_namespace(&n);
        let value = |k: usize| {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.encode(format!("{:032}", i * 3 + k))
        };
        c.fake.put_raw(
            &secrets,
            &n,
            &format!("other-{i}"),
            json!({"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
                   "metadata": {"labels": {"app": format!("app-{i}")}},
                   "data": {"a": value(0), "b": value(1), "c": value(2)}}),
        );
    }
    let mut opted = Vec::new();
    for i in 0..o.deployments {
        let w = if i < o.opted_in {
            let w = Workload::deployment("ns-0", &format!("web-{i}"))
                .replicas(1)
                .env_from("db")
                .annotate("sopsync.io/restart-on-change", "true");
            opted.push(w.clone());
            w
        } else {
            let n = ns(i);
            c.fake.set_rollout_behaviour(
                &n,
                "Deployment",
                &format!("app-{i}"),
                RolloutBehaviour::Manual,
            );
            Workload::deployment(&n, &format!("app-{i}"))
                .replicas(1)
                .env_from(&format!("other-{i}"))
        };
        w.put(&c.fake);
    }
    c.fake.block_on(async {
        for w in &opted {
            workloads::wait_rolled_out(&c.fake, w).await;
        }
    });
    // From here on the simulated rollouts stay still, so that the times measured are the
    // controller's and the API's, not the fake's rollout simulation under the store lock.
    for w in &opted {
        c.fake
            .set_rollout_behaviour("ns-0", "Deployment", &w.name, RolloutBehaviour::Manual);
    }
    let hook_secret = c.dir.path().join("webhook-secret");
    std::fs::write(&hook_secret, "hook-secret\n").expect("write the webhook secret");
    c.source(
        "ns-0",
        "apps",
        json!({"url": c.url(), "path": "apps", "interval": "1h"}),
    );
    let args = [
        "--workload-restarts",
        "--rotation-debounce",
        "0s",
        "--webhook-secret-file",
        hook_secret.to_str().expect("utf-8 path"),
    ];
    workloads::grant_restarts(&c.fake, &args, "ns-0");
    let ctl = c.controller("bench", &args);
    let pid = ctl.child.id();
    let first = c.head();
    wait_applied(&c, &ctl, "ns-0", "apps", &first);
    support::cluster::settle(&ctl);
    let after_first_sync = proc_kib(pid, "VmRSS:");

    let second = c.commit(&[("apps/db.yaml", Some(&db("two")))]);
    let body = json!({"ref": "refs/heads/main", "after": second,
                      "repository": {"clone_url": c.url()}})
    .to_string();
    let patches = |c: &Cluster| {
        c.fake
            .requests_matching(&Match::verb("patch").resource("deployments"))
            .into_iter()
            .filter(|r| r.status < 300)
            .count()
    };
    let secret_writes = |c: &Cluster| {
        c.fake
            .requests_matching(&Match::verb("patch").resource("secrets").name("db"))
            .into_iter()
            .filter(|r| r.status < 300)
            .count()
    };
    let (patches_before, writes_before) = (patches(&c), secret_writes(&c));
    let t0 = Instant::now();
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
    assert_eq!(code, 202, "the webhook: {text}");
    wait("the Secret's write", || secret_writes(&c) > writes_before);
    let to_secret = t0.elapsed();
    wait("the first workload patch", || patches(&c) > patches_before);
    let to_first_patch = t0.elapsed();
    wait("every opted-in workload patched", || {
        patches(&c) >= patches_before + o.opted_in
    });
    let to_all_patches = t0.elapsed();
    support::cluster::settle(&ctl);
    let hwm = proc_kib(pid, "VmHWM:");
    let rss = proc_kib(pid, "VmRSS:");
    // What the controller read of Secrets since it started: a cluster-wide cache would
    // show as a list or watch of every Secret (no label selector).
    let user = support::cluster::ChartRbac::for_controller_args(&args).user();
    let reads: Vec<Value> = c
        .fake
        .requests()
        .into_iter()
        .filter(|r| {
            r.user == user && r.resource == "secrets" && matches!(r.verb.as_str(), "list" | "watch")
        })
        .map(|r| json!({"verb": r.verb, "namespace": r.namespace, "query": r.query}))
        .collect();
    let unselected = reads
        .iter()
        .filter(|r| {
            !r["query"]
                .as_str()
                .unwrap_or_default()
                .contains("labelSelector")
        })
        .count();
    ctl.assert_no_canary();
    let figures = json!({
        "secrets_not_ours": o.secrets,
        "deployments": o.deployments,
        "opted_in": o.opted_in,
        "namespaces": o.namespaces,
        "profile": if cfg!(debug_assertions) { "dev" } else { "release" },
        "peak_rss_kib": hwm,
        "rss_after_first_sync_kib": after_first_sync,
        "rss_at_end_kib": rss,
        "webhook_to_secret_write_ms": to_secret.as_millis(),
        "webhook_to_first_workload_patch_ms": to_first_patch.as_millis(),
        "webhook_to_all_workload_patches_ms": to_all_patches.as_millis(),
        "secret_lists_and_watches": reads.len(),
        "of_which_without_label_selector": unselected,
        "secret_lists_and_watches_detail": reads,
    });
    println!("{}", serde_json::to_string_pretty(&figures).expect("JSON"));
    if let Some(p) = &o.json {
        std::fs::write(p, figures.to_string()).expect("write --json");
    }
}
