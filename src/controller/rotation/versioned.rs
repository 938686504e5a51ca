//! The Versioned rotation strategy, as pure functions (STYLE.md 11): which immutable
//! Secret is the current version of a Secret from Git, which old versions are kept, the
//! one JSON Patch that switches a workload's pod template from old versions to the new
//! one, and which versions may be deleted. The reconciler does the I/O.
//!
//! Guarantees:
//! - Each content version is its own immutable Secret `<name>-<keyed suffix>`, marked by
//!   the [`ANNOTATION_VERSION_OF`] and [`ANNOTATION_VERSION_SERIAL`] annotations (the
//!   serial orders versions: creation timestamps have one-second resolution).
//! - All references of one workload move in ONE patch, guarded by a `test` of the
//!   workload's `resourceVersion`: a workload changed in between is re-read next time,
//!   never half switched.
//! - A version is deleted only when it is neither the current one nor among the `retain`
//!   newest previous ones, no pod template in the namespace names it (the workloads',
//!   and the ReplicaSets' and ControllerRevisions' kept for `kubectl rollout undo`), and
//!   no rollout away from it is unfinished ([`Retention`]).
//!
//! Security: names, suffixes and serials only; no function here sees a value.

use crate::controller::apply::{LiveSecret, Owner};
use crate::repo::render::DesiredSecret;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};

/// On a version Secret: the name of the Secret in Git it is a version of.
pub const ANNOTATION_VERSION_OF: &str = "sopsync.io/version-of";
/// On a version Secret: its place in the order of versions (higher is newer).
pub const ANNOTATION_VERSION_SERIAL: &str = "sopsync.io/version-serial";

/// One existing version of a Secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Version {
    /// The version Secret's name.
    pub name: String,
    /// Its serial (higher is newer).
    pub serial: u64,
}

/// The versions of `logical` this owner holds, newest first.
pub fn live_versions(
    owner: &Owner,
    logical: &str,
    live: &BTreeMap<String, LiveSecret>,
) -> Vec<Version> {
    let mut out: Vec<Version> = live
        .values()
        .filter(|l| owner.owns(l))
        .filter(|l| l.annotations.get(ANNOTATION_VERSION_OF).map(String::as_str) == Some(logical))
        .map(|l| Version {
            name: l.name.clone(),
            serial: l
                .annotations
                .get(ANNOTATION_VERSION_SERIAL)
                .and_then(|s| s.parse().ok())
                .unwrap_or(0),
        })
        .collect();
    out.sort_by(|a, b| b.serial.cmp(&a.serial).then_with(|| a.name.cmp(&b.name)));
    out
}

/// The serial the version `name` gets: its own when it already is the newest, else one
/// past the newest (a new content, or a return to an older one, which becomes current
/// again without a new Secret: its data is the same, only the annotation moves).
pub fn serial_for(name: &str, versions: &[Version]) -> u64 {
    match versions.first() {
        Some(newest) if newest.name == name => newest.serial,
        Some(newest) => newest.serial + 1,
        None => 1,
    }
}

/// The version Secret of `d`: `d` renamed to `name` and marked as a version of
/// `logical` (`d`'s name as written, with any name prefix). The caller makes the
/// written object immutable ([`seal`]).
pub fn version_secret(d: &DesiredSecret, logical: &str, name: &str, serial: u64) -> DesiredSecret {
    let mut v = d.clone();
    v.annotations
        .insert(ANNOTATION_VERSION_OF.into(), logical.to_string());
    v.annotations
        .insert(ANNOTATION_VERSION_SERIAL.into(), serial.to_string());
    v.name = name.to_string();
    v
}

/// Marks a version's server-side apply body immutable: the API server then refuses any
/// change of its data (422), so a version means one content for its whole life.
pub fn seal(body: &mut k8s_openapi::api::core::v1::Secret) {
    body.immutable = Some(true);
}

/// The JSON pointer of the PodSpec inside an object of `kind`, for the kinds whose pod
/// templates reference Secrets: the workloads sopsync switches and the revision history
/// (`ReplicaSet`, `ControllerRevision`) that `kubectl rollout undo` restores from.
pub fn pod_spec_pointer(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => Some("/spec/template/spec"),
        "CronJob" => Some("/spec/jobTemplate/spec/template/spec"),
        // A StatefulSet's or DaemonSet's revision stores its template as the patch
        // `{"spec":{"template":{...}}}` in `data` (controller_history.go).
        "ControllerRevision" => Some("/data/spec/template/spec"),
        _ => None,
    }
}

