//! The custom resources the controller serves (`sopsync.io/v1alpha1`), as Rust types.
//! `sopsync crd` prints the CustomResourceDefinitions generated from them; the copies in
//! `charts/sopsync/crds/` are checked against that output by a test (STYLE.md 20).
//!
//! - [`SecretSource`]: a directory of a Git repository whose SOPS files become Secrets
//!   in the SecretSource's own namespace.
//! - [`SopsSecret`]: one SOPS-encrypted Secret manifest held inline (ciphertext only);
//!   the controller decrypts it with a key from the same namespace.
//!
//! Security: every reference to another object is namespace-local. A key Secret may name
//! a namespace only to be refused when it is not the object's own (a denial is reported
//! as a condition and an Event, never followed).

use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The API group of our resources.
pub const GROUP: &str = "sopsync.io";
/// The API version of our resources.
pub const VERSION: &str = "v1alpha1";
/// The default resync interval.
pub const DEFAULT_INTERVAL: &str = "5m";
/// The key Secret used when an object names none.
pub const DEFAULT_KEY_SECRET: &str = "sopsync-age-key";

fn default_interval() -> String {
    DEFAULT_INTERVAL.to_string()
}

fn default_true() -> bool {
    true
}

fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// Secrets from SOPS files in a Git repository.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sopsync.io",
    version = "v1alpha1",
    kind = "SecretSource",
    namespaced,
    status = "SyncStatus",
    derive = "PartialEq",
    shortname = "secsrc",
    category = "sopsync",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Revision","type":"string","jsonPath":".status.lastAppliedRevision"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SecretSourceSpec {
    /// The Git URL: https://, http://, ssh://, git:// or file://.
    pub url: String,
    /// Branch, tag or commit id to sync (default: the remote's HEAD).
    #[serde(default, rename = "ref", skip_serializing_if = "Option::is_none")]
    pub git_ref: Option<String>,
    /// Directory inside the repository holding the SOPS files (default: the root).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub path: Option<String>,
    /// How often to fetch and resync, e.g. `30s`, `5m`, `1h` (default `5m`).
    #[serde(default = "default_interval")]
    pub interval: String,
    /// A Secret in this namespace with Git credentials: `username` and `password` (or a
    /// token in `password`) for HTTP, or `identity` (a private key) and `known_hosts`
    /// for SSH.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth_secret_ref: Option<LocalSecretRef>,
    /// Where the age keys that decrypt the files come from.
    #[serde(default, skip_serializing_if = "is_default")]
    pub decryption: Decryption,
    /// How the Secrets are written.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target: TargetOptions,
    /// Delete Secrets this source created when they leave Git (default true). Only
    /// Secrets in `status.inventory` are ever deleted.
    #[serde(default = "default_true")]
    pub prune: bool,
    /// Stop syncing (nothing is fetched, written or deleted) while true.
    #[serde(default)]
    pub suspend: bool,
    /// How a changed Secret reaches the workloads that consume it (docs/rotation.md):
    /// updated in place and the workloads restarted (the default), or versioned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationSpec>,
}

/// One SOPS-encrypted Secret, held inline.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "sopsync.io",
    version = "v1alpha1",
    kind = "SopsSecret",
    namespaced,
    status = "SyncStatus",
    derive = "PartialEq",
    shortname = "sopss",
    category = "sopsync",
    printcolumn = r#"{"name":"Ready","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].status"}"#,
    printcolumn = r#"{"name":"Reason","type":"string","jsonPath":".status.conditions[?(@.type==\"Ready\")].reason"}"#,
    printcolumn = r#"{"name":"Age","type":"date","jsonPath":".metadata.creationTimestamp"}"#
)]
#[serde(rename_all = "camelCase")]
pub struct SopsSecretSpec {
    /// The SOPS-encrypted `kind: Secret` manifest (YAML or JSON) exactly as sops wrote
    /// it. Its `metadata.name` must be this object's name, and its namespace (if any)
    /// this object's namespace. The MAC is always verified. Empty when `generator` is
    /// set (exactly one of the two).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub encrypted: String,
    /// One `sopsync.yaml` entry (without name and namespace: the Secret is named like
    /// this object, in its namespace) whose SOPS files are in `files`. Instead of
    /// `encrypted`; what the Argo CD plugin's safe mode emits for a generator.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorSpec>,
    /// The SOPS files `generator` reads: path (relative, as the entry names it) → the
    /// text exactly as sops wrote it. At most 64 files and 1 MiB in total.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub files: BTreeMap<String, String>,
    /// Where the age keys come from.
    #[serde(default, skip_serializing_if = "is_default")]
    pub decryption: Decryption,
    /// Labels and annotations added to the Secret.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target: TargetOptions,
    /// Stop syncing while true.
    #[serde(default)]
    pub suspend: bool,
    /// How a changed Secret reaches the workloads that consume it (docs/rotation.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationSpec>,
}

