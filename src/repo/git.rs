//! Fetching a Git repository with the `git` CLI.
//!
//! Why the git CLI and not gix: it speaks every transport we need (file, git, http(s)
//! with any auth, ssh with the system's OpenSSH and known_hosts) with zero compile
//! cost, and gix would spawn `ssh` anyway (gitoxide has no built-in SSH transport).
//! The controller image ships git and openssh-client.
//!
//! Security (issue 11):
//! - git is given data, never options: a source URL is checked by scheme
//!   ([`parse_url`]) and a ref by git's ref-name rules ([`check_ref`]) before git runs,
//!   and both come after `--end-of-options`;
//! - the transports are pinned by sopsync ([`GitPolicy`]): https, http, ssh, git and
//!   (unless a controller forbids it) file; never `ext::` or another remote helper,
//!   whatever `GIT_ALLOW_PROTOCOL` or an `insteadOf` rewrite says. The controller also
//!   builds git's whole environment and may restrict the hosts;
//! - credentials never appear on a command line, in the cache's `.git/config` or in
//!   messages: a password or token inside a URL is taken out of it and, like
//!   [`GitAuth`]'s, reaches git only through `GIT_ASKPASS` pointing at this very binary
//!   (see [`askpass_main`]), in the child's environment; SSH uses a key file and a
//!   known_hosts file with strict host key checking. Caches are 0700. URLs in
//!   messages are shown without user information ([`redact_url`]);
//! - every git command runs under a deadline that ends its whole process group
//!   (helpers included), see [`crate::child`].
//!
//! One file past 600 lines on purpose: everything that decides what git is given (URL
//! and ref checks, the transport and host policy, the environment, the credentials) sits
//! next to the one place that runs it, so a reviewer sees the whole boundary at once;
//! about a third of it is the unit tests of those rules.

use crate::child::{self, ChildError};
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Duration;
use zeroize::Zeroizing;

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
    /// The ref is not a full commit id nor a valid ref name.
    #[error("ref {reference:?} is refused: {reason}; give a branch, a tag or a full commit id")]
    InvalidRef {
        /// The ref as given (at most 100 characters, shown escaped).
        reference: String,
        /// The rule it breaks.
        reason: &'static str,
    },
    /// The source URL is not one git may be given.
    #[error("source URL {url:?} is refused: {reason}; use https://, http://, ssh://, git://, file:///path or user@host:path")]
    InvalidUrl {
        /// The URL without credentials.
        url: String,
        /// Why.
        reason: String,
    },
    /// The source is valid but this controller does not allow it.
    #[error("source URL {url:?} is not allowed here: {reason}")]
    SourceDenied {
        /// The URL without credentials.
        url: String,
        /// Why.
        reason: String,
    },
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

/// `text` with the user information (`user:password@`) of every `scheme://` URL in it
/// removed, for messages: a whole URL, or git's stderr that quotes one. The user
/// information runs to the LAST `@` before the host's end, so a password holding an
/// `@` is removed whole rather than leaving its tail in view.
pub fn redact_url(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(i) = rest.find("://") {
        let (head, tail) = rest.split_at(i + 3);
        out.push_str(head);
        // The authority ends where a path, query, fragment or the quoted text does.
        let end = tail
            .find(|c: char| {
                matches!(c, '/' | '?' | '#' | '\'' | '"' | '<' | '>') || c.is_whitespace()
            })
            .unwrap_or(tail.len());
        let authority = &tail[..end];
        out.push_str(
            authority
                .rfind('@')
                .map_or(authority, |at| &authority[at + 1..]),
        );
        rest = &tail[end..];
    }
    out.push_str(rest);
    out
}

/// The transports sopsync lets git use; nothing else (`ext::`, `fd::`, other remote
/// helpers) is ever allowed, whatever the environment or git's configuration says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transport {
    /// `https://`.
    Https,
    /// `http://`.
    Http,
    /// `ssh://` and scp-like `user@host:path`.
    Ssh,
    /// `git://` (git daemon, unauthenticated).
    Git,
    /// `file://` and local paths: the machine's own filesystem.
    File,
}

impl Transport {
    /// git's name for it (`protocol.<name>.allow`, `GIT_ALLOW_PROTOCOL`).
    fn protocol(self) -> &'static str {
        match self {
            Transport::Https => "https",
            Transport::Http => "http",
            Transport::Ssh => "ssh",
            Transport::Git => "git",
            Transport::File => "file",
        }
    }
}