/// Escapes one JSON Pointer token (RFC 6901 section 4).
fn token(s: &str) -> String {
    s.replace('~', "~0").replace('/', "~1")
}

/// Every Secret reference of a PodSpec: (JSON pointer relative to the PodSpec, name).
/// The same places as [`super::podspec::secret_names`] (a unit test holds them equal):
/// `secret` and `projected` volumes, `env[].valueFrom.secretKeyRef` and
/// `envFrom[].secretRef` of every container kind. They are found here as JSON pointers
/// because the switch is a JSON Patch that names each path it changes.
pub fn secret_refs(pod_spec: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let mut add = |pointer: String, v: Option<&Value>| {
        if let Some(name) = v.and_then(Value::as_str).filter(|n| !n.is_empty()) {
            out.push((pointer, name.to_string()));
        }
    };
    let list = |v: &Value, key: &str| -> Vec<Value> {
        v.get(key)
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default()
    };
    for (i, vol) in list(pod_spec, "volumes").iter().enumerate() {
        add(
            format!("/volumes/{i}/secret/secretName"),
            vol.pointer("/secret/secretName"),
        );
        for (j, src) in list(vol.get("projected").unwrap_or(&Value::Null), "sources")
            .iter()
            .enumerate()
        {
            add(
                format!("/volumes/{i}/projected/sources/{j}/secret/name"),
                src.pointer("/secret/name"),
            );
        }
    }
    for kind in ["initContainers", "containers", "ephemeralContainers"] {
        for (i, c) in list(pod_spec, kind).iter().enumerate() {
            for (j, e) in list(c, "env").iter().enumerate() {
                add(
                    format!("/{}/{i}/env/{j}/valueFrom/secretKeyRef/name", token(kind)),
                    e.pointer("/valueFrom/secretKeyRef/name"),
                );
            }
            for (j, e) in list(c, "envFrom").iter().enumerate() {
                add(
                    format!("/{}/{i}/envFrom/{j}/secretRef/name", token(kind)),
                    e.pointer("/secretRef/name"),
                );
            }
        }
    }
    out
}

/// The Secret names that the pod template of `obj` (of `kind`) references.
pub fn referenced_by(kind: &str, obj: &Value) -> BTreeSet<String> {
    pod_spec_pointer(kind)
        .and_then(|p| obj.pointer(p))
        .map(|spec| secret_refs(spec).into_iter().map(|(_, n)| n).collect())
        .unwrap_or_default()
}

/// A workload's switch: the one JSON Patch and the (old name, new name) pairs it moves.
#[derive(Clone, Debug, PartialEq)]
pub struct Switch {
    /// The JSON Patch (RFC 6902) body.
    pub patch: Value,
    /// Each distinct (from, to) pair it switches, sorted.
    pub pairs: Vec<(String, String)>,
}

/// The one JSON Patch (RFC 6902) that points every reference of `obj`'s pod template
/// to a name in `renames` at its new name, or `None` when it references none of them.
/// It starts with a `test` of `metadata.resourceVersion`, so it applies only to the
/// object it was computed from (a 422 otherwise, and the next reconcile re-reads).
pub fn switch_patch(kind: &str, obj: &Value, renames: &BTreeMap<String, String>) -> Option<Switch> {
    let base = pod_spec_pointer(kind)?;
    let spec = obj.pointer(base)?;
    let mut pairs = BTreeSet::new();
    let mut ops: Vec<Value> = Vec::new();
    for (p, name) in secret_refs(spec) {
        let Some(to) = renames.get(&name).filter(|to| **to != name) else {
            continue;
        };
        ops.push(json!({"op": "replace", "path": format!("{base}{p}"), "value": to}));
        pairs.insert((name, to.clone()));
    }
    if ops.is_empty() {
        return None;
    }
    let rv = obj.pointer("/metadata/resourceVersion").cloned()?;
    ops.insert(
        0,
        json!({"op": "test", "path": "/metadata/resourceVersion", "value": rv}),
    );
    Some(Switch {
        patch: Value::Array(ops),
        pairs: pairs.into_iter().collect(),
    })
}

