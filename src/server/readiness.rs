//! What `/readyz` means, for each role a replica can be in (issue 11, point 8).
//!
//! - **Without leader election** the one replica is ready once its caches (the
//!   SecretSource and SopsSecret informers) have synced: before that it would act on
//!   an empty view of the cluster.
//! - **A leader** is ready once its caches have synced since it took the lease. While
//!   they sync it is not ready, exactly like the single replica.
//! - **A standby** is ready while it waits for the lease: it is healthy and can take
//!   over. Were standbys not ready, a rolling upgrade of two replicas would deadlock
//!   (the new pod waits for the old leader's lease, the old pod is not removed until
//!   the new one is ready), and the Service would route the webhook to the leader only,
//!   though any replica can forward a push.
//!
//! A replica that has not yet reached the API server (or the lease) is not ready.

use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::Arc;

/// The role and progress of this replica, shared by the controller (which sets it)
/// and the HTTP server (which reports it). Cloning shares the state.
#[derive(Clone, Debug, Default)]
pub struct Readiness(Arc<AtomicU8>);

/// The states, in the order a replica usually passes through them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    /// Started; has not reached the lease or synced its caches yet.
    Starting,
    /// Leader election: another replica holds the lease; this one waits, healthy.
    Standby,
    /// The leader (or the only replica), its caches still syncing.
    Syncing,
    /// The leader (or the only replica), its caches synced: it reconciles.
    Synced,
}

impl Role {
    fn from_u8(v: u8) -> Role {
        match v {
            1 => Role::Standby,
            2 => Role::Syncing,
            3 => Role::Synced,
            _ => Role::Starting,
        }
    }

    fn to_u8(self) -> u8 {
        match self {
            Role::Starting => 0,
            Role::Standby => 1,
            Role::Syncing => 2,
            Role::Synced => 3,
        }
    }

    /// Whether `/readyz` answers 200 in this state.
    pub fn is_ready(self) -> bool {
        matches!(self, Role::Standby | Role::Synced)
    }

    /// The one-line body `/readyz` answers with.
    pub fn describe(self) -> &'static str {
        match self {
            Role::Starting => "not ready: starting\n",
            Role::Standby => "ready: standby, waiting for the leader lease\n",
            Role::Syncing => "not ready: caches syncing\n",
            Role::Synced => "ready: caches synced\n",
        }
    }
}

impl Readiness {
    /// A replica that has just started.
    pub fn new() -> Readiness {
        Readiness::default()
    }

    /// Moves to `role`.
    pub fn set(&self, role: Role) {
        self.0.store(role.to_u8(), Ordering::Release);
    }

    /// The current role.
    pub fn role(&self) -> Role {
        Role::from_u8(self.0.load(Ordering::Acquire))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_synced_leader_or_a_standby_is_ready() {
        let r = Readiness::new();
        assert_eq!(r.role(), Role::Starting);
        assert!(!r.role().is_ready());
        for (role, ready) in [
            (Role::Standby, true),
            (Role::Syncing, false),
            (Role::Synced, true),
            (Role::Starting, false),
        ] {
            r.clone().set(role);
            assert_eq!(r.role(), role, "a clone shares the state");
            assert_eq!(r.role().is_ready(), ready, "{role:?}");
        }
    }
}
