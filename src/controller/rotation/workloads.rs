//! The workloads a rotation restarts (Deployments, StatefulSets, DaemonSets and
//! CronJobs of one namespace): what the restart decision needs of each, read when a
//! restart is due, and the pod-template annotation patch.
//!
//! Memory: nothing here is cached or watched. The workloads of a namespace are listed
//! only when a restart is due (a change was written and its debounce window closed),
//! page by page, and only a small [`WorkloadInfo`] of each is kept for the decision.
//! The choice against a watch: a controller that feeds thousands of Secrets but rolls
//! out a change a few times a day would otherwise hold every workload of every
//! namespace it serves in memory all the time (Reloader's cost); a list per due restart
//! costs one paged list per kind and namespace, only then.
//!
//! The patch is a server-side apply under its own field manager
//! ([`FIELD_MANAGER`]), owning only the annotation: a GitOps tool applying the rest of
//! the workload (Flux) keeps its fields, and no other field of the workload is touched.

use super::podspec::secret_names;
use crate::controller::crd::{WorkloadKind, WorkloadRef};
use k8s_openapi::api::apps::v1::{DaemonSet, Deployment, StatefulSet};
use k8s_openapi::api::batch::v1::CronJob;
use k8s_openapi::api::core::v1::PodTemplateSpec;
use kube::api::{Api, ListParams, Patch, PatchParams};
use kube::Client;
use serde::de::DeserializeOwned;
use std::collections::{BTreeMap, BTreeSet};

/// The pod-template annotation carrying the keyed digest of the Secrets a workload
/// uses ([`super::digest::combined_digest`]): a new value rolls the workload out, as
/// `kubectl rollout restart` does with its own annotation.
pub const ANNOTATION_DIGEST: &str = "sopsync.io/secrets-digest";

/// The field manager of the annotation patch (distinct from the Secrets' manager, so
/// that it owns nothing but this annotation on a workload).
pub const FIELD_MANAGER: &str = "sopsync-rotation";

/// Page size of a workload list (one page held at a time).
const PAGE: u32 = 100;

/// What the restart decision needs to know of one workload.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkloadInfo {
    /// Kind and name.
    pub workload: WorkloadRef,
    /// The workload's own annotations (the opt-in ones are read from here).
    pub annotations: BTreeMap<String, String>,
    /// The value of [`ANNOTATION_DIGEST`] on its pod template, if any.
    pub digest: Option<String>,
    /// The Secrets its pod template references.
    pub secrets: BTreeSet<String>,
}

/// A workload kind's pod template.
trait HasPodTemplate:
    kube::Resource<DynamicType = ()> + Clone + DeserializeOwned + std::fmt::Debug
{
    const KIND: WorkloadKind;
    fn template(&self) -> Option<&PodTemplateSpec>;
}

impl HasPodTemplate for Deployment {
    const KIND: WorkloadKind = WorkloadKind::Deployment;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl HasPodTemplate for StatefulSet {
    const KIND: WorkloadKind = WorkloadKind::StatefulSet;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl HasPodTemplate for DaemonSet {
    const KIND: WorkloadKind = WorkloadKind::DaemonSet;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec.as_ref().map(|s| &s.template)
    }
}

impl HasPodTemplate for CronJob {
    const KIND: WorkloadKind = WorkloadKind::CronJob;
    fn template(&self) -> Option<&PodTemplateSpec> {
        self.spec
            .as_ref()
            .and_then(|s| s.job_template.spec.as_ref())
            .map(|j| &j.template)
    }
}

fn info_of<K: HasPodTemplate>(obj: &K) -> WorkloadInfo {
    let template = obj.template();
    WorkloadInfo {
        workload: WorkloadRef {
            kind: K::KIND,
            name: obj.meta().name.clone().unwrap_or_default(),
        },
        annotations: obj.meta().annotations.clone().unwrap_or_default(),
        digest: template
            .and_then(|t| t.metadata.as_ref())
            .and_then(|m| m.annotations.as_ref())
            .and_then(|a| a.get(ANNOTATION_DIGEST))
            .cloned(),
        secrets: template
            .and_then(|t| t.spec.as_ref())
            .map(secret_names)
            .unwrap_or_default(),
    }
}

async fn list_kind<K: HasPodTemplate<Scope = k8s_openapi::NamespaceResourceScope>>(
    client: &Client,
    namespace: &str,
    keep: &impl Fn(&WorkloadInfo) -> bool,
    out: &mut Vec<WorkloadInfo>,
) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    let mut token: Option<String> = None;
    loop {
        let mut lp = ListParams::default().limit(PAGE);
        if let Some(t) = &token {
            lp = lp.continue_token(t);
        }
        let page = api.list(&lp).await?;
        out.extend(page.items.iter().map(info_of).filter(|i| keep(i)));
        token = page.metadata.continue_.filter(|t| !t.is_empty());
        if token.is_none() {
            return Ok(());
        }
    }
}

/// The workloads of `namespace` that `keep` accepts, every kind, page by page; and the
/// kinds that could not be listed, with why. A kind the API server does not serve (404)
/// has no workloads: that is no failure.
pub async fn list(
    client: &Client,
    namespace: &str,
    keep: impl Fn(&WorkloadInfo) -> bool,
) -> (Vec<WorkloadInfo>, Vec<(WorkloadKind, kube::Error)>) {
    let mut out = Vec::new();
    let mut failures = Vec::new();
    for kind in WorkloadKind::ALL {
        let listed = match kind {
            WorkloadKind::Deployment => {
                list_kind::<Deployment>(client, namespace, &keep, &mut out).await
            }
            WorkloadKind::StatefulSet => {
                list_kind::<StatefulSet>(client, namespace, &keep, &mut out).await
            }
            WorkloadKind::DaemonSet => {
                list_kind::<DaemonSet>(client, namespace, &keep, &mut out).await
            }
            WorkloadKind::CronJob => list_kind::<CronJob>(client, namespace, &keep, &mut out).await,
        };
        match listed {
            Ok(()) => {}
            Err(kube::Error::Api(s)) if s.code == 404 => {}
            Err(e) => failures.push((kind, e)),
        }
    }
    (out, failures)
}

