//! The Argo CD plugin (issue 13), run as argocd-cmp-server runs it: in a copy of the
//! app directory, with the CMP environment, stdin closed, no HOME and no terminal.

use crate::helm::{age_key_file, files_holding, helm_shim, sops_encrypt_yaml, write_chart, CANARY};
use crate::support::cluster::{condition, ready_is};
use crate::support::{run_with_deadline, sopsync, tempdir};
use base64::Engine;
use sha2::Digest;
use sopsync::core::formats::{codec, Format, FormatOptions};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

const CONFIGMAP: &str =
    "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: plain\ndata:\n  a: b\n";

fn secret_manifest() -> String {
    format!("apiVersion: v1\nkind: Secret\nmetadata:\n    name: db\n    namespace: prod\ntype: Opaque\nstringData:\n    password: {CANARY}\n")
}

/// A SOPS Secret manifest with only data/stringData encrypted (names stay readable).
fn encrypt_secret(out: &Path) {
    let scratch = tempdir();
    let src = scratch.path().join("s.yaml");
    std::fs::write(&src, secret_manifest()).unwrap();
    let recipient =
        std::fs::read_to_string(crate::support::project_root().join("keys-example/age.pub"))
            .unwrap();
    let bytes = crate::support::run_ok(
        crate::support::sops()
            .args([
                "encrypt",
                "--encrypted-regex",
                "^(data|stringData)$",
                "--age",
                recipient.trim(),
            ])
            .arg(&src),
    );
    std::fs::write(out, bytes).unwrap();
}

/// An app directory as argocd-cmp-server hands it to a plugin, with its own TMPDIR and
/// a `bin` directory first on PATH holding `sopsync` (the binary under test).
pub struct App {
    _root: tempfile::TempDir,
    /// The app's source directory (the plugin's working directory).
    pub dir: PathBuf,
    tmp: PathBuf,
    bin: PathBuf,
}

/// An empty app directory.
fn empty_app() -> App {
    let root = tempdir();
    let dir = root.path().join("app");
    let tmp = root.path().join("tmp");
    let bin = root.path().join("bin");
    for d in [&dir, &tmp, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_sopsync"), bin.join("sopsync")).unwrap();
    App {
        _root: root,
        dir,
        tmp,
        bin,
    }
}

/// A plain ConfigMap and a SOPS Secret manifest (keys-example recipient).
pub fn app() -> App {
    let app = empty_app();
    std::fs::write(app.dir.join("cm.yaml"), CONFIGMAP).unwrap();
    encrypt_secret(&app.dir.join("db.enc.yaml"));
    app
}

/// The environment argocd-cmp-server gives a plugin command (the CMP build
/// environment, the mode in `ARGOCD_ENV_SOPSYNC_MODE`, the sidecar's age key), run in
/// the app directory with nothing inherited.
pub fn as_cmp_server_runs<'c>(c: &'c mut Command, app: &App, mode: &str) -> &'c mut Command {
    let path = format!("{}:/usr/bin:/bin", app.bin.display());
    c.env_clear()
        .current_dir(&app.dir)
        .env("PATH", path)
        .env("TMPDIR", &app.tmp)
        .env("ARGOCD_APP_NAME", "web")
        .env("ARGOCD_APP_NAMESPACE", "prod")
        .env("ARGOCD_APP_REVISION", "0123abc")
        .env("ARGOCD_APP_SOURCE_REPO_URL", "https://git.example/apps.git")
        .env("KUBE_VERSION", "1.31.2")
        .env("KUBE_API_VERSIONS", "v1,apps/v1,sopsync.io/v1alpha1")
        .env("ARGOCD_ENV_SOPSYNC_MODE", mode)
        .env("SOPS_AGE_KEY_FILE", age_key_file())
        .env("SOPSYNC_HELM", helm_shim(&app.bin))
}

/// `sopsync argocd generate` as the CMP server runs it.
fn generate(app: &App, mode: &str, extra: &[(&str, &str)]) -> std::process::Output {
    let mut c = sopsync();
    as_cmp_server_runs(&mut c, app, mode).args(["argocd", "generate"]);
    for (k, v) in extra {
        c.env(k, v);
    }
    run_with_deadline(&mut c, Duration::from_secs(60))
}

