//! The interop matrix: real sops 3.11 <-> the `sopsync` binary, for each format ×
//! option × direction (issue 2). Run with `--nocapture` to see the matrix table.
//!
//! Directions:
//! - `sops→us`: sops encrypts; `sopsync decrypt` output is byte-identical to `sops decrypt`.
//! - `us→sops`: sopsync encrypts; `sops decrypt` exits 0 and prints the same bytes as
//!   when it decrypts its own encryption of the same input.

use crate::support::{age_keypair, run, sops, sopsync, tempdir};
use std::path::Path;
use std::process::Command;

struct Case {
    format: &'static str,
    file: &'static str,
    content: &'static str,
}

const CASES: &[Case] = &[
    Case {
        format: "yaml",
        file: "secret.yaml",
        content: "# a comment\napiVersion: v1\nkind: Secret\nmetadata:\n    name: db\n    namespace: prod\nstringData:\n    password: hunter2 # trailing\n    token_unencrypted: visible\n    port: 5432\n    ratio: 0.25\n    enabled: true\n    list:\n        - a\n        # in list\n        - b: 1\n          c_secret: x\n",
    },
    Case {
        format: "json",
        file: "secret.json",
        content: "{\"data\": {\"password\": \"hunter2\", \"n\": 12345678901234567890, \"f\": 1.5e-7, \"html\": \"<&>\"}, \"desc_unencrypted\": \"x\", \"list\": [1, true, null, \"s\"]}\n",
    },
    Case {
        format: "dotenv",
        file: "app.env",
        content: "# database\nDB_PASSWORD=hunter2\nQUOTED=\"q v\"\nexport EXPORTED=x\nEMPTY=\nEQ=a=b=c\nMULTI=line1\\nline2\nTOKEN_unencrypted=visible\nCR=value\r\n",
    },
    Case {
        format: "ini",
        file: "app.ini",
        content: "top = 1\n; default comment\nother=two\n\n# section comment\n[database]\n; about user\nuser = admin\npassword = \"s3cr3t ; x\"\nport=5432 ; inline\nspaced = '  padded  '\nhash = a#b\ntoken_unencrypted = visible\nlong_key_name = v\n\n[empty]\n\n[second]\nk = v\n",
    },
    Case {
        format: "binary",
        file: "blob.bin",
        content: "raw bytes\r\nline two\n\u{1}\u{2}",
    },
];

/// (option name, extra encrypt flags for sops and for us). sops 3.11 accepts the
/// comment regexes and --mac-only-encrypted only as global flags (before `encrypt`).
const OPTIONS: &[(&str, &[&str], &[&str])] = &[
    ("default", &[], &[]),
    (
        "encrypted_regex",
        &["--encrypted-regex", "^(data|stringData|password)$"],
        &[],
    ),
    (
        "unencrypted_regex",
        &["--unencrypted-regex", "^(metadata|kind)$"],
        &[],
    ),
    ("encrypted_suffix", &["--encrypted-suffix", "_secret"], &[]),
    (
        "unencrypted_suffix",
        &["--unencrypted-suffix", "_unencrypted"],
        &[],
    ),
    ("mac_only_encrypted", &[], &["--mac-only-encrypted"]),
    (
        "encrypted_comment_regex",
        &[],
        &["--encrypted-comment-regex", "in list|database|about user"],
    ),
    (
        "unencrypted_comment_regex",
        &[],
        &["--unencrypted-comment-regex", "a comment"],
    ),
];

fn sops_encrypt(
    input: &Path,
    recipients: &str,
    sub_flags: &[&str],
    global_flags: &[&str],
) -> Vec<u8> {
    let mut cmd = sops();
    let mut keep = None;
    if global_flags.is_empty() {
        cmd.arg("encrypt")
            .args(["--age", recipients])
            .args(sub_flags);
    } else {
        // sops 3.11 silently ignores the comment-regex and MAC-only options given as
        // global flags to `encrypt`; only a creation rule applies them, so pass one.
        let option = global_flags[0].trim_start_matches("--").replace('-', "_");
        let value = global_flags
            .get(1)
            .map(|v| format!("'{v}'"))
            .unwrap_or_else(|| "true".into());
        let config = tempfile::NamedTempFile::new().expect("config file");
        std::fs::write(
            config.path(),
            format!("creation_rules:\n    - age: {recipients}\n      {option}: {value}\n"),
        )
        .expect("write config");
        cmd.arg("--config")
            .arg(config.path())
            .arg("encrypt")
            .args(sub_flags);
        keep = Some((config, option));
    }
    let out = run(cmd.arg(input));
    assert!(
        out.status.success(),
        "sops encrypt {:?} failed: {}",
        input,
        String::from_utf8_lossy(&out.stderr)
    );
    if let Some((_config, option)) = keep {
        // (The binary store records no options at all.)
        let text = String::from_utf8_lossy(&out.stdout);
        let binary = input.extension().is_some_and(|e| e == "bin");
        assert_eq!(
            text.contains(&option),
            !binary,
            "sops and {option} in {:?}",
            input
        );
    }
    out.stdout
}