/// Why an old version is still kept (for the status and the GC Event).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KeptBecause {
    /// It is the current version.
    Current,
    /// It is one of the `retain` newest previous versions.
    Retained,
    /// A pod template (a workload's, or one kept in revision history) names it.
    Referenced,
    /// A workload that used it has not finished rolling out to the new version.
    RolloutUnfinished,
}

/// What happens to the versions of one Secret.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Retention {
    /// Versions kept, newest first, each with why.
    pub keep: Vec<(String, KeptBecause)>,
    /// Versions to delete.
    pub delete: Vec<String>,
}

/// Decides which versions of one Secret stay. `versions` newest first (as from
/// [`live_versions`], the current one included or not); `referenced` every Secret name
/// some pod template in the namespace names; `unsettled` the versions some workload was
/// switched away from and has not finished rolling out from.
pub fn retention(
    current: &str,
    versions: &[Version],
    retain: u32,
    referenced: &BTreeSet<String>,
    unsettled: &BTreeSet<String>,
) -> Retention {
    let mut out = Retention::default();
    out.keep.push((current.to_string(), KeptBecause::Current));
    let previous = versions.iter().filter(|v| v.name != current);
    for (place, v) in (0u32..).zip(previous) {
        let because = if place < retain {
            Some(KeptBecause::Retained)
        } else if referenced.contains(&v.name) {
            Some(KeptBecause::Referenced)
        } else if unsettled.contains(&v.name) {
            Some(KeptBecause::RolloutUnfinished)
        } else {
            None
        };
        match because {
            Some(b) => out.keep.push((v.name.clone(), b)),
            None => out.delete.push(v.name.clone()),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::controller::apply::ControllerRef;

    fn owner() -> Owner {
        Owner {
            api_version: "sopsync.io/v1alpha1".into(),
            kind: "SecretSource".into(),
            name: "src".into(),
            namespace: "team".into(),
            uid: "uid-1".into(),
        }
    }

    fn live(name: &str, of: &str, serial: u64, uid: &str) -> LiveSecret {
        LiveSecret {
            name: name.into(),
            annotations: BTreeMap::from([
                (ANNOTATION_VERSION_OF.to_string(), of.to_string()),
                (ANNOTATION_VERSION_SERIAL.to_string(), serial.to_string()),
            ]),
            controller: Some(ControllerRef {
                api_version: "sopsync.io/v1alpha1".into(),
                uid: uid.into(),
            }),
            ..LiveSecret::default()
        }
    }

    fn v(name: &str, serial: u64) -> Version {
        Version {
            name: name.into(),
            serial,
        }
    }

    #[test]
    fn versions_are_ours_of_that_secret_newest_first() {
        let all: BTreeMap<String, LiveSecret> = [
            live("db-a", "db", 1, "uid-1"),
            live("db-c", "db", 3, "uid-1"),
            live("db-b", "db", 2, "uid-1"),
            live("api-a", "api", 9, "uid-1"),
            live("db-x", "db", 7, "someone-else"),
        ]
        .into_iter()
        .map(|l| (l.name.clone(), l))
        .collect();
        assert_eq!(
            live_versions(&owner(), "db", &all),
            vec![v("db-c", 3), v("db-b", 2), v("db-a", 1)]
        );
    }

    #[test]
    fn a_new_or_returning_content_becomes_the_newest_serial() {
        let vs = [v("db-c", 3), v("db-b", 2)];
        assert_eq!(serial_for("db-c", &vs), 3);
        assert_eq!(serial_for("db-b", &vs), 4);
        assert_eq!(serial_for("db-new", &vs), 4);
        assert_eq!(serial_for("db-new", &[]), 1);
    }

    fn deployment(refs: &[&str]) -> Value {
        json!({
            "metadata": {"name": "api", "resourceVersion": "41"},
            "spec": {"template": {"spec": {
                "volumes": [
                    {"name": "creds", "secret": {"secretName": refs[0]}},
                    {"name": "all", "projected": {"sources": [
                        {"configMap": {"name": "cm"}},
                        {"secret": {"name": refs[1]}}
                    ]}}
                ],
                "initContainers": [{"name": "init", "envFrom": [{"secretRef": {"name": refs[2]}}]}],
                "containers": [{"name": "app", "env": [
                    {"name": "PLAIN", "value": "x"},
                    {"name": "PASSWORD", "valueFrom": {"secretKeyRef": {"name": refs[3], "key": "password"}}}
                ]}]
            }}}
        })
    }

    #[test]
    fn every_kind_of_reference_is_found() {
        let d = deployment(&["db-a", "db-b", "other", "db-a"]);
        assert_eq!(
            referenced_by("Deployment", &d),
            BTreeSet::from(["db-a".into(), "db-b".into(), "other".into()])
        );
        let revision = json!({"data": {"spec": {"template": d["spec"]["template"].clone()}}});
        assert_eq!(
            referenced_by("ControllerRevision", &revision),
            referenced_by("Deployment", &d)
        );
        assert!(referenced_by("ConfigMap", &d).is_empty());
    }

    #[test]
    fn the_json_references_are_those_podspec_finds() {
        let d = deployment(&["db-a", "db-b", "other", "db-c"]);
        let spec = &d["spec"]["template"]["spec"];
        let typed: k8s_openapi::api::core::v1::PodSpec =
            serde_json::from_value(spec.clone()).expect("a PodSpec");
        let ours: BTreeSet<String> = secret_refs(spec).into_iter().map(|(_, n)| n).collect();
        assert_eq!(
            ours,
            crate::controller::rotation::podspec::secret_names(&typed)
        );
    }

    #[test]
    fn all_references_switch_in_one_patch_guarded_by_the_resource_version() {
        let d = deployment(&["db-a", "db-b", "other", "db-a"]);
        let renames = BTreeMap::from([
            ("db".to_string(), "db-c".to_string()),
            ("db-a".into(), "db-c".into()),
            ("db-b".into(), "db-c".into()),
            ("db-c".into(), "db-c".into()),
        ]);
        let switch = switch_patch("Deployment", &d, &renames).expect("a patch");
        assert_eq!(
            switch.patch,
            json!([
                {"op": "test", "path": "/metadata/resourceVersion", "value": "41"},
                {"op": "replace", "path": "/spec/template/spec/volumes/0/secret/secretName", "value": "db-c"},
                {"op": "replace", "path": "/spec/template/spec/volumes/1/projected/sources/1/secret/name", "value": "db-c"},
                {"op": "replace", "path": "/spec/template/spec/containers/0/env/1/valueFrom/secretKeyRef/name", "value": "db-c"}
            ])
        );
        assert_eq!(
            switch.pairs,
            vec![
                ("db-a".into(), "db-c".into()),
                ("db-b".into(), "db-c".into())
            ]
        );
        // Nothing to switch: no patch at all.
        let done = deployment(&["db-c", "db-c", "other", "db-c"]);
        assert_eq!(switch_patch("Deployment", &done, &renames), None);
    }

    #[test]
    fn retained_referenced_and_unsettled_versions_stay_and_only_the_rest_go() {
        let vs = [
            v("d5", 5),
            v("d4", 4),
            v("d3", 3),
            v("d2", 2),
            v("d1", 1),
            v("d0", 0),
        ];
        let referenced = BTreeSet::from(["d2".to_string()]);
        let unsettled = BTreeSet::from(["d1".to_string()]);
        let r = retention("d5", &vs, 2, &referenced, &unsettled);
        assert_eq!(
            r.keep,
            vec![
                ("d5".into(), KeptBecause::Current),
                ("d4".into(), KeptBecause::Retained),
                ("d3".into(), KeptBecause::Retained),
                ("d2".into(), KeptBecause::Referenced),
                ("d1".into(), KeptBecause::RolloutUnfinished),
            ]
        );
        assert_eq!(r.delete, vec!["d0".to_string()]);
        // retain 0 keeps only what is current or still needed.
        let r = retention("d5", &vs, 0, &BTreeSet::new(), &BTreeSet::new());
        assert_eq!(r.keep.len(), 1);
        assert_eq!(r.delete.len(), 5);
    }

    #[test]
    fn a_version_secret_is_the_desired_one_renamed_and_marked() {
        let d = DesiredSecret {
            namespace: "team".into(),
            name: "db".into(),
            secret_type: "Opaque".into(),
            labels: BTreeMap::new(),
            annotations: BTreeMap::new(),
            data: Default::default(),
        };
        let v = version_secret(&d, "db", "db-k3y3d", 7);
        assert_eq!(v.name, "db-k3y3d");
        assert_eq!(v.annotations[ANNOTATION_VERSION_OF], "db");
        assert_eq!(v.annotations[ANNOTATION_VERSION_SERIAL], "7");
    }
}
