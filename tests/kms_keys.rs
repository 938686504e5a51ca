//! AWS KMS keys that carry more than an ARN (issue 15): a role assumed through STS and
//! an encryption context, against a moto server that enforces IAM (the caller's own
//! user may only assume the role; only the role may use KMS, so a file that opens was
//! opened through the role), with the real sops both ways and from `.sops.yaml`
//! rules; and repository-wide `updatekeys`/`rotate --recursive` over files with KMS
//! entries, their role and context kept or changed as the rule or flags say; and the
//! controller assuming a file's role with a namespace's own credentials.

use crate::support::moto::{commit_kms_secret, put_aws_credentials, EnforcingSetup, Moto};
use crate::support::{age_keypair, run, run_ok, sops, sopsync, tempdir};
use std::path::{Path, PathBuf};
use std::process::Command;

const PLAIN: &str = "password: hunter2\nnested:\n    token: t0k3n\n";

/// A temp dir with an empty HOME, and an enforcing moto.
fn setup() -> (tempfile::TempDir, PathBuf, Moto, EnforcingSetup) {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let (moto, made) = Moto::start_enforcing(dir.path());
    (dir, home, moto, made)
}

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `sops decrypt FILE` with KMS only (no age key anywhere in its environment).
fn sops_opens_with_kms_alone(moto: &Moto, home: &Path, file: &Path) {
    let out = run_ok(moto.env(&mut sops(), home).arg("decrypt").arg(file));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN, "{}", file.display());
}

/// Each file holds every text of `has` and none of `lacks`, and sops opens it with KMS
/// alone.
fn each_opens_with_kms_alone(
    moto: &Moto,
    home: &Path,
    files: &[PathBuf],
    has: &[&str],
    lacks: &[&str],
) {
    for f in files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(
            has.iter().all(|t| text.contains(t)) && !lacks.iter().any(|t| text.contains(t)),
            "{}: expected {has:?} and none of {lacks:?}:\n{text}",
            f.display()
        );
        sops_opens_with_kms_alone(moto, home, f);
    }
}

#[test]
fn a_kms_key_with_a_role_is_used_through_the_assumed_role_in_both_tools() {
    let (dir, home, moto, made) = setup();
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());

    // The server enforces IAM: the caller's own user may not use the key.
    let denied = run(moto
        .env(&mut sopsync(), &home)
        .args(["encrypt", "--kms", &made.arn])
        .arg(&plain));
    assert!(
        !denied.status.success(),
        "KMS answered a user without kms:* (the server does not enforce IAM): {}",
        moto.logs()
    );
    // (moto answers KMS's JSON protocol with an XML error body, which neither the Go
    // nor the Rust SDK reads: the HTTP status is what there is to say.)
    let err = stderr(&denied);
    assert!(
        err.contains(&made.arn) && err.contains("HTTP 403") && err.contains("kms:Encrypt"),
        "{err}"
    );
    assert!(denied.stdout.is_empty());

    // With `ARN+ROLE`, the role is assumed and its credentials reach KMS.
    let with_role = format!("{}+{}", made.arn, made.role);
    let ours = run_ok(
        moto.env(&mut sopsync(), &home)
            .args(["encrypt", "--kms", &with_role])
            .arg(&plain),
    );
    let ours = write(dir.path(), "ours.enc.yaml", &ours);
    let text = std::fs::read_to_string(&ours).unwrap();
    assert!(text.contains(&format!("role: {}", made.role)), "{text}");
    sops_opens_with_kms_alone(&moto, &home, &ours);

    let theirs = run_ok(
        moto.env(&mut sops(), &home)
            .args(["encrypt", "--kms", &with_role])
            .arg(&plain),
    );
    let theirs = write(dir.path(), "theirs.enc.yaml", &theirs);
    let out = run_ok(moto.env(&mut sopsync(), &home).arg("decrypt").arg(&theirs));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // The same file without its role line is refused by KMS: the role was what opened it.
    let no_role = text.replace(&format!("role: {}", made.role), "role: \"\"");
    let no_role = write(dir.path(), "no-role.enc.yaml", no_role.as_bytes());
    let out = run(moto.env(&mut sopsync(), &home).arg("decrypt").arg(&no_role));
    assert!(!out.status.success(), "opened without the role");
    assert!(out.stdout.is_empty() && !stderr(&out).contains("hunter2"));
}

