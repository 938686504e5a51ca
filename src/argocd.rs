//! The Argo CD Config Management Plugin (CMP v2 sidecar): `sopsync argocd generate`
//! turns an application's source directory into manifests on stdout (issue 13).
//!
//! Modes (parameter `mode`, else `ARGOCD_ENV_SOPSYNC_MODE`, else `safe`):
//! - `safe`: plain manifests unchanged; every SOPS-encrypted `kind: Secret` manifest
//!   becomes a `SopsSecret` whose `spec.encrypted` is the file exactly as sops wrote it
//!   (MAC and key-path bindings intact), for the controller to decrypt in the cluster.
//!   No plaintext and no digest of it is ever computed into the output, so Argo CD's
//!   cache, UI and diff hold ciphertext only. The sidecar needs no key for this mode;
//!   when one is configured, each file is also verified (decrypted, then dropped), so
//!   a tampered file fails here instead of later in the cluster.
//!   Each `sopsync.yaml` entry becomes a `SopsSecret` named like its Secret, in its
//!   namespace, whose `spec.generator` is the entry and whose `spec.files` are the SOPS
//!   files it reads, exactly as sops wrote them (docs/helm-argocd.md, "Design:
//!   generators in safe mode"). With a key, each such object is rendered here as the
//!   controller will render it (plaintext dropped); without one, each file is only
//!   parsed as SOPS (a MAC cannot be checked without the key: the controller fails it).
//!   A Helm chart renders with its plain values only; a SOPS values file is refused,
//!   pointing to the pattern that keeps secrets out of Argo CD (a SOPS Secret manifest
//!   in the app, referenced by the chart by name through `existingSecret`).
//! - `secrets`: plain manifests plus the Secrets the render engine makes (plaintext
//!   reaches Argo CD; for teams without the controller).
//! - `helm`: the chart in the app directory rendered by helm, SOPS values files
//!   decrypted through pipes ([`crate::helm`]).
//!
//! Guarantees: the output is built in memory and printed only when everything
//! succeeded; any failure is one error (the CLI prints one line and exits non-zero).

use crate::controller::crd::{GeneratorFileRef, GeneratorSpec};
use crate::core::formats::{codec, Format, FormatOptions};
use crate::core::keys::KeyBackend;
use crate::core::tree::{Mapping, Value};
use crate::repo::render::{self, RenderOptions};
use crate::repo::walk::{self, WalkLimits};
use std::collections::BTreeMap;
use std::path::Path;
use zeroize::Zeroizing;

/// How secrets are handed to Argo CD.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Ciphertext only (`SopsSecret` objects).
    Safe,
    /// Rendered Secrets (plaintext in Argo CD).
    Secrets,
    /// A Helm chart with decrypted values files.
    Helm,
}

impl Mode {
    /// Parses a mode name.
    pub fn parse(name: &str) -> Result<Mode, String> {
        match name.trim() {
            "" | "safe" => Ok(Mode::Safe),
            "secrets" => Ok(Mode::Secrets),
            "helm" => Ok(Mode::Helm),
            other => Err(format!(
                "unknown mode {other:?}: use safe (the default), secrets or helm"
            )),
        }
    }
}

/// What Argo CD tells the plugin (the CMP environment), already read.
#[derive(Clone, Debug, Default)]
pub struct AppContext {
    /// `ARGOCD_APP_NAME`: the Helm release name.
    pub app_name: String,
    /// `ARGOCD_APP_NAMESPACE`: the default namespace and helm's `-n`.
    pub namespace: String,
    /// `ARGOCD_APP_REVISION`, for the annotations of rendered Secrets.
    pub revision: String,
    /// `ARGOCD_APP_SOURCE_REPO_URL`, for the annotations.
    pub repo_url: String,
    /// `KUBE_VERSION`: helm's `--kube-version`.
    pub kube_version: Option<String>,
    /// `KUBE_API_VERSIONS` (comma-separated): helm's `--api-versions`.
    pub api_versions: Vec<String>,
    /// Helm values files (parameter `valueFiles`), relative to the app directory.
    pub value_files: Vec<String>,
}

/// Why generation failed. Never carries a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GenerateError {
    /// A file could not be read, walked or parsed.
    #[error("{path}: {message}")]
    File {
        /// The file, relative to the app directory.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// Something this mode refuses, with what to do instead.
    #[error("{path}: {message}")]
    Refused {
        /// The file.
        path: String,
        /// Why, and what to do.
        message: String,
    },
    /// helm failed (its first error line).
    #[error("helm: {0}")]
    Helm(String),
}

