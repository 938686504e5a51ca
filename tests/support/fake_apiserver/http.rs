//! The HTTP side: routing of Kubernetes REST paths, verbs, content types, the
//! request log and fault injection.

use std::sync::Arc;

use base64::Engine as _;
use bytes::Bytes;
use http_body_util::{combinators::BoxBody, BodyExt, Full};
use hyper::{Method, Request, Response, StatusCode};
use serde_json::{json, Value};

use super::apply;
use super::errors::{ApiError, ApiResult};
use super::metadata::{self, Representation};
use super::patch;
use super::rbac;
use super::resources::{self, ResourceType};
use super::selector::{FieldSelector, LabelSelector};
use super::store::{scope_of, DeleteOptions, Store, WriteCtx};
use super::watch;
use super::{Fault, RequestRecord, Shared};

/// Error type of response bodies; an error aborts the connection.
pub type BoxError = Box<dyn std::error::Error + Send + Sync>;
/// Response body type.
pub type Body = BoxBody<Bytes, BoxError>;

/// A complete JSON response.
pub fn json_response(code: u16, v: &Value) -> Response<Body> {
    let body = Full::new(Bytes::from(v.to_string()))
        .map_err(|e| match e {})
        .boxed();
    Response::builder()
        .status(StatusCode::from_u16(code).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR))
        .header("content-type", "application/json")
        .body(body)
        .expect("a valid response")
}

fn error_response(e: &ApiError) -> Response<Body> {
    let mut r = json_response(e.code, &e.to_status());
    if let Some(secs) = e
        .details
        .as_ref()
        .and_then(|d| d["retryAfterSeconds"].as_u64())
    {
        r.headers_mut()
            .insert("retry-after", secs.to_string().parse().expect("a number"));
    }
    r
}

