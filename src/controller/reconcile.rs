//! `reconcile` and `error_policy` for both kinds (STYLE.md 10). A reconcile loads the
//! keys, fetches and renders (SecretSource) or decrypts the inline manifest
//! (SopsSecret), plans with [`super::apply::plan`], executes the plan, and writes the
//! status only when it changed.
//!
//! Outcomes:
//! - success → requeue at `spec.interval`;
//! - a problem only a human can fix (denied key, missing key Secret, conflicts,
//!   undecryptable files) → `Stalled`/degraded status, a Warning Event, requeue at the
//!   interval (no hot loop);
//! - a transient failure (Git, API server) → `Reconciling` status and an error, so
//!   `error_policy` retries with exponential backoff.

use super::apply::{self, LiveSecret, Owner, FIELD_MANAGER, LABEL_OWNER_UID};
use super::context::{Context, LoadError};
use super::crd::{
    Decryption, InventoryEntry, RotationSpec, RotationStatus, RotationStrategy, SecretOutcome,
    SecretSource, SopsSecret, SyncStatus, TargetOptions, GROUP, VERSION,
};
use super::rotation::recipients::Counting;
use super::rotation::versioned_sync::{self, Versioning};
use super::status::{next_status, ready, StatusUpdate, Verdict};
use crate::core::keys::Keyring;
use crate::repo::git::{check_source, fetch_with_policy, redact_url, GitError};
use crate::repo::render::{
    content_hash, render_files, render_generator, DesiredSecret, FileError, RenderOptions,
};
use crate::repo::walk::{walk_tree, WalkError, WalkLimits};
use futures::StreamExt;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, Preconditions};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType};
use kube::Resource;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use zeroize::Zeroize;

/// A transient reconcile failure (retried with backoff).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Fetching from Git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The API server failed.
    #[error("Kubernetes API: {0}")]
    Api(#[from] kube::Error),
    /// Some Secret writes or deletes failed.
    #[error("{failed} of {total} Secret writes failed; first: {first}")]
    Writes {
        /// How many failed.
        failed: usize,
        /// How many were attempted.
        total: usize,
        /// The first failure (Secret name and the server's reason).
        first: String,
        /// The longest Retry-After of the writes the API server throttled (429).
        retry_after: Option<Duration>,
    },
    /// A blocking task panicked or was cancelled.
    #[error("internal: {0}")]
    Internal(String),
}

impl Error {
    /// The `error` label of the reconcile metrics.
    pub fn kind(&self) -> &'static str {
        if self.retry_after().is_some() {
            return "throttled";
        }
        match self {
            Error::Git(_) => "git",
            Error::Api(_) => "api",
            Error::Writes { .. } => "write",
            Error::Internal(_) => "internal",
        }
    }

    /// How long the API server asked us to wait (429 TooManyRequests), if it throttled us.
    pub fn retry_after(&self) -> Option<Duration> {
        match self {
            Error::Api(e) => throttled(e),
            Error::Writes { retry_after, .. } => *retry_after,
            _ => None,
        }
    }
}

/// A 429 TooManyRequests (API Priority and Fairness, or max-in-flight) and the wait it
/// asks for: `details.retryAfterSeconds`, which kube-apiserver sets with the
/// `Retry-After` header (at least a second).
fn throttled(e: &kube::Error) -> Option<Duration> {
    match e {
        kube::Error::Api(s) if s.code == 429 => Some(Duration::from_secs(
            s.details
                .as_ref()
                .map_or(1, |d| u64::from(d.retry_after_seconds).max(1)),
        )),
        _ => None,
    }
}

/// The Ready message of a throttled sync: says so, and when the next try comes.
fn throttled_message(after: Duration, error: &Error) -> String {
    format!(
        "the API server is throttling requests (429 TooManyRequests); retrying after {}s as it asks: {error}",
        after.as_secs()
    )
}

/// Both kinds carry the same status.
pub trait HasSyncStatus {
    /// The status, if any.
    fn sync_status(&self) -> Option<&SyncStatus>;
}

impl HasSyncStatus for SecretSource {
    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
}

impl HasSyncStatus for SopsSecret {
    fn sync_status(&self) -> Option<&SyncStatus> {
        self.status.as_ref()
    }
}

/// What one sync produced, before the status is written.
struct Outcome {
    verdict: Verdict,
    update: StatusUpdate,
    /// A transient error: retried with backoff.
    error: Option<Error>,
    /// Requeue after this (None: wait for a change).
    requeue: Option<Duration>,
    /// Normal Events for what was done.
    events: Vec<(String, String)>,
    /// Inventory size after the sync, when it ran.
    managed: Option<usize>,
}

impl Outcome {
    fn stalled(reason: &str, message: String, requeue: Duration) -> Outcome {
        Outcome {
            verdict: Verdict::Stalled {
                reason: reason.into(),
                message,
            },
            update: StatusUpdate::default(),
            error: None,
            requeue: Some(requeue),
            events: Vec::new(),
            managed: None,
        }
    }

    /// `spec.suspend`: nothing is fetched, written or deleted, and no requeue.
    fn suspended() -> Outcome {
        Outcome {
            verdict: Verdict::Suspended,
            update: StatusUpdate::default(),
            error: None,
            requeue: None,
            events: Vec::new(),
            managed: None,
        }
    }

