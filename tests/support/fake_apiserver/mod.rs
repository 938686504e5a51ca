//! A fake Kubernetes API server for tests: the real REST protocol over real HTTP on
//! 127.0.0.1, so the real `kube` client and the real `sopsync` binary talk to it.
//!
//! It keeps objects in memory with kube-apiserver's rules (resourceVersion, uid,
//! generation, managedFields and server-side apply, status subresource, finalizers,
//! owner-reference garbage collection, watches with a bounded history) and lets a
//! test inject faults and read a log of every request. See
//! `README.md` beside this file for what it models and what it does not.
//!
//! ```ignore
//! let fake = FakeApiServer::start();
//! fake.block_on(async {
//!     let client = fake.client().await;
//!     let secrets: kube::Api<Secret> = kube::Api::namespaced(client, "default");
//!     ...
//! });
//! ```

#![allow(dead_code)]

mod apply;
mod errors;
mod fields;
mod http;
mod metadata;
mod patch;
pub mod rbac;
mod resources;
mod rollout;
mod schema;
mod selector;
mod store;
mod validation;
mod watch;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{json, Value};

pub use errors::ApiError;
pub use resources::ResourceType;
pub use rollout::RolloutBehaviour;
pub use store::DeleteOptions;

use store::{Store, WriteCtx};

/// A fault to inject into matching requests.
#[derive(Debug, Clone)]
pub enum Fault {
    /// Answer with this HTTP code and a Status of the matching reason
    /// (500 InternalError, 503 ServiceUnavailable with Retry-After, 403 Forbidden, ...).
    Status(u16),
    /// 409 Conflict, the optimistic-concurrency message ("the object has been modified").
    Conflict,
    /// 410 Gone, reason Expired.
    Gone,
    /// 429 TooManyRequests with Retry-After: 1.
    TooManyRequests,
    /// 429 TooManyRequests with Retry-After: this many seconds (and
    /// `details.retryAfterSeconds`, as kube-apiserver's `NewTooManyRequests` writes both).
    TooManyRequestsFor(u32),
    /// Wait this long, then handle the request normally (or apply the next matching fault).
    Delay(Duration),
    /// Close the TCP connection without answering.
    DropConnection,
}

/// Which requests a fault applies to. Every field set must match.
#[derive(Debug, Clone, Default)]
pub struct Match {
    method: Option<String>,
    verb: Option<String>,
    resource: Option<String>,
    namespace: Option<String>,
    name: Option<String>,
    subresource: Option<String>,
    field_manager: Option<String>,
    apply: Option<bool>,
    credential: Option<String>,
}

impl Match {
    /// Any request.
    pub fn any() -> Self {
        Match::default()
    }

    /// An HTTP method when written in capitals (`"PATCH"`, `"GET"`), otherwise a
    /// Kubernetes verb (`"get"`, `"list"`, `"watch"`, `"create"`, `"update"`, `"patch"`,
    /// `"delete"`, `"deletecollection"`).
    pub fn verb(v: &str) -> Self {
        Match::any().and_verb(v)
    }

    /// Adds a method/verb condition (see [`Match::verb`]).
    pub fn and_verb(mut self, v: &str) -> Self {
        if v.chars().all(|c| c.is_ascii_uppercase()) {
            self.method = Some(v.to_string());
        } else {
            self.verb = Some(v.to_string());
        }
        self
    }

    /// A plural resource name (`"secrets"`, `"sopssecrets"`).
    pub fn resource(mut self, r: &str) -> Self {
        self.resource = Some(r.into());
        self
    }

    /// A namespace.
    pub fn namespace(mut self, ns: &str) -> Self {
        self.namespace = Some(ns.into());
        self
    }

    /// An object name.
    pub fn name(mut self, n: &str) -> Self {
        self.name = Some(n.into());
        self
    }

    /// A subresource (`"status"`).
    pub fn subresource(mut self, s: &str) -> Self {
        self.subresource = Some(s.into());
        self
    }

    /// The `fieldManager` query parameter.
    pub fn field_manager(mut self, m: &str) -> Self {
        self.field_manager = Some(m.into());
        self
    }

    /// Only server-side apply requests (`application/apply-patch+yaml`).
    pub fn apply(mut self) -> Self {
        self.apply = Some(true);
        self
    }

    /// Requests made with the token labelled `label` ([`FakeApiServer::pod_token`]).
    pub fn credential(mut self, label: &str) -> Self {
        self.credential = Some(label.into());
        self
    }

