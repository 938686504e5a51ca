//! The Versioned strategy's collection of old versions (step 4 of
//! [`super::versioned_sync`]): which versions and held Secrets may go by
//! [`versioned::retention`], after listing every pod template of the namespace (the
//! workloads' and their revision history's), and deleting them.
//!
//! Guarantees: nothing is deleted when the pod templates cannot be listed; a Secret is
//! deleted only when this owner owns it, conditionally on its uid.

use super::versioned;
use super::versioned::Version;
use super::versioned_sync::{api_reason, Rolled, Versioning};
use crate::controller::apply::{LiveSecret, Owner};
use crate::controller::context::Context;
use crate::controller::crd::{InventoryEntry, SecretVersions};
use k8s_openapi::api::apps::v1::{
    ControllerRevision, DaemonSet, Deployment, ReplicaSet, StatefulSet,
};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::Secret;
use kube::api::{Api, ApiResource, DeleteParams, DynamicObject, ListParams, Preconditions};
use std::collections::{BTreeMap, BTreeSet};

impl Versioning {
    /// Step 4: which old versions and held Secrets go, and the status of the versions.
    #[allow(clippy::too_many_arguments)]
    pub(super) async fn collect(
        &self,
        ctx: &Context,
        owner: &Owner,
        live: &BTreeMap<String, LiveSecret>,
        versions: &[Vec<Version>],
        held: Vec<String>,
        unsettled: &BTreeSet<String>,
        synced: &BTreeSet<String>,
        out: &mut Rolled,
    ) {
        let all_versions: BTreeSet<&str> =
            versions.iter().flatten().map(|v| v.name.as_str()).collect();
        // Held Secrets that are not versions of a Secret still in Git: they left Git.
        let held: Vec<String> = held
            .into_iter()
            .filter(|n| !all_versions.contains(n.as_str()))
            .collect();
        let no_refs = BTreeSet::new();
        let candidates = self.secrets.iter().zip(versions).any(|(l, vs)| {
            !versioned::retention(&l.current, vs, self.retain, &no_refs, unsettled)
                .delete
                .is_empty()
        }) || !held.is_empty();
        let referenced = if candidates {
            match pod_template_refs(ctx, &owner.namespace).await {
                Ok(r) => Some(r),
                Err(why) => {
                    tracing::warn!(namespace = %owner.namespace, error = %why, "pod templates could not be listed; no old Secret version is deleted");
                    None
                }
            }
        } else {
            Some(BTreeSet::new())
        };
        let mut delete: Vec<String> = Vec::new();
        for (l, vs) in self.secrets.iter().zip(versions) {
            let decision = match &referenced {
                // Its new version was not written (a conflict): nothing of it goes.
                _ if !synced.contains(&l.current) => {
                    versioned::retention(&l.current, vs, u32::MAX, &no_refs, unsettled)
                }
                Some(refs) => versioned::retention(&l.current, vs, self.retain, refs, unsettled),
                // Unknown templates: everything stays.
                None => versioned::retention(&l.current, vs, u32::MAX, &no_refs, unsettled),
            };
            let kept: Vec<String> = decision
                .keep
                .iter()
                .map(|(n, _)| n.clone())
                .filter(|n| *n != l.current)
                .collect();
            out.inventory
                .extend(kept.iter().map(|n| InventoryEntry { name: n.clone() }));
            // The status names versions by their suffix (crd.rs).
            let suffix = |n: &str| {
                n.strip_prefix(&format!("{}-", l.name))
                    .unwrap_or(n)
                    .to_string()
            };
            out.status.secrets.push(SecretVersions {
                name: l.name.clone(),
                current_version: suffix(&l.current),
                versions_kept: kept.iter().map(|n| suffix(n)).collect(),
            });
            delete.extend(decision.delete);
        }
        for name in held {
            let keep = match &referenced {
                Some(refs) => refs.contains(&name) || unsettled.contains(&name),
                None => true,
            };
            if keep {
                out.inventory.push(InventoryEntry { name });
            } else {
                delete.push(name);
            }
        }
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), &owner.namespace);
        let mut deleted = Vec::new();
        for name in delete {
            let Some(l) = live.get(&name).filter(|l| owner.owns(l)) else {
                continue;
            };
            let dp = DeleteParams {
                preconditions: Some(Preconditions {
                    uid: l.uid.clone(),
                    resource_version: None,
                }),
                ..DeleteParams::default()
            };
            match api.delete(&name, &dp).await {
                Ok(_) => deleted.push(name),
                Err(kube::Error::Api(s)) if s.code == 404 => {}
                Err(e) => {
                    tracing::warn!(secret = %name, error = %api_reason(&e), "could not delete an old Secret version");
                    out.inventory.push(InventoryEntry { name });
                }
            }
        }
        ctx.metrics.secret_deletes.inc_by(deleted.len() as u64);
        out.deleted = deleted.len();
        if !deleted.is_empty() {
            out.events.push((
                "VersionsDeleted".into(),
                format!(
                    "deleted {} old Secret version(s) that no pod template or unfinished rollout uses: {}",
                    deleted.len(),
                    deleted.join(", ")
                ),
            ));
        }
    }
}

/// Every Secret name a pod template in `ns` references: the workloads' and their
/// revision history's (ReplicaSets, ControllerRevisions), so that `kubectl rollout
/// undo` finds its Secrets. Read page by page.
async fn pod_template_refs(ctx: &Context, ns: &str) -> Result<BTreeSet<String>, String> {
    let kinds = [
        ("Deployment", ApiResource::erase::<Deployment>(&())),
        ("StatefulSet", ApiResource::erase::<StatefulSet>(&())),
        ("DaemonSet", ApiResource::erase::<DaemonSet>(&())),
        ("CronJob", ApiResource::erase::<CronJob>(&())),
        ("ReplicaSet", ApiResource::erase::<ReplicaSet>(&())),
        (
            "ControllerRevision",
            ApiResource::erase::<ControllerRevision>(&()),
        ),
    ];
    let mut out = BTreeSet::new();
    for (kind, ar) in kinds {
        let api: Api<DynamicObject> = Api::namespaced_with(ctx.client.clone(), ns, &ar);
        let mut token: Option<String> = None;
        loop {
            let mut lp = ListParams::default().limit(100);
            if let Some(t) = &token {
                lp = lp.continue_token(t);
            }
            let page = api
                .list(&lp)
                .await
                .map_err(|e| format!("listing {kind}s: {}", api_reason(&e)))?;
            for o in page.items {
                let v = serde_json::to_value(o).unwrap_or_default();
                out.extend(versioned::referenced_by(kind, &v));
            }
            token = page.metadata.continue_.filter(|t| !t.is_empty());
            if token.is_none() {
                break;
            }
        }
    }
    Ok(out)
}
