//! The InPlace strategy after a sync has written the Secrets: opens or joins the
//! debounce window, and when it closes, loads the digest key, restarts the selected
//! workloads ([`super::restart`]) and reports (status, Events, metrics). A restart
//! that fails is reported (`RestartFailed`), never a failed sync of the Secrets: they
//! are written either way, and the window stays open so the next sync retries.

use super::debounce::{due, window_start, Due, Window};
use super::digest::{secret_digest, Digest};
use super::restart::{self, RestartReport, Selection};
use crate::controller::context::Context;
use crate::controller::crd::{
    RestartPolicy, RolloutState, RotationSpec, RotationStatus, WorkloadRollout,
    MAX_WORKLOADS_IN_STATUS,
};
use crate::controller::metrics::{RestartLabels, RotationLabels};
use crate::repo::render::SecretData;
use k8s_openapi::jiff::Timestamp;
use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

/// What the sync hands over.
pub struct AfterSync<'a> {
    /// The owner's uid (the debounce window's key).
    pub owner_uid: &'a str,
    /// The owner's namespace (where its Secrets and workloads are).
    pub namespace: &'a str,
    /// `spec.rotation`.
    pub rotation: Option<&'a RotationSpec>,
    /// `status.rotation` before this sync.
    pub previous: Option<&'a RotationStatus>,
    /// Secrets (final names) whose decrypted content this sync changed.
    pub changed_now: BTreeSet<String>,
    /// The owner's Secrets in sync, by final name, with their data.
    pub secrets: Vec<(String, &'a SecretData)>,
    /// The time (a parameter, so the window logic stays testable).
    pub now: Timestamp,
}

/// What the sync reports of it.
#[derive(Debug, Default)]
pub struct AfterSyncOutcome {
    /// The new `status.rotation` (None: unchanged).
    pub status: Option<Option<RotationStatus>>,
    /// Sync again after this, at the latest (a window closing).
    pub requeue: Option<Duration>,
    /// Normal Events: (reason, note).
    pub events: Vec<(String, String)>,
    /// Why restarts failed (the `RestartFailed` message), if they did.
    pub failure: Option<String>,
}

/// Whether `rotation` asks for any restart at all.
pub fn wants_restarts(rotation: Option<&RotationSpec>) -> bool {
    let policy = rotation.map(|r| r.restart).unwrap_or_default();
    policy != RestartPolicy::None || rotation.is_some_and(|r| !r.restart_workloads.is_empty())
}

