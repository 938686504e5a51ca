//! AWS KMS (issue 15, "Keys" -> AWS KMS): real sops 3.11 <-> sopsync both ways against
//! a real KMS API on loopback (moto's server, started here on a free port, a key made
//! through its API), with and without an encryption context; a wrong context fails
//! naming the ARN and what KMS said; Shamir 2-of-3 mixing age and KMS; rotate
//! `--add-kms`/`--rm-kms`; `groups add --kms` and `groups delete`; and the controller with a namespace's `sops.aws-kms`
//! credentials, and its own identity only where the operator allows it.

use crate::support::moto::{commit_kms_secret, put_aws_credentials, Moto};
use crate::support::{age_keypair, run, run_ok, sops, sopsync, tempdir};
use std::path::{Path, PathBuf};

const PLAIN: &str = "password: hunter2\nnested:\n    token: t0k3n\n";

fn write(dir: &Path, name: &str, text: &[u8]) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

/// A temp dir, an empty HOME in it, moto and one key.
fn setup() -> (tempfile::TempDir, PathBuf, Moto, String) {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let moto = Moto::start(dir.path());
    let arn = moto.create_key();
    (dir, home, moto, arn)
}

#[test]
fn a_file_sops_encrypts_with_kms_decrypts_here_and_ours_decrypts_in_sops() {
    let (dir, home, moto, arn) = setup();
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());

    // sops -> sopsync
    let theirs = run_ok(
        moto.env(&mut sops(), &home)
            .args(["encrypt", "--kms", &arn])
            .arg(&plain),
    );
    let theirs = write(dir.path(), "theirs.enc.yaml", &theirs);
    let out = run_ok(moto.env(&mut sopsync(), &home).arg("decrypt").arg(&theirs));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // sopsync -> sops, the ARN from SOPS_KMS_ARN (sops' variable for --kms).
    let ours = run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_KMS_ARN", &arn)
            .arg("encrypt")
            .arg(&plain),
    );
    let text = String::from_utf8(ours).unwrap();
    assert!(text.contains(&format!("- arn: {arn}\n")), "{text}");
    assert!(
        text.contains("aws_profile: \"\""),
        "sops writes it always: {text}"
    );
    let ours = write(dir.path(), "ours.enc.yaml", text.as_bytes());
    let out = run_ok(moto.env(&mut sops(), &home).arg("decrypt").arg(&ours));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
}

#[test]
fn an_encryption_context_is_kept_both_ways_and_a_wrong_one_fails_naming_the_arn() {
    let (dir, home, moto, arn) = setup();
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());
    let ctx = "app:web,env:prod";

    let theirs = run_ok(
        moto.env(&mut sops(), &home)
            .args(["encrypt", "--kms", &arn, "--encryption-context", ctx])
            .arg(&plain),
    );
    let theirs = write(dir.path(), "theirs.enc.yaml", &theirs);
    let out = run_ok(moto.env(&mut sopsync(), &home).arg("decrypt").arg(&theirs));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    let ours = run_ok(
        moto.env(&mut sopsync(), &home)
            .args(["encrypt", "--kms", &arn, "--encryption-context", ctx])
            .arg(&plain),
    );
    let text = String::from_utf8(ours).unwrap();
    assert!(
        text.contains("context:\n            app: web\n            env: prod\n"),
        "{text}"
    );
    let ours = write(dir.path(), "ours.enc.yaml", text.as_bytes());
    let out = run_ok(moto.env(&mut sops(), &home).arg("decrypt").arg(&ours));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // The same file with another context: KMS refuses, and the message says which key
    // and what KMS answered; no plaintext anywhere.
    let wrong = write(
        dir.path(),
        "wrong.enc.yaml",
        text.replace("env: prod", "env: dev").as_bytes(),
    );
    let out = run(moto.env(&mut sopsync(), &home).arg("decrypt").arg(&wrong));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128), "{stderr}");
    assert!(
        stderr.contains(&format!(
            "kms {arn}: cannot decrypt the data key: AWS KMS answered InvalidCiphertextException"
        )),
        "{stderr}"
    );
    assert!(stderr.contains("encryption context"), "{stderr}");
    assert!(out.stdout.is_empty());
    assert!(!stderr.contains("hunter2"), "{stderr}");

    // A malformed context is refused as sops refuses it (exit 6), before any call.
    let out = run(moto
        .env(&mut sopsync(), &home)
        .args(["encrypt", "--kms", &arn, "--encryption-context", "a:b:c"])
        .arg(&plain));
    assert_eq!(
        out.status.code(),
        Some(6),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn shamir_two_of_three_across_age_and_kms_opens_in_both_tools() {
    let (dir, home, moto, arn) = setup();
    let (key1, r1) = age_keypair(dir.path(), "one");
    let (key3, r3) = age_keypair(dir.path(), "three");
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{r1}]\n      - kms:\n          - arn: {arn}\n            context:\n              team: core\n      - age: [{r3}]\n"
        ),
    )
    .unwrap();
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());

    // sops makes it; sopsync opens it with KMS and the first age key only.
    let theirs = run_ok(
        moto.env(&mut sops(), &home)
            .current_dir(dir.path())
            .args(["encrypt", "secret.yaml"]),
    );
    let theirs = write(dir.path(), "theirs.enc.yaml", &theirs);
    let out = run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_AGE_KEY_FILE", &key1)
            .arg("decrypt")
            .arg(&theirs),
    );
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // sopsync makes it from the same rule; sops opens it with KMS and the third key.
    let ours = run_ok(
        moto.env(&mut sopsync(), &home)
            .current_dir(dir.path())
            .args(["encrypt", "secret.yaml"]),
    );
    let text = String::from_utf8(ours).unwrap();
    assert!(text.contains("team: core"), "{text}");
    let ours = write(dir.path(), "ours.enc.yaml", text.as_bytes());
    let out = run_ok(
        moto.env(&mut sops(), &home)
            .env("SOPS_AGE_KEY_FILE", &key3)
            .arg("decrypt")
            .arg(&ours),
    );
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
    drop(plain);
}

