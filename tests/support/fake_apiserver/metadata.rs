//! Metadata-only responses: an `Accept` header asking for
//! `application/json;as=PartialObjectMetadata[List];g=meta.k8s.io;v=v1` gets the
//! objects' metadata and nothing else, as kube-apiserver answers it (API concepts,
//! "Alternate representations of resources" and "Receiving resources as metadata only",
//! <https://kubernetes.io/docs/reference/using-api/api-concepts/>; the transform is
//! `asPartialObjectMetadata[List]` in
//! `staging/src/k8s.io/apiserver/pkg/endpoints/handlers/response.go`).

use serde_json::{json, Value};

use super::errors::ApiError;

/// The representation a request asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Representation {
    /// The objects themselves (no `as=`, `application/json`, `*/*`).
    Full,
    /// `as=PartialObjectMetadata`: one object's metadata (get, write, and each watch event).
    Partial,
    /// `as=PartialObjectMetadataList`: a list of metadata (list).
    PartialList,
}

/// The first media range of `accept` the fake can serve. `meta.k8s.io` `v1` and `v1beta1`
/// are the versions the server transforms to; a range asking for another `as=` (such as
/// `Table`, which the fake does not model) is skipped, and a header with no range left
/// gets 406 NotAcceptable, as from kube-apiserver's negotiation.
pub fn negotiate(accept: Option<&str>) -> Result<Representation, ApiError> {
    let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
        return Ok(Representation::Full);
    };
    for range in accept.split(',') {
        let mut parts = range.split(';').map(str::trim);
        let media = parts.next().unwrap_or_default();
        if !matches!(media, "application/json" | "application/*" | "*/*") {
            continue;
        }
        let params: Vec<(&str, &str)> = parts.filter_map(|p| p.split_once('=')).collect();
        let param = |k: &str| params.iter().find(|(n, _)| *n == k).map(|(_, v)| *v);
        match (param("as"), param("g"), param("v")) {
            (None, _, _) => return Ok(Representation::Full),
            (Some(kind), Some("meta.k8s.io"), Some("v1" | "v1beta1")) => match kind {
                "PartialObjectMetadata" => return Ok(Representation::Partial),
                "PartialObjectMetadataList" => return Ok(Representation::PartialList),
                _ => continue,
            },
            _ => continue,
        }
    }
    Err(ApiError::from_code(
        406,
        format!("only the following media types are accepted: application/json, application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1, application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1 (requested {accept})"),
    ))
}

/// `asPartialObjectMetadata`: kind `PartialObjectMetadata`, apiVersion `meta.k8s.io/v1`,
/// and the object's `metadata` (no spec, data or status).
pub fn partial(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj["metadata"].clone(),
    })
}

/// Transforms a response body to the requested representation; `is_list` says whether
/// the body is a list. A list asked for as one object, or one object asked for as a
/// list, is 406 NotAcceptable (response.go: "you requested PartialObjectMetadata, but
/// the requested object is a list").
pub fn represent(rep: Representation, body: Value, is_list: bool) -> Result<Value, ApiError> {
    match (rep, is_list) {
        (Representation::Full, _) => Ok(body),
        (Representation::Partial, false) => Ok(partial(&body)),
        (Representation::PartialList, true) => {
            // The list's metadata (resourceVersion, continue, remainingItemCount) is kept.
            let items: Vec<Value> = body["items"]
                .as_array()
                .into_iter()
                .flatten()
                .map(partial)
                .collect();
            Ok(json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": body["metadata"].clone(),
                "items": items,
            }))
        }
        (Representation::Partial, true) => Err(ApiError::from_code(
            406,
            "you requested PartialObjectMetadata, but the requested object is a list",
        )),
        (Representation::PartialList, false) => Err(ApiError::from_code(
            406,
            "you requested PartialObjectMetadataList, but the requested object is not a list",
        )),
    }
}
