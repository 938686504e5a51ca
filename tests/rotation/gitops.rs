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