    fn retry(reason: &str, error: Error, attempted: Option<String>) -> Outcome {
        let (reason, message) = match error.retry_after() {
            Some(after) => ("Throttled", throttled_message(after, &error)),
            None => (reason, error.to_string()),
        };
        Outcome {
            verdict: Verdict::Retrying {
                reason: reason.into(),
                message,
            },
            update: StatusUpdate {
                attempted_revision: attempted,
                ..StatusUpdate::default()
            },
            error: Some(error),
            requeue: None,
            events: Vec::new(),
            managed: None,
        }
    }

    fn from_load(e: LoadError, requeue: Duration) -> Outcome {
        match e {
            LoadError::Stall(reason, message) => Outcome::stalled(reason, message, requeue),
            LoadError::Api(e) => Outcome::retry("ApiError", Error::Api(e), None),
        }
    }

    /// The metric error label: the transient error's kind, or the reason of a stall.
    fn error_label(&self) -> Option<String> {
        if let Some(e) = &self.error {
            return Some(e.kind().to_string());
        }
        match &self.verdict {
            Verdict::Stalled { reason, .. } | Verdict::Degraded { reason, .. } => {
                Some(reason.clone())
            }
            _ => None,
        }
    }
}

/// Parses `30s`, `5m`, `1h`, `1h30m` (at least `min`).
pub fn parse_interval(text: &str, min: Duration) -> Result<Duration, String> {
    let bad = || format!("spec.interval {text:?}: expected a duration such as 30s, 5m or 1h");
    let mut total = 0u64;
    let mut digits = String::new();
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().map_err(|_| bad())?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return Err(bad()),
        };
        total = total.saturating_add(n.saturating_mul(unit));
    }
    if !digits.is_empty() || total == 0 {
        return Err(bad());
    }
    let d = Duration::from_secs(total);
    if d < min {
        return Err(format!(
            "spec.interval {text:?} is shorter than the controller's minimum of {}s",
            min.as_secs()
        ));
    }
    Ok(d)
}

fn owner_of<K: Resource<DynamicType = ()>>(obj: &K) -> Option<Owner> {
    Some(Owner {
        api_version: format!("{GROUP}/{VERSION}"),
        kind: K::kind(&()).into_owned(),
        name: obj.meta().name.clone()?,
        namespace: obj.meta().namespace.clone()?,
        uid: obj.meta().uid.clone()?,
    })
}

/// The object as an owner of Secrets, and the age keys it may use; or the outcome
/// that ends this sync (an incomplete object, a denied or missing key).
async fn owner_and_keys<K: Resource<DynamicType = ()>>(
    obj: &K,
    decryption: &Decryption,
    ctx: &Context,
    requeue: Duration,
) -> Result<(Owner, Keyring), Outcome> {
    let Some(owner) = owner_of(obj) else {
        return Err(Outcome::stalled(
            "InvalidObject",
            "the object has no name, namespace or uid".into(),
            requeue,
        ));
    };
    match ctx.load_keys(&owner.namespace, decryption).await {
        Ok(keys) => Ok((owner, keys)),
        Err(e) => Err(Outcome::from_load(e, requeue)),
    }
}

fn object_key<K: Resource<DynamicType = ()>>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        obj.meta().name.as_deref().unwrap_or("")
    )
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Runs a render (reading and decrypting a tree) on rayon's pool, where
/// [`render_files`] decrypts in parallel anyway, instead of tokio's blocking pool.
/// The render's allocations then stay on the pool's few threads (one per core) rather
/// than on a blocking thread per concurrent reconcile: with glibc's per-thread malloc
/// arenas, each of those threads kept its own high-water mark, which showed in the
/// controller's RSS (benches/controller_sync.rs). A panic comes back as an error.
async fn on_render_pool<T: Send + 'static>(
    work: impl FnOnce() -> T + Send + 'static,
) -> Result<T, String> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    rayon::spawn(move || {
        let _ = tx.send(std::panic::catch_unwind(std::panic::AssertUnwindSafe(work)));
    });
    match rx.await {
        Ok(Ok(t)) => Ok(t),
        Ok(Err(_)) => Err("the render panicked".into()),
        Err(_) => Err("the render was cancelled".into()),
    }
}

/// Reads every file under `root/sub` (limits apply; `.git` skipped).
/// Repository files the render reads: path → bytes.
type Files = BTreeMap<String, Vec<u8>>;

/// The files of the checkout that the render needs. An entry the walk could not take
/// (an escaping or dangling symlink, a SOPS file over the limit) becomes a file error
/// of its own: the rest is applied, the entry is reported, and nothing is pruned
/// while any exists (issue 11, point 5). Only a tree that cannot be walked at all is
/// an error.
fn read_tree(root: &Path, sub: Option<&str>) -> Result<(Files, Vec<FileError>), WalkError> {
    let tree = walk_tree(root, sub, &WalkLimits::default())?;
    let errors = tree
        .failures
        .iter()
        .map(|e| FileError {
            path: e.path().to_string(),
            message: e.to_string(),
            exit_code: 1,
        })
        .collect();
    Ok((tree.files, errors))
}

fn summarize(items: &[String]) -> String {
    let mut s = items.iter().take(3).cloned().collect::<Vec<_>>().join("; ");
    if items.len() > 3 {
        s.push_str(&format!("; and {} more", items.len() - 3));
    }
    s
}

