//! Workloads for rotation tests: builders for Deployments, StatefulSets, DaemonSets and
//! CronJobs that consume Secrets the four ways a pod can (an env var from one key,
//! `envFrom`, a `secret` volume, a projected volume), and waits that judge a rollout the
//! way `kubectl rollout status` does (`k8s.io/kubectl/pkg/polymorphichelpers/
//! rollout_status.go`), so a test sees what a real client would.
//!
//! ```ignore
//! let app = Workload::deployment("apps", "web")
//!     .env_key("db", "password")
//!     .volume("tls")
//!     .annotate("reloader.stakater.com/auto", "true");
//! app.put(&fake);
//! workloads::wait_rolled_out(&fake, &app).await;
//! ```

#![allow(dead_code)]

use std::time::{Duration, Instant};

use serde_json::{json, Value};

use super::fake_apiserver::{FakeApiServer, ResourceType};

/// The workload kinds sopsync may roll.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob.
    CronJob,
}

impl Kind {
    /// The Kubernetes kind name.
    pub fn name(self) -> &'static str {
        match self {
            Kind::Deployment => "Deployment",
            Kind::StatefulSet => "StatefulSet",
            Kind::DaemonSet => "DaemonSet",
            Kind::CronJob => "CronJob",
        }
    }

    /// API group.
    pub fn group(self) -> &'static str {
        match self {
            Kind::CronJob => "batch",
            _ => "apps",
        }
    }

    /// Plural resource name.
    pub fn plural(self) -> &'static str {
        match self {
            Kind::Deployment => "deployments",
            Kind::StatefulSet => "statefulsets",
            Kind::DaemonSet => "daemonsets",
            Kind::CronJob => "cronjobs",
        }
    }

    /// The JSON pointer of the pod template.
    pub fn template_pointer(self) -> &'static str {
        match self {
            Kind::CronJob => "/spec/jobTemplate/spec/template",
            _ => "/spec/template",
        }
    }

    /// The served kind in `fake`.
    pub fn resource_type(self, fake: &FakeApiServer) -> ResourceType {
        fake.resource_type_raw(self.group(), "v1", self.plural())
    }
}

/// How a pod consumes a Secret.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretUse {
    /// `env[].valueFrom.secretKeyRef` (one key).
    EnvKey {
        /// Secret name.
        secret: String,
        /// Key in the Secret.
        key: String,
    },
    /// `envFrom[].secretRef` (every key).
    EnvFrom(String),
    /// A `secret` volume.
    Volume(String),
    /// A `projected` volume with one `secret` source per name.
    Projected(Vec<String>),
}

/// A workload manifest under construction.
#[derive(Debug, Clone)]
pub struct Workload {
    /// Kind.
    pub kind: Kind,
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// How its pods consume Secrets.
    pub uses: Vec<SecretUse>,
    /// The workload's own annotations (where opt-in annotations go).
    pub annotations: Vec<(String, String)>,
    /// Annotations of the pod template.
    pub template_annotations: Vec<(String, String)>,
    /// `spec.replicas` (Deployment, StatefulSet).
    pub replicas: i64,
    /// Extra fields merged into `spec` (e.g. `progressDeadlineSeconds`).
    pub spec: Value,
}

impl Workload {
    fn new(kind: Kind, namespace: &str, name: &str) -> Self {
        Workload {
            kind,
            namespace: namespace.into(),
            name: name.into(),
            uses: Vec::new(),
            annotations: Vec::new(),
            template_annotations: Vec::new(),
            replicas: 2,
            spec: json!({}),
        }
    }

    /// A Deployment of 2 replicas.
    pub fn deployment(namespace: &str, name: &str) -> Self {
        Self::new(Kind::Deployment, namespace, name)
    }

    /// A StatefulSet of 2 replicas.
    pub fn statefulset(namespace: &str, name: &str) -> Self {
        Self::new(Kind::StatefulSet, namespace, name)
    }

    /// A DaemonSet.
    pub fn daemonset(namespace: &str, name: &str) -> Self {
        Self::new(Kind::DaemonSet, namespace, name)
    }

    /// A CronJob running every five minutes.
    pub fn cronjob(namespace: &str, name: &str) -> Self {
        Self::new(Kind::CronJob, namespace, name)
    }

    /// Consumes `key` of `secret` as an environment variable.
    pub fn env_key(mut self, secret: &str, key: &str) -> Self {
        self.uses.push(SecretUse::EnvKey {
            secret: secret.into(),
            key: key.into(),
        });
        self
    }

    /// Consumes every key of `secret` as environment variables.
    pub fn env_from(mut self, secret: &str) -> Self {
        self.uses.push(SecretUse::EnvFrom(secret.into()));
        self
    }

