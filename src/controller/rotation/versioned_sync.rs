//! The Versioned strategy's part of a sync: the I/O around the pure decisions of
//! [`super::versioned`] and [`super::rollout`].
//!
//! A sync under `strategy: Versioned` (1) writes each Secret from Git as an immutable
//! version `<name>-<keyed suffix>` (and the plain `<name>` with `keepPlainSecret`),
//! (2) switches every reference of each selected workload to the new versions in one
//! patch, (3) looks at the rollouts it started (never waiting for them: the reconcile
//! requeues after [`ROLLOUT_POLL`] while one runs), fails them after the progress
//! deadline or `rolloutTimeout` and, with `rollbackOnFailure`, switches them back, and
//! (4) deletes an old version only when [`versioned::retention`] lets it go, that is
//! when no pod template in the namespace (revision history included) names it and no
//! rollout away from it is unfinished.
//!
//! Errors: a workload that is missing or that the controller may not read or patch is
//! reported (Degraded `RestartFailed`), never a failed sync of the Secrets. When the pod
//! templates of the namespace cannot be listed, nothing is deleted.
//!
//! Security: only names (of Secrets, versions and workloads) reach the status, Events
//! and logs; version names carry a keyed digest.
//!
//! Step 4 lives in [`super::versioned_gc`].

use super::restart::watched;
use super::rollout::{self, Progress};
use super::versioned::{self, Version};
use crate::controller::apply::{LiveSecret, Owner, Plan};
use crate::controller::context::Context;
use crate::controller::crd::{
    InventoryEntry, RestartPolicy, RolloutState, RotationSpec, RotationStatus, SwitchedRef,
    WorkloadKind, WorkloadRef, WorkloadRollout, MAX_WORKLOADS_IN_STATUS,
};
use crate::controller::metrics::{RestartLabels, RotationLabels};
use crate::repo::render::DesiredSecret;
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use kube::api::{Api, ApiResource, DynamicObject, Patch, PatchParams};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// `spec.rotation.rolloutTimeout` when unset, for the kinds that have no progress
/// deadline of their own (StatefulSet, DaemonSet, CronJob). A Deployment then fails by
/// its `progressDeadlineSeconds` alone (default 600 s, set by the Deployment controller).
pub const DEFAULT_ROLLOUT_TIMEOUT: Duration = Duration::from_secs(15 * 60);
/// How soon a sync looks again while a rollout it started is still running.
pub const ROLLOUT_POLL: Duration = Duration::from_secs(5);
/// Why a named workload could not be switched: it does not exist.
const NOT_FOUND: &str = "not found";
/// The field manager of the reference switches (the workload's other fields keep
/// theirs; GitOps tools can ignore exactly these paths, docs/rotation.md).
pub const SWITCH_MANAGER: &str = "sopsync-rotation";

/// One Secret from Git under the Versioned strategy.
#[derive(Clone, Debug)]
pub(super) struct Logical {
    /// Its name as written (name prefix included): what workloads first reference.
    pub(super) name: String,
    /// Its current version, as written (prefix included).
    pub(super) current: String,
    /// Its current version without the prefix (the desired Secret's name).
    current_unprefixed: String,
}

/// The Versioned strategy for one sync.
#[derive(Debug)]
pub struct Versioning {
    pub(super) retain: u32,
    keep_plain: bool,
    rollback: bool,
    timeout: Option<Duration>,
    policy: RestartPolicy,
    workloads: Vec<WorkloadRef>,
    pub(super) secrets: Vec<Logical>,
}

fn versioned() -> RotationLabels {
    RotationLabels {
        strategy: "Versioned".into(),
    }
}

