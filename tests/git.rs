//! `sopsync render` from real Git servers on loopback (issue 3): git daemon,
//! http-backend with basic auth, sshd. Fetch, update after a new commit, refs,
//! wrong credentials, server down (cached checkout kept).

use crate::support::git_server::{self, git, make_repo};
use crate::support::{project_root, run, sopsync, tempdir};
use std::path::Path;
use std::process::Output;

fn render(cache: &Path, url: &str, extra: &[&str], env: &[(&str, &str)]) -> Output {
    let mut cmd = sopsync();
    cmd.env(
        "SOPS_AGE_KEY_FILE",
        project_root().join("keys-example/age.key"),
    )
    .args(["render", url, "--git-timeout", "30", "--cache-dir"])
    .arg(cache)
    .args(extra);
    for (k, v) in env {
        cmd.env(k, v);
    }
    run(&mut cmd)
}

fn names(out: &Output) -> Vec<String> {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(|l| l.strip_prefix("  name: "))
        .map(String::from)
        .collect()
}

fn revision(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .find_map(|l| l.trim().strip_prefix("sopsync.io/revision: "))
        .expect("revision annotation")
        .to_string()
}

#[test]
fn git_daemon_fetch_then_update_after_a_new_commit_then_server_down_keeps_the_cache() {
    let dir = tempdir();
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    let (work, _bare) = make_repo(&serve, "ops", &project_root().join("examples/gitops"));
    let mut daemon = git_server::git_daemon(&serve);
    let url = format!("git://127.0.0.1:{}/ops.git", daemon.port);
    let cache = dir.path().join("cache");

    let first = render(&cache, &url, &[], &[]);
    assert!(
        first.status.success(),
        "{}",
        String::from_utf8_lossy(&first.stderr)
    );
    assert_eq!(names(&first).len(), 5);
    assert_eq!(revision(&first), git(&work, &["rev-parse", "HEAD"]));
    assert!(String::from_utf8_lossy(&first.stdout).contains(&format!("sopsync.io/source: {url}")));

    // A new commit removes one Secret; the next render fetches it incrementally.
    git(&work, &["rm", "-q", "apps/web/secret.yaml"]);
    git(&work, &["commit", "-q", "-m", "drop web-credentials"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let second = render(&cache, &url, &[], &[]);
    assert!(
        second.status.success(),
        "{}",
        String::from_utf8_lossy(&second.stderr)
    );
    assert_eq!(names(&second).len(), 4);
    assert!(!names(&second).contains(&"web-credentials".to_string()));
    let head = git(&work, &["rev-parse", "HEAD"]);
    assert_eq!(revision(&second), head);

    // A branch by name, then an older revision by tag and by commit id.
    let branch = render(&cache, &url, &["--ref", "main"], &[]);
    assert!(
        branch.status.success(),
        "{}",
        String::from_utf8_lossy(&branch.stderr)
    );
    assert_eq!(names(&branch).len(), 4);
    git(&work, &["tag", "v1", "HEAD~1"]);
    git(&work, &["push", "-q", "origin", "v1"]);
    let tagged = render(&cache, &url, &["--ref", "v1"], &[]);
    assert!(
        tagged.status.success(),
        "{}",
        String::from_utf8_lossy(&tagged.stderr)
    );
    assert_eq!(names(&tagged).len(), 5);
    let by_id = render(&cache, &url, &["--ref", &head], &[]);
    assert!(
        by_id.status.success(),
        "{}",
        String::from_utf8_lossy(&by_id.stderr)
    );
    assert_eq!(revision(&by_id), head);

    // Server down: a clear error, and the cached checkout is still there.
    daemon.stop();
    let down = render(&cache, &url, &[], &[]);
    assert_eq!(down.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains(&format!("git fetch of {url} failed")),
        "{stderr}"
    );
    assert!(
        stderr.contains("the last good checkout (if any) is kept in"),
        "{stderr}"
    );
    let kept = sopsync::repo::git::cache_dir(&cache, &url);
    assert!(
        kept.join("apps/payments/sopsync.yaml").is_file(),
        "the cached checkout must be kept"
    );
    assert!(down.stdout.is_empty());
}

#[test]
fn http_backend_with_basic_auth_accepts_the_right_password_only() {
    let dir = tempdir();
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    make_repo(&serve, "ops", &project_root().join("examples/gitops"));
    let server = git_server::git_http(&serve, "deploy", "s3cr3t-token");
    let url = format!("http://127.0.0.1:{}/ops.git", server.port);
    let cache = dir.path().join("cache");
    let ok = render(
        &cache,
        &url,
        &[],
        &[
            ("SOPSYNC_GIT_USERNAME", "deploy"),
            ("SOPSYNC_GIT_PASSWORD", "s3cr3t-token"),
        ],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(names(&ok).len(), 5);
    // The token may also come from a file.
    let token_file = dir.path().join("token");
    std::fs::write(&token_file, "s3cr3t-token\n").unwrap();
    let from_file = render(
        &dir.path().join("cache2"),
        &url,
        &[],
        &[
            ("SOPSYNC_GIT_USERNAME", "deploy"),
            ("SOPSYNC_GIT_PASSWORD_FILE", token_file.to_str().unwrap()),
        ],
    );
    assert!(
        from_file.status.success(),
        "{}",
        String::from_utf8_lossy(&from_file.stderr)
    );

    let bad = render(
        &dir.path().join("cache3"),
        &url,
        &[],
        &[
            ("SOPSYNC_GIT_USERNAME", "deploy"),
            ("SOPSYNC_GIT_PASSWORD", "wrong-token"),
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains(&format!("git fetch of {url} failed")),
        "{stderr}"
    );
    assert!(stderr.contains("Authentication failed"), "{stderr}");
    assert!(
        !stderr.contains("wrong-token") && !stderr.contains("s3cr3t"),
        "credentials must not be printed: {stderr}"
    );
    let none = render(&dir.path().join("cache4"), &url, &[], &[]);
    assert_eq!(
        none.status.code(),
        Some(1),
        "no credentials: git must not prompt, and must fail"
    );
}

#[test]
fn ssh_with_a_key_and_known_hosts_fetches_and_a_wrong_host_key_is_refused() {
    let dir = tempdir();
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    let (_work, bare) = make_repo(&serve, "ops", &project_root().join("examples/gitops"));
    let ssh_dir = dir.path().join("ssh");
    std::fs::create_dir_all(&ssh_dir).unwrap();
    let sshd = git_server::sshd(&ssh_dir);
    let url = format!(
        "ssh://{}@127.0.0.1:{}{}",
        sshd.user,
        sshd.server.port,
        bare.display()
    );
    let key = sshd.user_key.to_str().unwrap().to_string();
    let kh = sshd.known_hosts.to_str().unwrap().to_string();
    let ok = render(
        &dir.path().join("cache"),
        &url,
        &[],
        &[
            ("SOPSYNC_GIT_SSH_KEY", &key),
            ("SOPSYNC_GIT_KNOWN_HOSTS", &kh),
        ],
    );
    assert!(
        ok.status.success(),
        "{}\nsshd log:\n{}",
        String::from_utf8_lossy(&ok.stderr),
        std::fs::read_to_string(ssh_dir.join("sshd.log")).unwrap_or_default()
    );
    assert_eq!(names(&ok).len(), 5);

    // A known_hosts entry with another key: host key verification fails, clearly.
    let other = dir.path().join("other");
    std::fs::create_dir_all(&other).unwrap();
    crate::support::run_ok(
        std::process::Command::new(crate::support::tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", "", "-f"])
            .arg(other.join("k")),
    );
    let other_pub = std::fs::read_to_string(other.join("k.pub")).unwrap();
    let mut parts = other_pub.split_whitespace();
    let wrong_kh = dir.path().join("wrong_known_hosts");
    std::fs::write(
        &wrong_kh,
        format!(
            "[127.0.0.1]:{} {} {}\n",
            sshd.server.port,
            parts.next().unwrap(),
            parts.next().unwrap()
        ),
    )
    .unwrap();
    let bad = render(
        &dir.path().join("cache2"),
        &url,
        &[],
        &[
            ("SOPSYNC_GIT_SSH_KEY", &key),
            ("SOPSYNC_GIT_KNOWN_HOSTS", wrong_kh.to_str().unwrap()),
        ],
    );
    assert_eq!(bad.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&bad.stderr);
    assert!(
        stderr.contains("git fetch of") && stderr.to_lowercase().contains("host key"),
        "{stderr}"
    );
    // A key without known_hosts is refused before connecting.
    let no_kh = render(
        &dir.path().join("cache3"),
        &url,
        &[],
        &[("SOPSYNC_GIT_SSH_KEY", &key)],
    );
    assert_eq!(no_kh.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&no_kh.stderr).contains("an SSH key needs a known_hosts file"));
}

#[test]
fn file_urls_render_and_a_silent_server_times_out() {
    let dir = tempdir();
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    let (_work, bare) = make_repo(&serve, "ops", &project_root().join("examples/gitops"));
    let url = format!("file://{}", bare.display());
    let ok = render(
        &dir.path().join("cache"),
        &url,
        &["--path", "apps/web"],
        &[],
    );
    assert!(
        ok.status.success(),
        "{}",
        String::from_utf8_lossy(&ok.stderr)
    );
    assert_eq!(names(&ok), vec!["web-credentials", "web-db", "web-tls"]);

    // A server that accepts connections and never answers: the fetch times out.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let holder = std::thread::spawn(move || {
        let mut held = Vec::new();
        if let Ok((s, _)) = listener.accept() {
            held.push(s);
            std::thread::sleep(std::time::Duration::from_secs(4));
        }
    });
    let silent = format!("git://127.0.0.1:{port}/ops.git");
    let mut cmd = sopsync();
    cmd.env(
        "SOPS_AGE_KEY_FILE",
        project_root().join("keys-example/age.key"),
    )
    .args(["render", &silent, "--git-timeout", "2", "--cache-dir"])
    .arg(dir.path().join("cache2"));
    let out = run(&mut cmd);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!("git fetch of {silent} timed out after 2s")),
        "{stderr}"
    );
    holder.join().unwrap();
}

