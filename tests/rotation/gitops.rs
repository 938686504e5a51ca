//! GitOps tools own workload specs (docs/rotation.md, "GitOps tools"): the recipes are
//! tested against what the real controller writes in the fake API server.
//!
//! - Argo CD: the `ignoreDifferences` entries the doc gives (JSON pointers, and
//!   `managedFieldsManagers`) cover exactly the field sopsync changes on a Deployment
//!   and a CronJob, and nothing else; the doc's Application sets
//!   `RespectIgnoreDifferences=true`.
//! - Flux: a Deployment applied by server-side apply as `kustomize-controller` (forced,
//!   as Flux applies), restarted by sopsync, then re-applied unchanged: the annotation
//!   survives (it belongs to another field manager) and the re-apply rolls nothing.

use kube::api::{Api, DynamicObject, Patch, PatchParams};
use serde_json::{json, Value};

use crate::support::cluster::{db, wait_applied, wait_until, Cluster, ControllerProcess, CANARY};
use crate::support::workloads::{self, Kind, Workload};

const NS: &str = "team-a";
/// The pod-template annotation the InPlace strategy writes (src/controller/rotation/workloads.rs).
const ANNOTATION: &str = "sopsync.io/secrets-digest";
/// Its field manager.
const MANAGER: &str = "sopsync-rotation";

/// A cluster whose source `apps` feeds Secret `db`, with these workloads, and the
/// controller restarting them (no debounce).
fn cluster_with(ws: &[&Workload]) -> (Cluster, ControllerProcess) {
    let c = Cluster::new(&[("apps/db.yaml", &db("one"))]);
    c.key_secret(NS);
    for w in ws {
        w.put(&c.fake);
    }
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "path": "apps", "interval": "1s"}),
    );
    let args = ["--workload-restarts", "--rotation-debounce", "0s"];
    workloads::grant_restarts(&c.fake, &args, NS);
    let ctl = c.controller("c1", &args);
    wait_applied(&c, &ctl, NS, "apps", &c.head());
    (c, ctl)
}

/// Changes db's value in Git and waits until every workload in `ws` was restarted.
fn change_value_and_wait_restarted(c: &Cluster, ctl: &ControllerProcess, ws: &[&Workload]) {
    let before: Vec<usize> = ws.iter().map(|w| w.template_changes(&c.fake)).collect();
    let rev = c.commit(&[("apps/db.yaml", Some(&db("two")))]);
    wait_applied(c, ctl, NS, "apps", &rev);
    wait_until("the workloads restarted", ctl, || {
        ws.iter()
            .zip(&before)
            .all(|(w, b)| w.template_changes(&c.fake) > *b)
    });
}

