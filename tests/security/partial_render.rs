//! Issue 11, point 5. One bad entry (escaping or dangling symlink, FIFO, large non-SOPS file) does not empty the output.
//!
//! Policy (README, "render"): an entry that cannot hold a SOPS file (FIFO, socket,
//! device) or is not a SOPS file (whatever its size) is skipped, with a note for the
//! non-regular ones; an entry that cannot be looked at or is refused (a symlink
//! leaving the tree, a dangling or looping symlink, an unreadable file, a SOPS file
//! over the size limit) is a failure of that entry: reported by path, the rest
//! emitted, exit 1. `--strict` emits nothing when anything failed. The controller
//! applies the rest, reports the entry and prunes nothing.

use super::output_dir_escape::{manifest, render, write_encrypted};
use crate::support::cluster::*;
use crate::support::tempdir;
use serde_json::json;
use std::path::Path;

/// Bytes that look like nothing in particular (a logo), from a fixed seed.
fn noise(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    (0..len)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

/// A repository with one good Secret and one of every kind of bad entry git can carry.
fn bad_entries(repo: &Path) {
    write_encrypted(
        repo,
        "apps/good.yaml",
        &manifest("default", "good", "k", "v"),
    );
    let symlink = |target: &str, at: &str| {
        std::os::unix::fs::symlink(target, repo.join(at)).expect("symlink");
    };
    symlink("/etc/hostname", "apps/escape.yaml");
    symlink("../../outside", "apps/escape-dir");
    symlink("missing.yaml", "apps/dangling.yaml");
    symlink("loop-b.yaml", "apps/loop-a.yaml");
    symlink("loop-a.yaml", "apps/loop-b.yaml");
    std::fs::create_dir_all(repo.join("assets")).expect("mkdir");
    std::fs::write(repo.join("assets/logo.png"), noise(9 * 1024 * 1024)).expect("write");
}

#[test]
fn render_reports_each_bad_entry_by_path_and_emits_the_rest() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    bad_entries(&repo);
    std::fs::create_dir_all(tmp.path().join("outside")).expect("mkdir");
    // A SOPS file over the limit whose `sops` block sits at its very end.
    let mut big = b"data: ENC[AES256_GCM,data:AAAA,iv:AAAA,tag:AAAA,type:str]\n".to_vec();
    big.extend(std::iter::repeat_n(b"# padding\n".as_slice(), 20_000).flatten());
    big.extend_from_slice(b"sops:\n    version: 3.11.0\n");
    std::fs::write(repo.join("apps/huge.enc.yaml"), &big).expect("write");
    let socket = std::os::unix::net::UnixListener::bind(repo.join("apps/agent.sock"))
        .expect("bind a socket");
    let out = render(&[
        repo.as_os_str(),
        "--max-file-bytes".as_ref(),
        "100000".as_ref(),
    ]);
    drop(socket);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("name: good"),
        "the rest is emitted: {stderr}"
    );
    for expected in [
        "sopsync: apps/escape.yaml: path escapes the repository root",
        "sopsync: apps/escape-dir: path escapes the repository root",
        "sopsync: apps/dangling.yaml: symlink leads to no file",
        "sopsync: apps/loop-a.yaml: symlink leads to no file",
        "sopsync: apps/loop-b.yaml: symlink leads to no file",
        "sopsync: apps/huge.enc.yaml: file is 200084 bytes, over the 100000-byte limit",
        "sopsync: note: apps/agent.sock: skipped: a socket, not a regular file",
        "6 file(s) failed; rendered 1 Secrets from the other files",
    ] {
        assert!(stderr.contains(expected), "{expected:?} in:\n{stderr}");
    }
    assert!(
        !stderr.contains("logo.png"),
        "a large file that is not a SOPS file is no one's problem: {stderr}"
    );
    let strict = render(&[repo.as_os_str(), "--strict".as_ref()]);
    assert_eq!(strict.status.code(), Some(1));
    assert!(strict.stdout.is_empty(), "--strict stays all-or-nothing");
}

#[test]
fn a_large_non_sops_file_alone_is_skipped_and_render_succeeds() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    write_encrypted(&repo, "good.yaml", &manifest("default", "good", "k", "v"));
    std::fs::write(repo.join("logo.png"), noise(9 * 1024 * 1024)).expect("write");
    let out = render(&[repo.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("name: good"));
}

#[test]
fn the_controller_applies_the_rest_reports_the_bad_entry_and_prunes_nothing() {
    let c = Cluster::new(&[("db.yaml", &db("one")), ("api.yaml", &api("one"))]);
    c.key_secret("team-a");
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let ctl = c.controller("c1", &[]);
    let first = c.head();
    wait_applied(&c, &ctl, "team-a", "apps", &first);
    // One commit: db changes, api leaves Git, and bad entries arrive.
    std::fs::create_dir_all(c.work.join("bad")).expect("mkdir");
    for (target, at) in [
        ("/etc/hostname", "bad/escape.yaml"),
        ("missing.yaml", "bad/dangling.yaml"),
    ] {
        std::os::unix::fs::symlink(target, c.work.join(at)).expect("symlink");
    }
    std::fs::write(c.work.join("bad/logo.png"), noise(9 * 1024 * 1024)).expect("write");
    let second = c.commit(&[("db.yaml", Some(&db("two"))), ("api.yaml", None)]);
    wait_until("the rest applied at the new commit", &ctl, || {
        c.data("team-a", "db")
            .is_some_and(|d| d["password"] == format!("{CANARY}-two"))
    });
    wait_attempted(&c, &ctl, "team-a", "apps", &second);
    let status = c.status("team-a", "apps").expect("status");
    assert!(
        ready_is(Some(&status), "False", "RenderFailed"),
        "{status:?}"
    );
    let message = &condition(&status, "Ready").expect("ready").message;
    assert!(message.contains("bad/escape.yaml"), "{message}");
    assert!(message.contains("bad/dangling.yaml"), "{message}");
    assert!(!message.contains("logo.png"), "{message}");
    assert_eq!(
        c.data("team-a", "api").expect("api is not pruned")["token"],
        format!("{CANARY}-one")
    );
    ctl.assert_no_canary();
}
