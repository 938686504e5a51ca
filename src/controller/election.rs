//! Leader election over a `coordination.k8s.io/v1` Lease, with the timing rules of
//! client-go's `tools/leaderelection` (leaderelection.go), so that two replicas never
//! write at once even when the leader can still write Secrets but not its Lease:
//!
//! - **Renew deadline < lease duration.** The leader renews every retry period; if no
//!   renewal has succeeded within the renew deadline it stops leading (client-go:
//!   "RenewDeadline is the duration that the acting master will retry refreshing
//!   leadership before giving up", and `NewLeaderElector` requires
//!   `LeaseDuration > RenewDeadline`). The deadline counts from the moment the last
//!   successful renewal was *sent*, so the server's `renewTime` is no earlier and the
//!   Lease cannot expire before the leader has stopped: the margin is the lease grace.
//! - **Expiry judged by the local clock.** A standby takes the Lease only after it has
//!   seen the same record, unchanged, for `leaseDurationSeconds` on its own monotonic
//!   clock (client-go's `observedTime`), never from the holder's `renewTime`, so
//!   clock skew between replicas cannot shorten a lease.
//! - **Compare and swap.** Every write carries the `resourceVersion` it was computed
//!   from (a precondition in the merge patch), so of two replicas racing for an
//!   expired Lease one gets 409 Conflict and stays a standby.
//!
//! Timings from [`LeaseConfig`]: lease duration D, renew deadline D − grace, retry
//! period min(2 s, deadline / 2) — with the CLI defaults (15 s, grace 5 s) exactly
//! client-go's defaults (15 s / 10 s / 2 s).
//!
//! The verbs are `get`, `create` and `patch`, the ones the chart grants.

use super::LeaseConfig;
use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use kube::api::{Api, ObjectMeta, Patch, PatchParams, PostParams};
use kube::Client;
use rand_core::RngCore as _;
use serde_json::json;
use std::time::Duration;
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio::time::Instant;

/// Why leader election cannot start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ElectionError {
    /// The grace is zero or not shorter than the duration, so no renew deadline fits.
    #[error(
        "lease {lease}: the grace ({grace_seconds}s) must be at least 1s and shorter than the \
         duration ({duration_seconds}s); set --lease-grace below --lease-duration"
    )]
    Timing {
        /// The Lease.
        lease: String,
        /// `--lease-duration`.
        duration_seconds: u64,
        /// `--lease-grace`.
        grace_seconds: u64,
    },
}

/// The three durations of client-go's LeaderElectionConfig.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timing {
    /// How long a Lease is valid after a renewal (`leaseDurationSeconds`).
    pub lease_duration: Duration,
    /// How long the leader keeps trying to renew before it stops leading.
    pub renew_deadline: Duration,
    /// How often the leader renews and a standby looks at the Lease.
    pub retry_period: Duration,
}

impl Timing {
    /// The timings for a lease configuration, or why it has none.
    pub fn of(cfg: &LeaseConfig) -> Result<Timing, ElectionError> {
        if cfg.grace_seconds == 0 || cfg.grace_seconds >= cfg.duration_seconds {
            return Err(ElectionError::Timing {
                lease: format!("{}/{}", cfg.namespace, cfg.name),
                duration_seconds: cfg.duration_seconds,
                grace_seconds: cfg.grace_seconds,
            });
        }
        let renew_deadline = Duration::from_secs(cfg.duration_seconds - cfg.grace_seconds);
        Ok(Timing {
            lease_duration: Duration::from_secs(cfg.duration_seconds),
            renew_deadline,
            retry_period: (renew_deadline / 2).min(Duration::from_secs(2)),
        })
    }
}

/// What a replica last saw of the Lease, and when (client-go's observedRecord/observedTime).
struct Observed {
    holder: Option<String>,
    renew: Option<MicroTime>,
    duration: Duration,
    at: Instant,
}

struct Elector {
    api: Api<Lease>,
    cfg: LeaseConfig,
    timing: Timing,
    observed: Option<Observed>,
    /// `resourceVersion` of the Lease as last read or written.
    rv: Option<String>,
}

/// Starts electing: the receiver says whether this replica leads now. Closing every
/// receiver makes the task give the Lease up (if held) and finish.
pub fn spawn(
    client: Client,
    cfg: &LeaseConfig,
) -> Result<(watch::Receiver<bool>, JoinHandle<()>), ElectionError> {
    let timing = Timing::of(cfg)?;
    let elector = Elector {
        api: Api::namespaced(client, &cfg.namespace),
        cfg: cfg.clone(),
        timing,
        observed: None,
        rv: None,
    };
    let (tx, rx) = watch::channel(false);
    Ok((rx, tokio::spawn(elector.run(tx))))
}

