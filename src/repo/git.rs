//! Fetching a Git repository with the `git` CLI.
//!
//! Why the git CLI and not gix: it speaks every transport we need (file, git, http(s)
//! with any auth, ssh with the system's OpenSSH and known_hosts) with zero compile
//! cost, and gix would spawn `ssh` anyway (gitoxide has no built-in SSH transport).
//! The controller image ships git and openssh-client.
//!
//! Security: credentials never appear on a command line or in logs. HTTP credentials
//! reach git through `GIT_ASKPASS` pointing at this very binary (see [`askpass_main`]),
//! with the secret passed in the child's environment only; SSH uses a key file and a
//! known_hosts file with strict host key checking. URLs are shown without userinfo.

use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// How to authenticate.
#[derive(Clone, Default)]
pub struct GitAuth {
    /// HTTP basic username (a token usually goes in `password` with any username).
    pub username: Option<String>,
    /// HTTP password or token.
    pub password: Option<zeroize::Zeroizing<String>>,
    /// SSH private key file.
    pub ssh_key: Option<PathBuf>,
    /// SSH known_hosts file (required with `ssh_key`: host keys are always checked).
    pub known_hosts: Option<PathBuf>,
}

impl std::fmt::Debug for GitAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GitAuth")
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "[REDACTED]"))
            .field("ssh_key", &self.ssh_key)
            .field("known_hosts", &self.known_hosts)
            .finish()
    }
}

impl GitAuth {
    /// Reads `SOPSYNC_GIT_USERNAME`, `SOPSYNC_GIT_PASSWORD` (or `SOPSYNC_GIT_PASSWORD_FILE`),
    /// `SOPSYNC_GIT_SSH_KEY` and `SOPSYNC_GIT_KNOWN_HOSTS`.
    pub fn from_env() -> Result<GitAuth, GitError> {
        let password = match (
            std::env::var("SOPSYNC_GIT_PASSWORD").ok(),
            std::env::var_os("SOPSYNC_GIT_PASSWORD_FILE"),
        ) {
            (Some(p), _) => Some(zeroize::Zeroizing::new(p)),
            (None, Some(f)) => Some(zeroize::Zeroizing::new(
                std::fs::read_to_string(&f)
                    .map_err(|e| {
                        GitError::Auth(format!(
                            "cannot read SOPSYNC_GIT_PASSWORD_FILE {}: {e}",
                            PathBuf::from(&f).display()
                        ))
                    })?
                    .trim_end_matches(['\r', '\n'])
                    .to_string(),
            )),
            (None, None) => None,
        };
        Ok(GitAuth {
            username: std::env::var("SOPSYNC_GIT_USERNAME").ok(),
            password,
            ssh_key: std::env::var_os("SOPSYNC_GIT_SSH_KEY").map(PathBuf::from),
            known_hosts: std::env::var_os("SOPSYNC_GIT_KNOWN_HOSTS").map(PathBuf::from),
        })
    }
}

