//! Repositories of SOPS files: fetching (git), walking (limits, secure joins) and
//! rendering them into Kubernetes Secrets.

pub mod git;
pub mod names;
pub mod rekey;
pub mod render;
pub mod walk;
