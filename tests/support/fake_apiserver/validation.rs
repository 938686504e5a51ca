//! Object validation as kube-apiserver does it, written from the Kubernetes
//! documentation ("Object Names and IDs", "Labels and Selectors", "Annotations",
//! "Secrets": <https://kubernetes.io/docs/concepts/>) and the validators it is built
//! on (`k8s.io/apimachinery/pkg/util/validation/validation.go`: IsDNS1123Subdomain,
//! IsQualifiedName, IsValidLabelValue, IsConfigMapKey; `.../api/validation/objectmeta.go`:
//! ValidateAnnotations; `pkg/apis/core/validation/validation.go`: ValidateSecret,
//! ValidateSecretUpdate). Deliberately independent of the product's own validators.
//!
//! Each failure is a [`Cause`] shaped as `field.Error`: its type (`FieldValueInvalid`,
//! `FieldValueTooLong`), its field path and its body (`Invalid value: "<v>": <detail>`,
//! `Too long: may not be more than <n> bytes`).

use serde_json::Value;

/// One `field.Error`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cause {
    /// `FieldValueInvalid`, `FieldValueTooLong`, ...
    pub reason: &'static str,
    /// The field path, e.g. `metadata.labels` or `data[bad key]`.
    pub field: String,
    /// `ErrorBody()`: the type's text, the value for Invalid, and the detail.
    pub message: String,
}

impl Cause {
    /// `field.Invalid(path, value, detail)`.
    pub fn invalid(field: &str, value: &str, detail: &str) -> Self {
        Cause {
            reason: "FieldValueInvalid",
            field: field.into(),
            message: format!("Invalid value: {value:?}: {detail}"),
        }
    }

    /// `field.TooLong(path, _, max)` ("may not be more than <max> bytes").
    pub fn too_long(field: &str, max: usize) -> Self {
        Cause {
            reason: "FieldValueTooLong",
            field: field.into(),
            message: format!("Too long: may not be more than {max} bytes"),
        }
    }
}

/// Secrets' total data limit: "Individual Secrets are limited to 1MiB in size"
/// (Secrets docs, "Restrictions"; `MaxSecretSize` in pkg/apis/core/types.go).
pub const MAX_SECRET_SIZE: usize = 1024 * 1024;
/// "The total size of all keys and values ... must be at most 256 kB" (Annotations docs;
/// `TotalAnnotationSizeLimitB`).
pub const MAX_ANNOTATIONS_SIZE: usize = 256 * 1024;

/// validation.go's `RegexError`: the message, examples, and the regex.
fn regex_error(msg: &str, regex: &str, examples: &[&str]) -> String {
    let ex: Vec<String> = examples.iter().map(|e| format!("'{e}', ")).collect();
    format!(
        "{msg} (e.g. {}regex used for validation is '{regex}')",
        ex.join(" or ")
    )
}

const DNS1123_SUBDOMAIN: &str = "[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*";
const QUALIFIED_NAME: &str = "([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]";
const LABEL_VALUE: &str = "(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?";
const CONFIG_KEY: &str = "[-._a-zA-Z0-9]+";

fn alnum(c: char) -> bool {
    c.is_ascii_alphanumeric()
}

/// IsDNS1123Subdomain: at most 253 characters of `[a-z0-9.-]`, each dot-separated
/// label starting and ending with `[a-z0-9]` ("Object Names and IDs", "DNS Subdomain Names").
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    let ok = !s.is_empty()
        && s.split('.').all(|l| {
            !l.is_empty()
                && l.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
                && l.starts_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
                && l.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        });
    if !ok {
        errs.push(regex_error(
            "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character",
            DNS1123_SUBDOMAIN,
            &["example.com"],
        ));
    }
    errs
}

fn qualified_part(s: &str) -> bool {
    !s.is_empty()
        && s.starts_with(alnum)
        && s.ends_with(alnum)
        && s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.'))
}