    /// Mounts `secret` as a `secret` volume.
    pub fn volume(mut self, secret: &str) -> Self {
        self.uses.push(SecretUse::Volume(secret.into()));
        self
    }

    /// Mounts `secrets` in one projected volume.
    pub fn projected(mut self, secrets: &[&str]) -> Self {
        self.uses.push(SecretUse::Projected(
            secrets.iter().map(|s| s.to_string()).collect(),
        ));
        self
    }

    /// Adds an annotation to the workload itself (e.g. `reloader.stakater.com/auto`).
    pub fn annotate(mut self, key: &str, value: &str) -> Self {
        self.annotations.push((key.into(), value.into()));
        self
    }

    /// Adds an annotation to the pod template.
    pub fn annotate_template(mut self, key: &str, value: &str) -> Self {
        self.template_annotations.push((key.into(), value.into()));
        self
    }

    /// Sets `spec.replicas` (Deployment, StatefulSet).
    pub fn replicas(mut self, n: i64) -> Self {
        self.replicas = n;
        self
    }

    /// Sets `spec.<field>` (e.g. `progressDeadlineSeconds`, `revisionHistoryLimit`).
    pub fn spec_field(mut self, field: &str, value: Value) -> Self {
        self.spec[field] = value;
        self
    }

    /// The pod template.
    pub fn pod_template(&self) -> Value {
        let mut env = Vec::new();
        let mut env_from = Vec::new();
        let mut volumes = Vec::new();
        let mut mounts = Vec::new();
        for (i, u) in self.uses.iter().enumerate() {
            match u {
                SecretUse::EnvKey { secret, key } => env.push(json!({
                    "name": format!("{}_{}", secret, key).to_uppercase().replace(['-', '.'], "_"),
                    "valueFrom": { "secretKeyRef": { "name": secret, "key": key } },
                })),
                SecretUse::EnvFrom(secret) => {
                    env_from.push(json!({ "secretRef": { "name": secret } }))
                }
                SecretUse::Volume(secret) => {
                    let v = format!("secret-{i}");
                    volumes.push(json!({ "name": v, "secret": { "secretName": secret } }));
                    mounts.push(
                        json!({ "name": v, "mountPath": format!("/etc/{v}"), "readOnly": true }),
                    );
                }
                SecretUse::Projected(secrets) => {
                    let v = format!("projected-{i}");
                    let sources: Vec<Value> = secrets
                        .iter()
                        .map(|s| json!({ "secret": { "name": s } }))
                        .collect();
                    volumes.push(json!({ "name": v, "projected": { "sources": sources } }));
                    mounts.push(
                        json!({ "name": v, "mountPath": format!("/etc/{v}"), "readOnly": true }),
                    );
                }
            }
        }
        let mut container = json!({ "name": "app", "image": "registry.example/app:1" });
        if !env.is_empty() {
            container["env"] = json!(env);
        }
        if !env_from.is_empty() {
            container["envFrom"] = json!(env_from);
        }
        if !mounts.is_empty() {
            container["volumeMounts"] = json!(mounts);
        }
        let mut pod = json!({ "containers": [container] });
        if !volumes.is_empty() {
            pod["volumes"] = json!(volumes);
        }
        if self.kind == Kind::CronJob {
            pod["restartPolicy"] = json!("OnFailure");
        }
        let mut meta = json!({ "labels": { "app": self.name } });
        for (k, v) in &self.template_annotations {
            meta["annotations"][k] = json!(v);
        }
        json!({ "metadata": meta, "spec": pod })
    }

    /// The manifest.
    pub fn manifest(&self) -> Value {
        let template = self.pod_template();
        let selector = json!({ "matchLabels": { "app": self.name } });
        let mut spec = match self.kind {
            Kind::Deployment => json!({
                "replicas": self.replicas, "selector": selector, "template": template,
            }),
            Kind::StatefulSet => json!({
                "replicas": self.replicas, "selector": selector, "serviceName": self.name,
                "template": template,
            }),
            Kind::DaemonSet => json!({ "selector": selector, "template": template }),
            Kind::CronJob => json!({
                "schedule": "*/5 * * * *",
                "jobTemplate": { "spec": { "template": template } },
            }),
        };
        if let Some(extra) = self.spec.as_object() {
            for (k, v) in extra {
                spec[k] = v.clone();
            }
        }
        let mut meta = json!({ "name": self.name, "namespace": self.namespace });
        for (k, v) in &self.annotations {
            meta["annotations"][k] = json!(v);
        }
        json!({
            "apiVersion": format!("{}/v1", self.kind.group()),
            "kind": self.kind.name(),
            "metadata": meta,
            "spec": spec,
        })
    }

