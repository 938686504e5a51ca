//! The CLI's contract: exact stderr and exit status for each failure, no plaintext
//! on any failure, nothing written on failure; edit/set/unset/exec-env; key sources;
//! `.sops.yaml` discovery (issue 2).

use crate::support::{age_keypair, run, sops, sopsync, tempdir};
use std::path::Path;
use std::process::Output;

const CANARY: &str = "canary-7f3a9c";

struct Fixture {
    dir: tempfile::TempDir,
    key: std::path::PathBuf,
    recipient: String,
}

fn fixture() -> Fixture {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    std::fs::write(
        dir.path().join("plain.yaml"),
        format!("password: {CANARY}\ncount: 1\nlist:\n    - a\n"),
    )
    .unwrap();
    let out =
        run(sopsync()
            .current_dir(dir.path())
            .args(["encrypt", "--age", &recipient, "plain.yaml"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(dir.path().join("enc.yaml"), out.stdout).unwrap();
    Fixture {
        dir,
        key,
        recipient,
    }
}

impl Fixture {
    fn path(&self, name: &str) -> std::path::PathBuf {
        self.dir.path().join(name)
    }

    fn sopsync(&self, args: &[&str]) -> Output {
        run(sopsync()
            .current_dir(self.dir.path())
            .env("SOPS_AGE_KEY_FILE", &self.key)
            .args(args))
    }

    fn tamper(&self, from: &str, to: &str, pattern: &str, replacement: &str) {
        let text = std::fs::read_to_string(self.path(from)).unwrap();
        assert!(text.contains(pattern), "fixture lacks {pattern}");
        std::fs::write(self.path(to), text.replacen(pattern, replacement, 1)).unwrap();
    }
}

fn assert_fails(out: &Output, code: i32, stderr: &str) {
    let got = String::from_utf8_lossy(&out.stderr);
    assert_eq!(got, stderr, "stderr");
    assert_eq!(out.status.code(), Some(code), "exit status; stderr: {got}");
    assert!(out.stdout.is_empty(), "nothing on stdout on failure");
    assert!(!got.contains(CANARY), "no plaintext in errors");
}

#[test]
fn decrypt_without_a_matching_key_exits_128_and_says_what_was_tried() {
    let f = fixture();
    let out = run(sopsync()
        .current_dir(f.dir.path())
        .args(["decrypt", "enc.yaml"]));
    assert_fails(
        &out,
        128,
        &format!(
            "sopsync: enc.yaml: failed to get the data key required to decrypt the file: group 1: age {}: no identity matched; tried no age identities (set SOPS_AGE_KEY, SOPS_AGE_KEY_FILE or SOPS_AGE_KEY_CMD)\n\
             hint: for an age recipient, set SOPS_AGE_KEY_FILE (or SOPS_AGE_KEY / SOPS_AGE_KEY_CMD, or SOPS_AGE_SSH_PRIVATE_KEY_FILE for an SSH key) to its identity; for a pgp fingerprint, import its secret key into GnuPG (gpg --import; GNUPGHOME names the keyring)\n",
            f.recipient
        ),
    );
}

#[test]
fn a_post_quantum_recipient_is_shortened_in_the_no_matching_key_message() {
    let f = fixture();
    let key = f.path("pq.txt");
    let out = run(sopsync().args(["keygen", "--pq", "-o"]).arg(&key));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let pq = std::fs::read_to_string(&key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("keygen names the recipient")
        .to_string();
    assert_eq!(pq.len(), 1959, "{pq}");
    let enc =
        run(sopsync()
            .current_dir(f.dir.path())
            .args(["encrypt", "--age", &pq, "plain.yaml"]));
    assert!(
        enc.status.success(),
        "{}",
        String::from_utf8_lossy(&enc.stderr)
    );
    std::fs::write(f.path("pq.enc.yaml"), &enc.stdout).unwrap();
    let out = run(sopsync()
        .current_dir(f.dir.path())
        .args(["decrypt", "pq.enc.yaml"]));
    let short = format!("{}…{}", &pq[..16], &pq[pq.len() - 8..]);
    let first = String::from_utf8_lossy(&out.stderr)
        .lines()
        .next()
        .unwrap_or_default()
        .to_string();
    assert_eq!(out.status.code(), Some(128), "{first}");
    assert!(
        first.starts_with(&format!(
            "sopsync: pq.enc.yaml: failed to get the data key required to decrypt the file: group 1: age {short}: no identity matched; tried "
        )),
        "{first}"
    );
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains(&pq[..100]),
        "the whole recipient is in the message"
    );
}

#[test]
fn tampered_value_exits_25_and_names_the_key_path() {
    let f = fixture();
    let text = std::fs::read_to_string(f.path("enc.yaml")).unwrap();
    let line = text.lines().find(|l| l.starts_with("count: ENC[")).unwrap();
    let data_at = line.find("data:").unwrap() + 5;
    let mut tampered = line.to_string();
    let c = if &line[data_at..data_at + 1] == "A" {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(data_at..data_at + 1, c);
    f.tamper("enc.yaml", "t.yaml", line, &tampered);
    let out = f.sopsync(&["decrypt", "t.yaml"]);
    assert_eq!(out.status.code(), Some(25));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.starts_with("sopsync: t.yaml: could not decrypt the value at [\"count\"]"),
        "{stderr}"
    );
    assert!(
        stderr.ends_with(
            "hint: the file was modified outside sops; restore it from version control\n"
        ),
        "{stderr}"
    );
    assert!(out.stdout.is_empty() && !stderr.contains(CANARY));
}

#[test]
fn changed_lastmodified_exits_51() {
    let f = fixture();
    f.tamper(
        "enc.yaml",
        "t.yaml",
        "lastmodified: \"20",
        "lastmodified: \"19",
    );
    assert_fails(
        &f.sopsync(&["decrypt", "t.yaml"]),
        51,
        "sopsync: t.yaml: cannot decrypt MAC: `mac` or `lastmodified` was changed, or the data key is not this file's\n\
         hint: the file was modified outside sops; restore it from version control (or pass --ignore-mac to inspect it)\n",
    );
}

#[test]
fn a_plaintext_value_added_by_hand_fails_the_mac_with_51() {
    let f = fixture();
    let text = std::fs::read_to_string(f.path("enc.yaml")).unwrap();
    std::fs::write(
        f.path("t.yaml"),
        format!("added_unencrypted: hello\n{text}"),
    )
    .unwrap();
    let out = f.sopsync(&["decrypt", "t.yaml"]);
    assert_eq!(out.status.code(), Some(51));
    assert!(
        String::from_utf8_lossy(&out.stderr).starts_with("sopsync: t.yaml: MAC mismatch"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn missing_file_not_sops_and_already_encrypted_have_their_codes() {
    let f = fixture();
    assert_fails(
        &f.sopsync(&["decrypt", "nope.yaml"]),
        100,
        "sopsync: nope.yaml: No such file or directory (os error 2)\nhint: check the path\n",
    );
    assert_fails(
        &f.sopsync(&["decrypt", "plain.yaml"]),
        1,
        "sopsync: plain.yaml: sops metadata not found: the file is not encrypted with sops\nhint: encrypt it first: sopsync encrypt --age <recipient> FILE\n",
    );
    assert_fails(
        &f.sopsync(&["encrypt", "--age", &f.recipient, "enc.yaml"]),
        203,
        "sopsync: enc.yaml: file already encrypted: it has a top-level `sops` key\nhint: decrypt it first, or edit it with sopsync edit\n",
    );
}

#[test]
fn encrypt_without_recipients_and_with_two_rules_fail_clearly() {
    let f = fixture();
    assert_fails(
        &run(sopsync().current_dir(f.dir.path()).args(["encrypt", "plain.yaml"])),
        1,
        "sopsync: no recipients: config file not found, or has no creation rules, and no keys provided through command line options\n\
         hint: pass --age age1..., set SOPS_AGE_RECIPIENTS, or add a creation rule to .sops.yaml\n",
    );
    assert_fails(
        &f.sopsync(&["encrypt", "--age", &f.recipient, "--encrypted-regex", "a", "--unencrypted-suffix", "b", "plain.yaml"]),
        8,
        "sopsync: only one of --unencrypted-suffix, --encrypted-suffix, --unencrypted-regex, --encrypted-regex, --unencrypted-comment-regex, --encrypted-comment-regex may be given\n",
    );
}

#[test]
fn in_place_decrypt_of_a_tampered_file_leaves_it_untouched() {
    let f = fixture();
    f.tamper(
        "enc.yaml",
        "t.yaml",
        "lastmodified: \"20",
        "lastmodified: \"19",
    );
    let before = std::fs::read(f.path("t.yaml")).unwrap();
    let out = f.sopsync(&["decrypt", "-i", "t.yaml"]);
    assert_eq!(out.status.code(), Some(51));
    assert_eq!(std::fs::read(f.path("t.yaml")).unwrap(), before);
    let leftovers: Vec<_> = std::fs::read_dir(f.dir.path())
        .unwrap()
        .filter_map(|e| e.ok())
        .filter(|e| e.file_name().to_string_lossy().starts_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "no temp files left behind");
}

#[test]
fn extract_prints_a_string_raw_and_rejects_bad_paths() {
    let f = fixture();
    let out = f.sopsync(&["decrypt", "--extract", "[\"password\"]", "enc.yaml"]);
    assert!(out.status.success());
    assert_eq!(String::from_utf8_lossy(&out.stdout), CANARY);
    let out = f.sopsync(&["decrypt", "--extract", "[\"list\"]", "enc.yaml"]);
    assert_eq!(String::from_utf8_lossy(&out.stdout), "- a\n");
    assert_fails(
        &f.sopsync(&["decrypt", "--extract", "[\"nope\"]", "enc.yaml"]),
        1,
        "sopsync: component [\"nope\"] not found\n",
    );
    assert_fails(
        &f.sopsync(&["decrypt", "--extract", "[\"a\"", "enc.yaml"]),
        91,
        "sopsync: invalid --extract path `[\"a\"`: expected a form like '[\"key\"][0]'\n",
    );
}

#[test]
fn set_changes_one_value_and_keeps_the_other_ciphertexts() {
    let f = fixture();
    let before = std::fs::read_to_string(f.path("enc.yaml")).unwrap();
    let out = f.sopsync(&["set", "enc.yaml", "[\"count\"]", "5"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let after = std::fs::read_to_string(f.path("enc.yaml")).unwrap();
    let line = |t: &str, k: &str| t.lines().find(|l| l.starts_with(k)).unwrap().to_string();
    assert_eq!(
        line(&before, "password:"),
        line(&after, "password:"),
        "unchanged values keep their ciphertext (IV stash)"
    );
    assert_ne!(line(&before, "count:"), line(&after, "count:"));
    let d = run(sops()
        .env("SOPS_AGE_KEY_FILE", &f.key)
        .arg("decrypt")
        .arg(f.path("enc.yaml")));
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    assert_eq!(
        String::from_utf8_lossy(&d.stdout),
        format!("password: {CANARY}\ncount: 5\nlist:\n    - a\n")
    );
    // unset, then unset again: an error, unless --idempotent.
    assert!(f
        .sopsync(&["unset", "enc.yaml", "[\"count\"]"])
        .status
        .success());
    assert_fails(
        &f.sopsync(&["unset", "enc.yaml", "[\"count\"]"]),
        1,
        "sopsync: component [\"count\"] not found\n",
    );
    assert!(f
        .sopsync(&["unset", "--idempotent", "enc.yaml", "[\"count\"]"])
        .status
        .success());
    let d = run(sops()
        .env("SOPS_AGE_KEY_FILE", &f.key)
        .arg("decrypt")
        .arg(f.path("enc.yaml")));
    assert_eq!(
        String::from_utf8_lossy(&d.stdout),
        format!("password: {CANARY}\nlist:\n    - a\n")
    );
}

fn write_editor(dir: &Path, body: &str) -> std::path::PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join("editor.sh");
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn edit_runs_the_editor_on_a_private_file_and_re_encrypts() {
    let f = fixture();
    // The editor records where the file was and its mode, then changes a value.
    let editor = write_editor(f.dir.path(), &format!("stat -c '%a %n' \"$1\" \"$(dirname \"$1\")\" > {0}/seen; sed -i 's/count: 1/count: 2/' \"$1\"", f.dir.path().display()));
    let out = run(sopsync()
        .current_dir(f.dir.path())
        .env("SOPS_AGE_KEY_FILE", &f.key)
        .env("EDITOR", &editor)
        .env_remove("SOPS_EDITOR")
        .args(["edit", "enc.yaml"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let seen = std::fs::read_to_string(f.path("seen")).unwrap();
    let mut lines = seen.lines();
    let (file_line, dir_line) = (lines.next().unwrap(), lines.next().unwrap());
    assert!(
        file_line.starts_with("600 ") && file_line.ends_with("/enc.yaml"),
        "{seen}"
    );
    assert!(dir_line.starts_with("700 "), "{seen}");
    let tmp_dir = dir_line.split_once(' ').unwrap().1;
    assert!(
        !Path::new(tmp_dir).exists(),
        "the private directory is removed"
    );
    let d = run(sops()
        .env("SOPS_AGE_KEY_FILE", &f.key)
        .arg("decrypt")
        .arg(f.path("enc.yaml")));
    assert_eq!(
        String::from_utf8_lossy(&d.stdout),
        format!("password: {CANARY}\ncount: 2\nlist:\n    - a\n")
    );
    // An editor that changes nothing: exit 200, file untouched.
    let before = std::fs::read(f.path("enc.yaml")).unwrap();
    let noop = write_editor(f.dir.path(), "true");
    let out = run(sopsync()
        .current_dir(f.dir.path())
        .env("SOPS_AGE_KEY_FILE", &f.key)
        .env("EDITOR", &noop)
        .args(["edit", "enc.yaml"]));
    assert_fails(&out, 200, "sopsync: File has not changed, exiting.\n");
    assert_eq!(std::fs::read(f.path("enc.yaml")).unwrap(), before);
}

#[test]
fn exec_env_passes_values_to_the_command_only() {
    let f = fixture();
    // Nested values cannot be environment variables (as in sops).
    let nested = f.sopsync(&["exec-env", "enc.yaml", "true"]);
    assert_fails(
        &nested,
        1,
        "sopsync: enc.yaml: `list` is not a scalar; exec-env needs flat key/value files\n",
    );
    assert!(f
        .sopsync(&["unset", "enc.yaml", "[\"list\"]"])
        .status
        .success());
    let out = f.sopsync(&[
        "exec-env",
        "enc.yaml",
        "test \"$password\" = canary-7f3a9c && test \"$count\" = 1 && echo ok",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), "ok\n");
    let out = f.sopsync(&["exec-env", "enc.yaml", "exit 7"]);
    assert_eq!(
        out.status.code(),
        Some(7),
        "the command's exit status is ours"
    );
}

#[test]
fn key_sources_sops_age_key_cmd_and_default_file_are_combined() {
    let f = fixture();
    let key_text = std::fs::read_to_string(&f.key).unwrap();
    let ok = |out: Output| {
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(String::from_utf8_lossy(&out.stdout).contains(CANARY));
    };
    ok(run(sopsync()
        .current_dir(f.dir.path())
        .env("SOPS_AGE_KEY", &key_text)
        .args(["decrypt", "enc.yaml"])));
    ok(run(sopsync()
        .current_dir(f.dir.path())
        .env("SOPS_AGE_KEY_CMD", format!("cat '{}'", f.key.display()))
        .args(["decrypt", "enc.yaml"])));
    let xdg = f.path("xdg");
    std::fs::create_dir_all(xdg.join("sops/age")).unwrap();
    std::fs::copy(&f.key, xdg.join("sops/age/keys.txt")).unwrap();
    ok(run(sopsync()
        .current_dir(f.dir.path())
        .env("XDG_CONFIG_HOME", &xdg)
        .args(["decrypt", "enc.yaml"])));
    // A broken SOPS_AGE_KEY_FILE next to a good SOPS_AGE_KEY still decrypts (spec §5.2).
    ok(run(sopsync()
        .current_dir(f.dir.path())
        .env("SOPS_AGE_KEY", &key_text)
        .env("SOPS_AGE_KEY_FILE", f.path("missing.txt"))
        .args(["decrypt", "enc.yaml"])));
}

#[test]
fn sops_yaml_is_found_from_a_subdirectory_and_its_rule_applies() {
    let f = fixture();
    std::fs::write(f.path(".sops.yaml"), format!("creation_rules:\n    - path_regex: secrets/.*\\.yaml$\n      encrypted_regex: ^password$\n      age: {}\n", f.recipient)).unwrap();
    let sub = f.path("secrets/deep");
    std::fs::create_dir_all(&sub).unwrap();
    std::fs::write(sub.join("app.yaml"), "password: x\nvisible: shown\n").unwrap();
    let out = run(sopsync().current_dir(&sub).args(["encrypt", "app.yaml"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.contains("visible: shown\n") && text.contains("password: ENC["),
        "{text}"
    );
    assert!(text.contains("encrypted_regex: ^password$"));
}

#[test]
fn keygen_writes_a_private_identity_usable_by_sops() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempdir();
    let key = dir.path().join("id.txt");
    let out = run(sopsync().arg("keygen").arg("-o").arg(&key));
    assert!(out.status.success());
    let recipient = String::from_utf8_lossy(&out.stderr)
        .trim()
        .strip_prefix("Public key: ")
        .unwrap()
        .to_string();
    assert_eq!(
        std::fs::metadata(&key).unwrap().permissions().mode() & 0o777,
        0o600
    );
    std::fs::write(dir.path().join("p.yaml"), "a: b\n").unwrap();
    let enc = run(sops()
        .args(["encrypt", "--age", &recipient])
        .arg(dir.path().join("p.yaml")));
    assert!(enc.status.success());
    std::fs::write(dir.path().join("e.yaml"), enc.stdout).unwrap();
    let d = run(sopsync()
        .env("SOPS_AGE_KEY_FILE", &key)
        .arg("decrypt")
        .arg(dir.path().join("e.yaml")));
    assert_eq!(String::from_utf8_lossy(&d.stdout), "a: b\n");
    assert_eq!(
        String::from_utf8_lossy(
            &run(sopsync().arg("filestatus").arg(dir.path().join("e.yaml"))).stdout
        ),
        "{\"encrypted\":true}\n"
    );
    assert_eq!(
        String::from_utf8_lossy(
            &run(sopsync().arg("filestatus").arg(dir.path().join("p.yaml"))).stdout
        ),
        "{\"encrypted\":false}\n"
    );
}
