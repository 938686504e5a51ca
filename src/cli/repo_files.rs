//! Finding the SOPS files under some directories and the `.sops.yaml` of each, for
//! `updatekeys/rotate --recursive` and `audit` (issue 14).
//!
//! - Files are found by content by `repo::walk::walk_tree` (the walker `render` uses,
//!   with its symlink, FIFO and size rules); `.git` is skipped there.
//! - `.gitignore` is honoured by asking git itself (`git check-ignore --stdin`) when a
//!   directory is inside a work tree: nested `.gitignore` files, negations,
//!   `.git/info/exclude`, `core.excludesFile` and "a tracked file is never ignored" all
//!   mean exactly what they mean to git, at no build cost (the `ignore` crate would
//!   reimplement them, and add a dozen crates to the 2-core build). Outside a work tree
//!   git applies no `.gitignore`, and neither do we: a note says so.
//! - The `.sops.yaml` of a file is the first one found from the file's own directory
//!   upwards (monorepos have several), unless `--config` names one.

use super::{read_config, LoadedConfig};
use crate::error::CliError;
use crate::repo::walk::{looks_like_sops, walk_tree, WalkLimits};
use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

/// A SOPS file found under one of the given directories.
pub(super) struct SopsFile {
    /// The walked directory (canonical) joined with the file's relative path; a
    /// symlink inside the tree stays a link here, and writes go through it.
    pub path: PathBuf,
    /// The directory as given joined with the relative path, for messages.
    pub shown: String,
    /// Its bytes as the walk read them (within the walk's size cap).
    pub bytes: Vec<u8>,
}

/// Everything found under the given directories.
pub(super) struct Found {
    /// SOPS files, each once (two links to one file are one file).
    pub sops: Vec<SopsFile>,
    /// Other regular files: (path as for `SopsFile::path`, shown).
    pub others: Vec<(PathBuf, String)>,
    /// Entries the walk could not look at: (shown, reason).
    pub failures: Vec<(String, String)>,
    /// Things the user should know (skipped FIFOs, `.gitignore` not consulted).
    pub notes: Vec<String>,
}

/// Walks every directory in `dirs` and returns what it holds, minus `.gitignore`d
/// paths. An unreadable directory given on the command line fails the whole run.
pub(super) fn discover(dirs: &[PathBuf]) -> Result<Found, CliError> {
    let mut found = Found {
        sops: Vec::new(),
        others: Vec::new(),
        failures: Vec::new(),
        notes: Vec::new(),
    };
    let mut seen = HashSet::new();
    for dir in dirs {
        let base = std::fs::canonicalize(dir).map_err(|source| CliError::Read {
            path: dir.clone(),
            source,
        })?;
        let tree = walk_tree(&base, None, &WalkLimits::default()).map_err(|e| CliError::Other {
            message: format!("{}: {e}", dir.display()),
            code: 2,
            hint: None,
        })?;
        // How reports name a file (as given; a terminal report escapes it, a JSON
        // report carries it as it is).
        let shown = |rel: &str| {
            if dir.as_os_str() == "." {
                rel.to_string()
            } else {
                dir.join(rel).display().to_string()
            }
        };
        let rels: Vec<&String> = tree.files.keys().chain(tree.others.iter()).collect();
        let ignored = match git_ignored(&base, &rels)? {
            Ignored::Paths(set) => set,
            Ignored::NotAWorkTree => {
                found.notes.push(format!(
                    "{}: not inside a Git work tree, so no .gitignore applies",
                    dir.display()
                ));
                HashSet::new()
            }
        };
        for (rel, bytes) in tree.files {
            // The walk also keeps `sopsync.yaml` manifests, which are not SOPS files.
            if ignored.contains(&rel) || !looks_like_sops(&bytes) {
                continue;
            }
            if is_leftover(&rel) {
                found.notes.push(format!(
                    "{}: skipped: left by an interrupted write (its file was not replaced); delete it",
                    shown(&rel)
                ));
                continue;
            }
            let path = base.join(&rel);
            let real = std::fs::canonicalize(&path).unwrap_or_else(|_| path.clone());
            if seen.insert(real) {
                found.sops.push(SopsFile {
                    path,
                    shown: shown(&rel),
                    bytes,
                });
            }
        }
        for rel in tree.others {
            if !ignored.contains(&rel) && !is_leftover(&rel) {
                found.others.push((base.join(&rel), shown(&rel)));
            }
        }
        for f in tree.failures {
            found
                .failures
                .push((shown(f.path()), format!("could not be read: {f}")));
        }
        for s in tree.skipped {
            found
                .notes
                .push(format!("{}: skipped: {}", shown(&s.path), s.reason));
        }
    }
    Ok(found)
}

