//! A fake cluster for tests of the real `sopsync controller` binary: the fake API
//! server with our CRDs, an age key, a Git repository served by `git daemon`, and the
//! controller as a child process with its log (moved here from tests/controller.rs so
//! that every controller-facing test module shares one vocabulary, STYLE.md 12).

#![allow(dead_code)]

use crate::support::fake_apiserver::FakeApiServer;
use crate::support::git_server::{free_port, git, git_daemon, make_repo, Server};
use crate::support::{age_keypair, run_ok, sopsync, tempdir};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::ByteString;
use kube::CustomResourceExt;
use serde_json::{json, Value};
use sopsync::controller::crd::{SecretSource, SopsSecret, SyncStatus};
use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Part of every secret value: must never appear in a log.
pub const CANARY: &str = "c4n4ry-5ecret";

/// How long a test waits for the controller to converge before failing.
pub const CONVERGE: Duration = Duration::from_secs(40);

/// A fake cluster with our CRDs, an age key, and a Git repository served by `git daemon`.
pub struct Cluster {
    pub fake: FakeApiServer,
    pub dir: tempfile::TempDir,
    pub kubeconfig: PathBuf,
    pub key_file: PathBuf,
    pub recipient: String,
    pub work: PathBuf,
    pub daemon: Server,
}

impl Cluster {
    /// A cluster and a repository holding `files` (path -> plaintext Secret manifest
    /// or raw text), each `*.yaml` Secret encrypted by the real sops.
    pub fn new(files: &[(&str, &str)]) -> Cluster {
        let fake = FakeApiServer::start();
        fake.register_crd(&SecretSource::crd());
        fake.register_crd(&SopsSecret::crd());
        let dir = tempdir();
        let kubeconfig = dir.path().join("kubeconfig");
        fake.kubeconfig(&kubeconfig);
        let (key_file, recipient) = age_keypair(dir.path(), "team");
        let content = dir.path().join("content");
        std::fs::create_dir_all(&content).expect("mkdir");
        let served = dir.path().join("served");
        std::fs::create_dir_all(&served).expect("mkdir");
        let mut cluster = Cluster {
            fake,
            kubeconfig,
            key_file,
            recipient,
            work: PathBuf::new(),
            daemon: git_daemon(&served),
            dir,
        };
        for (path, text) in files {
            cluster.write_file(&content, path, text);
        }
        std::fs::write(content.join("README"), "test repository\n").expect("write");
        let (work, _bare) = make_repo(&served, "gitops", &content);
        cluster.work = work;
        cluster
    }

    pub fn url(&self) -> String {
        format!("git://127.0.0.1:{}/gitops.git", self.daemon.port)
    }

    /// Writes `text` at `root/path`, SOPS-encrypted by the real sops when it is a Secret.
    pub fn write_file(&self, root: &Path, path: &str, text: &str) {
        let target = root.join(path);
        std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
        if text.contains("kind: Secret") {
            std::fs::write(&target, self.sops_encrypt(text)).expect("write");
        } else {
            std::fs::write(&target, text).expect("write");
        }
    }

    /// A `kind: Secret` manifest encrypted by the real sops (values only).
    pub fn sops_encrypt(&self, plaintext: &str) -> String {
        let plain = self.dir.path().join("plain.yaml");
        std::fs::write(&plain, plaintext).expect("write");
        let out = run_ok(
            crate::support::sops()
                .args(["encrypt", "--age", &self.recipient])
                .args(["--encrypted-regex", "^(data|stringData)$"])
                .arg(&plain),
        );
        std::fs::remove_file(&plain).expect("remove plaintext");
        String::from_utf8(out).expect("utf-8")
    }

    /// Commits the given changes (None deletes) and pushes; returns the new commit id.
    pub fn commit(&self, changes: &[(&str, Option<&str>)]) -> String {
        for (path, text) in changes {
            match text {
                Some(t) => self.write_file(&self.work, path, t),
                None => std::fs::remove_file(self.work.join(path)).expect("remove"),
            }
        }
        git(&self.work, &["add", "-A"]);
        git(&self.work, &["commit", "-q", "-m", "change"]);
        git(&self.work, &["push", "-q", "origin", "HEAD:main"]);
        self.head()
    }

    pub fn head(&self) -> String {
        git(&self.work, &["rev-parse", "HEAD"])
    }

    /// The `sopsync-age-key` Secret in `ns` holding the test identity.
    pub fn key_secret(&self, ns: &str) {
        self.fake.ensure_namespace(ns);
        let key = std::fs::read(&self.key_file).expect("key");
        self.fake.put(&Secret {
            metadata: meta(ns, "sopsync-age-key"),
            data: Some(BTreeMap::from([("team.agekey".into(), ByteString(key))])),
            ..Secret::default()
        });
    }