    /// Stores the workload in the fake directly (no request is logged); returns it as stored.
    pub fn put(&self, fake: &FakeApiServer) -> Value {
        fake.put_raw(
            &self.kind.resource_type(fake),
            &self.namespace,
            &self.name,
            self.manifest(),
        )
    }

    /// The workload as stored now.
    pub fn get(&self, fake: &FakeApiServer) -> Value {
        fake.get_raw(&self.kind.resource_type(fake), &self.namespace, &self.name)
            .unwrap_or_else(|| {
                panic!(
                    "{} {}/{} is not in the fake",
                    self.kind.name(),
                    self.namespace,
                    self.name
                )
            })
    }

    /// How many pod-template changes (rollouts) the fake counted for this workload.
    pub fn template_changes(&self, fake: &FakeApiServer) -> usize {
        fake.template_changes(&self.namespace, self.kind.name(), &self.name)
    }
}

/// A rollout as `kubectl rollout status` judges it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RolloutStatus {
    /// "successfully rolled out" (or "rolling update complete").
    Done(String),
    /// Still waiting, with kubectl's message.
    Waiting(String),
    /// kubectl stops with an error (a Deployment past its progress deadline, a strategy
    /// kubectl cannot follow).
    Failed(String),
}

fn int(v: &Value) -> i64 {
    v.as_i64().unwrap_or(0)
}