#[test]
fn a_rule_with_a_role_and_a_context_encrypts_for_both_and_sops_opens_it() {
    let (dir, home, moto, made) = setup();
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - path_regex: \\.yaml$\n    key_groups:\n      - kms:\n          - arn: {}\n            role: {}\n            context:\n              app: web\n",
            made.arn, made.role
        ),
    )
    .unwrap();
    write(dir.path(), "secret.yaml", PLAIN.as_bytes());
    let out = run_ok(
        moto.env(&mut sopsync(), &home)
            .current_dir(dir.path())
            .args(["encrypt", "secret.yaml"]),
    );
    let enc = write(dir.path(), "secret.enc.yaml", &out);
    let text = std::fs::read_to_string(&enc).unwrap();
    assert!(
        text.contains(&format!("role: {}", made.role)) && text.contains("app: web"),
        "{text}"
    );
    sops_opens_with_kms_alone(&moto, &home, &enc);
}

/// A repository of two files encrypted for `recipient` only, and a `.sops.yaml` whose
/// rule adds the KMS key with `made`'s role and context `app: web`; returns the files.
fn repo(
    dir: &Path,
    moto: &Moto,
    home: &Path,
    recipient: &str,
    made: &EnforcingSetup,
) -> [PathBuf; 2] {
    let repo = dir.join("repo");
    std::fs::create_dir_all(repo.join("apps")).unwrap();
    for name in ["a.yaml", "apps/b.yaml"] {
        let plain = write(dir, "plain.yaml", PLAIN.as_bytes());
        let enc = run_ok(
            moto.env(&mut sopsync(), home)
                .args(["encrypt", "--age", recipient])
                .arg(&plain),
        );
        std::fs::write(repo.join(name), enc).unwrap();
        std::fs::remove_file(plain).unwrap();
    }
    rule(dir, recipient, made, "app: web");
    [repo.join("a.yaml"), repo.join("apps/b.yaml")]
}

fn rule(dir: &Path, recipient: &str, made: &EnforcingSetup, context: &str) {
    std::fs::write(
        dir.join("repo/.sops.yaml"),
        format!(
            "creation_rules:\n  - key_groups:\n      - age: [{recipient}]\n        kms:\n          - arn: {}\n            role: {}\n            context: {{{context}}}\n",
            made.arn, made.role
        ),
    )
    .unwrap();
}

fn in_repo(moto: &Moto, home: &Path, dir: &Path, key: Option<&Path>) -> Command {
    let mut c = sopsync();
    moto.env(&mut c, home).current_dir(dir.join("repo"));
    c.env("XDG_STATE_HOME", dir.join("state"));
    if let Some(k) = key {
        c.env("SOPS_AGE_KEY_FILE", k);
    }
    c
}