/// What the rollout part of a sync did.
#[derive(Debug, Default)]
pub struct Rolled {
    /// The new `status.rotation`.
    pub status: RotationStatus,
    /// Normal Events (reason, note).
    pub events: Vec<(String, String)>,
    /// Rollouts that failed (the `RolloutFailed` message), if any.
    pub failed: Option<String>,
    /// Workloads that could not be read or switched (the `RestartFailed` message).
    pub restart_failed: Option<String>,
    /// A rollout is still running: look again soon.
    pub progressing: bool,
    /// Names to add to the inventory: old versions kept and held Secrets not deleted.
    pub inventory: Vec<InventoryEntry>,
    /// How many Secrets were deleted.
    pub deleted: usize,
    /// This sync's time (RFC 3339), the `lastRestart` of the switches it makes.
    now: String,
}

impl Versioning {
    /// The strategy for `desired` (Secret names without the prefix). `version_name`
    /// gives a desired Secret's version name (`<name>-<keyed suffix>`).
    pub fn new(
        spec: &RotationSpec,
        prefix: &str,
        desired: &[DesiredSecret],
        version_name: impl Fn(&DesiredSecret) -> String,
        timeout: Option<Duration>,
    ) -> Versioning {
        let secrets = desired
            .iter()
            .map(|d| {
                let v = version_name(d);
                Logical {
                    name: format!("{prefix}{}", d.name),
                    current: format!("{prefix}{v}"),
                    current_unprefixed: v,
                }
            })
            .collect();
        Versioning {
            retain: super::retain_of(Some(spec)),
            keep_plain: spec.keep_plain_secret,
            rollback: spec.rollback_on_failure,
            timeout,
            policy: spec.restart,
            workloads: spec.restart_workloads.clone(),
            secrets,
        }
    }

    /// The Secret names this sync writes (for the conflict check of the live list).
    pub fn wanted(&self) -> Vec<String> {
        let mut out: Vec<String> = self.secrets.iter().map(|l| l.current.clone()).collect();
        if self.keep_plain {
            out.extend(self.secrets.iter().map(|l| l.name.clone()));
        }
        out
    }

    /// The Secrets to write: each desired one as its current version (serial from the
    /// live versions), plus the plain one with `keepPlainSecret`.
    pub fn desired(
        &self,
        owner: &Owner,
        desired: Vec<DesiredSecret>,
        live: &BTreeMap<String, LiveSecret>,
    ) -> Vec<DesiredSecret> {
        let mut out = Vec::with_capacity(desired.len() * 2);
        for (d, l) in desired.into_iter().zip(&self.secrets) {
            let versions = versioned::live_versions(owner, &l.name, live);
            let serial = versioned::serial_for(&l.current, &versions);
            out.push(versioned::version_secret(
                &d,
                &l.name,
                &l.current_unprefixed,
                serial,
            ));
            if self.keep_plain {
                out.push(d);
            }
        }
        out
    }

    /// Makes the version writes immutable and takes the plan's deletions: under this
    /// strategy a Secret leaves only by [`Versioning::roll`]'s rules. Returns them, and
    /// whether a version is written now (a new content, or an old one back).
    pub fn adjust(&self, plan: &mut Plan) -> (Vec<String>, bool) {
        let versions: BTreeSet<&str> = self.secrets.iter().map(|l| l.current.as_str()).collect();
        let mut fresh = false;
        for w in plan.writes.iter_mut() {
            if versions.contains(w.name.as_str()) {
                versioned::seal(&mut w.body);
                fresh = true;
            }
        }
        (std::mem::take(&mut plan.prune), fresh)
    }

    /// When writes failed: nothing is switched or deleted, and every old version and
    /// held Secret stays in the inventory.
    pub fn hold_all(
        &self,
        owner: &Owner,
        live: &BTreeMap<String, LiveSecret>,
        held: Vec<String>,
    ) -> Vec<InventoryEntry> {
        let mut names: BTreeSet<String> = held.into_iter().collect();
        for l in &self.secrets {
            names.extend(
                versioned::live_versions(owner, &l.name, live)
                    .into_iter()
                    .map(|v| v.name),
            );
        }
        names
            .into_iter()
            .map(|name| InventoryEntry { name })
            .collect()
    }

