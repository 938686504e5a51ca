//! The kinds the fake serves: built-ins (Secret, ConfigMap, Namespace, Event, Lease, the
//! workload kinds Deployment, StatefulSet, DaemonSet, ReplicaSet, ControllerRevision,
//! CronJob and Job, CustomResourceDefinition, RBAC's Role, ClusterRole and their bindings)
//! and kinds registered from CRDs, with what discovery, server-side apply and strategic
//! merge need to know about each, and the per-kind rules of kube-apiserver's registry
//! strategies for the workload kinds (defaults, generation, DaemonSet template generation).

use serde_json::{json, Value};

/// How a list field merges (server-side apply and strategic merge patch).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ListType {
    /// Replaced as a whole, owned as one field (the default for CRD lists).
    Atomic,
    /// Items identified by the values of these keys (`x-kubernetes-list-type: map`).
    Map(Vec<String>),
    /// Scalar items identified by their value (`x-kubernetes-list-type: set`).
    Set,
}

/// One served resource: group, version, plural name, kind and behaviour.
#[derive(Debug, Clone)]
pub struct ResourceType {
    /// API group (`""` for core).
    pub group: String,
    /// API version (`v1`, `v1alpha1`).
    pub version: String,
    /// Plural resource name in URLs (`secrets`).
    pub plural: String,
    /// Singular name for discovery.
    pub singular: String,
    /// Kind (`Secret`).
    pub kind: String,
    /// Namespaced or cluster-scoped.
    pub namespaced: bool,
    /// Has a `/status` subresource: main writes ignore status, status writes touch only status.
    pub status_subresource: bool,
    /// Maintains `metadata.generation` (bumped on changes outside metadata and status).
    pub generation: bool,
    /// Defined by a CustomResourceDefinition (no strategic merge patch, like kube-apiserver).
    pub custom: bool,
    /// Short names for discovery.
    pub short_names: Vec<String>,
    /// Lists that are not atomic, by the path of field names leading to them.
    pub list_types: Vec<(Vec<String>, ListType)>,
    /// Field selectors this kind supports besides metadata.name / metadata.namespace.
    pub field_labels: Vec<String>,
}

impl ResourceType {
    /// `v1` or `group/version`.
    pub fn api_version(&self) -> String {
        if self.group.is_empty() {
            self.version.clone()
        } else {
            format!("{}/{}", self.group, self.version)
        }
    }

    /// `secrets` or `sopssecrets.sopsync.io`, as kube-apiserver names a resource in messages.
    pub fn qualified(&self) -> String {
        if self.group.is_empty() {
            self.plural.clone()
        } else {
            format!("{}.{}", self.plural, self.group)
        }
    }

    /// How the list at this path of field names merges.
    pub fn list_type(&self, fields: &[&str]) -> ListType {
        for (p, t) in &self.list_types {
            if p.len() == fields.len() && p.iter().zip(fields).all(|(a, b)| a == b) {
                return t.clone();
            }
        }
        ListType::Atomic
    }

    fn builtin(group: &str, version: &str, plural: &str, kind: &str, namespaced: bool) -> Self {
        ResourceType {
            group: group.into(),
            version: version.into(),
            plural: plural.into(),
            singular: kind.to_lowercase(),
            kind: kind.into(),
            namespaced,
            status_subresource: false,
            generation: false,
            custom: false,
            short_names: vec![],
            list_types: meta_list_types(),
            field_labels: vec![],
        }
    }
}

fn path(s: &str) -> Vec<String> {
    s.split('.').map(str::to_string).collect()
}

fn keyed(p: &str, keys: &[&str]) -> (Vec<String>, ListType) {
    (
        path(p),
        ListType::Map(keys.iter().map(|k| k.to_string()).collect()),
    )
}

/// ObjectMeta's merge lists, shared by every kind.
fn meta_list_types() -> Vec<(Vec<String>, ListType)> {
    vec![
        keyed("metadata.ownerReferences", &["uid"]),
        (path("metadata.finalizers"), ListType::Set),
    ]
}