    /// Creates or replaces a SecretSource from its `spec`.
    pub fn source(&self, ns: &str, name: &str, spec: Value) -> Value {
        self.fake.ensure_namespace(ns);
        let rt = self
            .fake
            .resource_type_raw("sopsync.io", "v1alpha1", "secretsources");
        let mut obj = self.fake.get_raw(&rt, ns, name).unwrap_or_else(|| {
            json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SecretSource",
                   "metadata": {"name": name, "namespace": ns}})
        });
        obj["spec"] = spec;
        self.fake.put_raw(&rt, ns, name, obj)
    }

    pub fn status(&self, ns: &str, name: &str) -> Option<SyncStatus> {
        self.fake
            .get::<SecretSource>(ns, name)
            .and_then(|s| s.status)
    }

    pub fn secret(&self, ns: &str, name: &str) -> Option<Secret> {
        self.fake.get::<Secret>(ns, name)
    }

    /// A Secret's data as text, or None when it does not exist.
    pub fn data(&self, ns: &str, name: &str) -> Option<BTreeMap<String, String>> {
        self.secret(ns, name).map(|s| data_of(&s))
    }

    /// Events (events.k8s.io/v1) in `ns` as (type, reason, note).
    pub fn events(&self, ns: &str) -> Vec<(String, String, String)> {
        let rt = self.fake.resource_type_raw("events.k8s.io", "v1", "events");
        self.fake
            .list_raw(&rt, Some(ns))
            .into_iter()
            .map(|e| {
                let s = |k: &str| e[k].as_str().unwrap_or_default().to_string();
                (s("type"), s("reason"), s("note"))
            })
            .collect()
    }

    /// The identity holding the `default/sopsync` Lease the elected controllers share.
    pub fn lease_holder(&self) -> Option<String> {
        self.fake
            .get::<k8s_openapi::api::coordination::v1::Lease>("default", "sopsync")
            .and_then(|l| l.spec)
            .and_then(|s| s.holder_identity)
            .filter(|h| !h.is_empty())
    }

    /// Starts a controller with leader election on the `default/sopsync` Lease
    /// (short durations, so that a takeover happens within a test).
    pub fn elected(&self, id: &str) -> ControllerProcess {
        self.controller(
            id,
            &[
                "--leader-elect",
                "--lease-name",
                "sopsync",
                "--lease-namespace",
                "default",
                "--identity",
                id,
                "--lease-duration",
                "4",
                "--lease-grace",
                "2",
            ],
        )
    }

    /// Starts the real controller binary against this cluster.
    pub fn controller(&self, name: &str, extra: &[&str]) -> ControllerProcess {
        self.controller_with_env(name, extra, &[])
    }

    /// [`Cluster::controller`] with extra environment variables (issue 11: what the
    /// controller inherits must not reach git).
    pub fn controller_with_env(
        &self,
        name: &str,
        extra: &[&str],
        env: &[(&str, &str)],
    ) -> ControllerProcess {
        let port = free_port();
        let log = self.dir.path().join(format!("{name}.log"));
        let cache = self.dir.path().join(format!("{name}-cache"));
        // The controller runs as the chart's service account, with exactly the RBAC the
        // chart renders for these flags (issue 16): a permission the chart lacks fails
        // the test as it would fail in a cluster.
        let rbac = ChartRbac::for_controller_args(extra);
        self.fake.grant(&rbac.docs);
        // The chart runs the controller with POD_NAMESPACE = the release namespace, where
        // the digest key Secret lives (docs/rotation.md).
        self.fake.ensure_namespace(&rbac.namespace);
        let own_namespace = ["--own-namespace", rbac.namespace.as_str()];
        let own_namespace: &[&str] = if extra.contains(&"--own-namespace") {
            &[]
        } else {
            &own_namespace
        };
        let kubeconfig = self.dir.path().join(format!("{name}-kubeconfig"));
        // Each replica its own token, as each pod has (the fake's log tells them apart).
        let token = self
            .fake
            .pod_token(&rbac.namespace, &rbac.service_account, name);
        std::fs::write(
            &kubeconfig,
            self.fake.kubeconfig_yaml_with(&token, &rbac.namespace),
        )
        .expect("write the controller's kubeconfig");
        let mut cmd = sopsync();
        cmd.arg("controller")
            .arg("--kubeconfig")
            .arg(&kubeconfig)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .arg("--cache-dir")
            .arg(&cache)
            .args(["--min-interval", "1", "--base-backoff", "1"])
            .args(["--git-timeout", "10"])
            .args(extra)
            .args(own_namespace)
            .env("RUST_LOG", "info,kube=warn")
            .env_remove("POD_NAME")
            .env_remove("POD_NAMESPACE")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log file"));
        for (k, v) in env {
            cmd.env(k, v);
        }
        let child = cmd.spawn().expect("start sopsync controller");
        let mut process = ControllerProcess {
            child,
            port,
            log,
            name: name.into(),
        };
        process.wait_listening();
        process
    }
}

