//! SOPS parity, round two (issue 15): behaviour compared with the real sops 3.11.
//!
//! - Key entries: every key list sops 3.11 can write survives every sopsync rewrite
//!   (`set`, `unset`, `edit`) unchanged, field by field and in sops' order, including
//!   the ones sopsync cannot use; `rotate`, which would need to wrap a new data key
//!   for them, refuses and leaves the file as it was. The fixtures are real sops age
//!   files with one extra entry added to the metadata exactly as sops writes it (sops
//!   needs the provider to encrypt; the MAC does not cover the metadata, so the real
//!   sops still decrypts them with the age key, which each test checks).

use crate::support::{age_keypair, run, run_ok, sops, sopsync, tempdir};
use std::path::{Path, PathBuf};
use std::process::Output;

const PLAIN: &str = "a: 1\nb: two\n";

/// A temp dir with an age key pair and a real-sops-encrypted YAML file holding one
/// extra key entry.
struct EntryFixture {
    dir: tempfile::TempDir,
    key: PathBuf,
    /// The extra list's block exactly as sops writes it under `sops:`.
    block: String,
}

impl EntryFixture {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn sopsync(&self) -> std::process::Command {
        let mut c = sopsync();
        c.current_dir(self.dir.path())
            .env("SOPS_AGE_KEY_FILE", &self.key);
        c
    }

    /// The real sops' plaintext of `name`; panics when sops cannot decrypt it.
    fn sops_decrypt(&self, name: &str) -> String {
        let out = run_ok(
            sops()
                .env("SOPS_AGE_KEY_FILE", &self.key)
                .arg("decrypt")
                .arg(self.path(name)),
        );
        String::from_utf8(out).expect("utf-8 plaintext")
    }
}

/// The metadata list `list` as sops 3.11 writes it in YAML (4-space indent, fields in
/// the order of sops' stores; the names and order were read back from a file the real
/// sops 3.11 binary rewrote with `sops set`).
fn entry_block(list: &str) -> String {
    let t = "\"2025-01-02T03:04:05Z\"";
    let body = match list {
        "kms" => format!(
            "        - arn: arn:aws:kms:us-east-1:111122223333:key/1234abcd-12ab-34cd-56ef-1234567890ab\n\
             \x20         role: arn:aws:iam::111122223333:role/sops\n\
             \x20         context:\n\
             \x20           app: web\n\
             \x20           env: prod\n\
             \x20         created_at: {t}\n\
             \x20         enc: AQICAHhwdGVzdA==\n\
             \x20         aws_profile: team\n"
        ),
        "gcp_kms" => format!(
            "        - resource_id: projects/p/locations/global/keyRings/r/cryptoKeys/k\n\
             \x20         created_at: {t}\n\
             \x20         enc: CiQAZ2NwdGVzdA==\n"
        ),
        "hckms" => format!(
            "        - key_id: tr-west-1:0d0466b0-e727-4d9c-b35d-f84bb474a37f\n\
             \x20         created_at: {t}\n\
             \x20         enc: aGNrbXN0ZXN0\n"
        ),
        "azure_kv" => format!(
            "        - vault_url: https://team.vault.azure.net\n\
             \x20         name: sops-key\n\
             \x20         version: 0123456789abcdef0123456789abcdef\n\
             \x20         created_at: {t}\n\
             \x20         enc: YXp1cmV0ZXN0\n"
        ),
        "hc_vault" => format!(
            "        - vault_address: http://127.0.0.1:8200\n\
             \x20         engine_path: transit\n\
             \x20         key_name: sops\n\
             \x20         created_at: {t}\n\
             \x20         enc: vault:v1:dmF1bHR0ZXN0\n"
        ),
        "pgp" => format!(
            "        - created_at: {t}\n\
             \x20         enc: |-\n\
             \x20           -----BEGIN PGP MESSAGE-----\n\
             \n\
             \x20           hQEMA0test\n\
             \x20           =abcd\n\
             \x20           -----END PGP MESSAGE-----\n\
             \x20         fp: FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4\n"
        ),
        other => panic!("no fixture entry for {other}"),
    };
    format!("    {list}:\n{body}")
}

