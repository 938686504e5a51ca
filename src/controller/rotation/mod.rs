//! Safe rotation (docs/rotation.md): how a change of a Secret's decrypted content
//! reaches the workloads that consume it.
//!
//! - [`digest_key`]: the per-installation HMAC key (a Secret in the controller's own
//!   namespace, created once).
//! - [`digest`] (pure): keyed digests of Secret data, of the Secrets a workload uses, and
//!   versioned names. A digest of plaintext placed where the plaintext is not is always
//!   keyed: a bare SHA-256 of a PIN is brute-forced by anyone who can read a Deployment.
//! - [`podspec`] (pure): the Secrets a pod spec references, and renaming one of them.
//! - [`debounce`] (pure): when the restarts of a change are due (changes within the
//!   window are one rollout), with `now` a parameter read from [`clock`] (the system
//!   clock, or in sopsync's own tests a shifted one).
//! - [`workloads`]: reading the workload kinds (Deployment, StatefulSet, DaemonSet,
//!   CronJob) and patching their pod-template annotation.
//! - [`versioned`] (pure), [`versioned_sync`] and [`versioned_gc`]: the Versioned strategy
//!   (immutable versions, the one-patch switch, retention and deletion of old versions), with
//!   [`rollout`] (pure) telling when a workload finished rolling out.
//! - [`recipients`]: which recipients opened a sync's files (`status.decryption`), so an
//!   old key is known to be unused before it leaves the cluster (key rotation).
//! - [`restart`]: the InPlace strategy: which workloads a change restarts (pure), and
//!   restarting them; [`inplace`] runs it after a sync (window, key, status, Events,
//!   metrics).
//!
//! A change is a change of the decrypted content: re-encrypting a file, `rotate`,
//! `updatekeys`, a new `lastmodified` or a comment edit leave the Secret's data as it
//! was, so nothing is written (apply.rs) and nothing restarts.

pub mod clock;
pub mod debounce;
pub mod digest;
pub mod digest_key;
pub mod inplace;
pub mod podspec;
pub mod recipients;
pub mod restart;
pub mod rollout;
pub mod versioned;
pub mod versioned_gc;
pub mod versioned_sync;
pub mod workloads;

use super::crd::{RotationSpec, RotationStrategy, MAX_RETAIN};
use std::time::Duration;

/// The default `spec.rotation.debounce` when the controller is given none.
pub const DEFAULT_DEBOUNCE: Duration = Duration::from_secs(10);

/// The default `spec.rotation.retain` (Versioned).
pub const DEFAULT_RETAIN: u32 = 2;

/// Why a rotation setting cannot be honoured (the Stalled message), if it cannot.
pub fn unsupported(rotation: Option<&RotationSpec>) -> Option<String> {
    let r = rotation?;
    if r.strategy == RotationStrategy::Versioned {
        // Implemented by versioned_sync.rs; every setting applies.
        return None;
    }
    // Settings of the Versioned strategy mean nothing in place: refused rather than
    // silently ignored, so a typo in `strategy` is not mistaken for a working setup.
    let versioned_only = [
        ("retain", r.retain.is_some()),
        ("keepPlainSecret", r.keep_plain_secret),
        ("rollbackOnFailure", r.rollback_on_failure),
        ("rolloutTimeout", r.rollout_timeout.is_some()),
    ];
    if let Some((field, _)) = versioned_only.iter().find(|(_, set)| *set) {
        return Some(format!(
            "spec.rotation.{field} applies only to strategy Versioned; remove it or set strategy: Versioned"
        ));
    }
    None
}

/// Why `spec.rotation` stops a sync before anything is fetched: (reason, message).
pub fn refused(
    rotation: Option<&RotationSpec>,
    default_debounce: Duration,
) -> Option<(&'static str, String)> {
    if let Some(m) = unsupported(rotation) {
        return Some(("RotationUnsupported", m));
    }
    if let Err(m) = debounce_of(rotation, default_debounce) {
        return Some(("InvalidSpec", m));
    }
    if let Err(m) = rollout_timeout_of(rotation) {
        return Some(("InvalidSpec", m));
    }
    None
}