/// Workloads for rotation tests (issue 12): a Deployment whose pod template uses
/// Secrets, and what sopsync did to it.
impl Cluster {
    /// Creates Deployment `ns/name` with these workload annotations, using each Secret
    /// of `secrets` through `envFrom`.
    pub fn deployment(&self, ns: &str, name: &str, annotations: &[(&str, &str)], secrets: &[&str]) {
        self.fake.ensure_namespace(ns);
        let env_from: Vec<Value> = secrets
            .iter()
            .map(|s| json!({"secretRef": {"name": s}}))
            .collect();
        let labels = json!({"app": name});
        let obj = json!({
            "apiVersion": "apps/v1", "kind": "Deployment",
            "metadata": {"name": name, "namespace": ns, "annotations": map(annotations)},
            "spec": {
                "replicas": 1,
                "selector": {"matchLabels": labels},
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {"containers": [{"name": "app", "image": "example/app:1", "envFrom": env_from}]}
                }
            }
        });
        let rt = self.fake.resource_type_raw("apps", "v1", "deployments");
        self.fake.put_raw(&rt, ns, name, obj);
    }

    /// The pod-template annotations of Deployment `ns/name`.
    pub fn template_annotations(&self, ns: &str, name: &str) -> BTreeMap<String, String> {
        let rt = self.fake.resource_type_raw("apps", "v1", "deployments");
        self.fake
            .get_raw(&rt, ns, name)
            .and_then(|d| {
                serde_json::from_value(d["spec"]["template"]["metadata"]["annotations"].clone())
                    .ok()
            })
            .unwrap_or_default()
    }

    /// The workload restarts sopsync made: its accepted pod-template patches, as
    /// (namespace, resource, name), in order.
    pub fn restarts(&self) -> Vec<(String, String, String)> {
        self.fake
            .requests()
            .into_iter()
            .filter(|r| {
                r.verb == "patch"
                    && (200..300).contains(&r.status)
                    && r.field_manager.as_deref() == Some("sopsync-rotation")
            })
            .map(|r| {
                (
                    r.namespace.unwrap_or_default(),
                    r.resource,
                    r.name.unwrap_or_default(),
                )
            })
            .collect()
    }

    /// The names of the Deployments of `ns` that sopsync restarted, sorted, with
    /// repetitions (one entry per rollout).
    pub fn restarted_in(&self, ns: &str) -> Vec<String> {
        let mut names: Vec<String> = self
            .restarts()
            .into_iter()
            .filter(|(n, _, _)| n == ns)
            .map(|(_, _, name)| name)
            .collect();
        names.sort();
        names
    }
}

/// The release name and namespace the fixture renders the chart with.
pub const RELEASE: &str = "sopsync";

/// `helm template sopsync charts/sopsync -n NAMESPACE ARGS` by the real Helm engine,
/// each rendered document as JSON (read with our own YAML codec).
pub fn helm_template(namespace: &str, args: &[&str]) -> Vec<Value> {
    helm_template_release(RELEASE, namespace, args)
}

/// [`helm_template`] with another release name.
pub fn helm_template_release(release: &str, namespace: &str, args: &[&str]) -> Vec<Value> {
    use sopsync::core::formats::{codec, Format, FormatOptions};
    let out = run_ok(
        Command::new(crate::support::tool("helm"))
            .args(["template", release])
            .arg(crate::support::project_root().join("charts/sopsync"))
            .args(["-n", namespace])
            .args(args),
    );
    let opts = FormatOptions::default();
    let docs = codec(Format::Yaml, &opts)
        .parse_plain(&out)
        .unwrap_or_else(|e| panic!("helm output is not YAML: {e}"));
    let json = codec(Format::Json, &opts);
    docs.iter()
        .filter(|d| !d.entries.is_empty())
        .map(|d| {
            let bytes = json.emit_plain(std::slice::from_ref(d)).expect("as JSON");
            serde_json::from_slice(&bytes).expect("JSON")
        })
        .collect()
}