/// A `sopsync.yaml` entry carried by a SopsSecret (README: "The sopsync.yaml format"),
/// without its name and namespace, which are the SopsSecret's own.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GeneratorSpec {
    /// The Secret's `type` (default `Opaque`).
    #[serde(default, rename = "type", skip_serializing_if = "Option::is_none")]
    pub secret_type: Option<String>,
    /// Labels put on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations put on the Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// Flat SOPS files (dotenv, JSON, YAML) in `files`: each key becomes a data key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env_files: Vec<String>,
    /// Only these keys of `envFiles`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub include: Option<Vec<String>>,
    /// Whole decrypted files as data keys.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub files: Vec<GeneratorFileRef>,
}

/// A whole file of a generator as one data key.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct GeneratorFileRef {
    /// The file: a key of `spec.files`.
    pub path: String,
    /// The data key (default: the file name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub key: Option<String>,
}

/// At most this many files in a SopsSecret's `spec.files`.
pub const MAX_GENERATOR_FILES: usize = 64;
/// At most this many bytes of files in a SopsSecret's `spec.files`: etcd keeps an
/// object under 1.5 MiB, and the entry, metadata and status need room too.
pub const MAX_GENERATOR_BYTES: usize = 1 << 20;
/// At most this many bytes in a path of `spec.files`.
pub const MAX_GENERATOR_PATH: usize = 512;

/// Is `path` a canonical relative path (no empty, `.` or `..` part, no leading `/`,
/// no `\`, no control character)? Returns the rule it breaks, as "has …", "is …".
pub fn check_carried_path(path: &str) -> Result<(), &'static str> {
    if path.len() > MAX_GENERATOR_PATH {
        return Err("is longer than 512 bytes");
    }
    if path.starts_with('/') {
        return Err("is absolute");
    }
    if path.contains('\\') || path.chars().any(char::is_control) {
        return Err("holds a backslash or control character");
    }
    if path.split('/').any(|part| matches!(part, "" | "." | "..")) {
        return Err("has an empty, `.` or `..` part");
    }
    Ok(())
}

impl GeneratorSpec {
    /// The entry this spec describes for the Secret `name` in `namespace`, and the files
    /// it reads (path → bytes), after checking that the object holds exactly the files
    /// the entry reads, under canonical relative paths and within the limits. The
    /// error says which field breaks which rule (never a value).
    pub fn inputs(
        &self,
        files: &BTreeMap<String, String>,
        name: &str,
        namespace: &str,
    ) -> Result<
        (
            crate::repo::render::GeneratorEntry,
            BTreeMap<String, Vec<u8>>,
        ),
        String,
    > {
        use crate::repo::render::{GeneratorEntry, GeneratorFile};
        if files.len() > MAX_GENERATOR_FILES {
            return Err(format!(
                "spec.files holds {} files; at most {MAX_GENERATOR_FILES}",
                files.len()
            ));
        }
        let total: usize = files.values().map(String::len).sum();
        if total > MAX_GENERATOR_BYTES {
            return Err(format!(
                "spec.files holds {total} bytes; at most {MAX_GENERATOR_BYTES}"
            ));
        }
        for path in files.keys() {
            check_carried_path(path).map_err(|rule| format!("spec.files: path {path:?} {rule}"))?;
        }
        let entry = GeneratorEntry {
            name: name.to_string(),
            namespace: Some(namespace.to_string()),
            secret_type: self.secret_type.clone(),
            labels: self.labels.clone(),
            annotations: self.annotations.clone(),
            env_files: self.env_files.clone(),
            include: self.include.clone(),
            files: self
                .files
                .iter()
                .map(|f| GeneratorFile {
                    path: f.path.clone(),
                    key: f.key.clone().unwrap_or_else(|| {
                        f.path.rsplit('/').next().unwrap_or(&f.path).to_string()
                    }),
                })
                .collect(),
        };
        let read = entry.references();
        if read.is_empty() {
            return Err("spec.generator reads no file (envFiles and files are empty)".into());
        }
        for path in &read {
            if !files.contains_key(*path) {
                return Err(format!(
                    "spec.generator reads {path:?}, which is not in spec.files"
                ));
            }
        }
        if let Some(extra) = files.keys().find(|p| !read.contains(&p.as_str())) {
            return Err(format!(
                "spec.files holds {extra:?}, which spec.generator does not read"
            ));
        }
        let bytes = files
            .iter()
            .map(|(p, text)| (p.clone(), text.as_bytes().to_vec()))
            .collect();
        Ok((entry, bytes))
    }
}

