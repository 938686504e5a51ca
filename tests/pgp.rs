//! PGP through the user's GnuPG (issue 15, "Keys" -> PGP): real sops 3.11 <-> sopsync
//! both ways with keys generated here in a temporary GNUPGHOME (GNUPGHOME set for both
//! tools), `.sops.yaml` `pgp:`/`kms:` rules, rotate `--add-pgp`/`--rm-pgp`,
//! `updatekeys`, Shamir 2-of-3 across age X25519, age SSH ed25519 and PGP, and the
//! failures: a missing key, a fingerprint that looks like an option, a gpg that hangs.

use crate::support::gnupg::GnuPg;
use crate::support::{age_keypair, run, run_ok, run_with_deadline, sops, sopsync, tempdir, tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A command with exactly these keys: GnuPG home `gnupg`, and no other key source
/// (HOME is an empty directory, so no ~/.ssh or keys.txt is found).
fn with_keys(mut c: Command, gnupg: &GnuPg, home: &Path) -> Command {
    c.env("GNUPGHOME", &gnupg.home)
        .env("HOME", home)
        .env_remove("XDG_CONFIG_HOME")
        .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
        .env_remove("SOPS_PGP_FP")
        .env_remove("SOPS_GPG_EXEC");
    c
}

const PLAIN: &str = "password: hunter2\nnested:\n    token: t0k3n\n";

fn write(dir: &Path, name: &str, text: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, text).expect("write");
    p
}

#[test]
fn a_file_sops_encrypts_for_a_gnupg_key_decrypts_here_and_ours_decrypts_in_sops() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::with_key(dir.path(), "alice");
    let plain = write(dir.path(), "secret.yaml", PLAIN);

    // sops -> sopsync
    let theirs = run_ok(
        with_keys(sops(), &g, &home)
            .args(["encrypt", "--pgp", &g.fingerprint])
            .arg(&plain),
    );
    let theirs_path = write(
        dir.path(),
        "theirs.enc.yaml",
        std::str::from_utf8(&theirs).unwrap(),
    );
    let out = run_ok(
        with_keys(sopsync(), &g, &home)
            .arg("decrypt")
            .arg(&theirs_path),
    );
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // sopsync -> sops, the fingerprint from SOPS_PGP_FP (sops' variable for --pgp).
    let ours = run_ok(
        with_keys(sopsync(), &g, &home)
            .env("SOPS_PGP_FP", &g.fingerprint)
            .arg("encrypt")
            .arg(&plain),
    );
    let text = String::from_utf8(ours).unwrap();
    assert!(text.contains(&format!("fp: {}", g.fingerprint)), "{text}");
    assert!(text.contains("created_at: \""), "{text}");
    let ours_path = write(dir.path(), "ours.enc.yaml", &text);
    let out = run_ok(with_keys(sops(), &g, &home).arg("decrypt").arg(&ours_path));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
}

#[test]
fn pgp_rules_in_sops_yaml_are_used_and_a_kms_rule_with_a_malformed_arn_fails_naming_it() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::with_key(dir.path(), "bob");
    write(
        dir.path(),
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - path_regex: aws\\.yaml$\n    kms: arn:aws:kms:us-east-1:key/k\n    aws_profile: dev\n  - path_regex: ''\n    pgp: {}\n",
            g.fingerprint
        ),
    );
    let plain = write(dir.path(), "app.yaml", PLAIN);
    let out = run_ok(
        with_keys(sopsync(), &g, &home)
            .current_dir(dir.path())
            .args(["encrypt", "app.yaml"]),
    );
    let enc = write(
        dir.path(),
        "app.enc.yaml",
        std::str::from_utf8(&out).unwrap(),
    );
    let back = run_ok(with_keys(sops(), &g, &home).arg("decrypt").arg(&enc));
    assert_eq!(String::from_utf8(back).unwrap(), PLAIN);
    drop(plain);

    write(dir.path(), "aws.yaml", PLAIN);
    let out = run(with_keys(sopsync(), &g, &home)
        .current_dir(dir.path())
        .args(["encrypt", "aws.yaml"]));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        // Issue 15 (k15): kms rules are used now; one whose ARN names no region and
        // account is refused by name before any request.
        stderr.contains("kms arn:aws:kms:us-east-1:key/k: not an AWS KMS key ARN"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn shamir_2_of_3_across_age_ssh_and_pgp_opens_with_any_two_keys_in_both_tools() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::with_key(dir.path(), "carol");
    let no_pgp = GnuPg::empty(dir.path(), "nopgp");
    let (age_key, age_recipient) = age_keypair(dir.path(), "x25519");
    let ssh_key = dir.path().join("id_ed25519");
    run_ok(
        Command::new(tool("ssh-keygen"))
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "t", "-f"])
            .arg(&ssh_key),
    );
    let ssh_pub = std::fs::read_to_string(ssh_key.with_extension("pub")).unwrap();
    write(
        dir.path(),
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - shamir_threshold: 2\n    key_groups:\n      - age: [{age_recipient}]\n      - age: ['{}']\n      - pgp: [{}]\n",
            ssh_pub.trim(),
            g.fingerprint
        ),
    );
    write(dir.path(), "s.yaml", PLAIN);
    let ours = run_ok(
        with_keys(sopsync(), &g, &home)
            .current_dir(dir.path())
            .args(["encrypt", "s.yaml"]),
    );
    let theirs = run_ok(
        with_keys(sops(), &g, &home)
            .current_dir(dir.path())
            .args(["encrypt", "s.yaml"]),
    );
    let files = [
        (
            "sopsync's",
            write(
                dir.path(),
                "ours.enc.yaml",
                std::str::from_utf8(&ours).unwrap(),
            ),
        ),
        (
            "sops'",
            write(
                dir.path(),
                "theirs.enc.yaml",
                std::str::from_utf8(&theirs).unwrap(),
            ),
        ),
    ];
    // (label, age key, ssh key, gnupg home)
    let pairs: [(&str, bool, bool, &GnuPg); 3] = [
        ("age+ssh", true, true, &no_pgp),
        ("age+pgp", true, false, &g),
        ("ssh+pgp", false, true, &g),
    ];
    for (file_label, file) in &files {
        for (pair, with_age, with_ssh, gnupg) in pairs {
            for (tool_label, base) in [("sopsync", sopsync()), ("sops", sops())] {
                let mut c = with_keys(base, gnupg, &home);
                if with_age {
                    c.env("SOPS_AGE_KEY_FILE", &age_key);
                }
                if with_ssh {
                    c.env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &ssh_key);
                }
                let out = run(c.arg("decrypt").arg(file));
                assert!(
                    out.status.success(),
                    "{tool_label} could not open {file_label} file with {pair}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(
                    String::from_utf8(out.stdout).unwrap(),
                    PLAIN,
                    "{tool_label} {file_label} {pair}"
                );
            }
        }
        // One key alone is not enough, and says so.
        let out = run(with_keys(sopsync(), &no_pgp, &home)
            .env("SOPS_AGE_KEY_FILE", &age_key)
            .arg("decrypt")
            .arg(file));
        assert_eq!(
            out.status.code(),
            Some(128),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.stdout.is_empty());
    }
}

