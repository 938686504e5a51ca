//! The kinds the fake serves: built-ins (Secret, ConfigMap, Namespace, Event, Lease,
//! Deployment, CustomResourceDefinition, RBAC's Role, ClusterRole and their bindings) and kinds registered from CRDs, with what
//! discovery, server-side apply and strategic merge need to know about each.

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
    let mut dep = ResourceType::builtin("apps", "v1", "deployments", "Deployment", true);
    dep.status_subresource = true;
    dep.generation = true;
    dep.short_names = vec!["deploy".into()];
    for p in [
        "spec.template.spec.containers",
        "spec.template.spec.initContainers",
    ] {
        dep.list_types.push(keyed(p, &["name"]));
        dep.list_types.push(keyed(&format!("{p}.env"), &["name"]));
        dep.list_types
            .push(keyed(&format!("{p}.ports"), &["containerPort", "protocol"]));
        dep.list_types
            .push(keyed(&format!("{p}.volumeMounts"), &["mountPath"]));
    }
    dep.list_types
        .push(keyed("spec.template.spec.volumes", &["name"]));
    dep.list_types
        .push(keyed("spec.template.spec.imagePullSecrets", &["name"]));
    dep.list_types.push(keyed("status.conditions", &["type"]));
    v.push(dep);
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
