//! Benchmark (f) of issue 5: the controller's initial sync of many Secrets, and its
//! peak RSS. Run with `cargo bench --bench controller_sync [-- OPTIONS]`; `bench/run`
//! calls it. It never runs under `cargo test`, and it asserts no timing: it measures
//! and prints.
//!
//! What it does:
//! 1. Builds (once, cached under `target/tmp/` by size) a Git repository holding
//!    `--secrets` SOPS-encrypted `kind: Secret` manifests in `--namespaces` folders
//!    (`ns-0/`, `ns-1/`, ...), each with `--keys` values, encrypted in-process with the
//!    library to one age key (interop with the real sops is proven by tests/interop.rs).
//! 2. Starts the fake API server (tests/support/fake_apiserver) in this process and
//!    `git daemon` serving the repository; creates per namespace the key Secret
//!    `sopsync-age-key` and one SecretSource whose `path` is that namespace's folder.
//! 3. Spawns the real `sopsync controller` binary of this build profile and measures
//!    the wall time until every SecretSource reports Ready=True at the repository's
//!    commit; then checks that every Secret exists with exactly the expected data.
//!    Peak RSS is the child's VmHWM; CPU time is split into the controller, its git
//!    children, and this process (the fake API server; the bench's own polling is
//!    small) so a slow fake shows up as such.
//! 4. Counts the API writes of the initial sync, then waits one more interval and
//!    counts the writes of the no-op resync (should be zero).
//!
//! Options: `--secrets N` (10000), `--namespaces N` (10), `--keys N` (3),
//! `--interval SECONDS` (10), `--concurrency N` (the controller's default),
//! `--cache-dir DIR` (where the controller's checkouts go; default a temp dir),
//! `--runs N` (3; each from a fresh cluster and empty cache, the median time and the
//! highest RSS are reported; the no-op resync is checked after the last),
//! `--env NAME=VALUE` (extra environment for the controller, for experiments),
//! `--wrap 'CMD ARGS'` (run the controller under a profiler, e.g. `heaptrack -o F`;
//! the RSS and CPU figures are then the wrapper's),
//! `--json PATH` (also write the figures as JSON, for bench/run), `--quick` (100
//! Secrets in 2 namespaces, 2 s interval, one run: keeps the harness from rotting).

#![allow(dead_code)]

#[path = "../tests/support/mod.rs"]
mod support;

use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::api::ObjectMeta;
use kube::CustomResourceExt;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use sopsync::controller::crd::{SecretSource, SecretSourceSpec, SopsSecret};
use sopsync::core::formats::{codec, Format, FormatOptions};
use sopsync::core::keys::{AgeRecipient, Recipient};
use sopsync::core::metadata::SelectionRule;
use sopsync::core::{self as core_ops, CryptoEnv, EncryptConfig};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};
use support::fake_apiserver::{FakeApiServer, Match, RequestRecord};
use support::git_server::{free_port, git_daemon, make_repo, Server};

/// Bump when the generated repository changes shape, so stale caches are not reused.
const DATA_VERSION: u32 = 2;

/// How long the initial sync may take before the bench gives up (not a target).
const GIVE_UP: Duration = Duration::from_secs(600);

struct Options {
    secrets: usize,
    namespaces: usize,
    keys: usize,
    interval: u64,
    concurrency: Option<u16>,
    cache_dir: Option<PathBuf>,
    env: Vec<(String, String)>,
    wrap: Option<String>,
    runs: usize,
    json: Option<PathBuf>,
}

fn options() -> Options {
    let mut o = Options {
        secrets: 10_000,
        namespaces: 10,
        keys: 3,
        interval: 10,
        concurrency: None,
        cache_dir: None,
        env: Vec::new(),
        wrap: None,
        runs: 3,
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
                o.namespaces = 2;
                o.interval = 2;
                o.runs = 1;
            }
            "--secrets" => o.secrets = number("--secrets", value("--secrets")),
            "--namespaces" => o.namespaces = number("--namespaces", value("--namespaces")),
            "--keys" => o.keys = number("--keys", value("--keys")),
            "--interval" => o.interval = number("--interval", value("--interval")) as u64,
            "--concurrency" => {
                o.concurrency = Some(number("--concurrency", value("--concurrency")) as u16)
            }
            "--cache-dir" => o.cache_dir = Some(PathBuf::from(value("--cache-dir"))),
            "--env" => {
                let v = value("--env");
                let (k, v) = v.split_once('=').expect("--env takes NAME=VALUE");
                o.env.push((k.to_string(), v.to_string()));
            }
            "--runs" => o.runs = number("--runs", value("--runs")),
            "--wrap" => o.wrap = Some(value("--wrap")),
            "--json" => o.json = Some(PathBuf::from(value("--json"))),
            other => {
                panic!("controller_sync: unknown argument {other:?} (see the file's doc comment)")
            }
        }
    }
    assert!(
        o.runs > 0 && o.namespaces > 0 && o.secrets >= o.namespaces && o.keys > 0 && o.interval > 0,
        "need at least one Secret per namespace, one key and a positive interval"
    );
    o
}

