//! The fake API server, driven only through the real `kube` client (and
//! `kube-runtime`'s watcher and event recorder, and `kube-lease-manager`): these
//! tests show it behaves like kube-apiserver where sopsync depends on it.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::ByteString;
use kube::api::{
    Api, DeleteParams, ListParams, Patch, PatchParams, PostParams, Preconditions, PropagationPolicy,
};
use kube::runtime::watcher;
use kube::{CustomResource, CustomResourceExt, Resource, ResourceExt};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::support::fake_apiserver::{FakeApiServer, Fault, Match, Options};

/// A CRD kind with a status subresource, standing in for sopsync's own.
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, JsonSchema)]
#[kube(
    group = "test.sopsync.io",
    version = "v1",
    kind = "Widget",
    namespaced,
    status = "WidgetStatus"
)]
pub struct WidgetSpec {
    size: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    color: Option<String>,
}

/// Status of [`Widget`].
#[derive(Serialize, Deserialize, Clone, Debug, Default, JsonSchema)]
pub struct WidgetStatus {
    ready: bool,
}

fn secret(name: &str, data: &[(&str, &str)]) -> Secret {
    Secret {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            ..Default::default()
        },
        data: Some(
            data.iter()
                .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
                .collect(),
        ),
        ..Default::default()
    }
}

fn labelled(name: &str, labels: &[(&str, &str)]) -> ConfigMap {
    ConfigMap {
        metadata: kube::api::ObjectMeta {
            name: Some(name.into()),
            labels: Some(
                labels
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect(),
            ),
            ..Default::default()
        },
        ..Default::default()
    }
}

fn api_error(e: kube::Error) -> kube::core::Status {
    match e {
        kube::Error::Api(s) => *s,
        other => panic!("expected a Kubernetes Status error, got {other:?}"),
    }
}

fn data_of(s: &Secret) -> BTreeMap<String, String> {
    s.data
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|(k, v)| (k, String::from_utf8(v.0).expect("utf-8")))
        .collect()
}

/// Owners of each field path in managedFields: manager/operation -> FieldsV1 JSON.
fn managers(meta: &kube::api::ObjectMeta) -> BTreeMap<String, Value> {
    meta.managed_fields
        .clone()
        .unwrap_or_default()
        .into_iter()
        .map(|e| {
            (
                format!(
                    "{}/{}",
                    e.manager.unwrap_or_default(),
                    e.operation.unwrap_or_default()
                ),
                serde_json::to_value(e.fields_v1.map(|f| f.0)).expect("json"),
            )
        })
        .collect()
}

/// Waits (bounded, so a broken fake fails instead of hanging) for the next stream item.
async fn next<S: futures::Stream + Unpin>(s: &mut S) -> S::Item {
    tokio::time::timeout(Duration::from_secs(60), s.next())
        .await
        .expect("an event within 60 s")
        .expect("the stream goes on")
}

#[test]
fn create_get_list_and_duplicate_create_is_already_exists() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let rv_before = fake.resource_version();
        let created = api
            .create(&PostParams::default(), &secret("a", &[("k", "v")]))
            .await
            .expect("create");
        let meta = &created.metadata;
        assert!(
            meta.uid.as_deref().is_some_and(|u| u.len() == 36),
            "uid {:?}",
            meta.uid
        );
        assert!(meta.creation_timestamp.is_some());
        assert_eq!(meta.namespace.as_deref(), Some("default"));
        let rv: u64 = meta
            .resource_version
            .as_deref()
            .expect("rv")
            .parse()
            .expect("numeric rv");
        assert!(rv > rv_before);
        assert_eq!(
            created.type_.as_deref(),
            Some("Opaque"),
            "type defaults to Opaque"
        );
        assert_eq!(meta.generation, None, "Secrets have no generation");

        let got = api.get("a").await.expect("get");
        assert_eq!(
            got.metadata.resource_version,
            created.metadata.resource_version
        );
        assert_eq!(data_of(&got)["k"], "v");

        api.create(&PostParams::default(), &secret("b", &[]))
            .await
            .expect("create b");
        let list = api.list(&ListParams::default()).await.expect("list");
        assert_eq!(
            list.items.iter().map(|s| s.name_any()).collect::<Vec<_>>(),
            ["a", "b"]
        );
        assert_eq!(
            list.metadata.resource_version.as_deref(),
            Some(fake.resource_version().to_string().as_str())
        );

        let err = api_error(
            api.create(&PostParams::default(), &secret("a", &[]))
                .await
                .expect_err("duplicate"),
        );
        assert_eq!((err.code, err.reason.as_str()), (409, "AlreadyExists"));
        assert_eq!(err.message, "secrets \"a\" already exists");

        let err = api_error(api.get("nope").await.expect_err("missing"));
        assert_eq!(
            (err.code, err.reason.as_str(), err.message.as_str()),
            (404, "NotFound", "secrets \"nope\" not found")
        );
    });
}

#[test]
fn string_data_is_folded_into_data_and_bad_base64_is_refused() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let mut s = secret("sd", &[("a", "1")]);
        s.string_data = Some([("b".to_string(), "two".to_string())].into());
        let created = api
            .create(&PostParams::default(), &s)
            .await
            .expect("create");
        assert_eq!(created.string_data, None);
        assert_eq!(
            data_of(&created),
            BTreeMap::from([("a".into(), "1".into()), ("b".into(), "two".into())])
        );

        let raw = Api::<Secret>::namespaced(fake.client().await, "default")
            .patch(
                "sd",
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": { "c": "not base64!" } })),
            )
            .await
            .expect_err("bad base64");
        assert_eq!(api_error(raw).code, 400);
    });
}

#[test]
fn creating_in_a_missing_namespace_is_not_found() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "nowhere");
        let err = api_error(
            api.create(&PostParams::default(), &secret("a", &[]))
                .await
                .expect_err("no namespace"),
        );
        assert_eq!(
            (err.code, err.message.as_str()),
            (404, "namespaces \"nowhere\" not found")
        );
        fake.ensure_namespace("nowhere");
        api.create(&PostParams::default(), &secret("a", &[]))
            .await
            .expect("create after the namespace exists");
    });
}

#[test]
fn replace_with_a_stale_resource_version_is_a_conflict() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let v1 = api
            .create(&PostParams::default(), &secret("s", &[("k", "1")]))
            .await
            .expect("create");
        let mut v2 = v1.clone();
        v2.data = Some([("k".to_string(), ByteString(b"2".to_vec()))].into());
        let v2 = api
            .replace("s", &PostParams::default(), &v2)
            .await
            .expect("replace with the current RV");
        assert_ne!(v2.metadata.resource_version, v1.metadata.resource_version);

        let mut stale = v1.clone();
        stale.data = Some([("k".to_string(), ByteString(b"3".to_vec()))].into());
        let err = api_error(
            api.replace("s", &PostParams::default(), &stale)
                .await
                .expect_err("stale RV"),
        );
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
        assert!(
            err.message.contains("the object has been modified"),
            "{}",
            err.message
        );
        assert_eq!(
            data_of(&api.get("s").await.expect("get"))["k"],
            "2",
            "the stale write changed nothing"
        );

        // Writing the same content again is a no-op: no new resourceVersion.
        let same = api
            .replace("s", &PostParams::default(), &v2)
            .await
            .expect("no-op replace");
        assert_eq!(same.metadata.resource_version, v2.metadata.resource_version);
    });
}

#[test]
fn delete_preconditions_and_propagation() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let s = api
            .create(&PostParams::default(), &secret("d", &[]))
            .await
            .expect("create");
        let wrong = DeleteParams {
            preconditions: Some(Preconditions {
                uid: Some("not-the-uid".into()),
                resource_version: None,
            }),
            ..Default::default()
        };
        let err = api_error(api.delete("d", &wrong).await.expect_err("uid precondition"));
        assert_eq!(err.code, 409);
        assert!(
            err.message
                .contains("Precondition failed: UID in precondition: not-the-uid"),
            "{}",
            err.message
        );
        let right = DeleteParams {
            preconditions: Some(Preconditions {
                uid: s.metadata.uid.clone(),
                resource_version: s.metadata.resource_version.clone(),
            }),
            ..Default::default()
        };
        api.delete("d", &right)
            .await
            .expect("delete with matching preconditions");
        assert_eq!(api_error(api.get("d").await.expect_err("gone")).code, 404);
    });
}

fn apply_params(manager: &str) -> PatchParams {
    PatchParams::apply(manager)
}

fn secret_config(name: &str, data: &[(&str, &str)], labels: &[(&str, &str)]) -> Value {
    let data: serde_json::Map<String, Value> = data
        .iter()
        .map(|(k, v)| (k.to_string(), json!(base64_encode(v.as_bytes()))))
        .collect();
    let labels: serde_json::Map<String, Value> = labels
        .iter()
        .map(|(k, v)| (k.to_string(), json!(v)))
        .collect();
    let mut meta = json!({ "name": name });
    if !labels.is_empty() {
        meta["labels"] = Value::Object(labels);
    }
    json!({ "apiVersion": "v1", "kind": "Secret", "metadata": meta, "data": data })
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn server_side_apply_creates_updates_and_tracks_managed_fields() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let created = api
            .patch("s", &apply_params("alice"), &Patch::Apply(secret_config("s", &[("a", "1"), ("b", "2")], &[("app", "x")])))
            .await
            .expect("apply creates");
        assert_eq!(data_of(&created), BTreeMap::from([("a".into(), "1".into()), ("b".into(), "2".into())]));
        let owners = managers(&created.metadata);
        assert_eq!(owners.keys().collect::<Vec<_>>(), ["alice/Apply"]);
        assert_eq!(
            owners["alice/Apply"],
            json!({ "f:data": { "f:a": {}, "f:b": {} }, "f:metadata": { "f:labels": { "f:app": {} } } })
        );

        // Same manager again: "b" no longer applied -> removed; "c" added; the RV moves.
        let updated = api
            .patch("s", &apply_params("alice"), &Patch::Apply(secret_config("s", &[("a", "1"), ("c", "3")], &[("app", "x")])))
            .await
            .expect("apply updates");
        assert_eq!(data_of(&updated), BTreeMap::from([("a".into(), "1".into()), ("c".into(), "3".into())]));
        assert_ne!(updated.metadata.resource_version, created.metadata.resource_version);

        // Re-applying the same configuration changes nothing, not even the resourceVersion.
        let again = api
            .patch("s", &apply_params("alice"), &Patch::Apply(secret_config("s", &[("a", "1"), ("c", "3")], &[("app", "x")])))
            .await
            .expect("idempotent apply");
        assert_eq!(again.metadata.resource_version, updated.metadata.resource_version);
    });
}

#[test]
fn server_side_apply_conflicts_with_another_manager_unless_forced() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        api.patch(
            "s",
            &apply_params("alice"),
            &Patch::Apply(secret_config("s", &[("a", "1"), ("b", "2")], &[])),
        )
        .await
        .expect("alice applies");

        let err = api_error(
            api.patch(
                "s",
                &apply_params("bob"),
                &Patch::Apply(secret_config("s", &[("a", "9")], &[])),
            )
            .await
            .expect_err("bob conflicts on data.a"),
        );
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"alice\": .data.a"
        );
        let causes = err.details.expect("details").causes;
        assert_eq!(causes.len(), 1);
        assert_eq!(causes[0].field, ".data.a");
        assert_eq!(causes[0].reason, "FieldManagerConflict");

        // The same value is no conflict: both own data.a.
        let shared = api
            .patch(
                "s",
                &apply_params("bob"),
                &Patch::Apply(secret_config("s", &[("a", "1")], &[])),
            )
            .await
            .expect("same value, shared ownership");
        let owners = managers(&shared.metadata);
        assert_eq!(owners["bob/Apply"], json!({ "f:data": { "f:a": {} } }));
        assert_eq!(
            owners["alice/Apply"],
            json!({ "f:data": { "f:a": {}, "f:b": {} } })
        );

        // alice stops applying "a": bob still owns it, so it stays; "b" (alice only) goes.
        let after = api
            .patch(
                "s",
                &apply_params("alice"),
                &Patch::Apply(secret_config("s", &[("c", "3")], &[])),
            )
            .await
            .expect("alice drops a and b");
        assert_eq!(
            data_of(&after),
            BTreeMap::from([("a".into(), "1".into()), ("c".into(), "3".into())])
        );

        // Forcing takes ownership away from the other manager.
        api.patch(
            "s",
            &apply_params("alice"),
            &Patch::Apply(secret_config("s", &[("c", "3"), ("d", "4")], &[])),
        )
        .await
        .expect("alice adds d");
        let forced = api
            .patch(
                "s",
                &apply_params("bob").force(),
                &Patch::Apply(secret_config("s", &[("a", "1"), ("d", "40")], &[])),
            )
            .await
            .expect("force");
        assert_eq!(data_of(&forced)["d"], "40");
        let owners = managers(&forced.metadata);
        assert_eq!(
            owners["alice/Apply"],
            json!({ "f:data": { "f:c": {} } }),
            "alice lost d"
        );
        assert_eq!(
            owners["bob/Apply"],
            json!({ "f:data": { "f:a": {}, "f:d": {} } })
        );
    });
}

#[test]
fn server_side_apply_conflicts_with_an_update_manager_and_needs_a_field_manager() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        api.create(
            &PostParams {
                field_manager: Some("kubectl-create".into()),
                ..Default::default()
            },
            &secret("s", &[("a", "1")]),
        )
        .await
        .expect("create");
        let err = api_error(
            api.patch(
                "s",
                &apply_params("ctl"),
                &Patch::Apply(secret_config("s", &[("a", "2")], &[])),
            )
            .await
            .expect_err("conflict with the creator"),
        );
        assert_eq!(
            err.message,
            "Apply failed with 1 conflict: conflict with \"kubectl-create\" using v1: .data.a"
        );

        let no_manager = PatchParams {
            field_manager: None,
            ..Default::default()
        };
        let err = api_error(
            api.patch(
                "s",
                &no_manager,
                &Patch::Apply(secret_config("s", &[("a", "2")], &[])),
            )
            .await
            .expect_err("apply needs a field manager"),
        );
        assert_eq!(err.code, 422);
        assert!(
            err.message.contains("fieldManager: Required value"),
            "{}",
            err.message
        );
    });
}

