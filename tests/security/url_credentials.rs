//! Issue 11 point 6: a password or token inside a source URL. It must reach the server
//! (through askpass) and nothing else: not the Git cache (`.git/config`, FETCH_HEAD,
//! logs), not the argv of git or git-remote-http that `ps` shows, not a message, even
//! with an `@` inside it; and the cache is private (0700).

use crate::support::cluster::{api, wait_until, Cluster};
use crate::support::git_server::{self, free_port, make_repo, processes_with, silent_server};
use crate::support::{project_root, run, run_with_deadline, sopsync, tempdir};
use serde_json::json;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::{Command, Output};
use std::time::{Duration, Instant};

fn render_cmd(cache: &Path, url: &str, timeout: &str) -> Command {
    let mut cmd = sopsync();
    cmd.env(
        "SOPS_AGE_KEY_FILE",
        project_root().join("keys-example/age.key"),
    )
    .args(["render", url, "--git-timeout", timeout, "--cache-dir"])
    .arg(cache);
    cmd
}

/// Every file under `dir` whose bytes contain `needle` (symlinks not followed).
fn files_containing(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let path = e.path();
        let kind = e.file_type().expect("type");
        if kind.is_dir() {
            hits.extend(files_containing(&path, needle));
        } else if kind.is_file() {
            let bytes = std::fs::read(&path).expect("read");
            if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                hits.push(path.display().to_string());
            }
        }
    }
    hits
}

/// The cache root and every checkout directory in it are 0700.
fn assert_private(cache_root: &Path) {
    let mode = |p: &Path| std::fs::metadata(p).expect("stat").permissions().mode() & 0o777;
    assert_eq!(mode(cache_root), 0o700, "{}", cache_root.display());
    for e in std::fs::read_dir(cache_root).expect("read_dir").flatten() {
        if e.file_type().expect("type").is_dir() {
            assert_eq!(mode(&e.path()), 0o700, "{}", e.path().display());
        }
    }
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn a_password_in_a_render_url_is_used_through_askpass_and_stored_nowhere() {
    let dir = tempdir();
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).expect("mkdir");
    make_repo(&serve, "ops", &project_root().join("examples/gitops"));
    // An `@` in the password, percent-encoded in the URL as it must be.
    let password = "s3cr@t-in-url";
    let http = git_server::git_http(&serve, "reader", password);
    let url = format!(
        "http://reader:s3cr%40t-in-url@127.0.0.1:{}/ops.git",
        http.port
    );
    let cache = dir.path().join("cache");
    let out = run(&mut render_cmd(&cache, &url, "30"));
    assert!(out.status.success(), "{}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("kind: Secret"),
        "the credentials must still reach the server"
    );
    for needle in ["s3cr", password] {
        assert!(
            !text(&out).contains(needle),
            "output shows the password:\n{}",
            text(&out)
        );
        let hits = files_containing(&cache, needle);
        assert!(hits.is_empty(), "the password is stored in {hits:?}");
    }
    assert_private(&cache);
}

#[test]
fn a_password_in_a_url_never_appears_in_the_argv_of_git_or_its_helpers() {
    let dir = tempdir();
    // The server never answers, so git and git-remote-http stay up long enough for
    // their command lines to be read.
    let port = silent_server();
    let address = format!("127.0.0.1:{port}");
    let url = format!("http://reader:argv-s3cret@{address}/r.git");
    let mut child = render_cmd(&dir.path().join("cache"), &url, "5")
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start sopsync render");
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while child.try_wait().expect("wait").is_none() {
        assert!(
            Instant::now() < deadline,
            "render did not time out; seen: {seen:?}"
        );
        for (pid, cmdline) in processes_with(&address) {
            // sopsync's own argv is the user's command line, as typed; so is a fork
            // of it that has not yet exec'd git.
            let ours = cmdline.starts_with(env!("CARGO_BIN_EXE_sopsync"));
            if !ours && !seen.iter().any(|(p, _)| *p == pid) {
                seen.push((pid, cmdline));
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        seen.iter().any(|(_, l)| l.contains("remote-http")),
        "git-remote-http was never observed (the test saw nothing): {seen:?}"
    );
    let leaked: Vec<_> = seen.iter().filter(|(_, l)| l.contains("s3cret")).collect();
    assert!(leaked.is_empty(), "the password is in argv: {leaked:?}");
}

#[test]
fn a_password_holding_an_at_sign_is_not_shown_in_any_message() {
    let dir = tempdir();
    // Nothing listens on this port: git fails and its message names the URL.
    let url = format!("http://reader:pa@ss-tail@127.0.0.1:{}/r.git", free_port());
    let out = run_with_deadline(
        &mut render_cmd(&dir.path().join("cache"), &url, "30"),
        Duration::from_secs(60),
    );
    assert_eq!(out.status.code(), Some(1), "{}", text(&out));
    assert!(text(&out).contains("127.0.0.1"), "{}", text(&out));
    for needle in ["ss-tail", "pa@", "reader:"] {
        assert!(
            !text(&out).contains(needle),
            "{needle:?} shown:\n{}",
            text(&out)
        );
    }
}

#[test]
fn credentials_in_a_source_url_are_used_by_the_controller_and_written_nowhere() {
    let c = Cluster::new(&[("api.yaml", &api("v1"))]);
    c.key_secret("team-a");
    let http = git_server::git_http(&c.dir.path().join("served"), "tenant", "t0ken-in-url");
    let ctl = c.controller("c1", &[]);
    let url = format!(
        "http://tenant:t0ken-in-url@127.0.0.1:{}/gitops.git",
        http.port
    );
    c.source("team-a", "apps", json!({"url": url, "interval": "1s"}));
    wait_until("the source syncs with the URL's credentials", &ctl, || {
        c.secret("team-a", "api").is_some()
    });
    let cache = c.dir.path().join("c1-cache");
    let hits = files_containing(&cache, "t0ken");
    assert!(hits.is_empty(), "the token is stored in {hits:?}");
    for per_source in std::fs::read_dir(&cache).expect("cache").flatten() {
        assert_private(&per_source.path());
    }
    let status = serde_json::to_string(&c.status("team-a", "apps")).expect("json");
    let events = format!("{:?}", c.events("team-a"));
    for shown in [status, events, ctl.logs()] {
        assert!(!shown.contains("t0ken"), "the token is shown: {shown}");
    }
}