/// A Secret in the object's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct LocalSecretRef {
    /// The Secret's name.
    pub name: String,
}

/// A Secret holding age identities: every data entry whose key ends in `.agekey` is
/// read as an age identity file (the Flux convention).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct KeySecretRef {
    /// The Secret's name.
    pub name: String,
    /// Must be empty or the object's own namespace: keys are never read across
    /// namespaces (another value is denied).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Where decryption keys come from.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Decryption {
    /// The key Secret (default: `sopsync-age-key` in the object's namespace).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_ref: Option<KeySecretRef>,
    /// Also use the controller's own key. Allowed only in namespaces the controller was
    /// started to allow (`--controller-key-namespaces`); elsewhere it is denied.
    #[serde(default, skip_serializing_if = "is_default")]
    pub use_controller_key: bool,
}

/// How Secrets are written.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TargetOptions {
    /// Labels added to every Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Annotations added to every Secret.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    /// A prefix put before every Secret name (SecretSource only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name_prefix: Option<String>,
}

/// The most old versions `spec.rotation.retain` may ask for: it bounds the status
/// (each Secret lists the versions it keeps) and the Secrets kept per Secret.
pub const MAX_RETAIN: u32 = 10;

/// How a changed Secret is rolled out (docs/rotation.md). A change is a change of the
/// decrypted content: re-encrypting a file changes nothing here.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// `InPlace` (default) updates each Secret in place and restarts the workloads that
    /// consume it. `Versioned` writes an immutable Secret `<name>-<version>` per content
    /// version and switches the workloads' references to it.
    #[serde(default)]
    pub strategy: RotationStrategy,
    /// Which workloads of the namespace are restarted (InPlace) or switched (Versioned)
    /// when a Secret they use changes: `Annotated` (default) only those that opt in by
    /// annotation (`sopsync.io/restart-on-change: "true"`, or Reloader's
    /// `reloader.stakater.com/auto: "true"` / `secret.reloader.stakater.com/reload`),
    /// `Auto` every workload that references the Secret, `None` none (besides
    /// `restartWorkloads`).
    #[serde(default)]
    pub restart: RestartPolicy,
    /// Workloads restarted (or switched) whenever a Secret of this object changes, in
    /// addition to those `restart` selects.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_workloads: Vec<WorkloadRef>,
    /// Changes within this window are rolled out once, e.g. `10s`, `1m`; `0s` rolls out
    /// at once (default: the controller's `--rotation-debounce`, 10s).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debounce: Option<String>,
    /// Versioned: how many previous versions of each Secret are kept (default 2, at most
    /// 10).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(max = 10))]
    pub retain: Option<u32>,
    /// Versioned: also keep a plain `<name>` Secret up to date, for consumers that cannot
    /// follow renames.
    #[serde(default, skip_serializing_if = "is_default")]
    pub keep_plain_secret: bool,
    /// Versioned: when a rollout fails, switch the references back to the previous
    /// version.
    #[serde(default, skip_serializing_if = "is_default")]
    pub rollback_on_failure: bool,
    /// Versioned: how long a rollout may take before it counts as failed, e.g. `10m`
    /// (default: the workload's `progressDeadlineSeconds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_timeout: Option<String>,
}

