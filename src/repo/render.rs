//! Repository bytes → the Kubernetes Secrets they describe. Pure apart from using
//! threads (rayon) to decrypt files in parallel: no file system, no network. The CLI
//! `render` command, the controller and the ArgoCD plugin all call [`render_files`].
//!
//! Two sources of Secrets:
//! 1. SOPS-encrypted `kind: Secret` manifests (YAML or JSON, `data`/`stringData`);
//! 2. `sopsync.yaml` generator manifests that map SOPS files of any format to Secrets
//!    (README: "The sopsync.yaml format").
//!
//! Security: decrypted values live in [`SecretData`] (zeroized, redacted `Debug`);
//! errors name files and keys, never values.

use super::names::{check_data_key, check_namespace, check_secret_name};
use crate::core::formats::yaml::parse::expansion_budget;
use crate::core::formats::{codec, Format, FormatOptions};
use crate::core::keys::KeyBackend;
use crate::core::tree::{MapEntry, Mapping, SeqEntry, Value};
use crate::core::{self as core_ops, DecryptOptions};
use base64::Engine;
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Condvar, Mutex, PoisonError};
use zeroize::Zeroizing;

pub use super::MANIFEST_NAME;

/// Label put on every rendered Secret.
pub const MANAGED_BY: (&str, &str) = ("app.kubernetes.io/managed-by", "sopsync");
/// Annotation keys saying where a Secret came from.
pub const ANNOTATION_SOURCE: &str = "sopsync.io/source";
/// The file inside the repository.
pub const ANNOTATION_PATH: &str = "sopsync.io/path";
/// The commit (or `local`).
pub const ANNOTATION_REVISION: &str = "sopsync.io/revision";
/// SHA-256 over the decrypted content: unchanged when a file is merely re-encrypted.
pub const ANNOTATION_HASH: &str = "sopsync.io/content-hash";

/// Decrypted Secret data: key → bytes. Zeroized on drop; `Debug` shows keys only.
#[derive(Clone, Default, PartialEq)]
pub struct SecretData(pub BTreeMap<String, Zeroizing<Vec<u8>>>);

impl std::fmt::Debug for SecretData {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list()
            .entries(self.0.keys().map(|k| format!("{k}=[REDACTED]")))
            .finish()
    }
}

/// One Secret to materialize.
#[derive(Clone, Debug, PartialEq)]
pub struct DesiredSecret {
    /// Namespace.
    pub namespace: String,
    /// Name.
    pub name: String,
    /// `type` (default `Opaque`).
    pub secret_type: String,
    /// Labels (incl. the managed-by label).
    pub labels: BTreeMap<String, String>,
    /// Annotations (incl. source, path, revision, content hash).
    pub annotations: BTreeMap<String, String>,
    /// The decrypted data.
    pub data: SecretData,
}

/// A file that could not be rendered (the others still are).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileError {
    /// The file, relative to the repository root.
    pub path: String,
    /// What went wrong (no values).
    pub message: String,
    /// The sops-style exit code of the underlying failure.
    pub exit_code: i32,
}

/// What a render produced.
#[derive(Debug, Default)]
pub struct RenderReport {
    /// Secrets, sorted by namespace and name.
    pub secrets: Vec<DesiredSecret>,
    /// Files that failed.
    pub errors: Vec<FileError>,
    /// SOPS files decrypted.
    pub decrypted_files: usize,
}

/// Where the files come from, for the annotations.
#[derive(Clone, Debug)]
pub struct RenderOptions {
    /// Repository URL or local path.
    pub source: String,
    /// Commit id, or `local`.
    pub revision: String,
    /// Namespace for Secrets that name none.
    pub default_namespace: String,
}

struct Decrypted {
    format: Format,
    docs: Vec<Mapping>,
}