/// A fetch failure.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum GitError {
    /// git could not be started.
    #[error("cannot run git: {0}; install git")]
    NoGit(String),
    /// git failed; the message is git's own (credentials removed).
    #[error("git {action} of {url} failed: {message}")]
    Failed {
        /// What was being done.
        action: &'static str,
        /// The URL without userinfo.
        url: String,
        /// git's stderr, last lines.
        message: String,
    },
    /// git did not finish in time.
    #[error("git {action} of {url} timed out after {seconds}s")]
    Timeout {
        /// What was being done.
        action: &'static str,
        /// The URL without userinfo.
        url: String,
        /// The limit.
        seconds: u64,
    },
    /// Authentication setup is incomplete.
    #[error("{0}")]
    Auth(String),
    /// The cache directory is unusable.
    #[error("git cache {path}: {source}")]
    Cache {
        /// The directory.
        path: String,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// A checked-out revision.
#[derive(Debug, Clone)]
pub struct Checkout {
    /// The working tree.
    pub dir: PathBuf,
    /// The commit id.
    pub commit: String,
}

/// The URL with any `user:password@` removed, for messages.
pub fn redact_url(url: &str) -> String {
    if let Some((scheme, rest)) = url.split_once("://") {
        if let Some((userinfo, host)) = rest.split_once('@') {
            if !userinfo.contains('/') {
                return format!("{scheme}://{host}");
            }
        }
    }
    url.to_string()
}

/// Is `s` a full commit id?
fn is_commit_id(s: &str) -> bool {
    s.len() == 40 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

struct Runner<'a> {
    url: &'a str,
    auth: &'a GitAuth,
    timeout: Duration,
}

impl Runner<'_> {
    fn run(&self, action: &'static str, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        let mut cmd = Command::new("git");
        cmd.arg("-C").arg(dir);
        // No credential helpers, no prompts: auth comes only from GitAuth.
        cmd.args(["-c", "credential.helper=", "-c", "core.askPass="]);
        cmd.args(args)
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .env_remove("GIT_DIR")
            .env_remove("GIT_WORK_TREE")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        if let Some(pw) = &self.auth.password {
            let exe = std::env::current_exe().map_err(|e| {
                GitError::Auth(format!("cannot locate sopsync for GIT_ASKPASS: {e}"))
            })?;
            cmd.env("GIT_ASKPASS", exe)
                .env("SOPSYNC_ASKPASS", "1")
                .env(
                    "SOPSYNC_ASKPASS_USERNAME",
                    self.auth.username.as_deref().unwrap_or("git"),
                )
                .env("SOPSYNC_ASKPASS_PASSWORD", pw.as_str());
        }
        if let Some(key) = &self.auth.ssh_key {
            let kh = self
                .auth
                .known_hosts
                .as_ref()
                .ok_or_else(|| GitError::Auth("an SSH key needs a known_hosts file (SOPSYNC_GIT_KNOWN_HOSTS): host keys are always checked".into()))?;
            let q = |p: &Path| format!("'{}'", p.display().to_string().replace('\'', "'\\''"));
            cmd.env(
                "GIT_SSH_COMMAND",
                format!(
                    "ssh -i {} -o IdentitiesOnly=yes -o UserKnownHostsFile={} -o StrictHostKeyChecking=yes -o BatchMode=yes -o ConnectTimeout=10",
                    q(key),
                    q(kh)
                ),
            );
        }
        let mut child = cmd.spawn().map_err(|e| GitError::NoGit(e.to_string()))?;
        let deadline = Instant::now() + self.timeout;
        // Drain output on threads so a chatty git cannot block on a full pipe.
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stdout, &mut s);
            s
        });
        let err_t = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = std::io::Read::read_to_string(&mut stderr, &mut s);
            s
        });
        let status = loop {
            match child.try_wait() {
                Ok(Some(st)) => break st,
                Ok(None) if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(GitError::Timeout {
                        action,
                        url: redact_url(self.url),
                        seconds: self.timeout.as_secs(),
                    });
                }
                Ok(None) => std::thread::sleep(Duration::from_millis(20)),
                Err(e) => return Err(GitError::NoGit(e.to_string())),
            }
        };
        let out = out_t.join().unwrap_or_default();
        let err = err_t.join().unwrap_or_default();
        if status.success() {
            Ok(out)
        } else {
            // The cause (e.g. ssh's "Host key verification failed.") often comes
            // before git's generic last lines: keep lines that name one, then the tail.
            let lines: Vec<&str> = err
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty() && !l.starts_with("@@@"))
                .collect();
            let mut picked: Vec<&str> = lines
                .iter()
                .copied()
                .filter(|l| {
                    let l = l.to_ascii_lowercase();
                    l.contains("host key")
                        || l.contains("permission denied")
                        || l.contains("authentication")
                        || l.contains("could not resolve")
                        || l.contains("connection refused")
                })
                .take(3)
                .collect();
            for l in &lines[lines.len().saturating_sub(3)..] {
                if !picked.contains(l) {
                    picked.push(l);
                }
            }
            let tail = picked.join(" / ");
            Err(GitError::Failed {
                action,
                url: redact_url(self.url),
                message: redact_url(&tail),
            })
        }
    }
}