/// How Secrets change.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RotationStrategy {
    /// Update the Secret in place, then restart the workloads that use it.
    #[default]
    InPlace,
    /// Immutable versioned Secrets; workloads' references are switched to each new one.
    Versioned,
}

/// Which workloads a change restarts (besides `restartWorkloads`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RestartPolicy {
    /// Workloads that opt in by annotation (ours or Reloader's).
    #[default]
    Annotated,
    /// Every workload that references the changed Secret.
    Auto,
    /// None.
    None,
}

/// The kinds of workload a rotation restarts.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub enum WorkloadKind {
    /// apps/v1 Deployment.
    Deployment,
    /// apps/v1 StatefulSet.
    StatefulSet,
    /// apps/v1 DaemonSet.
    DaemonSet,
    /// batch/v1 CronJob (its jobTemplate's pod template; running Jobs are left alone).
    CronJob,
}

impl WorkloadKind {
    /// Every kind, in a fixed order.
    pub const ALL: [WorkloadKind; 4] = [
        WorkloadKind::Deployment,
        WorkloadKind::StatefulSet,
        WorkloadKind::DaemonSet,
        WorkloadKind::CronJob,
    ];

    /// The kind's name, as on the wire.
    pub fn as_str(self) -> &'static str {
        match self {
            WorkloadKind::Deployment => "Deployment",
            WorkloadKind::StatefulSet => "StatefulSet",
            WorkloadKind::DaemonSet => "DaemonSet",
            WorkloadKind::CronJob => "CronJob",
        }
    }
}

/// A workload in the same namespace.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, JsonSchema,
)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet`, `DaemonSet` or `CronJob`.
    pub kind: WorkloadKind,
    /// Its name.
    pub name: String,
}

/// The most workloads `status.rotation.workloads` lists; the others are counted in
/// `workloadsOmitted`, so the status stays far below the object size limit however many
/// workloads a source feeds.
pub const MAX_WORKLOADS_IN_STATUS: usize = 50;

/// What rotation did last (`status.rotation`). Bounded: at most
/// [`MAX_WORKLOADS_IN_STATUS`] workloads are listed, and each Secret keeps at most
/// [`MAX_RETAIN`] old versions, named by their short version suffix only.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// When a change was written whose restarts wait for the debounce window to close
    /// (RFC 3339); absent when nothing waits. Kept here so that another replica taking
    /// over still rolls the change out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pending_since: Option<String>,
    /// Versioned: the versions of each Secret.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretVersions>,
    /// The workloads last restarted or switched, failures first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub workloads: Vec<WorkloadRollout>,
    /// How many more workloads were restarted or switched than `workloads` lists.
    #[serde(default, skip_serializing_if = "is_default")]
    pub workloads_omitted: u32,
}

/// The versions of one Secret (Versioned). A version `v` of Secret `name` is the
/// immutable Secret `<name>-<v>`.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersions {
    /// The Secret's (unversioned) name.
    pub name: String,
    /// The version the workloads are switched to.
    pub current_version: String,
    /// Previous versions still kept, newest first (at most `retain`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions_kept: Vec<String>,
}

/// Where one workload's rollout stands.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRollout {
    /// The workload's kind.
    pub kind: WorkloadKind,
    /// The workload's name.
    pub name: String,
    /// Where its rollout stands.
    pub state: RolloutState,
    /// When sopsync last restarted it or switched its references (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_restart: Option<String>,
    /// Why, for `Failed` (never a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
    /// Versioned: the references switched (old Secret name -> new version) by the
    /// switches since the last complete rollout: the old versions this workload may
    /// still run, which are kept until its rollout completes, and where a rollback goes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switched: Vec<SwitchedRef>,
}

/// One reference switched from an old Secret name to a new version (names only).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SwitchedRef {
    /// The Secret name the pod template named before.
    pub from: String,
    /// The version it names now.
    pub to: String,
}

/// A rollout's state.
#[derive(
    Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub enum RolloutState {
    /// InPlace: the pod template was patched; the rollout itself is not followed.
    Restarted,
    /// Versioned: the rollout is under way.
    Progressing,
    /// Versioned: the rollout finished (the rules of `kubectl rollout status`).
    Complete,
    /// The workload could not be restarted, or its rollout did not finish in time.
    Failed,
    /// Versioned: the rollout failed and the references were switched back.
    RolledBack,
}

/// What the controller last did with an object (both kinds share it).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SyncStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`, `Reconciling` and `Stalled`, each with a reason.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The last revision (Git commit, or `inline`) whose Secrets were all written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_applied_revision: Option<String>,
    /// The last revision a sync was attempted at.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_attempted_revision: Option<String>,
    /// The Secrets this object created and owns: the only ones it may ever delete.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inventory: Vec<InventoryEntry>,
    /// The outcome for each Secret of the last sync.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub secrets: Vec<SecretResult>,
    /// What rotation did last: restarts, versions, rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
    /// Which recipients opened the files of the last sync that decrypted any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub decryption: Option<DecryptionStatus>,
}