    /// Switches, watches and collects (steps 2 to 4 of the module docs). Runs after
    /// every version was written; `fresh` when a version was written now.
    pub async fn roll(
        &self,
        ctx: &Context,
        owner: &Owner,
        live: &BTreeMap<String, LiveSecret>,
        previous: Option<&RotationStatus>,
        (held, fresh): (Vec<String>, bool),
        synced: &BTreeSet<String>,
    ) -> Rolled {
        let mut out = Rolled {
            now: now_rfc3339(),
            ..Rolled::default()
        };
        if !ctx.config.workload_restarts {
            // Without the workload RBAC nothing can be switched, and no pod template
            // can be read: every version stays.
            if !self.workloads.is_empty() || self.policy == RestartPolicy::Auto {
                out.restart_failed = Some(
                    "spec.rotation strategy Versioned switches workloads, but the controller runs without --workload-restarts (chart: rotation.workloadRestarts.enabled=true); the versions were written, nothing was switched or deleted".into(),
                );
            }
            out.inventory = self.hold_all(owner, live, held);
            out.status = previous.cloned().unwrap_or_default();
            return out;
        }
        let versions: Vec<Vec<Version>> = self
            .secrets
            .iter()
            .map(|l| versioned::live_versions(owner, &l.name, live))
            .collect();
        let mut renames: BTreeMap<String, String> = BTreeMap::new();
        // Only towards a version that is there and ours (not a conflict or a denial).
        for (l, vs) in self
            .secrets
            .iter()
            .zip(&versions)
            .filter(|(l, _)| synced.contains(&l.current))
        {
            renames.insert(l.name.clone(), l.current.clone());
            for v in vs {
                renames.insert(v.name.clone(), l.current.clone());
            }
        }
        let before: BTreeMap<(WorkloadKind, String), WorkloadRollout> = previous
            .map(|p| p.workloads.clone())
            .unwrap_or_default()
            .into_iter()
            .map(|r| ((r.kind, r.name.clone()), r))
            .collect();
        let mut records: Vec<WorkloadRollout> = Vec::new();
        let mut failures: Vec<String> = Vec::new();
        let mut unreachable: Vec<String> = Vec::new();
        let selected = self
            .selection(ctx, owner, &renames, &before, fresh, &mut unreachable)
            .await;
        let mut switched_any = false;
        let explicit: BTreeSet<&WorkloadRef> = self.workloads.iter().collect();
        for w in &selected {
            let record = before.get(&(w.kind, w.name.clone())).cloned();
            match self
                .roll_one(ctx, owner, w, record, &renames, &mut out)
                .await
            {
                Ok(Some(r)) => {
                    switched_any |= r.state == RolloutState::Progressing
                        && r.last_restart.as_deref() == Some(out.now.as_str());
                    if r.state == RolloutState::Failed || r.state == RolloutState::RolledBack {
                        failures.push(format!(
                            "{}/{}: {}",
                            r.kind.as_str(),
                            r.name,
                            r.message.clone().unwrap_or_default()
                        ));
                    }
                    records.push(r);
                }
                Ok(None) => {}
                // A workload switched before and deleted since: forgotten.
                Err(why) if why == NOT_FOUND && !explicit.contains(w) => {}
                Err(why) => unreachable.push(format!("{}/{}: {why}", w.kind.as_str(), w.name)),
            }
        }
        if switched_any {
            ctx.metrics.rotations.get_or_create(&versioned()).inc();
        }
        if !failures.is_empty() {
            out.failed = Some(format!(
                "{} rollout(s) failed; the previous version is kept: {}",
                failures.len(),
                failures.join("; ")
            ));
        }
        if !unreachable.is_empty() {
            out.restart_failed = Some(format!(
                "{} workload(s) could not be switched to the new version: {}",
                unreachable.len(),
                unreachable.join("; ")
            ));
        }
        // A version some workload is still moving away from (or failed to) stays.
        let unsettled: BTreeSet<String> = records
            .iter()
            .filter(|r| matches!(r.state, RolloutState::Progressing | RolloutState::Failed))
            .flat_map(|r| r.switched.iter().map(|s| s.from.clone()))
            .collect();
        self.collect(
            ctx, owner, live, &versions, held, &unsettled, synced, &mut out,
        )
        .await;
        // Failures first (crd.rs), so a cut list still shows them.
        let failed_first = |r: &WorkloadRollout| {
            !matches!(r.state, RolloutState::Failed | RolloutState::RolledBack)
        };
        records.sort_by(|a, b| {
            (failed_first(a), a.kind, &a.name).cmp(&(failed_first(b), b.kind, &b.name))
        });
        if records.len() > MAX_WORKLOADS_IN_STATUS {
            out.status.workloads_omitted = (records.len() - MAX_WORKLOADS_IN_STATUS) as u32;
            records.truncate(MAX_WORKLOADS_IN_STATUS);
        }
        out.status.workloads = records;
        out
    }

