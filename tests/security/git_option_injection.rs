//! Issue 11 point 1: input that reaches `git` as an option or a transport. A ref or URL
//! that looks like an option, a remote-helper transport (`ext::` runs a command), an
//! inherited `GIT_ALLOW_PROTOCOL` or `insteadOf` rewrite, a tenant's `file://` URL and
//! a host outside the operator's allowlist: in `render` and in the controller. Each
//! attack tries to create a marker file; the marker must never appear.

use crate::support::cluster::{api, ready_is, wait_until, Cluster};
use crate::support::git_server::make_repo;
use crate::support::{project_root, run, sopsync, tempdir};
use serde_json::json;
use std::path::{Path, PathBuf};
use std::process::Output;

/// A bare repository of the example GitOps tree under `dir/serve`.
fn example_repo(dir: &Path) -> PathBuf {
    let serve = dir.join("serve");
    std::fs::create_dir_all(&serve).expect("mkdir");
    make_repo(&serve, "ops", &project_root().join("examples/gitops")).1
}

/// `sopsync render` of `source` (after `--`, so that clap reads it as data too).
fn render(cache: &Path, source: &str, extra: &[&str], env: &[(&str, &Path)]) -> Output {
    let mut cmd = sopsync();
    cmd.env(
        "SOPS_AGE_KEY_FILE",
        project_root().join("keys-example/age.key"),
    )
    .args(["render", "--git-timeout", "30", "--cache-dir"])
    .arg(cache)
    .args(extra)
    .arg("--")
    .arg(source);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn assert_refused(out: &Output, marker: &Path, says: &str) {
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        !marker.exists(),
        "the injected command ran (marker created); stderr:\n{stderr}"
    );
    assert_eq!(out.status.code(), Some(1), "stderr:\n{stderr}");
    assert!(stderr.contains(says), "expected {says:?} in:\n{stderr}");
    assert!(out.stdout.is_empty(), "nothing may be rendered");
}

#[test]
fn ref_that_looks_like_an_option_is_refused_and_runs_nothing() {
    let dir = tempdir();
    let bare = example_repo(dir.path());
    let marker = dir.path().join("pwned");
    let cache = dir.path().join("cache");
    let out = render(
        &cache,
        &format!("file://{}", bare.display()),
        &[&format!("--ref=--upload-pack=touch {}", marker.display())],
        &[],
    );
    assert_refused(&out, &marker, "ref \"--upload-pack=touch");
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("begins with '-', which git would read as an option"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!cache.exists(), "git must not even have been started");
}

#[test]
fn url_that_looks_like_an_option_is_refused_before_git_runs() {
    let dir = tempdir();
    let cache = dir.path().join("cache");
    let out = render(&cache, "--mirror=fetch://example.invalid/r.git", &[], &[]);
    assert_refused(
        &out,
        &dir.path().join("none"),
        "source URL \"--mirror=fetch://example.invalid/r.git\" is refused: it begins with '-', which git would read as an option",
    );
    assert!(!cache.exists(), "git must not even have been started");
}

#[test]
fn ext_transport_is_refused_even_when_the_environment_allows_it() {
    let dir = tempdir();
    let marker = dir.path().join("pwned");
    let cache = dir.path().join("cache");
    let allow_ext = Path::new("ext:file:git:http:https:ssh");
    // `ext::` runs its address as a command; `#` turns the `://` git needs into a comment.
    let url = format!("ext::sh -c touch% {}% #://x", marker.display());
    let out = render(&cache, &url, &[], &[("GIT_ALLOW_PROTOCOL", allow_ext)]);
    assert_refused(&out, &marker, "is not one of https, http, ssh, git, file");
    // Without `://`, the helper syntax is refused by its own rule.
    let out = render(
        &cache,
        &format!("ext::sh -c touch% {}", marker.display()),
        &[],
        &[("GIT_ALLOW_PROTOCOL", allow_ext)],
    );
    assert_refused(
        &out,
        &marker,
        "remote-helper transports (`<name>::`) are not allowed",
    );
}

/// A HOME whose .gitconfig rewrites `prefix` to an `ext::` command creating `marker`,
/// and allows the ext transport.
fn hostile_home(dir: &Path, prefix: &str, marker: &Path) -> PathBuf {
    let home = dir.join("home");
    std::fs::create_dir_all(&home).expect("mkdir");
    std::fs::write(
        home.join(".gitconfig"),
        format!(
            "[url \"ext::sh -c touch% {}% #\"]\n\tinsteadOf = {prefix}\n[protocol \"ext\"]\n\tallow = always\n",
            marker.display()
        ),
    )
    .expect("write .gitconfig");
    home
}

