//! `sopsync render`: a repository of SOPS files (a local path or a Git URL) → the
//! Kubernetes Secret manifests the controller would apply.
//!
//! Failure policy (documented in the README): by default every file that renders is
//! emitted, each failing file is reported on stderr by path, and the exit code is 1;
//! with `--strict` nothing is emitted when any file fails.

use super::write_stdout;
use crate::error::CliError;
use crate::repo::git::{self, GitAuth};
use crate::repo::names;
use crate::repo::render::{self, RenderOptions};
use crate::repo::walk::{self, WalkLimits};
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

/// Writes one `NAMESPACE/NAME.yaml` per Secret under `dir` without ever leaving it.
///
/// Security: `dir` (the user's own argument) is opened once and everything below it
/// is reached relative to that descriptor. A namespace directory that is a symlink is
/// refused (`O_NOFOLLOW`), never followed; a file is written to a fresh temp file
/// (`O_EXCL|O_NOFOLLOW`, 0600) and renamed over the old name, so a symlink planted
/// at `NAME.yaml` is replaced, not written through, and an old file's looser mode
/// does not survive. Names were validated by the render; they are checked again here
/// because a path join must not depend on a check made elsewhere.
fn write_dir(dir: &Path, secrets: &[render::DesiredSecret]) -> Result<(), CliError> {
    use rustix::fs::{Mode, OFlags};
    use std::os::unix::fs::DirBuilderExt;
    let werr = |p: &Path, source: std::io::Error| CliError::Write {
        path: p.display().to_string(),
        source,
    };
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| werr(dir, e))?;
    let root = rustix::fs::open(
        dir,
        OFlags::RDONLY | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| werr(dir, e.into()))?;
    for s in secrets {
        let ns_path = dir.join(&s.namespace);
        let path = ns_path.join(format!("{}.yaml", s.name));
        let refuse = |p: &Path, why: &str| {
            werr(
                p,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, why.to_string()),
            )
        };
        names::check_namespace(&s.namespace).map_err(|rule| refuse(&ns_path, rule))?;
        names::check_secret_name(&s.name).map_err(|rule| refuse(&path, rule))?;
        match rustix::fs::mkdirat(&root, s.namespace.as_str(), Mode::from_raw_mode(0o700)) {
            Ok(()) | Err(rustix::io::Errno::EXIST) => {}
            Err(e) => return Err(werr(&ns_path, e.into())),
        }
        let ns_dir = rustix::fs::openat(
            &root,
            s.namespace.as_str(),
            OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::empty(),
        )
        .map_err(|e| match e {
            // O_NOFOLLOW on a symlink: ELOOP; O_DIRECTORY on anything else: ENOTDIR.
            rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR => refuse(
                &ns_path,
                "exists and is not a directory (a symlink is never followed); remove it",
            ),
            e => werr(&ns_path, e.into()),
        })?;
        let bytes = render::secrets_to_yaml(std::slice::from_ref(s));
        write_file_at(&ns_dir, &format!("{}.yaml", s.name), &bytes).map_err(|e| werr(&path, e))?;
    }
    Ok(())
}

/// Replaces `name` in the directory `dir` with `bytes`: a new 0600 temp file beside
/// it, synced, then renamed over `name` (atomic; a symlink at `name` is replaced).
fn write_file_at(dir: &rustix::fd::OwnedFd, name: &str, bytes: &[u8]) -> std::io::Result<()> {
    use rustix::fs::{Mode, OFlags};
    let mut attempt = 0u32;
    let (tmp_name, fd) = loop {
        let tmp_name = format!(".sopsync-{}-{attempt}.tmp", std::process::id());
        match rustix::fs::openat(
            dir,
            tmp_name.as_str(),
            OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC,
            Mode::from_raw_mode(0o600),
        ) {
            Ok(fd) => break (tmp_name, fd),
            // Left over by a run that was killed, or another run's: pick another name.
            Err(rustix::io::Errno::EXIST) if attempt < 1000 => attempt += 1,
            Err(e) => return Err(e.into()),
        }
    };
    let written = (|| {
        // The umask may have taken bits away; 0600 exactly is the contract.
        rustix::fs::fchmod(&fd, Mode::from_raw_mode(0o600))?;
        let mut file = std::fs::File::from(fd);
        file.write_all(bytes)?;
        file.sync_all()?;
        rustix::fs::renameat(dir, tmp_name.as_str(), dir, name)?;
        Ok(())
    })();
    if written.is_err() {
        let _ = rustix::fs::unlinkat(dir, tmp_name.as_str(), rustix::fs::AtFlags::empty());
    }
    written
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
    let walked = match &a.path {
        Some(sub) => walk::secure_join(&root, sub).map_err(|e| other(e.to_string(), 1, None))?,
        None => root.clone(),
    };
    if !walked.is_dir() {
        return Err(other(
            format!("{}: not a directory", walked.display()),
            100,
            Some("pass a directory or a Git URL"),
        ));
    }
    let tree = walk::walk_tree(&root, a.path.as_deref(), &limits)
        .map_err(|e| other(e.to_string(), 1, None))?;
    for note in &tree.skipped {
        eprintln!("sopsync: note: {note}");
    }
    let files = tree.files;
    let read_errors: Vec<String> = tree.failures.iter().map(ToString::to_string).collect();
    let keys = crate::keysource::keys();
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