/// Page size of the Secret lists of a sync. Only one page is held at a time: a
/// source's 1,000 Secrets listed in one response were the largest part of the
/// controller's peak heap in benches/controller_sync.rs (body text and decoded
/// objects, for each concurrent reconcile).
const LIST_PAGE: u32 = 100;

/// One page of a list: `limit` and the previous page's continue token.
fn page_params(base: &ListParams, token: &Option<String>) -> ListParams {
    let lp = base.clone().limit(LIST_PAGE);
    match token {
        Some(t) => lp.continue_token(t),
        None => lp,
    }
}

/// Lists what exists: our own Secrets in full (to compare content), and the metadata
/// of the others only when a desired name is not among ours (conflict detection).
/// Both lists are read page by page (one consistent snapshot each).
async fn live_secrets(
    api: &Api<Secret>,
    owner: &Owner,
    wanted: &[String],
) -> Result<BTreeMap<String, LiveSecret>, kube::Error> {
    let owned = ListParams::default().labels(&format!("{LABEL_OWNER_UID}={}", owner.uid));
    let mut live: BTreeMap<String, LiveSecret> = BTreeMap::new();
    let mut token = None;
    loop {
        let mut page = api.list(&page_params(&owned, &token)).await?;
        for s in page.items.iter_mut() {
            let l = LiveSecret::from_secret(s);
            for v in s.data.iter_mut().flat_map(|d| d.values_mut()) {
                v.0.zeroize();
            }
            live.insert(l.name.clone(), l);
        }
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            break;
        }
    }
    if wanted.iter().any(|n| !live.contains_key(n)) {
        let all = ListParams::default();
        loop {
            let page = api.list_metadata(&page_params(&all, &token)).await?;
            for m in page.items {
                let l = LiveSecret::from_meta(&m.metadata);
                live.entry(l.name.clone()).or_insert(l);
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(live)
}

/// What one sync writes: the rendered Secrets and how to treat them.
struct SyncRequest<'a> {
    /// The Secrets Git (or the inline manifest) asks for.
    desired: Vec<DesiredSecret>,
    /// Files that could not be rendered (nothing is pruned while any exist).
    file_errors: &'a [FileError],
    /// Labels, annotations and name prefix.
    target: &'a TargetOptions,
    /// Whether Secrets that left the source are deleted.
    prune: bool,
    /// The inventory of the previous sync.
    previous: &'a [InventoryEntry],
    /// The Git commit (or `inline`).
    revision: String,
    /// When to sync again after a success.
    requeue: Duration,
    /// `spec.rotation` (only `Versioned` changes what a sync does here).
    rotation: Option<&'a RotationSpec>,
    /// The previous `status.rotation`.
    previous_rotation: Option<&'a RotationStatus>,
}

/// The Versioned strategy of a sync, or why it cannot run (a stall: reason, message;
/// or a transient error).
async fn versioning(
    ctx: &Context,
    spec: &RotationSpec,
    prefix: &str,
    desired: &[DesiredSecret],
) -> Result<Versioning, Result<(&'static str, String), Error>> {
    let timeout =
        super::rotation::rollout_timeout_of(Some(spec)).map_err(|m| Ok(("InvalidSpec", m)))?;
    // Read per sync and dropped after it (digest_key.rs: no key material is held).
    let key = super::rotation::digest_key::load_or_create(
        &ctx.client,
        &ctx.config.own_namespace,
        super::rotation::digest_key::DEFAULT_SECRET,
    )
    .await
    .map_err(|e| match e {
        super::rotation::digest_key::DigestKeyError::Api { source, .. } => Err(Error::Api(source)),
        other => Ok(("DigestKeyInvalid", other.to_string())),
    })?;
    Ok(Versioning::new(
        spec,
        prefix,
        desired,
        |d| {
            let digest = super::rotation::digest::secret_digest(&key, &d.namespace, &d.data.0);
            super::rotation::digest::versioned_name(&d.name, &digest)
        },
        timeout,
    ))
}

/// Plans and executes a sync of `desired` for `owner`.
async fn sync_secrets(ctx: &Context, owner: &Owner, request: SyncRequest<'_>) -> Outcome {
    let SyncRequest {
        desired,
        file_errors,
        target,
        prune,
        previous,
        revision,
        requeue,
        rotation,
        previous_rotation,
    } = request;
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &owner.namespace);
    let prefix = target.name_prefix.clone().unwrap_or_default();
    let versioning = match rotation.filter(|r| r.strategy == RotationStrategy::Versioned) {
        Some(spec) => match versioning(ctx, spec, &prefix, &desired).await {
            Ok(v) => Some(v),
            Err(Ok((reason, m))) => return Outcome::stalled(reason, m, requeue),
            Err(Err(e)) => return Outcome::retry("ApiError", e, Some(revision)),
        },
        None => None,
    };
    let wanted: Vec<String> = match &versioning {
        Some(v) => v.wanted(),
        None => desired
            .iter()
            .map(|d| format!("{prefix}{}", d.name))
            .collect(),
    };
    let live = match live_secrets(&api, owner, &wanted).await {
        Ok(l) => l,
        Err(e) => return Outcome::retry("ApiError", Error::Api(e), Some(revision)),
    };
    let desired = match &versioning {
        Some(v) => v.desired(owner, desired, &live),
        None => desired,
    };
    let mut plan = apply::plan(
        owner,
        &desired,
        target,
        &live,
        previous,
        prune,
        file_errors.is_empty(),
    );
    let held = versioning.as_ref().map(|v| v.adjust(&mut plan));
    // Restarts follow a change of decrypted content only: a Secret of ours rewritten
    // with other data (not a new one, not one rewritten for its labels or annotations).
    // (InPlace only: the Versioned strategy switches references instead.)
    let restarts_wanted =
        versioning.is_none() && super::rotation::inplace::wants_restarts(rotation);
    let changed_now: BTreeSet<String> = if restarts_wanted {
        let writing: BTreeSet<&str> = plan.writes.iter().map(|w| w.name.as_str()).collect();
        desired
            .iter()
            .filter_map(|d| {
                let name = format!("{prefix}{}", d.name);
                let before = live.get(&name)?.content_hash.as_ref()?;
                (writing.contains(name.as_str())
                    && *before != content_hash(&d.secret_type, &d.data))
                .then_some(name)
            })
            .collect()
    } else {
        BTreeSet::new()
    };
    // The rendered data is kept past the writes only when restarts may be due now and
    // need its digests: a change now, or a window still open. Released otherwise, as
    // before: it is the largest part of a sync's heap.
    let window_open = ctx.pending_restarts.get(&owner.uid).since.is_some()
        || previous_rotation.is_some_and(|r| r.pending_since.is_some());
    let desired = if restarts_wanted
        && ctx.config.workload_restarts
        && (!changed_now.is_empty() || window_open)
    {
        desired
    } else {
        drop(desired);
        Vec::new()
    };
    let total = plan.writes.len() + plan.prune.len();
    let params = PatchParams::apply(FIELD_MANAGER).force();
    let writes = std::mem::take(&mut plan.writes);
    let written = writes.len();
    let refused: Vec<(String, String, Option<Duration>)> = futures::stream::iter(writes)
        .map(|w| {
            let api = api.clone();
            let params = params.clone();
            async move {
                let r = api.patch(&w.name, &params, &Patch::Apply(&w.body)).await;
                (w.name.clone(), r.err())
            }
        })
        .buffer_unordered(ctx.config.write_concurrency.max(1))
        .filter_map(
            |(name, err)| async move { err.map(|e| (name, with_causes(&e), throttled(&e))) },
        )
        .collect()
        .await;
    let mut retry_after = refused.iter().filter_map(|r| r.2).max();
    let mut failures: Vec<(String, String)> = refused.into_iter().map(|(n, m, _)| (n, m)).collect();
    ctx.metrics
        .secret_writes
        .inc_by((written - failures.len()) as u64);
    let mut pruned = Vec::new();
    for name in &plan.prune {
        let uid = live.get(name).and_then(|l| l.uid.clone());
        let dp = DeleteParams {
            preconditions: Some(Preconditions {
                uid,
                resource_version: None,
            }),
            ..DeleteParams::default()
        };
        match api.delete(name, &dp).await {
            Ok(_) => pruned.push(name.clone()),
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => {
                retry_after = retry_after.max(throttled(&e));
                // Keep it in the inventory: it is still ours and still to be pruned.
                plan.inventory.push(InventoryEntry { name: name.clone() });
                failures.push((name.clone(), e.to_string()));
            }
        }
    }
    ctx.metrics.secret_deletes.inc_by(pruned.len() as u64);
    // Versioned: switch, watch rollouts, collect old versions; only once every
    // version was written (a workload never points at a Secret that is not there).
    let rolled = match (&versioning, held) {
        (Some(v), Some(held)) if failures.is_empty() => {
            let synced: BTreeSet<String> = plan
                .results
                .iter()
                .filter(|r| r.result == SecretOutcome::Synced)
                .map(|r| r.name.clone())
                .collect();
            let r = v
                .roll(ctx, owner, &live, previous_rotation, held, &synced)
                .await;
            plan.inventory.extend(r.inventory.iter().cloned());
            Some(r)
        }
        (Some(v), Some((held, _))) => {
            plan.inventory.extend(v.hold_all(owner, &live, held));
            None
        }
        _ => None,
    };
    plan.inventory.sort();
    plan.inventory.dedup();
    for r in plan.results.iter_mut() {
        if let Some((_, e)) = failures.iter().find(|(n, _)| *n == r.name) {
            r.result = SecretOutcome::Failed;
            r.message = Some(format!("write refused: {e}"));
        }
    }
    let mut events = Vec::new();
    if written > failures.len() {
        events.push((
            "Applied".to_string(),
            format!(
                "wrote {} Secret(s) at revision {revision}",
                written - failures.len()
            ),
        ));
    }
    if !pruned.is_empty() {
        events.push((
            "Pruned".to_string(),
            format!(
                "deleted {} Secret(s) that left the source: {}",
                pruned.len(),
                summarize(&pruned)
            ),
        ));
    }
    if let Some(r) = &rolled {
        events.extend(r.events.iter().cloned());
    }
    let managed = Some(plan.inventory.len());
    let problems = |outcome: SecretOutcome| -> Vec<String> {
        plan.results
            .iter()
            .filter(|r| r.result == outcome)
            .map(|r| r.message.clone().unwrap_or_default())
            .collect()
    };
    let conflicts = problems(SecretOutcome::Conflict);
    let denied = problems(SecretOutcome::Denied);
    let synced = plan
        .results
        .iter()
        .filter(|r| r.result == SecretOutcome::Synced)
        .count();
    let mut update = StatusUpdate {
        attempted_revision: Some(revision.clone()),
        applied_revision: None,
        results: Some(plan.results),
        inventory: Some(plan.inventory),
        // Versioned: the new versions and rollouts (kept as they were when writes failed).
        rotation: rolled.as_ref().map(|r| Some(r.status.clone())),
        // Set by the caller, which rendered the files.
        decryption: None,
    };
    if let Some((name, first)) = failures.first() {
        let error = Error::Writes {
            failed: failures.len(),
            total,
            first: format!("{name}: {first}"),
            retry_after,
        };
        let verdict = match retry_after {
            Some(after) => Verdict::Retrying {
                reason: "Throttled".into(),
                message: throttled_message(after, &error),
            },
            None => Verdict::Retrying {
                reason: "WriteFailed".into(),
                message: error.to_string(),
            },
        };
        return Outcome {
            verdict,
            update,
            error: Some(error),
            requeue: None,
            events,
            managed,
        };
    }
    let synced_names: BTreeSet<&str> = update
        .results
        .iter()
        .flatten()
        .filter(|r| r.result == SecretOutcome::Synced)
        .map(|r| r.name.as_str())
        .collect();
    // InPlace restarts; under Versioned, `rolled` above did the switching.
    let after = if versioning.is_some() {
        super::rotation::inplace::AfterSyncOutcome::default()
    } else {
        super::rotation::inplace::after_sync(
            ctx,
            super::rotation::inplace::AfterSync {
                owner_uid: &owner.uid,
                namespace: &owner.namespace,
                rotation,
                previous: previous_rotation,
                changed_now,
                secrets: desired
                    .iter()
                    .map(|d| (format!("{prefix}{}", d.name), &d.data))
                    .filter(|(name, _)| synced_names.contains(name.as_str()))
                    .collect(),
                now: ctx.config.rotation_clock.now(),
            },
        )
        .await
    };
    drop(desired);
    if versioning.is_none() {
        update.rotation = after.status;
    }
    events.extend(after.events);
    let requeue = after.requeue.map_or(requeue, |r| r.min(requeue));
    let verdict = if !file_errors.is_empty() {
        let list: Vec<String> = file_errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message))
            .collect();
        Verdict::Degraded {
            reason: "RenderFailed".into(),
            message: format!(
                "{} file(s) could not be rendered (their Secrets are kept as they were): {}",
                list.len(),
                summarize(&list)
            ),
        }
    } else if !denied.is_empty() {
        Verdict::Degraded {
            reason: "Denied".into(),
            message: summarize(&denied),
        }
    } else if !conflicts.is_empty() {
        Verdict::Degraded {
            reason: "Conflict".into(),
            message: summarize(&conflicts),
        }
    } else if let Some(message) = rolled.as_ref().and_then(|r| r.failed.clone()) {
        // The Secrets are written; a workload did not take the new version.
        update.applied_revision = Some(revision);
        Verdict::Degraded {
            reason: "RolloutFailed".into(),
            message,
        }
    } else if let Some(message) = after
        .failure
        .or_else(|| rolled.as_ref().and_then(|r| r.restart_failed.clone()))
    {
        // The Secrets are all written: the revision is applied; only restarts failed.
        update.applied_revision = Some(revision);
        Verdict::Degraded {
            reason: "RestartFailed".into(),
            message,
        }
    } else {
        update.applied_revision = Some(revision);
        Verdict::Synced {
            message: format!("{synced} Secret(s) in sync"),
        }
    };
    // A running rollout is looked at again soon; the reconcile never waits for it.
    let requeue = match &rolled {
        Some(r) if r.progressing => requeue.min(versioned_sync::ROLLOUT_POLL),
        _ => requeue,
    };
    Outcome {
        verdict,
        update,
        error: None,
        requeue: Some(requeue),
        events,
        managed,
    }
}