#[test]
fn a_missing_pgp_key_gives_gpgs_reason_with_the_fingerprint_and_exit_128() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::with_key(dir.path(), "dave");
    let empty = GnuPg::empty(dir.path(), "empty");
    let plain = write(dir.path(), "s.yaml", PLAIN);
    let enc = run_ok(
        with_keys(sopsync(), &g, &home)
            .args(["encrypt", "--pgp", &g.fingerprint])
            .arg(&plain),
    );
    let enc = write(dir.path(), "s.enc.yaml", std::str::from_utf8(&enc).unwrap());
    let out = run(with_keys(sopsync(), &empty, &home).arg("decrypt").arg(&enc));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128), "{stderr}");
    assert!(
        stderr.contains(&format!("pgp {}: gpg failed", g.fingerprint))
            && stderr.contains("decryption failed: No secret key"),
        "{stderr}"
    );
    assert!(out.stdout.is_empty());
    assert!(
        !stderr.contains("hunter2") && !stderr.contains("t0k3n"),
        "{stderr}"
    );
}

#[test]
fn a_fingerprint_that_looks_like_an_option_is_refused_and_gpg_never_runs() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::empty(dir.path(), "g");
    let marker = dir.path().join("gpg-ran");
    let fake = write(
        dir.path(),
        "fake-gpg",
        &format!("#!/bin/sh\ntouch '{}'\nexit 0\n", marker.display()),
    );
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let plain = write(dir.path(), "s.yaml", PLAIN);
    for fp in ["--homedir=/tmp", "-r0123456789ABCDEF", "alice@example.test"] {
        let out = run(with_keys(sopsync(), &g, &home)
            .env("SOPS_GPG_EXEC", &fake)
            .arg("encrypt")
            .arg(format!("--pgp={fp}"))
            .arg(&plain));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{fp}: {stderr}");
        assert!(stderr.contains("invalid PGP fingerprint"), "{stderr}");
        assert!(!marker.exists(), "gpg ran for {fp:?}");
    }
}

#[test]
fn a_gpg_that_hangs_is_ended_at_sopsync_gpg_timeout() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::with_key(dir.path(), "erin");
    let plain = write(dir.path(), "s.yaml", PLAIN);
    let enc = run_ok(
        with_keys(sopsync(), &g, &home)
            .args(["encrypt", "--pgp", &g.fingerprint])
            .arg(&plain),
    );
    let enc = write(dir.path(), "s.enc.yaml", std::str::from_utf8(&enc).unwrap());
    let hang = write(dir.path(), "hang-gpg", "#!/bin/sh\nexec sleep 600\n");
    std::fs::set_permissions(&hang, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let out = run_with_deadline(
        with_keys(sopsync(), &g, &home)
            .env("SOPS_GPG_EXEC", &hang)
            .env("SOPSYNC_GPG_TIMEOUT", "1")
            .arg("decrypt")
            .arg(&enc),
        Duration::from_secs(60),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(128), "{stderr}");
    assert!(
        stderr.contains("timed out after 1s and was ended; raise SOPSYNC_GPG_TIMEOUT"),
        "{stderr}"
    );
}