/// A temporary file of `write_output` that a killed run left behind.
fn is_leftover(rel: &str) -> bool {
    let name = rel.rsplit('/').next().unwrap_or(rel);
    name.starts_with(super::TEMP_PREFIX) && name.ends_with(".tmp")
}

/// What git says about ignored paths.
enum Ignored {
    /// The relative paths git ignores.
    Paths(HashSet<String>),
    /// The directory is not in a work tree (or git is not installed).
    NotAWorkTree,
}

/// A `git` command run in `dir` with a built environment (STYLE 26): only what git
/// needs to find the user's own ignore rules (`core.excludesFile` in ~/.gitconfig or
/// $XDG_CONFIG_HOME/git), never the caller's `GIT_DIR` or the like.
fn git_in(dir: &Path) -> std::process::Command {
    let mut cmd = std::process::Command::new("git");
    cmd.arg("-C").arg(dir).env_clear();
    for var in ["PATH", "HOME", "XDG_CONFIG_HOME"] {
        if let Some(v) = std::env::var_os(var) {
            cmd.env(var, v);
        }
    }
    cmd.env("LC_ALL", "C");
    cmd
}

/// The paths among `rels` (relative to `base`) that git ignores. The paths go to git
/// on stdin, so none can be read as an option.
fn git_ignored(base: &Path, rels: &[&String]) -> Result<Ignored, CliError> {
    use std::process::Stdio;
    let inside = git_in(base)
        .args(["rev-parse", "--is-inside-work-tree"])
        .stdin(Stdio::null())
        .stderr(Stdio::null())
        .output();
    match inside {
        Ok(o) if o.status.success() && o.stdout.trim_ascii() == b"true" => {}
        _ => return Ok(Ignored::NotAWorkTree),
    }
    let git_err = |what: String| CliError::Other {
        message: format!(
            "{}: could not ask git which files .gitignore excludes: {what}",
            base.display()
        ),
        code: 2,
        hint: Some("check that `git status` works in that directory".into()),
    };
    let mut child = git_in(base)
        .args(["check-ignore", "-z", "--stdin"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| git_err(e.to_string()))?;
    let mut input = Vec::new();
    for r in rels {
        input.extend_from_slice(r.as_bytes());
        input.push(0);
    }
    let mut stdin = child.stdin.take();
    // Written from another thread: git answers while it reads, and a full stdout pipe
    // would otherwise stop both sides.
    let out = std::thread::scope(|s| {
        s.spawn(move || {
            if let Some(mut w) = stdin.take() {
                let _ = w.write_all(&input);
            }
        });
        child.wait_with_output()
    })
    .map_err(|e| git_err(e.to_string()))?;
    // check-ignore exits 0 when something is ignored, 1 when nothing is.
    match out.status.code() {
        Some(0) | Some(1) => {}
        _ => {
            return Err(git_err(
                String::from_utf8_lossy(&out.stderr).trim().to_string(),
            ))
        }
    }
    Ok(Ignored::Paths(
        out.stdout
            .split(|b| *b == 0)
            .filter(|p| !p.is_empty())
            .map(|p| String::from_utf8_lossy(p).into_owned())
            .collect(),
    ))
}

/// The `.sops.yaml` of each file: `--config` for all, else the first found from the
/// file's directory upwards; each config is read once.
pub(super) struct Configs {
    explicit: Option<PathBuf>,
    loaded: Mutex<HashMap<PathBuf, Result<Arc<LoadedConfig>, String>>>,
}

impl Configs {
    pub(super) fn new(explicit: Option<PathBuf>) -> Configs {
        Configs {
            explicit,
            loaded: Mutex::new(HashMap::new()),
        }
    }

    /// The config that applies to `file` and its path, `Ok(None)` when there is none;
    /// an unreadable or invalid one is an error naming it.
    pub(super) fn for_file(
        &self,
        file: &Path,
    ) -> Result<Option<(Arc<LoadedConfig>, PathBuf)>, String> {
        let path = match &self.explicit {
            Some(p) => Some(p.clone()),
            None => file
                .ancestors()
                .skip(1)
                .take(100)
                .map(|d| d.join(".sops.yaml"))
                // Any entry, as sops finds it: a FIFO or device is refused by read_config.
                .find(|c| c.exists()),
        };
        let Some(path) = path else { return Ok(None) };
        let mut loaded = self.loaded.lock().unwrap_or_else(|e| e.into_inner());
        let entry = loaded.entry(path.clone()).or_insert_with(|| {
            read_config(path.clone())
                .map(Arc::new)
                .map_err(|e| e.to_string())
        });
        entry.clone().map(|c| Some((c, path)))
    }
}
