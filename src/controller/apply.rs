//! The desired state and what to do about it, as pure functions (STYLE.md 11): rendered
//! Secrets + what exists + the previous inventory → which Secrets to write (server-side
//! apply bodies), which to delete, and the per-Secret results. No server is involved;
//! the reconciler executes the plan.
//!
//! Guarantees:
//! - Only Secrets in the object's own namespace are written (others are `Denied`).
//! - An existing Secret that this object does not own is never written (`Conflict`)
//!   unless it carries `sopsync.io/adopt: "true"`.
//! - Only Secrets named in the previous inventory are deleted, only when they are
//!   still owned by this object, and never after a render that had failures.
//! - A Secret already equal to the desired one is not written: equality is the
//!   content hash of its data and a hash of everything else we set (labels,
//!   annotations, type, owner), kept in the `sopsync.io/applied-hash` annotation.

use super::crd::{InventoryEntry, SecretOutcome, SecretResult, TargetOptions};
use crate::repo::render::{content_hash, DesiredSecret, SecretData, ANNOTATION_REVISION};
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use k8s_openapi::ByteString;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, BTreeSet};

/// The server-side apply field manager of every write.
pub const FIELD_MANAGER: &str = "sopsync";
/// Label on every Secret we write: the UID of the owning SecretSource/SopsSecret.
pub const LABEL_OWNER_UID: &str = "sopsync.io/owner-uid";
/// Annotation an existing Secret's owner sets to let sopsync take it over.
pub const ANNOTATION_ADOPT: &str = "sopsync.io/adopt";
/// Hash of labels, annotations, type and owner as last applied.
pub const ANNOTATION_APPLIED_HASH: &str = "sopsync.io/applied-hash";

/// The object that owns the Secrets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Owner {
    /// `sopsync.io/v1alpha1`.
    pub api_version: String,
    /// `SecretSource` or `SopsSecret`.
    pub kind: String,
    /// Its name.
    pub name: String,
    /// Its namespace: the only one its Secrets may live in.
    pub namespace: String,
    /// Its UID.
    pub uid: String,
}

impl Owner {
    fn reference(&self) -> OwnerReference {
        OwnerReference {
            api_version: self.api_version.clone(),
            kind: self.kind.clone(),
            name: self.name.clone(),
            uid: self.uid.clone(),
            controller: Some(true),
            block_owner_deletion: Some(false),
        }
    }

    /// Whether `live` is a Secret this owner wrote: its controller ownerReference
    /// names this owner's uid. The `sopsync.io/owner-uid` label alone is not
    /// ownership (issue 11, point 8): anyone who can create a Secret can set a label,
    /// and it only serves as the list selector.
    pub fn owns(&self, live: &LiveSecret) -> bool {
        live.controller.as_ref().is_some_and(|r| r.uid == self.uid)
    }
}

/// Whether every field of a Secret was last written by this controller: its
/// managedFields name only our field manager. An event for such a Secret is our own
/// server-side apply coming back through the watch. Anything else (another manager
/// edited its data, labels or annotations; no managedFields at all) may be drift.
pub fn written_only_by_us(meta: &ObjectMeta) -> bool {
    meta.managed_fields.as_ref().is_some_and(|fields| {
        !fields.is_empty()
            && fields
                .iter()
                .all(|f| f.manager.as_deref() == Some(FIELD_MANAGER))
    })
}

/// What the reconciler knows about an existing Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LiveSecret {
    /// Its name.
    pub name: String,
    /// Its UID (a delete is conditional on it).
    pub uid: Option<String>,
    /// Its labels.
    pub labels: BTreeMap<String, String>,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
    /// Its controller ownerReference (`controller: true`; the API server allows one).
    pub controller: Option<ControllerRef>,
    /// The content hash of its type and data, when the data was read (our own
    /// Secrets); `None` for Secrets only seen by their metadata.
    pub content_hash: Option<String>,
}

/// The parts of a controller ownerReference that decide ownership.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ControllerRef {
    /// The owner's apiVersion (`sopsync.io/...` for ours).
    pub api_version: String,
    /// The owner's uid.
    pub uid: String,
}

