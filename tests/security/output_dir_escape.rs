//! Issue 11, point 2. `render --output DIR` never writes outside DIR; Secret names, namespaces and data keys are validated wherever Secrets are produced.

use crate::support::{project_root, run, run_ok, sops, sopsync, tempdir};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

/// The recipient of keys-example/age.key (test keys only).
pub(super) const EXAMPLE_RECIPIENT: &str =
    "age1p6hxhfj734amka9wtdkufkkhd48q9aam724msnyhzsxwuh0d63dskanxag";

pub(super) fn example_key() -> PathBuf {
    project_root().join("keys-example/age.key")
}

/// A `kind: Secret` manifest.
pub(super) fn manifest(namespace: &str, name: &str, key: &str, value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: {name:?}\n  namespace: {namespace:?}\nstringData:\n  {key:?}: {value:?}\n"
    )
}

/// Writes `text` at `repo/rel`, encrypted by the real sops with the example key.
pub(super) fn write_encrypted(repo: &Path, rel: &str, text: &str) {
    let target = repo.join(rel);
    std::fs::create_dir_all(target.parent().expect("parent")).expect("mkdir");
    let plain = repo.parent().expect("parent").join("plain.yaml");
    std::fs::write(&plain, text).expect("write");
    let out = run_ok(
        sops()
            .args(["encrypt", "--age", EXAMPLE_RECIPIENT])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .arg(&plain),
    );
    std::fs::remove_file(&plain).expect("remove plaintext");
    std::fs::write(target, out).expect("write");
}

pub(super) fn render(args: &[&std::ffi::OsStr]) -> std::process::Output {
    run(sopsync()
        .env("SOPS_AGE_KEY_FILE", example_key())
        .arg("render")
        .args(args))
}

/// Every regular file under `dir`, relative, sorted.
fn files_under(dir: &Path) -> Vec<String> {
    let mut out = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for e in std::fs::read_dir(&d).expect("read_dir") {
            let e = e.expect("entry");
            let ft = e.file_type().expect("type");
            if ft.is_dir() {
                stack.push(e.path());
            } else {
                out.push(
                    e.path()
                        .strip_prefix(dir)
                        .expect("under")
                        .display()
                        .to_string(),
                );
            }
        }
    }
    out.sort();
    out
}

#[test]
fn names_namespaces_and_keys_kubernetes_refuses_fail_their_file_and_nothing_leaves_dir() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    // Deep enough that `../../..` from DIR/default still lands inside the temp dir.
    let out_dir = tmp.path().join("a/b/out");
    let abs = tmp.path().join("abs");
    let long = "n".repeat(254);
    let cases = [
        (
            "traversal.yaml",
            manifest("default", "../../../escaped", "k", "v"),
        ),
        (
            "ns-traversal.yaml",
            manifest("../../ns-escaped", "x", "k", "v"),
        ),
        (
            "absolute.yaml",
            manifest(&abs.display().to_string(), "x", "k", "v"),
        ),
        ("uppercase.yaml", manifest("default", "Upper", "k", "v")),
        ("too-long.yaml", manifest("default", &long, "k", "v")),
        (
            "key-with-slash.yaml",
            manifest("default", "keyed", "a/b", "v"),
        ),
        ("dotdot-key.yaml", manifest("default", "dotted", "..", "v")),
        ("good.yaml", manifest("default", "good", "k", "v")),
    ];
    for (file, text) in &cases {
        write_encrypted(&repo, file, text);
    }
    let out = render(&[repo.as_os_str(), "--output".as_ref(), out_dir.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    for (file, _) in cases.iter().filter(|(f, _)| *f != "good.yaml") {
        assert!(
            stderr.contains(&format!("sopsync: {file}: ")),
            "{file} is reported by name: {stderr}"
        );
    }
    assert!(stderr.contains("invalid"), "says why: {stderr}");
    // Only the valid Secret was written, inside DIR; nothing anywhere else.
    let written: Vec<String> = files_under(tmp.path())
        .into_iter()
        .filter(|f| !f.starts_with("repo/"))
        .collect();
    assert_eq!(written, ["a/b/out/default/good.yaml"]);
    assert!(!abs.exists());
}

#[test]
fn a_symlinked_namespace_dir_in_output_is_refused_and_its_target_untouched() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let out_dir = tmp.path().join("out");
    let elsewhere = tmp.path().join("elsewhere");
    std::fs::create_dir_all(&out_dir).expect("mkdir");
    std::fs::create_dir_all(&elsewhere).expect("mkdir");
    std::os::unix::fs::symlink(&elsewhere, out_dir.join("default")).expect("symlink");
    write_encrypted(&repo, "db.yaml", &manifest("default", "db", "k", "v"));
    let out = render(&[repo.as_os_str(), "--output".as_ref(), out_dir.as_os_str()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{stderr}");
    assert!(
        stderr.contains("default") && stderr.contains("symlink is never followed"),
        "{stderr}"
    );
    assert_eq!(
        std::fs::read_dir(&elsewhere).expect("read_dir").count(),
        0,
        "nothing was written through the link"
    );
}

#[test]
fn a_symlinked_secret_file_in_output_is_replaced_and_its_target_keeps_content_and_mode() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let out_dir = tmp.path().join("out");
    let victim = tmp.path().join("victim.txt");
    std::fs::write(&victim, "original\n").expect("write");
    std::fs::set_permissions(&victim, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    std::fs::create_dir_all(out_dir.join("default")).expect("mkdir");
    let planted = out_dir.join("default/db.yaml");
    std::os::unix::fs::symlink(&victim, &planted).expect("symlink");
    write_encrypted(&repo, "db.yaml", &manifest("default", "db", "k", "v"));
    let out = render(&[repo.as_os_str(), "--output".as_ref(), out_dir.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("read"),
        "original\n"
    );
    assert_eq!(
        std::fs::metadata(&victim)
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
        0o644
    );
    let meta = std::fs::symlink_metadata(&planted).expect("lstat");
    assert!(
        meta.file_type().is_file(),
        "the link was replaced by the Secret"
    );
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&planted)
        .expect("read")
        .contains("kind: Secret"));
}

#[test]
fn an_existing_0644_secret_file_is_replaced_atomically_as_0600() {
    let tmp = tempdir();
    let repo = tmp.path().join("repo");
    let out_dir = tmp.path().join("out");
    std::fs::create_dir_all(out_dir.join("default")).expect("mkdir");
    let old = out_dir.join("default/db.yaml");
    std::fs::write(&old, "old\n").expect("write");
    std::fs::set_permissions(&old, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    write_encrypted(&repo, "db.yaml", &manifest("default", "db", "k", "v"));
    let out = render(&[repo.as_os_str(), "--output".as_ref(), out_dir.as_os_str()]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let meta = std::fs::metadata(&old).expect("stat");
    assert_eq!(meta.permissions().mode() & 0o777, 0o600);
    assert!(std::fs::read_to_string(&old)
        .expect("read")
        .contains("name: db"));
    assert_eq!(
        files_under(&out_dir),
        ["default/db.yaml"],
        "no temp file left"
    );
}