fn file_err(path: &str, message: impl Into<String>) -> GenerateError {
    GenerateError::File {
        path: path.to_string(),
        message: message.into(),
    }
}

/// Plain `.yaml`/`.yml`/`.json` manifests under `root` (relative path → bytes), dot
/// entries and symlinks skipped, in path order. The SOPS files come from
/// [`walk::walk_tree`]; this adds the files that are deployed as they are.
fn plain_manifests(
    root: &Path,
    limits: &WalkLimits,
) -> Result<BTreeMap<String, Vec<u8>>, GenerateError> {
    let mut out = BTreeMap::new();
    let mut stack = vec![(root.to_path_buf(), String::new())];
    let mut seen = 0usize;
    while let Some((dir, rel)) = stack.pop() {
        let entries = std::fs::read_dir(&dir).map_err(|e| file_err(&rel, e.to_string()))?;
        for e in entries {
            let e = e.map_err(|e| file_err(&rel, e.to_string()))?;
            let name = e.file_name().to_string_lossy().into_owned();
            if name.starts_with('.') {
                continue;
            }
            let path = if rel.is_empty() {
                name.clone()
            } else {
                format!("{rel}/{name}")
            };
            seen += 1;
            if seen > limits.max_files {
                return Err(file_err(
                    ".",
                    format!("more than {} files", limits.max_files),
                ));
            }
            let meta =
                std::fs::symlink_metadata(e.path()).map_err(|e| file_err(&path, e.to_string()))?;
            if meta.is_dir() {
                stack.push((e.path(), path));
            } else if meta.is_file()
                && matches!(Format::from_path(&name), Format::Yaml | Format::Json)
            {
                // Read through the descriptor: a file swapped for a FIFO or a larger
                // file after the lstat above is refused, not waited on or read whole.
                let bytes = crate::small_file::read_small_file(&e.path(), limits.max_file_bytes)
                    .map_err(|e| file_err(&path, e.to_string()))?;
                if !walk::looks_like_sops(&bytes) {
                    out.insert(path, bytes.to_vec());
                }
            }
        }
    }
    Ok(out)
}

fn push_document(out: &mut Vec<u8>, bytes: &[u8]) {
    if !bytes.iter().any(|b| !b.is_ascii_whitespace()) {
        return;
    }
    if !out.is_empty() && !bytes.starts_with(b"---") {
        out.extend_from_slice(b"---\n");
    }
    out.extend_from_slice(bytes);
    if !bytes.ends_with(b"\n") {
        out.push(b'\n');
    }
}

/// A plaintext (unencrypted) string field of a SOPS file, or `None` if absent; an
/// encrypted one is an error, since safe mode never decrypts into its output.
fn clear_field<'a>(
    doc: &'a Mapping,
    path: &str,
    keys: &[&str],
) -> Result<Option<&'a str>, GenerateError> {
    let mut cur = doc;
    for (i, k) in keys.iter().enumerate() {
        let Some(v) = cur.get(k) else { return Ok(None) };
        if i + 1 == keys.len() {
            let s = v.as_str().unwrap_or_default();
            if s.starts_with("ENC[") {
                return Err(GenerateError::Refused {
                    path: path.to_string(),
                    message: format!(
                        "{} is encrypted, so safe mode cannot name the SopsSecret without decrypting; encrypt only data and stringData (encrypted_regex: ^(data|stringData)$)",
                        keys.join(".")
                    ),
                });
            }
            return Ok(Some(s));
        }
        let Value::Map(m) = v else { return Ok(None) };
        cur = m;
    }
    Ok(None)
}