/// The built-in kinds every fake serves.
pub fn builtins() -> Vec<ResourceType> {
    let mut v = Vec::new();
    let mut secret = ResourceType::builtin("", "v1", "secrets", "Secret", true);
    secret.field_labels = vec!["type".into()];
    v.push(secret);
    let mut cm = ResourceType::builtin("", "v1", "configmaps", "ConfigMap", true);
    cm.short_names = vec!["cm".into()];
    v.push(cm);
    let mut ns = ResourceType::builtin("", "v1", "namespaces", "Namespace", false);
    ns.status_subresource = true;
    ns.short_names = vec!["ns".into()];
    ns.field_labels = vec!["status.phase".into()];
    v.push(ns);
    let mut ev = ResourceType::builtin("", "v1", "events", "Event", true);
    ev.short_names = vec!["ev".into()];
    ev.field_labels = [
        "involvedObject.kind",
        "involvedObject.namespace",
        "involvedObject.name",
        "involvedObject.uid",
        "involvedObject.apiVersion",
        "involvedObject.resourceVersion",
        "involvedObject.fieldPath",
        "reason",
        "reportingComponent",
        "source",
        "type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(ev);
    let mut ev2 = ResourceType::builtin("events.k8s.io", "v1", "events", "Event", true);
    ev2.short_names = vec!["ev".into()];
    ev2.field_labels = [
        "regarding.kind",
        "regarding.namespace",
        "regarding.name",
        "regarding.uid",
        "reason",
        "reportingController",
        "type",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    v.push(ev2);
    v.push(ResourceType::builtin(
        "coordination.k8s.io",
        "v1",
        "leases",
        "Lease",
        true,
    ));
    // The workload kinds sopsync rolls, and the kinds their controllers keep revisions in.
    // (Job is not served: nothing here creates one, and its immutable template is not modelled.)
    for (group, plural, kind, short) in [
        ("apps", "deployments", "Deployment", "deploy"),
        ("apps", "statefulsets", "StatefulSet", "sts"),
        ("apps", "daemonsets", "DaemonSet", "ds"),
        ("apps", "replicasets", "ReplicaSet", "rs"),
        ("batch", "cronjobs", "CronJob", "cj"),
    ] {
        let mut w = ResourceType::builtin(group, "v1", plural, kind, true);
        w.status_subresource = true;
        w.generation = true;
        w.short_names = vec![short.into()];
        let template = pod_template_path(kind).expect("a workload kind");
        w.list_types.extend(pod_template_list_types(template));
        // DeploymentStatus, StatefulSetStatus, DaemonSetStatus and ReplicaSetStatus
        // conditions: `patchMergeKey=type`.
        if kind != "CronJob" {
            w.list_types.push(keyed("status.conditions", &["type"]));
        }
        v.push(w);
    }
    // ControllerRevision has no spec and no status: kube-apiserver keeps no generation
    // for it (its registry strategy sets none).
    v.push(ResourceType::builtin(
        "apps",
        "v1",
        "controllerrevisions",
        "ControllerRevision",
        true,
    ));
    // RBAC's kinds, so that a test grants permissions the way a cluster does: by
    // writing the chart's rendered Roles and bindings (the authorizer reads them).
    for (plural, kind, namespaced) in [
        ("roles", "Role", true),
        ("rolebindings", "RoleBinding", true),
        ("clusterroles", "ClusterRole", false),
        ("clusterrolebindings", "ClusterRoleBinding", false),
    ] {
        v.push(ResourceType::builtin(
            "rbac.authorization.k8s.io",
            "v1",
            plural,
            kind,
            namespaced,
        ));
    }
    let mut crd = ResourceType::builtin(
        "apiextensions.k8s.io",
        "v1",
        "customresourcedefinitions",
        "CustomResourceDefinition",
        false,
    );
    crd.status_subresource = true;
    crd.generation = true;
    crd.short_names = vec!["crd".into(), "crds".into()];
    crd.list_types.push(keyed("spec.versions", &["name"]));
    crd.list_types.push(keyed("status.conditions", &["type"]));
    v.push(crd);
    v
}

/// The served kinds a CustomResourceDefinition object defines (one per served version).
pub fn from_crd(crd: &Value) -> Vec<ResourceType> {
    let spec = &crd["spec"];
    let group = spec["group"].as_str().unwrap_or_default();
    let names = &spec["names"];
    let plural = names["plural"].as_str().unwrap_or_default();
    let kind = names["kind"].as_str().unwrap_or_default();
    let singular = names["singular"]
        .as_str()
        .map(str::to_string)
        .unwrap_or_else(|| kind.to_lowercase());
    let short_names: Vec<String> = names["shortNames"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default();
    let namespaced = spec["scope"].as_str() != Some("Cluster");
    let mut out = Vec::new();
    for v in spec["versions"].as_array().into_iter().flatten() {
        if v["served"].as_bool() == Some(false) {
            continue;
        }
        let mut list_types = meta_list_types();
        collect_list_types(
            &v["schema"]["openAPIV3Schema"],
            &mut Vec::new(),
            &mut list_types,
        );
        out.push(ResourceType {
            group: group.into(),
            version: v["name"].as_str().unwrap_or_default().into(),
            plural: plural.into(),
            singular: singular.clone(),
            kind: kind.into(),
            namespaced,
            status_subresource: v["subresources"]["status"].is_object(),
            generation: true,
            custom: true,
            short_names: short_names.clone(),
            list_types,
            field_labels: vec![],
        });
    }
    out
}

/// Reads `x-kubernetes-list-type` / `x-kubernetes-list-map-keys` from a structural schema.
fn collect_list_types(
    schema: &Value,
    at: &mut Vec<String>,
    out: &mut Vec<(Vec<String>, ListType)>,
) {
    if let Some(props) = schema["properties"].as_object() {
        for (k, s) in props {
            at.push(k.clone());
            collect_list_types(s, at, out);
            at.pop();
        }
    }
    if schema["type"].as_str() == Some("array") {
        match schema["x-kubernetes-list-type"].as_str() {
            Some("map") => {
                let keys = schema["x-kubernetes-list-map-keys"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .filter_map(|s| s.as_str().map(str::to_string))
                            .collect()
                    })
                    .unwrap_or_default();
                out.push((at.clone(), ListType::Map(keys)));
            }
            Some("set") => out.push((at.clone(), ListType::Set)),
            _ => {}
        }
        // Lists nested in list items keep the field path (items add no name).
        collect_list_types(&schema["items"], at, out);
    }
}

/// The path of the pod template in a workload kind (`spec.template`, a CronJob's
/// `spec.jobTemplate.spec.template`); None for other kinds.
pub fn pod_template_path(kind: &str) -> Option<&'static str> {
    match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => Some("spec.template"),
        "CronJob" => Some("spec.jobTemplate.spec.template"),
        _ => None,
    }
}