fn ok_stdout(out: &std::process::Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout.clone()).unwrap()
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[test]
fn safe_mode_carries_the_exact_bytes_sops_wrote_and_no_plaintext_or_digest_of_it() {
    let app = app();
    let out = ok_stdout(&generate(&app, "safe", &[]));
    assert!(
        out.starts_with(CONFIGMAP),
        "plain manifest unchanged: {out}"
    );
    let docs = codec(Format::Yaml, &FormatOptions::default())
        .parse_plain(out.as_bytes())
        .expect("YAML");
    let sops_secret = docs
        .iter()
        .find(|d| d.get("kind").and_then(|k| k.as_str()) == Some("SopsSecret"))
        .expect("a SopsSecret");
    let meta = sops_secret
        .get("metadata")
        .and_then(|m| m.as_map())
        .unwrap();
    assert_eq!(meta.get("name").and_then(|v| v.as_str()), Some("db"));
    assert_eq!(meta.get("namespace").and_then(|v| v.as_str()), Some("prod"));
    let encrypted = sops_secret
        .get("spec")
        .and_then(|s| s.as_map())
        .and_then(|s| s.get("encrypted"))
        .and_then(|v| v.as_str())
        .unwrap();
    assert_eq!(
        encrypted.as_bytes(),
        std::fs::read(app.dir.join("db.enc.yaml")).unwrap()
    );
    // No plaintext, no base64 of it, no unkeyed digest of it or of the Secret's data.
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY);
    let digest = hex(&sha2::Sha256::digest(CANARY.as_bytes()));
    for needle in [
        CANARY,
        b64.as_str(),
        digest.as_str(),
        "sha256:",
        "content-hash",
    ] {
        assert!(!out.contains(needle), "safe output holds {needle}");
    }
    assert_eq!(files_holding(&app.dir, CANARY), Vec::<String>::new());
    assert_eq!(files_holding(&app.tmp, CANARY), Vec::<String>::new());
}

#[test]
fn secrets_mode_renders_the_secret_with_its_decrypted_data() {
    let app = app();
    let out = ok_stdout(&generate(&app, "secrets", &[]));
    assert!(out.starts_with(CONFIGMAP), "{out}");
    let b64 = base64::engine::general_purpose::STANDARD.encode(CANARY);
    assert!(out.contains(&format!("password: {b64}")), "{out}");
    assert!(
        out.contains("name: db") && out.contains("namespace: prod"),
        "{out}"
    );
}

#[test]
fn a_tampered_file_gives_a_nonzero_exit_one_stderr_line_and_empty_stdout_in_every_mode() {
    for mode in ["safe", "secrets"] {
        let app = app();
        let path = app.dir.join("db.enc.yaml");
        let text = std::fs::read_to_string(&path).unwrap();
        let at = text.find("ENC[AES256_GCM,data:").unwrap() + "ENC[AES256_GCM,data:".len();
        let mut bytes = text.into_bytes();
        bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
        std::fs::write(&path, bytes).unwrap();
        let out = generate(&app, mode, &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{mode}");
        assert!(out.stdout.is_empty(), "{mode}: stdout must be empty");
        assert_eq!(stderr.lines().count(), 1, "{mode}: {stderr}");
        assert!(
            stderr.starts_with("sopsync argocd: db.enc.yaml: "),
            "{mode}: {stderr}"
        );
    }
}

#[test]
fn safe_mode_refuses_a_sops_values_file_and_points_to_existing_secret() {
    let app = app();
    write_chart(&app.dir);
    sops_encrypt_yaml(
        &format!("db:\n    password: {CANARY}\n"),
        &app.dir.join("secrets.yaml"),
    );
    let out = generate(&app, "safe", &[("PARAM_VALUEFILES", "secrets.yaml")]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty());
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.contains("secrets.yaml: a SOPS values file would put its plaintext into Argo CD"),
        "{stderr}"
    );
    assert!(stderr.contains("existingSecret"), "{stderr}");
}