/// The `SopsSecret` carrying one SOPS Secret manifest's exact bytes.
fn sops_secret(
    path: &str,
    bytes: &[u8],
    app: &AppContext,
) -> Result<Option<Mapping>, GenerateError> {
    let format = if path.ends_with(".json") {
        Format::Json
    } else {
        Format::Yaml
    };
    let docs = codec(format, &FormatOptions::default())
        .parse_plain(bytes)
        .map_err(|e| file_err(path, e.to_string()))?;
    let Some(doc) = docs.first() else {
        return Ok(None);
    };
    if clear_field(doc, path, &["kind"])? != Some("Secret") {
        return Ok(None);
    }
    let name = clear_field(doc, path, &["metadata", "name"])?
        .ok_or_else(|| file_err(path, "a Secret manifest without metadata.name"))?;
    let namespace = clear_field(doc, path, &["metadata", "namespace"])?
        .filter(|n| !n.is_empty())
        .unwrap_or(&app.namespace);
    crate::repo::names::check_secret_name(name)
        .map_err(|rule| file_err(path, format!("Secret name {name:?} is invalid: {rule}")))?;
    let text = std::str::from_utf8(bytes).map_err(|_| file_err(path, "not UTF-8"))?;
    let mut spec = Mapping::new();
    spec.push("encrypted", Value::str(text));
    Ok(Some(sops_secret_object(name, namespace, path, spec)))
}

/// The `SopsSecret`s of one `sopsync.yaml` (at `path`): one per entry, each carrying
/// the entry and the SOPS files it reads (`sops` holds the app's SOPS files, and the
/// paths of those read are added to `read`).
fn generator_objects(
    path: &str,
    bytes: &[u8],
    sops: &BTreeMap<String, Vec<u8>>,
    app: &AppContext,
    (keys, verify): (&(dyn KeyBackend + Sync), bool),
    read: &mut std::collections::BTreeSet<String>,
) -> Result<Vec<Mapping>, GenerateError> {
    let entries = render::parse_generator(path, bytes).map_err(|e| file_err(path, e.message))?;
    let dir = path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let mut out = Vec::new();
    for entry in entries {
        let name = entry.name.as_str();
        let namespace = entry.namespace.as_deref().unwrap_or(&app.namespace);
        crate::repo::names::check_secret_name(name)
            .map_err(|rule| file_err(path, format!("Secret name {name:?} is invalid: {rule}")))?;
        if !namespace.is_empty() {
            crate::repo::names::check_namespace(namespace).map_err(|rule| {
                file_err(path, format!("namespace {namespace:?} is invalid: {rule}"))
            })?;
        }
        let mut files = BTreeMap::new();
        for rel in entry.references() {
            let full = if dir.is_empty() {
                rel.to_string()
            } else {
                format!("{dir}/{rel}")
            };
            let Some(file) = sops.get(&full) else {
                return Err(file_err(
                    path,
                    format!("`{full}` is not a SOPS-encrypted file in the app"),
                ));
            };
            let text = std::str::from_utf8(file).map_err(|_| file_err(&full, "not UTF-8"))?;
            // Without a key this is all that can be checked: the file is SOPS and its
            // metadata is well-formed. Its MAC is checked by whoever holds the key.
            let format = Format::from_path(&full);
            crate::core::parse_encrypted_with(
                codec(format, &FormatOptions::default()).as_ref(),
                format,
                file,
            )
            .map_err(|e| file_err(&full, e.to_string()))?;
            files.insert(rel.to_string(), text.to_string());
            read.insert(full);
        }
        let spec = GeneratorSpec {
            secret_type: entry.secret_type.clone(),
            labels: entry.labels.clone(),
            annotations: entry.annotations.clone(),
            env_files: entry.env_files.clone(),
            include: entry.include.clone(),
            files: entry
                .files
                .iter()
                .map(|f| GeneratorFileRef {
                    path: f.path.clone(),
                    key: Some(f.key.clone()),
                })
                .collect(),
        };
        // The controller's own checks (paths, limits, every file read), so a violation
        // fails here rather than in the cluster.
        let (checked, carried) = spec
            .inputs(&files, name, namespace)
            .map_err(|m| file_err(path, format!("Secret {name}: {m}")))?;
        if verify {
            let opts = RenderOptions {
                source: String::new(),
                revision: String::new(),
                default_namespace: namespace.to_string(),
            };
            let mut checked = checked;
            if namespace.is_empty() {
                // Argo CD will put the object in the Application's destination, unknown
                // here; any valid namespace renders the entry the same way.
                checked.namespace = Some("default".into());
            }
            let report =
                render::render_generator(render::MANIFEST_NAME, &[checked], &carried, keys, &opts);
            if let Some(e) = report.errors.first() {
                return Err(file_err(path, format!("Secret {name}: {}", e.message)));
            }
        }
        let spec_doc = json_mapping(&spec, path)?;
        let mut carried_files = Mapping::new();
        for (rel, text) in files {
            carried_files.push(rel, Value::str(&text));
        }
        let mut body = Mapping::new();
        body.push("generator", Value::Map(spec_doc));
        body.push("files", Value::Map(carried_files));
        out.push(sops_secret_object(name, namespace, path, body));
    }
    Ok(out)
}