/// A source URL that passed [`parse_url`]: what git is given, and the credentials
/// that were taken out of it.
pub struct SourceUrl {
    /// The URL handed to git and written to the cache's config: no password or token
    /// (an SSH user name such as `git@` stays; it is not a secret).
    pub clean: String,
    /// How git reaches it.
    pub transport: Transport,
    /// The host, lower-cased, without port or brackets (`None` for local sources).
    pub host: Option<String>,
    /// The HTTP user name taken out of the URL (percent-decoded).
    username: Option<Zeroizing<String>>,
    /// The HTTP password or token taken out of the URL (percent-decoded).
    password: Option<Zeroizing<String>>,
}

impl std::fmt::Debug for SourceUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SourceUrl")
            .field("clean", &self.clean)
            .field("transport", &self.transport)
            .field("host", &self.host)
            .field("credentials", &self.password.as_ref().map(|_| "[REDACTED]"))
            .finish()
    }
}

fn url_refused(url: &str, reason: impl Into<String>) -> GitError {
    GitError::InvalidUrl {
        url: redact_url(url),
        reason: reason.into(),
    }
}

/// A host name or IP literal (brackets already removed): letters, digits, `.`, `-`,
/// `_`, and for IPv6 `:`; never a leading `-` (ssh would read it as an option,
/// CVE-2017-1000117).
fn valid_host(host: &str) -> bool {
    !host.is_empty()
        && !host.starts_with('-')
        && host
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

fn decode(part: &str) -> Zeroizing<String> {
    Zeroizing::new(
        percent_encoding::percent_decode_str(part)
            .decode_utf8_lossy()
            .into_owned(),
    )
}

/// Checks a source URL by scheme before git sees it, and takes any password or token
/// out of it (issue 11 points 1 and 6). Accepted: `https://`, `http://`, `ssh://`,
/// `git://`, `file:///path`, scp-like `[user@]host:path`, and a local path (reported as
/// [`Transport::File`]). Refused: a leading `-`, control characters, `<helper>::`
/// and every other scheme, a host beginning with `-`, a password in an SSH URL.
///
/// Errors: [`GitError::InvalidUrl`], naming the URL without its credentials.
pub fn parse_url(url: &str) -> Result<SourceUrl, GitError> {
    if url.is_empty() {
        return Err(url_refused(url, "it is empty"));
    }
    if url.chars().any(char::is_control) {
        return Err(url_refused(url, "it contains a control character"));
    }
    if url.starts_with('-') {
        return Err(url_refused(
            url,
            "it begins with '-', which git would read as an option",
        ));
    }
    let Some((scheme, rest)) = url.split_once("://") else {
        // git hands `<name>::<address>` to the remote helper git-remote-<name>
        // (`ext::` runs any command): none is allowed.
        if url.contains("::") {
            return Err(url_refused(
                url,
                "remote-helper transports (`<name>::`) are not allowed",
            ));
        }
        return parse_scp_like(url);
    };
    let transport = match scheme.to_ascii_lowercase().as_str() {
        "https" => Transport::Https,
        "http" => Transport::Http,
        "ssh" => Transport::Ssh,
        "git" => Transport::Git,
        "file" => Transport::File,
        _ => {
            return Err(url_refused(
                url,
                format!("the scheme {scheme:?} is not one of https, http, ssh, git, file"),
            ))
        }
    };
    let end = rest.find(['/', '?', '#']).unwrap_or(rest.len());
    let (authority, path) = rest.split_at(end);
    if transport == Transport::File {
        if !authority.is_empty() {
            return Err(url_refused(
                url,
                "a file:// URL names a local path: file:///path",
            ));
        }
        return Ok(SourceUrl {
            clean: url.to_string(),
            transport,
            host: None,
            username: None,
            password: None,
        });
    }
    let (userinfo, host_port) = match authority.rfind('@') {
        Some(at) => (Some(&authority[..at]), &authority[at + 1..]),
        None => (None, authority),
    };
    let host = match host_port.strip_prefix('[') {
        Some(v6) => v6.split_once(']').map(|(h, _)| h).unwrap_or(""),
        None => host_port.rsplit_once(':').map_or(host_port, |(h, _)| h),
    };
    let port = host_port
        .strip_prefix('[')
        .map_or(host_port.rsplit_once(':').map(|(_, p)| p), |v6| {
            v6.split_once(']').and_then(|(_, p)| p.strip_prefix(':'))
        });
    if !valid_host(host) || port.is_some_and(|p| !p.bytes().all(|b| b.is_ascii_digit())) {
        return Err(url_refused(url, "the host or port is not valid"));
    }
    let (user, password) = match userinfo {
        None => (None, None),
        Some(u) => match u.split_once(':') {
            Some((user, pw)) => (Some(user), Some(pw)),
            None => (Some(u), None),
        },
    };
    let host = Some(host.trim_end_matches('.').to_ascii_lowercase());
    let clean_with = |userinfo: Option<&str>| match userinfo {
        Some(u) => format!("{scheme}://{u}@{host_port}{path}"),
        None => format!("{scheme}://{host_port}{path}"),
    };
    match transport {
        Transport::Ssh => {
            if password.is_some() {
                return Err(url_refused(
                    url,
                    "an ssh:// URL cannot carry a password; use an SSH key (SOPSYNC_GIT_SSH_KEY, or `identity` in the auth Secret)",
                ));
            }
            // The user name stays: ssh needs it, and it is not a secret.
            if user.is_some_and(|u| u.starts_with('-')) {
                return Err(url_refused(url, "the user name begins with '-'"));
            }
            Ok(SourceUrl {
                clean: clean_with(user),
                transport,
                host,
                username: None,
                password: None,
            })
        }
        // Over HTTP a user name alone may be a token (`https://<token>@host/`): all
        // of the user information leaves the URL and goes through askpass.
        Transport::Https | Transport::Http => Ok(SourceUrl {
            clean: clean_with(None),
            transport,
            host,
            username: user.map(decode),
            password: password.map(decode),
        }),
        // git:// has no authentication: user information is dropped.
        Transport::Git | Transport::File => Ok(SourceUrl {
            clean: clean_with(None),
            transport,
            host,
            username: None,
            password: None,
        }),
    }
}

/// `[user@]host:path` (git's scp-like SSH syntax: a `:` before any `/`), else a local
/// path.
fn parse_scp_like(url: &str) -> Result<SourceUrl, GitError> {
    let scp = url
        .find(':')
        .filter(|&colon| !url[..colon].contains('/'))
        .map(|colon| (&url[..colon], &url[colon + 1..]));
    let Some((user_host, path)) = scp else {
        return Ok(SourceUrl {
            clean: url.to_string(),
            transport: Transport::File,
            host: None,
            username: None,
            password: None,
        });
    };
    let (user, host) = match user_host.rsplit_once('@') {
        Some((u, h)) => (Some(u), h),
        None => (None, user_host),
    };
    if !valid_host(host)
        || host.contains(':')
        || user.is_some_and(|u| u.is_empty() || u.starts_with('-'))
    {
        return Err(url_refused(
            url,
            "the host or user of the scp-like URL is not valid",
        ));
    }
    if path.is_empty() || path.starts_with('-') {
        return Err(url_refused(
            url,
            "the path of the scp-like URL is empty or begins with '-'",
        ));
    }
    Ok(SourceUrl {
        clean: url.to_string(),
        transport: Transport::Ssh,
        host: Some(host.trim_end_matches('.').to_ascii_lowercase()),
        username: None,
        password: None,
    })
}

/// Whether `s` names a Git source rather than a local directory: a `scheme://` URL,
/// a `<helper>::` address (refused later, with its reason), or scp-like `user@host:path`.
pub fn looks_like_url(s: &str) -> bool {
    s.contains("://")
        || s.contains("::")
        || s.find(':')
            .is_some_and(|colon| !s[..colon].contains('/') && s[..colon].contains('@'))
}

/// Is `s` a full commit id (SHA-1, or SHA-256 for repositories in that format)?
fn is_commit_id(s: &str) -> bool {
    (s.len() == 40 || s.len() == 64) && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Why `name` breaks git's ref-name rules (`git help check-ref-format`), or `None`
/// when it is a valid branch, tag or full ref name. A leading `-` (an option to git)
/// and a leading `+` (a forced refspec) are refused as well: a ref is data, never
/// syntax.
fn ref_name_problem(name: &str) -> Option<&'static str> {
    if name.is_empty() {
        return Some("it is empty");
    }
    if name.len() > 1024 {
        return Some("it is longer than 1024 bytes");
    }
    if name.starts_with('-') {
        return Some("it begins with '-', which git would read as an option");
    }
    if name.starts_with('+') {
        return Some("it begins with '+', which makes a forced refspec");
    }
    // Rule 4: no control characters, space, `~`, `^`, `:`; rule 5: no `?`, `*`, `[`;
    // rule 10: no backslash.
    if name
        .chars()
        .any(|c| c.is_control() || matches!(c, ' ' | '~' | '^' | ':' | '?' | '*' | '[' | '\\'))
    {
        return Some("it contains a space, a control character or one of ~ ^ : ? * [ \\");
    }
    // Rule 3: no `..`; rule 8: no `@{`; rule 9: not `@` alone.
    if name.contains("..") || name.contains("@{") || name == "@" {
        return Some("it contains '..' or '@{', or is '@'");
    }
    // Rule 6: no leading or trailing slash, no empty component; rule 7: no trailing dot.
    if name.starts_with('/') || name.ends_with('/') || name.contains("//") || name.ends_with('.') {
        return Some("it begins or ends with '/', has '//', or ends with '.'");
    }
    // Rule 1: no component begins with `.` or ends with `.lock`.
    if name
        .split('/')
        .any(|c| c.starts_with('.') || c.ends_with(".lock"))
    {
        return Some("a component begins with '.' or ends with '.lock'");
    }
    None
}

/// Checks a `--ref`/`spec.ref`: a full commit id, or a name git's ref-name rules
/// accept (`git help check-ref-format`, plus no leading `-` or `+`).
///
/// Errors: [`GitError::InvalidRef`].
pub fn check_ref(reference: &str) -> Result<(), GitError> {
    if is_commit_id(reference) {
        return Ok(());
    }
    match ref_name_problem(reference) {
        None => Ok(()),
        Some(reason) => Err(GitError::InvalidRef {
            reference: reference.chars().take(100).collect(),
            reason,
        }),
    }
}

/// Which sources git may be pointed at, and the environment it runs in.
#[derive(Clone, Debug)]
pub struct GitPolicy {
    /// `file://` URLs and local paths (the machine's own filesystem, other tenants'
    /// caches included on a controller).
    pub allow_local: bool,
    /// Hosts git may contact: `github.com`, or `*.corp.example` for any subdomain.
    /// Empty: any host.
    pub allowed_hosts: Vec<String>,
    /// `None`: git inherits the caller's environment (the CLI: proxies,
    /// `GIT_SSH_COMMAND`, the user's git configuration), with the transports still
    /// pinned. `Some(home)`: git's whole environment is built here (the controller),
    /// with `HOME` at this private directory and no global or system configuration.
    pub isolated_home: Option<PathBuf>,
}

impl GitPolicy {
    /// The CLI's policy: any host, local sources allowed, the caller's environment.
    pub fn cli() -> GitPolicy {
        GitPolicy {
            allow_local: true,
            allowed_hosts: Vec::new(),
            isolated_home: None,
        }
    }

    fn host_allowed(&self, host: &str) -> bool {
        self.allowed_hosts.is_empty()
            || self.allowed_hosts.iter().any(|pattern| {
                let pattern = pattern.trim().trim_end_matches('.').to_ascii_lowercase();
                match pattern.strip_prefix("*.") {
                    Some(domain) => host
                        .strip_suffix(domain)
                        .is_some_and(|sub| sub.len() > 1 && sub.ends_with('.')),
                    None => host == pattern,
                }
            })
    }

    /// The transports git may use under this policy (`GIT_ALLOW_PROTOCOL`).
    fn protocols(&self) -> Vec<&'static str> {
        let mut all = vec![
            Transport::Https,
            Transport::Http,
            Transport::Ssh,
            Transport::Git,
        ];
        if self.allow_local {
            all.push(Transport::File);
        }
        all.into_iter().map(Transport::protocol).collect()
    }
}

