//! The in-cluster controller: keeps Kubernetes Secrets equal to what SOPS files in Git
//! (SecretSource) or inline (SopsSecret) say, using kube-runtime's Controller.
//!
//! Layout (STYLE.md 10): [`crd`] the resource types; [`apply`] the pure desired-state,
//! conflict and inventory logic; [`status`] conditions; [`reconcile`] `reconcile` and
//! `error_policy`; [`context`] the shared state and per-reconcile key loading;
//! [`metrics`] the Prometheus registry; [`rotation`] safe rotation (keyed digests, the
//! digest key, InPlace workload restarts with debounce; docs/rotation.md).
//! [`run`] wires it together: the HTTP server, leader election, the two Controllers
//! and graceful shutdown.
//!
//! High availability: with a lease configured, only the instance holding the
//! `coordination.k8s.io` Lease runs the Controllers (and so writes); the others serve
//! `/healthz`, `/readyz`, `/metrics` and the webhook, and take over when the lease
//! expires ([`election`]: client-go's timing, so a leader that cannot renew stops
//! writing before its lease can expire). Shutdown stops the Controllers (in-flight
//! reconciles finish), then releases the lease so a standby takes over at once.
//!
//! Webhook triggering works on any replica: a verified push annotates the matching
//! SecretSources (`sopsync.io/requested-at`), and the leader's watch reconciles them.

pub mod apply;
pub mod context;
pub mod crd;
pub mod election;
pub mod metrics;
pub mod reconcile;
pub mod rotation;
pub mod status;

use crate::server::{
    normalize_repo_url, router, RateLimiter, Readiness, Role, ServerState, Trigger, WebhookConfig,
};
use context::{Context, ControllerConfig};
use crd::{SecretSource, SopsSecret};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::controller::{Config as RuntimeConfig, Controller};
use kube::runtime::{predicates, Predicate};
use kube::runtime::{reflector, watcher, WatchStreamExt};
use kube::Client;
use std::collections::HashSet;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// Annotation the webhook sets on a SecretSource to have it reconciled now.
pub const ANNOTATION_REQUESTED_AT: &str = "sopsync.io/requested-at";

/// Leader election settings.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's name.
    pub name: String,
    /// The Lease's namespace (the controller's own).
    pub namespace: String,
    /// This instance's identity (pod name).
    pub identity: String,
    /// Lease validity after each renewal.
    pub duration_seconds: u64,
    /// Renew this long before expiry.
    pub grace_seconds: u64,
}

/// Everything `run` needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// Reconcile settings.
    pub controller: ControllerConfig,
    /// The HTTP server's address.
    pub listen: SocketAddr,
    /// The webhook, when enabled.
    pub webhook: Option<WebhookConfig>,
    /// Webhook requests allowed at once, and refilled per second.
    pub webhook_burst: u32,
    /// Webhook refill rate per second.
    pub webhook_per_second: f64,
    /// Leader election (None: this instance always writes).
    pub lease: Option<LeaseConfig>,
}

/// Why the controller stopped with an error.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RunError {
    /// The HTTP port could not be opened.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The HTTP server failed.
    #[error("HTTP server: {0}")]
    Serve(std::io::Error),
    /// Leader election failed.
    #[error("leader election: {0}")]
    Lease(String),
}

/// A handle on a running controller's shared state (for tests and the binary).
#[derive(Clone)]
pub struct Handle {
    /// The metrics registry.
    pub metrics: Arc<metrics::Metrics>,
    /// Readiness (`/readyz`), by role.
    pub ready: Readiness,
    /// The bound HTTP address.
    pub addr: SocketAddr,
}