    fn matches(&self, r: &RequestRecord) -> bool {
        let eq = |want: &Option<String>, got: Option<&str>| {
            want.as_deref().is_none_or(|w| Some(w) == got)
        };
        eq(&self.method, Some(&r.method))
            && eq(&self.verb, Some(&r.verb))
            && eq(&self.resource, Some(&r.resource))
            && eq(&self.namespace, r.namespace.as_deref())
            && eq(&self.name, r.name.as_deref())
            && eq(&self.subresource, r.subresource.as_deref())
            && eq(&self.field_manager, r.field_manager.as_deref())
            && self.apply.is_none_or(|a| a == r.is_apply())
            && eq(&self.credential, r.credential.as_deref())
    }
}

/// One request as the fake saw it.
#[derive(Debug, Clone)]
pub struct RequestRecord {
    /// HTTP method.
    pub method: String,
    /// URL path.
    pub path: String,
    /// Raw query string.
    pub query: String,
    /// Kubernetes verb (get, list, watch, create, update, patch, delete, deletecollection).
    pub verb: String,
    /// API group of the resource (`""` for core).
    pub group: String,
    /// Plural resource name (`""` for discovery).
    pub resource: String,
    /// Namespace in the path.
    pub namespace: Option<String>,
    /// Object name in the path.
    pub name: Option<String>,
    /// Subresource in the path.
    pub subresource: Option<String>,
    /// Content-Type header.
    pub content_type: Option<String>,
    /// `fieldManager` query parameter.
    pub field_manager: Option<String>,
    /// User-Agent header.
    pub user_agent: Option<String>,
    /// The authenticated user's name (`""` when the token was unknown).
    pub user: String,
    /// Refused by authorization (403 Forbidden from RBAC, not an injected fault).
    pub denied: bool,
    /// A server-side apply that created its object, so it was authorized as `create`
    /// as well as `patch`.
    pub authorized_create: bool,
    /// HTTP status answered (0: connection dropped by a fault).
    pub status: u16,
    /// The label of the bearer token ([`FakeApiServer::pod_token`]), telling apart
    /// replicas that run as the same service account.
    pub credential: Option<String>,
    /// When the request arrived.
    pub at: std::time::Instant,
}

impl RequestRecord {
    /// Does this request change state (create, update, patch, delete)?
    pub fn is_write(&self) -> bool {
        matches!(self.method.as_str(), "POST" | "PUT" | "PATCH" | "DELETE")
    }

    /// Is this a server-side apply?
    pub fn is_apply(&self) -> bool {
        self.content_type
            .as_deref()
            .is_some_and(|c| c.starts_with("application/apply-patch"))
    }
}

struct FaultRule {
    m: Match,
    fault: Fault,
    /// Remaining uses; None = forever.
    left: Option<usize>,
}

/// State shared by the handle and the server tasks.
pub(crate) struct Shared {
    store: Mutex<Store>,
    /// The administrator's token (`system:masters`: RBAC is not asked).
    token: String,
    /// Tokens of the other users (service accounts), which RBAC authorizes.
    users: Mutex<Vec<(String, rbac::User)>>,
    /// Labels of tokens made by [`FakeApiServer::pod_token`].
    labels: Mutex<Vec<(String, String)>>,
    faults: Mutex<Vec<FaultRule>>,
    log: Mutex<Vec<RequestRecord>>,
    bookmark_interval: Duration,
    /// The simulated workload controllers (locked before the store).
    rollouts: Mutex<rollout::Simulator>,
}

impl Shared {
    /// The user a bearer token authenticates, if any.
    fn user_of(&self, token: &str) -> Option<rbac::User> {
        if token == self.token {
            return Some(rbac::User::admin());
        }
        self.users
            .lock()
            .expect("users lock")
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, u)| u.clone())
    }

    /// The label of a token made by [`FakeApiServer::pod_token`].
    fn label_of(&self, token: &str) -> Option<String> {
        self.labels
            .lock()
            .expect("labels lock")
            .iter()
            .find(|(t, _)| t == token)
            .map(|(_, l)| l.clone())
    }

    fn log(&self, r: RequestRecord) {
        self.log.lock().expect("log lock").push(r);
    }

    fn take_fault(&self, r: &RequestRecord) -> Option<Fault> {
        let mut faults = self.faults.lock().expect("faults lock");
        let i = faults.iter().position(|f| f.m.matches(r))?;
        let fault = faults[i].fault.clone();
        if let Some(left) = &mut faults[i].left {
            *left -= 1;
            if *left == 0 {
                faults.remove(i);
            }
        }
        Some(fault)
    }
}