fn namespace(i: usize, o: &Options) -> String {
    format!("ns-{}", i % o.namespaces)
}

fn secret_name(i: usize) -> String {
    format!("app-{i:05}")
}

/// The plaintext value `k` of Secret `i`: deterministic, so a cached repository can be
/// checked without keeping its plaintext anywhere.
fn value(i: usize, k: usize) -> String {
    let digest = Sha256::digest(format!("controller-sync/{i}/{k}").as_bytes());
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

fn key_name(k: usize) -> String {
    format!("KEY_{k}")
}

fn manifest(i: usize, o: &Options) -> String {
    let mut s = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: {}\n    namespace: {}\ntype: Opaque\nstringData:\n",
        secret_name(i),
        namespace(i, o)
    );
    for k in 0..o.keys {
        s.push_str(&format!("    {}: {}\n", key_name(k), value(i, k)));
    }
    s
}

/// A generated repository: where `git daemon` serves it from, the age key, the commit.
struct Data {
    served: PathBuf,
    key_file: PathBuf,
    commit: String,
}

/// The cached repository for these sizes, generated on first use.
fn data(o: &Options) -> Data {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!(
        "controller_sync-v{DATA_VERSION}-{}s-{}ns-{}k",
        o.secrets, o.namespaces, o.keys
    ));
    let served = dir.join("served");
    let key_file = dir.join("bench.agekey");
    let commit_file = dir.join("COMMIT");
    if let Ok(commit) = std::fs::read_to_string(&commit_file) {
        eprintln!(
            "controller_sync: using the cached repository {}",
            dir.display()
        );
        allow_filters(&served);
        return Data {
            served,
            key_file,
            commit: commit.trim().to_string(),
        };
    }
    let started = Instant::now();
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&served).expect("create the data directory");
    let (_, recipient) = support::age_keypair(&dir, "bench");
    let content = dir.join("content");
    for n in 0..o.namespaces {
        std::fs::create_dir_all(content.join(format!("ns-{n}"))).expect("mkdir");
    }
    let config = EncryptConfig {
        key_groups: vec![vec![Recipient::Age(
            AgeRecipient::parse(&recipient).expect("age-keygen's recipient parses"),
        )]],
        shamir_threshold: None,
        rule: SelectionRule::EncryptedRegex("^(data|stringData)$".into()),
        mac_only_encrypted: false,
    };
    let now = sopsync::cli::timestamp_from_unix(1_764_000_000);
    (0..o.secrets).into_par_iter().for_each(|i| {
        let docs = codec(Format::Yaml, &FormatOptions::default())
            .parse_plain(manifest(i, o).as_bytes())
            .expect("the generated manifest parses");
        let mut rng = rand_core::OsRng;
        let mut env = CryptoEnv { rng: &mut rng, now };
        let file = core_ops::encrypt(docs, Format::Yaml, &config, &mut env).expect("encrypt");
        let bytes = core_ops::emit_encrypted_with(
            codec(Format::Yaml, &FormatOptions::default()).as_ref(),
            &file,
        )
        .expect("emit");
        let path = content
            .join(namespace(i, o))
            .join(format!("{}.yaml", secret_name(i)));
        std::fs::write(path, bytes).expect("write an encrypted manifest");
    });
    let (work, bare) = make_repo(&served, "gitops", &content);
    let commit = support::git_server::git(&work, &["rev-parse", "HEAD"]);
    // A local clone leaves loose objects, and serving 10,000 loose objects makes
    // git-upload-pack deflate and delta-search every blob on every fetch. Hosting
    // services keep repositories packed: do the same, so the server is not what
    // this benchmark measures.
    support::git_server::git(&bare, &["repack", "-a", "-d", "-q"]);
    std::fs::remove_dir_all(&work).expect("remove the work tree");
    std::fs::remove_dir_all(&content).expect("remove the generated files");
    allow_filters(&served);
    std::fs::write(&commit_file, format!("{commit}\n")).expect("write COMMIT");
    eprintln!(
        "controller_sync: generated {} encrypted Secrets in {:.1}s ({})",
        o.secrets,
        started.elapsed().as_secs_f64(),
        dir.display()
    );
    Data {
        served,
        key_file,
        commit,
    }
}