async fn get_kind<K: HasPodTemplate<Scope = k8s_openapi::NamespaceResourceScope>>(
    client: &Client,
    namespace: &str,
    name: &str,
) -> Result<Option<WorkloadInfo>, kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    Ok(api.get_opt(name).await?.as_ref().map(info_of))
}

/// One named workload (None: it does not exist).
pub async fn get(
    client: &Client,
    namespace: &str,
    w: &WorkloadRef,
) -> Result<Option<WorkloadInfo>, kube::Error> {
    match w.kind {
        WorkloadKind::Deployment => get_kind::<Deployment>(client, namespace, &w.name).await,
        WorkloadKind::StatefulSet => get_kind::<StatefulSet>(client, namespace, &w.name).await,
        WorkloadKind::DaemonSet => get_kind::<DaemonSet>(client, namespace, &w.name).await,
        WorkloadKind::CronJob => get_kind::<CronJob>(client, namespace, &w.name).await,
    }
}

/// The API group/version and plural of a kind.
pub fn api_of(kind: WorkloadKind) -> (&'static str, &'static str) {
    match kind {
        WorkloadKind::Deployment => ("apps/v1", "deployments"),
        WorkloadKind::StatefulSet => ("apps/v1", "statefulsets"),
        WorkloadKind::DaemonSet => ("apps/v1", "daemonsets"),
        WorkloadKind::CronJob => ("batch/v1", "cronjobs"),
    }
}

/// The server-side apply body that sets the digest annotation on a workload's pod
/// template and nothing else (pure).
pub fn digest_patch(w: &WorkloadRef, digest_hex: &str) -> serde_json::Value {
    let template = serde_json::json!({
        "metadata": {"annotations": {ANNOTATION_DIGEST: digest_hex}}
    });
    let spec = match w.kind {
        WorkloadKind::CronJob => {
            serde_json::json!({"jobTemplate": {"spec": {"template": template}}})
        }
        _ => serde_json::json!({"template": template}),
    };
    serde_json::json!({
        "apiVersion": api_of(w.kind).0,
        "kind": w.kind.as_str(),
        "metadata": {"name": w.name},
        "spec": spec,
    })
}

async fn apply_kind<K: HasPodTemplate<Scope = k8s_openapi::NamespaceResourceScope>>(
    client: &Client,
    namespace: &str,
    name: &str,
    body: &serde_json::Value,
) -> Result<(), kube::Error> {
    let api: Api<K> = Api::namespaced(client.clone(), namespace);
    // Forced: the annotation is ours; whoever else set it last (a copy of a manifest
    // that carried it) must not block the restart.
    let params = PatchParams::apply(FIELD_MANAGER).force();
    api.patch(name, &params, &Patch::Apply(body))
        .await
        .map(|_| ())
}

/// Sets the digest annotation on `w`'s pod template (rolling it out when it changed).
pub async fn patch_digest(
    client: &Client,
    namespace: &str,
    w: &WorkloadRef,
    digest_hex: &str,
) -> Result<(), kube::Error> {
    let body = digest_patch(w, digest_hex);
    match w.kind {
        WorkloadKind::Deployment => {
            apply_kind::<Deployment>(client, namespace, &w.name, &body).await
        }
        WorkloadKind::StatefulSet => {
            apply_kind::<StatefulSet>(client, namespace, &w.name, &body).await
        }
        WorkloadKind::DaemonSet => apply_kind::<DaemonSet>(client, namespace, &w.name, &body).await,
        WorkloadKind::CronJob => apply_kind::<CronJob>(client, namespace, &w.name, &body).await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_patch_sets_only_the_pod_template_annotation() {
        let d = WorkloadRef {
            kind: WorkloadKind::Deployment,
            name: "api".into(),
        };
        assert_eq!(
            digest_patch(&d, "ab"),
            serde_json::json!({
                "apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "api"},
                "spec": {"template": {"metadata": {"annotations": {ANNOTATION_DIGEST: "ab"}}}}
            })
        );
        let c = WorkloadRef {
            kind: WorkloadKind::CronJob,
            name: "report".into(),
        };
        assert_eq!(
            digest_patch(&c, "ab")["spec"]["jobTemplate"]["spec"]["template"]["metadata"]
                ["annotations"][ANNOTATION_DIGEST],
            "ab"
        );
        assert_eq!(digest_patch(&c, "ab")["apiVersion"], "batch/v1");
    }

    #[test]
    fn a_cronjobs_pod_template_is_its_job_templates() {
        let cj: CronJob = serde_json::from_value(serde_json::json!({
            "metadata": {"name": "report"},
            "spec": {"schedule": "@daily", "jobTemplate": {"spec": {"template": {
                "metadata": {"annotations": {ANNOTATION_DIGEST: "x"}},
                "spec": {"containers": [{"name": "c", "envFrom": [{"secretRef": {"name": "db"}}]}]}
            }}}}
        }))
        .expect("valid");
        let info = info_of(&cj);
        assert_eq!(info.digest.as_deref(), Some("x"));
        assert!(info.secrets.contains("db"));
        assert_eq!(info.workload.kind, WorkloadKind::CronJob);
    }
}