/// The pod template of a stored workload, if `rt` is a workload kind.
pub fn pod_template<'a>(rt: &ResourceType, obj: &'a Value) -> Option<&'a Value> {
    if !matches!(rt.group.as_str(), "apps" | "batch") {
        return None;
    }
    let p = pod_template_path(&rt.kind)?;
    obj.pointer(&format!("/{}", p.replace('.', "/")))
}

/// The merge keys of the lists in a PodTemplateSpec at `template` (core/v1 `types.go`:
/// `patchMergeKey` for strategic merge, `listMapKey` for server-side apply; where they
/// differ, as for ports (`containerPort` versus `containerPort`+`protocol`), the SSA keys).
/// Lists not named here (tolerations, envFrom, readinessGates, projected sources, ...)
/// are atomic, as they are in kube-apiserver.
fn pod_template_list_types(template: &str) -> Vec<(Vec<String>, ListType)> {
    let spec = format!("{template}.spec");
    let mut out = vec![
        keyed(&format!("{spec}.volumes"), &["name"]),
        keyed(&format!("{spec}.imagePullSecrets"), &["name"]),
        keyed(&format!("{spec}.hostAliases"), &["ip"]),
        keyed(
            &format!("{spec}.topologySpreadConstraints"),
            &["topologyKey", "whenUnsatisfiable"],
        ),
        keyed(&format!("{spec}.resourceClaims"), &["name"]),
        keyed(&format!("{spec}.schedulingGates"), &["name"]),
    ];
    for c in ["containers", "initContainers", "ephemeralContainers"] {
        let c = format!("{spec}.{c}");
        out.push(keyed(&c, &["name"]));
        out.push(keyed(&format!("{c}.env"), &["name"]));
        out.push(keyed(&format!("{c}.ports"), &["containerPort", "protocol"]));
        out.push(keyed(&format!("{c}.volumeMounts"), &["mountPath"]));
        out.push(keyed(&format!("{c}.volumeDevices"), &["devicePath"]));
        out.push(keyed(&format!("{c}.resources.claims"), &["name"]));
    }
    out
}