#[test]
fn a_source_path_checks_out_only_its_folder_and_a_changed_or_symlinked_path_still_reads_right() {
    use sopsync::repo::git::{fetch_path, GitAuth};
    use std::time::Duration;
    let dir = tempdir();
    let content = dir.path().join("content");
    for (path, text) in [
        ("a/one.yaml", "a\n"),
        ("a/deep/two.yaml", "a2\n"),
        ("b/three.yaml", "b\n"),
        ("README", "root\n"),
    ] {
        let p = content.join(path);
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, text).unwrap();
    }
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    let (work, bare) = make_repo(&serve, "ops", &content);
    std::os::unix::fs::symlink("b", work.join("link")).unwrap();
    git(&work, &["add", "-A"]);
    git(&work, &["commit", "-q", "-m", "a symlinked folder"]);
    git(&work, &["push", "-q", "origin", "HEAD:main"]);
    let url = format!("file://{}", bare.display());
    let fetch_into = |cache: &str, path: Option<&str>| {
        fetch_path(
            &url,
            None,
            path,
            &dir.path().join(cache),
            &GitAuth::default(),
            Duration::from_secs(30),
        )
        .expect("fetch")
        .dir
    };
    let fetch = |path: Option<&str>| fetch_into("cache", path);
    let present = |root: &Path, p: &str| root.join(p).exists();

    let tree = fetch(Some("/a/"));
    assert!(present(&tree, "a/one.yaml") && present(&tree, "a/deep/two.yaml"));
    assert!(!present(&tree, "b/three.yaml"), "b/ is outside the path");
    assert!(
        present(&tree, "README"),
        "files at the root come with the cone"
    );

    // The same cache with another path: the working tree follows.
    let tree = fetch(Some("b"));
    assert!(present(&tree, "b/three.yaml"));
    assert!(!present(&tree, "a/one.yaml"));

    // A path through a symlink falls back to a full checkout, so it still resolves:
    // in a fresh cache (the cone is set, then undone) and in one where git refuses
    // the cone because the current checkout has the symlink.
    for cache in ["fresh", "cache"] {
        let tree = fetch_into(cache, Some("link"));
        assert_eq!(
            std::fs::read_to_string(tree.join("link/three.yaml")).unwrap(),
            "b\n"
        );
    }

    // No path (or one the caller will refuse): everything, as before.
    for path in [None, Some("a/../b")] {
        let tree = fetch(path);
        assert!(present(&tree, "a/one.yaml") && present(&tree, "b/three.yaml"));
    }
}