#[test]
fn merge_strategic_and_json_patches() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let api: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let mut cm = labelled("c", &[("a", "1")]);
        cm.data = Some(
            [
                ("x".to_string(), "1".to_string()),
                ("y".to_string(), "2".to_string()),
            ]
            .into(),
        );
        cm.metadata.finalizers = Some(vec!["test/one".into()]);
        api.create(&PostParams::default(), &cm)
            .await
            .expect("create");

        let merged = api
            .patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(json!({ "data": { "x": null, "z": "3" } })),
            )
            .await
            .expect("merge patch");
        assert_eq!(
            merged.data.clone().unwrap_or_default(),
            BTreeMap::from([("y".into(), "2".into()), ("z".into(), "3".into())])
        );

        // Strategic merge: finalizers merge (patchStrategy=merge) instead of being replaced.
        let strategic = api
            .patch(
                "c",
                &PatchParams::default(),
                &Patch::Strategic(json!({ "metadata": { "finalizers": ["test/two"] } })),
            )
            .await
            .expect("strategic patch");
        assert_eq!(
            strategic.metadata.finalizers.clone().unwrap_or_default(),
            ["test/one", "test/two"]
        );
        let merge_replaces = api
            .patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "finalizers": ["test/two"] } })),
            )
            .await
            .expect("merge patch replaces lists");
        assert_eq!(
            merge_replaces
                .metadata
                .finalizers
                .clone()
                .unwrap_or_default(),
            ["test/two"]
        );

        // JSON patch (RFC 6902) through a raw request; kube sends what it is given.
        let req = hyper::Request::patch("/api/v1/namespaces/default/configmaps/c")
            .header("content-type", "application/json-patch+json")
            .body(
                serde_json::to_vec(&json!([
                    { "op": "test", "path": "/data/y", "value": "2" },
                    { "op": "replace", "path": "/data/y", "value": "22" },
                    { "op": "remove", "path": "/metadata/finalizers" }
                ]))
                .expect("json"),
            )
            .expect("request");
        let patched: ConfigMap = client.request(req).await.expect("json patch");
        assert_eq!(patched.data.clone().unwrap_or_default()["y"], "22");
        assert_eq!(patched.metadata.finalizers, None);

        let req = hyper::Request::patch("/api/v1/namespaces/default/configmaps/c")
            .header("content-type", "application/json-patch+json")
            .body(
                serde_json::to_vec(&json!([{ "op": "test", "path": "/data/y", "value": "nope" }]))
                    .expect("json"),
            )
            .expect("request");
        let err = api_error(
            client
                .request::<ConfigMap>(req)
                .await
                .expect_err("failed test op"),
        );
        assert_eq!(err.code, 422);

        // A patch that carries a stale resourceVersion is a conflict.
        let err = api_error(
            api.patch(
                "c",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({ "metadata": { "resourceVersion": "1" }, "data": { "q": "1" } }),
                ),
            )
            .await
            .expect_err("stale rv in a patch"),
        );
        assert_eq!(err.code, 409);
    });
}

fn widget(name: &str, size: i64) -> Widget {
    let mut w = Widget::new(name, WidgetSpec { size, color: None });
    w.status = Some(WidgetStatus { ready: true });
    w
}

#[test]
fn status_subresource_separates_spec_and_status_and_generation_follows_spec() {
    let fake = FakeApiServer::start();
    fake.register_crd(&Widget::crd());
    fake.block_on(async {
        let api: Api<Widget> = Api::namespaced(fake.client().await, "default");
        let created = api
            .create(&PostParams::default(), &widget("w", 1))
            .await
            .expect("create");
        assert_eq!(created.metadata.generation, Some(1));
        assert!(
            created.status.is_none(),
            "status is dropped on create when the kind has a status subresource"
        );

        // Status through /status: status changes, spec and generation do not.
        let st = api
            .patch_status("w", &apply_params("ctl"), &Patch::Apply(json!({
                "apiVersion": "test.sopsync.io/v1", "kind": "Widget", "metadata": { "name": "w" },
                "spec": { "size": 99 }, "status": { "ready": true }
            })))
            .await
            .expect("apply status");
        assert_eq!(st.status.as_ref().map(|s| s.ready), Some(true));
        assert_eq!(st.spec.size, 1, "a status write does not touch spec");
        assert_eq!(st.metadata.generation, Some(1));
        let entry = st
            .metadata
            .managed_fields
            .clone()
            .unwrap_or_default()
            .into_iter()
            .find(|e| e.manager.as_deref() == Some("ctl"))
            .expect("ctl entry");
        assert_eq!(entry.subresource.as_deref(), Some("status"));

        // Main resource: status in the body is ignored; a spec change bumps generation.
        let mut w = api.get("w").await.expect("get");
        w.spec.size = 2;
        w.status = Some(WidgetStatus { ready: false });
        let replaced = api
            .replace("w", &PostParams::default(), &w)
            .await
            .expect("replace");
        assert_eq!(replaced.metadata.generation, Some(2));
        assert_eq!(
            replaced.status.as_ref().map(|s| s.ready),
            Some(true),
            "main writes ignore status"
        );

        // Metadata-only changes do not bump generation.
        let labelled = api
            .patch(
                "w",
                &PatchParams::default(),
                &Patch::Merge(json!({ "metadata": { "labels": { "l": "1" } } })),
            )
            .await
            .expect("label");
        assert_eq!(labelled.metadata.generation, Some(2));

        // Strategic merge patch is not available for custom resources (415), as in kube-apiserver.
        let err = api_error(
            api.patch(
                "w",
                &PatchParams::default(),
                &Patch::Strategic(json!({ "spec": { "size": 3 } })),
            )
            .await
            .expect_err("strategic on a CRD"),
        );
        assert_eq!(
            (err.code, err.reason.as_str()),
            (415, "UnsupportedMediaType")
        );
    });
}

#[test]
fn label_selectors_field_selectors_and_paging() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "default");
        for (name, labels) in [
            ("one", vec![("app", "web"), ("tier", "front")]),
            ("two", vec![("app", "db")]),
            ("three", vec![("app", "web")]),
            ("four", vec![]),
        ] {
            api.create(&PostParams::default(), &labelled(name, &labels))
                .await
                .expect("create");
        }
        let names = |sel: &str| {
            let api = api.clone();
            let sel = sel.to_string();
            async move {
                let mut n: Vec<String> = api
                    .list(&ListParams::default().labels(&sel))
                    .await
                    .expect("list")
                    .items
                    .iter()
                    .map(|c| c.name_any())
                    .collect();
                n.sort();
                n
            }
        };
        assert_eq!(names("app=web").await, ["one", "three"]);
        assert_eq!(names("app==web,tier=front").await, ["one"]);
        assert_eq!(
            names("app!=web").await,
            ["four", "two"],
            "!= also matches objects without the label"
        );
        assert_eq!(names("app in (db, web)").await, ["one", "three", "two"]);
        assert_eq!(names("app notin (web)").await, ["four", "two"]);
        assert_eq!(names("tier").await, ["one"]);
        assert_eq!(names("!app").await, ["four"]);
        let err = api_error(
            api.list(&ListParams::default().labels("app in web"))
                .await
                .expect_err("bad selector"),
        );
        assert_eq!(err.code, 400);

        let by_name = api
            .list(&ListParams::default().fields("metadata.name=two"))
            .await
            .expect("field selector");
        assert_eq!(by_name.items.len(), 1);
        let err = api_error(
            api.list(&ListParams::default().fields("data.x=1"))
                .await
                .expect_err("unsupported field"),
        );
        assert_eq!(
            (err.code, err.message.as_str()),
            (400, "field label not supported: data.x")
        );

        // Paging: limit + continue walk every object exactly once, in name order.
        let mut seen = Vec::new();
        let mut lp = ListParams::default().limit(3);
        let first = api.list(&lp).await.expect("page 1");
        assert_eq!(first.items.len(), 3);
        assert_eq!(first.metadata.remaining_item_count, Some(1));
        seen.extend(first.items.iter().map(|c| c.name_any()));
        lp = lp.continue_token(first.metadata.continue_.as_deref().expect("continue token"));
        let second = api.list(&lp).await.expect("page 2");
        assert!(second
            .metadata
            .continue_
            .as_deref()
            .unwrap_or_default()
            .is_empty());
        seen.extend(second.items.iter().map(|c| c.name_any()));
        assert_eq!(seen, ["four", "one", "three", "two"]);
        assert_eq!(
            second.metadata.resource_version, first.metadata.resource_version,
            "pages share the first page's RV"
        );
    });
}

#[test]
fn watcher_sees_added_modified_and_deleted() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        api.create(&PostParams::default(), &secret("before", &[]))
            .await
            .expect("create");
        let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
        assert!(matches!(next(&mut events).await, Ok(watcher::Event::Init)));
        match next(&mut events).await {
            Ok(watcher::Event::InitApply(s)) => assert_eq!(s.name_any(), "before"),
            other => panic!("expected the existing Secret, got {other:?}"),
        }
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitDone)
        ));

        api.create(&PostParams::default(), &secret("w", &[("k", "1")]))
            .await
            .expect("create");
        match next(&mut events).await {
            Ok(watcher::Event::Apply(s)) => assert_eq!(
                (s.name_any(), data_of(&s)["k"].clone()),
                ("w".into(), "1".into())
            ),
            other => panic!("expected ADDED, got {other:?}"),
        }
        api.patch(
            "w",
            &PatchParams::default(),
            &Patch::Merge(json!({ "data": { "k": base64_encode(b"2") } })),
        )
        .await
        .expect("patch");
        match next(&mut events).await {
            Ok(watcher::Event::Apply(s)) => assert_eq!(data_of(&s)["k"], "2"),
            other => panic!("expected MODIFIED, got {other:?}"),
        }
        api.delete("w", &DeleteParams::default())
            .await
            .expect("delete");
        match next(&mut events).await {
            Ok(watcher::Event::Delete(s)) => assert_eq!(s.name_any(), "w"),
            other => panic!("expected DELETED, got {other:?}"),
        }
        let watches = fake.requests_matching(&Match::verb("watch").resource("secrets"));
        assert_eq!(watches.len(), 1);
        assert!(
            watches[0].query.contains("allowWatchBookmarks=true"),
            "{}",
            watches[0].query
        );
    });
}

#[test]
fn watch_with_a_label_selector_sees_objects_enter_and_leave_the_selection() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<ConfigMap> = Api::namespaced(fake.client().await, "default");
        let mut events = watcher(api.clone(), watcher::Config::default().labels("sel=yes")).boxed();
        assert!(matches!(next(&mut events).await, Ok(watcher::Event::Init)));
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitDone)
        ));
        api.create(&PostParams::default(), &labelled("c", &[("sel", "no")]))
            .await
            .expect("create");
        api.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "sel": "yes" } } })),
        )
        .await
        .expect("enter");
        match next(&mut events).await {
            Ok(watcher::Event::Apply(c)) => assert_eq!(c.labels()["sel"], "yes"),
            other => panic!("expected the object entering the selection, got {other:?}"),
        }
        api.patch(
            "c",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "labels": { "sel": "no" } } })),
        )
        .await
        .expect("leave");
        match next(&mut events).await {
            Ok(watcher::Event::Delete(c)) => assert_eq!(c.name_any(), "c"),
            other => panic!("expected DELETED when leaving the selection, got {other:?}"),
        }
    });
}

#[test]
fn watcher_relists_after_410_gone() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
        assert!(matches!(next(&mut events).await, Ok(watcher::Event::Init)));
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitDone)
        ));

        // Compact the history and cut the watch: the watcher resumes from its old RV,
        // gets 410 Expired, and lists again.
        api.create(&PostParams::default(), &secret("during", &[]))
            .await
            .expect("create");
        match next(&mut events).await {
            Ok(watcher::Event::Apply(s)) => assert_eq!(s.name_any(), "during"),
            other => panic!("expected ADDED, got {other:?}"),
        }
        assert_eq!(fake.force_relist(), 1, "one watch was open");
        let mut saw_gone = false;
        loop {
            match next(&mut events).await {
                Err(watcher::Error::WatchError(status)) if status.code == 410 => saw_gone = true,
                Err(_) => {}
                Ok(watcher::Event::Init) => break,
                other => panic!("unexpected before the relist: {other:?}"),
            }
        }
        assert!(saw_gone, "the watcher was told 410 Gone");
        match next(&mut events).await {
            Ok(watcher::Event::InitApply(s)) => assert_eq!(s.name_any(), "during"),
            other => panic!("expected the relisted Secret, got {other:?}"),
        }
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitDone)
        ));
        api.create(&PostParams::default(), &secret("after", &[]))
            .await
            .expect("create");
        match next(&mut events).await {
            Ok(watcher::Event::Apply(s)) => assert_eq!(s.name_any(), "after"),
            other => panic!("expected ADDED after the relist, got {other:?}"),
        }
        let watch_410 = fake.requests_matching(&Match::verb("watch")).len();
        assert!(
            watch_410 >= 3,
            "initial watch, the one answered 410, the one after the relist: {watch_410}"
        );
    });
}

#[test]
fn watch_history_is_bounded_so_old_resource_versions_are_gone() {
    let fake = FakeApiServer::start_with(Options {
        history: 3,
        ..Options::default()
    });
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let first = api
            .create(&PostParams::default(), &secret("s0", &[]))
            .await
            .expect("create");
        for i in 1..6 {
            api.create(&PostParams::default(), &secret(&format!("s{i}"), &[]))
                .await
                .expect("create");
        }
        let rv = first.metadata.resource_version.expect("rv");
        let mut stream = api
            .watch(&kube::api::WatchParams::default(), &rv)
            .await
            .expect("watch starts (200)")
            .boxed();
        match next(&mut stream).await {
            Ok(kube::core::WatchEvent::Error(e)) => {
                assert_eq!((e.code, e.reason.as_str()), (410, "Expired"));
                assert!(
                    e.message.starts_with("too old resource version"),
                    "{}",
                    e.message
                );
            }
            other => panic!("expected an ERROR event with 410, got {other:?}"),
        }
    });
}

