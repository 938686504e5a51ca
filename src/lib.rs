//! sopsync: SOPS-compatible secrets for Kubernetes.
//!
//! Architecture map:
//! - [`core`]: pure format and crypto (no I/O).
#![forbid(unsafe_code)]

pub mod core;