#[test]
fn a_source_path_from_a_server_that_filters_downloads_only_that_folders_files() {
    use sopsync::repo::git::{fetch_path, GitAuth};
    use std::time::Duration;
    let dir = tempdir();
    let content = dir.path().join("content");
    for i in 0..3 {
        let p = content.join(format!("a/{i}.yaml"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("a{i}\n")).unwrap();
    }
    for i in 0..50 {
        let p = content.join(format!("b/{i}.yaml"));
        std::fs::create_dir_all(p.parent().unwrap()).unwrap();
        std::fs::write(p, format!("b{i}\n")).unwrap();
    }
    std::fs::write(content.join("README"), "root\n").unwrap();
    let serve = dir.path().join("serve");
    std::fs::create_dir_all(&serve).unwrap();
    let (_work, bare) = make_repo(&serve, "ops", &content);
    // As hosting services do: let clients ask for a filtered pack.
    git(&bare, &["config", "uploadpack.allowFilter", "true"]);
    let daemon = git_server::git_daemon(&serve);
    let url = format!("git://127.0.0.1:{}/ops.git", daemon.port);
    let cache = dir.path().join("cache");
    let fetch = |path: Option<&str>| {
        fetch_path(
            &url,
            None,
            path,
            &cache,
            &GitAuth::default(),
            Duration::from_secs(30),
        )
        .expect("fetch")
        .dir
    };
    let local_blobs = |tree: &Path| {
        git(tree, &["cat-file", "--batch-all-objects", "--batch-check"])
            .lines()
            .filter(|l| l.contains(" blob "))
            .count()
    };

    let tree = fetch(Some("a"));
    assert_eq!(
        std::fs::read_to_string(tree.join("a/2.yaml")).unwrap(),
        "a2\n"
    );
    assert_eq!(
        local_blobs(&tree),
        4,
        "a/'s three files and the README, not b/'s fifty"
    );

    // Another path and then none: the missing files come from the server on demand.
    let tree = fetch(Some("b"));
    assert_eq!(
        std::fs::read_to_string(tree.join("b/49.yaml")).unwrap(),
        "b49\n"
    );
    let tree = fetch(None);
    assert_eq!(
        std::fs::read_to_string(tree.join("a/0.yaml")).unwrap(),
        "a0\n"
    );
    assert_eq!(local_blobs(&tree), 54);
}