    /// The workloads this sync looks at: those in `restartWorkloads`, those it switched
    /// before (their rollouts are followed), and, when a version was written now, those
    /// `spec.rotation.restart` selects (restart.rs: opted in by annotation, or `Auto`)
    /// among the workloads that use the Secret or one of its versions.
    async fn selection(
        &self,
        ctx: &Context,
        owner: &Owner,
        renames: &BTreeMap<String, String>,
        before: &BTreeMap<(WorkloadKind, String), WorkloadRollout>,
        fresh: bool,
        unreachable: &mut Vec<String>,
    ) -> BTreeSet<WorkloadRef> {
        let mut out: BTreeSet<WorkloadRef> = self.workloads.iter().cloned().collect();
        out.extend(before.keys().map(|(kind, name)| WorkloadRef {
            kind: *kind,
            name: name.clone(),
        }));
        if fresh && self.policy != RestartPolicy::None {
            let ours: BTreeSet<String> = renames.keys().cloned().collect();
            let policy = self.policy;
            let (found, errors) = super::workloads::list(&ctx.client, &owner.namespace, |w| {
                !watched(policy, w).is_disjoint(&ours)
            })
            .await;
            out.extend(found.into_iter().map(|w| w.workload));
            for (kind, e) in errors {
                unreachable.push(format!("listing {}s: {}", kind.as_str(), api_reason(&e)));
            }
        }
        out
    }