/// The webhook trigger: annotate the SecretSources whose URL matches a pushed
/// repository, so the leader's watch reconciles them.
pub fn webhook_trigger(client: Client, config: &ControllerConfig) -> Trigger {
    let namespace = config.namespace.clone();
    let shard = config.shard_selector.clone();
    Arc::new(move |urls: Vec<String>| {
        let client = client.clone();
        let namespace = namespace.clone();
        let shard = shard.clone();
        Box::pin(async move {
            let wanted: HashSet<String> = urls.iter().map(|u| normalize_repo_url(u)).collect();
            let api: Api<SecretSource> = match &namespace {
                Some(ns) => Api::namespaced(client.clone(), ns),
                None => Api::all(client.clone()),
            };
            let mut lp = ListParams::default();
            if let Some(s) = &shard {
                lp = lp.labels(s);
            }
            let list = match api.list(&lp).await {
                Ok(l) => l,
                Err(e) => {
                    tracing::warn!(error = %e, "webhook: cannot list SecretSources");
                    return 0;
                }
            };
            let now = k8s_openapi::jiff::Timestamp::now().to_string();
            let mut n = 0;
            for s in list.items {
                if !wanted.contains(&normalize_repo_url(&s.spec.url)) {
                    continue;
                }
                let (Some(ns), Some(name)) = (s.metadata.namespace, s.metadata.name) else {
                    continue;
                };
                let patch = serde_json::json!({"metadata": {"annotations": {ANNOTATION_REQUESTED_AT: now}}});
                let api: Api<SecretSource> = Api::namespaced(client.clone(), &ns);
                match api
                    .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                    .await
                {
                    Ok(_) => n += 1,
                    Err(e) => {
                        tracing::warn!(source = %format!("{ns}/{name}"), error = %e, "webhook: cannot trigger")
                    }
                }
            }
            n
        })
    })
}

/// Sets the client's API timeout and turns its hidden retries off (issue 16).
///
/// Timeout: kube-client sets no read timeout, so a request the server accepted and
/// never answered hung its reconcile for good. The timeout is per read, counted from
/// when the request was written; watches stay open because [`watch_timeout`] makes the
/// server end each watch before it could fire.
///
/// Retries: kube-client's default layer retries 429, 503 and 504 inside the request,
/// up to 15 times with a backoff growing to 1000 s, so a sustained 429 held a reconcile
/// for minutes with no status, Event or log line, and a Lease renewal could outlive the
/// renew deadline. Each failure now reaches its caller: a reconcile reports it
/// (`Throttled` for a 429) and `error_policy` waits at least the server's Retry-After;
/// watchers back off; leader election retries within its deadline.
pub fn configure_api_client(config: &mut kube::Config, timeout: Duration) {
    config.read_timeout = Some(timeout);
    // Without this, the time a pooled connection sat idle counts against the next request.
    config.reset_reader_on_write = true;
    config.default_retry = false;
}

/// The server-side `timeoutSeconds` of our watches: well inside the API timeout, so a
/// quiet watch (no events, no bookmark) is ended by the server and resumed from its
/// resourceVersion rather than failed by the client's read timeout.
fn watch_timeout(api_timeout: Duration) -> u32 {
    u32::try_from((api_timeout.as_secs() * 3 / 4).max(1)).unwrap_or(u32::MAX)
}

/// What reconciles an owner when one of its Secrets changes: deletions, and Secrets
/// that someone besides this controller changed ([`apply::written_only_by_us`]).
/// Our own applies come back through this watch too; passing them on reconciled
/// every owner a second time right after each sync that wrote (a fetch, a render and
/// a list for nothing: 20 reconciles instead of 10 for the 10 sources of
/// benches/controller_sync.rs).
///
/// A relist after the first list (a 410 Gone once the history was compacted) means
/// events were missed, a deletion among them, which no object of the new list shows:
/// each such relist is sent on `relisted` so that every owner is reconciled (issue 16).
fn owned_triggers(
    api: Api<PartialObjectMeta<Secret>>,
    config: watcher::Config,
    relisted: futures::channel::mpsc::UnboundedSender<()>,
) -> impl futures::Stream<Item = Result<PartialObjectMeta<Secret>, watcher::Error>> + Send + 'static
{
    let mut listed = false;
    watcher(api, config)
        .default_backoff()
        .filter_map(move |event| {
            futures::future::ready(match event {
                Ok(watcher::Event::Delete(s)) => Some(Ok(s)),
                Ok(watcher::Event::Apply(s) | watcher::Event::InitApply(s)) => {
                    (!apply::written_only_by_us(&s.metadata)).then_some(Ok(s))
                }
                Ok(watcher::Event::InitDone) => {
                    if std::mem::replace(&mut listed, true) {
                        let _ = relisted.unbounded_send(());
                    }
                    None
                }
                Ok(watcher::Event::Init) => None,
                Err(e) => Some(Err(e)),
            })
        })
}