/// What one attempt to take or renew the Lease came to.
enum Attempt {
    /// This replica holds the Lease; the renewal was sent at this instant.
    Held(Instant),
    /// Another replica holds an unexpired Lease.
    HeldByOther(String),
    /// The API server did not answer usefully; try again.
    Failed(String),
}

impl Elector {
    fn params(&self) -> PatchParams {
        PatchParams {
            field_manager: Some(format!("sopsync-lease-{}", self.cfg.identity)),
            ..Default::default()
        }
    }

    fn lease_name(&self) -> String {
        format!("{}/{}", self.cfg.namespace, self.cfg.name)
    }

    async fn run(mut self, tx: watch::Sender<bool>) {
        let mut failing = false;
        loop {
            // Standby: look at the Lease every retry period (jittered by up to 20%, as
            // client-go's JitterFactor 1.2) until it is ours.
            let renewed = loop {
                match self.try_acquire_or_renew().await {
                    Attempt::Held(sent) => break sent,
                    Attempt::HeldByOther(_) => failing = false,
                    Attempt::Failed(why) => {
                        if !failing {
                            tracing::warn!(lease = %self.lease_name(), error = %why, "cannot read or take the leader lease; retrying");
                        }
                        failing = true;
                    }
                }
                let jitter = self
                    .timing
                    .retry_period
                    .mul_f64(f64::from(rand_core::OsRng.next_u32() % 1000) / 5000.0);
                tokio::select! {
                    _ = tokio::time::sleep(self.timing.retry_period + jitter) => {}
                    _ = tx.closed() => return,
                }
            };
            failing = false;
            if tx.send(true).is_err() {
                self.release().await;
                return;
            }
            let outcome = self.keep(renewed, &tx).await;
            let _ = tx.send(false);
            match outcome {
                Kept::Closed => {
                    self.release().await;
                    return;
                }
                Kept::Lost(holder) => {
                    tracing::warn!(lease = %self.lease_name(), %holder, "the leader lease is held by another replica; stopping writes");
                }
                Kept::DeadlinePassed(why) => {
                    tracing::warn!(
                        lease = %self.lease_name(),
                        error = %why,
                        renew_deadline_seconds = self.timing.renew_deadline.as_secs(),
                        "could not renew the leader lease within the renew deadline; stopping writes before it can expire"
                    );
                }
            }
        }
    }

    /// Leading: renew every retry period; stop when the deadline passes without a
    /// renewal, when another replica holds the Lease, or when the receivers are gone.
    async fn keep(&mut self, mut renewed: Instant, tx: &watch::Sender<bool>) -> Kept {
        let mut last_error = String::from("no renewal attempted");
        loop {
            let deadline = renewed + self.timing.renew_deadline;
            let next = (Instant::now() + self.timing.retry_period).min(deadline);
            tokio::select! {
                _ = tokio::time::sleep_until(next) => {}
                _ = tx.closed() => return Kept::Closed,
            }
            if Instant::now() >= deadline {
                return Kept::DeadlinePassed(last_error);
            }
            // A renewal still in flight at the deadline counts as failed: the request
            // is dropped and leadership ends on time.
            let attempt = tokio::select! {
                a = tokio::time::timeout_at(deadline, self.try_acquire_or_renew()) => a,
                _ = tx.closed() => return Kept::Closed,
            };
            match attempt {
                Ok(Attempt::Held(sent)) => renewed = sent,
                Ok(Attempt::HeldByOther(holder)) => return Kept::Lost(holder),
                Ok(Attempt::Failed(why)) => {
                    tracing::info!(lease = %self.lease_name(), error = %why, "renewing the leader lease failed; retrying");
                    last_error = why;
                }
                Err(_) => return Kept::DeadlinePassed("the renewal did not finish in time".into()),
            }
        }
    }