#[test]
fn watcher_resumes_after_a_dropped_connection_without_missing_events() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
        assert!(matches!(next(&mut events).await, Ok(watcher::Event::Init)));
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitDone)
        ));
        // The watch request follows InitDone; drive the stream until it is open.
        let (_, ()) = tokio::join!(
            async {
                tokio::time::timeout(Duration::from_millis(200), events.next())
                    .await
                    .ok()
            },
            fake.wait_for_watches(1)
        );
        assert_eq!(fake.drop_watches(), 1);
        // Written while no watch is open: the resumed watch replays it from the history.
        api.create(&PostParams::default(), &secret("while-down", &[]))
            .await
            .expect("create");
        loop {
            match next(&mut events).await {
                Err(_) => continue,
                Ok(watcher::Event::Apply(s)) => {
                    assert_eq!(s.name_any(), "while-down");
                    break;
                }
                other => panic!("expected the missed Secret, got {other:?}"),
            }
        }
        let lists = fake
            .requests_matching(&Match::verb("list").resource("secrets"))
            .len();
        assert_eq!(
            lists, 1,
            "a dropped connection resumes the watch without relisting"
        );
    });
}

#[test]
fn streaming_list_watcher_gets_initial_events_and_the_end_bookmark() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        api.create(&PostParams::default(), &secret("x", &[]))
            .await
            .expect("create");
        let mut events = watcher(api.clone(), watcher::Config::default().streaming_lists()).boxed();
        assert!(matches!(next(&mut events).await, Ok(watcher::Event::Init)));
        match next(&mut events).await {
            Ok(watcher::Event::InitApply(s)) => assert_eq!(s.name_any(), "x"),
            other => panic!("expected the initial event, got {other:?}"),
        }
        assert!(
            matches!(next(&mut events).await, Ok(watcher::Event::InitDone)),
            "the initial-events-end bookmark ends the initial list"
        );
        api.create(&PostParams::default(), &secret("y", &[]))
            .await
            .expect("create");
        match next(&mut events).await {
            Ok(watcher::Event::Apply(s)) => assert_eq!(s.name_any(), "y"),
            other => panic!("expected ADDED, got {other:?}"),
        }
        assert!(
            fake.requests_matching(&Match::verb("list")).is_empty(),
            "a streaming list never lists"
        );
    });
}

fn owner_ref(owner: &ConfigMap) -> k8s_openapi::apimachinery::pkg::apis::meta::v1::OwnerReference {
    owner.controller_owner_ref(&()).expect("owner has a uid")
}

#[test]
fn deleting_an_owner_garbage_collects_its_dependents() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let owners: Api<ConfigMap> = Api::namespaced(client.clone(), "default");
        let secrets: Api<Secret> = Api::namespaced(client, "default");
        let o1 = owners
            .create(&PostParams::default(), &labelled("o1", &[]))
            .await
            .expect("owner 1");
        let o2 = owners
            .create(&PostParams::default(), &labelled("o2", &[]))
            .await
            .expect("owner 2");
        let mut only = secret("only-o1", &[]);
        only.metadata.owner_references = Some(vec![owner_ref(&o1)]);
        secrets
            .create(&PostParams::default(), &only)
            .await
            .expect("dependent");
        let mut both = secret("both", &[]);
        let mut r2 = owner_ref(&o2);
        r2.controller = None;
        both.metadata.owner_references = Some(vec![owner_ref(&o1), r2]);
        secrets
            .create(&PostParams::default(), &both)
            .await
            .expect("dependent of two");
        let mut orphan = secret("orphan", &[]);
        orphan.metadata.owner_references = Some(vec![owner_ref(&o2)]);
        secrets
            .create(&PostParams::default(), &orphan)
            .await
            .expect("dependent of o2");

        owners
            .delete("o1", &DeleteParams::default())
            .await
            .expect("delete owner 1");
        assert_eq!(
            api_error(secrets.get("only-o1").await.expect_err("collected")).code,
            404
        );
        let kept = secrets
            .get("both")
            .await
            .expect("a dependent with a living owner stays");
        assert_eq!(
            kept.owner_references()
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>(),
            ["o2"]
        );

        owners
            .delete(
                "o2",
                &DeleteParams {
                    propagation_policy: Some(PropagationPolicy::Orphan),
                    ..Default::default()
                },
            )
            .await
            .expect("delete owner 2, orphaning");
        let orphaned = secrets
            .get("orphan")
            .await
            .expect("orphaned dependent stays");
        assert!(orphaned.owner_references().is_empty());
        assert!(secrets
            .get("both")
            .await
            .expect("stays")
            .owner_references()
            .is_empty());
    });
}

#[test]
fn finalizers_hold_deletion_until_removed() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        let mut s = secret("f", &[]);
        s.metadata.finalizers = Some(vec!["sopsync.io/cleanup".into()]);
        api.create(&PostParams::default(), &s)
            .await
            .expect("create");
        api.delete("f", &DeleteParams::default())
            .await
            .expect("delete is accepted");
        let pending = api.get("f").await.expect("still there");
        assert!(pending.metadata.deletion_timestamp.is_some());
        let err = api_error(
            api.patch(
                "f",
                &PatchParams::default(),
                &Patch::Merge(
                    json!({ "metadata": { "finalizers": ["sopsync.io/cleanup", "x/new"] } }),
                ),
            )
            .await
            .expect_err("no new finalizers while deleting"),
        );
        assert_eq!(err.code, 422);
        api.patch(
            "f",
            &PatchParams::default(),
            &Patch::Merge(json!({ "metadata": { "finalizers": null } })),
        )
        .await
        .expect("remove the finalizer");
        assert_eq!(api_error(api.get("f").await.expect_err("gone")).code, 404);
    });
}

#[test]
fn lease_manager_acquires_releases_and_hands_over() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let one = kube_lease_manager::LeaseManagerBuilder::new(client.clone(), "sopsync-leader")
            .with_namespace("default")
            .with_identity("one")
            .with_duration(30)
            .with_grace(5)
            .build()
            .await
            .expect("lease manager one");
        assert!(one.changed().await.expect("one acquires"), "one became the leader");
        let lease = fake.get::<Lease>("default", "sopsync-leader").expect("lease exists");
        let spec = lease.spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("one"));
        assert_eq!(spec.lease_transitions, Some(1));

        // A contender's apply without force conflicts on holderIdentity (what the lease manager relies on).
        let leases: Api<Lease> = Api::namespaced(client.clone(), "default");
        let err = api_error(
            leases
                .patch("sopsync-leader", &PatchParams::apply("kube-lease-two"), &Patch::Apply(json!({
                    "apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": { "name": "sopsync-leader" },
                    "spec": { "holderIdentity": "two" }
                })))
                .await
                .expect_err("conflict"),
        );
        assert_eq!(err.code, 409);

        one.release().await.expect("release");
        let released = fake.get::<Lease>("default", "sopsync-leader").expect("lease").spec.expect("spec");
        assert_eq!(released.holder_identity, None);

        let two = kube_lease_manager::LeaseManagerBuilder::new(client, "sopsync-leader")
            .with_namespace("default")
            .with_identity("two")
            .with_duration(30)
            .with_grace(5)
            .build()
            .await
            .expect("lease manager two");
        assert!(two.changed().await.expect("two acquires"), "two became the leader");
        let spec = fake.get::<Lease>("default", "sopsync-leader").expect("lease").spec.expect("spec");
        assert_eq!(spec.holder_identity.as_deref(), Some("two"));
        assert_eq!(spec.lease_transitions, Some(2));
    });
}

#[test]
fn event_recorder_publishes_events_k8s_io_events() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let api: Api<Secret> = Api::namespaced(client.clone(), "default");
        let s = api
            .create(&PostParams::default(), &secret("e", &[]))
            .await
            .expect("create");
        let recorder = kube::runtime::events::Recorder::new(client.clone(), "sopsync-test".into());
        let ev = kube::runtime::events::Event {
            type_: kube::runtime::events::EventType::Normal,
            reason: "Synced".into(),
            note: Some("rendered 1 Secret".into()),
            action: "Reconcile".into(),
            secondary: None,
        };
        recorder
            .publish(&ev, &s.object_ref(&()))
            .await
            .expect("publish");
        recorder
            .publish(&ev, &s.object_ref(&()))
            .await
            .expect("publish again (series patch)");
        let events: Api<k8s_openapi::api::events::v1::Event> = Api::namespaced(client, "default");
        let list = events
            .list(&ListParams::default())
            .await
            .expect("list events");
        assert_eq!(list.items.len(), 1);
        let e = &list.items[0];
        assert_eq!(e.reason.as_deref(), Some("Synced"));
        assert_eq!(
            e.regarding.as_ref().and_then(|r| r.name.as_deref()),
            Some("e")
        );
        assert_eq!(e.series.as_ref().map(|s| s.count), Some(2));
    });
}

#[test]
fn deployment_template_change_bumps_generation_but_scale_status_does_not() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Deployment> = Api::namespaced(fake.client().await, "default");
        let d: Deployment = serde_json::from_value(json!({
            "apiVersion": "apps/v1", "kind": "Deployment", "metadata": { "name": "app" },
            "spec": { "selector": { "matchLabels": { "app": "a" } }, "template": {
                "metadata": { "labels": { "app": "a" } },
                "spec": { "containers": [ { "name": "c", "image": "img:1", "env": [ { "name": "A", "value": "1" } ] } ] } } }
        })).expect("deployment");
        api.create(&PostParams::default(), &d).await.expect("create");
        let rolled = api
            .patch("app", &PatchParams::default(), &Patch::Strategic(json!({ "spec": { "template": { "metadata": { "annotations": { "sopsync.io/checksum": "abc" } },
                "spec": { "containers": [ { "name": "c", "env": [ { "name": "B", "value": "2" } ] } ] } } } })))
            .await
            .expect("rollout patch");
        assert_eq!(rolled.metadata.generation, Some(2));
        let c = &rolled.spec.as_ref().expect("spec").template.spec.as_ref().expect("pod spec").containers[0];
        assert_eq!(c.image.as_deref(), Some("img:1"), "containers merge by name");
        assert_eq!(c.env.as_ref().map(|e| e.len()), Some(2), "env merges by name");
        let st = api
            .patch_status("app", &PatchParams::default(), &Patch::Merge(json!({ "status": { "observedGeneration": 2 } })))
            .await
            .expect("status");
        assert_eq!(st.metadata.generation, Some(2));
    });
}

#[test]
fn discovery_lists_built_in_and_registered_kinds() {
    let fake = FakeApiServer::start();
    fake.register_crd(&Widget::crd());
    fake.block_on(async {
        let discovery = kube::discovery::Discovery::new(fake.client().await)
            .run()
            .await
            .expect("discovery");
        let (ar, caps) = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .find(|(ar, _)| ar.kind == "Widget")
            .expect("Widget discovered");
        assert_eq!(
            (ar.group.as_str(), ar.plural.as_str()),
            ("test.sopsync.io", "widgets")
        );
        assert!(
            caps.subresources.iter().any(|(s, _)| s.plural == "status"),
            "the status subresource is discovered"
        );
        assert!(discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .any(|(ar, _)| ar.kind == "Lease"));
        let secret_kinds: Vec<_> = discovery
            .groups()
            .flat_map(|g| g.recommended_resources())
            .filter(|(ar, _)| ar.kind == "Secret")
            .collect();
        assert_eq!(secret_kinds.len(), 1);
    });
}

#[test]
fn requests_without_the_token_are_unauthorized() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let mut config = kube::Config::new(fake.url().parse().expect("url"));
        config.default_namespace = "default".into();
        let client = kube::Client::try_from(config).expect("client");
        let err = api_error(
            Api::<Secret>::namespaced(client, "default")
                .list(&ListParams::default())
                .await
                .expect_err("no token"),
        );
        assert_eq!((err.code, err.reason.as_str()), (401, "Unauthorized"));
    });
}

#[test]
fn injected_status_faults_reach_the_client_as_api_errors() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        api.create(&PostParams::default(), &secret("s", &[]))
            .await
            .expect("create");
        fake.fail_next(Match::verb("PATCH").resource("secrets"), Fault::Status(500));
        let err = api_error(
            api.patch("s", &PatchParams::default(), &Patch::Merge(json!({})))
                .await
                .expect_err("500"),
        );
        assert_eq!((err.code, err.reason.as_str()), (500, "InternalError"));
        api.patch("s", &PatchParams::default(), &Patch::Merge(json!({})))
            .await
            .expect("the fault was used once");

        fake.fail_next(Match::verb("get").name("s"), Fault::Conflict);
        let err = api_error(api.get("s").await.expect_err("409"));
        assert_eq!((err.code, err.reason.as_str()), (409, "Conflict"));

        fake.fail_next(Match::verb("list"), Fault::Gone);
        assert_eq!(
            api_error(api.list(&ListParams::default()).await.expect_err("410")).code,
            410
        );

        // kube 5 retries 429/503/504 itself (honouring Retry-After): the caller sees success,
        // the log shows the refused attempts.
        fake.clear_requests();
        fake.fail_next(Match::any().resource("secrets"), Fault::TooManyRequests);
        api.get("s").await.expect("retried after 429");
        fake.fail_times(Match::verb("get"), Fault::Status(503), 2);
        api.get("s").await.expect("retried after two 503s");
        let statuses: Vec<u16> = fake.requests().iter().map(|r| r.status).collect();
        assert_eq!(statuses, [429, 200, 503, 503, 200]);

        fake.fail_always(Match::verb("delete"), Fault::Status(403));
        for _ in 0..2 {
            assert_eq!(
                api_error(
                    api.delete("s", &DeleteParams::default())
                        .await
                        .expect_err("403")
                )
                .code,
                403
            );
        }
        fake.clear_faults();
        api.delete("s", &DeleteParams::default())
            .await
            .expect("faults cleared");
    });
}

#[test]
fn injected_dropped_connection_and_delay_are_seen_by_the_client() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        api.create(&PostParams::default(), &secret("s", &[]))
            .await
            .expect("create");
        fake.fail_next(Match::verb("get"), Fault::DropConnection);
        match api.get("s").await {
            Err(kube::Error::Api(s)) => panic!("a dropped connection is not an API answer: {s:?}"),
            Err(_) => {}
            Ok(_) => panic!("the connection should have been dropped"),
        }
        assert_eq!(
            fake.requests().last().map(|r| r.status),
            Some(0),
            "logged as unanswered"
        );
        api.get("s").await.expect("next request is served");

        fake.fail_next(Match::verb("get"), Fault::Delay(Duration::from_millis(300)));
        let t = Instant::now();
        api.get("s")
            .await
            .expect("a delayed request still succeeds");
        assert!(
            t.elapsed() >= Duration::from_millis(300),
            "the answer waited for the delay"
        );
    });
}

