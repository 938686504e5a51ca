//! The controller's Prometheus metrics (one registry, no globals), served as text at
//! `/metrics`. Labels carry kinds, namespaces, names and error kinds: never values.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Labels of a reconcile outcome.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReconcileLabels {
    /// `SecretSource` or `SopsSecret`.
    pub kind: String,
    /// `success` or `error`.
    pub result: String,
    /// The error kind (`none` on success), e.g. `git`, `api`, `key_denied`.
    pub error: String,
}

/// Labels naming one object.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ObjectLabels {
    /// `SecretSource` or `SopsSecret`.
    pub kind: String,
    /// Its namespace.
    pub namespace: String,
    /// Its name.
    pub name: String,
}

/// Labels of a git fetch.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct FetchLabels {
    /// `success` or `error`.
    pub result: String,
}

/// Labels of a webhook request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct WebhookLabels {
    /// `accepted`, `unauthorized`, `too_large`, `rate_limited`, `bad_request`.
    pub result: String,
}

/// Labels of a rotation (a change rolled out).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RotationLabels {
    /// `InPlace` or `Versioned`.
    pub strategy: String,
}

/// Labels of a workload restart.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RestartLabels {
    /// `Deployment`, `StatefulSet`, `DaemonSet` or `CronJob`.
    pub kind: String,
    /// `success` or `error`.
    pub result: String,
}

fn duration_histogram() -> Histogram {
    // 5 ms .. ~80 s
    Histogram::new(exponential_buckets(0.005, 2.0, 15))
}

/// Every metric the controller exports.
pub struct Metrics {
    registry: Registry,
    /// Reconciles by kind, result and error kind.
    pub reconciles: Family<ReconcileLabels, Counter>,
    /// Reconcile durations by kind, result and error kind.
    pub reconcile_duration: Family<ReconcileLabels, Histogram, fn() -> Histogram>,
    /// Secrets managed per object (its inventory size).
    pub secrets_managed: Family<ObjectLabels, Gauge>,
    /// Unix time of the last successful sync per object.
    pub last_success: Family<ObjectLabels, Gauge<f64, AtomicU64>>,
    /// Git fetch durations by result.
    pub git_fetch_duration: Family<FetchLabels, Histogram, fn() -> Histogram>,
    /// Secrets written (server-side apply) and deleted.
    pub secret_writes: Counter,
    /// Secrets deleted by pruning.
    pub secret_deletes: Counter,
    /// Webhook requests by result.
    pub webhook_requests: Family<WebhookLabels, Counter>,
    /// 1 while this instance holds the leader lease.
    pub leader: Gauge,
    /// Changes of content rolled out to workloads, by strategy.
    pub rotations: Family<RotationLabels, Counter>,
    /// Workload restarts (pod-template patches), by workload kind and result.
    pub workload_restarts: Family<RestartLabels, Counter>,
    /// Rollouts that failed (Versioned: not complete in time), by strategy.
    pub rollouts_failed: Family<RotationLabels, Counter>,
    /// Seconds from a change being written to its rollout (InPlace: to the workloads'
    /// patch, the debounce window included; Versioned: to the rollout's completion).
    pub rollout_duration: Family<RotationLabels, Histogram, fn() -> Histogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Metrics::new()
    }
}