/// Sets `obj[path]` to `value` unless it is already set (a `SetDefaults_*` rule).
fn default_at(obj: &mut Value, path: &str, value: Value) {
    let mut at = obj;
    let parts: Vec<&str> = path.split('.').collect();
    for (i, p) in parts.iter().enumerate() {
        if !at.is_object() {
            return;
        }
        if i + 1 == parts.len() {
            if at[*p].is_null() {
                at[*p] = value;
            }
            return;
        }
        if at[*p].is_null() {
            at[*p] = json!({});
        }
        at = &mut at[*p];
    }
}

/// The `apps/v1` and `batch/v1` defaults kube-apiserver sets on every write
/// (`pkg/apis/apps/v1/defaults.go`, `pkg/apis/batch/v1/defaults.go`). Pod-level defaults
/// (restartPolicy, dnsPolicy, terminationMessagePath, ...) are not modelled.
pub fn default_fields(rt: &ResourceType, obj: &mut Value) {
    match (rt.group.as_str(), rt.kind.as_str()) {
        ("apps", "Deployment") => {
            default_at(obj, "spec.replicas", json!(1));
            default_at(obj, "spec.strategy.type", json!("RollingUpdate"));
            if obj["spec"]["strategy"]["type"] == "RollingUpdate" {
                default_at(
                    obj,
                    "spec.strategy.rollingUpdate.maxUnavailable",
                    json!("25%"),
                );
                default_at(obj, "spec.strategy.rollingUpdate.maxSurge", json!("25%"));
            }
            default_at(obj, "spec.revisionHistoryLimit", json!(10));
            default_at(obj, "spec.progressDeadlineSeconds", json!(600));
        }
        ("apps", "StatefulSet") => {
            default_at(obj, "spec.replicas", json!(1));
            default_at(obj, "spec.podManagementPolicy", json!("OrderedReady"));
            default_at(obj, "spec.updateStrategy.type", json!("RollingUpdate"));
            if obj["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                default_at(obj, "spec.updateStrategy.rollingUpdate.partition", json!(0));
            }
            default_at(obj, "spec.revisionHistoryLimit", json!(10));
            default_at(
                obj,
                "spec.persistentVolumeClaimRetentionPolicy.whenDeleted",
                json!("Retain"),
            );
            default_at(
                obj,
                "spec.persistentVolumeClaimRetentionPolicy.whenScaled",
                json!("Retain"),
            );
        }
        ("apps", "DaemonSet") => {
            default_at(obj, "spec.updateStrategy.type", json!("RollingUpdate"));
            if obj["spec"]["updateStrategy"]["type"] == "RollingUpdate" {
                default_at(
                    obj,
                    "spec.updateStrategy.rollingUpdate.maxUnavailable",
                    json!(1),
                );
                default_at(obj, "spec.updateStrategy.rollingUpdate.maxSurge", json!(0));
            }
            default_at(obj, "spec.revisionHistoryLimit", json!(10));
        }
        ("apps", "ReplicaSet") => default_at(obj, "spec.replicas", json!(1)),
        ("batch", "CronJob") => {
            default_at(obj, "spec.concurrencyPolicy", json!("Allow"));
            default_at(obj, "spec.suspend", json!(false));
            default_at(obj, "spec.successfulJobsHistoryLimit", json!(3));
            default_at(obj, "spec.failedJobsHistoryLimit", json!(1));
        }
        _ => {}
    }
}

/// The annotation in which `apps/v1` shows a DaemonSet's internal `templateGeneration`
/// (`pkg/apis/apps/v1/conversion.go`).
pub const DAEMONSET_TEMPLATE_GENERATION: &str = "deprecated.daemonset.template.generation";

