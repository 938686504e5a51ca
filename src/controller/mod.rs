//! The in-cluster controller: keeps Kubernetes Secrets equal to what SOPS files in Git
//! (SecretSource) or inline (SopsSecret) say, using kube-runtime's Controller.
//!
//! Layout (STYLE.md 10): [`crd`] the resource types; [`apply`] the pure desired-state
//! and inventory logic; [`status`] conditions; [`metrics`] the Prometheus registry.

pub mod apply;
pub mod crd;
pub mod metrics;
pub mod rotation;
pub mod status;
