//! Authentication by bearer token and authorization by RBAC, evaluated on every request
//! from the Role, ClusterRole, RoleBinding and ClusterRoleBinding objects in the store,
//! as kube-apiserver's RBAC authorizer does. Written from the Kubernetes documentation
//! ("Using RBAC Authorization", <https://kubernetes.io/docs/reference/access-authn-authz/rbac/>;
//! "Authorization", <https://kubernetes.io/docs/reference/access-authn-authz/authorization/>)
//! and the sources it points to: `plugin/pkg/auth/authorizer/rbac/rbac.go` (RuleAllows,
//! appliesTo), `pkg/apis/rbac/v1/evaluation_helpers.go` (the matchers),
//! `pkg/registry/rbac/validation/rule.go` (which bindings apply),
//! `staging/src/k8s.io/apiserver/pkg/endpoints/request/requestinfo.go` (request
//! attributes) and `.../endpoints/handlers/responsewriters/errors.go` (the 403 message).

use serde_json::Value;

use super::errors::ApiError;
use super::resources::ResourceType;
use super::store::Store;

/// The RBAC API group.
pub const GROUP: &str = "rbac.authorization.k8s.io";

/// An authenticated user: a name and its groups.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// `system:serviceaccount:<namespace>:<name>` for a service account.
    pub name: String,
    /// Groups, `system:authenticated` always among them.
    pub groups: Vec<String>,
}

impl User {
    /// The cluster administrator the tests themselves act as: in `system:masters`,
    /// which kube-apiserver authorizes before RBAC is asked (the "system:masters"
    /// group is a super-user group; RBAC docs, "Default roles and role bindings").
    pub fn admin() -> Self {
        User {
            name: "fake-admin".into(),
            groups: vec!["system:masters".into(), "system:authenticated".into()],
        }
    }

    /// A service account's user: "system:serviceaccount:<ns>:<name>", in the groups
    /// "system:serviceaccounts", "system:serviceaccounts:<ns>" and "system:authenticated"
    /// (RBAC docs, "Referring to subjects" and "Service account permissions").
    pub fn service_account(ns: &str, name: &str) -> Self {
        User {
            name: format!("system:serviceaccount:{ns}:{name}"),
            groups: vec![
                "system:serviceaccounts".into(),
                format!("system:serviceaccounts:{ns}"),
                "system:authenticated".into(),
            ],
        }
    }

    fn is_master(&self) -> bool {
        self.groups.iter().any(|g| g == "system:masters")
    }
}

/// The authorization attributes of a request (requestinfo.go, RequestInfoFactory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attributes {
    /// get, list, watch, create, update, patch, delete, deletecollection.
    pub verb: String,
    /// True for a path under /api/v1/… or /apis/<group>/<version>/… with a resource.
    pub resource_request: bool,
    /// The URL path (what a non-resource rule matches).
    pub path: String,
    /// API group (`""` for core).
    pub group: String,
    /// Plural resource.
    pub resource: String,
    /// Subresource (`status`).
    pub subresource: String,
    /// Namespace (`""` at the cluster scope).
    pub namespace: String,
    /// Object name (`""` for create, list and watch of a collection).
    pub name: String,
}

impl Attributes {
    /// Parses a request as RequestInfoFactory.NewRequestInfo does: fewer than three path
    /// segments, or a prefix other than `api`/`apis`, or `/apis/<group>` and
    /// `/apis/<group>/<version>`, make a non-resource request (discovery); otherwise
    /// `[namespaces/<ns>/]<resource>[/<name>[/<subresource>]]`.
    pub fn from_request(method: &str, path: &str, watch: bool, field_selector: &str) -> Self {
        let segs: Vec<&str> = path.trim_matches('/').split('/').collect();
        let verb = match method {
            "POST" => "create",
            "PUT" => "update",
            "PATCH" => "patch",
            "DELETE" => "delete",
            _ => "get",
        };
        let mut a = Attributes {
            verb: verb.into(),
            resource_request: false,
            path: path.to_string(),
            group: String::new(),
            resource: String::new(),
            subresource: String::new(),
            namespace: String::new(),
            name: String::new(),
        };
        // A non-resource request's verb is the lower-cased HTTP method ("Determine the
        // request verb", authorization docs).
        if method != "GET" {
            a.verb = method.to_ascii_lowercase();
        }
        let mut rest: &[&str] = match segs.as_slice() {
            s if s.len() < 3 => return a,
            ["api", _version, rest @ ..] => rest,
            ["apis", group, _version, rest @ ..] if !rest.is_empty() => {
                a.group = group.to_string();
                rest
            }
            _ => return a,
        };
        a.resource_request = true;
        a.verb = verb.into();
        if rest.first() == Some(&"namespaces") {
            if let Some(ns) = rest.get(1) {
                a.namespace = ns.to_string();
                // A path that goes on past the namespace's name, other than the
                // namespace's own subresources, names a resource inside it.
                if rest.len() > 2 && !matches!(rest[2], "status" | "finalize") {
                    rest = &rest[2..];
                }
            }
        }
        if let Some(r) = rest.first() {
            a.resource = r.to_string();
        }
        if let Some(n) = rest.get(1) {
            a.name = n.to_string();
        }
        if let Some(s) = rest.get(2) {
            a.subresource = s.to_string();
        }
        // GET without a name lists, DELETE without one is deletecollection, and
        // `?watch=true` turns a list into a watch (requestinfo.go, "if there's no
        // name on the request and we thought it was a get -> list").
        match (a.verb.as_str(), a.name.is_empty()) {
            ("get", true) => a.verb = "list".into(),
            ("delete", true) => a.verb = "deletecollection".into(),
            _ => {}
        }
        if watch && matches!(a.verb.as_str(), "list" | "get") {
            a.verb = "watch".into();
        }
        // A list or watch narrowed by `fieldSelector=metadata.name=<n>` is authorized
        // for that name (requestinfo.go: "if there's a name on the field selector
        // use it", so that resourceNames rules can allow it).
        if matches!(a.verb.as_str(), "list" | "watch") && a.name.is_empty() {
            if let Some(n) = field_selector
                .split(',')
                .find_map(|t| t.strip_prefix("metadata.name="))
            {
                a.name = n.to_string();
            }
        }
        a
    }