/// The chart's RBAC for one controller configuration: the rendered Roles,
/// ClusterRoles and bindings, and the service account they bind.
pub struct ChartRbac {
    /// Every rendered document whose kind is an RBAC kind.
    pub docs: Vec<Value>,
    /// The release namespace (the service account's).
    pub namespace: String,
    /// The service account's name.
    pub service_account: String,
}

impl ChartRbac {
    /// Renders the chart with the values that match these controller flags:
    /// `--namespace N` is `watchNamespace: N` (a Role in N instead of a ClusterRole),
    /// `--leader-elect` is `leaderElection.enabled` (the Lease Role), and the release
    /// namespace is the Lease's (`--lease-namespace`, else `default`, where the
    /// controller puts it without `POD_NAMESPACE`) or `sopsync-system` without leader election.
    pub fn for_controller_args(args: &[&str]) -> ChartRbac {
        let value = |flag: &str| {
            args.iter().enumerate().find_map(|(i, a)| {
                a.strip_prefix(&format!("{flag}="))
                    .map(str::to_string)
                    .or_else(|| (*a == flag).then(|| args.get(i + 1).map(|v| v.to_string()))?)
            })
        };
        let elect = args.contains(&"--leader-elect");
        let namespace = match (elect, value("--lease-namespace")) {
            (true, Some(ns)) => ns,
            (true, None) => "default".to_string(),
            (false, _) => "sopsync-system".to_string(),
        };
        // One replica without leader election (the chart refuses more: only one may write).
        let mut set = vec![format!("leaderElection.enabled={elect}")];
        if !elect {
            set.push("replicaCount=1".into());
        }
        if let Some(ns) = value("--namespace") {
            set.push(format!("watchNamespace={ns}"));
        }
        if args.contains(&"--workload-restarts") {
            set.push("rotation.workloadRestarts.enabled=true".into());
        }
        Self::render(&namespace, &set)
    }

    /// Renders the chart in `namespace` with these `--set` values.
    pub fn render(namespace: &str, set: &[String]) -> ChartRbac {
        let mut args = Vec::new();
        for s in set {
            args.push("--set");
            args.push(s.as_str());
        }
        let docs = helm_template(namespace, &args);
        let service_account = docs
            .iter()
            .find(|d| d["kind"] == "ServiceAccount")
            .and_then(|d| d["metadata"]["name"].as_str())
            .expect("the chart renders a ServiceAccount")
            .to_string();
        ChartRbac {
            docs: docs
                .into_iter()
                .filter(|d| d["apiVersion"] == "rbac.authorization.k8s.io/v1")
                .collect(),
            namespace: namespace.to_string(),
            service_account,
        }
    }

    /// The user name the service account authenticates as.
    pub fn user(&self) -> String {
        format!(
            "system:serviceaccount:{}:{}",
            self.namespace, self.service_account
        )
    }
}

pub fn meta(ns: &str, name: &str) -> kube::api::ObjectMeta {
    kube::api::ObjectMeta {
        name: Some(name.into()),
        namespace: Some(ns.into()),
        ..Default::default()
    }
}

pub fn data_of(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .iter()
        .flatten()
        .map(|(k, v)| (k.clone(), String::from_utf8_lossy(&v.0).into_owned()))
        .collect()
}

/// A plaintext Secret manifest with `stringData`.
pub fn secret_manifest(name: &str, namespace: Option<&str>, data: &[(&str, &str)]) -> String {
    let mut s = format!("apiVersion: v1\nkind: Secret\nmetadata:\n    name: {name}\n");
    if let Some(ns) = namespace {
        s.push_str(&format!("    namespace: {ns}\n"));
    }
    s.push_str("type: Opaque\nstringData:\n");
    for (k, v) in data {
        s.push_str(&format!("    {k}: {v}\n"));
    }
    s
}

pub fn map(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
    pairs
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

pub fn condition<'a>(
    status: &'a SyncStatus,
    type_: &str,
) -> Option<&'a sopsync::controller::crd::Condition> {
    status.conditions.iter().find(|c| c.type_ == type_)
}

/// True when the object's Ready condition is `want` with `reason`.
pub fn ready_is(status: Option<&SyncStatus>, want: &str, reason: &str) -> bool {
    status
        .and_then(|s| condition(s, "Ready"))
        .is_some_and(|c| c.status == want && c.reason == reason)
}

/// The real controller as a child process; killed on drop.
pub struct ControllerProcess {
    pub child: Child,
    pub port: u16,
    pub log: PathBuf,
    pub name: String,
}