/// The most recipients `status.decryption.recipients` lists (those that opened the most
/// files); the others are counted in `recipientsOmitted`.
pub const MAX_RECIPIENTS_IN_STATUS: usize = 20;

/// Which recipients opened the files of the last sync (`status.decryption`): an
/// aggregate, one entry per recipient however many files there are, so the status
/// stays far below the object size limit. Shows when an old key is no longer used (key
/// rotation, docs/rotation.md). Public keys only, never an identity.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct DecryptionStatus {
    /// Per recipient, the files whose data key it unwrapped, most files first (at most
    /// [`MAX_RECIPIENTS_IN_STATUS`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub recipients: Vec<RecipientFiles>,
    /// How many more recipients opened files than `recipients` lists.
    #[serde(default, skip_serializing_if = "is_default")]
    pub recipients_omitted: u32,
}

/// How many files one recipient opened.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RecipientFiles {
    /// The recipient as the files name it: an age public key (`age1...`), or
    /// `pgp:<fingerprint>`.
    pub recipient: String,
    /// The files (one per SOPS file; a key group counts once) it opened.
    pub files: u32,
}

/// One Secret in the inventory (always in the object's namespace).
#[derive(
    Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, PartialOrd, Ord, JsonSchema,
)]
pub struct InventoryEntry {
    /// The Secret's name.
    pub name: String,
}

/// The outcome for one Secret.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SecretResult {
    /// The Secret's namespace.
    pub namespace: String,
    /// The Secret's name.
    pub name: String,
    /// `Synced`, `Conflict`, `Denied` or `Failed`.
    pub result: SecretOutcome,
    /// Why, for anything but `Synced` (never a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// What happened to one Secret.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum SecretOutcome {
    /// The Secret equals what Git says (written now or already equal).
    #[default]
    Synced,
    /// A Secret of that name exists and is not ours (and carries no adopt annotation).
    Conflict,
    /// The Secret would leave the object's namespace.
    Denied,
    /// The API server refused the write.
    Failed,
}

/// A condition in the Kubernetes convention (metav1.Condition).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Condition {
    /// `Ready`, `Reconciling` or `Stalled`.
    #[serde(rename = "type")]
    pub type_: String,
    /// `True`, `False` or `Unknown`.
    pub status: String,
    /// A CamelCase reason.
    pub reason: String,
    /// A human-readable message (never a value).
    #[serde(default)]
    pub message: String,
    /// When `status` last changed (RFC 3339).
    pub last_transition_time: String,
    /// The generation the condition was set for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
}

/// The two CRDs as one multi-document YAML text (what `sopsync crd` prints).
pub fn crds_yaml() -> String {
    use kube::CustomResourceExt;
    let mut out = String::new();
    for crd in [SecretSource::crd(), SopsSecret::crd()] {
        let value = serde_json::to_value(&crd).unwrap_or_default();
        out.push_str("---\n");
        out.push_str(&yaml_of(&value, 0));
    }
    out
}