/// Aborts a spawned task when dropped (the Controllers may be dropped mid-run).
struct AbortOnDrop(tokio::task::AbortHandle);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Whether a reflector store has received its initial list (without waiting).
fn synced<K>(store: &kube::runtime::reflector::Store<K>) -> bool
where
    K: kube::Resource + Clone + 'static,
    K::DynamicType: Eq + std::hash::Hash + Clone,
{
    use futures::FutureExt;
    matches!(store.wait_until_ready().now_or_never(), Some(Ok(())))
}

async fn wait_true(rx: &mut watch::Receiver<bool>) -> bool {
    rx.wait_for(|v| *v).await.is_ok()
}

/// Runs both Controllers until `stop` turns true; moves `ready` to
/// [`Role::Synced`] once their caches have synced (the caller set [`Role::Syncing`]).
async fn run_controllers(ctx: Arc<Context>, stop: watch::Receiver<bool>, ready: Readiness) {
    let cfg = &ctx.config;
    let client = ctx.client.clone();
    // Owned Secrets are watched by their metadata only (no data in the controller).
    let (sources, sopss, secrets): (
        Api<SecretSource>,
        Api<SopsSecret>,
        Api<PartialObjectMeta<Secret>>,
    ) = match &cfg.namespace {
        Some(ns) => (
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
            Api::namespaced(client.clone(), ns),
        ),
        None => (
            Api::all(client.clone()),
            Api::all(client.clone()),
            Api::all(client),
        ),
    };
    let timeout = watch_timeout(cfg.api_timeout);
    let mut wc = watcher::Config::default().timeout(timeout);
    if let Some(s) = &cfg.shard_selector {
        wc = wc.labels(s);
    }
    let owned = watcher::Config::default()
        .timeout(timeout)
        .labels(apply::LABEL_OWNER_UID);
    let (relisted1, relists1) = futures::channel::mpsc::unbounded();
    let (relisted2, relists2) = futures::channel::mpsc::unbounded();
    let runtime = RuntimeConfig::default().concurrency(cfg.concurrency);
    let stopped = |mut rx: watch::Receiver<bool>| async move {
        let _ = rx.wait_for(|v| *v).await;
    };
    // Reconcile on spec changes (generation) and annotation changes (the webhook's
    // requested-at), not on our own status writes: a status write would otherwise
    // trigger a second fetch and render right after every sync.
    let (sources_store, sources_writer) = reflector::store();
    let source_events = watcher(sources, wc.clone())
        .default_backoff()
        .reflect(sources_writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    let (sopss_store, sopss_writer) = reflector::store();
    let sops_events = watcher(sopss, wc)
        .default_backoff()
        .reflect(sopss_writer)
        .applied_objects()
        .predicate_filter(
            predicates::generation.combine(predicates::annotations),
            Default::default(),
        );
    let c1 = Controller::for_stream(source_events, sources_store)
        .owns_stream(owned_triggers(secrets.clone(), owned.clone(), relisted1))
        .reconcile_all_on(relists1)
        .with_config(runtime.clone())
        .graceful_shutdown_on(stopped(stop.clone()));
    let c2 = Controller::for_stream(sops_events, sopss_store)
        .owns_stream(owned_triggers(secrets, owned, relisted2))
        .reconcile_all_on(relists2)
        .with_config(runtime)
        .graceful_shutdown_on(stopped(stop.clone()));
    let (s1, s2) = (c1.store(), c2.store());
    // Polled rather than awaited: a store's readiness is a oneshot channel that keeps
    // only the last waker, and the Controller itself waits on the same channel, so a
    // second waiter is never woken (seen with kube-runtime 5.0).
    let readiness = tokio::spawn(async move {
        loop {
            if synced(&s1) && synced(&s2) {
                ready.set(Role::Synced);
                tracing::info!("caches synced; ready");
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    });
    let _readiness = AbortOnDrop(readiness.abort_handle());
    futures::join!(
        c1.run(
            reconcile::reconcile_source,
            reconcile::error_policy,
            ctx.clone()
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind = "SecretSource", error = %e, "controller event");
            }
        }),
        c2.run(
            reconcile::reconcile_sops_secret,
            reconcile::error_policy,
            ctx.clone()
        )
        .for_each(|r| async move {
            if let Err(e) = r {
                tracing::debug!(kind = "SopsSecret", error = %e, "controller event");
            }
        }),
    );
}