fn rfc3339(t: Timestamp) -> String {
    t.strftime("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The workloads of a rollout as the status lists them: failures first, then by kind
/// and name, at most [`MAX_WORKLOADS_IN_STATUS`] (the rest counted).
fn rollout_status(report: &RestartReport, now: &str) -> (Vec<WorkloadRollout>, u32) {
    let mut list: Vec<WorkloadRollout> = report
        .failures
        .iter()
        .map(|f| WorkloadRollout {
            kind: f.workload.kind,
            name: f.workload.name.clone(),
            state: RolloutState::Failed,
            last_restart: None,
            message: Some(f.message.chars().take(300).collect()),
            switched: Vec::new(),
        })
        .collect();
    let mut restarted: Vec<WorkloadRollout> = report
        .restarted
        .iter()
        .map(|r| WorkloadRollout {
            kind: r.workload.kind,
            name: r.workload.name.clone(),
            state: RolloutState::Restarted,
            last_restart: Some(now.to_string()),
            message: None,
            switched: Vec::new(),
        })
        .collect();
    restarted.sort_by(|a, b| (a.kind, &a.name).cmp(&(b.kind, &b.name)));
    list.extend(restarted);
    let omitted = list.len().saturating_sub(MAX_WORKLOADS_IN_STATUS);
    list.truncate(MAX_WORKLOADS_IN_STATUS);
    (list, u32::try_from(omitted).unwrap_or(u32::MAX))
}

/// Runs the InPlace restarts due after a sync (see the module docs).
pub async fn after_sync(ctx: &Context, input: AfterSync<'_>) -> AfterSyncOutcome {
    let mut out = AfterSyncOutcome::default();
    let rotation = input.rotation;
    if !wants_restarts(rotation) {
        // Restarts were turned off while a window was open: it closes unused.
        ctx.pending_restarts.set(input.owner_uid, Window::default());
        if let Some(p) = input.previous.filter(|p| p.pending_since.is_some()) {
            let status = RotationStatus {
                pending_since: None,
                ..p.clone()
            };
            out.status = Some((status != RotationStatus::default()).then_some(status));
        }
        return out;
    }
    let policy = rotation.map(|r| r.restart).unwrap_or_default();
    let explicit = rotation.map_or(&[][..], |r| &r.restart_workloads[..]);
    if !ctx.config.workload_restarts {
        // Annotated is the default and needs the workloads read to find who opted in:
        // with restarts off at the controller, it is quietly off. Asking for restarts
        // explicitly on such a controller is a setup error worth reporting.
        if !input.changed_now.is_empty() && (policy == RestartPolicy::Auto || !explicit.is_empty())
        {
            out.failure = Some(
                "spec.rotation asks for workload restarts, but the controller runs without --workload-restarts (chart: rotation.workloadRestarts.enabled=true); the Secrets were updated, nothing was restarted".into(),
            );
        }
        return out;
    }
    let previous = input.previous.cloned().unwrap_or_default();
    let from_status = previous
        .pending_since
        .as_deref()
        .and_then(|t| t.parse::<Timestamp>().ok());
    let remembered = ctx.pending_restarts.get(input.owner_uid);
    let since = window_start(
        [remembered.since, from_status],
        !input.changed_now.is_empty(),
        input.now,
    );
    let mut changed = remembered.changed;
    changed.extend(input.changed_now.iter().cloned());
    if changed.is_empty() && since.is_some() {
        // Opened by another replica (or before a restart of this one): which Secrets
        // changed is not known here, so every one counts; the digest comparison still
        // leaves alone each workload whose pods already run with the current values.
        changed = input.secrets.iter().map(|(n, _)| n.clone()).collect();
    }
    let window = super::debounce_of(rotation, ctx.config.rotation_debounce)
        .unwrap_or(ctx.config.rotation_debounce);
    let pending_status = |since: Option<Timestamp>| {
        Some(Some(RotationStatus {
            pending_since: since.map(rfc3339),
            ..previous.clone()
        }))
    };
    match due(since, window, input.now) {
        Due::Nothing => return out,
        Due::Wait(left) => {
            ctx.pending_restarts
                .set(input.owner_uid, Window { since, changed });
            out.status = pending_status(since);
            out.requeue = Some(left);
            return out;
        }
        Due::Now => {}
    }
    let keep_open = |out: &mut AfterSyncOutcome, changed: BTreeSet<String>, failure: String| {
        ctx.pending_restarts
            .set(input.owner_uid, Window { since, changed });
        out.failure = Some(failure);
    };
    let key = match super::digest_key::load_or_create(
        &ctx.client,
        &ctx.config.own_namespace,
        &ctx.config.digest_key_secret,
    )
    .await
    {
        Ok(k) => k,
        Err(e) => {
            keep_open(&mut out, changed, e.to_string());
            out.status = pending_status(since);
            return out;
        }
    };
    let digests: BTreeMap<String, Digest> = input
        .secrets
        .iter()
        .map(|(name, data)| (name.clone(), secret_digest(&key, input.namespace, &data.0)))
        .collect();
    let selection = Selection {
        policy,
        explicit,
        changed: &changed,
    };
    let report = restart::run(&ctx.client, input.namespace, &key, selection, &digests).await;
    drop(key);
    let now = rfc3339(input.now);
    for r in &report.restarted {
        ctx.metrics
            .workload_restarts
            .get_or_create(&RestartLabels {
                kind: r.workload.kind.as_str().into(),
                result: "success".into(),
            })
            .inc();
    }
    for f in &report.failures {
        ctx.metrics
            .workload_restarts
            .get_or_create(&RestartLabels {
                kind: f.workload.kind.as_str().into(),
                result: "error".into(),
            })
            .inc();
    }
    const MAX_EVENTS: usize = 10;
    for r in report.restarted.iter().take(MAX_EVENTS) {
        let because = if r.because.is_empty() {
            "a Secret of this object changed".to_string()
        } else {
            format!("Secret(s) {} changed", r.because.join(", "))
        };
        out.events.push((
            "Restarted".into(),
            format!(
                "restarted {} {}/{}: {because}",
                r.workload.kind.as_str(),
                input.namespace,
                r.workload.name
            ),
        ));
    }
    if report.restarted.len() > MAX_EVENTS {
        out.events.push((
            "Restarted".into(),
            format!(
                "and {} more workload(s) restarted",
                report.restarted.len() - MAX_EVENTS
            ),
        ));
    }
    if !report.restarted.is_empty() {
        let labels = RotationLabels {
            strategy: "InPlace".into(),
        };
        ctx.metrics.rotations.get_or_create(&labels).inc();
        if let Some(s) = since {
            let took = s.duration_until(input.now).as_secs_f64().max(0.0);
            ctx.metrics
                .rollout_duration
                .get_or_create(&labels)
                .observe(took);
        }
    }
    let mut status = previous.clone();
    if !report.restarted.is_empty() || !report.failures.is_empty() {
        let (workloads, omitted) = rollout_status(&report, &now);
        status.workloads = workloads;
        status.workloads_omitted = omitted;
    }
    if report.failures.is_empty() {
        ctx.pending_restarts.set(input.owner_uid, Window::default());
        status.pending_since = None;
    } else {
        let messages: Vec<String> = report.failures.iter().map(|f| f.message.clone()).collect();
        let mut text = messages
            .iter()
            .take(3)
            .cloned()
            .collect::<Vec<_>>()
            .join("; ");
        if messages.len() > 3 {
            text.push_str(&format!("; and {} more", messages.len() - 3));
        }
        keep_open(
            &mut out,
            changed,
            format!(
                "the Secrets were updated, but {} workload restart(s) failed: {text}",
                messages.len()
            ),
        );
        status.pending_since = since.map(rfc3339);
    }
    out.status = Some((status != RotationStatus::default()).then_some(status));
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::crd::{WorkloadKind, WorkloadRef};
    use crate::controller::rotation::restart::{Restart, RestartFailure};

    #[test]
    fn the_status_lists_failures_first_and_counts_what_it_leaves_out() {
        let w = |name: String| WorkloadRef {
            kind: WorkloadKind::Deployment,
            name,
        };
        let report = RestartReport {
            restarted: (0..60)
                .map(|i| Restart {
                    workload: w(format!("app-{i:02}")),
                    digest_hex: "x".into(),
                    because: vec![],
                })
                .collect(),
            failures: vec![RestartFailure {
                workload: w("gone".into()),
                message: "Deployment ns/gone not found".into(),
            }],
        };
        let (list, omitted) = rollout_status(&report, "2026-01-01T00:00:00Z");
        assert_eq!(list.len(), MAX_WORKLOADS_IN_STATUS);
        assert_eq!(omitted, 11);
        assert_eq!(list[0].state, RolloutState::Failed);
        assert_eq!(list[1].name, "app-00");
    }

    #[test]
    fn restarts_are_wanted_unless_none_and_no_names() {
        assert!(wants_restarts(None));
        let none = RotationSpec {
            restart: RestartPolicy::None,
            ..Default::default()
        };
        assert!(!wants_restarts(Some(&none)));
        let named = RotationSpec {
            restart: RestartPolicy::None,
            restart_workloads: vec![WorkloadRef {
                kind: WorkloadKind::CronJob,
                name: "report".into(),
            }],
            ..Default::default()
        };
        assert!(wants_restarts(Some(&named)));
    }
}