/// The `list:` block under `sops:` in a YAML file (up to the next metadata key).
fn list_block(yaml: &str, list: &str) -> Option<String> {
    let start = format!("    {list}:\n");
    let at = yaml.find("\nsops:\n")?;
    let sops_part = &yaml[at + 1..];
    let from = sops_part.find(&start)?;
    let rest = &sops_part[from + start.len()..];
    let end = rest
        .lines()
        .position(|l| l.starts_with("    ") && !l.starts_with("     "))
        .map(|n| rest.lines().take(n).map(|l| l.len() + 1).sum())
        .unwrap_or(rest.len());
    Some(format!("{start}{}", &rest[..end]))
}

/// A real sops age file with `list`'s entry added where sops puts it: `pgp` after
/// `mac`, the other lists before `age` (§6.1).
fn entry_fixture(list: &str) -> EntryFixture {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    let enc = run_ok(
        sops()
            .args([
                "encrypt",
                "--age",
                &recipient,
                "--filename-override",
                "x.yaml",
            ])
            .arg(&plain),
    );
    let enc = String::from_utf8(enc).unwrap();
    let (block, with_entry) = if list == "age" {
        // sops' own age entry, as it wrote it.
        (
            list_block(&enc, "age").expect("sops writes an age list"),
            enc.clone(),
        )
    } else {
        let block = entry_block(list);
        let with_entry = with_entry(&enc, list, &block);
        (block, with_entry)
    };
    let f = EntryFixture { dir, key, block };
    std::fs::write(f.path("enc.yaml"), &with_entry).unwrap();
    // The fixture is one the real sops reads: it decrypts with the age key.
    assert_eq!(f.sops_decrypt("enc.yaml"), PLAIN, "sops reads the fixture");
    f
}

/// `enc` with `block` added where sops writes `list`.
fn with_entry(enc: &str, list: &str, block: &str) -> String {
    if list == "pgp" {
        let at = enc
            .find("    unencrypted_suffix:")
            .expect("sops writes the suffix");
        format!("{}{block}{}", &enc[..at], &enc[at..])
    } else {
        enc.replacen("\nsops:\n", &format!("\nsops:\n{block}"), 1)
    }
}