/// The cache directory for a URL under `cache_root`.
pub fn cache_dir(cache_root: &Path, url: &str) -> PathBuf {
    let digest = Sha256::digest(redact_url(url).as_bytes());
    let name: String = digest.iter().take(12).map(|b| format!("{b:02x}")).collect();
    cache_root.join(name)
}

/// Fetches `reference` (branch, tag or commit; default: the remote HEAD) of `url`
/// into a cached working tree and checks it out. The previous checkout is only
/// replaced after a successful fetch, so a failing server leaves it intact.
pub fn fetch(
    url: &str,
    reference: Option<&str>,
    cache_root: &Path,
    auth: &GitAuth,
    timeout: Duration,
) -> Result<Checkout, GitError> {
    fetch_path(url, reference, None, cache_root, auth, timeout)
}

/// The directory to check out sparsely, when `path` is a plain relative directory
/// (`a/b`, slashes around it ignored). Anything else (`.`, `..`, empty components,
/// backslashes) gets a full checkout, so the caller's own path checks report it
/// exactly as before.
fn sparse_dir(path: Option<&str>) -> Option<&str> {
    let p = path?.trim_matches('/');
    let plain = !p.is_empty()
        && !p.contains('\\')
        && p.split('/').all(|c| !c.is_empty() && c != "." && c != "..");
    plain.then_some(p)
}

/// Whether a cached repository's config sets `key=value` (whitespace ignored, case
/// folded) in `[section]` or `[section "sub"]` (written as `section.sub`), read from
/// its config files rather than by starting git on every fetch (`sparse-checkout set`
/// writes to `config.worktree`).
fn config_says(dir: &Path, section: &str, key_value: &str) -> bool {
    let header = match section.split_once('.') {
        Some((s, sub)) => format!("[{s}\"{sub}\"]"),
        None => format!("[{section}]"),
    };
    ["config", "config.worktree"].iter().any(|f| {
        let Ok(text) = std::fs::read_to_string(dir.join(".git").join(f)) else {
            return false;
        };
        let mut inside = false;
        text.lines().any(|l| {
            let l: String = l
                .split_whitespace()
                .collect::<String>()
                .to_ascii_lowercase();
            if l.starts_with('[') {
                inside = l == header.to_ascii_lowercase();
                return false;
            }
            inside && l == key_value
        })
    })
}

/// Whether a cached repository has a sparse checkout switched on.
fn sparse_enabled(dir: &Path) -> bool {
    config_says(dir, "core", "sparsecheckout=true")
}

