//! Structural schemas of custom resources, applied as kube-apiserver applies them to
//! every create, update, patch, apply and status write of a kind a CRD defines.
//!
//! Written from the Kubernetes documentation, "Extend the Kubernetes API with
//! CustomResourceDefinitions"
//! (<https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/>):
//! "Specifying a structural schema", "Field pruning", "Controlling pruning"
//! (`x-kubernetes-preserve-unknown-fields`), "IntOrString", "RawExtension"
//! (`x-kubernetes-embedded-resource`), "Defaulting" and "Defaulting and Nullable"; and
//! from the apiextensions-apiserver source for the error shapes:
//! `pkg/apiserver/validation/validation.go` (`kubeOpenAPIResultToFieldErrors`: Required,
//! NotSupported for enums, TypeInvalid, TooLong, TooMany, everything else Invalid) over
//! the messages of `k8s.io/kube-openapi/pkg/validation/errors` (`<path> in body must be
//! of type <t>: "<actual>"`, `... should match '<re>'`, ...).
//!
//! The order is the server's: unknown fields are pruned when the request is decoded,
//! defaults are applied, then the object is validated. Errors come out in a fixed order
//! (type, enum and bounds of a node, then its required fields, then its properties by
//! name); kube-apiserver walks Go maps, so tests with several errors on one object
//! compare them as a set or name one error only.

use regex::Regex;
use serde_json::Value;

use super::validation::Cause;

/// The `openAPIV3Schema` of `version` in a stored CustomResourceDefinition.
pub fn of<'a>(crd: &'a Value, version: &str) -> Option<&'a Value> {
    crd["spec"]["versions"]
        .as_array()?
        .iter()
        .find(|v| v["name"].as_str() == Some(version))
        .map(|v| &v["schema"]["openAPIV3Schema"])
        .filter(|s| s.is_object())
}

/// Prunes, defaults and validates a custom resource in place; the errors, if any, are
/// the causes of a 422 Invalid.
pub fn admit(schema: &Value, obj: &mut Value) -> Vec<Cause> {
    prune(schema, obj, true);
    default(schema, obj);
    let mut causes = Vec::new();
    // metadata is ObjectMeta, validated by the generic rules (validation.rs); the
    // schema may only say name/generateName things about it, which ours do not.
    let mut body = obj.clone();
    if let Some(m) = body.as_object_mut() {
        m.remove("metadata");
        m.remove("apiVersion");
        m.remove("kind");
    }
    validate(schema, &body, "", &mut causes);
    causes
}

fn flag(schema: &Value, name: &str) -> bool {
    schema[name].as_bool() == Some(true)
}

/// "Field pruning": every field the schema does not specify is dropped, at any depth,
/// except below `x-kubernetes-preserve-unknown-fields: true`; `apiVersion`, `kind` and
/// `metadata` are kept at the root and in `x-kubernetes-embedded-resource` objects.
/// "Defaulting and Nullable": a `null` in a field that is not `nullable` is dropped
/// (and defaulted afterwards if the schema gives a default).
fn prune(schema: &Value, v: &mut Value, root: bool) {
    match v {
        Value::Object(m) => {
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let keep_unknown = flag(schema, "x-kubernetes-preserve-unknown-fields");
            let embedded = root || flag(schema, "x-kubernetes-embedded-resource");
            m.retain(|k, child| {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    return true;
                }
                let sub = props.and_then(|p| p.get(k)).or(additional);
                match sub {
                    Some(s) => !child.is_null() || flag(s, "nullable"),
                    None => keep_unknown,
                }
            });
            for (k, child) in m.iter_mut() {
                if embedded && matches!(k.as_str(), "apiVersion" | "kind" | "metadata") {
                    continue;
                }
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    prune(s, child, false);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                prune(&schema["items"], item, false);
            }
        }
        _ => {}
    }
}