#[test]
fn helm_mode_renders_the_chart_with_decrypted_values_and_argo_cds_capabilities() {
    let app = app();
    write_chart(&app.dir);
    sops_encrypt_yaml(
        &format!("db:\n    password: {CANARY}\n"),
        &app.dir.join("secrets.yaml"),
    );
    let params = r#"[{"name":"valueFiles","array":["secrets.yaml"]}]"#;
    let out = ok_stdout(&generate(
        &app,
        "helm",
        &[("ARGOCD_APP_PARAMETERS", params)],
    ));
    assert!(out.contains(&format!("password: \"{CANARY}\"")), "{out}");
    assert!(
        out.contains("name: web") && out.contains("namespace: prod"),
        "release name and -n: {out}"
    );
    assert!(out.contains("kube: \"v1.31.2\""), "--kube-version: {out}");
    assert_eq!(files_holding(&app.dir, CANARY), Vec::<String>::new());
    assert_eq!(files_holding(&app.tmp, CANARY), Vec::<String>::new());
}

/// Every document of a YAML stream as JSON (read with our own codec).
pub fn documents(yaml: &str) -> Vec<serde_json::Value> {
    let opts = FormatOptions::default();
    let json = codec(Format::Json, &opts);
    codec(Format::Yaml, &opts)
        .parse_plain(yaml.as_bytes())
        .expect("YAML")
        .iter()
        .filter(|d| !d.entries.is_empty())
        .map(|d| {
            let bytes = json.emit_plain(std::slice::from_ref(d)).expect("as JSON");
            serde_json::from_slice(&bytes).expect("JSON")
        })
        .collect()
}

/// (namespace, name) -> (type, data as base64) of a Secret.
type SecretView = std::collections::BTreeMap<(String, String), (String, BTreeMap<String, String>)>;

fn rendered_secrets(docs: &[serde_json::Value]) -> SecretView {
    docs.iter()
        .filter(|d| d["kind"] == "Secret")
        .map(|d| {
            let data = d["data"]
                .as_object()
                .expect("a rendered Secret has data")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("base64").to_string()))
                .collect();
            (
                (
                    d["metadata"]["namespace"]
                        .as_str()
                        .expect("namespace")
                        .into(),
                    d["metadata"]["name"].as_str().expect("name").into(),
                ),
                (d["type"].as_str().unwrap_or("Opaque").to_string(), data),
            )
        })
        .collect()
}

/// Issue 13: `safe` mode hands Argo CD only ciphertext, and loses nothing on the way:
/// its SopsSecret objects, applied to a cluster (the fake API server) and reconciled by
/// the real controller, yield Secrets with the same name, namespace, type and data as
/// `secrets` mode renders for the same app.
#[test]
fn safe_mode_sops_secrets_reconciled_by_the_controller_equal_what_secrets_mode_renders() {
    use crate::support::cluster::{wait_until, Cluster};
    let cluster = Cluster::new(&[]);
    cluster.key_secret("prod");
    cluster.key_secret("payments");
    let app = empty_app();
    std::fs::write(app.dir.join("cm.yaml"), CONFIGMAP).unwrap();
    // A typed Secret with its own namespace (not the app's) and stringData, and an
    // Opaque one with base64 data that takes the app's namespace (prod).
    let db = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: db\n    namespace: payments\n\
         type: kubernetes.io/basic-auth\nstringData:\n    username: app\n    password: {CANARY}-db\n"
    );
    let token = base64::engine::general_purpose::STANDARD.encode(format!("{CANARY}-api"));
    let api = format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: api\ntype: Opaque\ndata:\n    token: {token}\n"
    );
    std::fs::write(app.dir.join("db.enc.yaml"), cluster.sops_encrypt(&db)).unwrap();
    std::fs::write(app.dir.join("api.enc.yaml"), cluster.sops_encrypt(&api)).unwrap();
    let key = cluster.key_file.to_str().expect("utf-8 path");
    let sidecar_key = [("SOPS_AGE_KEY_FILE", key)];

    let expected = rendered_secrets(&documents(&ok_stdout(&generate(
        &app,
        "secrets",
        &sidecar_key,
    ))));
    assert_eq!(expected.len(), 2, "{expected:?}");
    let safe = ok_stdout(&generate(&app, "safe", &sidecar_key));
    assert!(!safe.contains(CANARY) && !safe.contains(&token));
    let safe_docs = documents(&safe);
    assert!(
        rendered_secrets(&safe_docs).is_empty(),
        "no Secret in safe mode"
    );

    // Apply what Argo CD would: each SopsSecret as it came out of the plugin, in the
    // Application's destination namespace when it names none.
    let rt = cluster
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "sopssecrets");
    let mut applied = 0;
    for doc in safe_docs.iter().filter(|d| d["kind"] == "SopsSecret") {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or("prod");
        let name = doc["metadata"]["name"].as_str().expect("name");
        cluster.fake.ensure_namespace(ns);
        let mut object = doc.clone();
        object["metadata"]["namespace"] = serde_json::Value::from(ns);
        cluster.fake.put_raw(&rt, ns, name, object);
        applied += 1;
    }
    assert_eq!(applied, 2, "one SopsSecret per SOPS Secret manifest");

    let ctl = cluster.controller("safe", &[]);
    let ids: Vec<(String, String)> = expected.keys().cloned().collect();
    let in_cluster = || secrets_in_cluster(&cluster, &ids);
    wait_until("the controller made both Secrets", &ctl, || {
        in_cluster().len() == expected.len()
    });
    assert_eq!(in_cluster(), expected);
    ctl.assert_no_canary();
}