    /// client-go's `tryAcquireOrRenew`: read the Lease; create it if missing; write
    /// ourselves in as holder if it is ours or has expired (with its resourceVersion).
    async fn try_acquire_or_renew(&mut self) -> Attempt {
        let lease = match self.api.get_opt(&self.cfg.name).await {
            Ok(l) => l,
            Err(e) => return Attempt::Failed(e.to_string()),
        };
        let sent = Instant::now();
        let now = MicroTime(k8s_openapi::jiff::Timestamp::now());
        let secs = i32::try_from(self.timing.lease_duration.as_secs()).unwrap_or(i32::MAX);
        let Some(lease) = lease else {
            let fresh = Lease {
                metadata: ObjectMeta {
                    name: Some(self.cfg.name.clone()),
                    namespace: Some(self.cfg.namespace.clone()),
                    ..Default::default()
                },
                spec: Some(LeaseSpec {
                    holder_identity: Some(self.cfg.identity.clone()),
                    lease_duration_seconds: Some(secs),
                    acquire_time: Some(now.clone()),
                    renew_time: Some(now),
                    lease_transitions: Some(0),
                    ..Default::default()
                }),
            };
            let pp = PostParams {
                field_manager: self.params().field_manager,
                ..Default::default()
            };
            return match self.api.create(&pp, &fresh).await {
                Ok(l) => self.wrote(l, sent),
                Err(e) => Attempt::Failed(e.to_string()),
            };
        };
        let spec = lease.spec.clone().unwrap_or_default();
        let holder = spec.holder_identity.clone().filter(|h| !h.is_empty());
        self.observe(&spec, holder.clone());
        self.rv = lease.metadata.resource_version.clone();
        let ours = holder.as_deref() == Some(self.cfg.identity.as_str());
        if let Some(other) = holder.as_ref().filter(|_| !ours) {
            let seen = self.observed.as_ref().expect("observed above");
            if seen.at + seen.duration > Instant::now() {
                return Attempt::HeldByOther(other.clone());
            }
        }
        let mut patch = json!({
            "metadata": { "resourceVersion": self.rv },
            "spec": {
                "holderIdentity": self.cfg.identity,
                "leaseDurationSeconds": secs,
                "renewTime": now,
            }
        });
        if !ours {
            patch["spec"]["acquireTime"] = json!(now);
            patch["spec"]["leaseTransitions"] = json!(spec.lease_transitions.unwrap_or(0) + 1);
        }
        match self
            .api
            .patch(&self.cfg.name, &self.params(), &Patch::Merge(&patch))
            .await
        {
            Ok(l) => self.wrote(l, sent),
            Err(e) => Attempt::Failed(e.to_string()),
        }
    }

    fn wrote(&mut self, lease: Lease, sent: Instant) -> Attempt {
        self.rv = lease.metadata.resource_version.clone();
        let spec = lease.spec.unwrap_or_default();
        let holder = spec.holder_identity.clone();
        self.observe(&spec, holder);
        Attempt::Held(sent)
    }

    /// Restarts the local expiry clock whenever the record changes.
    fn observe(&mut self, spec: &LeaseSpec, holder: Option<String>) {
        let duration = Duration::from_secs(
            spec.lease_duration_seconds
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or(0),
        );
        let same = self.observed.as_ref().is_some_and(|o| {
            o.holder == holder && o.renew == spec.renew_time && o.duration == duration
        });
        if !same {
            self.observed = Some(Observed {
                holder,
                renew: spec.renew_time.clone(),
                duration,
                at: Instant::now(),
            });
        }
    }

    /// Gives the Lease up on shutdown so a standby takes over at once (client-go's
    /// ReleaseOnCancel: no holder, a one-second duration), only if it is still ours.
    async fn release(&mut self) {
        let lease = match self.api.get_opt(&self.cfg.name).await {
            Ok(Some(l)) => l,
            Ok(None) => return,
            Err(e) => {
                tracing::warn!(lease = %self.lease_name(), error = %e, "could not release the leader lease");
                return;
            }
        };
        let spec = lease.spec.unwrap_or_default();
        if spec.holder_identity.as_deref() != Some(self.cfg.identity.as_str()) {
            return;
        }
        let patch = json!({
            "metadata": { "resourceVersion": lease.metadata.resource_version },
            "spec": { "holderIdentity": null, "leaseDurationSeconds": 1,
                      "renewTime": MicroTime(k8s_openapi::jiff::Timestamp::now()) }
        });
        match self
            .api
            .patch(&self.cfg.name, &self.params(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::info!(lease = %self.lease_name(), "released the leader lease"),
            Err(e) => {
                tracing::warn!(lease = %self.lease_name(), error = %e, "could not release the leader lease")
            }
        }
    }
}

/// How a term as leader ended.
enum Kept {
    /// Every receiver is gone (shutdown).
    Closed,
    /// Another replica holds the Lease.
    Lost(String),
    /// No renewal succeeded within the renew deadline.
    DeadlinePassed(String),
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(duration_seconds: u64, grace_seconds: u64) -> LeaseConfig {
        LeaseConfig {
            name: "l".into(),
            namespace: "ns".into(),
            identity: "me".into(),
            duration_seconds,
            grace_seconds,
        }
    }

    #[test]
    fn cli_defaults_give_client_go_default_timings() {
        let t = Timing::of(&cfg(15, 5)).expect("valid");
        assert_eq!(
            t,
            Timing {
                lease_duration: Duration::from_secs(15),
                renew_deadline: Duration::from_secs(10),
                retry_period: Duration::from_secs(2),
            }
        );
    }

    #[test]
    fn renew_deadline_is_always_shorter_than_the_lease() {
        for d in 2..40 {
            for g in 1..d {
                let t = Timing::of(&cfg(d, g)).expect("valid");
                assert!(t.retry_period < t.renew_deadline && t.renew_deadline < t.lease_duration);
            }
        }
        assert!(Timing::of(&cfg(5, 5)).is_err());
        assert!(Timing::of(&cfg(5, 0)).is_err());
    }
}