#[test]
fn rotate_adds_and_removes_a_kms_key() {
    let (dir, home, moto, arn) = setup();
    let (key, r) = age_keypair(dir.path(), "only");
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());
    let enc = run_ok(
        moto.env(&mut sopsync(), &home)
            .args(["encrypt", "--age", &r])
            .arg(&plain),
    );
    let enc = write(dir.path(), "secret.enc.yaml", &enc);

    run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["rotate", "-i", "--add-kms", &arn])
            .arg(&enc),
    );
    // sops opens it with KMS alone (no age key given).
    let out = run_ok(moto.env(&mut sops(), &home).arg("decrypt").arg(&enc));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // Removing it: the file has no kms entry left, and the age key still opens it.
    run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["rotate", "-i", "--rm-kms", &arn])
            .arg(&enc),
    );
    let text = std::fs::read_to_string(&enc).unwrap();
    assert!(!text.contains(&arn), "{text}");
    let out = run_ok(
        moto.env(&mut sops(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .arg("decrypt")
            .arg(&enc),
    );
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
}

#[test]
fn groups_add_kms_makes_a_group_sops_opens_and_groups_delete_rewraps_the_kms_entry() {
    let (dir, home, moto, arn) = setup();
    let (key, r) = age_keypair(dir.path(), "only");
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());
    let enc = run_ok(
        moto.env(&mut sopsync(), &home)
            .args(["encrypt", "--age", &r])
            .arg(&plain),
    );
    let enc = write(dir.path(), "secret.enc.yaml", &enc);

    // A second group holding the KMS key: no threshold, so both groups are needed.
    run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["groups", "add", "--file"])
            .arg(&enc)
            .args(["--kms", &arn, "-i"]),
    );
    let text = std::fs::read_to_string(&enc).unwrap();
    assert!(text.contains(&arn), "{text}");
    let out = run_ok(
        moto.env(&mut sops(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .arg("decrypt")
            .arg(&enc),
    );
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
    // Without the age key sops cannot: both groups are needed.
    let alone = run(moto.env(&mut sops(), &home).arg("decrypt").arg(&enc));
    assert!(
        !alone.status.success(),
        "sops opened a 2-of-2 file with one group"
    );

    // Deleting the age group keeps (re-wraps) the KMS entry: sops then opens it with
    // KMS alone.
    run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["groups", "delete", "--file"])
            .arg(&enc)
            .args(["--shamir-secret-sharing-threshold", "1", "-i", "0"]),
    );
    let out = run_ok(moto.env(&mut sops(), &home).arg("decrypt").arg(&enc));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
}