/// Checks a source against `policy` before anything is fetched: the URL by scheme
/// ([`parse_url`]), the ref ([`check_ref`]), local sources and the host allowlist.
///
/// Errors: [`GitError::InvalidUrl`], [`GitError::InvalidRef`] (the spec is wrong),
/// [`GitError::SourceDenied`] (valid, but not allowed here).
pub fn check_source(
    url: &str,
    reference: Option<&str>,
    policy: &GitPolicy,
) -> Result<SourceUrl, GitError> {
    let parsed = parse_url(url)?;
    if let Some(r) = reference {
        check_ref(r)?;
    }
    let denied = |reason: String| GitError::SourceDenied {
        url: redact_url(url),
        reason,
    };
    match &parsed.host {
        None if !policy.allow_local => Err(denied(
            "local paths and file:// URLs are not allowed (the operator can allow them with --allow-local-git-sources)".into(),
        )),
        Some(host) if !policy.host_allowed(host) => Err(denied(format!(
            "the host {host:?} is not in the allowed Git hosts ({})",
            policy.allowed_hosts.join(", ")
        ))),
        _ => Ok(parsed),
    }
}

/// Variables the controller passes on to git from its own environment: where to find
/// programs, the operator's proxies, and extra CA certificates. Nothing else.
const PASSED_TO_GIT: &[&str] = &[
    "PATH",
    "HTTPS_PROXY",
    "https_proxy",
    "HTTP_PROXY",
    "http_proxy",
    "NO_PROXY",
    "no_proxy",
    "ALL_PROXY",
    "all_proxy",
    "SSL_CERT_FILE",
    "SSL_CERT_DIR",
];