impl Metrics {
    /// A fresh registry with every metric registered under the `sopsync_` prefix.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sopsync");
        let reconciles = Family::<ReconcileLabels, Counter>::default();
        let reconcile_duration =
            Family::<ReconcileLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let secrets_managed = Family::<ObjectLabels, Gauge>::default();
        let last_success = Family::<ObjectLabels, Gauge<f64, AtomicU64>>::default();
        let git_fetch_duration =
            Family::<FetchLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        let secret_writes = Counter::default();
        let secret_deletes = Counter::default();
        let webhook_requests = Family::<WebhookLabels, Counter>::default();
        let leader = Gauge::default();
        let rotations = Family::<RotationLabels, Counter>::default();
        let workload_restarts = Family::<RestartLabels, Counter>::default();
        let rollouts_failed = Family::<RotationLabels, Counter>::default();
        let rollout_duration =
            Family::<RotationLabels, Histogram, fn() -> Histogram>::new_with_constructor(
                duration_histogram as fn() -> Histogram,
            );
        registry.register(
            "rotations",
            "Changes of decrypted content rolled out to workloads, by strategy",
            rotations.clone(),
        );
        registry.register(
            "workload_restarts",
            "Workload restarts (pod-template patches) by workload kind and result",
            workload_restarts.clone(),
        );
        registry.register(
            "rollouts_failed",
            "Rollouts that did not complete, by strategy",
            rollouts_failed.clone(),
        );
        registry.register(
            "rollout_duration_seconds",
            "Seconds from a change being written to its rollout, by strategy",
            rollout_duration.clone(),
        );
        registry.register(
            "reconcile",
            "Reconciles by kind, result and error kind",
            reconciles.clone(),
        );
        registry.register(
            "reconcile_duration_seconds",
            "Reconcile duration by kind, result and error kind",
            reconcile_duration.clone(),
        );
        registry.register(
            "secrets_managed",
            "Secrets in each object's inventory",
            secrets_managed.clone(),
        );
        registry.register(
            "last_success_timestamp_seconds",
            "Unix time of each object's last successful sync",
            last_success.clone(),
        );
        registry.register(
            "git_fetch_duration_seconds",
            "Git fetch duration by result",
            git_fetch_duration.clone(),
        );
        registry.register(
            "secret_writes",
            "Secrets written with server-side apply",
            secret_writes.clone(),
        );
        registry.register(
            "secret_deletes",
            "Secrets deleted by pruning",
            secret_deletes.clone(),
        );
        registry.register(
            "webhook_requests",
            "Git webhook requests by result",
            webhook_requests.clone(),
        );
        registry.register(
            "leader",
            "1 while this instance holds the leader lease",
            leader.clone(),
        );
        Metrics {
            registry,
            reconciles,
            reconcile_duration,
            secrets_managed,
            last_success,
            git_fetch_duration,
            secret_writes,
            secret_deletes,
            webhook_requests,
            leader,
            rotations,
            workload_restarts,
            rollouts_failed,
            rollout_duration,
        }
    }

    /// Records one reconcile.
    pub fn reconciled(&self, kind: &str, error_kind: Option<&str>, seconds: f64) {
        let labels = ReconcileLabels {
            kind: kind.into(),
            result: if error_kind.is_some() {
                "error"
            } else {
                "success"
            }
            .into(),
            error: error_kind.unwrap_or("none").into(),
        };
        self.reconciles.get_or_create(&labels).inc();
        self.reconcile_duration
            .get_or_create(&labels)
            .observe(seconds);
    }

    /// Records a webhook request's result.
    pub fn webhook(&self, result: &str) {
        self.webhook_requests
            .get_or_create(&WebhookLabels {
                result: result.into(),
            })
            .inc();
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl crate::server::ServerMetrics for Metrics {
    fn webhook(&self, result: &str) {
        Metrics::webhook(self, result);
    }

    fn encode(&self) -> String {
        Metrics::encode(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reconciles_are_counted_by_result_and_error_kind() {
        let m = Metrics::new();
        m.reconciled("SecretSource", None, 0.2);
        m.reconciled("SecretSource", Some("git"), 1.0);
        m.reconciled("SecretSource", Some("git"), 1.0);
        let text = m.encode();
        assert!(
            text.contains(
                r#"sopsync_reconcile_total{kind="SecretSource",result="error",error="git"} 2"#
            ),
            "{text}"
        );
        assert!(text.contains(
            r#"sopsync_reconcile_total{kind="SecretSource",result="success",error="none"} 1"#
        ));
        assert!(text.contains("sopsync_reconcile_duration_seconds_bucket"));
        assert!(text.ends_with("# EOF\n"));
    }
}
