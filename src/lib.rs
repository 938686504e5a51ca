//! sopsync: SOPS-compatible secrets for Kubernetes.
//!
//! Architecture map (see ARCHITECTURE.md):
//! - [`core`]: pure format and crypto (no I/O): tree, codecs, cipher, MAC, keys.
//! - [`child`]: running `git` and key commands with a deadline, bounded output, and
//!   their whole process group ended.
//! - [`keysource`]: the only reader of the SOPS_AGE_* environment and key files, and
//!   where the CLI's key sources (age, GnuPG) and recipients are put together.
//! - [`pgp`]: PGP through GnuPG (`gpg` under [`child`]'s limits): the user's for the
//!   CLI, a private per-reconcile home for the controller's `*.asc` keys.
//! - [`kms`]: AWS KMS through the official AWS SDK (feature `aws-kms`, on by default):
//!   the default credentials chain for the CLI, a namespace's credentials for the
//!   controller.
//! - [`small_file`]: reading a small file a user or repository named (never a FIFO or
//!   device, never past a cap): key files, `.sops.yaml`, the webhook secret.
//! - [`repo`]: Git fetch, safe tree walking, rendering SOPS files into Secrets, and
//!   the per-file plan of repository-wide key rotation and audit (`repo::rekey`).
//! - [`cli`]: the command-line shell over the core.
//! - [`controller`]: the in-cluster controller (CRDs, reconcile, status, metrics).
//! - [`server`]: the controller's HTTP endpoints (health, readiness, metrics, webhook).
//! - [`argocd`]: the Argo CD plugin (CMP v2): an app directory to manifests, modes safe/secrets/helm.
//! - [`helm`]: SOPS values files decrypted for helm and handed over through pipes.
//! - [`error`]: the binary's errors, exit codes and hints.
#![forbid(unsafe_code)]

pub mod argocd;
pub mod child;
pub mod cli;
pub mod controller;
pub mod core;
pub mod ephemeral;
pub mod error;
pub mod helm;
pub mod keysource;
pub mod kms;
pub mod pgp;
pub mod repo;
pub mod server;
pub mod small_file;