#[test]
fn request_log_records_verbs_field_managers_and_content_types() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client().await, "default");
        fake.clear_requests();
        api.patch(
            "s",
            &apply_params("sopsync"),
            &Patch::Apply(secret_config("s", &[("a", "1")], &[])),
        )
        .await
        .expect("apply");
        api.get("s").await.expect("get");
        let log = fake.requests();
        assert_eq!(log.len(), 2);
        assert_eq!(
            (
                log[0].method.as_str(),
                log[0].verb.as_str(),
                log[0].resource.as_str()
            ),
            ("PATCH", "patch", "secrets")
        );
        assert_eq!(log[0].field_manager.as_deref(), Some("sopsync"));
        assert!(log[0].is_apply() && log[0].is_write());
        assert_eq!(
            log[0].content_type.as_deref(),
            Some("application/apply-patch+yaml")
        );
        assert_eq!(log[0].status, 201);
        assert_eq!(log[1].path, "/api/v1/namespaces/default/secrets/s");
        assert!(!log[1].is_write());
        assert_eq!(fake.writes().len(), 1);
    });
}

#[test]
fn direct_store_access_is_visible_through_the_api_and_watches() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let mut s = secret("seeded", &[("k", "v")]);
        s.metadata.namespace = Some("team-a".into());
        fake.put(&s);
        let api: Api<Secret> = Api::namespaced(fake.client().await, "team-a");
        assert_eq!(
            data_of(&api.get("seeded").await.expect("seeded object served"))["k"],
            "v"
        );
        let mut events = watcher(api.clone(), watcher::Config::default()).boxed();
        assert!(matches!(next(&mut events).await, Ok(watcher::Event::Init)));
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitApply(_))
        ));
        assert!(matches!(
            next(&mut events).await,
            Ok(watcher::Event::InitDone)
        ));
        fake.put(&secret_in("team-a", "second"));
        match next(&mut events).await {
            Ok(watcher::Event::Apply(s)) => assert_eq!(s.name_any(), "second"),
            other => panic!("expected ADDED from a direct put, got {other:?}"),
        }
        assert_eq!(fake.list::<Secret>(Some("team-a")).len(), 2);
        assert!(
            fake.writes().is_empty(),
            "direct access is not logged as API writes"
        );
    });
}

fn secret_in(ns: &str, name: &str) -> Secret {
    let mut s = secret(name, &[]);
    s.metadata.namespace = Some(ns.into());
    s
}

// ----- authorization (RBAC) -----

/// One request through a kube client, answered as raw JSON: (HTTP status, body).
async fn raw(
    client: &kube::Client,
    method: &str,
    path: &str,
    accept: Option<&str>,
    body: Option<Value>,
) -> (u16, Value) {
    let mut b = hyper::Request::builder().method(method).uri(path);
    if let Some(a) = accept {
        b = b.header("accept", a);
    }
    if body.is_some() {
        let ct = if method == "PATCH" {
            "application/merge-patch+json"
        } else {
            "application/json"
        };
        b = b.header("content-type", ct);
    }
    let bytes = body.map(|v| v.to_string().into_bytes()).unwrap_or_default();
    let resp = client
        .send(b.body(kube::client::Body::from(bytes)).expect("a request"))
        .await
        .expect("an HTTP response");
    let code = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("the body")
        .to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

const BOT: &str = "system:serviceaccount:ops:bot";

fn role(kind: &str, ns: &str, name: &str, rules: Value) -> Value {
    let mut meta = json!({ "name": name });
    if kind == "Role" {
        meta["namespace"] = json!(ns);
    }
    json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta, "rules": rules })
}

/// A (Cluster)RoleBinding of `role_kind/role` to the service account ops/bot.
fn binding(kind: &str, ns: &str, name: &str, role_kind: &str, role: &str) -> Value {
    let mut meta = json!({ "name": name });
    if kind == "RoleBinding" {
        meta["namespace"] = json!(ns);
    }
    json!({ "apiVersion": "rbac.authorization.k8s.io/v1", "kind": kind, "metadata": meta,
            "roleRef": { "apiGroup": "rbac.authorization.k8s.io", "kind": role_kind, "name": role },
            "subjects": [{ "kind": "ServiceAccount", "name": "bot", "namespace": "ops" }] })
}

/// The Status kube-apiserver writes for a request RBAC does not allow: `NewForbidden`
/// (k8s.io/apimachinery/pkg/api/errors) around `forbiddenMessage`
/// (k8s.io/apiserver/pkg/endpoints/handlers/responsewriters/errors.go), e.g. as quoted in
/// the RBAC docs' troubleshooting and every `kubectl auth can-i` walkthrough:
/// `secrets "db" is forbidden: User "system:serviceaccount:ops:bot" cannot get resource
/// "secrets" in API group "" in the namespace "team-a"`.
fn forbidden_status(message: &str, details: Value) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": message, "reason": "Forbidden", "details": details, "code": 403 })
}

#[test]
fn rbac_denies_a_service_account_without_bindings_with_the_kube_apiserver_forbidden_status() {
    let fake = FakeApiServer::start();
    fake.ensure_namespace("team-a");
    fake.block_on(async {
        let bot = fake.client_as("ops", "bot").await;
        let (code, body) = raw(&bot, "GET", "/api/v1/namespaces/team-a/secrets/db", None, None).await;
        assert_eq!(code, 403);
        assert_eq!(
            body,
            forbidden_status(
                &format!("secrets \"db\" is forbidden: User \"{BOT}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team-a\""),
                json!({ "name": "db", "kind": "secrets" })
            )
        );
        // A list across namespaces is a request at the cluster scope, with no name.
        let (code, body) = raw(&bot, "GET", "/apis/sopsync.io/v1alpha1/secretsources?watch=true", None, None).await;
        assert_eq!(code, 403);
        assert_eq!(
            body,
            forbidden_status(
                &format!("secretsources.sopsync.io is forbidden: User \"{BOT}\" cannot watch resource \"secretsources\" in API group \"sopsync.io\" at the cluster scope"),
                json!({ "group": "sopsync.io", "kind": "secretsources" })
            )
        );
        // A subresource is named `resource/subresource`.
        let (code, body) = raw(&bot, "PATCH", "/api/v1/namespaces/team-a/secrets/db/status", None, Some(json!({}))).await;
        assert_eq!(code, 403);
        assert_eq!(body["message"], json!(format!("secrets \"db\" is forbidden: User \"{BOT}\" cannot patch resource \"secrets/status\" in API group \"\" in the namespace \"team-a\"")));
        // A path outside the API: `forbidden: User "u" cannot get path "/logs"`.
        let (code, body) = raw(&bot, "GET", "/logs", None, None).await;
        assert_eq!(code, 403);
        assert_eq!(body["message"], json!(format!("forbidden: User \"{BOT}\" cannot get path \"/logs\"")));
        // Discovery is granted to every authenticated user (system:discovery).
        for path in ["/version", "/api", "/apis", "/api/v1", "/apis/sopsync.io/v1alpha1"] {
            let (code, _) = raw(&bot, "GET", path, None, None).await;
            assert!(code != 403, "{path} is discovery, allowed to every authenticated user");
        }
        // The administrator is in system:masters: RBAC is not asked.
        let admin = fake.client().await;
        let (code, _) = raw(&admin, "GET", "/api/v1/secrets", None, None).await;
        assert_eq!(code, 200);
        let denied: Vec<_> = fake.requests().into_iter().filter(|r| r.denied).collect();
        assert_eq!(denied.len(), 4, "{denied:#?}");
        assert!(denied.iter().all(|r| r.user == BOT && r.status == 403));
    });
}

#[test]
fn rbac_role_binding_grants_its_verbs_resources_and_names_only_in_its_namespace() {
    let fake = FakeApiServer::start();
    fake.register_crd(&Widget::crd());
    fake.ensure_namespace("team-a");
    fake.ensure_namespace("team-b");
    fake.put(&secret_in("team-a", "db"));
    fake.put(&secret_in("team-a", "other"));
    fake.put(&secret_in("team-b", "db"));
    fake.put(&Widget {
        metadata: kube::api::ObjectMeta {
            namespace: Some("team-a".into()),
            ..widget("w", 1).metadata
        },
        ..widget("w", 1)
    });
    // RBAC docs, "Role example", "Referring to resources" (subresources by slash,
    // resourceNames) and "RoleBinding examples" (a RoleBinding may reference a ClusterRole,
    // granting its rules in the binding's namespace only).
    fake.grant(&[
        role("Role", "team-a", "reader", json!([
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list", "watch"] },
            { "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["settings"], "verbs": ["get", "create", "list"] },
            { "apiGroups": ["test.sopsync.io"], "resources": ["widgets"], "verbs": ["patch"] },
        ])),
        binding("RoleBinding", "team-a", "reader", "Role", "reader"),
        role("ClusterRole", "", "status-writer", json!([
            { "apiGroups": ["*"], "resources": ["*/status"], "verbs": ["patch"] },
        ])),
        binding("RoleBinding", "team-a", "status-writer", "ClusterRole", "status-writer"),
    ]);
    fake.block_on(async {
        let bot = fake.client_as("ops", "bot").await;
        let code = |m: &'static str, p: &'static str, body: Option<Value>| {
            let bot = bot.clone();
            async move { raw(&bot, m, p, None, body).await.0 }
        };
        assert_eq!(
            code("GET", "/api/v1/namespaces/team-a/secrets/db", None).await,
            200
        );
        assert_eq!(
            code("GET", "/api/v1/namespaces/team-a/secrets", None).await,
            200
        );
        assert_eq!(
            code(
                "GET",
                "/api/v1/namespaces/team-a/secrets?watch=true&timeoutSeconds=1",
                None
            )
            .await,
            200
        );
        // Only the verbs listed.
        assert_eq!(
            code("DELETE", "/api/v1/namespaces/team-a/secrets/db", None).await,
            403
        );
        // Only in the RoleBinding's namespace, never at the cluster scope.
        assert_eq!(
            code("GET", "/api/v1/namespaces/team-b/secrets/db", None).await,
            403
        );
        assert_eq!(code("GET", "/api/v1/secrets", None).await, 403);
        // resourceNames: only that name; create and list carry no name and are refused,
        // unless a field selector narrows the list to that one name.
        assert_eq!(
            code("GET", "/api/v1/namespaces/team-a/configmaps/settings", None).await,
            404
        );
        assert_eq!(
            code("GET", "/api/v1/namespaces/team-a/configmaps/other", None).await,
            403
        );
        assert_eq!(
            code(
                "POST",
                "/api/v1/namespaces/team-a/configmaps",
                Some(json!({"metadata": {"name": "settings"}}))
            )
            .await,
            403
        );
        assert_eq!(
            code("GET", "/api/v1/namespaces/team-a/configmaps", None).await,
            403
        );
        assert_eq!(
            code(
                "GET",
                "/api/v1/namespaces/team-a/configmaps?fieldSelector=metadata.name%3Dsettings",
                None
            )
            .await,
            200
        );
        // `widgets` does not grant `widgets/status`; `*/status` does.
        let w = "/apis/test.sopsync.io/v1/namespaces/team-a/widgets/w";
        assert_eq!(
            code("PATCH", w, Some(json!({"spec": {"size": 2}}))).await,
            200
        );
        assert_eq!(
            code(
                "PATCH",
                "/apis/test.sopsync.io/v1/namespaces/team-a/widgets/w/status",
                Some(json!({"status": {"ready": true}}))
            )
            .await,
            200
        );
        assert_eq!(
            code(
                "PATCH",
                "/api/v1/namespaces/team-b/secrets/db/status",
                Some(json!({}))
            )
            .await,
            403
        );
    });
}

#[test]
fn rbac_cluster_role_binding_grants_everywhere_and_an_edit_takes_effect_on_the_next_request() {
    let fake = FakeApiServer::start();
    fake.ensure_namespace("team-a");
    fake.put(&secret_in("team-a", "db"));
    fake.grant(&[
        role(
            "ClusterRole",
            "",
            "secrets",
            json!([
                { "apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"] },
            ]),
        ),
        binding(
            "ClusterRoleBinding",
            "",
            "secrets",
            "ClusterRole",
            "secrets",
        ),
    ]);
    fake.block_on(async {
        let bot = fake.client_as("ops", "bot").await;
        let api: Api<Secret> = Api::all(bot.clone());
        assert_eq!(api.list(&ListParams::default()).await.expect("list at the cluster scope").items.len(), 1);
        let ns: Api<Secret> = Api::namespaced(bot.clone(), "team-a");
        ns.get("db").await.expect("get in any namespace");
        // RBAC is evaluated per request from the stored objects: a permission removed
        // at run time is refused at once (RBAC docs: "changes to roles take effect
        // immediately").
        fake.grant(&[role("ClusterRole", "", "secrets", json!([
            { "apiGroups": [""], "resources": ["secrets"], "verbs": ["list"] },
        ]))]);
        let e = api_error(ns.get("db").await.expect_err("get was revoked"));
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert_eq!(e.message, format!("secrets \"db\" is forbidden: User \"{BOT}\" cannot get resource \"secrets\" in API group \"\" in the namespace \"team-a\""));
        // A binding to a role that does not exist grants nothing.
        let rt = fake.resource_type_raw("rbac.authorization.k8s.io", "v1", "clusterroles");
        fake.delete_raw(&rt, "", "secrets").expect("delete the role");
        let e = api_error(api.list(&ListParams::default()).await.expect_err("no role"));
        assert_eq!(e.code, 403);
    });
}

// ----- metadata-only requests -----

const AS_LIST: &str = "application/json;as=PartialObjectMetadataList;g=meta.k8s.io;v=v1";
const AS_ONE: &str = "application/json;as=PartialObjectMetadata;g=meta.k8s.io;v=v1";