#[test]
fn updatekeys_wraps_for_the_kms_key_of_a_rule_with_its_context() {
    let (dir, home, moto, arn) = setup();
    let (key, r) = age_keypair(dir.path(), "only");
    let plain = write(dir.path(), "secret.yaml", PLAIN.as_bytes());
    let enc = run_ok(
        moto.env(&mut sopsync(), &home)
            .args(["encrypt", "--age", &r])
            .arg(&plain),
    );
    write(dir.path(), "secret.enc.yaml", &enc);
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "creation_rules:\n  - key_groups:\n      - age: [{r}]\n        kms:\n          - arn: {arn}\n            context:\n              app: web\n"
        ),
    )
    .unwrap();
    run_ok(
        moto.env(&mut sopsync(), &home)
            .env("SOPS_AGE_KEY_FILE", &key)
            .current_dir(dir.path())
            .args(["updatekeys", "-y", "secret.enc.yaml"]),
    );
    let text = std::fs::read_to_string(dir.path().join("secret.enc.yaml")).unwrap();
    assert!(text.contains("app: web"), "{text}");
    // sops opens it with KMS alone, so the context reached KMS as written.
    let out = run_ok(
        moto.env(&mut sops(), &home)
            .current_dir(dir.path())
            .args(["decrypt", "secret.enc.yaml"]),
    );
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
}

#[test]
fn the_controller_uses_a_namespaces_aws_credentials_and_its_own_identity_only_where_allowed() {
    use crate::support::cluster::{meta, wait_applied, wait_until, Cluster, CANARY};
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;
    use serde_json::json;
    use std::collections::BTreeMap;

    let c = Cluster::new(&[]);
    let home = c.dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let moto = Moto::start(c.dir.path());
    let arn = moto.create_key();
    let revision = commit_kms_secret(&c, &moto, &home, &arn, &format!("{CANARY}-kms"));

    // team-a has credentials in its key Secret (Flux's entry); team-b has none.
    put_aws_credentials(&c, "team-a", "team-a-id", "team-a-secret");
    c.fake.ensure_namespace("team-b");
    let (bkey, _) = age_keypair(c.dir.path(), "b");
    c.fake.put(&Secret {
        metadata: meta("team-b", "sopsync-age-key"),
        data: Some(BTreeMap::from([(
            "b.agekey".into(),
            ByteString(std::fs::read(&bkey).unwrap()),
        )])),
        ..Secret::default()
    });
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    c.source("team-b", "apps", json!({"url": c.url(), "interval": "1s"}));
    // team-c has no key Secret, and the operator lets it use the controller's identity.
    c.fake.ensure_namespace("team-c");
    c.source(
        "team-c",
        "apps",
        json!({"url": c.url(), "interval": "1s", "decryption": {"useControllerKey": true}}),
    );
    // The controller's own environment has AWS credentials (as a pod identity would):
    // team-b must still not decrypt through them.
    let endpoint = moto.endpoint();
    let env = [
        ("AWS_ENDPOINT_URL_KMS", endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "controller-id"),
        ("AWS_SECRET_ACCESS_KEY", "controller-secret"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_EC2_METADATA_DISABLED", "true"),
        ("HOME", home.to_str().unwrap()),
    ];
    let flags = [
        "--controller-kms-identity",
        "--controller-key-namespaces",
        "team-c",
    ];
    let mut ctl = c.controller_with_env("c1", &flags, &env);
    wait_applied(&c, &ctl, "team-a", "apps", &revision);
    assert_eq!(
        c.data("team-a", "db").expect("the Secret").get("password"),
        Some(&format!("{CANARY}-kms"))
    );
    wait_until(
        "team-b's failure names the missing credentials",
        &ctl,
        || {
            c.status("team-b", "apps").is_some_and(|s| {
                s.conditions.iter().any(|k| {
                    k.type_ == "Ready"
                        && k.status == "False"
                        && k.message.contains(&format!(
                            "kms {arn}: no AWS credentials for namespace \"team-b\""
                        ))
                })
            })
        },
    );
    assert!(
        c.data("team-b", "db").is_none(),
        "team-b decrypted with the controller's identity"
    );
    wait_applied(&c, &ctl, "team-c", "apps", &revision);
    assert_eq!(
        c.data("team-c", "db").expect("the Secret").get("password"),
        Some(&format!("{CANARY}-kms"))
    );
    ctl.terminate();
    assert!(
        !ctl.logs().contains("team-a-secret"),
        "a credential reached the logs"
    );
    ctl.assert_no_canary();
}