fn decrypt_one(
    path: &str,
    bytes: &[u8],
    keys: &(dyn KeyBackend + Sync),
) -> Result<Decrypted, FileError> {
    let format = Format::from_path(path);
    let fail = |e: crate::core::error::CoreError| FileError {
        path: path.to_string(),
        message: e.to_string(),
        exit_code: e.exit_code(),
    };
    let c = codec(format, &FormatOptions::default());
    let file = core_ops::parse_encrypted_with(c.as_ref(), format, bytes).map_err(fail)?;
    let key = core_ops::unwrap_data_key(&file.metadata, keys).map_err(fail)?;
    let opts = DecryptOptions {
        skip_iv_stash: true,
        ..DecryptOptions::default()
    };
    let plain = core_ops::decrypt_owned(file, &key, &opts).map_err(fail)?;
    Ok(Decrypted {
        format,
        docs: plain.documents,
    })
}

fn err(path: &str, message: impl Into<String>) -> FileError {
    FileError {
        path: path.to_string(),
        message: message.into(),
        exit_code: 1,
    }
}

fn string_map(
    v: Option<&Value>,
    path: &str,
    what: &str,
) -> Result<BTreeMap<String, String>, FileError> {
    let mut out = BTreeMap::new();
    match v {
        None | Some(Value::Null) => {}
        Some(Value::Map(m)) => {
            for (k, v) in m.pairs() {
                let s = v
                    .as_str()
                    .ok_or_else(|| err(path, format!("{what}.{k} must be a string")))?;
                out.insert(k.to_string(), s.to_string());
            }
        }
        Some(_) => return Err(err(path, format!("{what} must be a mapping"))),
    }
    Ok(out)
}

/// The text of a scalar as a Secret value (strings raw, others as sops' dotenv
/// conversion writes them).
fn scalar_bytes(v: &Value) -> Option<Vec<u8>> {
    Some(match v {
        Value::Str(t) => t.expose_secret().to_vec(),
        Value::Int(i) => i.to_string().into_bytes(),
        Value::Bool(b) => b.to_string().into_bytes(),
        Value::Float(f) => crate::core::number::format_dotenv(*f).into_bytes(),
        Value::Time(t) => t.to_rfc3339().into_bytes(),
        Value::Null | Value::Map(_) | Value::Seq(_) => return None,
    })
}

/// A SOPS-encrypted `kind: Secret` document → DesiredSecret.
fn secret_from_manifest(
    doc: &Mapping,
    path: &str,
    opts: &RenderOptions,
) -> Result<Option<DesiredSecret>, FileError> {
    if doc.get("kind").and_then(Value::as_str) != Some("Secret")
        || doc.get("apiVersion").and_then(Value::as_str) != Some("v1")
    {
        return Ok(None);
    }
    let meta = doc
        .get("metadata")
        .and_then(Value::as_map)
        .ok_or_else(|| err(path, "Secret without metadata"))?;
    let name = meta
        .get("name")
        .and_then(Value::as_str)
        .ok_or_else(|| err(path, "Secret without metadata.name"))?;
    let namespace = meta
        .get("namespace")
        .and_then(Value::as_str)
        .unwrap_or(&opts.default_namespace);
    let mut data = SecretData::default();
    if let Some(v) = doc.get("data") {
        let m = v
            .as_map()
            .ok_or_else(|| err(path, "data must be a mapping"))?;
        for (k, v) in m.pairs() {
            let text = v
                .as_str()
                .ok_or_else(|| err(path, format!("data.{k} must be a base64 string")))?;
            let bytes = base64::engine::general_purpose::STANDARD
                .decode(text.trim())
                .map_err(|_| err(path, format!("data.{k} is not valid base64")))?;
            data.0.insert(k.to_string(), Zeroizing::new(bytes));
        }
    }
    if let Some(v) = doc.get("stringData") {
        let m = v
            .as_map()
            .ok_or_else(|| err(path, "stringData must be a mapping"))?;
        for (k, v) in m.pairs() {
            // stringData wins over data, as the API server merges it.
            let bytes = scalar_bytes(v)
                .ok_or_else(|| err(path, format!("stringData.{k} must be a scalar")))?;
            data.0.insert(k.to_string(), Zeroizing::new(bytes));
        }
    }
    Ok(Some(DesiredSecret {
        namespace: namespace.to_string(),
        name: name.to_string(),
        secret_type: doc
            .get("type")
            .and_then(Value::as_str)
            .unwrap_or("Opaque")
            .to_string(),
        labels: string_map(meta.get("labels"), path, "metadata.labels")?,
        annotations: string_map(meta.get("annotations"), path, "metadata.annotations")?,
        data,
    }))
}