/// Lets clients ask for filtered packs (partial clones), as GitHub, GitLab and Gitea
/// do; the controller fetches a source's folder that way.
fn allow_filters(served: &Path) {
    support::git_server::git(
        &served.join("gitops.git"),
        &["config", "uploadpack.allowFilter", "true"],
    );
}

/// `utime + stime` and `cutime + cstime` of a process, in seconds.
fn cpu_seconds(pid: &str) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<f64> = rest
        .split_whitespace()
        .map(|x| x.parse().unwrap_or(0.0))
        .collect();
    // rest[0] is the state (field 3); utime is field 14, so rest[11].
    let tick = 100.0; // USER_HZ on Linux.
    if f.len() < 15 {
        return (0.0, 0.0);
    }
    ((f[11] + f[12]) / tick, (f[13] + f[14]) / tick)
}

/// A `/proc/PID/status` field in KiB (VmRSS, VmHWM).
fn status_kib(pid: u32, field: &str) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

/// Sums the samples of a Prometheus metric family from the controller's /metrics.
fn metric_sum(port: u16, name: &str) -> Option<f64> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET /metrics HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut text = String::new();
    s.read_to_string(&mut text).ok()?;
    Some(
        text.lines()
            .filter(|l| l.starts_with(name) && !l.starts_with('#'))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum(),
    )
}

/// Whether every SecretSource reports Ready=True at `commit` for its generation.
fn all_ready(fake: &FakeApiServer, o: &Options, commit: &str) -> bool {
    let rt = fake.resource_type_raw("sopsync.io", "v1alpha1", "secretsources");
    let sources = fake.list_raw(&rt, None);
    sources.len() == o.namespaces
        && sources.iter().all(|s| {
            let status = &s["status"];
            status["lastAppliedRevision"] == commit
                && status["observedGeneration"] == s["metadata"]["generation"]
                && status["conditions"].as_array().is_some_and(|cs| {
                    cs.iter()
                        .any(|c| c["type"] == "Ready" && c["status"] == "True")
                })
        })
}

/// Checks that every expected Secret exists with exactly the expected data; returns
/// the problems found (at most a few), never values.
fn verify(fake: &FakeApiServer, o: &Options) -> Vec<String> {
    let mut problems = Vec::new();
    let mut found = 0;
    for n in 0..o.namespaces {
        let ns = format!("ns-{n}");
        let live: BTreeMap<String, Secret> = fake
            .list::<Secret>(Some(&ns))
            .into_iter()
            .filter_map(|s| Some((s.metadata.name.clone()?, s)))
            .collect();
        for i in (n..o.secrets).step_by(o.namespaces) {
            let name = secret_name(i);
            let Some(s) = live.get(&name) else {
                problems.push(format!("{ns}/{name} is missing"));
                continue;
            };
            let data: BTreeMap<String, Vec<u8>> = s
                .data
                .clone()
                .unwrap_or_default()
                .into_iter()
                .map(|(k, v)| (k, v.0))
                .collect();
            let want: BTreeMap<String, Vec<u8>> = (0..o.keys)
                .map(|k| (key_name(k), value(i, k).into_bytes()))
                .collect();
            if data != want {
                problems.push(format!(
                    "{ns}/{name} has keys {:?} with different data than Git",
                    data.keys().collect::<Vec<_>>()
                ));
            } else {
                found += 1;
            }
        }
    }
    if found != o.secrets && problems.is_empty() {
        problems.push(format!("found {found} of {} Secrets", o.secrets));
    }
    problems.truncate(5);
    problems
}