/// A value as a tree, through its JSON form (so the field names are the CRD's).
fn json_mapping(value: &impl serde::Serialize, path: &str) -> Result<Mapping, GenerateError> {
    let json = serde_json::to_vec(value).map_err(|e| file_err(path, e.to_string()))?;
    let mut docs = codec(Format::Json, &FormatOptions::default())
        .parse_plain(&json)
        .map_err(|e| file_err(path, e.to_string()))?;
    Ok(docs.pop().unwrap_or_default())
}

/// A `SopsSecret` named `name` in `namespace` with `spec`, annotated with its source.
fn sops_secret_object(name: &str, namespace: &str, path: &str, spec: Mapping) -> Mapping {
    let mut meta = Mapping::new();
    meta.push("name", Value::str(name));
    if !namespace.is_empty() {
        meta.push("namespace", Value::str(namespace));
    }
    let mut annotations = Mapping::new();
    annotations.push(render::ANNOTATION_PATH, Value::str(path));
    meta.push("annotations", Value::Map(annotations));
    let mut m = Mapping::new();
    m.push("apiVersion", Value::str("sopsync.io/v1alpha1"));
    m.push("kind", Value::str("SopsSecret"));
    m.push("metadata", Value::Map(meta));
    m.push("spec", Value::Map(spec));
    m
}

fn yaml_of(docs: &[Mapping]) -> Vec<u8> {
    let opts = FormatOptions {
        yaml_indent: 2,
        ..FormatOptions::default()
    };
    codec(Format::Yaml, &opts)
        .emit_plain(docs)
        .unwrap_or_default()
}

