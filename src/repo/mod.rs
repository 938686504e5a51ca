//! Repositories of SOPS files: fetching (git), walking (limits, secure joins) and
//! rendering them into Kubernetes Secrets.

pub mod git;
pub mod names;
pub mod rekey;
pub mod render;
pub mod walk;

/// The name of a generator manifest.
/// (Here rather than in `render` so that `walk`, which keeps it while reading the tree, and
/// `render`, which reads it, both depend on this module and not on each other.)
pub const MANIFEST_NAME: &str = "sopsync.yaml";