/// Write requests by what they wrote.
fn describe_writes(writes: &[RequestRecord]) -> String {
    let mut by: BTreeMap<String, usize> = BTreeMap::new();
    for w in writes {
        let what = match (w.resource.as_str(), w.subresource.as_deref()) {
            ("secrets", None) if w.is_apply() => "Secret applies".to_string(),
            (r, Some(sub)) => format!("{r}/{sub} {}", w.method),
            (r, None) => format!("{r} {}", w.method),
        };
        *by.entry(what).or_default() += 1;
    }
    by.into_iter()
        .map(|(k, v)| format!("{v} {k}"))
        .collect::<Vec<_>>()
        .join(", ")
}

struct Figures {
    seconds: f64,
    peak_rss_kib: u64,
    writes: usize,
    writes_detail: String,
    cpu_controller: f64,
    cpu_git: f64,
    cpu_bench: f64,
    cpu_daemon: f64,
    reconciles: Option<f64>,
    /// The 1-minute load average when the run started (other work on the machine).
    load: String,
    /// The no-op resync (last run only): (writes, sources seen resyncing).
    noop: Option<(usize, usize)>,
}

/// A fake cluster holding the key Secret and one SecretSource per namespace.
fn cluster(o: &Options, url: &str, key: &[u8]) -> FakeApiServer {
    let fake = FakeApiServer::start();
    fake.register_crd(&SecretSource::crd());
    fake.register_crd(&SopsSecret::crd());
    for n in 0..o.namespaces {
        let ns = format!("ns-{n}");
        fake.ensure_namespace(&ns);
        fake.put(&Secret {
            metadata: ObjectMeta {
                name: Some("sopsync-age-key".into()),
                namespace: Some(ns.clone()),
                ..ObjectMeta::default()
            },
            data: Some(BTreeMap::from([(
                "key.agekey".to_string(),
                ByteString(key.to_vec()),
            )])),
            ..Secret::default()
        });
        let mut source = SecretSource::new(
            "gitops",
            SecretSourceSpec {
                url: url.to_string(),
                git_ref: None,
                path: Some(ns.clone()),
                interval: format!("{}s", o.interval),
                auth_secret_ref: None,
                decryption: Default::default(),
                target: Default::default(),
                prune: true,
                suspend: false,
                rotation: None,
            },
        );
        source.metadata.namespace = Some(ns.clone());
        fake.put(&source);
    }
    fake
}

/// Stops the controller (and a --wrap wrapper's children): SIGTERM to its process
/// group, SIGKILL after 10 s.
fn stop(child: &mut Child) {
    let _ = std::process::Command::new("kill")
        .args(["-TERM", "--", &format!("-{}", child.id())])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = std::process::Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", child.id())])
        .status();
    let _ = child.wait();
}