/// One file per CRD: (file name, YAML) as checked in under `charts/sopsync/crds/`.
pub fn crd_files() -> Vec<(String, String)> {
    use kube::CustomResourceExt;
    [SecretSource::crd(), SopsSecret::crd()]
        .iter()
        .map(|crd| {
            let value = serde_json::to_value(crd).unwrap_or_default();
            let name = crd.metadata.name.clone().unwrap_or_default();
            (
                format!("{name}.yaml"),
                format!(
                    "# Generated by `sopsync crd`; do not edit (a test checks for drift).\n{}",
                    yaml_of(&value, 0)
                ),
            )
        })
        .collect()
}

/// A small block-style YAML writer for JSON values (CRDs only hold maps, lists,
/// strings, numbers and booleans). Strings are double-quoted when plain would be
/// ambiguous, so the output reads back as the same JSON.
fn yaml_of(v: &serde_json::Value, indent: usize) -> String {
    use serde_json::Value as J;
    let pad = " ".repeat(indent);
    let mut out = String::new();
    match v {
        J::Object(m) => {
            if m.is_empty() {
                return format!("{pad}{{}}\n");
            }
            for (k, val) in m {
                let key = scalar_string(k);
                match val {
                    J::Object(inner) if !inner.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        out.push_str(&yaml_of(val, indent + 2));
                    }
                    J::Array(items) if !items.is_empty() => {
                        out.push_str(&format!("{pad}{key}:\n"));
                        out.push_str(&yaml_of(val, indent));
                    }
                    _ => out.push_str(&format!("{pad}{key}: {}\n", inline(val))),
                }
            }
        }
        J::Array(items) => {
            for item in items {
                match item {
                    J::Object(m) if !m.is_empty() => {
                        let body = yaml_of(item, indent + 2);
                        // The first line of the mapping goes after the dash.
                        let trimmed = &body[indent + 2..];
                        out.push_str(&format!("{pad}- {trimmed}"));
                    }
                    J::Array(a) if !a.is_empty() => {
                        out.push_str(&format!("{pad}-\n"));
                        out.push_str(&yaml_of(item, indent + 2));
                    }
                    _ => out.push_str(&format!("{pad}- {}\n", inline(item))),
                }
            }
        }
        other => out.push_str(&format!("{pad}{}\n", inline(other))),
    }
    out
}

fn inline(v: &serde_json::Value) -> String {
    use serde_json::Value as J;
    match v {
        J::Null => "null".into(),
        J::Bool(b) => b.to_string(),
        J::Number(n) => n.to_string(),
        J::String(s) => scalar_string(s),
        J::Object(_) => "{}".into(),
        J::Array(_) => "[]".into(),
    }
}