/// Runs the controller until `shutdown` completes. `on_start` receives a [`Handle`]
/// once the HTTP server listens.
pub async fn run(
    client: Client,
    cfg: RunConfig,
    shutdown: impl Future<Output = ()> + Send + 'static,
    on_start: impl FnOnce(Handle),
) -> Result<(), RunError> {
    let metrics = Arc::new(metrics::Metrics::new());
    let ready = Readiness::new();
    let (stop_tx, stop_rx) = watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });

    let listener = tokio::net::TcpListener::bind(cfg.listen)
        .await
        .map_err(|source| RunError::Bind {
            addr: cfg.listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(RunError::Serve)?;
    let state = ServerState {
        metrics: metrics.clone(),
        ready: ready.clone(),
        webhook: cfg.webhook.clone(),
        limiter: Arc::new(RateLimiter::new(cfg.webhook_burst, cfg.webhook_per_second)),
        trigger: webhook_trigger(client.clone(), &cfg.controller),
    };
    let mut server_stop = stop_rx.clone();
    let server = tokio::spawn(crate::server::serve(listener, router(state), async move {
        let _ = server_stop.wait_for(|v| *v).await;
    }));
    tracing::info!(%addr, "HTTP server listening");
    on_start(Handle {
        metrics: metrics.clone(),
        ready: ready.clone(),
        addr,
    });

    let ctx = Arc::new(Context::new(
        client.clone(),
        cfg.controller.clone(),
        metrics.clone(),
    ));
    let result = match &cfg.lease {
        None => {
            metrics.leader.set(1);
            ready.set(Role::Syncing);
            run_controllers(ctx, stop_rx.clone(), ready.clone()).await;
            Ok(())
        }
        Some(lease) => {
            lead(
                client,
                lease,
                ctx,
                stop_rx.clone(),
                ready.clone(),
                metrics.clone(),
            )
            .await
        }
    };
    // Whatever happened, stop serving.
    let mut stop = stop_rx;
    if !*stop.borrow() {
        // Only reached on a leader-election error: the server goes down with us.
        tracing::error!("stopping after a leader election failure");
    }
    drop(stop.borrow_and_update());
    server.abort();
    let _ = server.await;
    result
}

/// The leader election loop: run the Controllers while holding the lease.
async fn lead(
    client: Client,
    lease: &LeaseConfig,
    ctx: Arc<Context>,
    mut shutdown: watch::Receiver<bool>,
    ready: Readiness,
    metrics: Arc<metrics::Metrics>,
) -> Result<(), RunError> {
    let (mut leader, task) =
        election::spawn(client, lease).map_err(|e| RunError::Lease(e.to_string()))?;
    ready.set(Role::Standby);
    let mut outcome = Ok(());
    loop {
        tokio::select! {
            ok = wait_true(&mut leader) => if !ok {
                outcome = Err(RunError::Lease("the leader election task stopped".into()));
                break;
            },
            _ = shutdown.wait_for(|v| *v) => break,
        }
        tracing::info!(identity = %lease.identity, lease = %lease.name, "acquired the leader lease");
        metrics.leader.set(1);
        // A new leader is not ready until its own caches have synced.
        ready.set(Role::Syncing);
        let (term_tx, term_rx) = watch::channel(false);
        let mut lost = leader.clone();
        let mut down = shutdown.clone();
        let controllers = run_controllers(ctx.clone(), term_rx, ready.clone());
        tokio::pin!(controllers);
        tokio::select! {
            _ = &mut controllers => {}
            _ = lost.wait_for(|v| !*v) => {
                // Dropped, not drained (issue 16): a reconcile begun as leader must not
                // go on writing once another replica may lead; each Secret is written
                // whole or not at all, and the next leader redoes the sync.
                tracing::warn!("lost the leader lease; stopping writes");
            }
            _ = down.wait_for(|v| *v) => {
                // Shutdown while leading: in-flight reconciles finish, then the lease is released.
                let _ = term_tx.send(true);
                controllers.await;
            }
        }
        metrics.leader.set(0);
        ready.set(Role::Standby);
        if *shutdown.borrow() {
            break;
        }
    }
    // Closing the channel makes the election task release the lease and finish.
    drop(leader);
    match tokio::time::timeout(Duration::from_secs(10), task).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "leader election task failed"),
        Err(_) => tracing::warn!("timed out releasing the leader lease"),
    }
    outcome
}