fn decrypt_with(cmd: &mut Command, key: &Path, file: &Path) -> std::process::Output {
    run(cmd.env("SOPS_AGE_KEY_FILE", key).arg("decrypt").arg(file))
}

#[test]
fn interop_matrix_with_real_sops() {
    let dir = tempdir();
    let (key1, r1) = age_keypair(dir.path(), "k1");
    let (_key2, r2) = age_keypair(dir.path(), "k2");
    let (key3, r3) = age_keypair(dir.path(), "k3");
    let recipients = [r1.as_str(), r2.as_str(), r3.as_str()].join(",");
    let mut rows = Vec::new();
    let mut failures = Vec::new();
    let (mut cells, mut passed) = (0, 0);
    for case in CASES {
        let input = dir.path().join(case.file);
        std::fs::write(&input, case.content).unwrap();
        for (opt, sub, global) in OPTIONS {
            let comment_opt = opt.contains("comment");
            if comment_opt && !matches!(case.format, "yaml" | "dotenv" | "ini") {
                continue; // JSON and binary have no comments.
            }
            if case.format == "binary" && *opt != "default" && *opt != "mac_only_encrypted" {
                continue; // The binary store ignores selection rules (spec §3.1).
            }
            // sops → us, three recipients, decrypted with the third key.
            let enc = dir.path().join(format!("{opt}.sops.{}", case.file));
            std::fs::write(&enc, sops_encrypt(&input, &recipients, sub, global)).unwrap();
            let want = decrypt_with(&mut sops(), &key3, &enc);
            assert!(
                want.status.success(),
                "sops cannot decrypt its own {opt} {}",
                case.file
            );
            let got = decrypt_with(&mut sopsync(), &key3, &enc);
            cells += 1;
            let ok1 = got.status.success() && got.stdout == want.stdout;
            if ok1 {
                passed += 1;
            } else {
                failures.push(format!(
                    "sops→us {} {opt}: exit {:?} stderr {}",
                    case.format,
                    got.status.code(),
                    String::from_utf8_lossy(&got.stderr)
                ));
            }
            // us → sops.
            let ours = dir.path().join(format!("{opt}.ours.{}", case.file));
            let mut flags: Vec<&str> = sub.to_vec();
            flags.extend_from_slice(global);
            let out = run(sopsync()
                .arg("encrypt")
                .args(["--age", &recipients])
                .args(&flags)
                .arg(&input));
            cells += 1;
            let ok2 = if out.status.success() {
                std::fs::write(&ours, &out.stdout).unwrap();
                let theirs = decrypt_with(&mut sops(), &key1, &ours);
                theirs.status.success() && theirs.stdout == want.stdout && theirs.stderr.is_empty()
            } else {
                false
            };
            if ok2 {
                passed += 1;
            } else {
                failures.push(format!(
                    "us→sops {} {opt}: {}",
                    case.format,
                    String::from_utf8_lossy(&out.stderr)
                ));
            }
            rows.push(format!(
                "| {:<7} | {:<26} | {:<7} | {:<7} |",
                case.format,
                opt,
                if ok1 { "ok" } else { "FAIL" },
                if ok2 { "ok" } else { "FAIL" }
            ));
        }
    }
    println!(
        "| format  | option                     | sops→us | us→sops |\n|---|---|---|---|\n{}",
        rows.join("\n")
    );
    println!("interop cells: {passed} passed of {cells}");
    assert!(
        failures.is_empty(),
        "{} of {cells} interop cells failed:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn key_groups_two_of_three_interoperate_both_ways() {
    let dir = tempdir();
    let keys: Vec<_> = (1..=3)
        .map(|i| age_keypair(dir.path(), &format!("g{i}")))
        .collect();
    let config = dir.path().join(".sops.yaml");
    std::fs::write(
        &config,
        format!(
            "creation_rules:\n    - shamir_threshold: 2\n      key_groups:\n        - age: [{}]\n        - age: [{}]\n        - age: [{}]\n",
            keys[0].1, keys[1].1, keys[2].1
        ),
    )
    .unwrap();
    let input = dir.path().join("s.yaml");
    std::fs::write(&input, "password: hunter2\nother: 1\n").unwrap();
    // Ours, read by sops with keys 1+3 and 2+3, refused with one key.
    let out = run(sopsync()
        .current_dir(dir.path())
        .args(["encrypt", "s.yaml"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ours = dir.path().join("ours.yaml");
    std::fs::write(&ours, &out.stdout).unwrap();
    let keyfile = |a: usize, b: Option<usize>| {
        let p = dir.path().join(format!("combo{a}{b:?}.txt"));
        let mut text = std::fs::read_to_string(&keys[a].0).unwrap();
        if let Some(b) = b {
            text.push_str(&std::fs::read_to_string(&keys[b].0).unwrap());
        }
        std::fs::write(&p, text).unwrap();
        p
    };
    for (a, b) in [(0, 2), (1, 2)] {
        let o = decrypt_with(&mut sops(), &keyfile(a, Some(b)), &ours);
        assert!(
            o.status.success(),
            "sops with keys {a}+{b}: {}",
            String::from_utf8_lossy(&o.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&o.stdout),
            "password: hunter2\nother: 1\n"
        );
    }
    let o = decrypt_with(&mut sops(), &keyfile(2, None), &ours);
    assert_eq!(
        o.status.code(),
        Some(128),
        "sops must refuse one key of a 2-of-3 file"
    );
    // sops-made, read by us with keys 1+3; refused with one key (exit 128 like sops).
    let out = run(sops().current_dir(dir.path()).args(["encrypt", "s.yaml"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let theirs = dir.path().join("theirs.yaml");
    std::fs::write(&theirs, &out.stdout).unwrap();
    let o = decrypt_with(&mut sopsync(), &keyfile(0, Some(2)), &theirs);
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    assert_eq!(
        String::from_utf8_lossy(&o.stdout),
        "password: hunter2\nother: 1\n"
    );
    let o = decrypt_with(&mut sopsync(), &keyfile(1, None), &theirs);
    assert_eq!(o.status.code(), Some(128));
    assert!(!String::from_utf8_lossy(&o.stderr).contains("hunter2"));
}

#[test]
fn rotate_and_updatekeys_results_are_read_by_sops() {
    let dir = tempdir();
    let (k1, r1) = age_keypair(dir.path(), "r1");
    let (k2, r2) = age_keypair(dir.path(), "r2");
    let input = dir.path().join("s.yaml");
    std::fs::write(&input, "a: secret-one\nb: [1, 2]\n").unwrap();
    let enc = dir.path().join("enc.yaml");
    std::fs::write(&enc, sops_encrypt(&input, &r1, &[], &[])).unwrap();
    // rotate: add r2, rewrite in place; sops decrypts with the new key.
    let o = run(sopsync()
        .env("SOPS_AGE_KEY_FILE", &k1)
        .args(["rotate", "-i", "--add-age", &r2])
        .arg(&enc));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let d = decrypt_with(&mut sops(), &k2, &enc);
    assert!(d.status.success(), "{}", String::from_utf8_lossy(&d.stderr));
    assert_eq!(
        String::from_utf8_lossy(&d.stdout),
        "a: secret-one\nb:\n    - 1\n    - 2\n"
    );
    // updatekeys: .sops.yaml says only r2; mac and lastmodified stay byte-identical.
    std::fs::write(
        dir.path().join(".sops.yaml"),
        format!("creation_rules:\n    - age: {r2}\n"),
    )
    .unwrap();
    let before = std::fs::read_to_string(&enc).unwrap();
    let o = run(sopsync()
        .current_dir(dir.path())
        .env("SOPS_AGE_KEY_FILE", &k1)
        .args(["updatekeys", "-y", "enc.yaml"]));
    assert!(o.status.success(), "{}", String::from_utf8_lossy(&o.stderr));
    let after = std::fs::read_to_string(&enc).unwrap();
    let line = |t: &str, k: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(k))
            .map(str::to_string)
    };
    assert_eq!(line(&before, "mac:"), line(&after, "mac:"));
    assert_eq!(
        line(&before, "lastmodified:"),
        line(&after, "lastmodified:")
    );
    assert!(!after.contains(&r1), "r1 must be gone after updatekeys");
    assert!(decrypt_with(&mut sops(), &k2, &enc).status.success());
    assert_eq!(
        decrypt_with(&mut sops(), &k1, &enc).status.code(),
        Some(128)
    );
}

#[test]
fn output_type_conversions_match_sops() {
    let dir = tempdir();
    let (key, r) = age_keypair(dir.path(), "conv");
    let input = dir.path().join("flat.yaml");
    std::fs::write(&input, "# c\nname: web\nport: 5432\nratio: 1.5e-7\nbig: 1e21\nenabled: true\nnothing: null\nwhen: 2001-12-14t21:59:43.10-05:00\nhtml: <&>\n").unwrap();
    let enc = dir.path().join("flat.enc.yaml");
    std::fs::write(&enc, sops_encrypt(&input, &r, &[], &[])).unwrap();
    for out_type in ["json", "dotenv", "yaml"] {
        let want = run(sops()
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["decrypt", "--output-type", out_type])
            .arg(&enc));
        let got = run(sopsync()
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["decrypt", "--output-type", out_type])
            .arg(&enc));
        assert!(
            want.status.success() && got.status.success(),
            "{out_type}: {}",
            String::from_utf8_lossy(&got.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&got.stdout),
            String::from_utf8_lossy(&want.stdout),
            "--output-type {out_type}"
        );
    }
}

#[test]
fn global_indent_matches_sops_and_a_bad_decryption_order_exits_112() {
    let dir = tempdir();
    let (key, r) = age_keypair(dir.path(), "ind");
    for (name, content) in [
        ("n.yaml", "a:\n    b:\n        - 1\n        - c: d\n"),
        ("n.json", "{\"a\": {\"b\": [1, {\"c\": \"d\"}]}}"),
    ] {
        let input = dir.path().join(name);
        std::fs::write(&input, content).unwrap();
        let enc = dir.path().join(format!("enc.{name}"));
        std::fs::write(&enc, sops_encrypt(&input, &r, &[], &[])).unwrap();
        for n in ["2", "0", "6"] {
            // sops 3.11 honours the global --indent only in its legacy `-d` form (the
            // `decrypt` subcommand ignores it); sopsync honours it for every command.
            let want = run(sops()
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(["--indent", n, "-d"])
                .arg(&enc));
            let got = run(sopsync()
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(["--indent", n, "decrypt"])
                .arg(&enc));
            assert!(
                want.status.success() && got.status.success(),
                "{}",
                String::from_utf8_lossy(&got.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&got.stdout),
                String::from_utf8_lossy(&want.stdout),
                "{name} --indent {n}"
            );
        }
        let ordered = run(sopsync()
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["--decryption-order", "pgp,age", "decrypt"])
            .arg(&enc));
        assert!(
            ordered.status.success(),
            "{}",
            String::from_utf8_lossy(&ordered.stderr)
        );
        let dup = run(sopsync()
            .env("SOPS_AGE_KEY_FILE", &key)
            .args(["--decryption-order", "age,age", "decrypt"])
            .arg(&enc));
        assert_eq!(
            dup.status.code(),
            Some(112),
            "{}",
            String::from_utf8_lossy(&dup.stderr)
        );
        assert!(dup.stdout.is_empty());
    }
}

/// A file of 3,500 values (the per-file AES key schedule, the uncopied plaintext):
/// comments, nested maps, lists of strings sharing one AAD, numbers. sops' encryption
/// decrypts byte-identically; one value tampered deep inside is reported with its path
/// and nothing is printed.
#[test]
fn a_large_file_matches_sops() {
    let dir = tempdir();
    let (key, r) = age_keypair(dir.path(), "large");
    let mut text = String::from("# top comment\n");
    for i in 0..700 {
        text.push_str(&format!(
            "svc_{i}:\n    # the password\n    password: pw-{i}-x\n    port: {}\n    hosts:\n        - a{i}\n        - b{i}\n",
            1000 + i
        ));
    }
    let input = dir.path().join("large.yaml");
    std::fs::write(&input, &text).unwrap();
    let enc = dir.path().join("large.enc.yaml");
    std::fs::write(&enc, sops_encrypt(&input, &r, &[], &[])).unwrap();
    let want = decrypt_with(&mut sops(), &key, &enc);
    let got = decrypt_with(&mut sopsync(), &key, &enc);
    assert!(
        want.status.success(),
        "{}",
        String::from_utf8_lossy(&want.stderr)
    );
    assert!(
        got.status.success(),
        "{}",
        String::from_utf8_lossy(&got.stderr)
    );
    assert_eq!(got.stdout, want.stdout);
    assert_eq!(String::from_utf8_lossy(&got.stdout), text);

    // Swap the ciphertexts of two list items far apart: both still parse, neither
    // authenticates under the other's AAD.
    let sealed = std::fs::read_to_string(&enc).unwrap();
    let first_item_of = |svc: usize| -> String {
        let at = sealed.find(&format!("svc_{svc}:")).unwrap();
        let line = sealed[at..]
            .lines()
            .find(|l| l.trim_start().starts_with("- ENC["))
            .unwrap();
        line.trim_start().trim_start_matches("- ").to_string()
    };
    let (early, late) = (first_item_of(5), first_item_of(650));
    let tampered = sealed
        .replacen(&early, "@EARLY@", 1)
        .replacen(&late, &early, 1)
        .replacen("@EARLY@", &late, 1);
    let bad = dir.path().join("tampered.enc.yaml");
    std::fs::write(&bad, tampered).unwrap();
    let out = decrypt_with(&mut sopsync(), &key, &bad);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "no plaintext on a failure");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("svc_5") && err.contains("hosts"), "{err}");
    assert_eq!(sops_exit(&bad, &key), out.status.code());
}

fn sops_exit(file: &Path, key: &Path) -> Option<i32> {
    decrypt_with(&mut sops(), key, file).status.code()
}