fn write_script(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

fn assert_ok(out: &Output, what: &str) {
    assert!(
        out.status.success(),
        "{what} failed ({}): {}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The entry is kept verbatim by `set`, `unset` and `edit`, each result still
/// decrypts with the real sops, and `rotate` refuses without touching the file.
fn entry_survives_every_rewrite(list: &str) {
    let f = entry_fixture(list);
    let kept = |step: &str| {
        let text = std::fs::read_to_string(f.path("enc.yaml")).unwrap();
        assert_eq!(
            list_block(&text, list).as_deref(),
            Some(f.block.as_str()),
            "the {list} entry changed after {step}:\n{text}"
        );
    };

    assert_ok(
        &run(f
            .sopsync()
            .args(["set", "enc.yaml", "[\"b\"]", "\"three\""])),
        "set",
    );
    kept("set");
    assert_eq!(f.sops_decrypt("enc.yaml"), "a: 1\nb: three\n");

    assert_ok(
        &run(f.sopsync().args(["unset", "enc.yaml", "[\"a\"]"])),
        "unset",
    );
    kept("unset");
    assert_eq!(f.sops_decrypt("enc.yaml"), "b: three\n");

    let editor = write_script(
        f.dir.path(),
        "editor.sh",
        "sed -i 's/b: three/b: four/' \"$1\"",
    );
    assert_ok(
        &run(f
            .sopsync()
            .env("EDITOR", &editor)
            .env_remove("SOPS_EDITOR")
            .args(["edit", "enc.yaml"])),
        "edit",
    );
    kept("edit");
    assert_eq!(f.sops_decrypt("enc.yaml"), "b: four\n");

    if list == "age" {
        assert_ok(
            &run(f.sopsync().args(["rotate", "-i", "enc.yaml"])),
            "rotate",
        );
        assert_eq!(f.sops_decrypt("enc.yaml"), "b: four\n");
        return;
    }
    let before = std::fs::read(f.path("enc.yaml")).unwrap();
    if list == "pgp" {
        // Issue 15: PGP is wrapped for through GnuPG; this made-up key is in no
        // keyring (an empty GNUPGHOME), so rotate fails with gpg's reason and the
        // file is not touched.
        let home = f.dir.path().join("gnupg");
        std::fs::create_dir(&home).unwrap();
        std::fs::set_permissions(&home, std::os::unix::fs::PermissionsExt::from_mode(0o700))
            .unwrap();
        let out = run(f
            .sopsync()
            .env("GNUPGHOME", &home)
            .args(["rotate", "-i", "enc.yaml"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128), "rotate fails: {stderr}");
        assert!(
            stderr.contains("cannot encrypt the data key") && stderr.contains("No public key"),
            "rotate names gpg's reason: {stderr}"
        );
        assert_eq!(std::fs::read(f.path("enc.yaml")).unwrap(), before);
        let _ = std::process::Command::new("gpgconf")
            .env("GNUPGHOME", &home)
            .args(["--kill", "gpg-agent"])
            .output();
        return;
    }
    if list == "kms" {
        // Issue 15: AWS KMS is wrapped for through the SDK; here no KMS answers (the
        // endpoint is a closed loopback port, no instance metadata), so rotate fails
        // naming the key, and the file is not touched.
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let endpoint = format!("http://{}", closed.local_addr().unwrap());
        drop(closed);
        let out = run(f
            .sopsync()
            .env("AWS_ENDPOINT_URL_KMS", &endpoint)
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .args(["rotate", "-i", "enc.yaml"]));
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128), "rotate fails: {stderr}");
        assert!(
            stderr.contains("kms arn:aws:kms:"),
            "rotate names the key: {stderr}"
        );
        assert_eq!(std::fs::read(f.path("enc.yaml")).unwrap(), before);
        return;
    }
    // A new data key cannot be wrapped for a backend sopsync does not have, and
    // keeping the old entry would leave it opening a key that no longer exists.
    let out = run(f.sopsync().args(["rotate", "-i", "enc.yaml"]));
    assert_eq!(out.status.code(), Some(1), "rotate refuses");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "has a {list} key, which sopsync cannot encrypt to"
        )),
        "rotate names the backend: {stderr}"
    );
    assert_eq!(std::fs::read(f.path("enc.yaml")).unwrap(), before);
}

#[test]
fn kms_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("kms");
}

#[test]
fn gcp_kms_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("gcp_kms");
}

#[test]
fn hckms_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("hckms");
}

#[test]
fn azure_kv_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("azure_kv");
}

#[test]
fn hc_vault_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("hc_vault");
}

#[test]
fn pgp_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("pgp");
}

/// The age entry itself is kept byte-for-byte while the data key stays, and `rotate`
/// (which sopsync can do for age) writes a file the real sops opens.
#[test]
fn age_entry_survives_set_unset_and_edit_unchanged() {
    entry_survives_every_rewrite("age");
}

/// Runs `cmd` with `stdin` as its standard input.
fn with_stdin(cmd: &mut std::process::Command, stdin: &Path) -> Output {
    cmd.stdin(std::fs::File::open(stdin).expect("stdin file"));
    run(cmd)
}