    /// One workload: the rollout it is in (checked, failed, rolled back) and its switch
    /// to the current versions. `Err` names why it could not be read or patched.
    async fn roll_one(
        &self,
        ctx: &Context,
        owner: &Owner,
        w: &WorkloadRef,
        record: Option<WorkloadRollout>,
        renames: &BTreeMap<String, String>,
        out: &mut Rolled,
    ) -> Result<Option<WorkloadRollout>, String> {
        let kind = w.kind.as_str();
        let ar = workload_resource(w.kind);
        let api: Api<DynamicObject> =
            Api::namespaced_with(ctx.client.clone(), &owner.namespace, &ar);
        let obj = match api.get_opt(&w.name).await {
            Ok(Some(o)) => serde_json::to_value(o).unwrap_or_default(),
            Ok(None) => return Err(NOT_FOUND.into()),
            Err(e) => return Err(api_reason(&e)),
        };
        let mut record = record;
        if let Some(r) = record.as_mut() {
            if matches!(r.state, RolloutState::Progressing | RolloutState::Failed) {
                self.check(ctx, &api, &obj, r, out).await;
            }
        }
        let Some(switch) = versioned::switch_patch(kind, &obj, renames) else {
            return Ok(record);
        };
        // Do not fight a failed rollout: the same switch waits for new content.
        if let Some(r) = &record {
            let tried: BTreeSet<&String> = r.switched.iter().map(|s| &s.to).collect();
            if matches!(r.state, RolloutState::Failed | RolloutState::RolledBack)
                && switch.pairs.iter().all(|(_, to)| tried.contains(to))
            {
                return Ok(record);
            }
        }
        let patch: Patch<()> = match serde_json::from_value(switch.patch.clone()) {
            Ok(p) => Patch::Json(p),
            Err(e) => return Err(format!("internal: the switch patch is invalid: {e}")),
        };
        match api
            .patch(&w.name, &PatchParams::apply(SWITCH_MANAGER), &patch)
            .await
        {
            Ok(_) => {}
            // Changed since it was read (the resourceVersion test failed): next time.
            Err(kube::Error::Api(s)) if s.code == 409 || s.code == 422 => {
                out.progressing = true;
                return Ok(record);
            }
            Err(e) => {
                restart_metric(ctx, w.kind, "error");
                return Err(api_reason(&e));
            }
        }
        restart_metric(ctx, w.kind, "success");
        out.progressing = true;
        // Versions an unfinished earlier switch moved away from stay unsettled.
        let mut switched: Vec<SwitchedRef> = record
            .filter(|r| r.state != RolloutState::Complete)
            .map(|r| r.switched)
            .unwrap_or_default();
        for (from, to) in &switch.pairs {
            switched.push(SwitchedRef {
                from: from.clone(),
                to: to.clone(),
            });
        }
        switched.sort_by(|a, b| (&a.from, &a.to).cmp(&(&b.from, &b.to)));
        switched.dedup();
        out.events.push((
            "Switched".into(),
            format!(
                "{kind}/{}: references switched to {}",
                w.name,
                describe(&switch.pairs)
            ),
        ));
        Ok(Some(WorkloadRollout {
            kind: w.kind,
            name: w.name.clone(),
            state: RolloutState::Progressing,
            last_restart: Some(out.now.clone()),
            message: Some("switched; waiting for the rollout".into()),
            switched,
        }))
    }

    /// Updates a running (or failed) rollout from the workload's status.
    async fn check(
        &self,
        ctx: &Context,
        api: &Api<DynamicObject>,
        obj: &Value,
        r: &mut WorkloadRollout,
        out: &mut Rolled,
    ) {
        let progress = match progress_of(r.kind, obj) {
            Some(p) => p,
            None => Progress::Waiting("the workload's status could not be read".into()),
        };
        let elapsed = elapsed_since(r.last_restart.as_deref().unwrap_or_default());
        let timeout = match (self.timeout, r.kind) {
            (Some(t), _) => Some(t),
            // A Deployment has its own deadline (the ProgressDeadlineExceeded reason).
            (None, WorkloadKind::Deployment) => None,
            (None, _) => Some(DEFAULT_ROLLOUT_TIMEOUT),
        };
        let judged = match timeout {
            Some(t) => rollout::judge(progress, elapsed, t),
            None => progress,
        };
        let was = r.state;
        match judged {
            Progress::Complete => {
                ctx.metrics
                    .rollout_duration
                    .get_or_create(&versioned())
                    .observe(elapsed.as_secs_f64());
                r.state = RolloutState::Complete;
                r.message = None;
                r.switched.clear();
                out.events.push((
                    "RolloutComplete".into(),
                    format!("{}/{}: rollout complete", r.kind.as_str(), r.name),
                ));
            }
            Progress::Waiting(why) => {
                out.progressing = true;
                if was == RolloutState::Progressing {
                    r.message = Some(why);
                }
            }
            Progress::Failed(why) if was == RolloutState::Progressing => {
                ctx.metrics
                    .rollouts_failed
                    .get_or_create(&versioned())
                    .inc();
                r.state = RolloutState::Failed;
                r.message = Some(why);
                if self.rollback {
                    self.roll_back(api, obj, r, out).await;
                }
            }
            // Still failed: keep watching in case it recovers.
            Progress::Failed(_) => out.progressing = true,
        }
    }