/// Issue 11, class 1 in the Argo CD plugin: the Application's name becomes helm's
/// release name, so a name that helm would read as an option (`--post-renderer=…` runs
/// a program) is refused before helm starts: one stderr line, nothing on stdout.
#[test]
fn an_app_name_that_looks_like_a_helm_option_is_refused_and_helm_never_runs() {
    let app = app();
    write_chart(&app.dir);
    let marker = app.tmp.join("post-renderer-ran");
    let name = format!("--post-renderer=/usr/bin/touch {}", marker.display());
    for (var, value) in [
        ("ARGOCD_APP_NAME", name.as_str()),
        ("ARGOCD_APP_NAMESPACE", "--kube-context=other"),
    ] {
        let out = generate(&app, "helm", &[(var, value)]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{var}={value}: {stderr}");
        assert!(out.stdout.is_empty(), "{var}: nothing on stdout");
        assert_eq!(stderr.trim_end().lines().count(), 1, "{stderr}");
        assert!(stderr.contains(var), "{stderr}");
        assert!(!marker.exists(), "{var}: helm ran the injected option");
    }
}

/// `text` encrypted by the real sops for `recipient`, the format taken from `name`'s
/// extension as sops takes it (`.env` dotenv, `.json` JSON, anything else binary).
fn sops_encrypt_as(recipient: &str, name: &str, text: &str) -> Vec<u8> {
    let scratch = tempdir();
    let src = scratch.path().join(name);
    std::fs::write(&src, text).unwrap();
    crate::support::run_ok(
        crate::support::sops()
            .args(["encrypt", "--age", recipient])
            .arg(&src),
    )
}

/// The plaintext of the generator app below: (file, text).
fn generator_plaintexts() -> Vec<(&'static str, String)> {
    vec![
        (
            "app.env",
            format!(
                "STRIPE_KEY={CANARY}-stripe\nDB_PASSWORD={CANARY}-db\nUNUSED={CANARY}-unused\n"
            ),
        ),
        (
            "config.json",
            format!("{{\n    \"url\": \"postgres://app:{CANARY}-url@db:5432/app\"\n}}"),
        ),
        (
            "certs/ca.crt",
            format!("-----BEGIN CERTIFICATE-----\n{CANARY}-ca\n"),
        ),
    ]
}

/// An app whose Secrets come from a `sopsync.yaml` in `secrets/` reading a dotenv, a
/// JSON and a binary SOPS file: one Secret in the app's namespace (`prod`), one with
/// its own namespace and type.
fn generator_app(recipient: &str) -> App {
    let app = empty_app();
    std::fs::write(app.dir.join("cm.yaml"), CONFIGMAP).unwrap();
    let dir = app.dir.join("secrets");
    std::fs::create_dir_all(dir.join("certs")).unwrap();
    for (name, text) in generator_plaintexts() {
        let file = name.rsplit('/').next().unwrap();
        std::fs::write(dir.join(name), sops_encrypt_as(recipient, file, &text)).unwrap();
    }
    std::fs::write(
        dir.join("sopsync.yaml"),
        "secrets:\n\
         \x20 - name: payments-env\n\
         \x20   envFiles: [app.env]\n\
         \x20   include: [STRIPE_KEY, DB_PASSWORD]\n\
         \x20 - name: bundle\n\
         \x20   namespace: payments\n\
         \x20   type: example.com/bundle\n\
         \x20   labels: {team: payments}\n\
         \x20   files:\n\
         \x20     - ./config.json\n\
         \x20     - {path: certs/ca.crt, key: ca-bundle.crt}\n",
    )
    .unwrap();
    app
}

/// Each plaintext value and file of the generator app, and the unkeyed digests a
/// careless design would put in the output: SHA-256 of each, as hex and base64.
fn plaintext_and_digests() -> Vec<String> {
    let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
    let mut plain: Vec<String> = ["stripe", "db", "unused", "url", "ca"]
        .iter()
        .map(|s| format!("{CANARY}-{s}"))
        .collect();
    plain.extend(generator_plaintexts().into_iter().map(|(_, t)| t));
    let mut out = Vec::new();
    for p in plain {
        let digest = sha2::Sha256::digest(p.as_bytes());
        out.push(b64(p.as_bytes()));
        out.push(hex(&digest));
        out.push(b64(&digest));
        out.push(p);
    }
    out
}

/// Applies every SopsSecret of `docs` as Argo CD would (in the app's namespace, prod,
/// when it names none); returns (namespace, name) of each.
fn apply_sops_secrets(
    cluster: &crate::support::cluster::Cluster,
    docs: &[serde_json::Value],
) -> Vec<(String, String)> {
    let rt = cluster
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "sopssecrets");
    let mut applied = Vec::new();
    for doc in docs.iter().filter(|d| d["kind"] == "SopsSecret") {
        let ns = doc["metadata"]["namespace"].as_str().unwrap_or("prod");
        let name = doc["metadata"]["name"].as_str().expect("name");
        cluster.fake.ensure_namespace(ns);
        let mut object = doc.clone();
        object["metadata"]["namespace"] = serde_json::Value::from(ns);
        cluster.fake.put_raw(&rt, ns, name, object);
        applied.push((ns.to_string(), name.to_string()));
    }
    applied
}