/// Like [`fetch`], but when `path` names a directory only that directory (and the
/// files at the repository root) is written to the working tree, with a cone-mode
/// sparse checkout. A controller syncing one folder of a large repository then writes
/// that folder's files, not the whole tree, on every fresh checkout (measured with
/// `benches/controller_sync.rs`: 10 sources of 1,000 files in one 10,000-file
/// repository wrote 100,000 files before). Nothing outside `path` may be read from
/// the returned checkout.
pub fn fetch_path(
    url: &str,
    reference: Option<&str>,
    path: Option<&str>,
    cache_root: &Path,
    auth: &GitAuth,
    timeout: Duration,
) -> Result<Checkout, GitError> {
    let dir = cache_dir(cache_root, url);
    let runner = Runner { url, auth, timeout };
    let cache_err = |source| GitError::Cache {
        path: dir.display().to_string(),
        source,
    };
    if !dir.join(".git").is_dir() {
        std::fs::create_dir_all(&dir).map_err(cache_err)?;
        runner.run("init", &dir, &["init", "-q"])?;
        runner.run("init", &dir, &["remote", "add", "origin", url])?;
    } else {
        runner.run("init", &dir, &["remote", "set-url", "origin", url])?;
    }
    // With a path, a partial clone: blobs come only for the files checked out, when
    // git checks them out (`--filter=blob:none`), so a folder of a large repository
    // costs that folder rather than the whole repository. Servers that do not support
    // filters send everything, as before. `promisor` lets git fetch a missing blob
    // later (another path, or none) from the same remote, with the same credentials.
    let partial = sparse_dir(path).is_some();
    if partial && !config_says(&dir, "remote.origin", "promisor=true") {
        runner.run("init", &dir, &["config", "remote.origin.promisor", "true"])?;
    }
    let filter: &[&str] = if partial {
        &["--filter=blob:none"]
    } else {
        &[]
    };
    let fetch_args = |rest: &[&'static str], r: &str| -> Vec<String> {
        ["fetch", "-q"]
            .iter()
            .chain(filter)
            .chain(rest)
            .map(|a| a.to_string())
            .chain([r.to_string()])
            .collect()
    };
    let target = match reference {
        Some(r) if is_commit_id(r) => {
            // Servers need not serve arbitrary commits by id: fetch the branches
            // (incrementally) and check the commit out.
            let args = fetch_args(
                &["--no-tags", "origin"],
                "+refs/heads/*:refs/remotes/origin/*",
            );
            runner.run(
                "fetch",
                &dir,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            r.to_string()
        }
        Some(r) => {
            let args = fetch_args(&["--depth", "1", "--no-tags", "origin"], r);
            runner.run(
                "fetch",
                &dir,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            "FETCH_HEAD".to_string()
        }
        None => {
            let args = fetch_args(&["--depth", "1", "--no-tags", "origin"], "HEAD");
            runner.run(
                "fetch",
                &dir,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            "FETCH_HEAD".to_string()
        }
    };
    // Before the checkout, so that it writes only the sparse cone; `set` and
    // `disable` also update an existing working tree when the path changed. The cone
    // is only an optimisation: when git refuses it (the path is a file or symlink in
    // the current checkout, or git is too old), everything is checked out as before.
    let sparse = sparse_dir(path).is_some_and(|p| {
        runner
            .run(
                "checkout",
                &dir,
                &["sparse-checkout", "set", "--cone", "--", p],
            )
            .is_ok()
    });
    if !sparse && sparse_enabled(&dir) {
        runner.run("checkout", &dir, &["sparse-checkout", "disable"])?;
    }
    runner.run(
        "checkout",
        &dir,
        &["checkout", "-q", "--force", "--detach", &target],
    )?;
    if let Some(p) = sparse_dir(path).filter(|_| sparse) {
        // A `path` that is (or goes through) a symlink points at a directory the cone
        // left out: check everything out, as before, rather than see an empty tree.
        let mut at = dir.clone();
        let through_symlink = p.split('/').any(|c| {
            at.push(c);
            std::fs::symlink_metadata(&at).is_ok_and(|m| m.file_type().is_symlink())
        });
        if through_symlink {
            runner.run("checkout", &dir, &["sparse-checkout", "disable"])?;
        }
    }
    runner.run("checkout", &dir, &["clean", "-q", "-ffdx"])?;
    let commit = runner
        .run("rev-parse", &dir, &["rev-parse", "HEAD"])?
        .trim()
        .to_string();
    Ok(Checkout { dir, commit })
}

/// When this binary runs as git's `GIT_ASKPASS` (env `SOPSYNC_ASKPASS=1`), answer the
/// prompt from the environment git was given and return the exit code.
pub fn askpass_main() -> Option<i32> {
    std::env::var_os("SOPSYNC_ASKPASS")?;
    let prompt = std::env::args().nth(1).unwrap_or_default();
    let var = if prompt.starts_with("Username") {
        "SOPSYNC_ASKPASS_USERNAME"
    } else {
        "SOPSYNC_ASKPASS_PASSWORD"
    };
    match std::env::var(var) {
        Ok(v) => {
            println!("{v}");
            Some(0)
        }
        Err(_) => Some(1),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_shown_without_credentials() {
        assert_eq!(
            redact_url("https://user:tok@example.com/r.git"),
            "https://example.com/r.git"
        );
        assert_eq!(redact_url("ssh://git@host:22/r.git"), "ssh://host:22/r.git");
        assert_eq!(redact_url("file:///tmp/r"), "file:///tmp/r");
    }

    #[test]
    fn debug_hides_the_password() {
        let a = GitAuth {
            password: Some(zeroize::Zeroizing::new("s3cret".into())),
            ..Default::default()
        };
        assert!(!format!("{a:?}").contains("s3cret"));
    }
}
