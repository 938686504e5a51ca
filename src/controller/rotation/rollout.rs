//! Whether a workload has finished rolling out, as pure functions of the object the API
//! server returns (no I/O, no clock: the caller passes how long the rollout has run).
//!
//! The rules are those of `kubectl rollout status`, so that "complete" here means what
//! an operator watching the rollout would see: k8s.io/kubectl
//! pkg/polymorphichelpers/rollout_status.go (`DeploymentStatusViewer`,
//! `StatefulSetStatusViewer`, `DaemonSetStatusViewer`). The Versioned strategy deletes
//! an old Secret version only after every workload that used it is [`Progress::Complete`],
//! and keeps it (and may switch back) when a rollout [`Progress::Failed`] or timed out.
//!
//! Where kubectl cannot tell (the `OnDelete` update strategy of a StatefulSet or
//! DaemonSet: kubectl answers "done" with an error), this module answers `Waiting`:
//! pods replaced only by hand may still mount the old version, so it is never called
//! complete on our side.

use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use std::time::Duration;

/// How far a workload's rollout has come.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Progress {
    /// Every replica runs the current pod template and is available.
    Complete,
    /// Still rolling out; why, in counts (never a value).
    Waiting(String),
    /// Will not complete by itself (the Deployment's progress deadline passed).
    Failed(String),
}

/// The `Progressing` condition reason the Deployment controller sets when
/// `spec.progressDeadlineSeconds` passed without progress (deploymentutil.TimedOutReason).
pub const PROGRESS_DEADLINE_EXCEEDED: &str = "ProgressDeadlineExceeded";

/// A Deployment, by `DeploymentStatusViewer.Status`: the controller has observed the
/// current generation, the progress deadline has not passed, every desired replica is
/// updated, no old replica is left, and every updated replica is available.
pub fn deployment(d: &Deployment) -> Progress {
    let generation = d.metadata.generation.unwrap_or(0);
    let Some(status) = d.status.as_ref() else {
        return Progress::Waiting("the Deployment controller has not reported a status".into());
    };
    // rollout_status.go: `deployment.Generation <= deployment.Status.ObservedGeneration`.
    if generation > status.observed_generation.unwrap_or(0) {
        return Progress::Waiting("waiting for the spec update to be observed".into());
    }
    let timed_out = status.conditions.iter().flatten().any(|c| {
        c.type_ == "Progressing" && c.reason.as_deref() == Some(PROGRESS_DEADLINE_EXCEEDED)
    });
    if timed_out {
        return Progress::Failed("the Deployment exceeded its progress deadline".into());
    }
    let updated = status.updated_replicas.unwrap_or(0);
    let replicas = status.replicas.unwrap_or(0);
    let available = status.available_replicas.unwrap_or(0);
    // spec.replicas defaults to 1 in the API server; an absent value is that default.
    let desired = d.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
    if updated < desired {
        return Progress::Waiting(format!(
            "{updated} of {desired} new replicas have been updated"
        ));
    }
    if replicas > updated {
        return Progress::Waiting(format!(
            "{} old replicas are pending termination",
            replicas - updated
        ));
    }
    if available < updated {
        return Progress::Waiting(format!(
            "{available} of {updated} updated replicas are available"
        ));
    }
    Progress::Complete
}

