//! The InPlace strategy's restarts: which workloads a change restarts ([`plan`], pure)
//! and restarting them ([`run`]).
//!
//! Selection, by `spec.rotation.restart`:
//! - `Annotated` (default): workloads that opt in. `sopsync.io/restart-on-change:
//!   "true"`, Reloader's `reloader.stakater.com/auto: "true"` or
//!   `secret.reloader.stakater.com/auto: "true"` watch every Secret the pod template
//!   references; Reloader's `secret.reloader.stakater.com/reload: "a,b"` watches the
//!   Secrets it names (referenced or not), so teams switch from Reloader without editing
//!   workloads.
//! - `Auto`: every workload whose pod template references a changed Secret (or names it
//!   in a Reloader `reload` list).
//! - `None`: none.
//!
//! plus `spec.rotation.restartWorkloads`, restarted whenever any Secret of the object
//! changed.
//!
//! A selected workload is restarted by setting its pod-template annotation
//! [`super::workloads::ANNOTATION_DIGEST`] to the keyed digest of the object's Secrets
//! it uses; when the annotation already carries that digest (the values came back to
//! what the pods run with, or another replica did it) nothing happens. Two Secrets
//! changing in one commit, or twenty changes in one debounce window, give one digest
//! and so one rollout per workload.

use super::digest::{combined_digest, Digest, DigestKey};
use super::workloads::{self, WorkloadInfo};
use crate::controller::crd::{RestartPolicy, WorkloadRef};
use kube::Client;
use std::collections::{BTreeMap, BTreeSet};

/// sopsync's opt-in annotation (value `"true"`).
pub const ANNOTATION_OPT_IN: &str = "sopsync.io/restart-on-change";
/// Reloader: restart on a change of any referenced ConfigMap or Secret.
pub const RELOADER_AUTO: &str = "reloader.stakater.com/auto";
/// Reloader: restart on a change of any referenced Secret.
pub const RELOADER_SECRET_AUTO: &str = "secret.reloader.stakater.com/auto";
/// Reloader: restart on a change of the Secrets named, comma-separated.
pub const RELOADER_SECRET_RELOAD: &str = "secret.reloader.stakater.com/reload";

/// The Secrets named in a Reloader `reload` annotation.
fn reload_named(w: &WorkloadInfo) -> BTreeSet<String> {
    w.annotations
        .get(RELOADER_SECRET_RELOAD)
        .map(|v| {
            v.split(',')
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default()
}

fn is_true(w: &WorkloadInfo, key: &str) -> bool {
    w.annotations.get(key).map(|v| v.trim()) == Some("true")
}

/// The Secrets whose change restarts `w` under `policy` (empty: none).
pub fn watched(policy: RestartPolicy, w: &WorkloadInfo) -> BTreeSet<String> {
    let named = reload_named(w);
    let all = || w.secrets.union(&named).cloned().collect();
    match policy {
        RestartPolicy::None => BTreeSet::new(),
        RestartPolicy::Auto => all(),
        RestartPolicy::Annotated => {
            if [ANNOTATION_OPT_IN, RELOADER_AUTO, RELOADER_SECRET_AUTO]
                .iter()
                .any(|k| is_true(w, k))
            {
                all()
            } else {
                named
            }
        }
    }
}

/// One workload to restart.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Restart {
    /// Kind and name.
    pub workload: WorkloadRef,
    /// The new value of its digest annotation.
    pub digest_hex: String,
    /// The changed Secrets that caused it (names only), for the Event.
    pub because: Vec<String>,
}

/// What a change asks for, before any workload is read.
#[derive(Clone, Copy, Debug)]
pub struct Selection<'a> {
    /// `spec.rotation.restart`.
    pub policy: RestartPolicy,
    /// `spec.rotation.restartWorkloads`.
    pub explicit: &'a [WorkloadRef],
    /// The Secrets whose content changed in the window (final names).
    pub changed: &'a BTreeSet<String>,
}

impl Selection<'_> {
    /// Whether `w` is restarted by this change (ignoring its current digest).
    pub fn selects(&self, w: &WorkloadInfo) -> bool {
        (self.explicit.contains(&w.workload) && !self.changed.is_empty())
            || !watched(self.policy, w).is_disjoint(self.changed)
    }
}