/// "Defaulting": an absent field whose schema has a `default` gets it, at every depth
/// where the parent object exists.
fn default(schema: &Value, v: &mut Value) {
    match v {
        Value::Object(m) => {
            if let Some(props) = schema["properties"].as_object() {
                for (k, s) in props {
                    if !m.contains_key(k) {
                        if let Some(d) = s.get("default") {
                            m.insert(k.clone(), d.clone());
                        }
                    }
                }
                for (k, child) in m.iter_mut() {
                    if let Some(s) = props.get(k) {
                        default(s, child);
                    }
                }
            } else if let Some(s) = schema.get("additionalProperties").filter(|a| a.is_object()) {
                for child in m.values_mut() {
                    default(s, child);
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                default(&schema["items"], item);
            }
        }
        _ => {}
    }
}

/// The name kube-openapi gives a JSON value's type (`validate/type.go`).
fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn is_type(schema: &Value, v: &Value) -> bool {
    if v.is_null() {
        return flag(schema, "nullable");
    }
    if flag(schema, "x-kubernetes-int-or-string") {
        return matches!(type_name(v), "integer" | "string");
    }
    match schema["type"].as_str() {
        None | Some("") => true,
        // An integer is a number too; a whole float is accepted as an integer
        // (swag.IsFloat64AJSONInteger).
        Some("number") => v.is_number(),
        Some("integer") => {
            type_name(v) == "integer" || v.as_f64().is_some_and(|f| f.fract() == 0.0)
        }
        Some(t) => type_name(v) == t,
    }
}

/// `v` as Go's `%q` of a value writes it in `field.Error` bodies.
fn quoted(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        other => other.to_string(),
    }
}

fn child(at: &str, k: &str) -> String {
    if at.is_empty() {
        k.to_string()
    } else {
        format!("{at}.{k}")
    }
}

/// A `field.Invalid` whose detail is kube-openapi's message (`<path> in body ...`).
fn invalid(at: &str, v: &Value, detail: String) -> Cause {
    Cause {
        reason: "FieldValueInvalid",
        field: at.to_string(),
        message: format!("Invalid value: {}: {detail}", quoted(v)),
    }
}

/// The formats kube-apiserver checks (the strfmt registry of
/// `k8s.io/kube-openapi/pkg/validation/strfmt` as apiextensions uses it) that sopsync's
/// and the tests' schemas use; `int32`/`int64` bound integers.
fn format_ok(format: &str, v: &Value) -> bool {
    match (format, v) {
        ("int32", Value::Number(n)) => n.as_i64().is_some_and(|i| i32::try_from(i).is_ok()),
        ("int64", Value::Number(n)) => n.is_i64() || n.is_f64(),
        ("byte", Value::String(s)) => {
            use base64::Engine as _;
            base64::engine::general_purpose::STANDARD.decode(s).is_ok()
        }
        ("date-time", Value::String(s)) => {
            // RFC 3339: 2006-01-02T15:04:05[.frac](Z|±hh:mm).
            let b = s.as_bytes();
            let digits = |r: std::ops::Range<usize>| {
                b.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit))
            };
            b.len() >= 20
                && digits(0..4)
                && b[4] == b'-'
                && digits(5..7)
                && b[7] == b'-'
                && digits(8..10)
                && matches!(b[10], b'T' | b't')
                && digits(11..13)
                && b[13] == b':'
                && digits(14..16)
                && b[16] == b':'
                && digits(17..19)
                && (s.ends_with(['Z', 'z']) || s.len() >= 25)
        }
        _ => true,
    }
}

