//! `sopsync render`: a repository of SOPS files (a local path or a Git URL) → the
//! Kubernetes Secret manifests the controller would apply.
//!
//! Failure policy (documented in the README): by default every file that renders is
//! emitted, each failing file is reported on stderr by path, and the exit code is 1;
//! with `--strict` nothing is emitted when any file fails.

use super::write_stdout;
use crate::error::CliError;
use crate::repo::git::{self, GitAuth};
use crate::repo::render::{self, RenderOptions};
use crate::repo::walk::{self, WalkLimits};
use std::collections::BTreeMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// `render` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// A local directory, or a Git URL (https://, http://, ssh://, git://, file://, or
    /// user@host:path). A password or token in the URL is used through git's askpass
    /// and never stored.
    source: String,
    /// Branch, tag or commit to render (Git sources; default: the remote HEAD).
    #[arg(long = "ref")]
    reference: Option<String>,
    /// Render only this subdirectory of the source.
    #[arg(long)]
    path: Option<String>,
    /// `-` for stdout (default), or a directory to write one 0600 file per Secret into.
    #[arg(long, default_value = "-")]
    output: String,
    /// Emit nothing if any file fails.
    #[arg(long)]
    strict: bool,
    /// Namespace for Secrets that do not name one.
    #[arg(long, default_value = "default")]
    namespace: String,
    /// Where Git checkouts are cached between runs (default: $XDG_CACHE_HOME/sopsync/git).
    #[arg(long)]
    cache_dir: Option<PathBuf>,
    /// Timeout for each git operation, in seconds.
    #[arg(long, default_value_t = 120)]
    git_timeout: u64,
    /// Largest file read, in bytes (default 8 MiB).
    #[arg(long, default_value_t = WalkLimits::default().max_file_bytes)]
    max_file_bytes: u64,
    /// Most files visited (default 20,000).
    #[arg(long, default_value_t = WalkLimits::default().max_files)]
    max_files: usize,
}

fn default_cache() -> PathBuf {
    let base = std::env::var_os("XDG_CACHE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache")))
        .unwrap_or_else(std::env::temp_dir);
    base.join("sopsync/git")
}

fn other(message: String, code: i32, hint: Option<&str>) -> CliError {
    CliError::Other {
        message,
        code,
        hint: hint.map(String::from),
    }
}

fn write_dir(dir: &Path, secrets: &[render::DesiredSecret]) -> Result<(), CliError> {
    use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
    let werr = |p: &Path, source| CliError::Write {
        path: p.display().to_string(),
        source,
    };
    for s in secrets {
        let ns_dir = dir.join(&s.namespace);
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&ns_dir)
            .map_err(|e| werr(&ns_dir, e))?;
        let path = ns_dir.join(format!("{}.yaml", s.name));
        let bytes = render::secrets_to_yaml(std::slice::from_ref(s));
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&path)
            .map_err(|e| werr(&path, e))?;
        f.write_all(&bytes).map_err(|e| werr(&path, e))?;
    }
    Ok(())
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    let (root, source, revision) = if git::looks_like_url(&a.source) {
        let auth = GitAuth::from_env().map_err(|e| other(e.to_string(), 1, None))?;
        let cache = a.cache_dir.clone().unwrap_or_else(default_cache);
        let checkout = git::fetch(&a.source, a.reference.as_deref(), &cache, &auth, Duration::from_secs(a.git_timeout)).map_err(|e| {
            let hint = match e {
                // Nothing was fetched: the cache is not the point.
                git::GitError::InvalidRef { .. } | git::GitError::InvalidUrl { .. } => {
                    "pass a Git URL and a branch, tag or full commit id as data, never an option".to_string()
                }
                _ => format!(
                    "check the URL, credentials and network; the last good checkout (if any) is kept in {}",
                    git::cache_dir(&cache, &a.source).display()
                ),
            };
            other(e.to_string(), 1, Some(&hint))
        })?;
        (checkout.dir, git::redact_url(&a.source), checkout.commit)
    } else {
        if a.reference.is_some() {
            return Err(CliError::Conflict("--ref needs a Git URL source".into()));
        }
        (
            PathBuf::from(&a.source),
            a.source.clone(),
            "local".to_string(),
        )
    };
    let limits = WalkLimits {
        max_file_bytes: a.max_file_bytes,
        max_files: a.max_files,
    };
    let root = match &a.path {
        Some(sub) => walk::secure_join(&root, sub).map_err(|e| other(e.to_string(), 1, None))?,
        None => root,
    };
    if !root.is_dir() {
        return Err(other(
            format!("{}: not a directory", root.display()),
            100,
            Some("pass a directory or a Git URL"),
        ));
    }
    let names = walk::list_files(&root, &limits).map_err(|e| other(e.to_string(), 1, None))?;
    let mut files = BTreeMap::new();
    let mut read_errors = Vec::new();
    for name in names {
        match walk::read_limited(&root, &name, &limits) {
            Ok(bytes) => {
                files.insert(name, bytes);
            }
            Err(e) => read_errors.push(e.to_string()),
        }
    }
    let keys = crate::keysource::age_identities();
    let opts = RenderOptions {
        source,
        revision,
        default_namespace: a.namespace.clone(),
    };
    let report = render::render_files(&files, &keys, &opts);
    let mut problems: Vec<String> = read_errors;
    problems.extend(
        report
            .errors
            .iter()
            .map(|e| format!("{}: {}", e.path, e.message)),
    );
    let emit = problems.is_empty() || !a.strict;
    if emit {
        if a.output == "-" {
            write_stdout(&render::secrets_to_yaml(&report.secrets))?;
        } else {
            write_dir(Path::new(&a.output), &report.secrets)?;
        }
    }
    if problems.is_empty() {
        eprintln!(
            "rendered {} Secrets from {} SOPS files",
            report.secrets.len(),
            report.decrypted_files
        );
        return Ok(());
    }
    for p in &problems {
        eprintln!("sopsync: {p}");
    }
    Err(other(
        format!(
            "{} file(s) failed; {}",
            problems.len(),
            if emit {
                format!(
                    "rendered {} Secrets from the other files",
                    report.secrets.len()
                )
            } else {
                "nothing was emitted (--strict)".to_string()
            }
        ),
        1,
        Some("fix or re-encrypt the files named above"),
    ))
}