/// The YAML blocks of docs/rotation.md's "GitOps tools" section, as JSON.
fn doc_yaml_blocks() -> Vec<Value> {
    use sopsync::core::formats::{codec, Format, FormatOptions};
    let doc = std::fs::read_to_string(crate::support::project_root().join("docs/rotation.md"))
        .expect("docs/rotation.md");
    let section = doc
        .split("\n## ")
        .find(|s| s.starts_with("GitOps tools"))
        .expect("docs/rotation.md has a `## GitOps tools` section");
    let opts = FormatOptions::default();
    let mut out = Vec::new();
    for block in section.split("```yaml\n").skip(1) {
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

/// The leaf field paths (JSON pointers) a managedFields entry's `fieldsV1` owns.
fn owned_pointers(fields: &Value, at: String, out: &mut Vec<String>) {
    let Some(map) = fields.as_object() else {
        return;
    };
    let children: Vec<_> = map.iter().filter(|(k, _)| k.as_str() != ".").collect();
    if children.is_empty() {
        out.push(at);
        return;
    }
    for (k, v) in children {
        let name = k.strip_prefix("f:").unwrap_or(k);
        let escaped = name.replace('~', "~0").replace('/', "~1");
        owned_pointers(v, format!("{at}/{escaped}"), out);
    }
}

#[test]
fn argo_cd_ignore_differences_in_the_docs_cover_exactly_the_field_sopsync_writes() {
    let deploy = Workload::deployment(NS, "web")
        .env_key("db", "password")
        .annotate("sopsync.io/restart-on-change", "true");
    let cron = Workload::cronjob(NS, "report")
        .env_from("db")
        .annotate("sopsync.io/restart-on-change", "true");
    let (c, ctl) = cluster_with(&[&deploy, &cron]);
    change_value_and_wait_restarted(&c, &ctl, &[&deploy, &cron]);

    let blocks = doc_yaml_blocks();
    let app = blocks
        .iter()
        .find(|b| b["kind"] == "Application")
        .expect("the doc shows an Argo CD Application");
    let sync_options = app["spec"]["syncPolicy"]["syncOptions"].to_string();
    assert!(
        sync_options.contains("RespectIgnoreDifferences=true"),
        "the Application respects ignoreDifferences when syncing: {sync_options}"
    );
    let entries = app["spec"]["ignoreDifferences"]
        .as_array()
        .expect("spec.ignoreDifferences");
    for w in [&deploy, &cron] {
        let obj = w.get(&c.fake);
        let digest = workloads::template_annotations(&obj, w.kind)[ANNOTATION]
            .as_str()
            .unwrap_or_else(|| panic!("{} has no {ANNOTATION}: {obj}", w.name))
            .to_string();
        // What sopsync owns on the workload: exactly one field, the annotation.
        let mine = obj["metadata"]["managedFields"]
            .as_array()
            .expect("managedFields")
            .iter()
            .filter(|m| m["manager"] == MANAGER)
            .collect::<Vec<_>>();
        assert_eq!(
            mine.len(),
            1,
            "{}: one entry of {MANAGER}: {mine:?}",
            w.name
        );
        let mut owned = Vec::new();
        owned_pointers(&mine[0]["fieldsV1"], String::new(), &mut owned);
        let field = format!(
            "{}/metadata/annotations/sopsync.io~1secrets-digest",
            w.kind.template_pointer()
        );
        assert_eq!(
            owned,
            std::slice::from_ref(&field),
            "{}: {MANAGER} owns only the annotation",
            w.name
        );
        // The doc's entry for this kind: its JSON pointers are exactly that field, and it
        // names the field manager (managedFieldsManagers ignores what it owns).
        let group = if w.kind == Kind::CronJob {
            "batch"
        } else {
            "apps"
        };
        let entry = entries
            .iter()
            .find(|e| e["kind"] == w.kind.name() && e["group"] == group)
            .unwrap_or_else(|| panic!("no ignoreDifferences entry for {group}/{}", w.kind.name()));
        let pointers: Vec<&str> = entry["jsonPointers"]
            .as_array()
            .expect("jsonPointers")
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert_eq!(pointers, [field.as_str()], "{}", w.name);
        assert_eq!(
            obj.pointer(pointers[0]).and_then(Value::as_str),
            Some(digest.as_str()),
            "the doc's pointer finds the digest sopsync wrote on {}",
            w.name
        );
        assert_eq!(
            entry["managedFieldsManagers"],
            json!([MANAGER]),
            "{}",
            w.name
        );
        assert!(!digest.contains(CANARY));
    }
    ctl.assert_no_canary();
}

#[test]
fn flux_reapply_keeps_the_restart_annotation_and_rolls_nothing_more() {
    // The Deployment is Flux's: applied by server-side apply as kustomize-controller,
    // forced, as Flux's kustomize-controller applies.
    let web = Workload::deployment(NS, "web")
        .env_from("db")
        .annotate("sopsync.io/restart-on-change", "true");
    let c = Cluster::new(&[("apps/db.yaml", &db("one"))]);
    c.key_secret(NS);
    c.fake.ensure_namespace(NS);
    let flux = PatchParams::apply("kustomize-controller").force();
    let apply = || {
        c.fake.block_on(async {
            let ar = kube::api::ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
            let api: Api<DynamicObject> = Api::namespaced_with(c.fake.client().await, NS, &ar);
            api.patch("web", &flux, &Patch::Apply(web.manifest()))
                .await
                .expect("Flux's apply")
        })
    };
    apply();
    c.fake.block_on(workloads::wait_rolled_out(&c.fake, &web));
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "path": "apps", "interval": "1s"}),
    );
    let args = ["--workload-restarts", "--rotation-debounce", "0s"];
    workloads::grant_restarts(&c.fake, &args, NS);
    let ctl = c.controller("c1", &args);
    wait_applied(&c, &ctl, NS, "apps", &c.head());
    change_value_and_wait_restarted(&c, &ctl, &[&web]);
    let restarted = c.fake.block_on(workloads::wait_rolled_out(&c.fake, &web));
    let digest = workloads::template_annotations(&restarted, Kind::Deployment)[ANNOTATION].clone();
    assert!(
        digest.is_string(),
        "sopsync set its annotation: {restarted}"
    );
    let rollouts = web.template_changes(&c.fake);

    // Flux reconciles: the same manifest, applied again with force.
    let after = serde_json::to_value(apply()).expect("JSON");
    assert_eq!(
        workloads::template_annotations(&after, Kind::Deployment)[ANNOTATION],
        digest,
        "the annotation survives Flux's apply: it belongs to {MANAGER}"
    );
    assert_eq!(
        web.template_changes(&c.fake),
        rollouts,
        "the re-apply rolled nothing"
    );
    assert_eq!(
        after["metadata"]["generation"], restarted["metadata"]["generation"],
        "the re-apply changed no spec"
    );
    let managers: Vec<&str> = after["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter_map(|m| m["manager"].as_str())
        .collect();
    assert!(
        managers.contains(&"kustomize-controller") && managers.contains(&MANAGER),
        "{managers:?}"
    );
    ctl.assert_no_canary();
}