/// A StatefulSet, by `StatefulSetStatusViewer.Status`: observed, every desired replica
/// ready, and then either the partition's share updated (partitioned rolling update) or
/// the update revision equal to the current one.
pub fn stateful_set(s: &StatefulSet) -> Progress {
    let spec = s.spec.as_ref();
    let strategy = spec.and_then(|s| s.update_strategy.as_ref());
    if strategy.and_then(|u| u.type_.as_deref()) == Some("OnDelete") {
        return Progress::Waiting(
            "the StatefulSet uses the OnDelete update strategy: its pods change only when deleted by hand".into(),
        );
    }
    let Some(status) = s.status.as_ref() else {
        return Progress::Waiting("the StatefulSet controller has not reported a status".into());
    };
    let observed = status.observed_generation.unwrap_or(0);
    if observed == 0 || s.metadata.generation.unwrap_or(0) > observed {
        return Progress::Waiting("waiting for the spec update to be observed".into());
    }
    let desired = spec.and_then(|s| s.replicas).unwrap_or(1);
    let ready = status.ready_replicas.unwrap_or(0);
    if ready < desired {
        return Progress::Waiting(format!("{} pods are not ready", desired - ready));
    }
    if let Some(partition) = strategy
        .and_then(|u| u.rolling_update.as_ref())
        .and_then(|r| r.partition)
    {
        let updated = status.updated_replicas.unwrap_or(0);
        if updated < desired - partition {
            return Progress::Waiting(format!(
                "{updated} of {} pods above the partition have been updated",
                desired - partition
            ));
        }
        return Progress::Complete;
    }
    if status.update_revision != status.current_revision {
        return Progress::Waiting(format!(
            "{} pods run the update revision",
            status.updated_replicas.unwrap_or(0)
        ));
    }
    Progress::Complete
}

/// A DaemonSet, by `DaemonSetStatusViewer.Status`: observed, every scheduled node runs
/// an updated pod, and as many pods are available.
pub fn daemon_set(d: &DaemonSet) -> Progress {
    let strategy = d
        .spec
        .as_ref()
        .and_then(|s| s.update_strategy.as_ref())
        .and_then(|u| u.type_.as_deref());
    if strategy == Some("OnDelete") {
        return Progress::Waiting(
            "the DaemonSet uses the OnDelete update strategy: its pods change only when deleted by hand".into(),
        );
    }
    let Some(status) = d.status.as_ref() else {
        return Progress::Waiting("the DaemonSet controller has not reported a status".into());
    };
    if d.metadata.generation.unwrap_or(0) > status.observed_generation.unwrap_or(0) {
        return Progress::Waiting("waiting for the spec update to be observed".into());
    }
    let desired = status.desired_number_scheduled;
    let updated = status.updated_number_scheduled.unwrap_or(0);
    if updated < desired {
        return Progress::Waiting(format!("{updated} of {desired} new pods have been updated"));
    }
    let available = status.number_available.unwrap_or(0);
    if available < desired {
        return Progress::Waiting(format!(
            "{available} of {desired} updated pods are available"
        ));
    }
    Progress::Complete
}

/// A CronJob has no rollout (kubectl has no status viewer for it): its next Job uses the
/// new template. Jobs still running were started from the old one, so it is complete
/// once none is active.
pub fn cron_job(c: &CronJob) -> Progress {
    let active = c
        .status
        .as_ref()
        .and_then(|s| s.active.as_ref())
        .map_or(0, Vec::len);
    if active > 0 {
        return Progress::Waiting(format!(
            "{active} Job(s) started from the previous template are still active"
        ));
    }
    Progress::Complete
}