/// `decrypt` and `encrypt` without a file read standard input, with the exit codes of
/// sops 3.11 for each combination of `--filename-override`, `--input-type` and
/// `--in-place` (each case is run through the real sops too, and must agree).
#[test]
fn decrypt_and_encrypt_read_stdin_with_sops_exit_codes() {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    let enc = dir.path().join("enc.yaml");
    let out = run_ok(
        sops()
            .args(["encrypt", "--age", &recipient])
            .arg(&plain)
            .arg("--output")
            .arg(&enc),
    );
    assert!(out.is_empty());
    let enc_json = dir.path().join("enc.json");
    let plain_json = dir.path().join("plain.json");
    std::fs::write(&plain_json, "{\"a\": 1}\n").unwrap();
    run_ok(
        sops()
            .args(["encrypt", "--age", &recipient])
            .arg(&plain_json)
            .arg("--output")
            .arg(&enc_json),
    );

    // (args, stdin, exit code both tools give)
    let decrypt_cases: &[(&[&str], &Path, i32)] = &[
        (&["decrypt", "--filename-override", "x.yaml"], &enc, 0),
        (
            &[
                "decrypt",
                "--filename-override",
                "x.yaml",
                "--extract",
                "[\"b\"]",
            ],
            &enc,
            0,
        ),
        (
            &["decrypt", "--input-type", "yaml", "--output-type", "yaml"],
            &enc,
            0,
        ),
        (
            &[
                "decrypt",
                "--filename-override",
                "x.yaml",
                "--output-type",
                "json",
            ],
            &enc,
            0,
        ),
        // No name: the input is read as JSON (the binary store) and written as binary.
        (&["decrypt"], &enc, 1),
        (&["decrypt"], &enc_json, 4),
        (&["decrypt", "--input-type", "yaml"], &enc, 4),
        (
            &["decrypt", "--filename-override", "x.yaml", "--in-place"],
            &enc,
            8,
        ),
        (&["decrypt", "--filename-override", "x.yaml"], &plain, 1),
    ];
    for (args, stdin, code) in decrypt_cases {
        let ours = with_stdin(
            sopsync()
                .current_dir(dir.path())
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(*args),
            stdin,
        );
        let theirs = with_stdin(
            sops()
                .current_dir(dir.path())
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(*args),
            stdin,
        );
        assert_eq!(theirs.status.code(), Some(*code), "sops {args:?}");
        assert_eq!(
            ours.status.code(),
            Some(*code),
            "sopsync {args:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&ours.stdout),
            String::from_utf8_lossy(&theirs.stdout),
            "stdout of {args:?}"
        );
    }

    let encrypt_cases: &[(&[&str], i32)] = &[
        (&["encrypt", "--filename-override", "x.yaml"], 0),
        (
            &[
                "encrypt",
                "--filename-override",
                "x.yaml",
                "--output-type",
                "json",
            ],
            0,
        ),
        (&["encrypt"], 8),
        (&["encrypt", "--input-type", "yaml"], 8),
        (
            &["encrypt", "--filename-override", "x.yaml", "--in-place"],
            8,
        ),
    ];
    for (args, code) in encrypt_cases {
        let mut ours = sopsync();
        ours.current_dir(dir.path())
            .args(*args)
            .args(["--age", &recipient]);
        let ours = with_stdin(&mut ours, &plain);
        let mut theirs = sops();
        theirs
            .current_dir(dir.path())
            .args(*args)
            .args(["--age", &recipient]);
        let theirs = with_stdin(&mut theirs, &plain);
        assert_eq!(theirs.status.code(), Some(*code), "sops {args:?}");
        assert_eq!(
            ours.status.code(),
            Some(*code),
            "sopsync {args:?}: {}",
            String::from_utf8_lossy(&ours.stderr)
        );
        if *code == 0 {
            // Our output is a file the real sops opens, in the format sops chose.
            let name = if args.contains(&"json") {
                "ours.json"
            } else {
                "ours.yaml"
            };
            std::fs::write(dir.path().join(name), &ours.stdout).unwrap();
            assert_eq!(
                ours.stdout.first(),
                theirs.stdout.first(),
                "same output format for {args:?}"
            );
            let back = run_ok(
                sops()
                    .env("SOPS_AGE_KEY_FILE", &key)
                    .args(["decrypt", "--output-type", "yaml"])
                    .arg(dir.path().join(name)),
            );
            assert_eq!(String::from_utf8_lossy(&back), PLAIN, "{args:?}");
        } else {
            assert!(ours.stdout.is_empty(), "nothing printed on failure");
        }
    }
}

