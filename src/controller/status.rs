//! Conditions (kstatus style: `Ready` always present; `Reconciling` and `Stalled` only
//! while true) and the next `.status` of an object, computed without any server.
//!
//! Guarantee: a resync that changes nothing produces a status equal to the previous
//! one (transition times are kept while a condition's status holds, and nothing in
//! the status depends on the clock otherwise), so the reconciler writes nothing.

use super::crd::{
    Condition, DecryptionStatus, InventoryEntry, RotationStatus, SecretResult, SyncStatus,
};

/// The `Ready` condition type.
pub const READY: &str = "Ready";
/// The `Reconciling` condition type.
pub const RECONCILING: &str = "Reconciling";
/// The `Stalled` condition type.
pub const STALLED: &str = "Stalled";

/// How a reconcile ended, in the terms the status reports.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Every Secret is in sync.
    Synced {
        /// Message for `Ready` (stable across no-op resyncs).
        message: String,
    },
    /// Some Secrets (or files) need a human: conflicts, denials, files that fail to
    /// decrypt. The others are in sync.
    Degraded {
        /// CamelCase reason, e.g. `Conflict`.
        reason: String,
        /// What and where (never a value).
        message: String,
    },
    /// Retrying after a transient failure (Git or API server).
    Retrying {
        /// CamelCase reason, e.g. `GitFetchFailed`.
        reason: String,
        /// What failed.
        message: String,
    },
    /// Cannot make progress until the object or its references change.
    Stalled {
        /// CamelCase reason, e.g. `KeyDenied`.
        reason: String,
        /// What to change.
        message: String,
    },
    /// `spec.suspend` is true.
    Suspended,
}

/// The conditions for `verdict`, keeping the transition time of every condition whose
/// status did not change.
pub fn conditions(
    previous: &[Condition],
    verdict: &Verdict,
    generation: Option<i64>,
    now: &str,
) -> Vec<Condition> {
    // (status, reason, message) of Ready; (reason, message) of the others when true.
    type Pair<'a> = Option<(&'a str, &'a str)>;
    let (ready, reconciling, stalled): ((&str, &str, &str), Pair, Pair) = match verdict {
        Verdict::Synced { message } => (("True", "Synced", message), None, None),
        Verdict::Degraded { reason, message } => {
            (("False", reason, message), None, Some((reason, message)))
        }
        Verdict::Retrying { reason, message } => {
            (("False", reason, message), Some((reason, message)), None)
        }
        Verdict::Stalled { reason, message } => {
            (("False", reason, message), None, Some((reason, message)))
        }
        Verdict::Suspended => (
            (
                "False",
                "Suspended",
                "spec.suspend is true: nothing is synced",
            ),
            None,
            None,
        ),
    };
    let make = |type_: &str, status: &str, reason: &str, message: &str| {
        let since = previous
            .iter()
            .find(|c| c.type_ == type_ && c.status == status)
            .map(|c| c.last_transition_time.clone())
            .unwrap_or_else(|| now.to_string());
        Condition {
            type_: type_.into(),
            status: status.into(),
            reason: reason.into(),
            message: message.into(),
            last_transition_time: since,
            observed_generation: generation,
        }
    };
    let mut out = vec![make(READY, ready.0, ready.1, ready.2)];
    if let Some((reason, message)) = reconciling {
        out.push(make(RECONCILING, "True", reason, message));
    }
    if let Some((reason, message)) = stalled {
        out.push(make(STALLED, "True", reason, message));
    }
    out
}

/// The next status: new conditions, the attempted revision, and, when a sync ran, the
/// applied revision (only when every Secret is in sync), results and inventory.
#[derive(Clone, Debug, Default)]
pub struct StatusUpdate {
    /// The revision the reconcile worked on, if it got that far.
    pub attempted_revision: Option<String>,
    /// Set when every Secret of `attempted_revision` is in sync.
    pub applied_revision: Option<String>,
    /// Per-Secret results of a sync that ran (None: keep the previous ones).
    pub results: Option<Vec<SecretResult>>,
    /// The new inventory (None: keep the previous one).
    pub inventory: Option<Vec<InventoryEntry>>,
    /// The new `status.rotation` (None: keep the previous one; `Some(None)` clears it).
    pub rotation: Option<Option<RotationStatus>>,
    /// The recipients that opened this sync's files (None: nothing was decrypted, keep
    /// the previous ones).
    pub decryption: Option<DecryptionStatus>,
}