impl LiveSecret {
    /// From a full Secret (data read: the content hash is computed).
    pub fn from_secret(s: &Secret) -> LiveSecret {
        let mut live = LiveSecret::from_meta(&s.metadata);
        let data = SecretData(
            s.data
                .iter()
                .flatten()
                .map(|(k, v)| (k.clone(), zeroize::Zeroizing::new(v.0.clone())))
                .collect(),
        );
        live.content_hash = Some(content_hash(s.type_.as_deref().unwrap_or("Opaque"), &data));
        live
    }

    /// From metadata only.
    pub fn from_meta(m: &ObjectMeta) -> LiveSecret {
        LiveSecret {
            name: m.name.clone().unwrap_or_default(),
            uid: m.uid.clone(),
            labels: m.labels.clone().unwrap_or_default(),
            annotations: m.annotations.clone().unwrap_or_default(),
            controller: m
                .owner_references
                .iter()
                .flatten()
                .find(|r| r.controller == Some(true))
                .map(|r| ControllerRef {
                    api_version: r.api_version.clone(),
                    uid: r.uid.clone(),
                }),
            content_hash: None,
        }
    }
}

/// A Secret to write, with its name for reporting. `Debug` shows the name only.
#[derive(Clone)]
pub struct Write {
    /// The Secret's name.
    pub name: String,
    /// The full server-side apply body (holds plaintext: never logged).
    pub body: Secret,
}

impl std::fmt::Debug for Write {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Write({})", self.name)
    }
}

impl Drop for Write {
    /// The body holds decrypted values: wipe them once the write is done.
    fn drop(&mut self) {
        use zeroize::Zeroize;
        for v in self.body.data.iter_mut().flat_map(|d| d.values_mut()) {
            v.0.zeroize();
        }
        for v in self
            .body
            .string_data
            .iter_mut()
            .flat_map(|d| d.values_mut())
        {
            v.zeroize();
        }
    }
}

/// What to do.
#[derive(Clone, Debug, Default)]
pub struct Plan {
    /// Secrets to create or update (server-side apply, forced: they are ours).
    pub writes: Vec<Write>,
    /// Secrets already equal to the desired ones.
    pub unchanged: usize,
    /// Secrets to delete (ours, in the inventory, gone from the source).
    pub prune: Vec<String>,
    /// Per-Secret results, sorted by name (a failed write turns its `Synced` into
    /// `Failed` when the reconciler runs the plan).
    pub results: Vec<SecretResult>,
    /// The inventory once the plan has run: everything written or unchanged, plus
    /// previous entries kept because pruning was skipped.
    pub inventory: Vec<InventoryEntry>,
}

impl Plan {
    /// Results that need attention (conflicts, denials, failures).
    pub fn problems(&self) -> impl Iterator<Item = &SecretResult> {
        self.results
            .iter()
            .filter(|r| r.result != SecretOutcome::Synced)
    }
}

/// Hash over what we set besides the data: type, labels, annotations (without the
/// revision and this hash) and the owner UID.
fn applied_hash(
    secret_type: &str,
    labels: &BTreeMap<String, String>,
    annotations: &BTreeMap<String, String>,
    owner_uid: &str,
) -> String {
    let mut h = Sha256::new();
    let mut field = |s: &str| {
        h.update((s.len() as u64).to_be_bytes());
        h.update(s.as_bytes());
    };
    field(secret_type);
    field(owner_uid);
    field("labels");
    for (k, v) in labels {
        field(k);
        field(v);
    }
    field("annotations");
    for (k, v) in annotations {
        if k != ANNOTATION_REVISION && k != ANNOTATION_APPLIED_HASH {
            field(k);
            field(v);
        }
    }
    let digest = h.finalize();
    digest.iter().take(16).map(|b| format!("{b:02x}")).collect()
}