fn join_rel(dir: &str, rel: &str, manifest: &str) -> Result<String, FileError> {
    let mut parts: Vec<&str> = if dir.is_empty() {
        Vec::new()
    } else {
        dir.split('/').collect()
    };
    for c in rel.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                return Err(err(
                    manifest,
                    format!("`{rel}` escapes the manifest's directory"),
                ))
            }
            other => parts.push(other),
        }
    }
    if rel.starts_with('/') {
        return Err(err(manifest, format!("`{rel}` must be a relative path")));
    }
    Ok(parts.join("/"))
}

fn basename(p: &str) -> &str {
    p.rsplit('/').next().unwrap_or(p)
}

/// A whole decrypted file given as one data key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorFile {
    /// The file, relative to the `sopsync.yaml` (normalized: no `.` or empty parts).
    pub path: String,
    /// The data key (default: the file name as written).
    pub key: String,
}

/// One entry of a `sopsync.yaml` (README: "The sopsync.yaml format"), as written:
/// nothing decrypted, so safe to show (names, data keys and file names only).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GeneratorEntry {
    /// The Secret's name.
    pub name: String,
    /// Its namespace (default: the render's default namespace).
    pub namespace: Option<String>,
    /// Its `type` (default `Opaque`).
    pub secret_type: Option<String>,
    /// Labels put on it.
    pub labels: BTreeMap<String, String>,
    /// Annotations put on it.
    pub annotations: BTreeMap<String, String>,
    /// Flat SOPS files (relative to the `sopsync.yaml`, normalized): key → data key.
    pub env_files: Vec<String>,
    /// Only these keys of `env_files`.
    pub include: Option<Vec<String>>,
    /// Whole files as data keys.
    pub files: Vec<GeneratorFile>,
}

impl GeneratorEntry {
    /// Every file the entry reads (relative to the `sopsync.yaml`), each once, in
    /// first-use order.
    pub fn references(&self) -> Vec<&str> {
        let mut out: Vec<&str> = Vec::new();
        for p in self
            .env_files
            .iter()
            .map(String::as_str)
            .chain(self.files.iter().map(|f| f.path.as_str()))
        {
            if !out.contains(&p) {
                out.push(p);
            }
        }
        out
    }
}

fn seq_strings(s: &crate::core::tree::Sequence) -> Vec<String> {
    s.items
        .iter()
        .filter_map(|e| {
            if let SeqEntry::Value(v) = e {
                v.as_str().map(String::from)
            } else {
                None
            }
        })
        .collect()
}