/// Options for [`FakeApiServer::start_with`].
#[derive(Debug, Clone)]
pub struct Options {
    /// How many changes the watch history keeps (older resourceVersions get 410).
    pub history: usize,
    /// How often watches with `allowWatchBookmarks` get a BOOKMARK.
    pub bookmark_interval: Duration,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            history: 10_000,
            bookmark_interval: Duration::from_secs(1),
        }
    }
}

/// A running fake API server; stops when dropped.
pub struct FakeApiServer {
    runtime: Option<tokio::runtime::Runtime>,
    shared: Arc<Shared>,
    addr: SocketAddr,
    shutdown: Arc<tokio::sync::Notify>,
}

impl FakeApiServer {
    /// Starts a server on a free port of 127.0.0.1 with default options.
    pub fn start() -> Self {
        Self::start_with(Options::default())
    }

    /// Starts a server with the given options.
    pub fn start_with(opts: Options) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .thread_name("fake-apiserver")
            .build()
            .expect("a tokio runtime for the fake API server");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let token = format!(
            "fake-token-{:x}",
            std::process::id() as u64 * 7919 + addr.port() as u64
        );
        let shared = Arc::new(Shared {
            store: Mutex::new(Store::new(opts.history)),
            token,
            users: Mutex::new(Vec::new()),
            labels: Mutex::new(Vec::new()),
            faults: Mutex::new(Vec::new()),
            log: Mutex::new(Vec::new()),
            bookmark_interval: opts.bookmark_interval,
            rollouts: Mutex::new(rollout::Simulator::default()),
        });
        let shutdown = Arc::new(tokio::sync::Notify::new());
        let (s2, stop) = (shared.clone(), shutdown.clone());
        runtime.spawn(async move {
            loop {
                let conn = tokio::select! {
                    c = listener.accept() => c,
                    _ = stop.notified() => return,
                };
                let Ok((stream, _)) = conn else { continue };
                let s3 = s2.clone();
                tokio::spawn(async move {
                    let svc = service_fn(move |req| http::handle(s3.clone(), req));
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), svc)
                        .await;
                });
            }
        });
        // kube-controller-manager's workload controllers, simulated (rollout.rs).
        let s5 = shared.clone();
        runtime.spawn(async move {
            let mut tick = tokio::time::interval(rollout::TICK);
            loop {
                tick.tick().await;
                let mut sim = s5.rollouts.lock().expect("rollouts lock");
                let mut store = s5.store.lock().expect("store lock");
                sim.step(&mut store);
            }
        });
        FakeApiServer {
            runtime: Some(runtime),
            shared,
            addr,
            shutdown,
        }
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The bearer token the server requires.
    pub fn token(&self) -> &str {
        &self.shared.token
    }

    /// The kubeconfig text for this server (context `fake`, namespace `default`), as
    /// the administrator (group `system:masters`, which RBAC does not restrict).
    pub fn kubeconfig_yaml(&self) -> String {
        self.kubeconfig_yaml_with(&self.shared.token, "default")
    }

    /// The kubeconfig text authenticating with `token`, default namespace `namespace`.
    pub fn kubeconfig_yaml_with(&self, token: &str, namespace: &str) -> String {
        format!(
            "apiVersion: v1\nkind: Config\nclusters:\n- name: fake\n  cluster:\n    server: {url}\ncontexts:\n- name: fake\n  context:\n    cluster: fake\n    user: fake\n    namespace: {namespace}\ncurrent-context: fake\nusers:\n- name: fake\n  user:\n    token: {token}\n",
            url = self.url(),
        )
    }

    /// Writes a kubeconfig for this server to `path` (for running the real binary).
    pub fn kubeconfig(&self, path: &Path) {
        std::fs::write(path, self.kubeconfig_yaml())
            .unwrap_or_else(|e| panic!("writing kubeconfig {}: {e}", path.display()));
    }

    /// A `kube::Client` for this server, built from the same kubeconfig the binary gets.
    /// Its background worker runs on the fake's runtime, so it works from any runtime.
    pub async fn client(&self) -> kube::Client {
        self.client_with(&self.kubeconfig_yaml()).await
    }

    /// A `kube::Client` authenticated as the service account `ns/name` (see
    /// [`FakeApiServer::service_account_token`]): every request it makes is authorized
    /// by RBAC from the Roles and bindings in the store.
    pub async fn client_as(&self, ns: &str, name: &str) -> kube::Client {
        let token = self.service_account_token(ns, name);
        self.client_with(&self.kubeconfig_yaml_with(&token, ns))
            .await
    }

    async fn client_with(&self, kubeconfig: &str) -> kube::Client {
        let kc = kube::config::Kubeconfig::from_yaml(kubeconfig).expect("our kubeconfig parses");
        let config =
            kube::Config::from_custom_kubeconfig(kc, &kube::config::KubeConfigOptions::default())
                .await
                .expect("a kube config from our kubeconfig");
        let _guard = self.runtime().enter();
        kube::Client::try_from(config).expect("a kube client")
    }

    // ----- authentication and authorization -----

    /// The bearer token of the service account `ns/name` (made on first use): its
    /// requests are authorized by RBAC (`rbac.rs`), like a pod's projected token.
    pub fn service_account_token(&self, ns: &str, name: &str) -> String {
        let user = rbac::User::service_account(ns, name);
        let mut users = self.shared.users.lock().expect("users lock");
        if let Some((t, _)) = users.iter().find(|(_, u)| *u == user) {
            return t.clone();
        }
        let token = format!("{}-sa-{}", self.shared.token, users.len());
        users.push((token.clone(), user));
        token
    }

    /// A new bearer token of the service account `ns/name`, labelled `pod`: every pod
    /// gets its own projected token, so two replicas of one Deployment are one user
    /// with two credentials, told apart in the request log and by [`Match::credential`].
    pub fn pod_token(&self, ns: &str, name: &str, pod: &str) -> String {
        let user = rbac::User::service_account(ns, name);
        let mut users = self.shared.users.lock().expect("users lock");
        let token = format!("{}-sa-{}", self.shared.token, users.len());
        users.push((token.clone(), user));
        self.shared
            .labels
            .lock()
            .expect("labels lock")
            .push((token.clone(), pod.into()));
        token
    }

    /// Stores every Role, ClusterRole, RoleBinding and ClusterRoleBinding among `docs`
    /// (e.g. a chart's rendered manifests; other kinds are left out); returns how many.
    pub fn grant(&self, docs: &[Value]) -> usize {
        let mut n = 0;
        for d in docs {
            let plural = match d["kind"].as_str() {
                Some("Role") => "roles",
                Some("ClusterRole") => "clusterroles",
                Some("RoleBinding") => "rolebindings",
                Some("ClusterRoleBinding") => "clusterrolebindings",
                _ => continue,
            };
            let rt = self.resource_type_raw(rbac::GROUP, "v1", plural);
            let ns = d["metadata"]["namespace"].as_str().unwrap_or_default();
            let name = d["metadata"]["name"].as_str().expect("a named RBAC object");
            self.put_raw(&rt, ns, name, d.clone());
            n += 1;
        }
        n
    }

    fn runtime(&self) -> &tokio::runtime::Runtime {
        self.runtime.as_ref().expect("running")
    }

    /// Runs a future to completion on the fake's runtime (for plain `#[test]` functions).
    pub fn block_on<F: std::future::Future>(&self, f: F) -> F::Output {
        self.runtime().block_on(f)
    }

    // ----- fault injection -----

    /// The next request matching `m` gets `fault` (once).
    pub fn fail_next(&self, m: Match, fault: Fault) {
        self.fail_times(m, fault, 1);
    }

    /// The next `n` requests matching `m` get `fault`.
    pub fn fail_times(&self, m: Match, fault: Fault, n: usize) {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .push(FaultRule {
                m,
                fault,
                left: Some(n),
            });
    }

    /// Every request matching `m` gets `fault` until [`FakeApiServer::clear_faults`].
    pub fn fail_always(&self, m: Match, fault: Fault) {
        self.shared
            .faults
            .lock()
            .expect("faults lock")
            .push(FaultRule {
                m,
                fault,
                left: None,
            });
    }

    /// Removes every pending fault.
    pub fn clear_faults(&self) {
        self.shared.faults.lock().expect("faults lock").clear();
    }

    /// Aborts every open watch connection mid-stream; returns how many there were.
    pub fn drop_watches(&self) -> usize {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .drop_watchers()
    }

    /// Forgets the watch history (like an etcd compaction): a watch resuming from any
    /// resourceVersion handed out so far gets 410 Gone and must relist.
    pub fn expire_history(&self) {
        self.shared.store.lock().expect("store lock").compact();
    }

    /// [`FakeApiServer::expire_history`] then [`FakeApiServer::drop_watches`]: every
    /// watcher reconnects, gets 410, and relists.
    pub fn force_relist(&self) -> usize {
        self.expire_history();
        self.drop_watches()
    }

    /// Waits until at least `n` watches are open (a watcher opens its watch only after its
    /// initial list); panics after 60 s so a broken client fails instead of hanging.
    pub async fn wait_for_watches(&self, n: usize) {
        let start = std::time::Instant::now();
        while self.open_watches() < n {
            assert!(
                start.elapsed() < Duration::from_secs(60),
                "waited 60 s for {n} open watches, have {}",
                self.open_watches()
            );
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Number of watch connections currently open.
    pub fn open_watches(&self) -> usize {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .watcher_count()
    }

    // ----- observation -----

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<RequestRecord> {
        self.shared.log.lock().expect("log lock").clone()
    }

    /// Requests so far that match `m`.
    pub fn requests_matching(&self, m: &Match) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(|r| m.matches(r))
            .collect()
    }

    /// Write requests (POST/PUT/PATCH/DELETE) so far.
    pub fn writes(&self) -> Vec<RequestRecord> {
        self.requests()
            .into_iter()
            .filter(RequestRecord::is_write)
            .collect()
    }

    /// Empties the request log.
    pub fn clear_requests(&self) {
        self.shared.log.lock().expect("log lock").clear();
    }

    /// How many times the pod template of the workload `kind` `ns/name` (Deployment,
    /// StatefulSet, DaemonSet, CronJob, ReplicaSet) changed since it was created: the
    /// rollouts it was asked for, whoever wrote them.
    pub fn template_changes(&self, ns: &str, kind: &str, name: &str) -> usize {
        let store = self.shared.store.lock().expect("store lock");
        let rt = store
            .types()
            .iter()
            .find(|t| t.kind == kind && resources::pod_template_path(kind).is_some())
            .unwrap_or_else(|| panic!("{kind} is not a workload kind the fake serves"))
            .clone();
        let key = store::Key {
            group: rt.group,
            plural: rt.plural,
            namespace: ns.into(),
            name: name.into(),
        };
        store.template_changes.get(&key).copied().unwrap_or(0)
    }

    /// How the new pods of the workload `kind` (`"Deployment"`, `"StatefulSet"`,
    /// `"DaemonSet"`) `ns/name` behave in its rollouts from now on (see
    /// [`RolloutBehaviour`]); by default every rollout completes.
    pub fn set_rollout_behaviour(&self, ns: &str, kind: &str, name: &str, b: RolloutBehaviour) {
        self.shared
            .rollouts
            .lock()
            .expect("rollouts lock")
            .set_behaviour(ns, kind, name, b);
    }

    /// The current (last handed out) resourceVersion.
    pub fn resource_version(&self) -> u64 {
        self.shared.store.lock().expect("store lock").rv
    }

    // ----- direct store access (no HTTP, no faults, no request log) -----

    /// The served kind for a Rust type (e.g. `Secret`, or a CRD type once registered).
    pub fn resource_type<K: kube::Resource<DynamicType = ()>>(&self) -> ResourceType {
        let (g, v, p) = (K::group(&()), K::version(&()), K::plural(&()));
        self.resource_type_raw(&g, &v, &p)
    }

    /// The served kind at group/version/plural; panics if there is none.
    pub fn resource_type_raw(&self, group: &str, version: &str, plural: &str) -> ResourceType {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .resource(group, version, plural)
            .unwrap_or_else(|| {
                panic!("the fake serves no {group}/{version} {plural}; register its CRD first")
            })
    }

    /// Registers a CustomResourceDefinition (stored as an object, as `kubectl apply` would).
    pub fn register_crd(
        &self,
        crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
    ) {
        let v = serde_json::to_value(crd).expect("CRD serializes");
        let rt = self.resource_type_raw("apiextensions.k8s.io", "v1", "customresourcedefinitions");
        let name = v["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        self.put_raw(&rt, "", &name, v);
    }

    /// Makes sure a namespace exists.
    pub fn ensure_namespace(&self, ns: &str) {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .ensure_namespace(ns);
    }

    /// One stored object as JSON.
    pub fn get_raw(&self, rt: &ResourceType, ns: &str, name: &str) -> Option<Value> {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .get(rt, ns, name)
    }

    /// Stored objects of a kind (all namespaces when `ns` is None).
    pub fn list_raw(&self, rt: &ResourceType, ns: Option<&str>) -> Vec<Value> {
        self.shared
            .store
            .lock()
            .expect("store lock")
            .list(rt, ns)
            .into_iter()
            .map(|(_, v)| v)
            .collect()
    }

    /// Creates or replaces an object (unconditionally; manager `fake-setup`), with the
    /// same rules and watch events as an API write. Panics if the store refuses it.
    pub fn put_raw(&self, rt: &ResourceType, ns: &str, name: &str, mut obj: Value) -> Value {
        let mut store = self.shared.store.lock().expect("store lock");
        if rt.namespaced {
            store.ensure_namespace(ns);
        }
        let ctx = WriteCtx {
            manager: "fake-setup".into(),
            sub: None,
            applied: None,
        };
        obj["metadata"]["name"] = json!(name);
        let result = if store.get(rt, ns, name).is_some() {
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let status = obj.get("status").cloned();
            let r = store.update(rt, ns, name, obj, &ctx);
            match (r, status, rt.status_subresource) {
                (Ok(_), Some(s), true) => {
                    let mut o = store.get(rt, ns, name).expect("just stored");
                    o["status"] = s;
                    store.update(
                        rt,
                        ns,
                        name,
                        o,
                        &WriteCtx {
                            sub: Some("status".into()),
                            ..ctx
                        },
                    )
                }
                (r, _, _) => r,
            }
        } else {
            let status = obj.get("status").cloned();
            if let Some(m) = obj["metadata"].as_object_mut() {
                m.remove("resourceVersion");
            }
            let r = store.create(rt, ns, obj, &ctx);
            match (r, status, rt.status_subresource && rt.kind != "Namespace") {
                (Ok(mut o), Some(s), true) => {
                    o["status"] = s;
                    store.update(
                        rt,
                        ns,
                        name,
                        o,
                        &WriteCtx {
                            sub: Some("status".into()),
                            ..ctx
                        },
                    )
                }
                (r, _, _) => r,
            }
        };
        result.unwrap_or_else(|e| {
            panic!(
                "the fake store refused {} {ns}/{name}: {}",
                rt.kind, e.message
            )
        })
    }

    /// Deletes an object as a DELETE would (finalizers and garbage collection apply).
    pub fn delete_raw(&self, rt: &ResourceType, ns: &str, name: &str) -> Result<Value, ApiError> {
        self.shared.store.lock().expect("store lock").delete(
            rt,
            ns,
            name,
            &DeleteOptions::default(),
        )
    }

    /// A stored object of a typed kind (`""` namespace for cluster-scoped kinds).
    pub fn get<K>(&self, ns: &str, name: &str) -> Option<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let rt = self.resource_type::<K>();
        self.get_raw(&rt, ns, name)
            .map(|v| serde_json::from_value(v).expect("stored object deserializes"))
    }

    /// Stored objects of a typed kind.
    pub fn list<K>(&self, ns: Option<&str>) -> Vec<K>
    where
        K: kube::Resource<DynamicType = ()> + DeserializeOwned,
    {
        let rt = self.resource_type::<K>();
        self.list_raw(&rt, ns)
            .into_iter()
            .map(|v| serde_json::from_value(v).expect("stored object deserializes"))
            .collect()
    }

    /// Creates or replaces a typed object (its namespace is created if missing).
    pub fn put<K>(&self, obj: &K) -> K
    where
        K: kube::Resource<DynamicType = ()> + Serialize + DeserializeOwned,
    {
        let rt = self.resource_type::<K>();
        let mut v = serde_json::to_value(obj).expect("object serializes");
        v["apiVersion"] = json!(rt.api_version());
        v["kind"] = json!(rt.kind);
        let ns = obj.meta().namespace.clone().unwrap_or_else(|| {
            if rt.namespaced {
                "default".into()
            } else {
                String::new()
            }
        });
        let name = obj.meta().name.clone().expect("object has a name");
        serde_json::from_value(self.put_raw(&rt, &ns, &name, v))
            .expect("stored object deserializes")
    }
}

impl Drop for FakeApiServer {
    fn drop(&mut self) {
        self.shutdown.notify_one();
        self.shared.store.lock().map(|mut s| s.drop_watchers()).ok();
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}