/// A string as a YAML scalar: plain when it cannot be read as anything else, JSON
/// double-quoted (a valid YAML double-quoted scalar) otherwise.
fn scalar_string(s: &str) -> String {
    let plain_safe = !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-' | '/' | ' '))
        && !s.starts_with([' ', '-', '.'])
        && !s.ends_with(' ')
        && s.parse::<f64>().is_err()
        && !matches!(
            s.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no" | "on" | "off" | "null" | "y" | "n" | "~"
        );
    if plain_safe {
        s.to_string()
    } else {
        serde_json::Value::String(s.to_string()).to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_minimal_secret_source_gets_the_documented_defaults() {
        let spec: SecretSourceSpec =
            serde_json::from_value(serde_json::json!({"url": "https://git.example/r.git"}))
                .expect("valid");
        assert_eq!(spec.interval, "5m");
        assert!(spec.prune);
        assert!(!spec.suspend);
        assert_eq!(spec.decryption, Decryption::default());
        assert_eq!(spec.rotation, None);
    }

    #[test]
    fn the_git_ref_is_spelled_ref_on_the_wire() {
        let spec: SecretSourceSpec =
            serde_json::from_value(serde_json::json!({"url": "u", "ref": "main", "targetx": 1}))
                .expect("valid");
        assert_eq!(spec.git_ref.as_deref(), Some("main"));
        let back = serde_json::to_value(&spec).expect("serialize");
        assert_eq!(back["ref"], "main");
    }

    #[test]
    fn crd_yaml_reads_back_as_the_generated_crd() {
        use kube::CustomResourceExt;
        for (crd, (_, text)) in [SecretSource::crd(), SopsSecret::crd()]
            .iter()
            .zip(crd_files())
        {
            // Parse our YAML with the core's YAML reader and compare as JSON.
            let docs = crate::core::formats::codec(
                crate::core::formats::Format::Yaml,
                &Default::default(),
            )
            .parse_plain(text.as_bytes())
            .expect("our YAML parses");
            let json = crate::core::formats::codec(
                crate::core::formats::Format::Json,
                &Default::default(),
            )
            .emit_plain(&docs)
            .expect("as JSON");
            let back: serde_json::Value = serde_json::from_slice(&json).expect("json");
            assert_eq!(
                numbers_as_f64(back),
                numbers_as_f64(serde_json::to_value(crd).expect("crd"))
            );
        }
    }

    /// JSON numbers compared by value (`0` and `0.0` are the same schema minimum).
    fn numbers_as_f64(v: serde_json::Value) -> serde_json::Value {
        use serde_json::Value as J;
        match v {
            J::Number(n) => serde_json::json!(n.as_f64().unwrap_or(f64::NAN)),
            J::Array(a) => J::Array(a.into_iter().map(numbers_as_f64).collect()),
            J::Object(m) => J::Object(m.into_iter().map(|(k, v)| (k, numbers_as_f64(v))).collect()),
            other => other,
        }
    }

    #[test]
    fn a_generator_entry_is_named_after_its_object_and_reads_only_what_it_carries() {
        let spec: GeneratorSpec = serde_json::from_value(serde_json::json!({
            "envFiles": ["app.env"],
            "files": [{"path": "certs/ca.crt"}, {"path": "app.env", "key": "all.env"}]
        }))
        .expect("valid");
        let files = BTreeMap::from([
            ("app.env".to_string(), "A=ENC[..]".to_string()),
            ("certs/ca.crt".to_string(), "{}".to_string()),
        ]);
        let (entry, bytes) = spec.inputs(&files, "web", "prod").expect("valid inputs");
        assert_eq!(entry.name, "web");
        assert_eq!(entry.namespace.as_deref(), Some("prod"));
        assert_eq!(entry.files[0].key, "ca.crt", "default key: the file name");
        assert_eq!(entry.files[1].key, "all.env");
        assert_eq!(bytes.len(), 2);

        let mut extra = files.clone();
        extra.insert("x/../y".into(), String::new());
        assert_eq!(
            spec.inputs(&extra, "web", "prod").expect_err("refused"),
            "spec.files: path \"x/../y\" has an empty, `.` or `..` part"
        );
        for (path, rule) in [
            ("/etc/passwd", "is absolute"),
            ("a//b", "has an empty, `.` or `..` part"),
            ("./a", "has an empty, `.` or `..` part"),
            ("a\\b", "holds a backslash or control character"),
        ] {
            assert_eq!(check_carried_path(path), Err(rule), "{path}");
        }
        assert!(check_carried_path(&"a".repeat(MAX_GENERATOR_PATH + 1)).is_err());
        let too_many: BTreeMap<String, String> = (0..=MAX_GENERATOR_FILES)
            .map(|i| (format!("f{i}"), String::new()))
            .collect();
        assert!(spec
            .inputs(&too_many, "web", "prod")
            .expect_err("refused")
            .contains("at most 64"));
        let empty = GeneratorSpec::default();
        assert!(empty.inputs(&BTreeMap::new(), "web", "prod").is_err());
    }

    #[test]
    fn scalars_that_would_change_type_are_quoted() {
        assert_eq!(scalar_string("true"), "\"true\"");
        assert_eq!(scalar_string("1.5"), "\"1.5\"");
        assert_eq!(scalar_string(""), "\"\"");
        assert_eq!(scalar_string("a: b"), "\"a: b\"");
        assert_eq!(scalar_string("sopsync.io"), "sopsync.io");
        assert_eq!(
            scalar_string(".status.conditions[?(@.type==\"Ready\")].status"),
            "\".status.conditions[?(@.type==\\\"Ready\\\")].status\""
        );
    }
}
