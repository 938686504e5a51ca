//! docs/rotation.md's worked examples are copy-paste correct: every SecretSource or
//! SopsSecret in a YAML block of the page parses into the CRD's Rust types without a
//! field being dropped on the way (a misspelled field would be silently ignored by the
//! API server's pruning, and the example would not do what the page says), and each
//! strategy has its worked example.

use kube::CustomResourceExt;
use serde_json::Value;
use sopsync::controller::crd::{RotationStrategy, SecretSource, SopsSecret};

/// Every document of every ```yaml block of docs/rotation.md, as JSON.
fn yaml_documents() -> Vec<Value> {
    use sopsync::core::formats::{codec, Format, FormatOptions};
    let doc = std::fs::read_to_string(crate::support::project_root().join("docs/rotation.md"))
        .expect("docs/rotation.md");
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for block in doc.split("```yaml\n").skip(1) {
        let text = block.split("\n```").next().expect("a closed block");
        let docs = codec(Format::Yaml, &opts)
            .parse_plain(text.as_bytes())
            .unwrap_or_else(|e| panic!("a YAML block of the doc does not parse: {e}\n{text}"));
        for d in docs.iter().filter(|d| !d.entries.is_empty()) {
            let bytes = codec(Format::Json, &opts)
                .emit_plain(std::slice::from_ref(d))
                .expect("as JSON");
            out.push(serde_json::from_slice(&bytes).expect("JSON"));
        }
    }
    out
}

/// The paths of `written` that the OpenAPI `schema` does not declare: the fields the
/// API server would prune from the example.
fn unknown(written: &Value, schema: &Value, at: &str, out: &mut Vec<String>) {
    if schema["x-kubernetes-preserve-unknown-fields"] == true {
        return;
    }
    match written {
        Value::Object(w) => {
            let props = &schema["properties"];
            for (k, v) in w {
                let here = format!("{at}.{k}");
                match props.get(k) {
                    Some(sub) => unknown(v, sub, &here, out),
                    None if schema["additionalProperties"].is_object() => {
                        unknown(v, &schema["additionalProperties"], &here, out)
                    }
                    None => out.push(here),
                }
            }
        }
        Value::Array(items) => {
            for (i, v) in items.iter().enumerate() {
                unknown(v, &schema["items"], &format!("{at}[{i}]"), out);
            }
        }
        _ => {}
    }
}

/// Parses `doc` as `T` (whose CRD is `crd`), and fails naming each field of the doc
/// the CRD does not declare.
fn parses_against_the_crd<T: serde::de::DeserializeOwned>(
    doc: &Value,
    crd: &k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition,
) -> T {
    let name = doc["metadata"]["name"].clone();
    let typed: T = serde_json::from_value(doc.clone())
        .unwrap_or_else(|e| panic!("{} {name} in docs/rotation.md: {e}", doc["kind"]));
    let crd = serde_json::to_value(crd).expect("JSON");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    assert!(schema.is_object(), "the CRD has a spec schema");
    let mut lost = Vec::new();
    unknown(&doc["spec"], schema, "spec", &mut lost);
    assert!(
        lost.is_empty(),
        "{} {name} in docs/rotation.md: the CRD declares no such field: {lost:?}",
        doc["kind"]
    );
    typed
}

#[test]
fn the_worked_examples_of_docs_rotation_parse_into_the_crd_types_without_losing_a_field() {
    let mut strategies = Vec::new();
    let mut objects = 0;
    for doc in yaml_documents() {
        let rotation = match doc["kind"].as_str() {
            Some("SecretSource") => {
                assert_eq!(doc["apiVersion"], "sopsync.io/v1alpha1", "{doc}");
                parses_against_the_crd::<SecretSource>(&doc, &SecretSource::crd())
                    .spec
                    .rotation
            }
            Some("SopsSecret") => {
                assert_eq!(doc["apiVersion"], "sopsync.io/v1alpha1", "{doc}");
                parses_against_the_crd::<SopsSecret>(&doc, &SopsSecret::crd())
                    .spec
                    .rotation
            }
            _ => continue,
        };
        objects += 1;
        if let Some(r) = rotation {
            strategies.push(r.strategy);
        }
    }
    assert!(objects >= 2, "the page shows its worked examples");
    for s in [RotationStrategy::InPlace, RotationStrategy::Versioned] {
        assert!(
            strategies.contains(&s),
            "docs/rotation.md has no worked example of strategy {s:?}"
        );
    }
}

#[test]
fn a_misspelled_field_in_an_example_would_be_caught() {
    let doc = serde_json::json!({
        "rotation": {"strategy": "Versioned", "retian": 3, "restartWorkloads": [{"kind": "Deployment", "nmae": "api"}]}
    });
    let crd = serde_json::to_value(SecretSource::crd()).expect("JSON");
    let schema = &crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"];
    let mut lost = Vec::new();
    unknown(&doc, schema, "spec", &mut lost);
    assert_eq!(
        lost,
        [
            "spec.rotation.restartWorkloads[0].nmae",
            "spec.rotation.retian"
        ]
    );
}