/// Parses a `sopsync.yaml` (plain YAML; nothing is decrypted). Paths are checked not to
/// leave the manifest's directory and come back relative to it, normalized.
pub fn parse_generator(
    manifest_path: &str,
    bytes: &[u8],
) -> Result<Vec<GeneratorEntry>, FileError> {
    let docs = codec(Format::Yaml, &FormatOptions::default())
        .parse_plain(bytes)
        .map_err(|e| err(manifest_path, e.to_string()))?;
    let root = docs
        .first()
        .ok_or_else(|| err(manifest_path, "empty manifest"))?;
    let Some(Value::Seq(list)) = root.get("secrets") else {
        return Err(err(manifest_path, "expected a top-level `secrets:` list"));
    };
    let relative = |rel: &str| join_rel("", rel, manifest_path);
    let mut out = Vec::new();
    for (i, item) in list
        .items
        .iter()
        .filter_map(|e| {
            if let SeqEntry::Value(v) = e {
                Some(v)
            } else {
                None
            }
        })
        .enumerate()
    {
        let at = format!("secrets[{i}]");
        let m = item
            .as_map()
            .ok_or_else(|| err(manifest_path, format!("{at} must be a mapping")))?;
        let name = m
            .get("name")
            .and_then(Value::as_str)
            .ok_or_else(|| err(manifest_path, format!("{at}.name is required")))?;
        let include = match m.get("include") {
            Some(Value::Seq(s)) => Some(seq_strings(s)),
            _ => None,
        };
        let mut env_files = Vec::new();
        if let Some(Value::Seq(envs)) = m.get("envFiles") {
            for e in seq_strings(envs) {
                env_files.push(relative(&e)?);
            }
        }
        let mut files = Vec::new();
        if let Some(Value::Seq(list)) = m.get("files") {
            for f in list.items.iter().filter_map(|e| {
                if let SeqEntry::Value(v) = e {
                    Some(v)
                } else {
                    None
                }
            }) {
                let (rel, key) = match f {
                    Value::Str(_) => {
                        let rel = f.as_str().unwrap_or_default();
                        (rel, basename(rel))
                    }
                    Value::Map(fm) => {
                        let rel = fm.get("path").and_then(Value::as_str).ok_or_else(|| {
                            err(manifest_path, format!("{at}.files[].path is required"))
                        })?;
                        let key = fm
                            .get("key")
                            .and_then(Value::as_str)
                            .unwrap_or(basename(rel));
                        (rel, key)
                    }
                    _ => {
                        return Err(err(
                            manifest_path,
                            format!("{at}.files entries are paths or {{path, key}}"),
                        ))
                    }
                };
                files.push(GeneratorFile {
                    path: relative(rel)?,
                    key: key.to_string(),
                });
            }
        }
        out.push(GeneratorEntry {
            name: name.to_string(),
            namespace: m.get("namespace").and_then(Value::as_str).map(String::from),
            secret_type: m.get("type").and_then(Value::as_str).map(String::from),
            labels: string_map(m.get("labels"), manifest_path, &format!("{at}.labels"))?,
            annotations: string_map(
                m.get("annotations"),
                manifest_path,
                &format!("{at}.annotations"),
            )?,
            env_files,
            include,
            files,
        });
    }
    Ok(out)
}

/// Generator entries → DesiredSecrets, from the decrypted files (keyed by their path
/// relative to the root; the entries' paths are relative to the manifest's directory).
fn secrets_from_entries(
    manifest_path: &str,
    entries: &[GeneratorEntry],
    decrypted: &HashMap<String, Result<Decrypted, FileError>>,
    opts: &RenderOptions,
) -> Result<Vec<DesiredSecret>, FileError> {
    let dir = manifest_path.rsplit_once('/').map(|(d, _)| d).unwrap_or("");
    let get_file = |rel: &str| -> Result<(String, &Decrypted), FileError> {
        let full = join_rel(dir, rel, manifest_path)?;
        match decrypted.get(&full) {
            Some(Ok(d)) => Ok((full, d)),
            Some(Err(e)) => Err(FileError {
                path: manifest_path.to_string(),
                message: format!("{}: {}", e.path, e.message),
                exit_code: e.exit_code,
            }),
            None => Err(err(
                manifest_path,
                format!("`{full}` is not a SOPS-encrypted file in the repository"),
            )),
        }
    };
    let mut out = Vec::new();
    for entry in entries {
        let mut data = SecretData::default();
        for e in &entry.env_files {
            let (full, d) = get_file(e)?;
            let doc = d.docs.first().ok_or_else(|| err(&full, "no document"))?;
            for item in &doc.entries {
                let MapEntry::Pair { key, value } = item else {
                    continue;
                };
                if entry.include.as_ref().is_some_and(|inc| !inc.contains(key)) {
                    continue;
                }
                let bytes = scalar_bytes(value).ok_or_else(|| {
                    err(
                        &full,
                        format!("`{key}` is not a scalar; envFiles need flat key/value files"),
                    )
                })?;
                data.0.insert(key.clone(), Zeroizing::new(bytes));
            }
        }
        for f in &entry.files {
            let (full, d) = get_file(&f.path)?;
            let bytes = codec(d.format, &FormatOptions::default())
                .emit_plain(&d.docs)
                .map_err(|e| err(&full, e.to_string()))?;
            data.0.insert(f.key.clone(), Zeroizing::new(bytes));
        }
        out.push(DesiredSecret {
            namespace: entry
                .namespace
                .clone()
                .unwrap_or_else(|| opts.default_namespace.clone()),
            name: entry.name.clone(),
            secret_type: entry
                .secret_type
                .clone()
                .unwrap_or_else(|| "Opaque".to_string()),
            labels: entry.labels.clone(),
            annotations: entry.annotations.clone(),
            data,
        });
    }
    Ok(out)
}