/// The restarts a change calls for (pure). `candidates` are the workloads read from the
/// server; `digests` the keyed digests of the object's Secrets by final name.
///
/// The digest a workload gets covers the object's Secrets it uses (references and a
/// Reloader list); a workload named in `restartWorkloads` that uses none of them gets
/// the digest of all of them, so that any change of the object still restarts it.
pub fn plan(
    key: &DigestKey,
    selection: Selection<'_>,
    candidates: &[WorkloadInfo],
    digests: &BTreeMap<String, Digest>,
) -> Vec<Restart> {
    let mut seen = BTreeSet::new();
    let mut out = Vec::new();
    for w in candidates {
        if !seen.insert(w.workload.clone()) || !selection.selects(w) {
            continue;
        }
        let named = reload_named(w);
        let uses: BTreeSet<&String> = w.secrets.iter().chain(named.iter()).collect();
        let mut used: BTreeMap<String, Digest> = digests
            .iter()
            .filter(|(name, _)| uses.contains(name))
            .map(|(n, d)| (n.clone(), *d))
            .collect();
        if used.is_empty() {
            used = digests.clone();
        }
        let digest_hex = combined_digest(key, &used).to_hex();
        if w.digest.as_deref() == Some(digest_hex.as_str()) {
            continue;
        }
        let because = used
            .keys()
            .filter(|n| selection.changed.contains(*n))
            .cloned()
            .collect();
        out.push(Restart {
            workload: w.workload.clone(),
            digest_hex,
            because,
        });
    }
    out
}

/// Why a workload could not be restarted (never a value).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RestartFailure {
    /// The workload (for a list that failed: its kind and `*`).
    pub workload: WorkloadRef,
    /// What went wrong and what to do.
    pub message: String,
}

/// What [`run`] did.
#[derive(Clone, Debug, Default)]
pub struct RestartReport {
    /// Workloads restarted.
    pub restarted: Vec<Restart>,
    /// Workloads that could not be read or patched.
    pub failures: Vec<RestartFailure>,
}

fn explain(e: &kube::Error, verb: &str, what: &str) -> String {
    match e {
        kube::Error::Api(s) if s.code == 403 => format!(
            "cannot {verb} {what}: forbidden; grant the controller get/list/patch on workloads (chart: rotation.workloadRestarts.enabled=true)"
        ),
        kube::Error::Api(s) if s.code == 404 => format!("{what} not found; fix spec.rotation.restartWorkloads or create it"),
        other => format!("cannot {verb} {what}: {other}"),
    }
}