/// `kubectl rollout status`'s verdict on one object (Deployment, StatefulSet or
/// DaemonSet), following `rollout_status.go` rule by rule.
pub fn rollout_status(obj: &Value) -> RolloutStatus {
    let name = obj["metadata"]["name"].as_str().unwrap_or_default();
    let generation = int(&obj["metadata"]["generation"]);
    let (spec, status) = (&obj["spec"], &obj["status"]);
    let observed = int(&status["observedGeneration"]);
    match obj["kind"].as_str().unwrap_or_default() {
        "Deployment" => {
            // DeploymentStatusViewer.Status
            if generation > observed {
                return RolloutStatus::Waiting(
                    "Waiting for deployment spec update to be observed...".into(),
                );
            }
            let progressing = status["conditions"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|c| c["type"] == "Progressing");
            if progressing.is_some_and(|c| c["reason"] == "ProgressDeadlineExceeded") {
                return RolloutStatus::Failed(format!(
                    "deployment {name:?} exceeded its progress deadline"
                ));
            }
            let updated = int(&status["updatedReplicas"]);
            if let Some(want) = spec["replicas"].as_i64() {
                if updated < want {
                    return RolloutStatus::Waiting(format!("Waiting for deployment {name:?} rollout to finish: {updated} out of {want} new replicas have been updated..."));
                }
            }
            let replicas = int(&status["replicas"]);
            if replicas > updated {
                return RolloutStatus::Waiting(format!("Waiting for deployment {name:?} rollout to finish: {} old replicas are pending termination...", replicas - updated));
            }
            let available = int(&status["availableReplicas"]);
            if available < updated {
                return RolloutStatus::Waiting(format!("Waiting for deployment {name:?} rollout to finish: {available} of {updated} updated replicas are available..."));
            }
            RolloutStatus::Done(format!("deployment {name:?} successfully rolled out"))
        }
        "DaemonSet" => {
            // DaemonSetStatusViewer.Status
            if spec["updateStrategy"]["type"] != "RollingUpdate" {
                return RolloutStatus::Failed(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if generation > observed {
                return RolloutStatus::Waiting(
                    "Waiting for daemon set spec update to be observed...".into(),
                );
            }
            let desired = int(&status["desiredNumberScheduled"]);
            let updated = int(&status["updatedNumberScheduled"]);
            if updated < desired {
                return RolloutStatus::Waiting(format!("Waiting for daemon set {name:?} rollout to finish: {updated} out of {desired} new pods have been updated..."));
            }
            let available = int(&status["numberAvailable"]);
            if available < desired {
                return RolloutStatus::Waiting(format!("Waiting for daemon set {name:?} rollout to finish: {available} of {desired} updated pods are available..."));
            }
            RolloutStatus::Done(format!("daemon set {name:?} successfully rolled out"))
        }
        "StatefulSet" => {
            // StatefulSetStatusViewer.Status
            if spec["updateStrategy"]["type"] != "RollingUpdate" {
                return RolloutStatus::Failed(
                    "rollout status is only available for RollingUpdate strategy type".into(),
                );
            }
            if observed == 0 || generation > observed {
                return RolloutStatus::Waiting(
                    "Waiting for statefulset spec update to be observed...".into(),
                );
            }
            let ready = int(&status["readyReplicas"]);
            if let Some(want) = spec["replicas"].as_i64() {
                if ready < want {
                    return RolloutStatus::Waiting(format!(
                        "Waiting for {} pods to be ready...",
                        want - ready
                    ));
                }
            }
            let updated = int(&status["updatedReplicas"]);
            if let (Some(want), Some(partition)) = (
                spec["replicas"].as_i64(),
                spec["updateStrategy"]["rollingUpdate"]["partition"].as_i64(),
            ) {
                if updated < want - partition {
                    return RolloutStatus::Waiting(format!("Waiting for partitioned roll out to finish: {updated} out of {} new pods have been updated...", want - partition));
                }
            }
            if spec["updateStrategy"]["rollingUpdate"].is_object() {
                return RolloutStatus::Done(format!(
                    "partitioned roll out complete: {updated} new pods have been updated..."
                ));
            }
            let (current, update) = (&status["currentRevision"], &status["updateRevision"]);
            if current != update {
                return RolloutStatus::Waiting(format!(
                    "waiting for statefulset rolling update to complete {updated} pods at revision {}...",
                    update.as_str().unwrap_or_default()
                ));
            }
            RolloutStatus::Done(format!(
                "statefulset rolling update complete {} pods at revision {}...",
                int(&status["currentReplicas"]),
                update.as_str().unwrap_or_default()
            ))
        }
        other => {
            RolloutStatus::Failed(format!("no status viewer has been implemented for {other}"))
        }
    }
}

/// How long a wait lasts before the test fails instead of hanging.
pub const WAIT: Duration = Duration::from_secs(60);

/// Waits until `check` on the stored workload gives Some; panics with the last state
/// after [`WAIT`].
pub async fn wait_for<T>(
    fake: &FakeApiServer,
    w: &Workload,
    what: &str,
    mut check: impl FnMut(&Value) -> Option<T>,
) -> T {
    let start = Instant::now();
    loop {
        let obj = w.get(fake);
        if let Some(t) = check(&obj) {
            return t;
        }
        assert!(
            start.elapsed() < WAIT,
            "waited {}s for {} {}/{} to be {what}; it is now: {}",
            WAIT.as_secs(),
            w.kind.name(),
            w.namespace,
            w.name,
            serde_json::to_string_pretty(&obj).unwrap_or_default()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Waits until `kubectl rollout status` would say the workload rolled out; returns it.
pub async fn wait_rolled_out(fake: &FakeApiServer, w: &Workload) -> Value {
    wait_for(fake, w, "rolled out", |o| match rollout_status(o) {
        RolloutStatus::Done(_) => Some(o.clone()),
        RolloutStatus::Failed(m) => panic!("{} {}: {m}", w.kind.name(), w.name),
        RolloutStatus::Waiting(_) => None,
    })
    .await
}

/// Waits until `kubectl rollout status` would fail on the workload (a Deployment past
/// its progress deadline); returns kubectl's message.
pub async fn wait_rollout_failed(fake: &FakeApiServer, w: &Workload) -> String {
    wait_for(fake, w, "failed", |o| match rollout_status(o) {
        RolloutStatus::Failed(m) => Some(m),
        _ => None,
    })
    .await
}

/// Grants the chart's service account for these controller flags what workload
/// restarts need in `namespace` (get, list, watch and patch on the four workload
/// kinds), for tests whose chart values do not enable `rotation.workloadRestarts`
/// yet: the grant the chart makes when they do.
pub fn grant_restarts(fake: &FakeApiServer, controller_args: &[&str], namespace: &str) {
    let rbac = super::cluster::ChartRbac::for_controller_args(controller_args);
    let name = "test-workload-restarts";
    fake.grant(&[
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "Role",
               "metadata": {"name": name, "namespace": namespace},
               "rules": [
                   {"apiGroups": ["apps"], "resources": ["deployments", "statefulsets", "daemonsets"],
                    "verbs": ["get", "list", "watch", "patch"]},
                   {"apiGroups": ["batch"], "resources": ["cronjobs"],
                    "verbs": ["get", "list", "watch", "patch"]}]}),
        json!({"apiVersion": "rbac.authorization.k8s.io/v1", "kind": "RoleBinding",
               "metadata": {"name": name, "namespace": namespace},
               "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": name},
               "subjects": [{"kind": "ServiceAccount", "name": rbac.service_account,
                             "namespace": rbac.namespace}]}),
    ]);
}

/// The pod-template annotations of a stored workload.
pub fn template_annotations(obj: &Value, kind: Kind) -> Value {
    obj.pointer(&format!("{}/metadata/annotations", kind.template_pointer()))
        .cloned()
        .unwrap_or(Value::Null)
}