/// A `sopsync.yaml` generator → DesiredSecrets.
fn secrets_from_generator(
    manifest_path: &str,
    bytes: &[u8],
    decrypted: &HashMap<String, Result<Decrypted, FileError>>,
    opts: &RenderOptions,
) -> Result<Vec<DesiredSecret>, FileError> {
    let entries = parse_generator(manifest_path, bytes)?;
    secrets_from_entries(manifest_path, &entries, decrypted, opts)
}

/// SHA-256 over type and sorted (key, value) pairs, length-prefixed.
pub fn content_hash(secret_type: &str, data: &SecretData) -> String {
    let mut h = Sha256::new();
    h.update((secret_type.len() as u64).to_be_bytes());
    h.update(secret_type.as_bytes());
    for (k, v) in &data.0 {
        h.update((k.len() as u64).to_be_bytes());
        h.update(k.as_bytes());
        h.update((v.len() as u64).to_be_bytes());
        h.update(&v[..]);
    }
    let digest = h.finalize();
    let mut s = String::from("sha256:");
    for b in digest {
        s.push_str(&format!("{b:02x}"));
    }
    s
}

/// Refuses a Secret whose namespace, name or a data key Kubernetes would refuse
/// (issue 11: `../../x` or `/abs` must never reach a path join). The error names the
/// file and the offending name (names are not secret values).
fn check_names(s: &DesiredSecret, path: &str) -> Result<(), FileError> {
    check_namespace(&s.namespace).map_err(|rule| {
        err(
            path,
            format!("namespace {:?} is invalid: {rule}", s.namespace),
        )
    })?;
    check_secret_name(&s.name).map_err(|rule| {
        err(
            path,
            format!(
                "Secret {}/{:?} has an invalid name: {rule}",
                s.namespace, s.name
            ),
        )
    })?;
    for key in s.data.0.keys() {
        check_data_key(key).map_err(|rule| {
            err(
                path,
                format!(
                    "Secret {}/{}: data key {key:?} is invalid: {rule}",
                    s.namespace, s.name
                ),
            )
        })?;
    }
    Ok(())
}

/// The parse weight (see [`expansion_budget`]) that the decryptions running at the same
/// time may hold, in this whole process: every render, CLI or controller, shares it.
///
/// Each file reserves its own bound before it is parsed, so memory is bounded by this
/// budget rather than by the number of threads (eight worker threads once held eight
/// alias bombs, 3 GB). A unit of weight costs about 5 bytes of memory at worst (a tree of
/// one-letter scalars), so this is ~100 MB at worst. Small files reserve the 256 KiB
/// floor and 64 of them run side by side; a file whose bound exceeds the budget waits
/// until nothing else runs and then runs alone.
const PARSE_BUDGET_BYTES: usize = 16 << 20;

static PARSE_BUDGET: ParseBudget = ParseBudget {
    free: Mutex::new(PARSE_BUDGET_BYTES),
    freed: Condvar::new(),
};

/// A counting semaphore over [`PARSE_BUDGET_BYTES`]. Rayon threads block on it; no
/// reservation is held while waiting for other rayon work, so this cannot deadlock.
struct ParseBudget {
    free: Mutex<usize>,
    freed: Condvar,
}

