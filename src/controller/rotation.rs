//! Safe rotation (reserved). The `rotation` field of a SecretSource is part of the API
//! so that the work that follows (versioned immutable Secrets named `<name>-<hash>`,
//! restarting the workloads that consume a changed Secret, keeping `retain` old
//! versions) needs no breaking change. Today only the default in-place strategy is
//! implemented; anything else stalls the source with a clear reason instead of being
//! silently ignored.

use super::crd::{RotationSpec, RotationStrategy};

pub mod rollout;
pub mod versioned;
pub mod versioned_sync;

/// Why a rotation setting cannot be honoured yet (the Stalled message), if it cannot.
pub fn unsupported(rotation: Option<&RotationSpec>) -> Option<String> {
    let r = rotation?;
    if r.strategy == RotationStrategy::Versioned {
        // Implemented: versioned.rs and versioned_sync.rs.
        return None;
    }
    if !r.restart_workloads.is_empty() {
        return Some(
            "spec.rotation.restartWorkloads is reserved and not implemented yet; remove it".into(),
        );
    }
    if r.retain.is_some() {
        return Some("spec.rotation.retain applies to the Versioned strategy; remove it".into());
    }
    None
}

/// The name a versioned Secret will get: `<name>-<first 10 hex digits of the content
/// hash>` (reserved for the Versioned strategy; fixed here so it never changes).
pub fn versioned_name(name: &str, content_hash: &str) -> String {
    let hex = content_hash.strip_prefix("sha256:").unwrap_or(content_hash);
    format!("{name}-{}", &hex[..hex.len().min(10)])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::crd::WorkloadRef;

    #[test]
    fn in_place_and_versioned_are_supported_and_reserved_settings_are_named() {
        assert_eq!(unsupported(None), None);
        assert_eq!(unsupported(Some(&RotationSpec::default())), None);
        let versioned = RotationSpec {
            strategy: RotationStrategy::Versioned,
            retain: Some(3),
            restart_workloads: vec![WorkloadRef {
                kind: "Deployment".into(),
                name: "api".into(),
            }],
            ..Default::default()
        };
        assert_eq!(unsupported(Some(&versioned)), None);
        let restart = RotationSpec {
            restart_workloads: vec![WorkloadRef {
                kind: "Deployment".into(),
                name: "api".into(),
            }],
            ..Default::default()
        };
        assert!(unsupported(Some(&restart))
            .expect("refused")
            .contains("restartWorkloads"));
    }

    #[test]
    fn versioned_names_use_the_content_hash() {
        assert_eq!(
            versioned_name("db", "sha256:0123456789abcdef"),
            "db-0123456789"
        );
    }
}