/// The Secrets of `ids` as they are in the cluster, in the view `rendered_secrets` gives.
fn secrets_in_cluster(
    cluster: &crate::support::cluster::Cluster,
    ids: &[(String, String)],
) -> SecretView {
    ids.iter()
        .filter_map(|(ns, name)| {
            let s = cluster.secret(ns, name)?;
            let data = s
                .data
                .iter()
                .flatten()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        base64::engine::general_purpose::STANDARD.encode(&v.0),
                    )
                })
                .collect();
            let type_ = s.type_.unwrap_or_else(|| "Opaque".into());
            Some(((ns.clone(), name.clone()), (type_, data)))
        })
        .collect()
}

/// Issue 13, the last point: in `safe` mode every `sopsync.yaml` entry becomes a
/// ciphertext-only SopsSecret (no plaintext, no unkeyed digest of any value or file),
/// and the real controller renders those objects into the same Secrets (name,
/// namespace, type, data) as `secrets` mode renders for the same app.
#[test]
fn safe_mode_generators_become_ciphertext_sops_secrets_the_controller_renders_like_secrets_mode() {
    use crate::support::cluster::{wait_until, Cluster};
    let cluster = Cluster::new(&[]);
    cluster.key_secret("prod");
    cluster.key_secret("payments");
    let app = generator_app(&cluster.recipient);
    let key = cluster.key_file.to_str().expect("utf-8 path");
    let sidecar_key = [("SOPS_AGE_KEY_FILE", key)];

    let secrets_out = ok_stdout(&generate(&app, "secrets", &sidecar_key));
    let expected = rendered_secrets(&documents(&secrets_out));
    assert_eq!(expected.len(), 2, "{expected:?}");
    let safe = ok_stdout(&generate(&app, "safe", &sidecar_key));
    assert!(
        safe.starts_with(CONFIGMAP),
        "plain manifest unchanged: {safe}"
    );
    let mut needles = plaintext_and_digests();
    // The content hashes `secrets` mode computes are unkeyed digests of the data too.
    for doc in documents(&secrets_out) {
        if let Some(h) = doc["metadata"]["annotations"]["sopsync.io/content-hash"].as_str() {
            needles.push(h.trim_start_matches("sha256:").to_string());
        }
    }
    for needle in needles.iter().chain([&"sha256:".to_string()]) {
        assert!(
            !safe.contains(needle.as_str()),
            "safe output holds {needle:?}"
        );
    }
    let safe_docs = documents(&safe);
    assert!(
        rendered_secrets(&safe_docs).is_empty(),
        "no Secret in safe mode"
    );
    // Each object carries exactly the bytes sops wrote for each file its entry reads.
    let bundle = safe_docs
        .iter()
        .find(|d| d["kind"] == "SopsSecret" && d["metadata"]["name"] == "bundle")
        .expect("a SopsSecret for the bundle entry");
    assert_eq!(bundle["metadata"]["namespace"], "payments");
    assert_eq!(bundle["spec"]["generator"]["type"], "example.com/bundle");
    let carried: BTreeMap<String, String> =
        serde_json::from_value(bundle["spec"]["files"].clone()).expect("spec.files");
    assert_eq!(
        carried.keys().collect::<Vec<_>>(),
        ["certs/ca.crt", "config.json"]
    );
    for (rel, text) in &carried {
        let on_disk = std::fs::read(app.dir.join("secrets").join(rel)).unwrap();
        assert_eq!(text.as_bytes(), on_disk, "{rel}");
    }

    let applied = apply_sops_secrets(&cluster, &safe_docs);
    assert_eq!(applied.len(), 2, "one SopsSecret per generator entry");
    let ctl = cluster.controller("safe-generators", &[]);
    let ids: Vec<(String, String)> = expected.keys().cloned().collect();
    wait_until("the controller made both Secrets", &ctl, || {
        secrets_in_cluster(&cluster, &ids).len() == expected.len()
    });
    assert_eq!(secrets_in_cluster(&cluster, &ids), expected);
    for (ns, name) in &applied {
        wait_until(&format!("{ns}/{name} Ready"), &ctl, || {
            ready_is(
                sops_secret_status(&cluster, ns, name).as_ref(),
                "True",
                "Synced",
            )
        });
    }
    ctl.assert_no_canary();
}

