//! Issue 14: `updatekeys --recursive`, `rotate --recursive` and `audit` on whole
//! repositories made with the real sops, checked with the real sops.
//!
//! The 500-file repository is made once per test run: every file is encrypted by
//! the real `sops` (500 processes, four at a time), to three age recipients made by
//! the real `age-keygen`; then the third is removed from `.sops.yaml`. Each test works
//! on its own copy.
//!
//! "Every data key new" is asserted on the data key itself: the library unwraps each
//! file's age stanza with an identity and the 32 bytes are compared with the key the
//! real sops chose.

use crate::support::{age_keypair, run, run_ok, sops, sopsync, tempdir, tool};
use sopsync::core::formats::{Format, FormatOptions};
use sopsync::core::keys::AgeIdentities;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;

const FILES: usize = 500;

/// The generated repository, shared read-only by the tests.
struct Repo {
    _dir: tempfile::TempDir,
    root: PathBuf,
    /// Identity files of the kept recipients A and B, and of the removed one, C.
    a: PathBuf,
    b: PathBuf,
    c: PathBuf,
    c_recipient: String,
    /// Relative path → the data key sops chose.
    keys: BTreeMap<String, [u8; 32]>,
    /// Relative path → the plaintext documents.
    plain: BTreeMap<String, Vec<sopsync::core::tree::Mapping>>,
}

fn ids(path: &Path) -> AgeIdentities {
    AgeIdentities::parse(&std::fs::read_to_string(path).unwrap(), "test").unwrap()
}