async fn sync_source(src: &SecretSource, ctx: &Context) -> Outcome {
    let spec = &src.spec;
    let default_requeue = Duration::from_secs(300);
    let interval = match parse_interval(&spec.interval, ctx.config.min_interval) {
        Ok(d) => d,
        Err(m) => return Outcome::stalled("InvalidSpec", m, default_requeue),
    };
    if spec.suspend {
        return Outcome::suspended();
    }
    if let Some((reason, m)) =
        super::rotation::refused(spec.rotation.as_ref(), ctx.config.rotation_debounce)
    {
        return Outcome::stalled(reason, m, interval);
    }
    // Before anything is loaded or fetched: a tenant's URL and ref are data for git,
    // and only the sources the operator allows are contacted (issue 11 point 1).
    let policy = ctx.git_policy();
    if let Err(e) = check_source(&spec.url, spec.git_ref.as_deref(), &policy) {
        let reason = match e {
            GitError::SourceDenied { .. } => "SourceDenied",
            _ => "InvalidSpec",
        };
        return Outcome::stalled(reason, e.to_string(), interval);
    }
    let (owner, keys) = match owner_and_keys(src, &spec.decryption, ctx, interval).await {
        Ok(found) => found,
        Err(stop) => return stop,
    };
    let (auth, staged) = match ctx
        .load_git_auth(&owner.namespace, spec.auth_secret_ref.as_ref())
        .await
    {
        Ok(a) => a,
        Err(e) => return Outcome::from_load(e, interval),
    };
    let cache_root = ctx.config.cache_dir.join(&owner.uid);
    let (url, reference, path, timeout) = (
        spec.url.clone(),
        spec.git_ref.clone(),
        spec.path.clone(),
        ctx.config.git_timeout,
    );
    let started = Instant::now();
    // Only spec.path is checked out: read_tree below reads nothing else.
    let fetched = tokio::task::spawn_blocking(move || {
        fetch_with_policy(
            &url,
            reference.as_deref(),
            path.as_deref(),
            &cache_root,
            &auth,
            timeout,
            &policy,
        )
    })
    .await;
    drop(staged);
    let result = if matches!(fetched, Ok(Ok(_))) {
        "success"
    } else {
        "error"
    };
    ctx.metrics
        .git_fetch_duration
        .get_or_create(&super::metrics::FetchLabels {
            result: result.into(),
        })
        .observe(started.elapsed().as_secs_f64());
    let checkout = match fetched {
        Ok(Ok(c)) => c,
        Ok(Err(e)) => return Outcome::retry("GitFetchFailed", Error::Git(e), None),
        Err(e) => return Outcome::retry("Internal", Error::Internal(e.to_string()), None),
    };
    let revision = checkout.commit.clone();
    let sub = spec.path.clone();
    let opts = RenderOptions {
        source: redact_url(&spec.url),
        revision: revision.clone(),
        default_namespace: owner.namespace.clone(),
    };
    let rendered = on_render_pool(move || {
        let (files, walk_errors) = read_tree(&checkout.dir, sub.as_deref())?;
        // The keys move into this task and are dropped with it.
        let counting = Counting::new(&keys);
        let mut report = render_files(&files, &counting, &opts);
        let opened = counting.status();
        report.errors.extend(walk_errors);
        report.errors.sort_by(|a, b| a.path.cmp(&b.path));
        Ok::<_, WalkError>((report, opened))
    })
    .await;
    let (report, opened) = match rendered {
        Ok(Ok(r)) => r,
        Ok(Err(e)) => {
            let mut o = Outcome::stalled("RepositoryInvalid", e.to_string(), interval);
            o.update.attempted_revision = Some(revision);
            return o;
        }
        Err(e) => return Outcome::retry("Internal", Error::Internal(e), None),
    };
    let previous = src
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    let request = SyncRequest {
        desired: report.secrets,
        file_errors: &report.errors,
        target: &spec.target,
        prune: spec.prune,
        previous: &previous,
        revision,
        requeue: interval,
        rotation: spec.rotation.as_ref(),
        previous_rotation: src.status.as_ref().and_then(|s| s.rotation.as_ref()),
    };
    let mut out = sync_secrets(ctx, &owner, request).await;
    out.update.decryption = Some(opened);
    out
}