#[test]
fn metadata_only_requests_are_answered_as_partial_object_metadata_without_data() {
    let fake = FakeApiServer::start();
    let stored = fake.put(&secret("db", &[("password", "hunter2")]));
    let meta = serde_json::to_value(&stored.metadata).expect("json");
    fake.block_on(async {
        let client = fake.client().await;
        // API concepts, "Receiving resources as metadata only" / response.go
        // asPartialObjectMetadataList: the list's kind and apiVersion are
        // meta.k8s.io/v1 PartialObjectMetadataList, the list metadata is kept, and each
        // item is a PartialObjectMetadata holding only the object's metadata.
        let (code, body) = raw(&client, "GET", "/api/v1/namespaces/default/secrets", Some(AS_LIST), None).await;
        assert_eq!(code, 200);
        let rv = body["metadata"]["resourceVersion"].clone();
        assert_eq!(
            body,
            json!({
                "kind": "PartialObjectMetadataList",
                "apiVersion": "meta.k8s.io/v1",
                "metadata": { "resourceVersion": rv },
                "items": [{ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta }]
            })
        );
        // One object: PartialObjectMetadata.
        let (code, body) = raw(&client, "GET", "/api/v1/namespaces/default/secrets/db", Some(AS_ONE), None).await;
        assert_eq!(code, 200);
        assert_eq!(body, json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta }));
        // Asking for the list form of one object (or the reverse) is 406 NotAcceptable.
        let (code, body) = raw(&client, "GET", "/api/v1/namespaces/default/secrets/db", Some(AS_LIST), None).await;
        assert_eq!((code, body["reason"].as_str()), (406, Some("NotAcceptable")));
        let (code, _) = raw(&client, "GET", "/api/v1/namespaces/default/secrets", Some(AS_ONE), None).await;
        assert_eq!(code, 406);
        // Without the header, the full object.
        let (_, body) = raw(&client, "GET", "/api/v1/namespaces/default/secrets/db", Some("application/json"), None).await;
        assert_eq!(body["kind"], "Secret");
        assert!(body["data"]["password"].is_string());

        // The kube client's metadata watcher: every event carries metadata only.
        let api: Api<kube::core::PartialObjectMeta<Secret>> = Api::namespaced(client.clone(), "default");
        let listed = api.list_metadata(&ListParams::default()).await.expect("list_metadata");
        assert_eq!(listed.items.len(), 1);
        let (code, text) = {
            let req = hyper::Request::get("/api/v1/namespaces/default/secrets?watch=true&timeoutSeconds=1")
                .header("accept", AS_ONE)
                .body(kube::client::Body::from(Vec::new()))
                .expect("request");
            let resp = client.send(req).await.expect("watch");
            let code = resp.status().as_u16();
            let bytes = http_body_util::BodyExt::collect(resp.into_body()).await.expect("body").to_bytes();
            (code, String::from_utf8(bytes.to_vec()).expect("utf-8"))
        };
        assert_eq!(code, 200);
        let first: Value = serde_json::from_str(text.lines().next().expect("an event")).expect("json");
        assert_eq!(first["type"], "ADDED");
        assert_eq!(first["object"], json!({ "kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1", "metadata": meta }));
        assert!(
            !text.contains("aHVudGVyMg") && !text.contains("\"data\":"),
            "no Secret data in a metadata watch: {text}"
        );
    });
}

// ----- validation (422 Invalid) -----

/// The 422 Status `NewInvalid` writes for one field error (k8s.io/apimachinery/pkg/api/errors).
fn invalid_status(kind: &str, name: &str, reason: &str, field: &str, body: &str) -> Value {
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind} \"{name}\" is invalid: {field}: {body}"),
            "reason": "Invalid",
            "details": { "name": name, "kind": kind,
                         "causes": [{ "reason": reason, "message": body, "field": field }] },
            "code": 422 })
}

async fn post_secret(client: &kube::Client, secret: Value) -> (u16, Value) {
    raw(
        client,
        "POST",
        "/api/v1/namespaces/default/secrets",
        None,
        Some(secret),
    )
    .await
}

#[test]
fn secret_names_and_data_keys_are_validated_as_kube_apiserver_does() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        // "Object Names and IDs": a Secret's name is a DNS subdomain.
        let (code, body) = post_secret(&client, json!({"metadata": {"name": "Bad_Name"}})).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("Secret", "Bad_Name", "FieldValueInvalid", "metadata.name",
            "Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"));
        // "Secrets": data keys are alphanumeric, '-', '_' or '.'.
        let (code, body) = post_secret(&client, json!({"metadata": {"name": "s"}, "stringData": {"bad key": "v"}})).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("Secret", "s", "FieldValueInvalid", "data[bad key]",
            "Invalid value: \"bad key\": a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '[-._a-zA-Z0-9]+')"));
        let (code, body) = post_secret(&client, json!({"metadata": {"name": "s"}, "stringData": {"..x": "v"}})).await;
        assert_eq!(code, 422);
        assert_eq!(body["details"]["causes"][0]["message"], "Invalid value: \"..x\": must not start with '..'");
        // "Secrets", "Restrictions": at most 1 MiB of data in all.
        let big = "x".repeat(1024 * 1024 + 1);
        let (code, body) = post_secret(&client, json!({"metadata": {"name": "s"}, "stringData": {"big": big}})).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("Secret", "s", "FieldValueTooLong", "data", "Too long: may not be more than 1048576 bytes"));
        let (code, _) = post_secret(&client, json!({"metadata": {"name": "s"}, "stringData": {"ok.key-1_A": "x".repeat(1024 * 1024)}})).await;
        assert_eq!(code, 201, "exactly 1 MiB is allowed");
        // ValidateSecretUpdate: the type is immutable.
        let (code, body) = raw(&client, "PATCH", "/api/v1/namespaces/default/secrets/s", None, Some(json!({"type": "kubernetes.io/basic-auth"}))).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("Secret", "s", "FieldValueInvalid", "type", "Invalid value: \"kubernetes.io/basic-auth\": field is immutable"));
    });
}

#[test]
fn labels_and_annotations_are_validated_for_every_kind() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let cm = |meta: Value| json!({"metadata": meta});
        let post = |v: Value| {
            let client = client.clone();
            async move { raw(&client, "POST", "/api/v1/namespaces/default/configmaps", None, Some(v)).await }
        };
        // "Labels and Selectors", "Syntax and character set": a value is at most 63
        // characters, empty or alphanumeric at both ends.
        let (code, body) = post(cm(json!({"name": "c", "labels": {"app": "-bad"}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("ConfigMap", "c", "FieldValueInvalid", "metadata.labels",
            "Invalid value: \"-bad\": a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')"));
        let (code, body) = post(cm(json!({"name": "c", "labels": {"app": "x".repeat(64)}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body["details"]["causes"][0]["message"], json!(format!("Invalid value: \"{}\": must be no more than 63 characters", "x".repeat(64))));
        // A key is `[prefix/]name`, the prefix a DNS subdomain.
        let (code, body) = post(cm(json!({"name": "c", "labels": {"Example.com/app": "a"}}))).await;
        assert_eq!(code, 422);
        assert!(body["details"]["causes"][0]["message"].as_str().expect("message").starts_with("Invalid value: \"Example.com/app\": prefix part a lowercase RFC 1123 subdomain"), "{body}");
        let (code, _) = post(cm(json!({"name": "c", "labels": {"example.com/app": "", "a.b_c-D": "v.1"}}))).await;
        assert_eq!(code, 201);
        // "Annotations": keys are qualified names; keys and values total at most 256 KiB.
        let (code, body) = post(cm(json!({"name": "d", "annotations": {"a/b/c": "v"}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body["details"]["causes"][0]["field"], "metadata.annotations");
        let (code, body) = post(cm(json!({"name": "d", "annotations": {"big": "x".repeat(256 * 1024)}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("ConfigMap", "d", "FieldValueTooLong", "metadata.annotations", "Too long: may not be more than 262144 bytes"));
        let (code, _) = post(cm(json!({"name": "d", "annotations": {"big": "x".repeat(256 * 1024 - 3)}}))).await;
        assert_eq!(code, 201, "exactly 256 KiB in all is allowed");
    });
}

#[test]
fn rbac_a_server_side_apply_that_creates_its_object_needs_create_as_well_as_patch() {
    let fake = FakeApiServer::start();
    fake.ensure_namespace("team-a");
    let grant = |verbs: Value| {
        fake.grant(&[
            role(
                "Role",
                "team-a",
                "writer",
                json!([{ "apiGroups": [""], "resources": ["secrets"], "verbs": verbs }]),
            ),
            binding("RoleBinding", "team-a", "writer", "Role", "writer"),
        ]);
    };
    grant(json!(["patch"]));
    fake.block_on(async {
        let api: Api<Secret> = Api::namespaced(fake.client_as("ops", "bot").await, "team-a");
        let apply = |v: &'static str| {
            let api = api.clone();
            async move {
                api.patch(
                    "db",
                    &apply_params("mgr").force(),
                    &Patch::Apply(secret_config("db", &[("k", v)], &[])),
                )
                .await
            }
        };
        // API concepts, "Patch and apply": an apply that creates needs create permission.
        let e = api_error(apply("one").await.expect_err("patch alone cannot create"));
        assert_eq!((e.code, e.reason.as_str()), (403, "Forbidden"));
        assert!(
            e.message.contains("cannot create resource \"secrets\""),
            "{}",
            e.message
        );
        grant(json!(["patch", "create"]));
        apply("one").await.expect("patch and create: created");
        grant(json!(["patch"]));
        apply("two")
            .await
            .expect("an apply to an existing object needs patch only");
        let created: Vec<_> = fake
            .requests()
            .into_iter()
            .filter(|r| r.authorized_create)
            .collect();
        assert_eq!(created.len(), 1);
    });
}

// ----- CRD structural schemas (pruning, defaulting, validation) -----
//
// Expected responses follow "Extend the Kubernetes API with CustomResourceDefinitions"
// (https://kubernetes.io/docs/tasks/extend-kubernetes/custom-resources/custom-resource-definitions/),
// sections "Specifying a structural schema", "Field pruning", "Controlling pruning",
// "Defaulting" and "Defaulting and Nullable", and the error shapes of
// apiextensions-apiserver's `kubeOpenAPIResultToFieldErrors` over kube-openapi's
// messages (e.g. `spec.replicas: Invalid value: "string": spec.replicas in body must be
// of type integer: "string"`, as kubectl prints it for any CRD).

const GADGETS: &str = "/apis/test.sopsync.io/v1/namespaces/default/gadgets";

/// A hand-written CRD using each schema keyword the fake enforces.
fn gadget_crd() -> Value {
    json!({
        "apiVersion": "apiextensions.k8s.io/v1", "kind": "CustomResourceDefinition",
        "metadata": { "name": "gadgets.test.sopsync.io" },
        "spec": {
            "group": "test.sopsync.io", "scope": "Namespaced",
            "names": { "plural": "gadgets", "singular": "gadget", "kind": "Gadget", "listKind": "GadgetList" },
            "versions": [{
                "name": "v1", "served": true, "storage": true, "subresources": { "status": {} },
                "schema": { "openAPIV3Schema": {
                    "type": "object", "required": ["spec"],
                    "properties": {
                        "spec": {
                            "type": "object", "required": ["size"],
                            "properties": {
                                "size": { "type": "integer", "format": "int64", "minimum": 1 },
                                "mode": { "type": "string", "enum": ["Fast", "Safe"], "default": "Safe" },
                                "port": { "x-kubernetes-int-or-string": true },
                                "note": { "type": "string", "nullable": true },
                                "labels": { "type": "object", "additionalProperties": { "type": "string" } },
                                "tags": { "type": "array", "items": {
                                    "type": "object", "required": ["name"],
                                    "properties": { "name": { "type": "string", "pattern": "^[a-z]+$" } } } },
                                "extra": { "type": "object", "x-kubernetes-preserve-unknown-fields": true,
                                           "properties": { "known": { "type": "string" } } }
                            }
                        },
                        "status": {
                            "type": "object",
                            "properties": {
                                "phase": { "type": "string", "enum": ["Ready", "Failed"] },
                                "count": { "type": "integer" }
                            }
                        }
                    }
                } }
            }]
        }
    })
}

/// One request with an explicit content type: (HTTP status, body).
async fn send(
    client: &kube::Client,
    method: &str,
    path: &str,
    content_type: &str,
    body: Value,
) -> (u16, Value) {
    let req = hyper::Request::builder()
        .method(method)
        .uri(path)
        .header("content-type", content_type)
        .body(kube::client::Body::from(body.to_string().into_bytes()))
        .expect("a request");
    let resp = client.send(req).await.expect("an HTTP response");
    let code = resp.status().as_u16();
    let body = http_body_util::BodyExt::collect(resp.into_body())
        .await
        .expect("the body")
        .to_bytes();
    (code, serde_json::from_slice(&body).unwrap_or(Value::Null))
}

/// The 422 `NewInvalid` writes for a custom resource: the kind qualified by its group
/// (`Gadget.test.sopsync.io`), one cause per (reason, field, body), several errors in
/// `[a, b]`.
fn cr_invalid(kind: &str, group: &str, name: &str, causes: &[(&str, &str, &str)]) -> Value {
    let errors: Vec<String> = causes.iter().map(|(_, f, b)| format!("{f}: {b}")).collect();
    let all = match errors.as_slice() {
        [one] => one.clone(),
        many => format!("[{}]", many.join(", ")),
    };
    json!({ "kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Failure",
            "message": format!("{kind}.{group} \"{name}\" is invalid: {all}"),
            "reason": "Invalid",
            "details": { "name": name, "group": group, "kind": kind,
                         "causes": causes.iter().map(|(r, f, b)| json!({ "reason": r, "message": b, "field": f })).collect::<Vec<_>>() },
            "code": 422 })
}

fn gadget(name: &str, spec: Value) -> Value {
    json!({ "apiVersion": "test.sopsync.io/v1", "kind": "Gadget", "metadata": { "name": name }, "spec": spec })
}

#[test]
fn crd_schema_prunes_unknown_fields_on_create_update_patch_and_apply() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        assert_eq!(
            send(&client, "POST", crds, "application/json", gadget_crd())
                .await
                .0,
            201
        );
        // Create: unknown fields go at every depth, but not below
        // x-kubernetes-preserve-unknown-fields; apiVersion/kind/metadata stay.
        let mut body = gadget(
            "g",
            json!({
                "size": 3, "bogus": 1,
                "tags": [{ "name": "a", "bogus": true }],
                "extra": { "known": "k", "anything": { "deep": [1, 2] } }
            }),
        );
        body["junk"] = json!("x");
        let (code, got) = send(&client, "POST", GADGETS, "application/json", body).await;
        assert_eq!(code, 201, "{got}");
        assert_eq!(
            got["spec"],
            json!({
                "size": 3, "mode": "Safe",
                "tags": [{ "name": "a" }],
                "extra": { "known": "k", "anything": { "deep": [1, 2] } }
            }),
            "pruned, and mode defaulted"
        );
        assert!(got.get("junk").is_none(), "{got}");
        // Update (PUT).
        let mut put = got.clone();
        put["spec"]["bogus2"] = json!(2);
        put["spec"]["size"] = json!(4);
        let (code, got) = send(
            &client,
            "PUT",
            &format!("{GADGETS}/g"),
            "application/json",
            put,
        )
        .await;
        assert_eq!(code, 200, "{got}");
        assert_eq!(
            (got["spec"]["size"].clone(), got["spec"].get("bogus2")),
            (json!(4), None)
        );
        // Merge patch.
        let (code, got) = send(
            &client,
            "PATCH",
            &format!("{GADGETS}/g"),
            "application/merge-patch+json",
            json!({ "spec": { "bogus3": 3, "size": 5 } }),
        )
        .await;
        assert_eq!(code, 200, "{got}");
        assert_eq!(
            (got["spec"]["size"].clone(), got["spec"].get("bogus3")),
            (json!(5), None)
        );
        // Server-side apply: pruned, and the pruned field is owned by nobody.
        let (code, got) = send(
            &client,
            "PATCH",
            &format!("{GADGETS}/g?fieldManager=mgr&force=true"),
            "application/apply-patch+yaml",
            gadget("g", json!({ "size": 6, "bogus4": 4 })),
        )
        .await;
        assert_eq!(code, 200, "{got}");
        assert_eq!(
            (got["spec"]["size"].clone(), got["spec"].get("bogus4")),
            (json!(6), None)
        );
        assert!(
            !got["metadata"]["managedFields"]
                .to_string()
                .contains("bogus4"),
            "{got}"
        );
        let (code, got) = send(
            &client,
            "PATCH",
            &format!("{GADGETS}/new?fieldManager=mgr"),
            "application/apply-patch+yaml",
            gadget("new", json!({ "size": 1, "bogus5": 5 })),
        )
        .await;
        assert_eq!(code, 201, "{got}");
        assert!(got["spec"].get("bogus5").is_none(), "{got}");
        assert!(
            !got["metadata"]["managedFields"]
                .to_string()
                .contains("bogus5"),
            "{got}"
        );
    });
}

#[test]
fn crd_schema_violations_are_422_invalid_with_kube_apiserver_causes() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        assert_eq!(send(&client, "POST", crds, "application/json", gadget_crd()).await.0, 201);
        let post = |spec: Value| {
            let client = client.clone();
            async move { send(&client, "POST", GADGETS, "application/json", gadget("g", spec)).await }
        };
        let refused = |causes: &[(&str, &str, &str)]| (422, cr_invalid("Gadget", "test.sopsync.io", "g", causes));
        // Required (field.Required: "Required value"), also for the root's own `required`.
        assert_eq!(post(json!({})).await,
            refused(&[("FieldValueRequired", "spec.size", "Required value")]));
        let (code, body) = send(&client, "POST", GADGETS, "application/json",
            json!({ "apiVersion": "test.sopsync.io/v1", "kind": "Gadget", "metadata": { "name": "g" } })).await;
        assert_eq!((code, body), refused(&[("FieldValueRequired", "spec", "Required value")]));
        // "Defaulting and Nullable": a null in a field that is not nullable is pruned
        // (so a required one is missing), defaulted if it has a default; a nullable one stays.
        assert_eq!(post(json!({ "size": null })).await,
            refused(&[("FieldValueRequired", "spec.size", "Required value")]));
        let (code, ok) = send(&client, "POST", GADGETS, "application/json",
            gadget("n", json!({ "size": 1, "mode": null, "note": null }))).await;
        assert_eq!(code, 201, "{ok}");
        assert_eq!(ok["spec"], json!({ "size": 1, "mode": "Safe", "note": null }));
        // Types (field.TypeInvalid with the value's type name).
        assert_eq!(post(json!({ "size": "three" })).await,
            refused(&[("FieldValueTypeInvalid", "spec.size",
                "Invalid value: \"string\": spec.size in body must be of type integer: \"string\"")]));
        assert_eq!(post(json!({ "size": 1.5 })).await,
            refused(&[("FieldValueTypeInvalid", "spec.size",
                "Invalid value: \"number\": spec.size in body must be of type integer: \"number\"")]));
        assert_eq!(post(json!({ "size": 1, "labels": { "a": 1 } })).await,
            refused(&[("FieldValueTypeInvalid", "spec.labels.a",
                "Invalid value: \"integer\": spec.labels.a in body must be of type string: \"integer\"")]));
        assert_eq!(post(json!({ "size": 1, "port": true })).await,
            refused(&[("FieldValueTypeInvalid", "spec.port",
                "Invalid value: \"boolean\": spec.port in body must be of type integer,string: \"boolean\"")]));
        let (code, ok) = send(&client, "POST", GADGETS, "application/json",
            gadget("p", json!({ "size": 1, "port": "http" }))).await;
        assert_eq!(code, 201, "int-or-string takes a string: {ok}");
        // Enums (field.NotSupported).
        assert_eq!(post(json!({ "size": 1, "mode": "Turbo" })).await,
            refused(&[("FieldValueNotSupported", "spec.mode",
                "Unsupported value: \"Turbo\": supported values: \"Fast\", \"Safe\"")]));
        // Bounds and patterns (field.Invalid with kube-openapi's detail), array items by index.
        assert_eq!(post(json!({ "size": 0 })).await,
            refused(&[("FieldValueInvalid", "spec.size",
                "Invalid value: 0: spec.size in body should be greater than or equal to 1")]));
        assert_eq!(post(json!({ "size": 1, "tags": [{ "name": "ok" }, { "name": "A1" }, {}] })).await,
            refused(&[
                ("FieldValueInvalid", "spec.tags[1].name",
                    "Invalid value: \"A1\": spec.tags[1].name in body should match '^[a-z]+$'"),
                ("FieldValueRequired", "spec.tags[2].name", "Required value"),
            ]));
        // The same rules on update and patch: nothing is stored.
        let (code, _) = send(&client, "PATCH", &format!("{GADGETS}/n"), "application/merge-patch+json",
            json!({ "spec": { "mode": "Turbo" } })).await;
        assert_eq!(code, 422);
        let stored = fake.get_raw(&fake.resource_type_raw("test.sopsync.io", "v1", "gadgets"), "default", "n");
        assert_eq!(stored.expect("stored")["spec"]["mode"], "Safe");
    });
}

#[test]
fn crd_schema_status_writes_are_validated_and_pruned_against_the_status_schema() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let crds = "/apis/apiextensions.k8s.io/v1/customresourcedefinitions";
        assert_eq!(send(&client, "POST", crds, "application/json", gadget_crd()).await.0, 201);
        assert_eq!(send(&client, "POST", GADGETS, "application/json", gadget("g", json!({ "size": 1 }))).await.0, 201);
        let status = format!("{GADGETS}/g/status");
        let (code, body) = send(&client, "PATCH", &status, "application/merge-patch+json",
            json!({ "status": { "phase": "Bogus", "count": "many" } })).await;
        assert_eq!((code, body), (422, cr_invalid("Gadget", "test.sopsync.io", "g", &[
            ("FieldValueTypeInvalid", "status.count",
                "Invalid value: \"string\": status.count in body must be of type integer: \"string\""),
            ("FieldValueNotSupported", "status.phase",
                "Unsupported value: \"Bogus\": supported values: \"Ready\", \"Failed\""),
        ])));
        let (code, got) = send(&client, "PATCH", &format!("{status}?fieldManager=ctl&force=true"),
            "application/apply-patch+yaml",
            json!({ "apiVersion": "test.sopsync.io/v1", "kind": "Gadget", "metadata": { "name": "g" },
                    "status": { "phase": "Ready", "extra": 1 } })).await;
        assert_eq!(code, 200, "{got}");
        assert_eq!(got["status"], json!({ "phase": "Ready" }), "unknown status field pruned");
    });
}