/// The desired Secret object for `d` (target options applied), and its content hash.
pub fn desired_object(
    owner: &Owner,
    d: &DesiredSecret,
    target: &TargetOptions,
) -> (Secret, String) {
    let name = format!("{}{}", target.name_prefix.as_deref().unwrap_or(""), d.name);
    let mut labels = d.labels.clone();
    labels.extend(target.labels.clone());
    labels.insert(LABEL_OWNER_UID.into(), owner.uid.clone());
    let mut annotations = d.annotations.clone();
    annotations.extend(target.annotations.clone());
    let hash = applied_hash(&d.secret_type, &labels, &annotations, &owner.uid);
    annotations.insert(ANNOTATION_APPLIED_HASH.into(), hash);
    let content = content_hash(&d.secret_type, &d.data);
    let secret = Secret {
        metadata: ObjectMeta {
            name: Some(name),
            namespace: Some(owner.namespace.clone()),
            labels: Some(labels),
            annotations: Some(annotations),
            owner_references: Some(vec![owner.reference()]),
            ..ObjectMeta::default()
        },
        type_: Some(d.secret_type.clone()),
        data: Some(
            d.data
                .0
                .iter()
                .map(|(k, v)| (k.clone(), ByteString(v.to_vec())))
                .collect(),
        ),
        ..Secret::default()
    };
    (secret, content)
}