/// How often a SopsSecret is re-checked (drift of its Secret also triggers through
/// the watch).
const SOPS_SECRET_RESYNC: Duration = Duration::from_secs(600);

/// Where a SopsSecret's generator entry is rendered from: its `spec.files` paths are
/// relative to this manifest, at the root of the object's own files.
const GENERATOR_MANIFEST: &str = crate::repo::render::MANIFEST_NAME;

async fn sync_sops_secret(obj: &SopsSecret, ctx: &Context) -> Outcome {
    let spec = &obj.spec;
    if spec.suspend {
        return Outcome::suspended();
    }
    if let Some((reason, m)) =
        super::rotation::refused(spec.rotation.as_ref(), ctx.config.rotation_debounce)
    {
        return Outcome::stalled(reason, m, SOPS_SECRET_RESYNC);
    }
    let (owner, keys) = match owner_and_keys(obj, &spec.decryption, ctx, SOPS_SECRET_RESYNC).await {
        Ok(found) => found,
        Err(stop) => return stop,
    };
    let revision = format!("generation-{}", obj.meta().generation.unwrap_or(0));
    let stall = |reason: &str, message: String| {
        let mut o = Outcome::stalled(reason, message, SOPS_SECRET_RESYNC);
        o.update.attempted_revision = Some(revision.clone());
        o
    };
    let opts = RenderOptions {
        source: format!("SopsSecret/{}/{}", owner.namespace, owner.name),
        revision: revision.clone(),
        default_namespace: owner.namespace.clone(),
    };
    let (field, rendered) = match &spec.generator {
        None => {
            let file = if spec.encrypted.trim_start().starts_with('{') {
                "inline.json"
            } else {
                "inline.yaml"
            };
            let files = BTreeMap::from([(file.to_string(), spec.encrypted.as_bytes().to_vec())]);
            let work = move || {
                let counting = Counting::new(&keys);
                (render_files(&files, &counting, &opts), counting.status())
            };
            ("spec.encrypted", tokio::task::spawn_blocking(work).await)
        }
        Some(generator) => {
            // The entry is rendered from the object's own bytes only: its paths are
            // checked and every file it reads must be carried (docs/helm-argocd.md,
            // "Design: generators in safe mode"). Nothing is decrypted before that.
            if !spec.encrypted.is_empty() {
                return stall(
                    "InvalidSpec",
                    "spec.encrypted and spec.generator are exclusive: set one".into(),
                );
            }
            let (entry, files) = match generator.inputs(&spec.files, &owner.name, &owner.namespace)
            {
                Ok(found) => found,
                Err(m) => return stall("InvalidSpec", m),
            };
            let work = move || {
                let counting = Counting::new(&keys);
                let report =
                    render_generator(GENERATOR_MANIFEST, &[entry], &files, &counting, &opts);
                (report, counting.status())
            };
            ("spec.generator", tokio::task::spawn_blocking(work).await)
        }
    };
    let (report, opened) = match rendered {
        Ok(r) => r,
        Err(e) => return Outcome::retry("Internal", Error::Internal(e.to_string()), None),
    };
    if let Some(e) = report.errors.first() {
        let mut o = stall("DecryptFailed", format!("{field}: {}", e.message));
        o.update.decryption = Some(opened);
        return o;
    }
    let mut secrets = report.secrets;
    if secrets.len() != 1 || secrets[0].name != owner.name {
        return stall(
            "InvalidManifest",
            format!(
                "spec.encrypted must hold exactly one SOPS-encrypted `kind: Secret` named {:?}; found {}",
                owner.name,
                secrets
                    .iter()
                    .map(|s| format!("{}/{}", s.namespace, s.name))
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
    }
    let previous = obj
        .status
        .as_ref()
        .map(|s| s.inventory.clone())
        .unwrap_or_default();
    let target = TargetOptions {
        name_prefix: None,
        ..spec.target.clone()
    };
    let desired = vec![secrets.remove(0)];
    let request = SyncRequest {
        desired,
        file_errors: &[],
        target: &target,
        prune: true,
        previous: &previous,
        revision,
        requeue: SOPS_SECRET_RESYNC,
        rotation: spec.rotation.as_ref(),
        previous_rotation: obj.status.as_ref().and_then(|s| s.rotation.as_ref()),
    };
    let mut out = sync_secrets(ctx, &owner, request).await;
    out.update.decryption = Some(opened);
    out
}

/// The merge patch that sets `status` (lists and absent fields written explicitly, so
/// a shrinking inventory really shrinks).
pub fn status_patch(status: &SyncStatus) -> serde_json::Value {
    let mut v = serde_json::to_value(status).unwrap_or_else(|_| serde_json::json!({}));
    if let Some(m) = v.as_object_mut() {
        for k in ["conditions", "inventory", "secrets"] {
            m.entry(k).or_insert(serde_json::json!([]));
        }
        for k in [
            "observedGeneration",
            "lastAppliedRevision",
            "lastAttemptedRevision",
            "rotation",
            "decryption",
        ] {
            m.entry(k).or_insert(serde_json::Value::Null);
        }
        // A merge patch keeps what it does not name: the fields of `rotation` that
        // serialize as absent (a closed window's `pendingSince`, an emptied list) must
        // be sent as null, or the stale values stay (a window closed long ago would
        // still show as open, and be reopened from the status on every sync).
        if let Some(r) = m.get_mut("rotation").and_then(|r| r.as_object_mut()) {
            for k in ["pendingSince", "secrets", "workloads", "workloadsOmitted"] {
                r.entry(k).or_insert(serde_json::Value::Null);
            }
        }
        if let Some(d) = m.get_mut("decryption").and_then(|d| d.as_object_mut()) {
            for k in ["recipients", "recipientsOmitted"] {
                d.entry(k).or_insert(serde_json::Value::Null);
            }
        }
    }
    serde_json::json!({ "status": v })
}

async fn finish<K>(obj: &K, ctx: &Context, out: Outcome, started: Instant) -> Result<Action, Error>
where
    K: Resource<DynamicType = (), Scope = k8s_openapi::NamespaceResourceScope>
        + HasSyncStatus
        + Clone
        + DeserializeOwned
        + std::fmt::Debug,
{
    let kind = K::kind(&()).into_owned();
    let key = object_key(obj);
    let previous = obj.sync_status().cloned().unwrap_or_default();
    let generation = obj.meta().generation;
    let label = out.error_label();
    let next = next_status(
        &previous,
        generation,
        &out.verdict,
        out.update,
        &now_rfc3339(),
    );
    let ns = obj.meta().namespace.clone().unwrap_or_default();
    let name = obj.meta().name.clone().unwrap_or_default();
    if next != previous {
        let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
        if let Err(e) = api
            .patch_status(
                &name,
                &PatchParams::default(),
                &Patch::Merge(status_patch(&next)),
            )
            .await
        {
            let e = Error::Api(e);
            ctx.metrics
                .reconciled(&kind, Some(e.kind()), started.elapsed().as_secs_f64());
            if let Some(after) = e.retry_after() {
                // The status cannot say it, so an Event does (if the server takes it).
                let ev = Event {
                    type_: EventType::Warning,
                    reason: "Throttled".into(),
                    note: Some(throttled_message(after, &e).chars().take(1000).collect()),
                    action: "Sync".into(),
                    secondary: None,
                };
                if let Err(err) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
                    tracing::warn!(object = %key, error = %err, "could not publish an Event");
                }
            }
            return Err(e);
        }
    }
    let reference = obj.object_ref(&());
    let mut events: Vec<(EventType, String, String)> = out
        .events
        .into_iter()
        .map(|(r, n)| (EventType::Normal, r, n))
        .collect();
    if let (Some(now), before) = (ready(Some(&next)), ready(Some(&previous))) {
        let changed = before.is_none_or(|b| b.reason != now.reason || b.message != now.message);
        if now.status != "True" && now.reason != "Suspended" && changed {
            events.push((EventType::Warning, now.reason.clone(), now.message.clone()));
        }
    }
    for (type_, reason, note) in events {
        let ev = Event {
            type_,
            reason: reason.clone(),
            note: Some(note.chars().take(1000).collect()),
            action: "Sync".into(),
            secondary: None,
        };
        if let Err(e) = ctx.recorder.publish(&ev, &reference).await {
            tracing::warn!(object = %key, reason, error = %e, "could not publish an Event");
        }
    }
    let labels = super::metrics::ObjectLabels {
        kind: kind.clone(),
        namespace: ns.clone(),
        name: name.clone(),
    };
    if let Some(n) = out.managed {
        ctx.metrics
            .secrets_managed
            .get_or_create(&labels)
            .set(n as i64);
    }
    if matches!(out.verdict, Verdict::Synced { .. }) {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_secs_f64())
            .unwrap_or(0.0);
        ctx.metrics.last_success.get_or_create(&labels).set(now);
    }
    ctx.metrics
        .reconciled(&kind, label.as_deref(), started.elapsed().as_secs_f64());
    match out.error {
        Some(e) => {
            tracing::warn!(object = %key, error_kind = e.kind(), error = %e, "reconcile failed");
            Err(e)
        }
        None => {
            ctx.reset_backoff(&key);
            if let Some(c) = ready(Some(&next)) {
                tracing::info!(object = %key, ready = %c.status, reason = %c.reason, "reconciled");
            }
            Ok(out
                .requeue
                .map_or_else(Action::await_change, Action::requeue))
        }
    }
}