/// The verdict on a rollout that has run for `elapsed`: a rollout still waiting after
/// `timeout` (the spec's `rolloutTimeout`) has failed, like one past its progress
/// deadline.
pub fn judge(progress: Progress, elapsed: Duration, timeout: Duration) -> Progress {
    match progress {
        Progress::Waiting(why) if elapsed >= timeout => Progress::Failed(format!(
            "not complete after {}s (spec.rotation.rolloutTimeout): {why}",
            timeout.as_secs()
        )),
        other => other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn dep(v: serde_json::Value) -> Deployment {
        serde_json::from_value(v).expect("a Deployment")
    }

    fn rolled(
        generation: i64,
        observed: i64,
        replicas: i32,
        updated: i32,
        available: i32,
    ) -> Deployment {
        dep(json!({
            "metadata": {"name": "api", "generation": generation},
            "spec": {"replicas": 3, "selector": {}, "template": {}},
            "status": {"observedGeneration": observed, "replicas": replicas,
                       "updatedReplicas": updated, "availableReplicas": available}
        }))
    }

    #[test]
    fn a_deployment_is_complete_only_when_observed_updated_and_available() {
        assert_eq!(deployment(&rolled(2, 2, 3, 3, 3)), Progress::Complete);
        // Not observed yet: the counters describe the previous template.
        assert!(matches!(
            deployment(&rolled(3, 2, 3, 3, 3)),
            Progress::Waiting(_)
        ));
        // Not every replica updated.
        assert!(matches!(
            deployment(&rolled(2, 2, 3, 2, 2)),
            Progress::Waiting(_)
        ));
        // Old replicas still terminating.
        assert!(matches!(
            deployment(&rolled(2, 2, 4, 3, 3)),
            Progress::Waiting(_)
        ));
        // Updated but not available.
        assert!(matches!(
            deployment(&rolled(2, 2, 3, 3, 1)),
            Progress::Waiting(_)
        ));
    }

    #[test]
    fn a_deployment_past_its_progress_deadline_has_failed() {
        let mut d = rolled(2, 2, 3, 1, 1);
        d.status.as_mut().expect("status").conditions = Some(vec![serde_json::from_value(json!({
            "type": "Progressing", "status": "False", "reason": "ProgressDeadlineExceeded"
        }))
        .expect("condition")]);
        assert!(matches!(deployment(&d), Progress::Failed(_)));
    }

    #[test]
    fn a_statefulset_needs_the_update_revision_everywhere() {
        let sts = |update: &str| -> StatefulSet {
            serde_json::from_value(json!({
                "metadata": {"name": "db", "generation": 4},
                "spec": {"replicas": 2, "selector": {}, "serviceName": "db", "template": {}},
                "status": {"observedGeneration": 4, "replicas": 2, "readyReplicas": 2,
                           "updatedReplicas": 2, "currentRevision": "db-1",
                           "updateRevision": update}
            }))
            .expect("a StatefulSet")
        };
        assert_eq!(stateful_set(&sts("db-1")), Progress::Complete);
        assert!(matches!(stateful_set(&sts("db-2")), Progress::Waiting(_)));
        let mut on_delete = sts("db-1");
        on_delete.spec.as_mut().expect("spec").update_strategy =
            Some(serde_json::from_value(json!({"type": "OnDelete"})).expect("strategy"));
        assert!(matches!(stateful_set(&on_delete), Progress::Waiting(_)));
    }

    #[test]
    fn a_daemonset_needs_every_scheduled_pod_updated_and_available() {
        let ds = |updated: i32, available: i32| -> DaemonSet {
            serde_json::from_value(json!({
                "metadata": {"name": "agent", "generation": 1},
                "spec": {"selector": {}, "template": {}},
                "status": {"observedGeneration": 1, "desiredNumberScheduled": 3,
                           "currentNumberScheduled": 3, "numberMisscheduled": 0,
                           "numberReady": available, "updatedNumberScheduled": updated,
                           "numberAvailable": available}
            }))
            .expect("a DaemonSet")
        };
        assert_eq!(daemon_set(&ds(3, 3)), Progress::Complete);
        assert!(matches!(daemon_set(&ds(2, 3)), Progress::Waiting(_)));
        assert!(matches!(daemon_set(&ds(3, 2)), Progress::Waiting(_)));
    }

    #[test]
    fn a_rollout_still_waiting_after_the_timeout_has_failed() {
        let waiting = Progress::Waiting("1 of 3".into());
        let timeout = Duration::from_secs(600);
        assert_eq!(
            judge(waiting.clone(), Duration::from_secs(599), timeout),
            waiting
        );
        assert!(matches!(
            judge(waiting, Duration::from_secs(600), timeout),
            Progress::Failed(_)
        ));
        assert_eq!(
            judge(Progress::Complete, Duration::from_secs(6000), timeout),
            Progress::Complete
        );
    }
}