/// sops picks the output format from `--output-type` or the file name, never from
/// `--input-type`: a `.txt` file read as YAML is written as binary (encrypt: the
/// binary store's JSON; decrypt: exit 4, no `data` key).
#[test]
fn input_type_alone_does_not_choose_the_output_format_as_in_sops() {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    let plain = dir.path().join("plain.txt");
    std::fs::write(&plain, PLAIN).unwrap();
    let args = ["encrypt", "--input-type", "yaml", "--age", &recipient];
    let ours = run_ok(sopsync().args(args).arg(&plain));
    let theirs = run_ok(sops().args(args).arg(&plain));
    assert_eq!(
        ours.first(),
        Some(&b'{'),
        "{}",
        String::from_utf8_lossy(&ours)
    );
    assert_eq!(theirs.first(), Some(&b'{'));
    let enc = dir.path().join("enc.txt");
    std::fs::write(
        &enc,
        run_ok(
            sops()
                .args([
                    "encrypt",
                    "--age",
                    &recipient,
                    "--filename-override",
                    "x.yaml",
                ])
                .arg(&plain),
        ),
    )
    .unwrap();
    for tool in [sops(), sopsync()] {
        let mut cmd = tool;
        let out = run(cmd
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["decrypt", "--input-type", "yaml"])
            .arg(&enc));
        assert_eq!(out.status.code(), Some(4), "{cmd:?}");
        assert!(out.stdout.is_empty());
    }
}

/// The layout of an encrypted file with everything random taken out: ciphertexts,
/// `lastmodified`, and the armored age text (YAML block lines or the JSON string).
fn shape(text: &str) -> String {
    let mut out = String::new();
    for line in text.lines() {
        let trimmed = line.trim_start();
        let armored = !trimmed.is_empty()
            && trimmed
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"+/=".contains(&b))
            || trimmed.starts_with("-----");
        if armored && !trimmed.contains(':') {
            continue;
        }
        let mut l = line.to_string();
        while let Some(s) = l.find("ENC[") {
            let e = l[s..].find(']').map(|e| s + e + 1).unwrap_or(l.len());
            l.replace_range(s..e, "ENC");
        }
        for key in ["lastmodified", "enc"] {
            for form in [format!("\"{key}\": "), format!("{key}: ")] {
                if let Some(at) = l.find(&form) {
                    if !l[at + form.len()..].starts_with('|') {
                        l.truncate(at + form.len());
                    }
                }
            }
        }
        out.push_str(&l);
        out.push('\n');
    }
    out
}