/// Reads the candidate workloads of `namespace`, plans, and patches.
pub async fn run(
    client: &Client,
    namespace: &str,
    key: &DigestKey,
    selection: Selection<'_>,
    digests: &BTreeMap<String, Digest>,
) -> RestartReport {
    let mut report = RestartReport::default();
    let mut candidates = Vec::new();
    if selection.policy != RestartPolicy::None {
        let (found, failures) = workloads::list(client, namespace, |w| selection.selects(w)).await;
        candidates = found;
        for (kind, e) in failures {
            report.failures.push(RestartFailure {
                workload: WorkloadRef {
                    kind,
                    name: "*".into(),
                },
                message: explain(
                    &e,
                    "list",
                    &format!("the {}s of namespace {namespace}", kind.as_str()),
                ),
            });
        }
    }
    if !selection.changed.is_empty() {
        for w in selection.explicit {
            if candidates.iter().any(|c| &c.workload == w) {
                continue;
            }
            let what = format!("{} {namespace}/{}", w.kind.as_str(), w.name);
            match workloads::get(client, namespace, w).await {
                Ok(Some(info)) => candidates.push(info),
                Ok(None) => report.failures.push(RestartFailure {
                    workload: w.clone(),
                    message: format!(
                        "{what} not found; fix spec.rotation.restartWorkloads or create it"
                    ),
                }),
                Err(e) => report.failures.push(RestartFailure {
                    workload: w.clone(),
                    message: explain(&e, "read", &what),
                }),
            }
        }
    }
    for r in plan(key, selection, &candidates, digests) {
        let what = format!(
            "{} {namespace}/{}",
            r.workload.kind.as_str(),
            r.workload.name
        );
        match workloads::patch_digest(client, namespace, &r.workload, &r.digest_hex).await {
            Ok(()) => report.restarted.push(r),
            Err(e) => report.failures.push(RestartFailure {
                workload: r.workload.clone(),
                message: explain(&e, "patch", &what),
            }),
        }
    }
    report
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::crd::WorkloadKind;
    use crate::controller::rotation::digest::{secret_digest, KEY_LEN};

    fn key() -> DigestKey {
        DigestKey::from_bytes([3; KEY_LEN])
    }

    fn workload(name: &str, annotations: &[(&str, &str)], secrets: &[&str]) -> WorkloadInfo {
        WorkloadInfo {
            workload: WorkloadRef {
                kind: WorkloadKind::Deployment,
                name: name.into(),
            },
            annotations: annotations
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            digest: None,
            secrets: secrets.iter().map(|s| s.to_string()).collect(),
        }
    }

    fn digests(values: &[(&str, &str)]) -> BTreeMap<String, Digest> {
        values
            .iter()
            .map(|(name, v)| {
                let data = BTreeMap::from([("v".to_string(), v.as_bytes().to_vec())]);
                (name.to_string(), secret_digest(&key(), "ns", &data))
            })
            .collect()
    }

    fn names(restarts: &[Restart]) -> Vec<&str> {
        restarts.iter().map(|r| r.workload.name.as_str()).collect()
    }

    /// One workload per way of opting in (or not), all referencing `db` unless said.
    fn fleet() -> Vec<WorkloadInfo> {
        vec![
            workload("opted-in", &[(ANNOTATION_OPT_IN, "true")], &["db"]),
            workload("reloader-auto", &[(RELOADER_AUTO, "true")], &["db"]),
            workload(
                "reloader-secret-auto",
                &[(RELOADER_SECRET_AUTO, "true")],
                &["db"],
            ),
            workload(
                "reloader-named",
                &[(RELOADER_SECRET_RELOAD, "other, db")],
                &[],
            ),
            workload(
                "reloader-named-other",
                &[(RELOADER_SECRET_RELOAD, "other")],
                &["db"],
            ),
            workload("opted-out", &[(ANNOTATION_OPT_IN, "false")], &["db"]),
            workload("plain", &[], &["db"]),
            workload("unrelated", &[(ANNOTATION_OPT_IN, "true")], &["other"]),
        ]
    }

    fn select(policy: RestartPolicy, explicit: &[WorkloadRef]) -> Vec<Restart> {
        let changed = BTreeSet::from(["db".to_string()]);
        let selection = Selection {
            policy,
            explicit,
            changed: &changed,
        };
        plan(
            &key(),
            selection,
            &fleet(),
            &digests(&[("db", "2"), ("other", "1")]),
        )
    }

    #[test]
    fn annotated_selects_the_opted_in_workloads_and_reloaders_annotations() {
        assert_eq!(
            names(&select(RestartPolicy::Annotated, &[])),
            [
                "opted-in",
                "reloader-auto",
                "reloader-secret-auto",
                "reloader-named"
            ]
        );
    }

    #[test]
    fn auto_selects_every_workload_using_the_changed_secret() {
        assert_eq!(
            names(&select(RestartPolicy::Auto, &[])),
            [
                "opted-in",
                "reloader-auto",
                "reloader-secret-auto",
                "reloader-named",
                "reloader-named-other",
                "opted-out",
                "plain"
            ]
        );
    }

    #[test]
    fn none_selects_only_the_named_workloads() {
        assert!(select(RestartPolicy::None, &[]).is_empty());
        let unrelated = WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "unrelated".into(),
        };
        assert_eq!(
            names(&select(RestartPolicy::None, &[unrelated])),
            ["unrelated"]
        );
    }

    #[test]
    fn two_changed_secrets_give_one_restart_and_an_unchanged_digest_none() {
        let changed = BTreeSet::from(["a".to_string(), "b".to_string()]);
        let selection = Selection {
            policy: RestartPolicy::Auto,
            explicit: &[],
            changed: &changed,
        };
        let mut w = workload("api", &[], &["a", "b"]);
        let d = digests(&[("a", "new-a"), ("b", "new-b")]);
        let first = plan(&key(), selection, std::slice::from_ref(&w), &d);
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].because, ["a", "b"]);
        w.digest = Some(first[0].digest_hex.clone());
        assert!(plan(&key(), selection, &[w], &d).is_empty());
    }

    #[test]
    fn the_digest_covers_only_the_secrets_the_workload_uses() {
        let changed = BTreeSet::from(["a".to_string()]);
        let selection = Selection {
            policy: RestartPolicy::Auto,
            explicit: &[],
            changed: &changed,
        };
        let w = workload("api", &[], &["a"]);
        let one = plan(
            &key(),
            selection,
            std::slice::from_ref(&w),
            &digests(&[("a", "1"), ("b", "1")]),
        );
        let other_b = plan(&key(), selection, &[w], &digests(&[("a", "1"), ("b", "2")]));
        assert_eq!(one[0].digest_hex, other_b[0].digest_hex);
    }
}