/// Largest standard output kept from one git command (`rev-parse` prints 41 bytes).
const GIT_MAX_STDOUT: usize = 1 << 20;
/// Standard error kept for messages (git's last lines are what is shown).
const GIT_MAX_STDERR: usize = 64 << 10;

struct Runner<'a> {
    /// The URL without credentials (git is only ever given this one).
    url: &'a str,
    auth: &'a GitAuth,
    policy: &'a GitPolicy,
    timeout: Duration,
}

impl Runner<'_> {
    fn command(&self, dir: &Path) -> Result<Command, GitError> {
        let mut cmd = Command::new("git");
        match &self.policy.isolated_home {
            None => {
                cmd.env_remove("GIT_DIR").env_remove("GIT_WORK_TREE");
            }
            Some(home) => {
                // The controller's git sees only what is listed here: no inherited
                // GIT_* variable, no user or system configuration (insteadOf,
                // credential helpers, sshCommand), a HOME of its own.
                cmd.env_clear();
                for var in PASSED_TO_GIT {
                    if let Some(v) = std::env::var_os(var) {
                        cmd.env(var, v);
                    }
                }
                cmd.env("HOME", home)
                    .env("GIT_CONFIG_GLOBAL", "/dev/null")
                    .env("LC_ALL", "C");
            }
        }
        cmd.arg("-C").arg(dir);
        // No credential helpers, no prompts: auth comes only from GitAuth.
        cmd.args(["-c", "credential.helper=", "-c", "core.askPass="]);
        // The transports are pinned here, whatever the environment or configuration
        // says: GIT_ALLOW_PROTOCOL overrides every protocol.* setting, so an
        // inherited GIT_ALLOW_PROTOCOL=ext or a `url.<ext::...>.insteadOf` rewrite
        // cannot run a command; `protocol.allow` repeats it for the record.
        let protocols = self.policy.protocols();
        cmd.args(["-c", "protocol.allow=never"]);
        for p in &protocols {
            cmd.arg("-c").arg(format!("protocol.{p}.allow=always"));
        }
        if !self.policy.allowed_hosts.is_empty() {
            // A redirect could lead to any host: with an allowlist, none is followed.
            cmd.args(["-c", "http.followRedirects=false"]);
        }
        cmd.env("GIT_ALLOW_PROTOCOL", protocols.join(":"))
            .env("GIT_TERMINAL_PROMPT", "0")
            .env("GIT_CONFIG_NOSYSTEM", "1")
            .stdin(Stdio::null());
        if self.auth.password.is_some() || self.auth.username.is_some() {
            let exe = std::env::current_exe().map_err(|e| {
                GitError::Auth(format!("cannot locate sopsync for GIT_ASKPASS: {e}"))
            })?;
            cmd.env("GIT_ASKPASS", exe)
                .env("SOPSYNC_ASKPASS", "1")
                .env(
                    "SOPSYNC_ASKPASS_USERNAME",
                    self.auth.username.as_deref().unwrap_or("git"),
                )
                .env(
                    "SOPSYNC_ASKPASS_PASSWORD",
                    self.auth.password.as_deref().map_or("", |p| p.as_str()),
                );
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
        Ok(cmd)
    }

    fn run(&self, action: &'static str, dir: &Path, args: &[&str]) -> Result<String, GitError> {
        let mut cmd = self.command(dir)?;
        cmd.args(args);
        let limits = child::Limits {
            timeout: self.timeout,
            max_stdout: GIT_MAX_STDOUT,
            max_stderr: Some(GIT_MAX_STDERR),
            // git never prompts: GIT_TERMINAL_PROMPT=0, answers come from askpass.
            on_terminal: false,
        };
        let done = child::run(&mut cmd, &limits).map_err(|e| match e {
            ChildError::Timeout(_) => GitError::Timeout {
                action,
                url: redact_url(self.url),
                seconds: self.timeout.as_secs(),
            },
            ChildError::Spawn(e) | ChildError::Wait(e) => GitError::NoGit(e.to_string()),
            other => GitError::Failed {
                action,
                url: redact_url(self.url),
                message: other.to_string(),
            },
        })?;
        let out = String::from_utf8_lossy(&done.stdout).into_owned();
        let err = String::from_utf8_lossy(&done.stderr);
        if done.status.success() {
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

/// Creates `dir` (and missing parents) 0700, and makes it 0700 if it existed: a cache
/// holds a tenant's repository and must not be readable by other users.
fn private_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
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
/// the returned checkout. Runs under the CLI's [`GitPolicy::cli`].
pub fn fetch_path(
    url: &str,
    reference: Option<&str>,
    path: Option<&str>,
    cache_root: &Path,
    auth: &GitAuth,
    timeout: Duration,
) -> Result<Checkout, GitError> {
    let policy = GitPolicy::cli();
    fetch_with_policy(url, reference, path, cache_root, auth, timeout, &policy)
}

/// [`fetch_path`] under `policy`: the source is checked first ([`check_source`]),
/// credentials in the URL are taken out of it and used like `auth`'s (which wins when
/// both give one).
///
/// Errors: [`GitError`]; nothing is run for a refused source.
pub fn fetch_with_policy(
    url: &str,
    reference: Option<&str>,
    path: Option<&str>,
    cache_root: &Path,
    auth: &GitAuth,
    timeout: Duration,
    policy: &GitPolicy,
) -> Result<Checkout, GitError> {
    let source = check_source(url, reference, policy)?;
    let auth = GitAuth {
        username: auth
            .username
            .clone()
            .or_else(|| source.username.as_ref().map(|u| u.to_string())),
        password: auth.password.clone().or_else(|| source.password.clone()),
        ..auth.clone()
    };
    let url = source.clean.as_str();
    let dir = cache_dir(cache_root, url);
    let runner = Runner {
        url,
        auth: &auth,
        policy,
        timeout,
    };
    let cache_err = |path: &Path, source| GitError::Cache {
        path: path.display().to_string(),
        source,
    };
    for private in [cache_root, dir.as_path()]
        .into_iter()
        .chain(policy.isolated_home.as_deref())
    {
        private_dir(private).map_err(|e| cache_err(private, e))?;
    }
    // `--end-of-options` from here on: whatever follows is data to git (git >= 2.24).
    if !dir.join(".git").is_dir() {
        runner.run("init", &dir, &["init", "-q"])?;
        runner.run(
            "init",
            &dir,
            &["remote", "add", "--end-of-options", "origin", url],
        )?;
    } else {
        // Also rewrites a URL an older sopsync stored with its password in it.
        runner.run(
            "init",
            &dir,
            &["remote", "set-url", "--end-of-options", "origin", url],
        )?;
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
            .chain([
                "--end-of-options".to_string(),
                "origin".to_string(),
                r.to_string(),
            ])
            .collect()
    };
    let target = match reference {
        Some(r) if is_commit_id(r) => {
            // Servers need not serve arbitrary commits by id: fetch the branches
            // (incrementally) and check the commit out.
            let args = fetch_args(&["--no-tags"], "+refs/heads/*:refs/remotes/origin/*");
            runner.run(
                "fetch",
                &dir,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            r.to_string()
        }
        Some(r) => {
            let args = fetch_args(&["--depth", "1", "--no-tags"], r);
            runner.run(
                "fetch",
                &dir,
                &args.iter().map(String::as_str).collect::<Vec<_>>(),
            )?;
            "FETCH_HEAD".to_string()
        }
        None => {
            let args = fetch_args(&["--depth", "1", "--no-tags"], "HEAD");
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
    // No `--end-of-options` here: an older `git checkout` takes it for a path
    // (Debian bookworm's 2.39, the image's git, refuses the checkout; found by
    // scripts/image-smoke). Nothing user-written reaches this argument: it is a commit
    // id that `is_commit_id` accepted (hex only) or the literal FETCH_HEAD.
    debug_assert!(target == "FETCH_HEAD" || is_commit_id(&target));
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
        // A password holding `@`, and every URL inside a longer message.
        assert_eq!(
            redact_url("fatal: unable to access 'https://u:p@ss@h/r/': x; see http://a:b@c"),
            "fatal: unable to access 'https://h/r/': x; see http://c"
        );
    }

    #[test]
    fn refs_follow_gits_ref_name_rules() {
        for good in [
            "main",
            "v1.2.3",
            "refs/heads/feature/x",
            "HEAD",
            "release-1",
            &"a".repeat(40),
            &"0f".repeat(20),
        ] {
            assert!(check_ref(good).is_ok(), "{good}");
        }
        for bad in [
            "",
            "--upload-pack=touch x",
            "-x",
            "+main",
            "a..b",
            "a b",
            "a:b",
            "a~1",
            "a^",
            "a?",
            "a*",
            "a[",
            "a\\b",
            "a@{1}",
            "@",
            "/a",
            "a/",
            "a//b",
            "a.",
            ".a",
            "a/.b",
            "a.lock",
            "a\nb",
        ] {
            assert!(check_ref(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn urls_are_checked_by_scheme_and_lose_their_credentials() {
        let u = parse_url("https://user:p%40ss@Example.COM:8443/r.git").expect("valid");
        assert_eq!(u.clean, "https://Example.COM:8443/r.git");
        assert_eq!(u.host.as_deref(), Some("example.com"));
        assert_eq!(u.password.as_deref().map(|p| p.as_str()), Some("p@ss"));
        let u = parse_url("https://user:p@ss@h/r.git").expect("an @ in the password");
        assert_eq!(
            (u.clean.as_str(), u.host.as_deref()),
            ("https://h/r.git", Some("h"))
        );
        let u = parse_url("ssh://git@h:22/r.git").expect("valid");
        assert_eq!(
            (u.clean.as_str(), u.transport),
            ("ssh://git@h:22/r.git", Transport::Ssh)
        );
        let u = parse_url("git@github.com:org/r.git").expect("scp-like");
        assert_eq!(
            (u.host.as_deref(), u.transport),
            (Some("github.com"), Transport::Ssh)
        );
        let u = parse_url("file:///srv/r.git").expect("local");
        assert_eq!((u.host, u.transport), (None, Transport::File));
        assert_eq!(
            parse_url("/srv/r.git").expect("local").transport,
            Transport::File
        );
        for bad in [
            "--upload-pack=x://h/r",
            "-h:r",
            "ext::sh -c touch% x",
            "fd::3",
            "ftp://h/r",
            "https://h/r\n",
            "ssh://-oProxyCommand=x/r",
            "ssh://u:pw@h/r",
            "file://host/r",
            "-oProxyCommand=x@h:r",
            "h:-r",
            "transport::https://h/r",
        ] {
            assert!(parse_url(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn policy_refuses_local_sources_and_hosts_outside_the_allowlist() {
        let p = GitPolicy {
            allow_local: false,
            allowed_hosts: vec!["github.com".into(), "*.corp.example".into()],
            isolated_home: None,
        };
        assert!(check_source("https://github.com/o/r", Some("main"), &p).is_ok());
        assert!(check_source("git@git.corp.example:o/r", None, &p).is_ok());
        for denied in [
            "https://corp.example/r",
            "https://evilgithub.com/r",
            "http://169.254.169.254/r",
            "file:///etc",
            "/etc",
        ] {
            assert!(
                matches!(
                    check_source(denied, None, &p),
                    Err(GitError::SourceDenied { .. })
                ),
                "{denied}"
            );
        }
        assert!(matches!(
            check_source("https://github.com/o/r", Some("--upload-pack=x"), &p),
            Err(GitError::InvalidRef { .. })
        ));
        assert!(check_source("file:///srv/r", None, &GitPolicy::cli()).is_ok());
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