    /// `resource` or `resource/subresource`, as rules name it.
    pub fn combined_resource(&self) -> String {
        if self.subresource.is_empty() {
            self.resource.clone()
        } else {
            format!("{}/{}", self.resource, self.subresource)
        }
    }
}

/// One PolicyRule, as written in a Role or ClusterRole.
#[derive(Debug, Clone, Default)]
struct Rule {
    verbs: Vec<String>,
    api_groups: Vec<String>,
    resources: Vec<String>,
    resource_names: Vec<String>,
    non_resource_urls: Vec<String>,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

impl Rule {
    fn from_json(v: &Value) -> Self {
        Rule {
            verbs: strings(&v["verbs"]),
            api_groups: strings(&v["apiGroups"]),
            resources: strings(&v["resources"]),
            resource_names: strings(&v["resourceNames"]),
            non_resource_urls: strings(&v["nonResourceURLs"]),
        }
    }

    /// RuleAllows (rbac.go): verb, group, resource and name for a resource request;
    /// verb and path for a non-resource one.
    fn allows(&self, a: &Attributes) -> bool {
        // VerbMatches: "*" or the verb itself.
        let verb = self.verbs.iter().any(|v| v == "*" || *v == a.verb);
        if !a.resource_request {
            // NonResourceURLMatches: "*", the exact path, or a prefix ending in "*".
            return verb
                && self.non_resource_urls.iter().any(|u| {
                    u == "*"
                        || *u == a.path
                        || u.strip_suffix('*').is_some_and(|p| a.path.starts_with(p))
                });
        }
        // APIGroupMatches: "*" or the group ("" is the core group).
        let group = self.api_groups.iter().any(|g| g == "*" || *g == a.group);
        // ResourceMatches: "*", the exact `resource[/subresource]`, or "*/<subresource>";
        // a rule naming only `secrets` does not grant `secrets/status`.
        let combined = a.combined_resource();
        let resource = self.resources.iter().any(|r| {
            r == "*"
                || *r == combined
                || (!a.subresource.is_empty() && r.strip_prefix("*/") == Some(&a.subresource))
        });
        // ResourceNameMatches: an empty list allows every name; otherwise the request
        // must name one of them (so create, list and watch of a collection, which carry
        // no name, are never allowed by a rule with resourceNames).
        let name = self.resource_names.is_empty() || self.resource_names.contains(&a.name);
        verb && group && resource && name
    }
}

/// The rules kube-apiserver grants every authenticated user at bootstrap: the
/// `system:discovery` and `system:public-info-viewer` ClusterRoles, bound to
/// `system:authenticated` (RBAC docs, "Default roles and role bindings", "API discovery
/// roles").
fn discovery_rule() -> Rule {
    Rule {
        verbs: vec!["get".into()],
        non_resource_urls: [
            "/api",
            "/api/*",
            "/apis",
            "/apis/*",
            "/healthz",
            "/livez",
            "/openapi",
            "/openapi/*",
            "/readyz",
            "/version",
            "/version/",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Rule::default()
    }
}

/// appliesTo (rbac.go): does a binding subject name this user? A ServiceAccount
/// subject without a namespace means the binding's own namespace.
fn subject_matches(subject: &Value, user: &User, binding_ns: &str) -> bool {
    let name = subject["name"].as_str().unwrap_or_default();
    match subject["kind"].as_str() {
        Some("User") => user.name == name,
        Some("Group") => user.groups.iter().any(|g| g == name),
        Some("ServiceAccount") => {
            let ns = subject["namespace"]
                .as_str()
                .filter(|n| !n.is_empty())
                .unwrap_or(binding_ns);
            !ns.is_empty() && user.name == format!("system:serviceaccount:{ns}:{name}")
        }
        _ => false,
    }
}

fn rbac_type(store: &Store, plural: &str) -> ResourceType {
    store
        .resource(GROUP, "v1", plural)
        .expect("the RBAC kinds are built in")
}

fn role_rules(store: &Store, kind: &str, ns: &str, name: &str) -> Vec<Rule> {
    let (plural, ns) = match kind {
        "ClusterRole" => ("clusterroles", ""),
        "Role" => ("roles", ns),
        _ => return Vec::new(),
    };
    store
        .get(&rbac_type(store, plural), ns, name)
        .map(|r| {
            r["rules"]
                .as_array()
                .into_iter()
                .flatten()
                .map(Rule::from_json)
                .collect()
        })
        .unwrap_or_default()
}

/// Every rule that applies to `user` for a request in `namespace` (VisitRulesFor,
/// rule.go): the ClusterRoles of ClusterRoleBindings everywhere, and, for a request
/// inside a namespace, the Roles or ClusterRoles of that namespace's RoleBindings.
/// A RoleBinding never grants anything at the cluster scope or in another namespace.
fn rules_for(store: &Store, user: &User, namespace: &str) -> Vec<Rule> {
    let mut rules = Vec::new();
    if user.groups.iter().any(|g| g == "system:authenticated") {
        rules.push(discovery_rule());
    }
    for (_, b) in store.list(&rbac_type(store, "clusterrolebindings"), None) {
        if b["subjects"]
            .as_array()
            .into_iter()
            .flatten()
            .any(|s| subject_matches(s, user, ""))
            && b["roleRef"]["kind"] == "ClusterRole"
        {
            let role = b["roleRef"]["name"].as_str().unwrap_or_default();
            rules.extend(role_rules(store, "ClusterRole", "", role));
        }
    }
    if !namespace.is_empty() {
        for (_, b) in store.list(&rbac_type(store, "rolebindings"), Some(namespace)) {
            if b["subjects"]
                .as_array()
                .into_iter()
                .flatten()
                .any(|s| subject_matches(s, user, namespace))
            {
                rules.extend(role_rules(
                    store,
                    b["roleRef"]["kind"].as_str().unwrap_or_default(),
                    namespace,
                    b["roleRef"]["name"].as_str().unwrap_or_default(),
                ));
            }
        }
    }
    rules
}

/// Allows the request or answers what kube-apiserver answers a denied one.
pub fn authorize(store: &Store, user: &User, a: &Attributes) -> Result<(), ApiError> {
    if user.is_master() {
        return Ok(());
    }
    if rules_for(store, user, &a.namespace)
        .iter()
        .any(|r| r.allows(a))
    {
        return Ok(());
    }
    Err(forbidden(user, a))
}

/// The 403 body: `forbiddenMessage` (responsewriters/errors.go) wrapped by
/// `NewForbidden` (apimachinery/pkg/api/errors): `<resource>[.<group>] ["<name>"] is
/// forbidden: User "<user>" cannot <verb> resource "<resource>[/<sub>]" in API group
/// "<group>" in the namespace "<ns>"` (or `at the cluster scope`); RBAC adds no reason
/// when no rule matched. details carries group, kind (the plural resource) and name.
pub fn forbidden(user: &User, a: &Attributes) -> ApiError {
    let u = &user.name;
    if !a.resource_request {
        return ApiError::from_code(
            403,
            format!(
                "forbidden: User \"{u}\" cannot {} path \"{}\"",
                a.verb, a.path
            ),
        )
        .with_details(serde_json::json!({}));
    }
    let scope = if a.namespace.is_empty() {
        "at the cluster scope".to_string()
    } else {
        format!("in the namespace \"{}\"", a.namespace)
    };
    let why = format!(
        "User \"{u}\" cannot {} resource \"{}\" in API group \"{}\" {scope}",
        a.verb,
        a.combined_resource(),
        a.group
    );
    let qualified = if a.group.is_empty() {
        a.resource.clone()
    } else {
        format!("{}.{}", a.resource, a.group)
    };
    let message = if a.name.is_empty() {
        format!("{qualified} is forbidden: {why}")
    } else {
        format!("{qualified} \"{}\" is forbidden: {why}", a.name)
    };
    let mut details = serde_json::json!({ "kind": a.resource });
    if !a.group.is_empty() {
        details["group"] = a.group.clone().into();
    }
    if !a.name.is_empty() {
        details["name"] = a.name.clone().into();
    }
    ApiError::from_code(403, message).with_details(details)
}

/// A rule of a rendered Role or ClusterRole, expanded to the (group, resource, verb)
/// triples it grants, for measuring which of them a test run used.
pub fn expand_rules(role: &Value) -> Vec<(String, String, String)> {
    let mut out = Vec::new();
    for r in role["rules"].as_array().into_iter().flatten() {
        let r = Rule::from_json(r);
        for g in &r.api_groups {
            for res in &r.resources {
                for v in &r.verbs {
                    out.push((g.clone(), res.clone(), v.clone()));
                }
            }
        }
    }
    out
}