#[test]
fn crd_schema_is_the_one_sopsync_crd_prints_and_refuses_what_it_forbids() {
    use sopsync::core::formats::{codec, Format, FormatOptions};
    let out = crate::support::run_ok(crate::support::sopsync().arg("crd"));
    let opts = FormatOptions::default();
    let docs = codec(Format::Yaml, &opts)
        .parse_plain(&out)
        .expect("`sopsync crd` prints YAML");
    let json_codec = codec(Format::Json, &opts);
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        for d in docs.iter().filter(|d| !d.entries.is_empty()) {
            let crd: Value = serde_json::from_slice(&json_codec.emit_plain(std::slice::from_ref(d)).expect("JSON"))
                .expect("JSON");
            let (code, body) = send(&client, "POST", "/apis/apiextensions.k8s.io/v1/customresourcedefinitions",
                "application/json", crd).await;
            assert_eq!(code, 201, "{body}");
        }
        let path = "/apis/sopsync.io/v1alpha1/namespaces/default/sopssecrets";
        let ss = |spec: Value| json!({ "apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
                                       "metadata": { "name": "s" }, "spec": spec });
        // `spec.encrypted` is optional since a SopsSecret may carry a generator instead; a
        // key Secret reference still requires its name.
        let (code, body) = send(&client, "POST", path, "application/json",
            ss(json!({ "encrypted": "x", "decryption": { "secretRef": {} } }))).await;
        assert_eq!((code, body), (422, cr_invalid("SopsSecret", "sopsync.io", "s",
            &[("FieldValueRequired", "spec.decryption.secretRef.name", "Required value")])));
        let (code, got) = send(&client, "POST", path, "application/json",
            ss(json!({ "encrypted": "x", "surprise": 1 }))).await;
        assert_eq!(code, 201, "{got}");
        assert_eq!(got["spec"], json!({ "encrypted": "x", "suspend": false }), "pruned and defaulted");
        let (code, body) = send(&client, "PATCH", &format!("{path}/s/status"), "application/merge-patch+json",
            json!({ "status": { "secrets": [{ "name": "a", "namespace": "default", "result": "Weird" }] } })).await;
        assert_eq!((code, body), (422, cr_invalid("SopsSecret", "sopsync.io", "s", &[("FieldValueNotSupported",
            "status.secrets[0].result",
            "Unsupported value: \"Weird\": supported values: \"Synced\", \"Conflict\", \"Denied\", \"Failed\"")])));
    });
}

// ----- workloads: the kinds rotation rolls, their generation, merge keys and rollouts -----

use crate::support::fake_apiserver::RolloutBehaviour;
use crate::support::workloads::{self, Kind, RolloutStatus, Workload};

/// Every workload kind through the real client, as `kind`'s typed API would see it.
async fn dynamic_api(client: &kube::Client, kind: Kind, ns: &str) -> Api<kube::api::DynamicObject> {
    let ar = kube::api::ApiResource {
        group: kind.group().into(),
        version: "v1".into(),
        api_version: format!("{}/v1", kind.group()),
        kind: kind.name().into(),
        plural: kind.plural().into(),
    };
    Api::namespaced_with(client.clone(), ns, &ar)
}

fn value_of(o: kube::api::DynamicObject) -> Value {
    serde_json::to_value(o).expect("serializes")
}

const KINDS: [Kind; 4] = [
    Kind::Deployment,
    Kind::StatefulSet,
    Kind::DaemonSet,
    Kind::CronJob,
];

#[test]
fn workloads_kinds_are_discoverable_with_their_status_subresource() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let (code, apps) = raw(&client, "GET", "/apis/apps/v1", None, None).await;
        assert_eq!(code, 200);
        let names: Vec<&str> = apps["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        for n in [
            "deployments",
            "deployments/status",
            "statefulsets",
            "statefulsets/status",
            "daemonsets",
            "daemonsets/status",
            "replicasets",
            "replicasets/status",
            "controllerrevisions",
        ] {
            assert!(names.contains(&n), "apps/v1 serves {n}: {names:?}");
        }
        assert!(
            !names.contains(&"controllerrevisions/status"),
            "a ControllerRevision has no status"
        );
        let (code, batch) = raw(&client, "GET", "/apis/batch/v1", None, None).await;
        assert_eq!(code, 200);
        let names: Vec<&str> = batch["resources"]
            .as_array()
            .expect("resources")
            .iter()
            .filter_map(|r| r["name"].as_str())
            .collect();
        assert!(
            names.contains(&"cronjobs") && names.contains(&"cronjobs/status"),
            "{names:?}"
        );
        // The typed client reads what the fake stores.
        use k8s_openapi::api::apps::v1::{ControllerRevision, DaemonSet, StatefulSet};
        use k8s_openapi::api::batch::v1::CronJob;
        for w in [
            Workload::statefulset("default", "s"),
            Workload::daemonset("default", "d"),
            Workload::cronjob("default", "c"),
        ] {
            w.put(&fake);
        }
        let sts: StatefulSet = Api::namespaced(client.clone(), "default")
            .get("s")
            .await
            .expect("statefulset");
        assert_eq!(sts.metadata.generation, Some(1));
        let ds: DaemonSet = Api::namespaced(client.clone(), "default")
            .get("d")
            .await
            .expect("daemonset");
        assert_eq!(ds.metadata.generation, Some(1));
        let cj: CronJob = Api::namespaced(client.clone(), "default")
            .get("c")
            .await
            .expect("cronjob");
        assert_eq!(cj.metadata.generation, Some(1));
        let cr: ControllerRevision = serde_json::from_value(
            json!({"metadata": {"name": "r"}, "revision": 1, "data": {"spec": {}}}),
        )
        .expect("cr");
        let cr = Api::<ControllerRevision>::namespaced(client.clone(), "default")
            .create(&PostParams::default(), &cr)
            .await
            .expect("create a ControllerRevision");
        assert_eq!(
            cr.metadata.generation, None,
            "no generation for a ControllerRevision"
        );
    });
}