fn parse(path: &Path) -> sopsync::core::EncryptedFile {
    let bytes = std::fs::read(path).unwrap();
    sopsync::core::parse_encrypted(&bytes, Format::Yaml, &FormatOptions::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The data key of `path` as `identity` unwraps it, or `None` when it cannot.
fn data_key(path: &Path, identity: &AgeIdentities) -> Option<[u8; 32]> {
    sopsync::core::unwrap_data_key(&parse(path).metadata, identity)
        .ok()
        .map(|k| *k.expose_secret())
}

fn documents(path: &Path, identity: &AgeIdentities) -> Vec<sopsync::core::tree::Mapping> {
    let file = parse(path);
    let key = sopsync::core::unwrap_data_key(&file.metadata, identity)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    sopsync::core::decrypt(&file, &key, &Default::default())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .documents
}

fn rel_name(i: usize) -> String {
    format!("apps/app{:02}/secret{i:03}.yaml", i % 25)
}

fn repo() -> &'static Repo {
    static REPO: OnceLock<Repo> = OnceLock::new();
    REPO.get_or_init(|| {
        let dir = tempdir();
        let root = dir.path().join("repo");
        std::fs::create_dir_all(&root).unwrap();
        let (a, ra) = age_keypair(dir.path(), "a");
        let (b, rb) = age_keypair(dir.path(), "b");
        let (c, rc) = age_keypair(dir.path(), "c");
        std::fs::write(
            root.join(".sops.yaml"),
            format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {ra},{rb},{rc}\n"),
        )
        .unwrap();
        for i in 0..FILES {
            let p = root.join(rel_name(i));
            std::fs::create_dir_all(p.parent().unwrap()).unwrap();
            std::fs::write(
                &p,
                format!("name: secret{i}\npassword: canary-pw-{i}\nnested:\n  token: canary-tok-{i}\n  port: {i}\n"),
            )
            .unwrap();
        }
        // Four sops processes at a time: the machine has two cores.
        let next = std::sync::atomic::AtomicUsize::new(0);
        std::thread::scope(|s| {
            for _ in 0..4 {
                s.spawn(|| loop {
                    let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                    if i >= FILES {
                        break;
                    }
                    run_ok(
                        sops()
                            .current_dir(&root)
                            .args(["encrypt", "-i"])
                            .arg(rel_name(i)),
                    );
                });
            }
        });
        // C leaves the team.
        std::fs::write(
            root.join(".sops.yaml"),
            format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {ra},{rb}\n"),
        )
        .unwrap();
        let ida = ids(&a);
        let mut keys = BTreeMap::new();
        let mut plain = BTreeMap::new();
        for i in 0..FILES {
            let p = root.join(rel_name(i));
            keys.insert(rel_name(i), data_key(&p, &ida).expect("sops wrapped for A"));
            plain.insert(rel_name(i), documents(&p, &ida));
        }
        Repo {
            _dir: dir,
            root,
            a,
            b,
            c,
            c_recipient: rc,
            keys,
            plain,
        }
    })
}

/// A private copy of the repository.
fn copy_repo() -> (tempfile::TempDir, PathBuf) {
    let r = repo();
    let dir = tempdir();
    let dest = dir.path().join("repo");
    run_ok(Command::new("cp").arg("-a").arg(&r.root).arg(&dest));
    (dir, dest)
}

fn snapshot(root: &Path) -> BTreeMap<String, Vec<u8>> {
    (0..FILES)
        .map(|i| (rel_name(i), std::fs::read(root.join(rel_name(i))).unwrap()))
        .collect()
}

fn sopsync_as(identity: &Path) -> Command {
    let mut c = sopsync();
    c.env("SOPS_AGE_KEY_FILE", identity)
        .env("XDG_STATE_HOME", identity.parent().unwrap().join("state"));
    c
}

fn ok_stderr(cmd: &mut Command) -> String {
    let out = run(cmd);
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{cmd:?} failed: {stderr}");
    stderr
}

/// Every file: C cannot open it, A and B can, the values are unchanged, and the data
/// key is not the one sops chose (all files with the library; 20 with the real sops).
fn assert_rotated_without_c(root: &Path) {
    let r = repo();
    let (ida, idb, idc) = (ids(&r.a), ids(&r.b), ids(&r.c));
    for i in 0..FILES {
        let rel = rel_name(i);
        let p = root.join(&rel);
        assert_eq!(data_key(&p, &idc), None, "{rel}: C can still open it");
        let ka = data_key(&p, &ida).unwrap_or_else(|| panic!("{rel}: A cannot open it"));
        assert_eq!(data_key(&p, &idb), Some(ka), "{rel}: B gets another key");
        assert_ne!(&ka, &r.keys[&rel], "{rel}: the data key was not changed");
        assert_eq!(documents(&p, &idb), r.plain[&rel], "{rel}: values changed");
    }
    for i in (0..FILES).step_by(FILES / 20) {
        let rel = rel_name(i);
        let original = run_ok(
            sops()
                .env("SOPS_AGE_KEY_FILE", &r.a)
                .arg("decrypt")
                .arg(r.root.join(&rel)),
        );
        for id in [&r.a, &r.b] {
            let now = run_ok(
                sops()
                    .env("SOPS_AGE_KEY_FILE", id)
                    .arg("decrypt")
                    .arg(root.join(&rel)),
            );
            assert_eq!(now, original, "{rel}: real sops reads other values");
        }
        let refused = run(sops()
            .env("SOPS_AGE_KEY_FILE", &r.c)
            .arg("decrypt")
            .arg(root.join(&rel)));
        assert!(
            !refused.status.success(),
            "{rel}: real sops opens it with C"
        );
    }
}

fn assert_second_updatekeys_changes_no_byte(root: &Path) {
    let before = snapshot(root);
    let stderr = ok_stderr(
        sopsync_as(&repo().a)
            .args(["updatekeys", "--recursive", "-y"])
            .arg(root),
    );
    assert!(
        stderr.contains(&format!("summary: 0 changed, {FILES} unchanged, 0 failed")),
        "{stderr}"
    );
    assert!(
        before == snapshot(root),
        "a second updatekeys changed bytes"
    );
}

#[test]
fn updatekeys_then_rotate_recursive_shut_out_a_removed_recipient_and_keep_every_value() {
    let r = repo();
    let (_dir, root) = copy_repo();
    let stderr = ok_stderr(
        sopsync_as(&r.a)
            .args(["updatekeys", "--recursive", "-y"])
            .arg(&root),
    );
    assert!(
        stderr.contains(&format!("summary: {FILES} changed, 0 unchanged, 0 failed")),
        "{stderr}"
    );
    // updatekeys keeps the data key and says that C still knows it.
    assert!(
        stderr.contains(&format!(
            "removed {} from {FILES} file(s) without a new data key",
            r.c_recipient
        )),
        "{stderr}"
    );
    let ida = ids(&r.a);
    for i in 0..FILES {
        let p = root.join(rel_name(i));
        assert_eq!(data_key(&p, &ida).as_ref(), Some(&r.keys[&rel_name(i)]));
        assert_eq!(data_key(&p, &ids(&r.c)), None);
    }
    let stderr = ok_stderr(sopsync_as(&r.a).args(["rotate", "--recursive"]).arg(&root));
    assert!(
        stderr.contains(&format!("summary: {FILES} changed, 0 unchanged, 0 failed")),
        "{stderr}"
    );
    assert_rotated_without_c(&root);
    assert_second_updatekeys_changes_no_byte(&root);
}

#[test]
fn updatekeys_recursive_with_rotate_does_both_in_one_pass() {
    let r = repo();
    let (_dir, root) = copy_repo();
    let stderr = ok_stderr(
        sopsync_as(&r.b)
            .args(["updatekeys", "--recursive", "-y", "--rotate"])
            .arg(&root),
    );
    assert!(
        stderr.contains(&format!("summary: {FILES} changed, 0 unchanged, 0 failed")),
        "{stderr}"
    );
    assert!(!stderr.contains("without a new data key"), "{stderr}");
    assert_rotated_without_c(&root);
    assert_second_updatekeys_changes_no_byte(&root);
}

fn sha256(bytes: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

#[test]
fn a_killed_rotation_leaves_no_corrupt_file_and_resume_rotates_each_file_once() {
    let r = repo();
    let (dir, root) = copy_repo();
    let journal = dir.path().join("journal.jsonl");
    let mut child = sopsync_as(&r.a)
        .args([
            "rotate",
            "--recursive",
            "--jobs",
            "1",
            "--rm-age",
            &r.c_recipient,
            "--journal",
        ])
        .arg(&journal)
        .arg(&root)
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    // Killed once a few files are journaled; the deadline only turns a hang into a
    // failure, it does not decide the outcome.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(300);
    loop {
        let lines = std::fs::read_to_string(&journal)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 5 {
            break;
        }
        if let Some(status) = child.try_wait().unwrap() {
            panic!("rotate exited ({status}) before it could be interrupted");
        }
        assert!(
            std::time::Instant::now() < deadline,
            "rotate made no progress"
        );
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    child.kill().unwrap();
    child.wait().unwrap();
    let ida = ids(&r.a);
    let journaled: BTreeSet<String> = std::fs::read_to_string(&journal)
        .unwrap()
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter_map(|v| v["sha256"].as_str().map(String::from))
        .collect();
    assert!(journaled.len() < FILES, "the run finished before the kill");
    // No corrupt file: every one opens with its values; the rotated ones are known.
    let before_resume = snapshot(&root);
    let mut rotated = BTreeSet::new();
    for (rel, bytes) in &before_resume {
        assert_eq!(documents(&root.join(rel), &ida), r.plain[rel], "{rel}");
        if journaled.contains(&sha256(bytes)) {
            rotated.insert(rel.clone());
            assert_ne!(data_key(&root.join(rel), &ida).as_ref(), Some(&r.keys[rel]));
        } else {
            assert_eq!(data_key(&root.join(rel), &ida).as_ref(), Some(&r.keys[rel]));
        }
    }
    assert!(!rotated.is_empty(), "nothing was rotated before the kill");
    let stderr = ok_stderr(
        sopsync_as(&r.a)
            .args([
                "rotate",
                "--recursive",
                "--resume",
                "--rm-age",
                &r.c_recipient,
                "--journal",
            ])
            .arg(&journal)
            .arg(&root),
    );
    assert!(
        stderr.contains(&format!(
            "summary: {} changed, {} unchanged, 0 failed",
            FILES - rotated.len(),
            rotated.len()
        )),
        "{stderr}"
    );
    let after = snapshot(&root);
    for rel in &rotated {
        assert!(after[rel] == before_resume[rel], "{rel} was rotated twice");
    }
    assert_rotated_without_c(&root);
}

/// A small repository with one planted problem of each kind.
fn audit_repo(dir: &Path) -> (PathBuf, PathBuf) {
    let (a, ra) = age_keypair(dir, "a");
    let (_b, rb) = age_keypair(dir, "b");
    let (_c, rc) = age_keypair(dir, "c");
    let root = dir.join("repo");
    for d in ["secrets", "team2", "team3", "docs"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    let enc = |rel: &str, recipients: &str| {
        std::fs::write(
            root.join(rel),
            "password: canary-audit-value\nnote_unencrypted: public\n",
        )
        .unwrap();
        run_ok(
            sops()
                .current_dir(&root)
                .args(["encrypt", "-i", "--age", recipients])
                .arg(rel),
        );
    };
    enc("secrets/clean.yaml", &format!("{ra},{rb}"));
    enc("secrets/stale.yaml", &format!("{ra},{rb},{rc}"));
    enc("secrets/missing.yaml", &ra);
    enc("secrets/tampered.yaml", &format!("{ra},{rb}"));
    enc("team2/theirs.yaml", &rc);
    enc("team3/ours.yaml", &ra);
    // The rules are written after sops encrypted the files with explicit recipients
    // (sops refuses --age when a .sops.yaml has no rule for the file).
    std::fs::write(
        root.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: ^secrets/.*\\.yaml$\n    age: {ra},{rb}\n"),
    )
    .unwrap();
    // A monorepo: team2 has its own rule, for C only.
    std::fs::write(
        root.join("team2/.sops.yaml"),
        format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {rc}\n"),
    )
    .unwrap();
    // team3 has a catch-all rule: it does not make its plaintext files suspect.
    std::fs::write(
        root.join("team3/.sops.yaml"),
        format!("creation_rules:\n  - age: {ra}\n"),
    )
    .unwrap();
    // The MAC covers the value left in the clear: changing it breaks the MAC.
    let t = root.join("secrets/tampered.yaml");
    let text = std::fs::read_to_string(&t).unwrap();
    assert!(text.contains("note_unencrypted: public"));
    std::fs::write(
        &t,
        text.replace("note_unencrypted: public", "note_unencrypted: changed"),
    )
    .unwrap();
    std::fs::write(
        root.join("secrets/plain.yaml"),
        "password: canary-audit-plain\n",
    )
    .unwrap();
    std::fs::write(root.join("team3/notes.yaml"), "hello: world\n").unwrap();
    std::fs::write(root.join("docs/other.yaml"), "hello: world\n").unwrap();
    std::fs::write(root.join("README.md"), "# repo\n").unwrap();
    (root, a)
}

fn problems_from_json(stdout: &[u8]) -> BTreeSet<(String, String)> {
    let v: serde_json::Value = serde_json::from_slice(stdout).expect("audit JSON parses");
    let mut out = BTreeSet::new();
    for f in v["files"].as_array().unwrap() {
        for p in f["problems"].as_array().unwrap() {
            out.insert((
                f["path"].as_str().unwrap().to_string(),
                p["kind"].as_str().unwrap().to_string(),
            ));
        }
    }
    out
}

/// The (test case, failure type) pairs of a JUnit report, read by Python's XML parser.
fn problems_from_junit(xml: &[u8], dir: &Path) -> (BTreeSet<(String, String)>, usize) {
    let file = dir.join("report.xml");
    std::fs::write(&file, xml).unwrap();
    let script = r#"
import sys, xml.etree.ElementTree as E
root = E.parse(sys.argv[1]).getroot()
for case in root.iter('testcase'):
    for f in case.findall('failure'):
        for kind in f.get('type').split(','):
            print('F', case.get('name'), kind)
    for s in case.findall('skipped'):
        print('S', case.get('name'))
"#;
    let out = run_ok(
        Command::new(tool("python3"))
            .arg("-c")
            .arg(script)
            .arg(&file),
    );
    let text = String::from_utf8(out).unwrap();
    let mut failures = BTreeSet::new();
    let mut skipped = 0;
    for line in text.lines() {
        let mut parts = line.splitn(3, ' ');
        match (parts.next(), parts.next(), parts.next()) {
            (Some("F"), Some(name), Some(kind)) => {
                failures.insert((name.to_string(), kind.to_string()));
            }
            (Some("S"), _, _) => skipped += 1,
            _ => panic!("unexpected line {line}"),
        }
    }
    (failures, skipped)
}

#[test]
fn audit_finds_each_planted_problem_and_nothing_else_in_table_json_and_junit() {
    let dir = tempdir();
    let (root, a) = audit_repo(dir.path());
    let expected: BTreeSet<(String, String)> = [
        ("secrets/stale.yaml", "stale_recipient"),
        ("secrets/missing.yaml", "missing_recipient"),
        ("secrets/tampered.yaml", "mac_failure"),
        ("secrets/plain.yaml", "plaintext"),
        ("team2/theirs.yaml", "cannot_open"),
    ]
    .iter()
    .map(|(p, k)| (p.to_string(), k.to_string()))
    .collect();
    let audit = |args: &[&str]| {
        let out = run(sopsync()
            .env("SOPS_AGE_KEY_FILE", &a)
            .current_dir(&root)
            .arg("audit")
            .args(args)
            .arg("."));
        assert_eq!(
            out.status.code(),
            Some(1),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        for canary in ["canary-audit-value", "canary-audit-plain"] {
            assert!(!String::from_utf8_lossy(&out.stdout).contains(canary));
            assert!(!String::from_utf8_lossy(&out.stderr).contains(canary));
        }
        out
    };
    let json = audit(&["--format", "json"]);
    assert_eq!(problems_from_json(&json.stdout), expected);
    let v: serde_json::Value = serde_json::from_slice(&json.stdout).unwrap();
    let stale = v["files"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["path"] == "secrets/stale.yaml")
        .unwrap();
    assert_eq!(stale["recipients"].as_array().unwrap().len(), 3);
    assert!(stale["lastmodified"].as_str().unwrap().ends_with('Z'));
    let (junit, skipped) = problems_from_junit(&audit(&["--format", "junit"]).stdout, dir.path());
    assert_eq!(junit, expected);
    assert_eq!(skipped, 0);
    let table = String::from_utf8(audit(&[]).stdout).unwrap();
    for (path, kind) in &expected {
        assert!(
            table.lines().any(|l| l.starts_with(path.as_str()))
                && table.contains(&format!("    {kind}: ")),
            "{table}"
        );
    }
    assert!(
        table.contains("7 file(s), 5 problem(s); key checks run"),
        "{table}"
    );

    // Without a key, the keyless checks still find theirs, and the report says the
    // key checks were not run (a skipped test case in JUnit).
    let structural: BTreeSet<_> = expected
        .iter()
        .filter(|(_, k)| k != "mac_failure" && k != "cannot_open")
        .cloned()
        .collect();
    let out = run(sopsync().current_dir(&root).args([
        "audit",
        "--structural-only",
        "--format",
        "junit",
        ".",
    ]));
    assert_eq!(out.status.code(), Some(1));
    let (junit, skipped) = problems_from_junit(&out.stdout, dir.path());
    assert_eq!(junit, structural);
    assert_eq!(skipped, 1);

    // A clean directory exits 0.
    for f in ["stale", "missing", "tampered", "plain"] {
        std::fs::remove_file(root.join(format!("secrets/{f}.yaml"))).unwrap();
    }
    std::fs::remove_dir_all(root.join("team2")).unwrap();
    let out = run(sopsync()
        .env("SOPS_AGE_KEY_FILE", &a)
        .current_dir(&root)
        .args(["audit", "--format", "json", "."]));
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}

#[test]
fn gitignored_files_are_neither_updated_nor_audited_but_tracked_ones_are() {
    let dir = tempdir();
    let (a, ra) = age_keypair(dir.path(), "a");
    let (_b, rb) = age_keypair(dir.path(), "b");
    let root = dir.path().join("repo");
    for d in ["tracked", "local"] {
        std::fs::create_dir_all(root.join(d)).unwrap();
    }
    for rel in ["tracked/s.yaml", "local/s.yaml", "local/forced.yaml"] {
        std::fs::write(root.join(rel), "password: canary-ignored\n").unwrap();
        run_ok(
            sops()
                .current_dir(&root)
                .args(["encrypt", "-i", "--age", &ra])
                .arg(rel),
        );
    }
    // Every file lacks B; local/ is ignored, but a file added with -f is tracked, and
    // git never ignores a tracked file.
    std::fs::write(
        root.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {ra},{rb}\n"),
    )
    .unwrap();
    std::fs::write(root.join(".gitignore"), "local/\n").unwrap();
    let git = |args: &[&str]| {
        run_ok(Command::new(tool("git")).current_dir(&root).args(args));
    };
    git(&["init", "-q", "."]);
    git(&[
        "add",
        "-f",
        ".gitignore",
        ".sops.yaml",
        "tracked/s.yaml",
        "local/forced.yaml",
    ]);
    let out = run(sopsync().current_dir(&root).args([
        "audit",
        "--structural-only",
        "--format",
        "json",
        ".",
    ]));
    let expected: BTreeSet<(String, String)> = ["tracked/s.yaml", "local/forced.yaml"]
        .iter()
        .map(|p| (p.to_string(), "missing_recipient".to_string()))
        .collect();
    assert_eq!(problems_from_json(&out.stdout), expected);
    let ignored_before = std::fs::read(root.join("local/s.yaml")).unwrap();
    let stderr = ok_stderr(
        sopsync()
            .env("SOPS_AGE_KEY_FILE", &a)
            .current_dir(&root)
            .args(["updatekeys", "--recursive", "-y", "."]),
    );
    assert!(
        stderr.contains("summary: 2 changed, 0 unchanged, 0 failed"),
        "{stderr}"
    );
    assert!(std::fs::read(root.join("local/s.yaml")).unwrap() == ignored_before);
}

/// Issue 14: `--dry-run` prints the plan and changes no byte, and a file holding a key
/// entry sopsync cannot wrap a data key for (here GCP KMS) is refused by name, never
/// rewritten without it, by `updatekeys --recursive` and `rotate --recursive` alike;
/// the other files are done and the exit code says a file failed.
#[test]
fn dry_run_changes_nothing_and_a_file_with_a_key_sopsync_cannot_rewrap_is_refused_by_name() {
    let dir = tempdir();
    let (a, ra) = age_keypair(dir.path(), "a");
    let (_b, rb) = age_keypair(dir.path(), "b");
    let root = dir.path().join("repo");
    std::fs::create_dir_all(&root).unwrap();
    for rel in ["plain-age.yaml", "with-gcp.yaml"] {
        std::fs::write(root.join(rel), "password: canary-dry-run\n").unwrap();
        run_ok(
            sops()
                .current_dir(&root)
                .args(["encrypt", "-i", "--age", &ra])
                .arg(rel),
        );
    }
    // A GCP KMS entry where sops writes it (before `age:`); the MAC does not cover the
    // metadata, so the real sops still decrypts the file with the age key.
    let gcp = root.join("with-gcp.yaml");
    let text = std::fs::read_to_string(&gcp).unwrap();
    let with_entry = text.replacen(
        "\nsops:\n",
        "\nsops:\n    gcp_kms:\n        - resource_id: projects/p/locations/global/keyRings/r/cryptoKeys/k\n          created_at: \"2025-01-02T03:04:05Z\"\n          enc: CiQAZ2NwdGVzdA==\n",
        1,
    );
    assert_ne!(with_entry, text, "the sops block was found");
    std::fs::write(&gcp, with_entry).unwrap();
    run_ok(sops().env("SOPS_AGE_KEY_FILE", &a).arg("decrypt").arg(&gcp));
    std::fs::write(
        root.join(".sops.yaml"),
        format!("creation_rules:\n  - path_regex: \\.yaml$\n    age: {ra},{rb}\n"),
    )
    .unwrap();

    let files = |root: &Path| -> BTreeMap<&str, Vec<u8>> {
        ["plain-age.yaml", "with-gcp.yaml"]
            .into_iter()
            .map(|f| (f, std::fs::read(root.join(f)).unwrap()))
            .collect()
    };
    let before = files(&root);
    let out = run(sopsync_as(&a).current_dir(&root).args([
        "updatekeys",
        "--recursive",
        "-y",
        "--dry-run",
        ".",
    ]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(files(&root), before, "--dry-run wrote nothing:\n{stderr}");
    assert!(
        stderr.contains("summary: 1 to change, 0 unchanged, 1 failed"),
        "{stderr}"
    );
    assert!(
        stderr.contains("with-gcp.yaml: refused: it holds gcp_kms key entries"),
        "{stderr}"
    );

    for args in [
        &["updatekeys", "--recursive", "-y", "."][..],
        &["rotate", "--recursive", "."][..],
    ] {
        let gcp_before = std::fs::read(&gcp).unwrap();
        let out = run(sopsync_as(&a).current_dir(&root).args(args));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(
            stderr.contains("with-gcp.yaml: refused: it holds gcp_kms key entries")
                && stderr.contains("1 failed"),
            "{args:?}: {stderr}"
        );
        assert_eq!(
            std::fs::read(&gcp).unwrap(),
            gcp_before,
            "{args:?}: the refused file is untouched"
        );
        assert!(!stderr.contains("canary-dry-run") && out.stdout.is_empty());
    }
    assert_ne!(
        std::fs::read(root.join("plain-age.yaml")).unwrap(),
        before["plain-age.yaml"],
        "the other file was done"
    );
}

/// A repository is hostile input: a file name and a recipient written with terminal
/// control sequences (clear the screen, a forged report line) are printed escaped by
/// `audit`, `updatekeys --recursive` and `rotate --recursive`, never as raw bytes.
#[test]
fn control_characters_in_file_names_and_recipients_are_printed_escaped() {
    let dir = tempdir();
    let root = dir.path().join("repo");
    std::fs::create_dir(&root).unwrap();
    let (key, r) = age_keypair(dir.path(), "team");
    let (_, other) = age_keypair(dir.path(), "other");
    let evil_name = "evil\u{1b}[2J\nrotated forged.yaml.yaml";
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, "password: hunter2\n").unwrap();
    let enc = run_ok(sopsync().args(["encrypt", "--age", &r]).arg(&plain));
    // A recipient line with an escape sequence, planted by hand in a second file.
    let planted = String::from_utf8(enc.clone()).unwrap().replacen(
        &format!("recipient: {r}"),
        &format!("recipient: \"{r}\\e[31m\""),
        1,
    );
    assert!(
        planted.contains("\\e[31m"),
        "the recipient line was not found"
    );
    std::fs::write(root.join(evil_name), &enc).unwrap();
    std::fs::write(root.join("planted.yaml"), planted).unwrap();
    // A right-to-left override shows `txt.yaml` as `lmay.txt`; shown escaped too.
    let bidi_name = "bidi\u{202e}lmay.txt";
    std::fs::write(root.join(bidi_name), &enc).unwrap();
    std::fs::write(
        root.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {r},{other}\n"),
    )
    .unwrap();
    let runs: [&[&str]; 3] = [
        &["audit", "."],
        &["updatekeys", "-r", "-y", "--dry-run", "."],
        &["rotate", "-r", "--dry-run", "--add-age", &other, "."],
    ];
    for args in runs {
        let out = run(sopsync()
            .current_dir(&root)
            .env("SOPS_AGE_KEY_FILE", &key)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .args(args));
        let all = [out.stdout.as_slice(), out.stderr.as_slice()].concat();
        let text = String::from_utf8_lossy(&all);
        assert!(
            !all.contains(&0x1b) && !text.contains('\u{202e}'),
            "{args:?} printed a raw escape or bidi character:\n{text}"
        );
        assert!(text.contains("bidi\\u{202e}lmay.txt"), "{args:?}:\n{text}");
        assert!(
            text.contains("evil\\u{1b}[2J\\nrotated forged"),
            "{args:?}:\n{text}"
        );
        assert!(
            !text.lines().any(|l| l.starts_with("rotated forged")),
            "{args:?} printed a forged line:\n{text}"
        );
    }
    // The JSON report carries the names as they are (JSON escapes them itself).
    let out = run(sopsync()
        .current_dir(&root)
        .env("SOPS_AGE_KEY_FILE", &key)
        .args(["audit", "--format", "json", "."]));
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    let paths: Vec<&str> = report["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["path"].as_str())
        .collect();
    assert!(
        paths.contains(&evil_name) && paths.contains(&bidi_name),
        "{paths:?}"
    );
    // Every command's error names the file escaped (here: decrypt without the key).
    let out = run(sopsync().arg("decrypt").arg(root.join(evil_name)));
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.stderr.contains(&0x1b), "{err}");
    assert!(err.contains("evil\\u{1b}[2J\\nrotated forged"), "{err}");
    // The recipient with the escape sequence is shown escaped in the audit table.
    let out = run(sopsync()
        .current_dir(&root)
        .env("SOPS_AGE_KEY_FILE", &key)
        .args(["audit", "--structural-only", "."]));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains(&format!("{r}\\u{{1b}}[31m")), "{text}");
}

/// The `sops` block is not covered by the MAC: whoever can push can add a recipient to
/// a file. `rotate --recursive` keeps the file's recipients, so it says when it wraps
/// the new data key for one the file's rule does not list; `updatekeys --recursive
/// --rotate` wraps for the rule's recipients only and drops it.
#[test]
fn rotate_recursive_warns_about_a_recipient_the_rule_does_not_list_and_updatekeys_rotate_drops_it()
{
    let dir = tempdir();
    let root = dir.path().join("repo");
    std::fs::create_dir(&root).unwrap();
    let (key, r) = age_keypair(dir.path(), "team");
    let (_, mallory) = age_keypair(dir.path(), "mallory");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, "password: hunter2\n").unwrap();
    let enc = run_ok(
        sopsync()
            .args(["encrypt", "--age", &format!("{r},{mallory}")])
            .arg(&plain),
    );
    std::fs::write(root.join("db.yaml"), enc).unwrap();
    std::fs::write(
        root.join(".sops.yaml"),
        format!("creation_rules:\n  - age: {r}\n"),
    )
    .unwrap();
    let in_root = |args: &[&str]| {
        let mut c = sopsync();
        c.current_dir(&root)
            .env("SOPS_AGE_KEY_FILE", &key)
            .env("XDG_STATE_HOME", dir.path().join("state"))
            .args(args);
        c
    };
    let err = ok_stderr(&mut in_root(&["rotate", "-r", "."]));
    assert!(
        err.contains(&format!(
            "warning: db.yaml: the new data key is also wrapped for {mallory}, which its .sops.yaml rule does not list"
        )),
        "{err}"
    );
    assert!(std::fs::read_to_string(root.join("db.yaml"))
        .unwrap()
        .contains(&mallory));
    // A recipient added on purpose (--add-age) is not warned about.
    let (_, bob) = age_keypair(dir.path(), "bob");
    let err = ok_stderr(&mut in_root(&[
        "rotate",
        "-r",
        "--rm-age",
        &mallory,
        "--add-age",
        &bob,
        ".",
    ]));
    assert!(!err.contains("warning:"), "{err}");
    // updatekeys --rotate: the rule's recipients only.
    let err = ok_stderr(&mut in_root(&["updatekeys", "-r", "-y", "--rotate", "."]));
    assert!(err.contains(&format!("removed {bob}")), "{err}");
    let text = std::fs::read_to_string(root.join("db.yaml")).unwrap();
    assert!(
        !text.contains(&bob) && !text.contains(&mallory) && text.contains(&r),
        "{text}"
    );
}