/// `.sops.yaml` `stores:` indents apply to every command's output as in sops 3.11,
/// including the binary store's own `json_binary` indent: decrypt output is compared
/// byte-for-byte, encrypted output by its layout (the ciphertexts are random).
#[test]
fn sops_yaml_stores_indents_apply_to_every_command_as_in_sops() {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!(
            "stores:\n  yaml:\n    indent: 2\n  json:\n    indent: 3\n  json_binary:\n    indent: 1\n\
             creation_rules:\n  - age: {recipient}\n"
        ),
    )
    .unwrap();
    let files = [
        (
            "p.yaml",
            "top:\n    nested:\n        - a: 1\n          b: [x, y]\n",
        ),
        ("p.json", "{\"top\": {\"n\": [1, {\"a\": \"b\"}]}}"),
        ("p.bin", "raw\nbytes\n"),
    ];
    let tool = |which: &str| {
        let mut c = if which == "sops" { sops() } else { sopsync() };
        c.current_dir(dir.path()).env("SOPS_AGE_KEY_FILE", &key);
        c
    };
    for (name, content) in files {
        std::fs::write(dir.path().join(name), content).unwrap();
        let mut encrypted = Vec::new();
        for which in ["sops", "sopsync"] {
            let out = run_ok(tool(which).args(["encrypt", name]));
            let enc_name = format!("{which}.{name}");
            std::fs::write(dir.path().join(&enc_name), &out).unwrap();
            encrypted.push(String::from_utf8(out).unwrap());
        }
        assert_eq!(shape(&encrypted[1]), shape(&encrypted[0]), "encrypt {name}");
        // set and rotate rewrite the file with the same layout as sops.
        let (path, value) = if name == "p.bin" {
            ("[\"data\"]", "\"new\"")
        } else {
            ("[\"top\"][\"x\"]", "{\"q\": [1, 2]}")
        };
        let mut rewritten = Vec::new();
        for which in ["sops", "sopsync"] {
            let enc_name = format!("{which}.{name}");
            run_ok(tool(which).args(["set", &enc_name, path, value]));
            run_ok(tool(which).args(["rotate", "-i", &enc_name]));
            rewritten.push(std::fs::read_to_string(dir.path().join(&enc_name)).unwrap());
        }
        // sops' rewrite of a binary file adds `unencrypted_suffix: _unencrypted`
        // (its reader fills in the default rule, §3.1) where sopsync keeps the file
        // rule-less; compare the layout apart from that one line.
        let sops_rewrite =
            rewritten[0].replace("  \"unencrypted_suffix\": \"_unencrypted\",\n", "");
        assert_eq!(
            shape(&rewritten[1]),
            shape(if name == "p.bin" {
                &sops_rewrite
            } else {
                &rewritten[0]
            }),
            "set + rotate {name}"
        );
        // Decrypt output, in the file's own format and converted, byte for byte.
        for out_type in [None, Some("yaml"), Some("json")] {
            if name == "p.bin" && out_type.is_none() {
                continue;
            }
            let decrypt = |which: &str| {
                let mut c = tool(which);
                c.arg("decrypt");
                if let Some(t) = out_type {
                    c.args(["--output-type", t]);
                }
                run_ok(c.arg(format!("sops.{name}")))
            };
            assert_eq!(
                String::from_utf8_lossy(&decrypt("sopsync")),
                String::from_utf8_lossy(&decrypt("sops")),
                "decrypt {name} as {out_type:?}"
            );
        }
    }
}

/// An SSH key pair made with the real `ssh-keygen`: (private key path, public line).
fn ssh_keypair(dir: &Path, kind: &str, passphrase: &str) -> (PathBuf, String) {
    let path = dir.join(format!("id_{kind}"));
    let mut cmd = std::process::Command::new(crate::support::tool("ssh-keygen"));
    cmd.args(["-q", "-t", kind, "-N", passphrase, "-C", "me@host", "-f"])
        .arg(&path);
    if kind == "rsa" {
        cmd.args(["-b", "2048"]);
    }
    run_ok(&mut cmd);
    let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
    (path, public.trim_end().to_string())
}