#[test]
fn workloads_generation_follows_the_spec_and_only_a_deployments_annotations() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        for kind in KINDS {
            let api = dynamic_api(&client, kind, "default").await;
            let w = match kind {
                Kind::Deployment => Workload::deployment("default", "w"),
                Kind::StatefulSet => Workload::statefulset("default", "w"),
                Kind::DaemonSet => Workload::daemonset("default", "w"),
                Kind::CronJob => Workload::cronjob("default", "w"),
            };
            let obj: kube::api::DynamicObject = serde_json::from_value(w.manifest()).expect("manifest");
            let created = api.create(&PostParams::default(), &obj).await.expect("create");
            assert_eq!(created.metadata.generation, Some(1), "{kind:?}: generation starts at 1");
            let pp = PatchParams::default();
            let gen = |o: kube::api::DynamicObject| o.metadata.generation.expect("generation");
            // Labels are metadata: no strategy bumps generation for them.
            let g = gen(api.patch("w", &pp, &Patch::Merge(json!({"metadata": {"labels": {"team": "a"}}}))).await.expect("label"));
            assert_eq!(g, 1, "{kind:?}: a label change keeps the generation");
            // deployment/strategy.go: "annotation updates bump the generation because
            // annotations are copied from deployments to their replica sets"; the other
            // strategies compare the spec only.
            let g = gen(api.patch("w", &pp, &Patch::Merge(json!({"metadata": {"annotations": {"note": "x"}}}))).await.expect("annotation"));
            assert_eq!(g, if kind == Kind::Deployment { 2 } else { 1 }, "{kind:?}: annotation change");
            let g0 = g;
            let tpl: Value = match kind {
                Kind::CronJob => json!({"spec": {"jobTemplate": {"spec": {"template": {"metadata": {"annotations": {"a": "1"}}}}}}}),
                _ => json!({"spec": {"template": {"metadata": {"annotations": {"a": "1"}}}}}),
            };
            let g = gen(api.patch("w", &pp, &Patch::Merge(tpl)).await.expect("template"));
            assert_eq!(g, g0 + 1, "{kind:?}: a spec change bumps the generation");
            // The status subresource never bumps the generation.
            let g = gen(api.patch_status("w", &pp, &Patch::Merge(json!({"status": {"observedGeneration": 1}}))).await.expect("status"));
            assert_eq!(g, g0 + 1, "{kind:?}: a status write keeps the generation");
        }
    });
}

#[test]
fn workloads_deployment_status_writes_keep_annotations_but_not_labels_or_spec() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let api: Api<Deployment> = Api::namespaced(fake.client().await, "default");
        let d: Deployment = serde_json::from_value(Workload::deployment("default", "d").manifest()).expect("deployment");
        api.create(&PostParams::default(), &d).await.expect("create");
        // deploymentStatusStrategy.PrepareForUpdate resets spec and labels only: the
        // deployment controller records its revision annotation through UpdateStatus.
        let after = api
            .patch_status("d", &PatchParams::default(), &Patch::Merge(json!({
                "metadata": {"labels": {"x": "y"}, "annotations": {"deployment.kubernetes.io/revision": "7"}},
                "spec": {"replicas": 9}, "status": {"observedGeneration": 1}})))
            .await
            .expect("status write");
        assert_eq!(after.annotations().get("deployment.kubernetes.io/revision").map(String::as_str), Some("7"));
        assert!(!after.labels().contains_key("x"), "labels are reset by the status strategy");
        assert_eq!(after.spec.as_ref().and_then(|s| s.replicas), Some(2), "spec is reset by the status strategy");
        assert_eq!(after.metadata.generation, Some(1), "a status write never bumps the generation");
    });
}

#[test]
fn workloads_defaults_are_set_as_kube_apiserver_sets_them() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let mut got = BTreeMap::new();
        for kind in KINDS {
            let api = dynamic_api(&client, kind, "default").await;
            let mut m = Workload::deployment("default", "w").manifest();
            if kind != Kind::Deployment {
                m = match kind {
                    Kind::StatefulSet => Workload::statefulset("default", "w"),
                    Kind::DaemonSet => Workload::daemonset("default", "w"),
                    _ => Workload::cronjob("default", "w"),
                }
                .manifest();
            }
            let obj: kube::api::DynamicObject = serde_json::from_value(m).expect("manifest");
            got.insert(kind.name(), value_of(api.create(&PostParams::default(), &obj).await.expect("create")));
        }
        // pkg/apis/apps/v1/defaults.go, pkg/apis/batch/v1/defaults.go.
        let d = &got["Deployment"]["spec"];
        assert_eq!(d["strategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": "25%", "maxSurge": "25%"}}));
        assert_eq!((d["revisionHistoryLimit"].clone(), d["progressDeadlineSeconds"].clone()), (json!(10), json!(600)));
        let s = &got["StatefulSet"]["spec"];
        assert_eq!(s["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"partition": 0}}));
        assert_eq!((s["podManagementPolicy"].clone(), s["revisionHistoryLimit"].clone()), (json!("OrderedReady"), json!(10)));
        let ds = &got["DaemonSet"];
        assert_eq!(ds["spec"]["updateStrategy"], json!({"type": "RollingUpdate", "rollingUpdate": {"maxUnavailable": 1, "maxSurge": 0}}));
        assert_eq!(ds["spec"]["revisionHistoryLimit"], json!(10));
        // apps/v1 shows the internal templateGeneration as an annotation (conversion.go).
        assert_eq!(ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1");
        let c = &got["CronJob"]["spec"];
        assert_eq!((c["concurrencyPolicy"].clone(), c["suspend"].clone(), c["successfulJobsHistoryLimit"].clone(), c["failedJobsHistoryLimit"].clone()),
            (json!("Allow"), json!(false), json!(3), json!(1)));
        // An explicit value is kept; the DaemonSet's template generation follows its template only.
        let api = dynamic_api(&client, Kind::DaemonSet, "default").await;
        let pp = PatchParams::default();
        let ds = value_of(api.patch("w", &pp, &Patch::Merge(json!({"spec": {"revisionHistoryLimit": 3}}))).await.expect("patch"));
        assert_eq!(ds["spec"]["revisionHistoryLimit"], 3);
        assert_eq!(ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "1");
        let ds = value_of(api.patch("w", &pp, &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": {"a": "b"}}}}}))).await.expect("patch"));
        assert_eq!(ds["metadata"]["annotations"]["deprecated.daemonset.template.generation"], "2");
    });
}

#[test]
fn workloads_pod_template_lists_merge_by_key_at_each_kinds_template_path() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        for kind in KINDS {
            let w = match kind {
                Kind::Deployment => Workload::deployment("default", "w"),
                Kind::StatefulSet => Workload::statefulset("default", "w"),
                Kind::DaemonSet => Workload::daemonset("default", "w"),
                Kind::CronJob => Workload::cronjob("default", "w"),
            }
            .env_key("db", "password")
            .volume("tls");
            w.put(&fake);
            let api = dynamic_api(&client, kind, "default").await;
            // Strategic merge (core/v1 types.go patchMergeKey): containers, env, volumes,
            // volumeMounts and imagePullSecrets merge by their keys.
            let pod = json!({"containers": [{"name": "app", "env": [{"name": "EXTRA", "value": "1"}],
                                                "volumeMounts": [{"name": "more", "mountPath": "/more"}]}],
                             "volumes": [{"name": "more", "secret": {"secretName": "more"}}],
                             "imagePullSecrets": [{"name": "pull"}]});
            let mut patch = json!({});
            let ptr = kind.template_pointer();
            let mut at = &mut patch;
            for part in ptr.trim_start_matches('/').split('/') {
                at = &mut at[part];
            }
            *at = json!({"spec": pod});
            let merged = value_of(api.patch("w", &PatchParams::default(), &Patch::Strategic(patch)).await.expect("strategic merge"));
            let spec = &merged.pointer(ptr).expect("template")["spec"];
            let c = &spec["containers"];
            assert_eq!(c.as_array().map(Vec::len), Some(1), "{kind:?}: containers merge by name");
            assert_eq!(c[0]["image"], "registry.example/app:1", "{kind:?}");
            let env: Vec<&str> = c[0]["env"].as_array().expect("env").iter().filter_map(|e| e["name"].as_str()).collect();
            assert_eq!(env, ["DB_PASSWORD", "EXTRA"], "{kind:?}: env merges by name");
            assert_eq!(c[0]["volumeMounts"].as_array().map(Vec::len), Some(2), "{kind:?}: volumeMounts merge by mountPath");
            assert_eq!(spec["volumes"].as_array().map(Vec::len), Some(2), "{kind:?}: volumes merge by name");
            // Server-side apply: two managers own two env entries of the same container.
            let apply = |mgr: &str, var: &str| {
                let mut obj = json!({"apiVersion": format!("{}/v1", kind.group()), "kind": kind.name(), "metadata": {"name": "w"}});
                let mut at = &mut obj;
                for part in ptr.trim_start_matches('/').split('/') {
                    at = &mut at[part];
                }
                *at = json!({"spec": {"containers": [{"name": "app", "env": [{"name": var, "value": mgr}]}]}});
                (PatchParams::apply(mgr), Patch::Apply(obj))
            };
            let (p, a) = apply("one", "ONE");
            api.patch("w", &p, &a).await.expect("apply one");
            let (p, a) = apply("two", "TWO");
            let both = value_of(api.patch("w", &p, &a).await.expect("apply two"));
            let env: Vec<&str> = both.pointer(ptr).expect("template")["spec"]["containers"][0]["env"].as_array().expect("env").iter().filter_map(|e| e["name"].as_str()).collect();
            assert_eq!(env, ["DB_PASSWORD", "EXTRA", "ONE", "TWO"], "{kind:?}: SSA merges env by name");
            let two = both["metadata"]["managedFields"].as_array().expect("managedFields").iter().find(|m| m["manager"] == "two").expect("two's entry").clone();
            assert!(two["fieldsV1"].to_string().contains(r#"k:{\"name\":\"TWO\"}"#), "{kind:?}: {two}");
        }
    });
}

#[test]
fn workloads_pod_template_changes_are_counted_per_workload() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        for kind in KINDS {
            let w = match kind {
                Kind::Deployment => Workload::deployment("default", "w"),
                Kind::StatefulSet => Workload::statefulset("default", "w"),
                Kind::DaemonSet => Workload::daemonset("default", "w"),
                Kind::CronJob => Workload::cronjob("default", "w"),
            };
            w.put(&fake);
            assert_eq!(
                w.template_changes(&fake),
                0,
                "{kind:?}: creation is not a change"
            );
            let api = dynamic_api(&client, kind, "default").await;
            let pp = PatchParams::default();
            api.patch(
                "w",
                &pp,
                &Patch::Merge(json!({"metadata": {"annotations": {"x": "1"}}})),
            )
            .await
            .expect("annotation");
            assert_eq!(
                w.template_changes(&fake),
                0,
                "{kind:?}: metadata is not the template"
            );
            let restart = |v: &str| {
                let mut patch = json!({});
                let mut at = &mut patch;
                for part in kind.template_pointer().trim_start_matches('/').split('/') {
                    at = &mut at[part];
                }
                *at =
                    json!({"metadata": {"annotations": {"kubectl.kubernetes.io/restartedAt": v}}});
                Patch::Merge(patch)
            };
            api.patch("w", &pp, &restart("1")).await.expect("restart");
            api.patch("w", &pp, &restart("1"))
                .await
                .expect("same again");
            assert_eq!(
                w.template_changes(&fake),
                1,
                "{kind:?}: an unchanged template is no change"
            );
            api.patch("w", &pp, &restart("2"))
                .await
                .expect("restart again");
            assert_eq!(w.template_changes(&fake), 2, "{kind:?}");
        }
        assert_eq!(fake.template_changes("other", "Deployment", "w"), 0);
    });
}