fn validate(schema: &Value, v: &Value, at: &str, causes: &mut Vec<Cause>) {
    if !is_type(schema, v) {
        let want = if flag(schema, "x-kubernetes-int-or-string") {
            "integer,string"
        } else {
            schema["type"].as_str().unwrap_or_default()
        };
        let actual = type_name(v);
        // TypeInvalid(path, "<actual type>", "<path> in body must be of type <t>: \"<actual>\"").
        causes.push(Cause {
            reason: "FieldValueTypeInvalid",
            field: at.to_string(),
            message: format!(
                "Invalid value: {actual:?}: {at} in body must be of type {want}: {actual:?}"
            ),
        });
        return;
    }
    if v.is_null() {
        return;
    }
    if let Some(f) = schema["format"].as_str() {
        if !format_ok(f, v) {
            causes.push(Cause {
                reason: "FieldValueTypeInvalid",
                field: at.to_string(),
                message: format!(
                    "Invalid value: {}: {at} in body must be of type {f}: {}",
                    quoted(v),
                    quoted(v)
                ),
            });
        }
    }
    if let Some(allowed) = schema["enum"].as_array() {
        if !allowed.contains(v) {
            // field.NotSupported: `Unsupported value: "x": supported values: "a", "b"`.
            let list: Vec<String> = allowed.iter().map(quoted).collect();
            causes.push(Cause {
                reason: "FieldValueNotSupported",
                field: at.to_string(),
                message: format!(
                    "Unsupported value: {}: supported values: {}",
                    quoted(v),
                    list.join(", ")
                ),
            });
        }
    }
    bounds(schema, v, at, causes);
    match v {
        Value::Object(m) => {
            for r in schema["required"].as_array().into_iter().flatten() {
                if let Some(r) = r.as_str() {
                    if !m.contains_key(r) {
                        causes.push(Cause {
                            reason: "FieldValueRequired",
                            field: child(at, r),
                            message: "Required value".into(),
                        });
                    }
                }
            }
            let props = schema["properties"].as_object();
            let additional = schema.get("additionalProperties").filter(|a| a.is_object());
            let sorted: std::collections::BTreeMap<&String, &Value> = m.iter().collect();
            for (k, c) in sorted {
                if let Some(s) = props.and_then(|p| p.get(k)).or(additional) {
                    validate(s, c, &child(at, k), causes);
                }
            }
        }
        Value::Array(items) => {
            for (i, item) in items.iter().enumerate() {
                if schema["items"].is_object() {
                    validate(&schema["items"], item, &format!("{at}[{i}]"), causes);
                }
            }
        }
        _ => {}
    }
}

/// Length, range and pattern keywords, with kube-openapi's messages.
fn bounds(schema: &Value, v: &Value, at: &str, causes: &mut Vec<Cause>) {
    let num = |k: &str| schema[k].as_f64();
    let int = |k: &str| schema[k].as_u64();
    match v {
        Value::String(s) => {
            let len = s.chars().count() as u64;
            if let Some(max) = int("maxLength").filter(|m| len > *m) {
                causes.push(Cause {
                    reason: "FieldValueTooLong",
                    field: at.to_string(),
                    message: format!("Too long: may not be more than {max} bytes"),
                });
            }
            if let Some(min) = int("minLength").filter(|m| len < *m) {
                causes.push(invalid(
                    at,
                    v,
                    format!("{at} in body should be at least {min} chars long"),
                ));
            }
            if let Some(p) = schema["pattern"].as_str() {
                if Regex::new(p).is_ok_and(|re| !re.is_match(s)) {
                    causes.push(invalid(at, v, format!("{at} in body should match '{p}'")));
                }
            }
        }
        Value::Number(n) => {
            let x = n.as_f64().unwrap_or_default();
            if let Some(min) = num("minimum").filter(|m| x < *m) {
                causes.push(invalid(
                    at,
                    v,
                    format!("{at} in body should be greater than or equal to {min}"),
                ));
            }
            if let Some(max) = num("maximum").filter(|m| x > *m) {
                causes.push(invalid(
                    at,
                    v,
                    format!("{at} in body should be less than or equal to {max}"),
                ));
            }
        }
        Value::Array(items) => {
            let n = items.len() as u64;
            if let Some(max) = int("maxItems").filter(|m| n > *m) {
                causes.push(Cause {
                    reason: "FieldValueTooMany",
                    field: at.to_string(),
                    message: format!("Too many: {n}: must have at most {max} items"),
                });
            }
            if let Some(min) = int("minItems").filter(|m| n < *m) {
                causes.push(invalid(
                    at,
                    &Value::from(n),
                    format!("{at} in body should have at least {min} items"),
                ));
            }
        }
        _ => {}
    }
}