#[test]
fn updatekeys_recursive_wraps_for_a_rules_kms_key_with_its_role_and_applies_a_new_context() {
    let (dir, home, moto, made) = setup();
    let (key, r) = age_keypair(dir.path(), "team");
    let files = repo(dir.path(), &moto, &home, &r, &made);

    let out =
        run(in_repo(&moto, &home, dir.path(), Some(&key)).args(["updatekeys", "-r", "-y", "."]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    let label = format!("kms:{}+{} (context \"app\"=\"web\")", made.arn, made.role);
    assert!(err.contains(&format!("added {label}")), "{err}");
    each_opens_with_kms_alone(&moto, &home, &files, &[made.role.as_str(), "app: web"], &[]);

    // Run again: nothing to do, not a byte written.
    let before: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    let out =
        run(in_repo(&moto, &home, dir.path(), Some(&key)).args(["updatekeys", "-r", "-y", "."]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("unchanged a.yaml"),
        "{}",
        stderr(&out)
    );
    let after: Vec<Vec<u8>> = files.iter().map(|f| std::fs::read(f).unwrap()).collect();
    assert_eq!(before, after, "an idempotent updatekeys rewrote a file");

    // The rule's context changes: that is a change, applied to every file.
    rule(dir.path(), &r, &made, "app: api");
    let out =
        run(in_repo(&moto, &home, dir.path(), Some(&key)).args(["updatekeys", "-r", "-y", "."]));
    let err = stderr(&out);
    assert!(out.status.success(), "{err}");
    assert!(
        err.contains(&format!("removed {label}"))
            && err.contains(&format!(
                "added kms:{}+{} (context \"app\"=\"api\")",
                made.arn, made.role
            )),
        "{err}"
    );
    each_opens_with_kms_alone(&moto, &home, &files, &["app: api"], &["app: web"]);
}

#[test]
fn rotate_recursive_adds_a_kms_key_with_its_role_and_context_and_removes_it_by_arn() {
    let (dir, home, moto, made) = setup();
    let (key, r) = age_keypair(dir.path(), "team");
    let files = repo(dir.path(), &moto, &home, &r, &made);
    let with_role = format!("{}+{}", made.arn, made.role);

    let out = run(in_repo(&moto, &home, dir.path(), Some(&key)).args([
        "rotate",
        "-r",
        "--add-kms",
        &with_role,
        "--encryption-context",
        "team:a",
        ".",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    each_opens_with_kms_alone(&moto, &home, &files, &[made.role.as_str(), "team: a"], &[]);

    // A rotation re-wraps the file's own KMS entry (role and context kept) with the new
    // data key: KMS alone still opens it, now without the age key anywhere.
    let out = run(in_repo(&moto, &home, dir.path(), None).args(["rotate", "-r", "."]));
    assert!(out.status.success(), "{}", stderr(&out));
    each_opens_with_kms_alone(&moto, &home, &files, &[made.role.as_str(), "team: a"], &[]);

    // `--rm-kms ARN` removes the key whatever its role and context.
    let out = run(in_repo(&moto, &home, dir.path(), Some(&key))
        .args(["rotate", "-r", "--rm-kms", &made.arn, "."]));
    assert!(out.status.success(), "{}", stderr(&out));
    for f in &files {
        let text = std::fs::read_to_string(f).unwrap();
        assert!(!text.contains(&made.arn), "{text}");
        let alone = run(moto.env(&mut sops(), &home).arg("decrypt").arg(f));
        assert!(
            !alone.status.success(),
            "sops opened a file with no KMS entry without its age key"
        );
        let out = run_ok(
            moto.env(&mut sops(), &home)
                .env("SOPS_AGE_KEY_FILE", &key)
                .arg("decrypt")
                .arg(f),
        );
        assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
    }
}

#[test]
fn the_controller_assumes_a_files_role_with_a_namespaces_own_credentials() {
    use crate::support::cluster::{wait_applied, Cluster, CANARY};
    use serde_json::json;

    let c = Cluster::new(&[]);
    let home = c.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let (moto, made) = Moto::start_enforcing(c.dir.path());
    let kms = format!("{}+{}", made.arn, made.role);
    let revision = commit_kms_secret(&c, &moto, &home, &kms, &format!("{CANARY}-role"));
    // team-a's own credentials (the `ci` user: it may only assume the role).
    put_aws_credentials(&c, "team-a", &made.access_key_id, &made.secret_access_key);
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    let endpoint = moto.endpoint();
    let env = [
        ("AWS_ENDPOINT_URL_KMS", endpoint.as_str()),
        ("AWS_ENDPOINT_URL_STS", endpoint.as_str()),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("HOME", home.to_str().unwrap()),
    ];
    let mut ctl = c.controller_with_env("c1", &[], &env);
    wait_applied(&c, &ctl, "team-a", "apps", &revision);
    assert_eq!(
        c.data("team-a", "db").expect("the Secret").get("password"),
        Some(&format!("{CANARY}-role"))
    );
    ctl.terminate();
    assert!(
        !ctl.logs().contains(&made.secret_access_key),
        "a credential reached the logs"
    );
    ctl.assert_no_canary();
}