/// Part of the budget, given back when dropped.
struct Reservation {
    budget: &'static ParseBudget,
    amount: usize,
}

impl ParseBudget {
    fn reserve(&'static self, want: usize) -> Reservation {
        let amount = want.min(PARSE_BUDGET_BYTES);
        let mut free = self.free.lock().unwrap_or_else(PoisonError::into_inner);
        while *free < amount {
            free = self
                .freed
                .wait(free)
                .unwrap_or_else(PoisonError::into_inner);
        }
        *free -= amount;
        Reservation {
            budget: self,
            amount,
        }
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        let mut free = self
            .budget
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *free += self.amount;
        self.budget.freed.notify_all();
    }
}

/// Decrypts every SOPS file of `files` in parallel, each data key unwrapped once.
fn decrypt_all(
    files: &BTreeMap<String, Vec<u8>>,
    keys: &(dyn KeyBackend + Sync),
) -> HashMap<String, Result<Decrypted, FileError>> {
    let candidates: Vec<(&String, &Vec<u8>)> = files
        .iter()
        .filter(|(_, b)| super::walk::looks_like_sops(b))
        .collect();
    candidates
        .par_iter()
        .map(|(p, b)| {
            // Held while the file is parsed and decrypted, whatever the thread count.
            let _reserved = PARSE_BUDGET.reserve(expansion_budget(b.len()));
            ((*p).clone(), decrypt_one(p, b, keys))
        })
        .collect()
}

/// Renders every Secret described by `files` (path relative to the root → bytes).
/// SOPS files are found by their metadata and decrypted in parallel, each data key
/// unwrapped once.
pub fn render_files(
    files: &BTreeMap<String, Vec<u8>>,
    keys: &(dyn KeyBackend + Sync),
    opts: &RenderOptions,
) -> RenderReport {
    let decrypted = decrypt_all(files, keys);
    let mut report = RenderReport {
        decrypted_files: decrypted.values().filter(|r| r.is_ok()).count(),
        ..Default::default()
    };
    let mut found: Vec<(String, DesiredSecret)> = Vec::new();
    let mut referenced_failures_reported = std::collections::HashSet::new();
    for (path, bytes) in files {
        if basename(path) == MANIFEST_NAME {
            match secrets_from_generator(path, bytes, &decrypted, opts) {
                Ok(list) => found.extend(list.into_iter().map(|s| (path.clone(), s))),
                Err(e) => {
                    referenced_failures_reported
                        .insert(e.message.split(':').next().unwrap_or("").to_string());
                    report.errors.push(e);
                }
            }
        }
    }
    let mut sorted: Vec<(&String, &Result<Decrypted, FileError>)> = decrypted.iter().collect();
    sorted.sort_by(|a, b| a.0.cmp(b.0));
    for (path, result) in sorted {
        match result {
            Err(e) => {
                if !referenced_failures_reported.contains(path.as_str()) {
                    report.errors.push(e.clone());
                }
            }
            Ok(d) if matches!(d.format, Format::Yaml | Format::Json) => {
                for doc in &d.docs {
                    match secret_from_manifest(doc, path, opts) {
                        Ok(Some(s)) => found.push((path.clone(), s)),
                        Ok(None) => {}
                        Err(e) => report.errors.push(e),
                    }
                }
            }
            Ok(_) => {}
        }
    }
    finish_report(report, found, opts)
}