/// One initial sync from a fresh cluster and an empty cache; with `noop`, then the
/// no-op resync check.
fn run_once(o: &Options, data: &Data, daemon: &Server, noop: bool) -> Figures {
    let url = format!("git://127.0.0.1:{}/gitops.git", daemon.port);
    let key = std::fs::read(&data.key_file).expect("read the bench key");
    let fake = cluster(o, &url, &key);
    let run_dir = support::tempdir();
    let kubeconfig = run_dir.path().join("kubeconfig");
    fake.kubeconfig(&kubeconfig);
    let port = free_port();
    let log = run_dir.path().join("controller.log");
    // The controller's Git checkouts; `--cache-dir` puts them elsewhere (e.g. on a
    // tmpfs, like an emptyDir with `medium: Memory`).
    let cache_parent = match &o.cache_dir {
        Some(d) => tempfile::Builder::new()
            .prefix("sopsync-bench-cache-")
            .tempdir_in(d)
            .expect("a cache directory under --cache-dir"),
        None => support::tempdir(),
    };
    let mut cmd = match &o.wrap {
        None => support::sopsync(),
        Some(w) => {
            let mut words = w.split_whitespace();
            let mut c = std::process::Command::new(words.next().expect("--wrap names a command"));
            c.args(words).arg(env!("CARGO_BIN_EXE_sopsync"));
            c
        }
    };
    cmd.arg("controller")
        .arg("--kubeconfig")
        .arg(&kubeconfig)
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .arg("--cache-dir")
        .arg(cache_parent.path())
        .args(["--min-interval", &o.interval.to_string()])
        .env("RUST_LOG", "info,kube=warn")
        .env_remove("POD_NAME")
        .env_remove("POD_NAMESPACE")
        .process_group(0)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log file"));
    for (k, v) in &o.env {
        cmd.env(k, v);
    }
    if let Some(c) = o.concurrency {
        cmd.args(["--concurrency", &c.to_string()]);
    }
    fake.clear_requests();
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(String::from))
        .unwrap_or_else(|| "?".into());
    let bench_cpu_before = cpu_seconds("self").0;
    let daemon_cpu_before = cpu_seconds(&daemon.pid().to_string());
    let started = Instant::now();
    let mut child: Child = cmd.spawn().expect("start sopsync controller");
    let pid = child.id();
    let mut sampled_rss = 0;
    loop {
        std::thread::sleep(Duration::from_millis(100));
        sampled_rss = sampled_rss.max(status_kib(pid, "VmRSS").unwrap_or(0));
        if all_ready(&fake, o, &data.commit) {
            break;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "the controller exited with {status}; its log:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
        }
        if started.elapsed() > GIVE_UP {
            stop(&mut child);
            panic!(
                "the controller did not sync {} Secrets within {}s; the end of its log:\n{}",
                o.secrets,
                GIVE_UP.as_secs(),
                tail(&log)
            );
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    let (cpu_controller, cpu_git) = cpu_seconds(&pid.to_string());
    let cpu_bench = cpu_seconds("self").0 - bench_cpu_before;
    let daemon_cpu = cpu_seconds(&daemon.pid().to_string());
    let cpu_daemon = (daemon_cpu.0 + daemon_cpu.1) - (daemon_cpu_before.0 + daemon_cpu_before.1);
    let peak_rss_kib = status_kib(pid, "VmHWM")
        .unwrap_or(sampled_rss)
        .max(sampled_rss);
    let writes = fake.writes();
    let reconciles = metric_sum(port, "sopsync_reconcile_total");

    fake.clear_requests();
    let problems = verify(&fake, o);
    if !problems.is_empty() {
        stop(&mut child);
        panic!(
            "the controller reported Ready but the Secrets are not what Git holds: {}",
            problems.join("; ")
        );
    }
    let noop = noop.then(|| noop_resync(o, &fake));
    stop(&mut child);
    // A git process the controller started may still be exiting and writing: retry
    // so that ~100 MB of checkouts are not left behind in the temp dir.
    for _ in 0..10 {
        if std::fs::remove_dir_all(cache_parent.path()).is_ok() || !cache_parent.path().exists() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Figures {
        seconds,
        peak_rss_kib,
        writes: writes.len(),
        writes_detail: describe_writes(&writes),
        cpu_controller,
        cpu_git,
        cpu_bench,
        cpu_daemon,
        reconciles,
        load,
        noop,
    }
}

/// Waits one more interval (and until every source has resynced, which lists its
/// own Secrets) and returns (writes meanwhile, sources seen resyncing).
fn noop_resync(o: &Options, fake: &FakeApiServer) -> (usize, usize) {
    let window_start = Instant::now();
    let resynced = || -> usize {
        (0..o.namespaces)
            .filter(|n| {
                let ns = format!("ns-{n}");
                fake.requests_matching(&Match::verb("list").resource("secrets").namespace(&ns))
                    .iter()
                    .any(|r| r.query.contains("labelSelector"))
            })
            .count()
    };
    let window = Duration::from_secs(o.interval) + Duration::from_secs(2);
    let deadline = Duration::from_secs(o.interval * 3 + 60);
    while window_start.elapsed() < window
        || (resynced() < o.namespaces && window_start.elapsed() < deadline)
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    // Let the last resync's writes (if any) arrive.
    std::thread::sleep(Duration::from_secs(1));
    let writes = fake.writes();
    if !writes.is_empty() {
        eprintln!(
            "controller_sync: the no-op resync wrote: {}",
            describe_writes(&writes)
        );
    }
    (writes.len(), resynced())
}

fn main() {
    let o = options();
    let data = data(&o);
    let daemon = git_daemon(&data.served);
    let runs: Vec<Figures> = (0..o.runs)
        .map(|i| {
            let f = run_once(&o, &data, &daemon, i + 1 == o.runs);
            eprintln!(
                "controller_sync: run {}/{}: {:.2} s, VmHWM {:.1} MiB",
                i + 1,
                o.runs,
                f.seconds,
                f.peak_rss_kib as f64 / 1024.0
            );
            f
        })
        .collect();
    report(&o, &runs);
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(30)..].join("\n")
}

fn met(ok: bool) -> &'static str {
    if ok {
        "yes"
    } else {
        "NO"
    }
}