/// Refuses two SopsSecrets of the same namespace and name (Argo CD would apply one over
/// the other; `secrets` mode refuses the same duplicate).
fn check_unique(docs: &[Mapping]) -> Result<(), GenerateError> {
    let field = |d: &Mapping, k: &str| {
        d.get("metadata")
            .and_then(Value::as_map)
            .and_then(|m| m.get(k))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let path = |d: &Mapping| {
        d.get("metadata")
            .and_then(Value::as_map)
            .and_then(|m| m.get("annotations"))
            .and_then(Value::as_map)
            .and_then(|m| m.get(render::ANNOTATION_PATH))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string()
    };
    let mut seen: BTreeMap<(String, String), String> = BTreeMap::new();
    for d in docs {
        let id = (field(d, "namespace"), field(d, "name"));
        if let Some(first) = seen.get(&id) {
            return Err(file_err(
                &path(d),
                format!("Secret {}/{} is also defined in {first}", id.0, id.1),
            ));
        }
        seen.insert(id, path(d));
    }
    Ok(())
}

/// Runs `helm ARGS` (SOPS values files through pipes) and returns what it printed.
pub type HelmRunner = dyn Fn(&[String]) -> Result<Zeroizing<Vec<u8>>, GenerateError>;

/// Generates the manifests of the app in `root` for `mode`. `verify` decrypts each SOPS
/// file in safe mode to check it (its plaintext is dropped); `keys` are the sidecar's.
pub fn generate(
    root: &Path,
    mode: Mode,
    app: &AppContext,
    keys: &(dyn KeyBackend + Sync),
    verify: bool,
    run_helm: &HelmRunner,
) -> Result<Zeroizing<Vec<u8>>, GenerateError> {
    let limits = WalkLimits::default();
    let tree =
        walk::walk_tree(root, None, &limits).map_err(|e| file_err(e.path(), e.to_string()))?;
    if let Some(f) = tree.failures.first() {
        return Err(file_err(f.path(), f.to_string()));
    }
    let is_chart = root.join("Chart.yaml").is_file();
    let mut out = Zeroizing::new(Vec::new());
    if is_chart {
        let sops_values: Vec<&String> = tree
            .files
            .keys()
            .filter(|p| {
                app.value_files
                    .iter()
                    .any(|v| v.trim_start_matches("./") == p.as_str())
            })
            .collect();
        if mode != Mode::Helm {
            if let Some(p) = sops_values.first() {
                return Err(GenerateError::Refused {
                    path: p.to_string(),
                    message: "a SOPS values file would put its plaintext into Argo CD; keep secrets out of the chart's values: put a SOPS Secret manifest in the app and have the chart reference it by name (existingSecret), or use mode helm".into(),
                });
            }
        }
        // The app's name becomes helm's positional release name: whoever names the
        // Application must not be able to pass helm an option (`--post-renderer=…`
        // runs a program). Argo CD names are DNS subdomains, so anything else is
        // refused; every other value goes in `--flag=value` form, one argument each.
        let refuse = |what: &str, rule: &str| GenerateError::Refused {
            path: what.to_string(),
            message: format!("not a valid name for helm: {rule}"),
        };
        crate::repo::names::check_secret_name(&app.app_name)
            .map_err(|rule| refuse("ARGOCD_APP_NAME", rule))?;
        crate::repo::names::check_namespace(&app.namespace)
            .map_err(|rule| refuse("ARGOCD_APP_NAMESPACE", rule))?;
        let mut args = vec![
            "template".to_string(),
            app.app_name.clone(),
            ".".to_string(),
            format!("--namespace={}", app.namespace),
        ];
        if let Some(v) = &app.kube_version {
            args.push(format!("--kube-version={v}"));
        }
        if !app.api_versions.is_empty() {
            args.push(format!("--api-versions={}", app.api_versions.join(",")));
        }
        for v in &app.value_files {
            args.push(format!("--values={v}"));
        }
        let rendered = run_helm(&args)?;
        push_document(&mut out, &rendered);
        return Ok(out);
    }
    for (path, bytes) in plain_manifests(root, &limits)? {
        if path.rsplit('/').next() == Some(render::MANIFEST_NAME) {
            continue;
        }
        push_document(&mut out, &bytes);
    }
    match mode {
        Mode::Safe => {
            let is_manifest = |p: &str| p.rsplit('/').next() == Some(render::MANIFEST_NAME);
            // The SOPS files some generator reads may be of any format; only the others
            // must be Secret manifests.
            let mut read_by_generator = std::collections::BTreeSet::new();
            let mut docs = Vec::new();
            for (path, bytes) in tree.files.iter().filter(|(p, _)| is_manifest(p)) {
                docs.extend(generator_objects(
                    path,
                    bytes,
                    &tree.files,
                    app,
                    (keys, verify),
                    &mut read_by_generator,
                )?);
            }
            for (path, bytes) in tree.files.iter().filter(|(p, _)| !is_manifest(p)) {
                if read_by_generator.contains(path) {
                    // A generator's input; a Secret manifest of its own too if it is one
                    // (as `secrets` mode renders it).
                    if matches!(Format::from_path(path), Format::Yaml | Format::Json) {
                        if let Some(doc) = sops_secret(path, bytes, app)? {
                            docs.push(doc);
                        }
                    }
                    continue;
                }
                if verify {
                    crate::helm::decrypt_documents(Path::new(path), bytes, keys).map_err(|e| {
                        file_err(
                            path,
                            e.to_string()
                                .replacen(&format!("values file {path}: "), "", 1),
                        )
                    })?;
                }
                match sops_secret(path, bytes, app)? {
                    Some(doc) => docs.push(doc),
                    None => {
                        return Err(GenerateError::Refused {
                            path: path.clone(),
                            message: "a SOPS file that is neither a kind: Secret manifest nor read by a sopsync.yaml; safe mode carries only those as ciphertext".into(),
                        })
                    }
                }
            }
            check_unique(&docs)?;
            if !docs.is_empty() {
                push_document(&mut out, &yaml_of(&docs));
            }
        }
        Mode::Secrets => {
            let opts = RenderOptions {
                source: app.repo_url.clone(),
                revision: app.revision.clone(),
                default_namespace: app.namespace.clone(),
            };
            let report = render::render_files(&tree.files, keys, &opts);
            if let Some(e) = report.errors.first() {
                return Err(file_err(&e.path, e.message.clone()));
            }
            push_document(&mut out, &render::secrets_to_yaml(&report.secrets));
        }
        Mode::Helm => {
            return Err(file_err(
                ".",
                "mode helm needs a Chart.yaml in the app directory",
            ));
        }
    }
    Ok(out)
}