#[test]
fn workloads_immutable_secrets_and_config_maps_refuse_data_changes_with_422() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let (code, _) = post_secret(&client, json!({"metadata": {"name": "v1"}, "immutable": true, "stringData": {"k": "one"}})).await;
        assert_eq!(code, 201);
        let path = "/api/v1/namespaces/default/secrets/v1";
        // ValidateSecretUpdate: `field.Forbidden(data, "field is immutable when `immutable` is set")`.
        let (code, body) = raw(&client, "PATCH", path, None, Some(json!({"stringData": {"k": "two"}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("Secret", "v1", "FieldValueForbidden", "data", "Forbidden: field is immutable when `immutable` is set"));
        let (code, body) = raw(&client, "PATCH", path, None, Some(json!({"immutable": false}))).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("Secret", "v1", "FieldValueForbidden", "immutable", "Forbidden: field is immutable when `immutable` is set"));
        // Both at once: one cause each, in the validator's order.
        let (code, body) = raw(&client, "PATCH", path, None, Some(json!({"immutable": null, "data": {"k": "dHdv"}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body["message"], "Secret \"v1\" is invalid: [immutable: Forbidden: field is immutable when `immutable` is set, data: Forbidden: field is immutable when `immutable` is set]");
        // stringData is folded into data before validation: restating the value is no change;
        // metadata may change.
        let (code, _) = raw(&client, "PATCH", path, None, Some(json!({"stringData": {"k": "one"}, "metadata": {"labels": {"a": "b"}}}))).await;
        assert_eq!(code, 200);
        let (code, _) = raw(&client, "DELETE", path, None, None).await;
        assert_eq!(code, 200, "an immutable Secret can be deleted");
        let (code, _) = raw(&client, "POST", "/api/v1/namespaces/default/configmaps", None, Some(json!({"metadata": {"name": "c"}, "immutable": true, "data": {"k": "v"}}))).await;
        assert_eq!(code, 201);
        let (code, body) = raw(&client, "PATCH", "/api/v1/namespaces/default/configmaps/c", None, Some(json!({"binaryData": {"b": "AA=="}}))).await;
        assert_eq!(code, 422);
        assert_eq!(body, invalid_status("ConfigMap", "c", "FieldValueForbidden", "binaryData", "Forbidden: field is immutable when `immutable` is set"));
    });
}

/// Every state of `name` a watcher sees until `kubectl rollout status` is done or fails:
/// kubectl's verdict on each, in order.
async fn rollout_as_watched(api: &Api<kube::api::DynamicObject>, name: &str) -> Vec<RolloutStatus> {
    let cfg = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let mut events = watcher(api.clone(), cfg).boxed();
    let mut seen = Vec::new();
    let deadline = Instant::now() + workloads::WAIT;
    loop {
        let ev = tokio::time::timeout_at(deadline.into(), events.next())
            .await
            .unwrap_or_else(|_| {
                panic!(
                    "the rollout of {name} did not end within {}s: {seen:?}",
                    workloads::WAIT.as_secs()
                )
            });
        if let Some(Ok(watcher::Event::Apply(o) | watcher::Event::InitApply(o))) = ev {
            let st = workloads::rollout_status(&value_of(o));
            let end = !matches!(st, RolloutStatus::Waiting(_));
            if seen.last() != Some(&st) {
                seen.push(st);
            }
            if end {
                return seen;
            }
        }
    }
}

fn template_patch(kind: Kind, annotations: Value) -> Patch<Value> {
    let mut patch = json!({});
    let mut at = &mut patch;
    for part in kind.template_pointer().trim_start_matches('/').split('/') {
        at = &mut at[part];
    }
    *at = json!({"metadata": {"annotations": annotations}});
    Patch::Merge(patch)
}

fn owned_by(fake: &FakeApiServer, plural: &str, owner: &Value) -> Vec<Value> {
    let rt = fake.resource_type_raw("apps", "v1", plural);
    let mut v: Vec<Value> = fake
        .list_raw(&rt, owner["metadata"]["namespace"].as_str())
        .into_iter()
        .filter(|o| {
            o["metadata"]["ownerReferences"][0]["uid"] == owner["metadata"]["uid"]
                && o["metadata"]["ownerReferences"][0]["controller"] == true
        })
        .collect();
    v.sort_by_key(|o| {
        o["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_string()
    });
    v
}

fn revision_of(rs: &Value) -> &str {
    rs["metadata"]["annotations"]["deployment.kubernetes.io/revision"]
        .as_str()
        .unwrap_or_default()
}

#[test]
fn workloads_deployment_rollout_makes_a_replicaset_and_advances_as_kubectl_rollout_status_reads_it()
{
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let api = dynamic_api(&client, Kind::Deployment, "default").await;
        let w = Workload::deployment("default", "web").replicas(3).env_from("db");
        let obj: kube::api::DynamicObject = serde_json::from_value(w.manifest()).expect("manifest");
        api.create(&PostParams::default(), &obj).await.expect("create");
        let first = rollout_as_watched(&api, "web").await;
        assert!(matches!(first.last(), Some(RolloutStatus::Done(m)) if m == "deployment \"web\" successfully rolled out"), "{first:?}");
        let d = w.get(&fake);
        // sync.go getNewReplicaSet: `<name>-<pod-template-hash>`, the hash as a label and
        // in the selector, revision 1, a controller ownerReference.
        let sets = owned_by(&fake, "replicasets", &d);
        assert_eq!(sets.len(), 1);
        let rs = &sets[0];
        let hash = rs["metadata"]["labels"]["pod-template-hash"].as_str().expect("pod-template-hash");
        assert_eq!(rs["metadata"]["name"], format!("web-{hash}"));
        assert!(hash.len() >= 8 && hash.bytes().all(|b| b"bcdfghjklmnpqrstvwxz2456789".contains(&b)), "{hash}");
        assert_eq!(rs["spec"]["selector"]["matchLabels"]["pod-template-hash"], hash);
        assert_eq!(rs["spec"]["template"]["metadata"]["labels"]["pod-template-hash"], hash);
        assert_eq!(revision_of(rs), "1");
        assert_eq!(rs["metadata"]["ownerReferences"][0]["kind"], "Deployment");
        assert_eq!((rs["spec"]["replicas"].clone(), rs["status"]["availableReplicas"].clone()), (json!(3), json!(3)));
        assert_eq!(revision_of(&d), "1", "the Deployment carries its newest revision");
        assert_eq!(d["status"]["observedGeneration"], d["metadata"]["generation"]);
        let progressing = d["status"]["conditions"].as_array().expect("conditions").iter().find(|c| c["type"] == "Progressing").expect("Progressing").clone();
        assert_eq!((progressing["status"].clone(), progressing["reason"].clone()), (json!("True"), json!("NewReplicaSetAvailable")));

        // A restart: a new ReplicaSet, the counters advancing one pod at a time.
        api.patch("web", &PatchParams::default(), &template_patch(Kind::Deployment, json!({"kubectl.kubernetes.io/restartedAt": "now"}))).await.expect("restart");
        let steps = rollout_as_watched(&api, "web").await;
        let waiting: Vec<&str> = steps.iter().filter_map(|s| match s { RolloutStatus::Waiting(m) => Some(m.as_str()), _ => None }).collect();
        assert!(waiting.iter().any(|m| m.contains("new replicas have been updated")), "{steps:?}");
        assert!(waiting.iter().any(|m| m.contains("old replicas are pending termination")), "{steps:?}");
        assert!(matches!(steps.last(), Some(RolloutStatus::Done(_))), "{steps:?}");
        let d = w.get(&fake);
        let sets = owned_by(&fake, "replicasets", &d);
        assert_eq!(sets.len(), 2, "the old ReplicaSet is kept in the history");
        let (new, old): (Vec<&Value>, Vec<&Value>) = sets.iter().partition(|r| revision_of(r) == "2");
        assert_eq!((new.len(), old.len()), (1, 1));
        assert_eq!(old[0]["spec"]["replicas"], 0, "scaled to zero");
        assert_eq!(new[0]["spec"]["replicas"], 3);
        assert_eq!(revision_of(&d), "2");
        assert_eq!((d["status"]["updatedReplicas"].clone(), d["status"]["replicas"].clone()), (json!(3), json!(3)));
        assert_eq!(w.template_changes(&fake), 1, "one rollout");
    });
}

#[test]
fn workloads_rollout_undo_reuses_the_old_replicaset_and_history_is_kept_to_the_limit() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let api = dynamic_api(&client, Kind::Deployment, "default").await;
        let w = Workload::deployment("default", "web")
            .replicas(1)
            .spec_field("revisionHistoryLimit", json!(2));
        w.put(&fake);
        workloads::wait_rolled_out(&fake, &w).await;
        let pp = PatchParams::default();
        api.patch(
            "web",
            &pp,
            &template_patch(Kind::Deployment, json!({"v": "2"})),
        )
        .await
        .expect("v2");
        workloads::wait_rolled_out(&fake, &w).await;
        // `kubectl rollout undo`: the template of revision 1 again.
        api.patch(
            "web",
            &pp,
            &Patch::Merge(json!({"spec": {"template": {"metadata": {"annotations": null}}}})),
        )
        .await
        .expect("undo");
        let d = workloads::wait_rolled_out(&fake, &w).await;
        let sets = owned_by(&fake, "replicasets", &d);
        assert_eq!(sets.len(), 2, "the undo made no new ReplicaSet");
        let undone = sets
            .iter()
            .find(|r| r["spec"]["replicas"] == 1)
            .expect("the active ReplicaSet");
        assert_eq!(revision_of(undone), "3", "it became the newest revision");
        assert_eq!(
            undone["metadata"]["annotations"]["deployment.kubernetes.io/revision-history"],
            "1"
        );
        assert_eq!(revision_of(&d), "3");
        // Three more templates: old ReplicaSets beyond revisionHistoryLimit (2) go, oldest first.
        for v in ["4", "5", "6"] {
            api.patch(
                "web",
                &pp,
                &template_patch(Kind::Deployment, json!({"v": v})),
            )
            .await
            .expect("change");
            workloads::wait_rolled_out(&fake, &w).await;
        }
        let d = w.get(&fake);
        let mut revs: Vec<String> = owned_by(&fake, "replicasets", &d)
            .iter()
            .map(|r| revision_of(r).to_string())
            .collect();
        revs.sort();
        assert_eq!(revs, ["4", "5", "6"], "the new ReplicaSet and two old ones");
        assert_eq!(w.template_changes(&fake), 5);
    });
}

#[test]
fn workloads_a_deployment_that_never_becomes_available_exceeds_its_progress_deadline() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        let api = dynamic_api(&client, Kind::Deployment, "default").await;
        let w =
            Workload::deployment("default", "web").spec_field("progressDeadlineSeconds", json!(1));
        w.put(&fake);
        workloads::wait_rolled_out(&fake, &w).await;
        fake.set_rollout_behaviour(
            "default",
            "Deployment",
            "web",
            RolloutBehaviour::NeverAvailable,
        );
        api.patch(
            "web",
            &PatchParams::default(),
            &template_patch(Kind::Deployment, json!({"v": "2"})),
        )
        .await
        .expect("change");
        let msg = workloads::wait_rollout_failed(&fake, &w).await;
        assert_eq!(msg, "deployment \"web\" exceeded its progress deadline");
        let d = w.get(&fake);
        let progressing = d["status"]["conditions"]
            .as_array()
            .expect("conditions")
            .iter()
            .find(|c| c["type"] == "Progressing")
            .expect("Progressing")
            .clone();
        assert_eq!(
            (progressing["status"].clone(), progressing["reason"].clone()),
            (json!("False"), json!("ProgressDeadlineExceeded"))
        );
        assert!(
            progressing["message"]
                .as_str()
                .is_some_and(|m| m.ends_with("has timed out progressing.")),
            "{progressing}"
        );
        // maxUnavailable 25% of 2 is 0: the old pods stay until new ones are available.
        assert_eq!(d["status"]["availableReplicas"], 2, "{d}");
        let sets = owned_by(&fake, "replicasets", &d);
        let old = sets
            .iter()
            .find(|r| revision_of(r) == "1")
            .expect("old ReplicaSet");
        assert_eq!(
            old["spec"]["replicas"], 2,
            "the old ReplicaSet keeps serving"
        );
        // Back to a template that works: the rollout completes again.
        fake.set_rollout_behaviour("default", "Deployment", "web", RolloutBehaviour::Completes);
        api.patch(
            "web",
            &PatchParams::default(),
            &template_patch(Kind::Deployment, json!({"v": "3"})),
        )
        .await
        .expect("fix");
        workloads::wait_rolled_out(&fake, &w).await;
    });
}

#[test]
fn workloads_statefulsets_and_daemonsets_roll_through_controller_revisions() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        for kind in [Kind::StatefulSet, Kind::DaemonSet] {
            let w = match kind {
                Kind::StatefulSet => Workload::statefulset("default", "w").replicas(3),
                _ => Workload::daemonset("default", "w"),
            }
            .spec_field("revisionHistoryLimit", json!(1))
            .volume("tls");
            w.put(&fake);
            let api = dynamic_api(&client, kind, "default").await;
            let first = rollout_as_watched(&api, "w").await;
            assert!(
                matches!(first.last(), Some(RolloutStatus::Done(_))),
                "{kind:?}: {first:?}"
            );
            let o = w.get(&fake);
            let revs = owned_by(&fake, "controllerrevisions", &o);
            assert_eq!(revs.len(), 1, "{kind:?}");
            let label = if kind == Kind::DaemonSet {
                "controller-revision-hash"
            } else {
                "controller.kubernetes.io/hash"
            };
            let hash = revs[0]["metadata"]["labels"][label]
                .as_str()
                .expect("hash label");
            assert_eq!(revs[0]["metadata"]["name"], format!("w-{hash}"), "{kind:?}");
            assert_eq!(revs[0]["revision"], 1);
            assert_eq!(revs[0]["data"]["spec"]["template"]["$patch"], "replace");
            api.patch(
                "w",
                &PatchParams::default(),
                &template_patch(kind, json!({"v": "2"})),
            )
            .await
            .expect("change");
            let steps = rollout_as_watched(&api, "w").await;
            assert!(
                steps.len() >= 2 && matches!(steps.last(), Some(RolloutStatus::Done(_))),
                "{kind:?}: {steps:?}"
            );
            let o = w.get(&fake);
            let revs = owned_by(&fake, "controllerrevisions", &o);
            assert_eq!(revs.len(), 2, "{kind:?}");
            let newest = revs
                .iter()
                .find(|r| r["revision"] == 2)
                .expect("revision 2");
            if kind == Kind::StatefulSet {
                assert_eq!(o["status"]["updateRevision"], newest["metadata"]["name"]);
                assert_eq!(o["status"]["currentRevision"], newest["metadata"]["name"]);
                assert_eq!(
                    (
                        o["status"]["updatedReplicas"].clone(),
                        o["status"]["readyReplicas"].clone()
                    ),
                    (json!(3), json!(3))
                );
            } else {
                let s = &o["status"];
                assert_eq!(
                    (
                        s["desiredNumberScheduled"].clone(),
                        s["updatedNumberScheduled"].clone(),
                        s["numberAvailable"].clone()
                    ),
                    (json!(2), json!(2), json!(2))
                );
            }
            // A third template: revisionHistoryLimit 1 keeps the live revision and one other.
            api.patch(
                "w",
                &PatchParams::default(),
                &template_patch(kind, json!({"v": "3"})),
            )
            .await
            .expect("change");
            workloads::wait_for(&fake, &w, "rolled out to revision 3", |o| {
                let done = matches!(workloads::rollout_status(o), RolloutStatus::Done(_));
                let revs = owned_by(&fake, "controllerrevisions", o);
                (done && revs.iter().any(|r| r["revision"] == 3) && revs.len() == 2).then_some(())
            })
            .await;
            assert_eq!(w.template_changes(&fake), 2, "{kind:?}");
        }
    });
}

#[test]
fn workloads_statefulset_and_daemonset_rollouts_that_never_become_available_stay_waiting() {
    let fake = FakeApiServer::start();
    fake.block_on(async {
        let client = fake.client().await;
        for kind in [Kind::StatefulSet, Kind::DaemonSet] {
            let w = match kind {
                Kind::StatefulSet => Workload::statefulset("default", "w").replicas(3),
                _ => Workload::daemonset("default", "w"),
            };
            w.put(&fake);
            workloads::wait_rolled_out(&fake, &w).await;
            fake.set_rollout_behaviour(
                "default",
                kind.name(),
                "w",
                RolloutBehaviour::NeverAvailable,
            );
            let api = dynamic_api(&client, kind, "default").await;
            api.patch(
                "w",
                &PatchParams::default(),
                &template_patch(kind, json!({"v": "2"})),
            )
            .await
            .expect("change");
            let updated = if kind == Kind::DaemonSet {
                "updatedNumberScheduled"
            } else {
                "updatedReplicas"
            };
            workloads::wait_for(&fake, &w, "one pod replaced", |o| {
                (o["status"]["observedGeneration"] == o["metadata"]["generation"]
                    && o["status"][updated] == 1)
                    .then_some(())
            })
            .await;
            // Many simulator rounds later the rollout is still held at the first pod.
            tokio::time::sleep(Duration::from_millis(400)).await;
            let o = w.get(&fake);
            assert_eq!(o["status"][updated], 1, "{kind:?}: {o}");
            assert!(
                matches!(workloads::rollout_status(&o), RolloutStatus::Waiting(_)),
                "{kind:?}: {o}"
            );
            if kind == Kind::StatefulSet {
                assert_ne!(
                    o["status"]["currentRevision"], o["status"]["updateRevision"],
                    "the old revision stays current"
                );
            }
        }
    });
}