/// The JSON pointers of every value a jq path expression of the doc's form selects:
/// `.key.key[]?.key` (object keys, and `[]?` over the items of an array; a missing
/// key selects nothing, as `?` makes jq do). Enough for the doc's expressions, checked
/// here so that a form it does not read fails instead of selecting nothing.
fn jq_pointers(obj: &Value, expr: &str) -> Vec<String> {
    let path = expr
        .strip_prefix('.')
        .unwrap_or_else(|| panic!("a jq path starts with '.': {expr}"));
    let mut at: Vec<(String, &Value)> = vec![(String::new(), obj)];
    for segment in path.split('.') {
        let (key, each) = match segment.strip_suffix("[]?") {
            Some(k) => (k, true),
            None => (segment, false),
        };
        assert!(
            !key.is_empty() && key.chars().all(|c| c.is_ascii_alphanumeric()),
            "a jq path form this test does not read: {expr}"
        );
        let mut next = Vec::new();
        for (p, v) in at {
            let Some(child) = v.get(key) else { continue };
            let p = format!("{p}/{key}");
            if each {
                for (i, item) in child.as_array().into_iter().flatten().enumerate() {
                    next.push((format!("{p}/{i}"), item));
                }
            } else {
                next.push((p, child));
            }
        }
        at = next;
    }
    at.into_iter().map(|(p, _)| p).collect()
}

/// The leaves (JSON pointers) where `a` and `b` differ.
fn changed_leaves(a: &Value, b: &Value, at: String, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for k in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let null = Value::Null;
                let p = format!("{at}/{}", k.replace('~', "~0").replace('/', "~1"));
                changed_leaves(x.get(k).unwrap_or(&null), y.get(k).unwrap_or(&null), p, out);
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (u, v)) in x.iter().zip(y).enumerate() {
                changed_leaves(u, v, format!("{at}/{i}"), out);
            }
        }
        _ if a != b => out.push(at),
        _ => {}
    }
}

/// A `fieldsV1` pointer (`/f:spec/.../k:{"name":"app"}/...`, as [`owned_pointers`]
/// writes it without the `f:`) resolved against `obj` to index pointers.
fn resolve_owned(obj: &Value, owned: &str) -> String {
    let mut at = obj;
    let mut out = String::new();
    for seg in owned.split('/').skip(1) {
        if let Some(key) = seg.strip_prefix("k:") {
            let key: Value = serde_json::from_str(key).expect("a k: key is JSON");
            let items = at
                .as_array()
                .unwrap_or_else(|| panic!("{owned}: not a list"));
            let (i, item) = items
                .iter()
                .enumerate()
                .find(|(_, it)| key.as_object().unwrap().iter().all(|(k, v)| &it[k] == v))
                .unwrap_or_else(|| panic!("{owned}: no item {key}"));
            out.push_str(&format!("/{i}"));
            at = item;
        } else {
            let name = seg.replace("~1", "/").replace("~0", "~");
            at = &at[name.as_str()];
            out.push('/');
            out.push_str(seg);
        }
    }
    out
}

/// Deployment `api` of the Versioned tests as its manifest in Git says it (every
/// reference names `db`), as the API server stores it.
fn api_manifest() -> Value {
    let scratch = Cluster::new(&[]);
    super::versioned::deployment_using(&scratch, "api", "db", 10);
    let deployments = scratch.fake.resource_type_raw("apps", "v1", "deployments");
    let mut obj = scratch
        .fake
        .get_raw(&deployments, super::versioned::NS, "api")
        .expect("the manifest");
    let meta = obj["metadata"].as_object_mut().expect("metadata");
    meta.retain(|k, _| k == "name" || k == "namespace");
    obj.as_object_mut().expect("object").remove("status");
    obj
}

/// The Secret names Deployment `api` references.
fn api_refs(c: &Cluster) -> std::collections::BTreeSet<String> {
    let deployments = c.fake.resource_type_raw("apps", "v1", "deployments");
    let d = c
        .fake
        .get_raw(&deployments, super::versioned::NS, "api")
        .expect("the Deployment");
    sopsync::controller::rotation::versioned::referenced_by("Deployment", &d)
}