fn sops_secret_status(
    cluster: &crate::support::cluster::Cluster,
    ns: &str,
    name: &str,
) -> Option<sopsync::controller::crd::SyncStatus> {
    cluster
        .fake
        .get::<sopsync::controller::crd::SopsSecret>(ns, name)
        .and_then(|s| s.status)
}

/// Flips one base64 character inside the first `ENC[...]` value of `path`.
fn tamper(path: &Path) {
    let text = std::fs::read_to_string(path).unwrap();
    let at = text.find("ENC[AES256_GCM,data:").unwrap() + "ENC[AES256_GCM,data:".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(path, bytes).unwrap();
}

/// A tampered file that a generator reads: with the sidecar's key, `argocd generate`
/// fails (non-zero exit, one stderr line naming the generator, nothing on stdout).
/// Without a key the plugin cannot check a MAC, so it emits the object (documented);
/// the controller then refuses it: Ready=False, reason DecryptFailed, a Warning Event,
/// and no Secret written.
#[test]
fn a_tampered_generator_file_fails_the_plugin_with_a_key_and_the_controller_without_one() {
    use crate::support::cluster::{wait_until, Cluster};
    let cluster = Cluster::new(&[]);
    cluster.key_secret("prod");
    cluster.key_secret("payments");
    let app = generator_app(&cluster.recipient);
    tamper(&app.dir.join("secrets/app.env"));
    let key = cluster.key_file.to_str().expect("utf-8 path");

    let out = generate(&app, "safe", &[("SOPS_AGE_KEY_FILE", key)]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty(), "stdout must be empty");
    assert_eq!(stderr.lines().count(), 1, "{stderr}");
    assert!(
        stderr.starts_with("sopsync argocd: secrets/sopsync.yaml: Secret payments-env: app.env: "),
        "{stderr}"
    );
    assert!(!stderr.contains(CANARY), "{stderr}");

    // No key in the sidecar: the plugin only checks that each file is SOPS.
    let mut c = sopsync();
    as_cmp_server_runs(&mut c, &app, "safe")
        .env_remove("SOPS_AGE_KEY_FILE")
        .args(["argocd", "generate"]);
    let safe = ok_stdout(&run_with_deadline(&mut c, Duration::from_secs(60)));
    let applied = apply_sops_secrets(&cluster, &documents(&safe));
    assert_eq!(applied.len(), 2);
    let ctl = cluster.controller("tampered-generator", &[]);
    wait_until("prod/payments-env DecryptFailed", &ctl, || {
        ready_is(
            sops_secret_status(&cluster, "prod", "payments-env").as_ref(),
            "False",
            "DecryptFailed",
        )
    });
    // The untouched entry still syncs; the tampered one wrote nothing.
    wait_until("payments/bundle synced", &ctl, || {
        cluster.secret("payments", "bundle").is_some()
    });
    assert!(cluster.secret("prod", "payments-env").is_none());
    let status = sops_secret_status(&cluster, "prod", "payments-env").expect("status");
    let ready = condition(&status, "Ready").expect("Ready");
    assert!(
        ready.message.starts_with("spec.generator: app.env: "),
        "{}",
        ready.message
    );
    wait_until("a Warning Event DecryptFailed", &ctl, || {
        cluster
            .events("prod")
            .iter()
            .any(|(t, r, _)| t == "Warning" && r == "DecryptFailed")
    });
    ctl.assert_no_canary();
}