/// Plans a sync. `render_complete` is false when some files failed to render: then
/// nothing is pruned (a Secret whose file is broken must not disappear).
pub fn plan(
    owner: &Owner,
    desired: &[DesiredSecret],
    target: &TargetOptions,
    live: &BTreeMap<String, LiveSecret>,
    previous: &[InventoryEntry],
    prune: bool,
    render_complete: bool,
) -> Plan {
    let mut out = Plan::default();
    let mut keep: BTreeSet<String> = BTreeSet::new();
    let mut wanted: BTreeSet<String> = BTreeSet::new();
    for d in desired {
        let name = format!("{}{}", target.name_prefix.as_deref().unwrap_or(""), d.name);
        wanted.insert(name.clone());
        let result = |outcome, message: Option<String>| SecretResult {
            namespace: d.namespace.clone(),
            name: name.clone(),
            result: outcome,
            message,
        };
        if d.namespace != owner.namespace {
            out.results.push(result(
                SecretOutcome::Denied,
                Some(format!(
                    "{} {}/{} may write only into its own namespace {:?}; the source asks for {:?}",
                    owner.kind, owner.namespace, owner.name, owner.namespace, d.namespace
                )),
            ));
            continue;
        }
        // The render checked the name from Git; the prefix can still make it invalid
        // (too long): Kubernetes would refuse it, so say why here instead.
        if let Err(rule) = crate::repo::names::check_secret_name(&name) {
            out.results.push(result(
                SecretOutcome::Denied,
                Some(format!(
                    "the name {name:?} (spec.target.namePrefix + the Secret's name) is invalid: {rule}"
                )),
            ));
            continue;
        }
        let (body, content) = desired_object(owner, d, target);
        let applied = body
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(ANNOTATION_APPLIED_HASH))
            .cloned();
        match live.get(&name) {
            Some(l) if owner.owns(l) => {
                keep.insert(name.clone());
                if l.annotations.get(ANNOTATION_APPLIED_HASH) == applied.as_ref()
                    && l.content_hash.as_ref() == Some(&content)
                {
                    out.unchanged += 1;
                } else {
                    out.writes.push(Write {
                        name: name.clone(),
                        body,
                    });
                }
                out.results.push(result(SecretOutcome::Synced, None));
            }
            Some(l) if l.annotations.get(ANNOTATION_ADOPT).map(String::as_str) == Some("true") => {
                keep.insert(name.clone());
                out.writes.push(Write {
                    name: name.clone(),
                    body,
                });
                out.results.push(result(SecretOutcome::Synced, None));
            }
            Some(l) => {
                let by_sopsync = l
                    .controller
                    .as_ref()
                    .is_some_and(|r| r.api_version.starts_with("sopsync.io/"));
                let message = if by_sopsync {
                    format!(
                        "Secret {}/{name} is owned by another sopsync object; it was left as it is",
                        owner.namespace
                    )
                } else {
                    format!(
                        "Secret {}/{name} exists and is not managed by sopsync; it was left as it is (annotate it {ANNOTATION_ADOPT}=true to let sopsync take it over)",
                        owner.namespace
                    )
                };
                out.results
                    .push(result(SecretOutcome::Conflict, Some(message)));
            }
            None => {
                keep.insert(name.clone());
                out.writes.push(Write {
                    name: name.clone(),
                    body,
                });
                out.results.push(result(SecretOutcome::Synced, None));
            }
        }
    }
    for entry in previous {
        if wanted.contains(&entry.name) {
            // Still desired: kept above if synced; a conflict now is no longer ours.
            continue;
        }
        if !render_complete {
            keep.insert(entry.name.clone());
            continue;
        }
        if !prune {
            continue;
        }
        if let Some(l) = live.get(&entry.name) {
            if owner.owns(l) {
                out.prune.push(entry.name.clone());
            }
        }
    }
    out.results
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    out.inventory = keep
        .into_iter()
        .map(|name| InventoryEntry { name })
        .collect();
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use zeroize::Zeroizing;

    fn owner() -> Owner {
        Owner {
            api_version: "sopsync.io/v1alpha1".into(),
            kind: "SecretSource".into(),
            name: "src".into(),
            namespace: "team-a".into(),
            uid: "uid-1".into(),
        }
    }

    fn desired(ns: &str, name: &str, value: &str) -> DesiredSecret {
        let mut data = SecretData::default();
        data.0
            .insert("password".into(), Zeroizing::new(value.as_bytes().to_vec()));
        DesiredSecret {
            namespace: ns.into(),
            name: name.into(),
            secret_type: "Opaque".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::from([(ANNOTATION_REVISION.to_string(), "c1".to_string())]),
            data,
        }
    }

    /// The live Secret as the API server would hold it after applying `d`.
    fn applied(d: &DesiredSecret, target: &TargetOptions) -> LiveSecret {
        LiveSecret::from_secret(&desired_object(&owner(), d, target).0)
    }

    fn names(p: &Plan) -> Vec<&str> {
        p.writes.iter().map(|w| w.name.as_str()).collect()
    }

    #[test]
    fn new_secrets_are_written_with_owner_reference_and_label() {
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "x")],
            &TargetOptions::default(),
            &BTreeMap::new(),
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), ["db"]);
        let meta = &p.writes[0].body.metadata;
        assert_eq!(meta.namespace.as_deref(), Some("team-a"));
        let refs = meta.owner_references.as_ref().expect("owner refs");
        assert_eq!(
            (refs[0].uid.as_str(), refs[0].controller),
            ("uid-1", Some(true))
        );
        assert_eq!(
            meta.labels.as_ref().expect("labels")[LABEL_OWNER_UID],
            "uid-1"
        );
        assert_eq!(p.inventory, [InventoryEntry { name: "db".into() }]);
        assert_eq!(p.results[0].result, SecretOutcome::Synced);
    }

    #[test]
    fn an_equal_secret_is_not_written_even_at_a_new_revision() {
        let d = desired("team-a", "db", "x");
        let live = BTreeMap::from([("db".to_string(), applied(&d, &TargetOptions::default()))]);
        let mut next = d.clone();
        next.annotations
            .insert(ANNOTATION_REVISION.into(), "c2".into());
        let p = plan(
            &owner(),
            &[next],
            &TargetOptions::default(),
            &live,
            &[InventoryEntry { name: "db".into() }],
            true,
            true,
        );
        assert!(p.writes.is_empty());
        assert_eq!(p.unchanged, 1);
        assert!(p.prune.is_empty());
    }

    #[test]
    fn a_changed_value_or_label_or_edited_data_is_written() {
        let d = desired("team-a", "db", "x");
        let t = TargetOptions::default();
        let live = BTreeMap::from([("db".to_string(), applied(&d, &t))]);
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "y")],
            &t,
            &live,
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), ["db"]);
        let t2 = TargetOptions {
            labels: BTreeMap::from([("team".to_string(), "a".to_string())]),
            ..Default::default()
        };
        let p = plan(
            &owner(),
            std::slice::from_ref(&d),
            &t2,
            &live,
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), ["db"]);
        // Someone edited the data in the cluster: the content hash differs, we restore it.
        let mut drifted = applied(&d, &t);
        drifted.content_hash = Some("sha256:other".into());
        let p = plan(
            &owner(),
            &[d],
            &t,
            &BTreeMap::from([("db".to_string(), drifted)]),
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), ["db"]);
    }

    #[test]
    fn an_unowned_secret_is_a_conflict_and_is_not_written() {
        let live = BTreeMap::from([(
            "db".to_string(),
            LiveSecret {
                name: "db".into(),
                ..Default::default()
            },
        )]);
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "x")],
            &TargetOptions::default(),
            &live,
            &[],
            true,
            true,
        );
        assert!(p.writes.is_empty());
        assert_eq!(p.results[0].result, SecretOutcome::Conflict);
        assert!(p.results[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("sopsync.io/adopt=true"));
        assert!(
            p.inventory.is_empty(),
            "a conflict never enters the inventory"
        );
    }

    #[test]
    fn the_adopt_annotation_lets_sopsync_take_an_existing_secret() {
        let live = BTreeMap::from([(
            "db".to_string(),
            LiveSecret {
                name: "db".into(),
                annotations: BTreeMap::from([(ANNOTATION_ADOPT.to_string(), "true".to_string())]),
                ..Default::default()
            },
        )]);
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "x")],
            &TargetOptions::default(),
            &live,
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), ["db"]);
        assert_eq!(p.inventory.len(), 1);
    }

    #[test]
    fn another_sopsync_objects_secret_is_a_conflict() {
        let mut other = applied(&desired("team-a", "db", "x"), &TargetOptions::default());
        other.controller.as_mut().expect("controller").uid = "uid-2".into();
        other.labels.insert(LABEL_OWNER_UID.into(), "uid-2".into());
        let live = BTreeMap::from([("db".to_string(), other)]);
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "x")],
            &TargetOptions::default(),
            &live,
            &[],
            true,
            true,
        );
        assert!(p.writes.is_empty());
        assert!(p.results[0]
            .message
            .as_deref()
            .unwrap_or("")
            .contains("another sopsync object"));
    }

    /// Issue 11, point 8: the owner-uid label is a list selector, not ownership.
    #[test]
    fn the_owner_label_without_the_controller_reference_is_not_ownership() {
        let t = TargetOptions::default();
        let mut forged = applied(&desired("team-a", "db", "theirs"), &t);
        forged.controller = None;
        assert_eq!(
            forged.labels[LABEL_OWNER_UID],
            owner().uid,
            "the label matches"
        );
        // An ownerReference with our uid that is not the controller reference.
        let (object, _) = desired_object(&owner(), &desired("team-a", "api", "theirs"), &t);
        let mut meta = object.metadata;
        for r in meta.owner_references.iter_mut().flatten() {
            r.controller = Some(false);
        }
        let not_controller = LiveSecret::from_meta(&meta);
        assert!(!owner().owns(&forged));
        assert!(!owner().owns(&not_controller));
        let live = BTreeMap::from([
            ("db".to_string(), forged),
            ("api".to_string(), not_controller),
        ]);
        let inv = [
            InventoryEntry { name: "db".into() },
            InventoryEntry { name: "api".into() },
        ];
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "x"), desired("team-a", "api", "x")],
            &t,
            &live,
            &inv,
            true,
            true,
        );
        assert!(p.writes.is_empty(), "neither is overwritten");
        assert!(p.prune.is_empty(), "neither is pruned");
        assert!(p
            .results
            .iter()
            .all(|r| r.result == SecretOutcome::Conflict));
    }

    #[test]
    fn a_secret_for_another_namespace_is_denied() {
        let p = plan(
            &owner(),
            &[desired("team-b", "db", "x")],
            &TargetOptions::default(),
            &BTreeMap::new(),
            &[],
            true,
            true,
        );
        assert!(p.writes.is_empty());
        assert_eq!(p.results[0].result, SecretOutcome::Denied);
        assert_eq!(p.results[0].namespace, "team-b");
    }

    #[test]
    fn only_owned_inventory_entries_are_pruned() {
        let t = TargetOptions::default();
        let gone_ours = applied(&desired("team-a", "old", "x"), &t);
        let mut gone_taken = applied(&desired("team-a", "taken", "x"), &t);
        gone_taken.controller = None;
        gone_taken.labels.clear();
        let unlisted_ours = applied(&desired("team-a", "unlisted", "x"), &t);
        let live = BTreeMap::from([
            ("old".to_string(), gone_ours),
            ("taken".to_string(), gone_taken),
            ("unlisted".to_string(), unlisted_ours),
        ]);
        let inv = [
            InventoryEntry { name: "old".into() },
            InventoryEntry {
                name: "taken".into(),
            },
            InventoryEntry {
                name: "vanished".into(),
            },
        ];
        let p = plan(&owner(), &[], &t, &live, &inv, true, true);
        assert_eq!(p.prune, ["old"]);
        assert!(p.inventory.is_empty());
    }

    #[test]
    fn nothing_is_pruned_when_prune_is_off_or_the_render_failed() {
        let t = TargetOptions::default();
        let live = BTreeMap::from([(
            "old".to_string(),
            applied(&desired("team-a", "old", "x"), &t),
        )]);
        let inv = [InventoryEntry { name: "old".into() }];
        let p = plan(&owner(), &[], &t, &live, &inv, false, true);
        assert!(p.prune.is_empty());
        assert!(
            p.inventory.is_empty(),
            "with prune off the Secret is forgotten, not deleted"
        );
        let p = plan(&owner(), &[], &t, &live, &inv, true, false);
        assert!(p.prune.is_empty());
        assert_eq!(
            p.inventory, inv,
            "after a failed render the inventory is kept"
        );
    }

    #[test]
    fn the_name_prefix_applies_to_writes_inventory_and_prune() {
        let t = TargetOptions {
            name_prefix: Some("app-".into()),
            ..Default::default()
        };
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "x")],
            &t,
            &BTreeMap::new(),
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), ["app-db"]);
        assert_eq!(
            p.inventory,
            [InventoryEntry {
                name: "app-db".into()
            }]
        );
    }

    #[test]
    fn a_name_made_invalid_by_the_prefix_is_denied_and_not_written() {
        // Issue 11, point 2: the name is checked again after namePrefix (253 characters).
        let t = TargetOptions {
            name_prefix: Some("p".repeat(200)),
            ..Default::default()
        };
        let long = "n".repeat(60);
        let p = plan(
            &owner(),
            &[desired("team-a", &long, "x"), desired("team-a", "db", "x")],
            &t,
            &BTreeMap::new(),
            &[],
            true,
            true,
        );
        assert_eq!(names(&p), [format!("{}db", "p".repeat(200))]);
        let denied: Vec<_> = p
            .results
            .iter()
            .filter(|r| r.result == SecretOutcome::Denied)
            .collect();
        assert_eq!(denied.len(), 1);
        assert!(denied[0]
            .message
            .as_deref()
            .is_some_and(|m| m.contains("at most 253 characters")));
    }

    #[test]
    fn the_write_body_debug_never_shows_the_value() {
        let p = plan(
            &owner(),
            &[desired("team-a", "db", "canary-value-123")],
            &TargetOptions::default(),
            &BTreeMap::new(),
            &[],
            true,
            true,
        );
        assert!(!format!("{p:?}").contains("canary"));
        assert!(!format!("{:?}", p.inventory).contains("canary"));
    }

    #[test]
    fn only_a_secret_every_field_of_which_is_ours_counts_as_our_own_write() {
        use k8s_openapi::apimachinery::pkg::apis::meta::v1::ManagedFieldsEntry;
        let entry = |manager: &str| ManagedFieldsEntry {
            manager: Some(manager.into()),
            operation: Some("Apply".into()),
            ..ManagedFieldsEntry::default()
        };
        let with = |managers: &[&str]| ObjectMeta {
            managed_fields: Some(managers.iter().map(|m| entry(m)).collect()),
            ..ObjectMeta::default()
        };
        assert!(written_only_by_us(&with(&[FIELD_MANAGER])));
        assert!(!written_only_by_us(&with(&[FIELD_MANAGER, "kubectl-edit"])));
        assert!(!written_only_by_us(&with(&["kubectl-edit"])));
        assert!(!written_only_by_us(&with(&[])));
        assert!(!written_only_by_us(&ObjectMeta::default()));
    }
}
