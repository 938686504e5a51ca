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
    /// Reserved for safe rotation (versioned immutable Secrets, restarting the workloads
    /// that consume them). Only the default in-place strategy is implemented; any other
    /// setting stalls the source rather than being ignored.
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
    /// this object's namespace. The MAC is always verified.
    pub encrypted: String,
    /// Where the age keys come from.
    #[serde(default, skip_serializing_if = "is_default")]
    pub decryption: Decryption,
    /// Labels and annotations added to the Secret.
    #[serde(default, skip_serializing_if = "is_default")]
    pub target: TargetOptions,
    /// Stop syncing while true.
    #[serde(default)]
    pub suspend: bool,
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

/// Reserved: how a changed Secret is rolled out.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationSpec {
    /// `InPlace` (default, implemented) updates each Secret in place. `Versioned`
    /// (reserved) will write immutable Secrets named `<name>-<hash>` and keep old ones.
    #[serde(default)]
    pub strategy: RotationStrategy,
    /// Reserved: workloads to restart when a Secret they consume changes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub restart_workloads: Vec<WorkloadRef>,
    /// Reserved: how many old versions a `Versioned` strategy keeps.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retain: Option<u32>,
    /// Versioned: also keep a plain `<name>` Secret up to date, for consumers that
    /// cannot follow renames.
    #[serde(default, skip_serializing_if = "is_default")]
    pub keep_plain_secret: bool,
    /// Versioned: when a rollout fails, switch the workloads' references back to the
    /// version they used before.
    #[serde(default, skip_serializing_if = "is_default")]
    pub rollback_on_failure: bool,
    /// Versioned: how long a workload may take to finish rolling out to a new version
    /// before the rollout counts as failed, e.g. `10m` (default `15m`; a Deployment's
    /// `progressDeadlineSeconds` can fail it sooner).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rollout_timeout: Option<String>,
}

/// How Secrets change.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RotationStrategy {
    /// Update the Secret in place.
    #[default]
    InPlace,
    /// Reserved: immutable versioned Secrets.
    Versioned,
}

/// A workload in the same namespace.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct WorkloadRef {
    /// `Deployment`, `StatefulSet` or `DaemonSet`.
    pub kind: String,
    /// Its name.
    pub name: String,
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
    /// The Versioned strategy's versions and rollouts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rotation: Option<RotationStatus>,
}

/// The Versioned strategy's state. Bounded: one entry per Secret and per workload (at
/// most [`MAX_ROLLOUTS`] workloads are listed; the rest are counted).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct RotationStatus {
    /// Per Secret: its current version and the old versions kept.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<SecretVersions>,
    /// Per workload: its last switch and how its rollout went.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<WorkloadRollout>,
    /// Workloads whose rollouts are not listed (over [`MAX_ROLLOUTS`]).
    #[serde(default, skip_serializing_if = "is_default")]
    pub rollouts_not_listed: u32,
}

/// At most this many workload rollouts are listed in the status.
pub const MAX_ROLLOUTS: usize = 50;

/// The versions of one Secret (names only: a version's name carries a keyed digest,
/// never a plain hash of the data).
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretVersions {
    /// The Secret's name in Git (with the name prefix).
    pub name: String,
    /// The version Secret the workloads are switched to.
    pub current: String,
    /// Older versions still kept, newest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub kept: Vec<String>,
}

/// One workload's last switch to new versions.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WorkloadRollout {
    /// `Deployment`, `StatefulSet`, `DaemonSet` or `CronJob`.
    pub kind: String,
    /// Its name (same namespace).
    pub name: String,
    /// The references switched: old version -> new version.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub switched: Vec<SwitchedRef>,
    /// When the switch was written (RFC 3339).
    pub started_at: String,
    /// How the rollout went.
    pub state: RolloutState,
    /// Why, for anything but `Complete` (counts, never a value).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// One reference switched from an old version to a new one.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, Eq, JsonSchema)]
pub struct SwitchedRef {
    /// The Secret name the pod template named before.
    pub from: String,
    /// The version it names now.
    pub to: String,
}

/// How a rollout went.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, Default, PartialEq, Eq, JsonSchema)]
pub enum RolloutState {
    /// Switched; not every replica runs the new version yet.
    #[default]
    Progressing,
    /// Every replica runs the new version and is available (`kubectl rollout status`).
    Complete,
    /// Not complete within the progress deadline or `rolloutTimeout`; the old version
    /// is kept.
    Failed,
    /// Failed, and the references were switched back (`rollbackOnFailure`).
    RolledBack,
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