impl ControllerProcess {
    pub fn wait_listening(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "controller {} exited early with {status}:\n{}",
                    self.name,
                    self.logs()
                );
            }
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        panic!("controller {} did not listen:\n{}", self.name, self.logs());
    }

    pub fn logs(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// One HTTP/1.1 request to the controller's server: (status, body).
    pub fn http(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let mut s = TcpStream::connect(("127.0.0.1", self.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(15)))
            .expect("timeout");
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nContent-Length: {}\r\n",
            body.len()
        );
        for (k, v) in headers {
            head.push_str(&format!("{k}: {v}\r\n"));
        }
        head.push_str("\r\n");
        s.write_all(head.as_bytes()).expect("write");
        s.write_all(body).expect("write");
        let mut buf = Vec::new();
        s.read_to_end(&mut buf).expect("read");
        let text = String::from_utf8_lossy(&buf).into_owned();
        let code = text
            .split_whitespace()
            .nth(1)
            .and_then(|c| c.parse().ok())
            .unwrap_or_else(|| panic!("not an HTTP response: {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map(|(_, b)| b.to_string())
            .unwrap_or_default();
        (code, body)
    }

    /// The value of one metric line (name with labels exactly as exposed), 0 if absent.
    pub fn metric(&self, series: &str) -> f64 {
        let (code, text) = self.http("GET", "/metrics", &[], b"");
        assert_eq!(code, 200, "/metrics: {text}");
        text.lines()
            .find_map(|l| l.strip_prefix(series).and_then(|r| r.strip_prefix(' ')))
            .map(|v| v.trim().parse().expect("a number"))
            .unwrap_or(0.0)
    }

    /// SIGTERM, then wait for a graceful exit.
    pub fn terminate(&mut self) -> std::process::ExitStatus {
        run_ok(Command::new("kill").args(["-TERM", &self.child.id().to_string()]));
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(
                Instant::now() < deadline,
                "controller {} ignored SIGTERM:\n{}",
                self.name,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// No secret value ever reached the log.
    pub fn assert_no_canary(&self) {
        let logs = self.logs();
        assert!(
            !logs.is_empty(),
            "controller {} wrote no log at all",
            self.name
        );
        assert!(
            !logs.contains(CANARY),
            "controller {} logged a secret value:\n{logs}",
            self.name
        );
    }
}

impl Drop for ControllerProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Polls `check` until it holds, or fails naming `what` with the controller's log.
pub fn wait_until(what: &str, ctl: &ControllerProcess, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + CONVERGE;
    while Instant::now() < deadline {
        if check() {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "timed out waiting for: {what}\ncontroller log:\n{}",
        ctl.logs()
    );
}

pub fn db(password: &str) -> String {
    secret_manifest(
        "db",
        None,
        &[
            ("username", "app"),
            ("password", &format!("{CANARY}-{password}")),
        ],
    )
}

pub fn api(token: &str) -> String {
    secret_manifest("api", None, &[("token", &format!("{CANARY}-{token}"))])
}

/// Waits until `ns/name` reports `revision` as applied.
pub fn wait_applied(c: &Cluster, ctl: &ControllerProcess, ns: &str, name: &str, revision: &str) {
    wait_until(&format!("{ns}/{name} applied at {revision}"), ctl, || {
        c.status(ns, name)
            .is_some_and(|s| s.last_applied_revision.as_deref() == Some(revision))
    });
}

/// Waits until `ns/name` reports `revision` as attempted (applied or not: a failure
/// the status reports).
pub fn wait_attempted(c: &Cluster, ctl: &ControllerProcess, ns: &str, name: &str, revision: &str) {
    wait_until(&format!("{ns}/{name} attempted at {revision}"), ctl, || {
        c.status(ns, name)
            .is_some_and(|s| s.last_attempted_revision.as_deref() == Some(revision))
    });
}

/// Waits until the controller has stopped reconciling (the reconcile counter stays
/// the same for 1.5 s), so that a test that pushes a commit does not race a
/// reconcile still under way.
pub fn settle(ctl: &ControllerProcess) {
    let count = || {
        let (_, text) = ctl.http("GET", "/metrics", &[], b"");
        text.lines()
            .filter(|l| l.starts_with("sopsync_reconcile_total{"))
            .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
            .sum::<f64>()
    };
    let mut last = count();
    let mut since = Instant::now();
    let deadline = Instant::now() + CONVERGE;
    while since.elapsed() < Duration::from_millis(1500) {
        assert!(
            Instant::now() < deadline,
            "the controller never settled:\n{}",
            ctl.logs()
        );
        std::thread::sleep(Duration::from_millis(100));
        let now = count();
        if now != last {
            last = now;
            since = Instant::now();
        }
    }
}