/// An error and its causes on one line: a transport error's own text ("client error
/// (SendRequest)") hides what went wrong, e.g. that the API server did not answer in
/// time (issue 16). Kubernetes errors carry no Secret values.
fn with_causes(e: &(dyn std::error::Error + 'static)) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let more = c.to_string();
        if !text.contains(&more) {
            text.push_str(": ");
            text.push_str(&more);
        }
        cause = c.source();
    }
    text
}

/// Reconciles one SecretSource.
pub async fn reconcile_source(obj: Arc<SecretSource>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let out = sync_source(&obj, &ctx).await;
    finish(obj.as_ref(), &ctx, out, started).await
}

/// Reconciles one SopsSecret.
pub async fn reconcile_sops_secret(
    obj: Arc<SopsSecret>,
    ctx: Arc<Context>,
) -> Result<Action, Error> {
    let started = Instant::now();
    let out = sync_sops_secret(&obj, &ctx).await;
    finish(obj.as_ref(), &ctx, out, started).await
}

/// Retries a failed reconcile with exponential backoff per object, never sooner than
/// a throttling API server's Retry-After.
pub fn error_policy<K: Resource<DynamicType = ()>>(
    obj: Arc<K>,
    err: &Error,
    ctx: Arc<Context>,
) -> Action {
    let backoff = ctx.backoff(&object_key(obj.as_ref()));
    Action::requeue(
        err.retry_after()
            .map_or(backoff, |after| after.max(backoff)),
    )
}