#[test]
fn an_insteadof_rewrite_to_ext_in_the_users_config_cannot_widen_the_transports() {
    let dir = tempdir();
    let marker = dir.path().join("pwned");
    let home = hostile_home(dir.path(), "https://attacker.example/", &marker);
    let out = render(
        &dir.path().join("cache"),
        "https://attacker.example/r.git",
        &[],
        &[("HOME", &home), ("XDG_CONFIG_HOME", &home)],
    );
    assert_refused(&out, &marker, "transport 'ext' not allowed");
}

#[test]
fn a_tenant_ref_that_looks_like_an_option_stalls_and_runs_nothing() {
    let c = Cluster::new(&[("api.yaml", &api("v1"))]);
    c.key_secret("team-a");
    let marker = c.dir.path().join("pwned");
    let ctl = c.controller("c1", &["--allow-local-git-sources"]);
    let bare = c.dir.path().join("served/gitops.git");
    c.source(
        "team-a",
        "apps",
        json!({"url": format!("file://{}", bare.display()), "interval": "1s",
               "ref": format!("--upload-pack=touch {}", marker.display())}),
    );
    wait_until("the source stalls with InvalidSpec", &ctl, || {
        ready_is(c.status("team-a", "apps").as_ref(), "False", "InvalidSpec")
    });
    wait_until("a Warning Event names the ref", &ctl, || {
        c.events("team-a")
            .iter()
            .any(|(t, r, n)| t == "Warning" && r == "InvalidSpec" && n.contains("begins with '-'"))
    });
    assert!(!marker.exists(), "the tenant's ref ran a command");
    assert!(c.secret("team-a", "api").is_none());
}

#[test]
fn a_tenant_file_url_is_denied_unless_the_operator_allows_local_sources() {
    let c = Cluster::new(&[("api.yaml", &api("v1"))]);
    c.key_secret("team-a");
    let ctl = c.controller("c1", &[]);
    let bare = c.dir.path().join("served/gitops.git");
    for (name, url) in [
        ("by-url", format!("file://{}", bare.display())),
        ("by-path", bare.display().to_string()),
    ] {
        c.source("team-a", name, json!({"url": url, "interval": "1s"}));
        wait_until(&format!("{name} is denied"), &ctl, || {
            ready_is(c.status("team-a", name).as_ref(), "False", "SourceDenied")
        });
    }
    wait_until("a Warning Event says how to allow it", &ctl, || {
        c.events("team-a").iter().any(|(t, r, n)| {
            t == "Warning" && r == "SourceDenied" && n.contains("--allow-local-git-sources")
        })
    });
    assert!(
        c.secret("team-a", "api").is_none(),
        "nothing may be read from the pod's disk"
    );
}

#[test]
fn a_git_host_outside_the_allowlist_is_denied_before_any_fetch() {
    let c = Cluster::new(&[("api.yaml", &api("v1"))]);
    c.key_secret("team-a");
    let ctl = c.controller(
        "c1",
        &["--git-allowed-hosts", "git.example.com,*.corp.example"],
    );
    // The loopback git daemon stands for an internal address (metadata endpoint,
    // API server, another pod).
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    wait_until("the source is denied", &ctl, || {
        ready_is(c.status("team-a", "apps").as_ref(), "False", "SourceDenied")
    });
    wait_until("a Warning Event names the host", &ctl, || {
        c.events("team-a").iter().any(|(t, r, n)| {
            t == "Warning"
                && r == "SourceDenied"
                && n.contains("\"127.0.0.1\" is not in the allowed Git hosts")
        })
    });
    assert!(c.secret("team-a", "api").is_none());
    let uid = c
        .fake
        .get::<sopsync::controller::crd::SecretSource>("team-a", "apps")
        .and_then(|s| s.metadata.uid)
        .expect("uid");
    assert!(
        !c.dir.path().join("c1-cache").join(uid).exists(),
        "nothing may be fetched for a denied source"
    );
}

#[test]
fn the_controller_builds_gits_environment_so_inherited_settings_cannot_run_commands() {
    let c = Cluster::new(&[("api.yaml", &api("v1"))]);
    c.key_secret("team-a");
    let marker = c.dir.path().join("pwned");
    let home = hostile_home(c.dir.path(), &c.url(), &marker);
    let home = home.to_str().expect("utf-8");
    let ctl = c.controller_with_env(
        "c1",
        &[],
        &[
            ("HOME", home),
            ("XDG_CONFIG_HOME", home),
            ("GIT_ALLOW_PROTOCOL", "ext:git"),
            ("GIT_CONFIG_PARAMETERS", "'protocol.ext.allow'='always'"),
        ],
    );
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    wait_until("the source syncs over git://, unaffected", &ctl, || {
        c.secret("team-a", "api").is_some()
    });
    assert!(
        !marker.exists(),
        "the inherited git configuration ran a command"
    );
}