    /// Points a failed workload's references back at the versions it used before.
    async fn roll_back(
        &self,
        api: &Api<DynamicObject>,
        obj: &Value,
        r: &mut WorkloadRollout,
        out: &mut Rolled,
    ) {
        // Each new version goes back to the newest name it replaced.
        let back: BTreeMap<String, String> = r
            .switched
            .iter()
            .rev()
            .map(|s| (s.to.clone(), s.from.clone()))
            .collect();
        let Some(switch) = versioned::switch_patch(r.kind.as_str(), obj, &back) else {
            return;
        };
        let patch: Patch<()> = match serde_json::from_value(switch.patch) {
            Ok(p) => Patch::Json(p),
            Err(_) => return,
        };
        match api
            .patch(&r.name, &PatchParams::apply(SWITCH_MANAGER), &patch)
            .await
        {
            Ok(_) => {
                r.state = RolloutState::RolledBack;
                out.events.push((
                    "RolledBack".into(),
                    format!(
                        "{}/{}: references switched back to {}",
                        r.kind.as_str(),
                        r.name,
                        describe(&switch.pairs)
                    ),
                ));
            }
            Err(e) => {
                tracing::warn!(kind = r.kind.as_str(), name = %r.name, error = %api_reason(&e), "could not switch a failed rollout back");
                out.progressing = true;
            }
        }
    }
}

fn restart_metric(ctx: &Context, kind: WorkloadKind, result: &str) {
    ctx.metrics
        .workload_restarts
        .get_or_create(&RestartLabels {
            kind: kind.as_str().into(),
            result: result.into(),
        })
        .inc();
}

/// The `ApiResource` of a workload kind sopsync switches.
fn workload_resource(kind: WorkloadKind) -> ApiResource {
    match kind {
        WorkloadKind::Deployment => ApiResource::erase::<Deployment>(&()),
        WorkloadKind::StatefulSet => ApiResource::erase::<StatefulSet>(&()),
        WorkloadKind::DaemonSet => ApiResource::erase::<DaemonSet>(&()),
        WorkloadKind::CronJob => ApiResource::erase::<CronJob>(&()),
    }
}

/// The rollout progress of a workload read as JSON.
fn progress_of(kind: WorkloadKind, obj: &Value) -> Option<Progress> {
    let v = obj.clone();
    Some(match kind {
        WorkloadKind::Deployment => rollout::deployment(&serde_json::from_value(v).ok()?),
        WorkloadKind::StatefulSet => rollout::stateful_set(&serde_json::from_value(v).ok()?),
        WorkloadKind::DaemonSet => rollout::daemon_set(&serde_json::from_value(v).ok()?),
        WorkloadKind::CronJob => rollout::cron_job(&serde_json::from_value(v).ok()?),
    })
}

/// A short reason for an API failure (the server's message carries names, no values).
pub(super) fn api_reason(e: &kube::Error) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => {
            format!(
                "not permitted ({}); see the chart's rotation RBAC",
                s.message
            )
        }
        kube::Error::Api(s) => format!("{} ({})", s.message, s.code),
        other => other.to_string(),
    }
}

/// `a -> b, c -> d`.
fn describe(pairs: &[(String, String)]) -> String {
    pairs
        .iter()
        .map(|(f, t)| format!("{t} (was {f})"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn now_rfc3339() -> String {
    k8s_openapi::jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Time since an RFC 3339 instant (zero when it cannot be read: then the timeout
/// starts over rather than failing a rollout early).
fn elapsed_since(started: &str) -> Duration {
    let Ok(t) = started.parse::<k8s_openapi::jiff::Timestamp>() else {
        return Duration::ZERO;
    };
    let now = k8s_openapi::jiff::Timestamp::now();
    Duration::from_secs(now.as_second().saturating_sub(t.as_second()).max(0) as u64)
}