/// The plugin refuses a generator that reads outside its directory (one stderr line,
/// nothing on stdout), as `render` does.
#[test]
fn a_generator_reading_outside_its_directory_is_refused_by_the_plugin() {
    let app = app();
    std::fs::write(
        app.dir.join("sopsync.yaml"),
        "secrets:\n  - name: escape\n    envFiles: [../outside.env]\n",
    )
    .unwrap();
    let out = generate(&app, "safe", &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(out.stdout.is_empty());
    assert_eq!(
        stderr.trim_end(),
        "sopsync argocd: sopsync.yaml: `../outside.env` escapes the manifest's directory"
    );
}

/// A SopsSecret carrying a generator is rendered from its own bytes only: a path that
/// leaves it (`..`, absolute), a file it does not carry, a file it does not read, or
/// more than the size limit is refused as InvalidSpec, and no Secret is written.
#[test]
fn a_generator_sops_secret_that_tries_to_escape_is_refused_and_writes_nothing() {
    use crate::support::cluster::{wait_until, Cluster};
    use serde_json::json;
    let cluster = Cluster::new(&[]);
    cluster.key_secret("prod");
    let env = String::from_utf8(sops_encrypt_as(
        &cluster.recipient,
        "app.env",
        &format!("TOKEN={CANARY}\n"),
    ))
    .unwrap();
    let oversize = "#".repeat(sopsync::controller::crd::MAX_GENERATOR_BYTES + 1);
    let cases = [
        (
            "dotdot",
            json!({"generator": {"envFiles": ["../app.env"]}, "files": {"../app.env": env}}),
            "spec.files: path \"../app.env\" has an empty, `.` or `..` part",
        ),
        (
            "absolute",
            json!({"generator": {"envFiles": ["/etc/app.env"]}, "files": {"/etc/app.env": env}}),
            "spec.files: path \"/etc/app.env\" is absolute",
        ),
        (
            "not-carried",
            json!({"generator": {"files": [{"path": "other.env"}]}, "files": {"app.env": env}}),
            "spec.generator reads \"other.env\", which is not in spec.files",
        ),
        (
            "not-read",
            json!({"generator": {"envFiles": ["app.env"]},
                   "files": {"app.env": env, "extra.env": env}}),
            "spec.files holds \"extra.env\", which spec.generator does not read",
        ),
        (
            "oversize",
            json!({"generator": {"envFiles": ["app.env"]}, "files": {"app.env": oversize}}),
            "spec.files holds 1048577 bytes; at most 1048576",
        ),
    ];
    let rt = cluster
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "sopssecrets");
    for (name, spec, _) in &cases {
        let object = json!({"apiVersion": "sopsync.io/v1alpha1", "kind": "SopsSecret",
                            "metadata": {"name": name, "namespace": "prod"}, "spec": spec});
        cluster.fake.put_raw(&rt, "prod", name, object);
    }
    let ctl = cluster.controller("escape", &[]);
    for (name, _, message) in &cases {
        wait_until(&format!("{name} InvalidSpec"), &ctl, || {
            ready_is(
                sops_secret_status(&cluster, "prod", name).as_ref(),
                "False",
                "InvalidSpec",
            )
        });
        let status = sops_secret_status(&cluster, "prod", name).expect("status");
        assert_eq!(
            condition(&status, "Ready").expect("Ready").message,
            *message
        );
        assert!(cluster.secret("prod", name).is_none(), "{name}: no Secret");
    }
    ctl.assert_no_canary();
}