#[test]
fn rotate_add_pgp_and_rm_pgp_and_updatekeys_follow_pgp_rules() {
    let dir = tempdir();
    let home = dir.path().join("home");
    std::fs::create_dir(&home).unwrap();
    let g = GnuPg::with_key(dir.path(), "frank");
    let (age_key, age_recipient) = age_keypair(dir.path(), "a");
    let plain = write(dir.path(), "s.yaml", PLAIN);
    let enc = run_ok(
        with_keys(sopsync(), &g, &home)
            .args(["encrypt", "--age", &age_recipient])
            .arg(&plain),
    );
    let enc = write(dir.path(), "s.enc.yaml", std::str::from_utf8(&enc).unwrap());

    // --add-pgp: now the GnuPG key alone opens it, in sops too.
    run_ok(
        with_keys(sopsync(), &g, &home)
            .env("SOPS_AGE_KEY_FILE", &age_key)
            .args(["rotate", "-i", "--add-pgp", &g.fingerprint])
            .arg(&enc),
    );
    let out = run_ok(with_keys(sops(), &g, &home).arg("decrypt").arg(&enc));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);

    // --rm-pgp: the entry is gone, the age key still opens it.
    run_ok(
        with_keys(sopsync(), &g, &home)
            .args(["rotate", "-i", "--rm-pgp", &g.fingerprint])
            .arg(&enc),
    );
    let text = std::fs::read_to_string(&enc).unwrap();
    assert!(!text.contains(&g.fingerprint), "{text}");
    let out = run(with_keys(sopsync(), &g, &home).arg("decrypt").arg(&enc));
    assert_eq!(out.status.code(), Some(128));

    // updatekeys with a pgp rule adds the key; sops opens it with GnuPG alone.
    write(
        dir.path(),
        ".sops.yaml",
        &format!(
            "creation_rules:\n  - pgp: [{}]\n    age: {age_recipient}\n",
            g.fingerprint
        ),
    );
    run_ok(
        with_keys(sopsync(), &g, &home)
            .current_dir(dir.path())
            .env("SOPS_AGE_KEY_FILE", &age_key)
            .args(["updatekeys", "-y", "s.enc.yaml"]),
    );
    let out = run_ok(with_keys(sops(), &g, &home).arg("decrypt").arg(&enc));
    assert_eq!(String::from_utf8(out).unwrap(), PLAIN);
}

#[test]
fn the_controller_decrypts_with_an_asc_entry_of_the_key_secret_and_leaves_no_gnupg_home() {
    use crate::support::cluster::{meta, secret_manifest, wait_applied, Cluster, CANARY};
    use k8s_openapi::api::core::v1::Secret;
    use k8s_openapi::ByteString;
    use serde_json::json;
    use std::collections::BTreeMap;

    let c = Cluster::new(&[]);
    let g = GnuPg::with_key(c.dir.path(), "team");
    // The sops-made file, encrypted for the GnuPG key only.
    let plain = c.dir.path().join("plain.yaml");
    std::fs::write(
        &plain,
        secret_manifest("db", None, &[("password", &format!("{CANARY}-pgp"))]),
    )
    .unwrap();
    let enc = run_ok(
        sops()
            .env("GNUPGHOME", &g.home)
            .args(["encrypt", "--pgp", &g.fingerprint])
            .args(["--encrypted-regex", "^(data|stringData)$"])
            .arg(&plain),
    );
    std::fs::remove_file(&plain).unwrap();
    std::fs::write(c.work.join("db.yaml"), enc).unwrap();
    let revision = c.commit(&[]);

    let armored = run_ok(g.gpg().args([
        "--batch",
        "--pinentry-mode",
        "loopback",
        "--passphrase",
        "",
        "--armor",
        "--export-secret-keys",
        &g.fingerprint,
    ]));
    c.fake.ensure_namespace("team-a");
    c.fake.put(&Secret {
        metadata: meta("team-a", "sopsync-age-key"),
        data: Some(BTreeMap::from([("team.asc".into(), ByteString(armored))])),
        ..Secret::default()
    });
    c.source("team-a", "apps", json!({"url": c.url(), "interval": "1s"}));
    // The controller's temporary directory, to see what it leaves behind.
    let tmp = c.dir.path().join("controller-tmp");
    std::fs::create_dir(&tmp).unwrap();
    let mut ctl = c.controller_with_env("c1", &[], &[("TMPDIR", tmp.to_str().unwrap())]);
    wait_applied(&c, &ctl, "team-a", "apps", &revision);
    assert_eq!(
        c.data("team-a", "db").expect("the Secret").get("password"),
        Some(&format!("{CANARY}-pgp"))
    );
    ctl.terminate();
    let left: Vec<_> = std::fs::read_dir(&tmp)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .filter(|n| n.to_string_lossy().starts_with("sopsync-gnupg-"))
        .collect();
    assert!(left.is_empty(), "private GnuPG homes left behind: {left:?}");
    ctl.assert_no_canary();
}