/// What the registry strategy does when a workload is created (`PrepareForCreate`):
/// a DaemonSet's template generation starts at 1.
pub fn prepare_for_create(rt: &ResourceType, obj: &mut Value) {
    if rt.group == "apps" && rt.kind == "DaemonSet" {
        obj["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] = json!("1");
    }
}

/// What the registry strategy does on an update of the main resource (`PrepareForUpdate`)
/// of a kind that keeps `metadata.generation`: bumps it when the spec changed (for a
/// Deployment, also when its annotations changed, "because annotations are copied from
/// deployments to their replica sets", `pkg/registry/apps/deployment/strategy.go`; for
/// other kinds any change outside metadata and status, as the generic rule already did),
/// and bumps a DaemonSet's template generation when its template changed
/// (`pkg/registry/apps/daemonset/strategy.go`). Returns whether the pod template changed.
pub fn prepare_for_update(rt: &ResourceType, old: &Value, new: &mut Value) -> bool {
    let template_changed = match (pod_template(rt, old), pod_template(rt, new)) {
        (None, None) => false,
        (a, b) => a != b,
    };
    let outside = |o: &Value| {
        let mut o = o.clone();
        if let Some(m) = o.as_object_mut() {
            m.remove("metadata");
            m.remove("status");
        }
        o
    };
    let mut changed = outside(old) != outside(new);
    if rt.group == "apps" && rt.kind == "Deployment" {
        changed |= old["metadata"]["annotations"] != new["metadata"]["annotations"];
    }
    if changed {
        let g = old["metadata"]["generation"].as_i64().unwrap_or(0) + 1;
        new["metadata"]["generation"] = json!(g);
    }
    if rt.group == "apps" && rt.kind == "DaemonSet" {
        let before: i64 = old["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION]
            .as_str()
            .and_then(|s| s.parse().ok())
            .unwrap_or(1);
        let now = if template_changed { before + 1 } else { before };
        new["metadata"]["annotations"][DAEMONSET_TEMPLATE_GENERATION] = json!(now.to_string());
    }
    template_changed
}

/// What a write to the status subresource keeps from the request besides status: a
/// Deployment's status strategy resets only spec and labels, so its controller records
/// `deployment.kubernetes.io/revision` through `UpdateStatus`
/// (`deploymentStatusStrategy.PrepareForUpdate`); other kinds keep only status.
pub fn status_update_keeps_annotations(rt: &ResourceType) -> bool {
    rt.group == "apps" && rt.kind == "Deployment"
}

const VERBS: [&str; 8] = [
    "create",
    "delete",
    "deletecollection",
    "get",
    "list",
    "patch",
    "update",
    "watch",
];

/// `/api/v1` or `/apis/<g>/<v>`: an APIResourceList.
pub fn resource_list(group_version: &str, types: &[&ResourceType]) -> Value {
    let mut resources = Vec::new();
    for rt in types {
        resources.push(json!({
            "name": rt.plural,
            "singularName": rt.singular,
            "namespaced": rt.namespaced,
            "kind": rt.kind,
            "verbs": VERBS,
            "shortNames": rt.short_names,
        }));
        if rt.status_subresource {
            resources.push(json!({
                "name": format!("{}/status", rt.plural),
                "singularName": "",
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": ["get", "patch", "update"],
            }));
        }
    }
    json!({
        "kind": "APIResourceList",
        "apiVersion": "v1",
        "groupVersion": group_version,
        "resources": resources,
    })
}

/// `/apis`: an APIGroupList of every non-core group.
pub fn group_list(types: &[ResourceType]) -> Value {
    let mut groups: Vec<(String, Vec<String>)> = Vec::new();
    for rt in types.iter().filter(|t| !t.group.is_empty()) {
        match groups.iter_mut().find(|(g, _)| *g == rt.group) {
            Some((_, vs)) => {
                if !vs.contains(&rt.version) {
                    vs.push(rt.version.clone())
                }
            }
            None => groups.push((rt.group.clone(), vec![rt.version.clone()])),
        }
    }
    let groups: Vec<Value> = groups
        .into_iter()
        .map(|(g, vs)| {
            let versions: Vec<Value> = vs
                .iter()
                .map(|v| json!({ "groupVersion": format!("{g}/{v}"), "version": v }))
                .collect();
            json!({ "name": g, "versions": versions, "preferredVersion": versions[0].clone() })
        })
        .collect();
    json!({ "kind": "APIGroupList", "apiVersion": "v1", "groups": groups })
}