#[test]
fn flux_reapply_under_versioned_takes_the_references_back_and_keep_plain_secret_keeps_db_current() {
    // docs/rotation.md, Flux, "Under Versioned": Flux owns the references its manifest
    // names, so its forced apply sets a switched reference back to `db`; with
    // keepPlainSecret, `db` itself holds the current values, so the reverted workload
    // still reads them; and sopsync switches it again on its next sync.
    let ns = super::versioned::NS;
    let (c, ctl, _) = super::versioned::versioned(json!({"keepPlainSecret": true}));
    let versioned = |refs: &std::collections::BTreeSet<String>| {
        refs.len() == 1 && refs.iter().all(|r| r.starts_with("db-"))
    };
    wait_until("api references a version of db", &ctl, || {
        versioned(&api_refs(&c))
    });
    let flux = PatchParams::apply("kustomize-controller").force();
    let manifest: DynamicObject = serde_json::from_value(api_manifest()).expect("manifest");
    c.fake.block_on(async {
        let ar = kube::api::ApiResource::erase::<k8s_openapi::api::apps::v1::Deployment>(&());
        let api: Api<DynamicObject> = Api::namespaced_with(c.fake.client().await, ns, &ar);
        api.patch("api", &flux, &Patch::Apply(manifest))
            .await
            .expect("Flux's apply")
    });
    assert_eq!(
        api_refs(&c),
        std::collections::BTreeSet::from(["db".to_string()]),
        "Flux's forced apply took the references back"
    );
    assert_eq!(
        c.data(ns, "db")
            .expect("the plain Secret db")
            .get("password"),
        Some(&format!("{CANARY}-one")),
        "keepPlainSecret: db holds the current value"
    );
    wait_until("sopsync switched api to a version again", &ctl, || {
        versioned(&api_refs(&c))
    });
    ctl.assert_no_canary();
}

#[test]
fn argo_cd_versioned_entry_in_the_docs_covers_exactly_the_references_sopsync_switches() {
    // A Deployment using db every way a pod can (volume, projected, secretKeyRef,
    // envFrom of an init container), switched by the Versioned strategy.
    let (c, ctl, _) = super::versioned::versioned(json!({}));
    let deployments = c.fake.resource_type_raw("apps", "v1", "deployments");
    let live = c
        .fake
        .get_raw(&deployments, super::versioned::NS, "api")
        .expect("the Deployment");
    // What Git says (the manifest as put, naming `db`) against what runs: the leaves
    // sopsync changed.
    let manifest = api_manifest();
    let mut changed = Vec::new();
    changed_leaves(
        &manifest["spec"]["template"],
        &live["spec"]["template"],
        "/spec/template".into(),
        &mut changed,
    );
    changed.sort();
    assert_eq!(
        changed.len(),
        4,
        "the four references to db are switched: {changed:?}"
    );

    // The doc's Versioned entry for a Deployment.
    let entry = doc_yaml_blocks()
        .into_iter()
        .flat_map(|b| {
            b["ignoreDifferences"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .find(|e| e["kind"] == "Deployment" && e.get("jqPathExpressions").is_some())
        .expect("the doc's Versioned ignoreDifferences entry for a Deployment");
    let mut selected: Vec<String> = entry["jqPathExpressions"]
        .as_array()
        .expect("jqPathExpressions")
        .iter()
        .filter_map(Value::as_str)
        .flat_map(|e| jq_pointers(&live, e))
        .collect();
    selected.sort();
    assert_eq!(
        selected, changed,
        "the doc's jq paths select exactly the references sopsync switched"
    );
    // managedFieldsManagers alone is enough too: sopsync-rotation owns exactly those.
    assert_eq!(entry["managedFieldsManagers"], json!([MANAGER]));
    let mine: Vec<&Value> = live["metadata"]["managedFields"]
        .as_array()
        .expect("managedFields")
        .iter()
        .filter(|m| m["manager"] == MANAGER)
        .collect();
    let mut owned = Vec::new();
    for m in &mine {
        owned_pointers(&m["fieldsV1"], String::new(), &mut owned);
    }
    let owned: Vec<String> = owned.iter().map(|p| resolve_owned(&live, p)).collect();
    // A reference inside an atomic list (`envFrom`, projected `sources`: no list-map
    // keys in Kubernetes' schema) is owned as the whole list.
    let under = |leaf: &str, field: &str| leaf == field || leaf.starts_with(&format!("{field}/"));
    for leaf in &changed {
        assert!(
            owned.iter().any(|f| under(leaf, f)),
            "{MANAGER} does not own {leaf}: {owned:?}"
        );
    }
    for field in &owned {
        assert!(
            changed.iter().any(|leaf| under(leaf, field)),
            "{MANAGER} owns {field}, which holds no switched reference: {owned:?}"
        );
    }
    ctl.assert_no_canary();
}