/// `spec.rotation.debounce` (or `default` when unset), or why it is invalid.
pub fn debounce_of(rotation: Option<&RotationSpec>, default: Duration) -> Result<Duration, String> {
    match rotation.and_then(|r| r.debounce.as_deref()) {
        None => Ok(default),
        Some(text) => parse_duration(text).ok_or_else(|| {
            format!("spec.rotation.debounce {text:?}: expected a duration such as 0s, 10s or 1m")
        }),
    }
}

/// `spec.rotation.rolloutTimeout`, when set, or why it is invalid.
pub fn rollout_timeout_of(rotation: Option<&RotationSpec>) -> Result<Option<Duration>, String> {
    match rotation.and_then(|r| r.rollout_timeout.as_deref()) {
        None => Ok(None),
        Some(text) => match parse_duration(text) {
            Some(d) if !d.is_zero() => Ok(Some(d)),
            _ => Err(format!(
                "spec.rotation.rolloutTimeout {text:?}: expected a positive duration such as 5m"
            )),
        },
    }
}

/// `spec.rotation.retain`, or its default.
pub fn retain_of(rotation: Option<&RotationSpec>) -> u32 {
    rotation
        .and_then(|r| r.retain)
        .unwrap_or(DEFAULT_RETAIN)
        .min(MAX_RETAIN)
}

/// Parses `0s`, `30s`, `5m`, `1h`, `1h30m` (zero allowed: no debounce).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total = 0u64;
    let mut digits = String::new();
    let mut units = 0;
    for c in text.trim().chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let n: u64 = digits.parse().ok()?;
        digits.clear();
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            _ => return None,
        };
        units += 1;
        total = total.saturating_add(n.saturating_mul(unit));
    }
    (digits.is_empty() && units > 0).then(|| Duration::from_secs(total))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn in_place_is_supported_and_versioned_settings_are_named() {
        assert_eq!(unsupported(None), None);
        assert_eq!(unsupported(Some(&RotationSpec::default())), None);
        let versioned = RotationSpec {
            strategy: RotationStrategy::Versioned,
            retain: Some(3),
            keep_plain_secret: true,
            rollback_on_failure: true,
            rollout_timeout: Some("5m".into()),
            ..Default::default()
        };
        assert_eq!(unsupported(Some(&versioned)), None);
        let retain = RotationSpec {
            retain: Some(3),
            ..Default::default()
        };
        assert!(unsupported(Some(&retain))
            .expect("refused")
            .contains("spec.rotation.retain"));
    }

    #[test]
    fn debounce_defaults_to_the_controller_flag_and_zero_is_allowed() {
        let d = Duration::from_secs(7);
        assert_eq!(debounce_of(None, d), Ok(d));
        let zero = RotationSpec {
            debounce: Some("0s".into()),
            ..Default::default()
        };
        assert_eq!(debounce_of(Some(&zero), d), Ok(Duration::ZERO));
        let bad = RotationSpec {
            debounce: Some("10".into()),
            ..Default::default()
        };
        assert!(debounce_of(Some(&bad), d)
            .expect_err("refused")
            .contains("spec.rotation.debounce"));
        assert_eq!(parse_duration("1m30s"), Some(Duration::from_secs(90)));
        for text in ["", "s", "5x", "-1s", "5"] {
            assert_eq!(parse_duration(text), None, "{text}");
        }
    }

    #[test]
    fn retain_defaults_to_two_and_is_capped() {
        assert_eq!(retain_of(None), 2);
        let many = RotationSpec {
            retain: Some(99),
            ..Default::default()
        };
        assert_eq!(retain_of(Some(&many)), MAX_RETAIN);
    }
}