/// age with SSH keys (`ssh-ed25519`, `ssh-rsa`), both ways with the real sops: the
/// recipient from `--age`, `SOPS_AGE_RECIPIENTS` or `.sops.yaml`; the private key
/// from `SOPS_AGE_SSH_PRIVATE_KEY_FILE` or `~/.ssh/id_<type>`. Both tools store the
/// same recipient text.
#[test]
fn ssh_ed25519_and_rsa_keys_interop_with_sops_both_ways() {
    for kind in ["ed25519", "rsa"] {
        let dir = tempdir();
        let home = dir.path().join("home");
        std::fs::create_dir_all(home.join(".ssh")).unwrap();
        let (private, public) = ssh_keypair(&home.join(".ssh"), kind, "");
        let plain = dir.path().join("plain.yaml");
        std::fs::write(&plain, PLAIN).unwrap();
        let empty_home = dir.path().join("nohome");
        let with_key = |c: &mut std::process::Command| {
            c.env("HOME", &empty_home)
                .env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &private);
        };
        // sops -> sopsync
        let theirs = dir.path().join("theirs.yaml");
        std::fs::write(
            &theirs,
            run_ok(sops().args(["encrypt", "--age", &public]).arg(&plain)),
        )
        .unwrap();
        let mut c = sopsync();
        with_key(&mut c);
        assert_eq!(
            run_ok(c.arg("decrypt").arg(&theirs)),
            PLAIN.as_bytes(),
            "{kind}"
        );
        // The default key path ~/.ssh/id_<type>, no variable set.
        let found = run_ok(
            sopsync()
                .env("HOME", &home)
                .env_remove("SOPS_AGE_SSH_PRIVATE_KEY_FILE")
                .arg("decrypt")
                .arg(&theirs),
        );
        assert_eq!(found, PLAIN.as_bytes(), "{kind} from ~/.ssh");
        // sopsync -> sops, the recipient given three ways.
        std::fs::write(
            dir.path().join(".sops.yaml"),
            format!("creation_rules:\n  - age: \"{public}\"\n"),
        )
        .unwrap();
        let ways: [(&str, Vec<&str>, Option<&str>); 3] = [
            ("--age", vec!["--age", &public], None),
            ("SOPS_AGE_RECIPIENTS", vec![], Some(&public)),
            (".sops.yaml", vec![], None),
        ];
        for (way, flags, env) in ways {
            let mut c = sopsync();
            c.current_dir(dir.path()).arg("encrypt").args(&flags);
            if let Some(r) = env {
                c.env("SOPS_AGE_RECIPIENTS", r);
            }
            let ours = run_ok(c.arg("plain.yaml"));
            let ours_text = String::from_utf8(ours).unwrap();
            assert_eq!(
                list_block(&ours_text, "age").and_then(|b| b.lines().nth(1).map(String::from)),
                Some(format!("        - recipient: {public}")),
                "{kind} via {way}"
            );
            let path = dir.path().join("ours.yaml");
            std::fs::write(&path, &ours_text).unwrap();
            let mut s = sops();
            with_key(&mut s);
            assert_eq!(
                run_ok(s.arg("decrypt").arg(&path)),
                PLAIN.as_bytes(),
                "sops opens ours: {kind} via {way}"
            );
        }
    }
}

/// A passphrase-protected SSH key with no terminal to ask on: exit 128 as in sops,
/// and the error says why the key could not be used.
#[test]
fn passphrase_protected_ssh_key_without_a_terminal_exits_128_like_sops() {
    let dir = tempdir();
    let (private, public) = ssh_keypair(dir.path(), "ed25519", "correct horse");
    let plain = dir.path().join("plain.yaml");
    std::fs::write(&plain, PLAIN).unwrap();
    let enc = dir.path().join("enc.yaml");
    std::fs::write(
        &enc,
        run_ok(sops().args(["encrypt", "--age", &public]).arg(&plain)),
    )
    .unwrap();
    // setsid: a new session has no controlling terminal, even when the test runs
    // from one, so /dev/tty cannot be opened (as in CI).
    for program in [
        crate::support::tool("sops"),
        PathBuf::from(env!("CARGO_BIN_EXE_sopsync")),
    ] {
        let mut c = std::process::Command::new(crate::support::tool("setsid"));
        c.arg("-w")
            .arg(&program)
            .args(["decrypt"])
            .arg(&enc)
            .env("HOME", dir.path().join("nohome"))
            .env("SOPS_AGE_SSH_PRIVATE_KEY_FILE", &private)
            .env("SOPS_DISABLE_VERSION_CHECK", "1")
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_FILE")
            .env_remove("SOPS_AGE_KEY_CMD");
        let out = crate::support::run_with_deadline(&mut c, std::time::Duration::from_secs(60));
        assert_eq!(out.status.code(), Some(128), "{program:?}");
        assert!(out.stdout.is_empty());
        if program.ends_with("sopsync") {
            let stderr = String::from_utf8_lossy(&out.stderr);
            assert!(
                stderr.contains(&format!(
                    "{}: the SSH key is passphrase-protected and there is no terminal to ask for its passphrase",
                    private.display()
                )),
                "{stderr}"
            );
        }
    }
}