/// IsQualifiedName: `[prefix/]name`, the prefix a DNS subdomain, the name at most 63
/// characters of `[A-Za-z0-9_.-]` starting and ending alphanumeric ("Labels and
/// Selectors", "Syntax and character set").
pub fn qualified_name(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    let parts: Vec<&str> = s.split('/').collect();
    let name = match parts.as_slice() {
        [name] => *name,
        [prefix, name] => {
            if prefix.is_empty() {
                errs.push("prefix part must be non-empty".to_string());
            } else {
                errs.extend(
                    dns1123_subdomain(prefix)
                        .into_iter()
                        .map(|m| format!("prefix part {m}")),
                );
            }
            name
        }
        _ => {
            errs.push(regex_error(
                "a qualified name must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                QUALIFIED_NAME,
                &["MyName", "my.name", "123-abc"],
            ) + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')");
            return errs;
        }
    };
    if name.is_empty() {
        errs.push("name part must be non-empty".to_string());
    } else if name.len() > 63 {
        errs.push("name part must be no more than 63 characters".to_string());
    }
    if !qualified_part(name) {
        errs.push(format!(
            "name part {}",
            regex_error(
                "must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
                QUALIFIED_NAME,
                &["MyName", "my.name", "123-abc"],
            )
        ));
    }
    errs
}

/// IsValidLabelValue: empty, or at most 63 characters of the name part's syntax.
pub fn label_value(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !s.is_empty() && !qualified_part(s) {
        errs.push(regex_error(
            "a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character",
            LABEL_VALUE,
            &["MyValue", "my_value", "12345"],
        ));
    }
    errs
}

/// IsConfigMapKey (Secret and ConfigMap data keys): at most 253 characters of
/// `[-._a-zA-Z0-9]`, and not `.`, `..` or starting with `..` ("Secrets", "Restrictions
/// on Secret names and data": "keys of data and stringData must consist of
/// alphanumeric characters, -, _ or .").
pub fn config_key(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.chars().all(|c| alnum(c) || matches!(c, '-' | '_' | '.')) {
        errs.push(regex_error(
            "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
            CONFIG_KEY,
            &["key.name", "KEY_NAME", "key-name"],
        ));
    }
    if s == "." {
        errs.push("must not be '.'".to_string());
    } else if s == ".." {
        errs.push("must not be '..'".to_string());
    } else if s.starts_with("..") {
        errs.push("must not start with '..'".to_string());
    }
    errs
}

fn string_map(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// ValidateObjectMeta's label and annotation checks, for every kind: label keys are
/// qualified names and values label values (both reported on `metadata.labels`);
/// annotation keys are qualified names (lower-cased first) and keys plus values total
/// at most 256 KiB (`metadata.annotations`).
pub fn object_meta(obj: &Value) -> Vec<Cause> {
    let mut causes = Vec::new();
    for (k, v) in string_map(&obj["metadata"]["labels"]) {
        for m in qualified_name(&k) {
            causes.push(Cause::invalid("metadata.labels", &k, &m));
        }
        for m in label_value(&v) {
            causes.push(Cause::invalid("metadata.labels", &v, &m));
        }
    }
    let mut total = 0;
    for (k, v) in string_map(&obj["metadata"]["annotations"]) {
        for m in qualified_name(&k.to_lowercase()) {
            causes.push(Cause::invalid("metadata.annotations", &k, &m));
        }
        total += k.len() + v.len();
    }
    if total > MAX_ANNOTATIONS_SIZE {
        causes.push(Cause::too_long(
            "metadata.annotations",
            MAX_ANNOTATIONS_SIZE,
        ));
    }
    causes
}

/// ValidateSecret on the decoded data sizes: every key a config key (`data[<key>]`),
/// the values' total at most 1 MiB (`data`). ValidateSecretUpdate adds: the type
/// cannot change (`type`, "field is immutable").
pub fn secret(old: Option<&Value>, obj: &Value, sizes: &[(String, usize)]) -> Vec<Cause> {
    let mut causes = Vec::new();
    if let Some(old) = old {
        if old["type"] != obj["type"] {
            causes.push(Cause::invalid(
                "type",
                obj["type"].as_str().unwrap_or_default(),
                "field is immutable",
            ));
        }
    }
    causes.extend(object_meta(obj));
    let mut total = 0;
    for (k, size) in sizes {
        for m in config_key(k) {
            causes.push(Cause::invalid(&format!("data[{k}]"), k, &m));
        }
        total += size;
    }
    if total > MAX_SECRET_SIZE {
        causes.push(Cause::too_long("data", MAX_SECRET_SIZE));
    }
    causes
}