/// The names of the objects a Secret event maps back to is handled by ownerReferences;
/// this names the label that marks our Secrets for the owned-Secret watch.
pub fn owned_secret_selector() -> String {
    LABEL_OWNER_UID.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn intervals_parse_and_the_minimum_is_enforced() {
        let min = Duration::from_secs(10);
        assert_eq!(parse_interval("30s", min), Ok(Duration::from_secs(30)));
        assert_eq!(parse_interval("5m", min), Ok(Duration::from_secs(300)));
        assert_eq!(parse_interval("1h30m", min), Ok(Duration::from_secs(5400)));
        assert!(parse_interval("1s", min)
            .expect_err("too short")
            .contains("minimum"));
        for bad in ["", "5", "m", "5x", "-5m", "0s"] {
            assert!(parse_interval(bad, min).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_status_patch_clears_what_is_gone() {
        let p = status_patch(&SyncStatus::default());
        assert_eq!(p["status"]["inventory"], serde_json::json!([]));
        assert_eq!(p["status"]["lastAppliedRevision"], serde_json::Value::Null);
    }

    #[test]
    fn the_status_patch_clears_a_closed_debounce_window() {
        let closed = SyncStatus {
            rotation: Some(crate::controller::crd::RotationStatus {
                workloads_omitted: 1,
                ..Default::default()
            }),
            ..Default::default()
        };
        let p = status_patch(&closed);
        let rotation = &p["status"]["rotation"];
        for k in ["pendingSince", "secrets", "workloads"] {
            assert_eq!(rotation[k], serde_json::Value::Null, "{k}");
            assert!(
                rotation.as_object().is_some_and(|r| r.contains_key(k)),
                "{k}"
            );
        }
        assert_eq!(rotation["workloadsOmitted"], 1);
    }
}