fn percent_decode(s: &str) -> String {
    let hex = |c: u8| (c as char).to_digit(16).map(|d| d as u8);
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < b.len() => match (hex(b[i + 1]), hex(b[i + 2])) {
                (Some(h), Some(l)) => {
                    out.push(h << 4 | l);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            c => out.push(c),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Query parameters, decoded.
#[derive(Debug, Default, Clone)]
pub struct Query(Vec<(String, String)>);

impl Query {
    fn parse(q: &str) -> Self {
        Query(
            q.split('&')
                .filter(|p| !p.is_empty())
                .map(|p| match p.split_once('=') {
                    Some((k, v)) => (percent_decode(k), percent_decode(v)),
                    None => (percent_decode(p), String::new()),
                })
                .collect(),
        )
    }

    /// The first value of a parameter.
    pub fn get(&self, k: &str) -> Option<&str> {
        self.0.iter().find(|(n, _)| n == k).map(|(_, v)| v.as_str())
    }

    /// A boolean parameter (`true`/`1`).
    pub fn flag(&self, k: &str) -> bool {
        matches!(self.get(k), Some("true") | Some("1"))
    }
}

/// What a path addresses.
enum Target {
    Version,
    Api,
    Apis,
    Group(String),
    GroupVersion(String, String),
    Resource {
        rt: Box<ResourceType>,
        ns: Option<String>,
        name: Option<String>,
        sub: Option<String>,
    },
}

fn route(store: &Store, path: &str) -> ApiResult<Target> {
    let segs: Vec<String> = path
        .trim_matches('/')
        .split('/')
        .filter(|s| !s.is_empty())
        .map(percent_decode)
        .collect();
    let s: Vec<&str> = segs.iter().map(String::as_str).collect();
    let (group, version, rest) = match s.as_slice() {
        ["version"] => return Ok(Target::Version),
        ["api"] => return Ok(Target::Api),
        ["apis"] => return Ok(Target::Apis),
        ["api", "v1"] => return Ok(Target::GroupVersion(String::new(), "v1".into())),
        ["apis", g] => return Ok(Target::Group(g.to_string())),
        ["apis", g, v] => return Ok(Target::GroupVersion(g.to_string(), v.to_string())),
        ["api", "v1", rest @ ..] => ("", "v1", rest),
        ["apis", g, v, rest @ ..] => (*g, *v, rest),
        _ => return Err(ApiError::path_not_found()),
    };
    let namespaced_in = |plural: &str| {
        store
            .resource(group, version, plural)
            .filter(|t| t.namespaced)
    };
    let (ns, rest) = match rest {
        ["namespaces", ns, plural, tail @ ..] if namespaced_in(plural).is_some() => {
            (Some(ns.to_string()), {
                let mut v = vec![*plural];
                v.extend_from_slice(tail);
                v
            })
        }
        other => (None, other.to_vec()),
    };
    let (plural, name, sub) = match rest.as_slice() {
        [p] => (*p, None, None),
        [p, n] => (*p, Some(n.to_string()), None),
        [p, n, sub] => (*p, Some(n.to_string()), Some(sub.to_string())),
        _ => return Err(ApiError::path_not_found()),
    };
    let rt = store
        .resource(group, version, plural)
        .ok_or_else(ApiError::path_not_found)?;
    if let Some(sub) = &sub {
        if !(sub == "status" && rt.status_subresource) {
            return Err(ApiError::path_not_found());
        }
    }
    if ns.is_some() && !rt.namespaced {
        return Err(ApiError::path_not_found());
    }
    Ok(Target::Resource {
        rt: Box::new(rt),
        ns,
        name,
        sub,
    })
}

/// The Kubernetes verb of a request.
fn verb_of(method: &Method, has_name: bool, watch: bool) -> &'static str {
    match (method.as_str(), has_name) {
        ("GET", true) if watch => "watch",
        ("GET", true) => "get",
        ("GET", false) if watch => "watch",
        ("GET", false) => "list",
        ("POST", _) => "create",
        ("PUT", _) => "update",
        ("PATCH", _) => "patch",
        ("DELETE", true) => "delete",
        ("DELETE", false) => "deletecollection",
        _ => "unknown",
    }
}

fn version_info() -> Value {
    json!({
        "major": "1", "minor": "33", "gitVersion": "v1.33.0-sopsync-fake", "gitCommit": "0000000000000000000000000000000000000000",
        "gitTreeState": "clean", "buildDate": "2026-01-01T00:00:00Z", "goVersion": "go1.24", "compiler": "gc", "platform": "linux/amd64"
    })
}

/// Handles one request; an `Err` makes hyper drop the connection.
pub async fn handle(
    shared: Arc<Shared>,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Body>, BoxError> {
    let method = req.method().clone();
    let path = req.uri().path().to_string();
    let raw_query = req.uri().query().unwrap_or_default().to_string();
    let query = Query::parse(&raw_query);
    let header = |n: &str| {
        req.headers()
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let content_type = header("content-type");
    let user_agent = header("user-agent");
    let auth = header("authorization");
    let accept = header("accept");
    let watching = query.flag("watch");

    let target = {
        let store = shared.store.lock().expect("store lock");
        route(&store, &path)
    };
    let mut record = RequestRecord {
        method: method.to_string(),
        path: path.clone(),
        query: raw_query.clone(),
        verb: String::new(),
        group: String::new(),
        resource: String::new(),
        namespace: None,
        name: None,
        subresource: None,
        content_type: content_type.clone(),
        field_manager: query.get("fieldManager").map(str::to_string),
        user_agent: user_agent.clone(),
        user: String::new(),
        denied: false,
        authorized_create: false,
        status: 0,
        credential: None,
        at: std::time::Instant::now(),
    };
    if let Ok(Target::Resource { rt, ns, name, sub }) = &target {
        record.verb = verb_of(&method, name.is_some(), watching).into();
        record.group = rt.group.clone();
        record.resource = rt.plural.clone();
        record.namespace = ns.clone();
        record.name = name.clone();
        record.subresource = sub.clone();
    } else {
        record.verb = if method == Method::GET {
            "get"
        } else {
            "unknown"
        }
        .into();
    }

    let token = auth.as_deref().and_then(|a| a.strip_prefix("Bearer "));
    record.credential = token.and_then(|t| shared.label_of(t));
    let user = token.and_then(|t| shared.user_of(t));
    let Some(user) = user else {
        record.status = 401;
        shared.log(record);
        return Ok(error_response(&ApiError::unauthorized()));
    };
    record.user = user.name.clone();
    // Authorization comes before anything else looks at the request, as in
    // kube-apiserver's handler chain (authentication, then authorization, then the
    // handler): a denied request sees no fault, no validation and no object.
    let attrs = rbac::Attributes::from_request(
        method.as_str(),
        &percent_decode(&path),
        watching,
        query.get("fieldSelector").unwrap_or_default(),
    );
    let decision = {
        let store = shared.store.lock().expect("store lock");
        rbac::authorize(&store, &user, &attrs)
    };
    if let Err(e) = decision {
        record.status = e.code;
        record.denied = true;
        shared.log(record);
        return Ok(error_response(&e));
    }
    // An apply that would create the object is authorized as `create` as well (API
    // concepts, "Patch and apply": server-side apply of an object that does not exist
    // needs create permission; handlers/patch.go wraps the create validation in
    // `withAuthorization` with the create attributes).
    let creating = match &target {
        Ok(Target::Resource {
            rt,
            ns,
            name: Some(name),
            sub: None,
        }) if method == Method::PATCH
            && content_type
                .as_deref()
                .is_some_and(|c| c.starts_with("application/apply-patch")) =>
        {
            let store = shared.store.lock().expect("store lock");
            store
                .get(rt, ns.as_deref().unwrap_or_default(), name)
                .is_none()
        }
        _ => false,
    };
    if creating {
        let create = rbac::Attributes {
            verb: "create".into(),
            ..attrs.clone()
        };
        let decision = {
            let store = shared.store.lock().expect("store lock");
            rbac::authorize(&store, &user, &create)
        };
        if let Err(e) = decision {
            record.status = e.code;
            record.denied = true;
            shared.log(record);
            return Ok(error_response(&e));
        }
        record.authorized_create = true;
    }

    // Fault injection: the first matching rule acts (delays add up and fall through).
    loop {
        let fault = shared.take_fault(&record);
        match fault {
            None => break,
            Some(Fault::Delay(d)) => tokio::time::sleep(d).await,
            Some(Fault::DropConnection) => {
                record.status = 0;
                shared.log(record);
                return Err("connection dropped by fault injection".into());
            }
            Some(f) => {
                let e = match f {
                    Fault::Status(code) => {
                        ApiError::from_code(code, format!("injected fault: HTTP {code}"))
                    }
                    Fault::Conflict => match &target {
                        Ok(Target::Resource { rt, name, .. }) => {
                            ApiError::conflict(rt, name.as_deref().unwrap_or_default())
                        }
                        _ => ApiError::from_code(409, "injected conflict"),
                    },
                    Fault::Gone => {
                        ApiError::gone("injected fault: the requested resourceVersion is too old")
                    }
                    Fault::TooManyRequests => ApiError::from_code(
                        429,
                        "injected fault: too many requests, please try again later",
                    ),
                    Fault::TooManyRequestsFor(secs) => {
                        let mut e = ApiError::from_code(
                            429,
                            "injected fault: too many requests, please try again later",
                        );
                        e.details = Some(json!({ "retryAfterSeconds": secs }));
                        e
                    }
                    Fault::Delay(_) | Fault::DropConnection => unreachable!("handled above"),
                };
                record.status = e.code;
                shared.log(record);
                return Ok(error_response(&e));
            }
        }
    }

    let body = match req.into_body().collect().await {
        Ok(b) => b.to_bytes(),
        Err(e) => return Err(Box::new(e)),
    };

    let response = match target {
        Err(e) => error_response(&e),
        Ok(Target::Version) => json_response(200, &version_info()),
        Ok(Target::Api) => json_response(
            200,
            &json!({
                "kind": "APIVersions", "versions": ["v1"],
                "serverAddressByClientCIDRs": [{ "clientCIDR": "0.0.0.0/0", "serverAddress": "127.0.0.1" }]
            }),
        ),
        Ok(Target::Apis) => {
            let store = shared.store.lock().expect("store lock");
            json_response(200, &resources::group_list(store.types()))
        }
        Ok(Target::Group(g)) => {
            let store = shared.store.lock().expect("store lock");
            let list = resources::group_list(store.types());
            match list["groups"]
                .as_array()
                .and_then(|gs| gs.iter().find(|x| x["name"] == json!(g)))
            {
                Some(grp) => {
                    let mut grp = grp.clone();
                    grp["kind"] = json!("APIGroup");
                    grp["apiVersion"] = json!("v1");
                    json_response(200, &grp)
                }
                None => error_response(&ApiError::path_not_found()),
            }
        }
        Ok(Target::GroupVersion(g, v)) => {
            let store = shared.store.lock().expect("store lock");
            let types: Vec<&ResourceType> = store
                .types()
                .iter()
                .filter(|t| t.group == g && t.version == v)
                .collect();
            if types.is_empty() {
                error_response(&ApiError::path_not_found())
            } else {
                let gv = if g.is_empty() {
                    v.clone()
                } else {
                    format!("{g}/{v}")
                };
                json_response(200, &resources::resource_list(&gv, &types))
            }
        }
        Ok(Target::Resource { rt, ns, name, sub }) => {
            let is_list = name.is_none() && matches!(method, Method::GET | Method::DELETE);
            let rep = match metadata::negotiate(accept.as_deref()) {
                // A watch streams single objects, so it takes the non-list form.
                Ok(Representation::PartialList) if watching && method == Method::GET => {
                    metadata::represent(Representation::PartialList, json!({}), false)
                        .map(|_| Representation::Full)
                }
                r => r,
            };
            let rep = match rep {
                Ok(r) => r,
                Err(e) => {
                    record.status = e.code;
                    shared.log(record);
                    return Ok(error_response(&e));
                }
            };
            if watching && method == Method::GET {
                let r = watch::serve(shared.clone(), *rt, ns, name, query.clone(), rep);
                record.status = r.status().as_u16();
                shared.log(record);
                return Ok(r);
            }
            let result = resource_request(
                &shared,
                &method,
                &rt,
                ns,
                name,
                sub,
                &query,
                content_type.as_deref(),
                user_agent.as_deref(),
                &body,
            );
            match result.and_then(|(code, v)| Ok((code, metadata::represent(rep, v, is_list)?))) {
                Ok((code, v)) => json_response(code, &v),
                Err(e) => error_response(&e),
            }
        }
    };
    record.status = response.status().as_u16();
    shared.log(record);
    Ok(response)
}

fn parse_json(body: &Bytes) -> ApiResult<Value> {
    serde_json::from_slice(body).map_err(|e| {
        ApiError::bad_request(format!(
            "the body of the request could not be decoded as JSON: {e}"
        ))
    })
}

/// The manager of a non-apply write: `fieldManager`, else the user agent's first word.
fn manager_of(query: &Query, user_agent: Option<&str>) -> String {
    match query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => user_agent
            .and_then(|u| u.split('/').next())
            .filter(|s| !s.is_empty())
            .unwrap_or("unknown")
            .to_string(),
    }
}

#[allow(clippy::too_many_arguments)]
fn resource_request(
    shared: &Shared,
    method: &Method,
    rt: &ResourceType,
    ns: Option<String>,
    name: Option<String>,
    sub: Option<String>,
    query: &Query,
    content_type: Option<&str>,
    user_agent: Option<&str>,
    body: &Bytes,
) -> ApiResult<(u16, Value)> {
    if rt.namespaced && ns.is_none() && !(method == Method::GET && name.is_none()) {
        return Err(ApiError::path_not_found());
    }
    let ns_str = ns.clone().unwrap_or_default();
    if query.get("dryRun").is_some() {
        return Err(ApiError::bad_request(
            "the fake API server does not implement dryRun",
        ));
    }
    let mut store = shared.store.lock().expect("store lock");
    match (method.as_str(), name) {
        ("GET", Some(name)) => store
            .get(rt, &ns_str, &name)
            .map(|o| (200, o))
            .ok_or_else(|| ApiError::not_found(rt, &name)),
        ("GET", None) => list(&store, rt, ns.as_deref(), query).map(|v| (200, v)),
        ("POST", None) => {
            let obj = parse_json(body)?;
            let ctx = WriteCtx {
                manager: manager_of(query, user_agent),
                sub: None,
                applied: None,
            };
            store.create(rt, &ns_str, obj, &ctx).map(|o| (201, o))
        }
        ("PUT", Some(name)) => {
            let obj = parse_json(body)?;
            let ctx = WriteCtx {
                manager: manager_of(query, user_agent),
                sub,
                applied: None,
            };
            store
                .update(rt, &ns_str, &name, obj, &ctx)
                .map(|o| (200, o))
        }
        ("PATCH", Some(name)) => {
            let ct = content_type
                .unwrap_or_default()
                .split(';')
                .next()
                .unwrap_or_default()
                .trim()
                .to_string();
            let patch = parse_json(body)?;
            if ct == "application/apply-patch+yaml" {
                return server_side_apply(
                    &mut store,
                    rt,
                    &ns_str,
                    &name,
                    sub.as_deref(),
                    query,
                    patch,
                );
            }
            if query.flag("force") {
                return Err(ApiError::from_code(422, "PatchOptions.meta.k8s.io \"\" is invalid: force: Forbidden: may not be specified for non-apply patch"));
            }
            let current = store
                .get(rt, &ns_str, &name)
                .ok_or_else(|| ApiError::not_found(rt, &name))?;
            let mut new = current.clone();
            match ct.as_str() {
                "application/merge-patch+json" => patch::merge_patch(&mut new, &patch),
                "application/strategic-merge-patch+json" => {
                    if rt.custom {
                        return Err(ApiError::unsupported_media_type(
                            "the body of the request was in an unknown format - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml",
                        ));
                    }
                    patch::strategic_merge(rt, &mut new, &patch).map_err(ApiError::bad_request)?
                }
                "application/json-patch+json" => patch::json_patch(&mut new, &patch)
                    .map_err(|e| ApiError::from_code(422, format!("the server rejected our request due to an error in our request: {e}")))?,
                other => {
                    return Err(ApiError::unsupported_media_type(format!(
                        "the body of the request was in an unknown format ({other}) - accepted media types include: application/json-patch+json, application/merge-patch+json, application/apply-patch+yaml, application/strategic-merge-patch+json"
                    )))
                }
            }
            // A patch that sets metadata.resourceVersion makes it a precondition; otherwise none.
            if patch["metadata"]["resourceVersion"].is_null() && ct != "application/json-patch+json"
            {
                new["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("resourceVersion"));
            } else if ct == "application/json-patch+json"
                && new["metadata"]["resourceVersion"] == current["metadata"]["resourceVersion"]
            {
                new["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("resourceVersion"));
            }
            let ctx = WriteCtx {
                manager: manager_of(query, user_agent),
                sub,
                applied: None,
            };
            store
                .update(rt, &ns_str, &name, new, &ctx)
                .map(|o| (200, o))
        }
        ("DELETE", Some(name)) => {
            let opts = delete_options(body, query)?;
            store.delete(rt, &ns_str, &name, &opts).map(|o| (200, o))
        }
        ("DELETE", None) => {
            let opts = delete_options(body, query)?;
            let listed = list(&store, rt, ns.as_deref(), query)?;
            let mut items = Vec::new();
            for item in listed["items"].as_array().into_iter().flatten() {
                let n = item["metadata"]["name"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                let i_ns = item["metadata"]["namespace"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if let Ok(o) = store.delete(rt, &i_ns, &n, &opts) {
                    items.push(o);
                }
            }
            Ok((
                200,
                json!({ "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": { "resourceVersion": store.rv.to_string() }, "items": items }),
            ))
        }
        _ => Err(ApiError::method_not_allowed(format!(
            "the server does not allow this method on the requested resource ({method})"
        ))),
    }
}

fn delete_options(body: &Bytes, query: &Query) -> ApiResult<DeleteOptions> {
    let v: Value = if body.iter().all(u8::is_ascii_whitespace) {
        json!({})
    } else {
        parse_json(body)?
    };
    let policy = v["propagationPolicy"]
        .as_str()
        .or(query.get("propagationPolicy"))
        .unwrap_or("Background");
    let orphan = policy == "Orphan" || v["orphanDependents"].as_bool() == Some(true);
    Ok(DeleteOptions {
        uid: v["preconditions"]["uid"].as_str().map(str::to_string),
        resource_version: v["preconditions"]["resourceVersion"]
            .as_str()
            .map(str::to_string),
        orphan,
    })
}

fn server_side_apply(
    store: &mut Store,
    rt: &ResourceType,
    ns: &str,
    name: &str,
    sub: Option<&str>,
    query: &Query,
    mut applied: Value,
) -> ApiResult<(u16, Value)> {
    let manager = match query.get("fieldManager") {
        Some(m) if !m.is_empty() => m.to_string(),
        _ => {
            return Err(ApiError::from_code(422, "PatchOptions.meta.k8s.io \"\" is invalid: fieldManager: Required value: is required for apply patch"));
        }
    };
    if !applied.is_object() {
        return Err(ApiError::bad_request("an apply patch must be an object"));
    }
    for (f, want) in [("apiVersion", rt.api_version()), ("kind", rt.kind.clone())] {
        match applied[f].as_str() {
            None | Some("") => {
                return Err(ApiError::bad_request(format!(
                    "invalid object: {f} must be set in an apply patch"
                )))
            }
            Some(v) if f == "kind" && v != want => {
                return Err(ApiError::bad_request(format!(
                    "the kind in the data ({v}) does not match the expected kind ({want})"
                )))
            }
            _ => {}
        }
    }
    if applied.get("metadata").is_none_or(Value::is_null) {
        applied["metadata"] = json!({});
    }
    if applied["metadata"]["name"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        // kube-apiserver takes the name from the URL when the configuration has none.
        applied["metadata"]["name"] = json!(name);
    }
    match applied["metadata"]["name"].as_str() {
        Some(n) if n == name => {}
        Some(n) => {
            return Err(ApiError::bad_request(format!(
                "the name of the object ({n}) does not match the name on the URL ({name})"
            )))
        }
        None => {
            return Err(ApiError::bad_request(
                "invalid object: metadata.name must be set in an apply patch",
            ))
        }
    }
    let force = query.flag("force");
    let scope = scope_of(rt, sub);
    let now = super::store::timestamp(false);
    let live = store.get(rt, ns, name);
    if live.is_none() && sub.is_some() {
        return Err(ApiError::not_found(rt, name));
    }
    let out = apply::apply(
        rt,
        name,
        live.as_ref(),
        &applied,
        &manager,
        force,
        scope,
        sub,
        &now,
    )?;
    let ctx = WriteCtx {
        manager,
        sub: sub.map(str::to_string),
        applied: Some(out.entries),
    };
    match live {
        None => store.create(rt, ns, out.object, &ctx).map(|o| (201, o)),
        Some(_) => {
            let mut obj = out.object;
            if applied["metadata"]["resourceVersion"].is_null() {
                obj["metadata"]
                    .as_object_mut()
                    .map(|m| m.remove("resourceVersion"));
            }
            store.update(rt, ns, name, obj, &ctx).map(|o| (200, o))
        }
    }
}

fn list(store: &Store, rt: &ResourceType, ns: Option<&str>, query: &Query) -> ApiResult<Value> {
    let labels = LabelSelector::parse(query.get("labelSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let fields = FieldSelector::parse(rt, query.get("fieldSelector").unwrap_or_default())
        .map_err(ApiError::bad_request)?;
    let limit: usize = query
        .get("limit")
        .and_then(|l| l.parse().ok())
        .filter(|&l| l > 0)
        .unwrap_or(usize::MAX);
    let (list_rv, after) = match query.get("continue").filter(|c| !c.is_empty()) {
        Some(token) => {
            let raw = base64::engine::general_purpose::STANDARD
                .decode(token)
                .ok()
                .and_then(|b| serde_json::from_slice::<Value>(&b).ok())
                .ok_or_else(|| ApiError::bad_request("continue key is not valid"))?;
            let rv = raw["rv"].as_u64().unwrap_or(0);
            if rv < store.history_start {
                return Err(ApiError::gone("The provided continue parameter is too old to display a consistent list result. You can start a new list without the continue parameter."));
            }
            (rv, raw["start"].as_str().map(str::to_string))
        }
        None => (store.rv, None),
    };
    let matched: Vec<(super::store::Key, Value)> = store
        .list(rt, ns)
        .into_iter()
        .filter(|(k, _)| {
            after
                .as_deref()
                .is_none_or(|a| format!("{}/{}", k.namespace, k.name).as_str() > a)
        })
        .filter(|(_, o)| labels.matches(o) && fields.matches(o))
        .collect();
    let take = matched.len().min(limit);
    let remaining = matched.len() - take;
    let mut meta = json!({ "resourceVersion": list_rv.to_string() });
    if remaining > 0 {
        let (k, _) = &matched[take - 1];
        let token = json!({ "v": "meta.k8s.io/v1", "rv": list_rv, "start": format!("{}/{}", k.namespace, k.name) });
        meta["continue"] =
            json!(base64::engine::general_purpose::STANDARD.encode(token.to_string()));
        meta["remainingItemCount"] = json!(remaining);
    }
    let items: Vec<Value> = matched.into_iter().take(take).map(|(_, o)| o).collect();
    Ok(
        json!({ "kind": format!("{}List", rt.kind), "apiVersion": rt.api_version(), "metadata": meta, "items": items }),
    )
}