/// Renders only the generator `entries` of a manifest at `manifest_path`, from `files`
/// (path relative to the root → the bytes sops wrote). Nothing else in `files` becomes
/// a Secret: this is how a `SopsSecret` carrying a generator entry is rendered (the
/// controller, and the Argo CD plugin's check of what it emits).
pub fn render_generator(
    manifest_path: &str,
    entries: &[GeneratorEntry],
    files: &BTreeMap<String, Vec<u8>>,
    keys: &(dyn KeyBackend + Sync),
    opts: &RenderOptions,
) -> RenderReport {
    let decrypted = decrypt_all(files, keys);
    let mut report = RenderReport {
        decrypted_files: decrypted.values().filter(|r| r.is_ok()).count(),
        ..Default::default()
    };
    let mut found = Vec::new();
    match secrets_from_entries(manifest_path, entries, &decrypted, opts) {
        Ok(list) => found.extend(list.into_iter().map(|s| (manifest_path.to_string(), s))),
        Err(e) => report.errors.push(e),
    }
    finish_report(report, found, opts)
}

/// Checks names, refuses duplicates and adds the labels and annotations every rendered
/// Secret carries; sorts the result.
fn finish_report(
    mut report: RenderReport,
    found: Vec<(String, DesiredSecret)>,
    opts: &RenderOptions,
) -> RenderReport {
    let mut seen: HashMap<(String, String), String> = HashMap::new();
    for (path, mut s) in found {
        // Names become file names (`render --output`) and API paths: one that
        // Kubernetes would refuse is this file's error, and the other files still render.
        if let Err(e) = check_names(&s, &path) {
            report.errors.push(e);
            continue;
        }
        let id = (s.namespace.clone(), s.name.clone());
        if let Some(first) = seen.get(&id) {
            report.errors.push(err(
                &path,
                format!(
                    "Secret {}/{} is also defined in {first}",
                    s.namespace, s.name
                ),
            ));
            continue;
        }
        seen.insert(id, path.clone());
        s.labels.insert(MANAGED_BY.0.into(), MANAGED_BY.1.into());
        s.annotations
            .insert(ANNOTATION_SOURCE.into(), opts.source.clone());
        s.annotations.insert(ANNOTATION_PATH.into(), path.clone());
        s.annotations
            .insert(ANNOTATION_REVISION.into(), opts.revision.clone());
        s.annotations.insert(
            ANNOTATION_HASH.into(),
            content_hash(&s.secret_type, &s.data),
        );
        report.secrets.push(s);
    }
    report
        .secrets
        .sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    report.errors.sort_by(|a, b| a.path.cmp(&b.path));
    report
}

fn string_mapping(m: &BTreeMap<String, String>) -> Value {
    let mut out = Mapping::new();
    for (k, v) in m {
        out.push(k.clone(), Value::str(v));
    }
    Value::Map(out)
}

/// One Secret as a Kubernetes manifest tree (data base64-encoded, keys sorted).
pub fn secret_manifest(s: &DesiredSecret) -> Mapping {
    let mut meta = Mapping::new();
    meta.push("name", Value::str(&s.name));
    meta.push("namespace", Value::str(&s.namespace));
    if !s.labels.is_empty() {
        meta.push("labels", string_mapping(&s.labels));
    }
    if !s.annotations.is_empty() {
        meta.push("annotations", string_mapping(&s.annotations));
    }
    let mut data = Mapping::new();
    for (k, v) in &s.data.0 {
        data.push(
            k.clone(),
            Value::str(&base64::engine::general_purpose::STANDARD.encode(&v[..])),
        );
    }
    let mut m = Mapping::new();
    m.push("apiVersion", Value::str("v1"));
    m.push("kind", Value::str("Secret"));
    m.push("metadata", Value::Map(meta));
    m.push("type", Value::str(&s.secret_type));
    m.push("data", Value::Map(data));
    m
}

/// Multi-document YAML (indent 2) of the Secrets, in order.
pub fn secrets_to_yaml(secrets: &[DesiredSecret]) -> Zeroizing<Vec<u8>> {
    let docs: Vec<Mapping> = secrets.iter().map(secret_manifest).collect();
    let opts = FormatOptions {
        yaml_indent: 2,
        ..FormatOptions::default()
    };
    if docs.is_empty() {
        return Zeroizing::new(Vec::new());
    }
    Zeroizing::new(
        codec(Format::Yaml, &opts)
            .emit_plain(&docs)
            .unwrap_or_default(),
    )
}