/// Computes the next status from the previous one.
pub fn next_status(
    previous: &SyncStatus,
    generation: Option<i64>,
    verdict: &Verdict,
    update: StatusUpdate,
    now: &str,
) -> SyncStatus {
    SyncStatus {
        observed_generation: generation,
        conditions: conditions(&previous.conditions, verdict, generation, now),
        last_applied_revision: update
            .applied_revision
            .or_else(|| previous.last_applied_revision.clone()),
        last_attempted_revision: update
            .attempted_revision
            .or_else(|| previous.last_attempted_revision.clone()),
        inventory: update
            .inventory
            .unwrap_or_else(|| previous.inventory.clone()),
        secrets: update.results.unwrap_or_else(|| previous.secrets.clone()),
        rotation: update.rotation.unwrap_or_else(|| previous.rotation.clone()),
        decryption: update.decryption.or_else(|| previous.decryption.clone()),
    }
}

/// The Ready condition of a status, if any.
pub fn ready(status: Option<&SyncStatus>) -> Option<&Condition> {
    status?.conditions.iter().find(|c| c.type_ == READY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn synced() -> Verdict {
        Verdict::Synced {
            message: "2 Secrets in sync".into(),
        }
    }

    #[test]
    fn an_unchanged_verdict_keeps_the_status_byte_for_byte() {
        let first = next_status(
            &SyncStatus::default(),
            Some(3),
            &synced(),
            StatusUpdate {
                attempted_revision: Some("abc".into()),
                applied_revision: Some("abc".into()),
                results: Some(vec![]),
                inventory: Some(vec![InventoryEntry { name: "a".into() }]),
                rotation: None,
                decryption: None,
            },
            "2026-01-01T00:00:00Z",
        );
        let second = next_status(
            &first,
            Some(3),
            &synced(),
            StatusUpdate {
                attempted_revision: Some("abc".into()),
                applied_revision: Some("abc".into()),
                results: Some(vec![]),
                inventory: Some(vec![InventoryEntry { name: "a".into() }]),
                rotation: None,
                decryption: None,
            },
            "2026-01-01T01:00:00Z",
        );
        assert_eq!(first, second);
    }

    #[test]
    fn a_status_flip_moves_the_transition_time_and_sets_reconciling() {
        let ok = conditions(&[], &synced(), Some(1), "t1");
        assert_eq!(ok.len(), 1);
        assert_eq!(
            (ok[0].status.as_str(), ok[0].reason.as_str()),
            ("True", "Synced")
        );
        let failing = conditions(
            &ok,
            &Verdict::Retrying {
                reason: "GitFetchFailed".into(),
                message: "git fetch of https://h/r failed".into(),
            },
            Some(1),
            "t2",
        );
        let types: Vec<_> = failing.iter().map(|c| c.type_.as_str()).collect();
        assert_eq!(types, ["Ready", "Reconciling"]);
        assert_eq!(failing[0].status, "False");
        assert_eq!(failing[0].last_transition_time, "t2");
        assert_eq!(failing[1].reason, "GitFetchFailed");
    }

    #[test]
    fn stalled_keeps_the_previous_applied_revision_and_inventory() {
        let prev = SyncStatus {
            last_applied_revision: Some("old".into()),
            inventory: vec![InventoryEntry {
                name: "keep".into(),
            }],
            ..Default::default()
        };
        let next = next_status(
            &prev,
            Some(2),
            &Verdict::Stalled {
                reason: "KeyDenied".into(),
                message: "no".into(),
            },
            StatusUpdate::default(),
            "t",
        );
        assert_eq!(next.last_applied_revision.as_deref(), Some("old"));
        assert_eq!(next.inventory, prev.inventory);
        assert_eq!(next.observed_generation, Some(2));
        assert!(next
            .conditions
            .iter()
            .any(|c| c.type_ == STALLED && c.reason == "KeyDenied"));
    }
}