fn report(o: &Options, runs: &[Figures]) {
    // The median run by time; the highest peak RSS of all runs.
    let mut order: Vec<&Figures> = runs.iter().collect();
    order.sort_by(|a, b| a.seconds.total_cmp(&b.seconds));
    let f = order[order.len() / 2];
    let times: Vec<String> = runs.iter().map(|r| format!("{:.2}", r.seconds)).collect();
    let peak_rss_kib = runs.iter().map(|r| r.peak_rss_kib).max().unwrap_or(0);
    let (noop_writes, noop_resynced) = runs
        .last()
        .and_then(|r| r.noop)
        .expect("the last run checks the no-op resync");
    let per = o.secrets / o.namespaces;
    let rate = o.secrets as f64 / f.seconds;
    let rss_mib = peak_rss_kib as f64 / 1024.0;
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let mut t = String::new();
    t.push_str(&format!(
        "# (f) controller initial sync: {} Secrets in {} SecretSources x {per}, {} keys each\n\n",
        o.secrets, o.namespaces, o.keys
    ));
    t.push_str(&format!(
        "Binary: {}. Machine: {cores} cores. Fake API server in the bench process; git daemon on loopback; interval {}s.\n\n",
        env!("CARGO_BIN_EXE_sopsync"),
        o.interval
    ));
    t.push_str("| measurement | value | target | met |\n|---|---|---|---|\n");
    t.push_str(&format!(
        "| initial sync, spawn to all Ready (data verified); median of {} run(s): {} s | {:.2} s ({rate:.0} Secrets/s) | <= 10 s | {} |\n",
        runs.len(),
        times.join(", "),
        f.seconds,
        met(f.seconds <= 10.0)
    ));
    t.push_str(&format!(
        "| controller peak RSS (VmHWM, highest run) | {rss_mib:.1} MiB | <= 64 MiB | {} |\n",
        met(rss_mib <= 64.0)
    ));
    t.push_str(&format!(
        "| API write requests, initial sync | {} ({}) | | |\n",
        f.writes, f.writes_detail
    ));
    t.push_str(&format!(
        "| API write requests, no-op resync ({} of {} sources resynced) | {} | 0 | {} |\n",
        noop_resynced,
        o.namespaces,
        noop_writes,
        met(noop_writes == 0 && noop_resynced == o.namespaces)
    ));
    t.push_str(&format!(
        "| CPU during the (median) sync: controller / its git children / git daemon / bench process (fake API server); load average at its start | {:.2} s / {:.2} s / {:.2} s / {:.2} s = {:.2} s; load {} | | |\n",
        f.cpu_controller,
        f.cpu_git,
        f.cpu_daemon,
        f.cpu_bench,
        f.cpu_controller + f.cpu_git + f.cpu_daemon + f.cpu_bench,
        f.load
    ));
    if let Some(r) = f.reconciles {
        t.push_str(&format!("| reconciles during the sync | {r:.0} | | |\n"));
    }
    print!("{t}");
    if let Some(path) = &o.json {
        let json = serde_json::json!({
            "secrets": o.secrets,
            "namespaces": o.namespaces,
            "keys": o.keys,
            "runs": runs.len(),
            "seconds": f.seconds,
            "seconds_all": runs.iter().map(|r| r.seconds).collect::<Vec<_>>(),
            "secrets_per_second": rate,
            "peak_rss_kib": peak_rss_kib,
            "writes": f.writes,
            "writes_detail": f.writes_detail,
            "noop_writes": noop_writes,
            "noop_resynced": noop_resynced,
            "cpu_controller": f.cpu_controller,
            "cpu_git": f.cpu_git,
            "cpu_daemon": f.cpu_daemon,
            "cpu_bench": f.cpu_bench,
            "reconciles": f.reconciles,
            "load_average": f.load,
            "binary": env!("CARGO_BIN_EXE_sopsync"),
        });
        std::fs::write(path, serde_json::to_vec_pretty(&json).expect("json"))
            .unwrap_or_else(|e| panic!("writing {}: {e}", path.display()));
    }
}
