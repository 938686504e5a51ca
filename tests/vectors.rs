//! Vectors made by the real sops 3.11 (`tests/data/make-vectors`) decrypt here with the
//! MAC verified; every `fail_<defect>` file fails with its own named error and the same
//! exit code as the real sops; files we write decrypt with the real `sops`.

use crate::support::{self, tool};
use sopsync::core::error::{CoreError, ValueFailure};
use sopsync::core::formats::{Codec, Format, FormatError, FormatOptions};
use sopsync::core::keys::{AgeIdentities, AgeRecipient, KeyBackend, Recipient};
use sopsync::core::metadata::SelectionRule;
use sopsync::core::secret::Text;
use sopsync::core::tree::{KeyPath, MapEntry, Mapping, SeqEntry, Sequence, Value};
use sopsync::core::{self, CryptoEnv, DecryptOptions, EncryptConfig, EncryptedFile};
use std::path::PathBuf;

/// The plaintext canary: no error text may contain it.
const CANARY: &str = "canary-";

fn data(name: &str) -> PathBuf {
    support::project_root().join("tests/data").join(name)
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(data(name)).unwrap_or_else(|e| panic!("read tests/data/{name}: {e}"))
}

fn identities(names: &[&str]) -> AgeIdentities {
    let mut ids = AgeIdentities::new();
    for n in names {
        let text = String::from_utf8(read(&format!("{n}.agekey"))).unwrap();
        ids.add_source(&text, &format!("tests/data/{n}.agekey"));
    }
    ids
}

fn recipient(name: &str) -> Recipient {
    let text = String::from_utf8(read(&format!("{name}.agekey"))).unwrap();
    let public = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .unwrap();
    Recipient::Age(AgeRecipient::parse(public).unwrap())
}

/// Parses a fixture in the format its name says (`.json`, `.yaml`, …).
fn open(name: &str) -> Result<EncryptedFile, CoreError> {
    core::parse_encrypted(
        &read(name),
        Format::from_path(name),
        &FormatOptions::default(),
    )
}

fn decrypt_file(name: &str, keys: &dyn KeyBackend) -> Result<Vec<Mapping>, CoreError> {
    let file = open(name)?;
    let key = core::unwrap_data_key(&file.metadata, keys)?;
    Ok(core::decrypt(&file, &key, &DecryptOptions::default())?.documents)
}

fn expected_plaintext() -> Vec<Mapping> {
    store_codec(Format::Json)
        .parse_plain(&read("basic.expected.json"))
        .unwrap()
}

fn env(rng: &mut rand_core::OsRng) -> CryptoEnv<'_> {
    CryptoEnv {
        rng,
        now: sopsync::core::tree::Timestamp::parse_rfc3339("2026-11-24T15:00:00Z").unwrap(),
    }
}

/// Runs the real `sops decrypt` on `bytes` as a JSON file (see [`sops_decrypt_as`]).
fn sops_decrypt(bytes: &[u8], keys: &[&str]) -> (i32, Vec<u8>) {
    sops_decrypt_as(bytes, Format::Json, keys)
}

fn emit(file: &EncryptedFile) -> Vec<u8> {
    core::emit_encrypted(file, &FormatOptions::default()).unwrap()
}

#[test]
fn sops_made_json_files_decrypt_with_verified_mac() {
    let want = expected_plaintext();
    assert_eq!(
        decrypt_file("basic.enc.json", &identities(&["age1"])).unwrap(),
        want
    );
    // Two recipients in one group: either key works.
    for k in ["age1", "age2"] {
        assert_eq!(
            decrypt_file("multi.enc.json", &identities(&[k])).unwrap(),
            want,
            "{k}"
        );
    }
    // encrypted_regex + mac_only_encrypted (seeded MAC, clear values not hashed).
    let file = open("regex_mac_only.enc.json").unwrap();
    assert!(file.metadata.mac_only_encrypted);
    assert_eq!(
        file.metadata.rule,
        Some(SelectionRule::EncryptedRegex("^(password|nested)$".into()))
    );
    assert_eq!(
        decrypt_file("regex_mac_only.enc.json", &identities(&["age1"])).unwrap(),
        want
    );
}

#[test]
fn pgp_and_kms_entries_are_kept_verbatim_and_age_is_tried_first() {
    let file = open("mixed_keys.enc.json").unwrap();
    let types: Vec<&str> = file.metadata.key_groups[0]
        .keys
        .iter()
        .map(|k| k.type_name())
        .collect();
    assert_eq!(types, ["kms", "pgp", "age"]);
    assert_eq!(
        decrypt_file("mixed_keys.enc.json", &identities(&["age1"])).unwrap(),
        expected_plaintext()
    );
    // Emitting gives back the same sops block, field for field and in order.
    let ours: serde_json::Value = serde_json::from_slice(&emit(&file)).unwrap();
    let theirs: serde_json::Value = serde_json::from_slice(&read("mixed_keys.enc.json")).unwrap();
    assert_eq!(ours, theirs);
    let keys = |v: &serde_json::Value| -> Vec<String> {
        v["sops"].as_object().unwrap().keys().cloned().collect()
    };
    assert_eq!(keys(&ours), keys(&theirs));
}

#[test]
fn sops_float_canonical_bytes_are_go_format_f() {
    // The MAC above already proves our canonical bytes; this pins the 2^63 case that
    // the spec's §1.3 table gets wrong.
    let file = open("basic.enc.json").unwrap();
    let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
    let Some(Value::Str(env)) = file.documents[0]
        .get("nested")
        .and_then(|n| n.as_map())
        .and_then(|n| n.get("big"))
    else {
        panic!("nested.big")
    };
    let opened = core::cipher::open(&key, env.expose_secret(), b"nested:big:").unwrap();
    assert_eq!(&opened.plaintext[..], b"9223372036854776000");
}

#[test]
fn sops_made_shamir_two_of_three_decrypts_with_any_two_groups() {
    let want = expected_plaintext();
    for pair in [["age1", "age2"], ["age1", "age3"], ["age2", "age3"]] {
        assert_eq!(
            decrypt_file("shamir.enc.json", &identities(&pair)).unwrap(),
            want,
            "{pair:?}"
        );
    }
    // The same in the YAML shape (`hc_vault: []`) and the flattened dotenv shape
    // (threshold as a string, spec §6.4); both also emit back byte for byte.
    for name in ["shamir.enc.yaml", "shamir.enc.env"] {
        let file = open(name).unwrap();
        assert_eq!(file.metadata.shamir_threshold, Some(2), "{name}");
        assert_eq!(file.metadata.key_groups.len(), 3, "{name}");
        let key = core::unwrap_data_key(&file.metadata, &identities(&["age1", "age3"])).unwrap();
        core::decrypt(&file, &key, &DecryptOptions::default()).expect(name);
        assert_eq!(
            String::from_utf8_lossy(
                &core::emit_encrypted(&file, &FormatOptions::default()).unwrap()
            ),
            String::from_utf8_lossy(&read(name)),
            "{name}"
        );
    }
}

/// What each defect must fail with.
fn expect_failure(name: &str, keys: &[&str], check: fn(&CoreError) -> bool, exit: i32) {
    let err = decrypt_file(name, &identities(keys)).expect_err(name);
    assert!(check(&err), "{name}: unexpected error {err:?}");
    assert_eq!(err.exit_code(), exit, "{name}: {err}");
    let text = format!("{err} {err:?}");
    assert!(
        !text.contains(CANARY),
        "{name}: error leaks plaintext: {text}"
    );
    assert!(
        !text.contains("AGE-SECRET-KEY"),
        "{name}: error leaks a key"
    );
    // The real sops fails on the same file with the same exit code.
    let (code, _) = sops_decrypt_as(&read(name), Format::from_path(name), keys);
    assert_eq!(code, exit, "{name}: sops exit code");
}

fn at(err: &CoreError, path: &[&str], failure: fn(&ValueFailure) -> bool) -> bool {
    matches!(err, CoreError::DecryptValue { path: p, failure: f }
        if *p == KeyPath(path.iter().map(|s| s.to_string()).collect()) && failure(f))
}

#[test]
fn each_defective_file_fails_with_its_own_error_and_sops_exit_code() {
    let k = &["age1"][..];
    expect_failure(
        "fail_mac_tampered.enc.json",
        k,
        |e| matches!(e, CoreError::MacUndecryptable { .. }),
        51,
    );
    expect_failure(
        "fail_lastmodified_changed.enc.json",
        k,
        |e| matches!(e, CoreError::MacUndecryptable { .. }),
        51,
    );
    expect_failure(
        "fail_clear_value_edited.enc.json",
        k,
        |e| matches!(e, CoreError::MacMismatch),
        51,
    );
    expect_failure(
        "fail_no_mac.enc.json",
        k,
        |e| matches!(e, CoreError::NoMac),
        51,
    );
    for name in [
        "fail_value_tampered.enc.json",
        "fail_iv_tampered.enc.json",
        "fail_tag_tampered.enc.json",
    ] {
        expect_failure(
            name,
            k,
            |e| at(e, &["password"], |f| *f == ValueFailure::Authentication),
            25,
        );
    }
    expect_failure(
        "fail_value_moved.enc.json",
        k,
        |e| {
            at(e, &["nested", "user"], |f| {
                *f == ValueFailure::Authentication
            })
        },
        25,
    );
    expect_failure(
        "fail_bad_base64.enc.json",
        k,
        |e| {
            at(e, &["password"], |f| {
                *f == ValueFailure::BadBase64 { field: "data" }
            })
        },
        25,
    );
    expect_failure(
        "fail_unknown_type.enc.json",
        k,
        |e| {
            at(e, &["password"], |f| {
                matches!(f, ValueFailure::UnknownType { .. })
            })
        },
        25,
    );
    expect_failure(
        "fail_plaintext_added.enc.json",
        k,
        |e| at(e, &["extra"], |f| *f == ValueFailure::NotAnEnvelope),
        25,
    );
    expect_failure(
        "fail_plain_int_added.enc.json",
        k,
        |e| matches!(e, CoreError::NotCiphertext { kind: "float", .. }),
        2,
    );
    expect_failure(
        "fail_bad_version.enc.json",
        k,
        |e| matches!(e, CoreError::InvalidMetadata { field, .. } if field == "version"),
        1,
    );
    expect_failure(
        "fail_truncated.enc.json",
        k,
        |e| matches!(e, CoreError::UnreadableEncrypted(FormatError::Parse { .. })),
        1,
    );
    expect_failure(
        "fail_not_sops.enc.json",
        k,
        |e| matches!(e, CoreError::MetadataNotFound),
        1,
    );
    expect_failure(
        "basic.enc.json",
        &["wrong"],
        |e| matches!(e, CoreError::NoMatchingKey { tried, .. } if tried.contains("1 age identity from tests/data/wrong.agekey")),
        128,
    );
    expect_failure(
        "fail_pgp_kms_only.enc.json",
        k,
        |e| {
            matches!(e, CoreError::NoMatchingKey { detail, .. }
            if detail.contains("pgp FBC7B9E2A4F9289AC0C1D4843D16CEE4A27381B4: no PGP key source was given") && detail.contains("kms key: sopsync cannot unwrap"))
        },
        128,
    );
    // spec §3.4: sops writes this file, then panics decrypting it (a plain int where it
    // expects ciphertext); we fail with the same exit code, without the panic.
    expect_failure(
        "fail_comment_panic.enc.yaml",
        k,
        |e| matches!(e, CoreError::NotCiphertext { kind: "int", path } if path.0 == ["list", "j"]),
        2,
    );
    // spec §3.3: a marker and a second comment in a list: sops cannot verify its own MAC.
    expect_failure(
        "fail_comment_quirk.enc.yaml",
        k,
        |e| matches!(e, CoreError::MacMismatch),
        51,
    );
    // One key group left of three: the unwrapped 33-byte share is not a data key
    // (sops: "crypto/aes: invalid key size 33", exit 25).
    expect_failure(
        "fail_shamir_too_few_groups.enc.json",
        &["age1", "age2", "age3"],
        |e| matches!(e, CoreError::BadDataKey { len: 33 }),
        25,
    );
    expect_failure(
        "shamir.enc.json",
        &["age2"],
        |e| {
            matches!(
                e,
                CoreError::NotEnoughShares {
                    needed: 2,
                    got: 1,
                    ..
                }
            )
        },
        128,
    );
}

fn encrypt_plain(groups: Vec<Vec<Recipient>>, threshold: Option<usize>) -> EncryptedFile {
    let docs = store_codec(Format::Json)
        .parse_plain(&read("plain.json"))
        .unwrap();
    let mut rng = rand_core::OsRng;
    core::encrypt(
        docs,
        Format::Json,
        &EncryptConfig {
            key_groups: groups,
            shamir_threshold: threshold,
            rule: SelectionRule::default(),
            mac_only_encrypted: false,
        },
        &mut env(&mut rng),
    )
    .unwrap()
}

#[test]
fn files_we_encrypt_decrypt_with_real_sops_to_the_same_plaintext() {
    let expected = read("basic.expected.json");
    let file = encrypt_plain(vec![vec![recipient("age1"), recipient("age2")]], None);
    for k in ["age1", "age2"] {
        let (code, out) = sops_decrypt(&emit(&file), &[k]);
        assert_eq!(code, 0, "sops decrypt with {k}");
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&expected)
        );
    }
    let (code, _) = sops_decrypt(&emit(&file), &["age3"]);
    assert_eq!(code, 128);
}

#[test]
fn our_shamir_two_of_three_decrypts_with_sops_given_two_keys_and_not_one() {
    let expected = read("basic.expected.json");
    let file = encrypt_plain(
        vec![
            vec![recipient("age1")],
            vec![recipient("age2")],
            vec![recipient("age3")],
        ],
        Some(2),
    );
    let bytes = emit(&file);
    for pair in [["age1", "age3"], ["age2", "age3"]] {
        let (code, out) = sops_decrypt(&bytes, &pair);
        assert_eq!(code, 0, "{pair:?}");
        assert_eq!(out, expected, "{pair:?}");
    }
    for single in ["age1", "age3"] {
        let (code, _) = sops_decrypt(&bytes, &[single]);
        assert_eq!(code, 128, "{single} alone must not be enough");
    }
}

#[test]
fn update_keys_result_is_read_by_sops_and_keeps_mac_lastmodified_and_values() {
    let file = open("basic.enc.json").unwrap();
    let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
    let mut rng = rand_core::OsRng;
    let updated = core::update_keys(
        &file,
        &key,
        vec![vec![recipient("age3")]],
        None,
        &mut env(&mut rng),
    )
    .unwrap();
    assert_eq!(updated.documents, file.documents);
    assert_eq!(updated.metadata.mac, file.metadata.mac);
    assert_eq!(updated.metadata.last_modified, file.metadata.last_modified);
    assert_eq!(updated.metadata.version, file.metadata.version);
    let bytes = emit(&updated);
    // Byte level: everything before the `sops` block, and the mac, lastmodified and
    // version lines, are exactly the sops-made file's.
    let ours = String::from_utf8(bytes.clone()).unwrap();
    let theirs = String::from_utf8(read("basic.enc.json")).unwrap();
    let data = |t: &str| t[..t.find("\t\"sops\": {").unwrap()].to_string();
    assert_eq!(data(&ours), data(&theirs));
    for field in ["\"mac\":", "\"lastmodified\":", "\"version\":"] {
        let line = |t: &str| t.lines().find(|l| l.contains(field)).unwrap().to_string();
        assert_eq!(line(&ours), line(&theirs), "{field}");
    }
    assert_ne!(ours, theirs, "the age entries changed");
    let (code, out) = sops_decrypt(&bytes, &["age3"]);
    assert_eq!(code, 0);
    assert_eq!(out, read("basic.expected.json"));
    assert_eq!(sops_decrypt(&bytes, &["age1"]).0, 128);
}

#[test]
fn rotate_and_reencrypt_results_are_read_by_sops() {
    let file = open("basic.enc.json").unwrap();
    let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
    let plain = core::decrypt(&file, &key, &DecryptOptions::default()).unwrap();
    let mut rng = rand_core::OsRng;

    // reencrypt (set): unchanged values keep their exact ciphertext (spec §2.4).
    let mut edited = plain.documents.clone();
    *edited[0].get_mut("password").unwrap() = Value::str("new-password");
    let again = core::reencrypt(edited, &file, &key, &plain.iv_stash, &mut env(&mut rng)).unwrap();
    assert_eq!(
        again.documents[0].get("nested"),
        file.documents[0].get("nested")
    );
    assert_ne!(
        again.documents[0].get("password"),
        file.documents[0].get("password")
    );
    let (code, out) = sops_decrypt(&emit(&again), &["age1"]);
    assert_eq!(code, 0);
    let out: serde_json::Value = serde_json::from_slice(&out).unwrap();
    assert_eq!(out["password"], "new-password");

    // rotate, adding age2: a new data key, readable by both keys.
    let mut groups = core::recipients_of(&file.metadata).unwrap();
    groups[0].push(recipient("age2"));
    let rotated = core::rotate(
        plain.documents.clone(),
        &file,
        &plain.iv_stash,
        Some(groups),
        None,
        &mut env(&mut rng),
    )
    .unwrap();
    let new_key = core::unwrap_data_key(&rotated.metadata, &identities(&["age2"])).unwrap();
    assert_ne!(new_key.expose_secret(), key.expose_secret());
    for k in ["age1", "age2"] {
        let (code, out) = sops_decrypt(&emit(&rotated), &[k]);
        assert_eq!(code, 0, "{k}");
        assert_eq!(out, read("basic.expected.json"), "{k}");
    }
}

#[test]
fn age_identity_file_from_age_keygen_parses_with_sops_line_rules() {
    // age-keygen's own output (comments + key) is one identity.
    let dir = support::tempdir();
    let (path, public) = support::age_keypair(dir.path(), "k");
    let text = std::fs::read_to_string(&path).unwrap();
    let ids = AgeIdentities::parse(&text, "k").unwrap();
    assert_eq!(ids.recipients(), vec![public]);
    assert!(tool("age-keygen").is_file());
}

// ---- every store, through the formats engineer's codecs ----

fn store_codec(format: Format) -> Box<dyn Codec> {
    sopsync::core::formats::codec(format, &sopsync::core::formats::FormatOptions::default())
}

fn ext(format: Format) -> &'static str {
    match format {
        Format::Yaml => "yaml",
        Format::Json => "json",
        Format::Dotenv => "env",
        Format::Ini => "ini",
        Format::Binary => "bin",
    }
}

/// The real `sops decrypt` of `bytes` as a file of `format`.
fn sops_decrypt_as(bytes: &[u8], format: Format, keys: &[&str]) -> (i32, Vec<u8>) {
    let dir = support::tempdir();
    let file = dir.path().join(format!("file.{}", ext(format)));
    std::fs::write(&file, bytes).unwrap();
    let keyfile = dir.path().join("keys.txt");
    let mut text = String::new();
    for k in keys {
        text.push_str(&String::from_utf8(read(&format!("{k}.agekey"))).unwrap());
    }
    std::fs::write(&keyfile, text).unwrap();
    let out = support::run(
        support::sops()
            .env("HOME", dir.path())
            .env("XDG_CONFIG_HOME", dir.path())
            .env("SOPS_AGE_KEY_FILE", &keyfile)
            .current_dir(dir.path())
            .arg("decrypt")
            .arg(&file),
    );
    (out.status.code().unwrap_or(-1), out.stdout)
}

const STORES: [(&str, &str, Format); 5] = [
    ("basic.enc.json", "plain.json", Format::Json),
    ("basic.enc.yaml", "plain.yaml", Format::Yaml),
    ("basic.enc.env", "plain.env", Format::Dotenv),
    ("basic.enc.ini", "plain.ini", Format::Ini),
    ("basic.enc.bin", "plain.bin", Format::Binary),
];

#[test]
fn sops_made_files_of_every_store_decrypt_here_and_print_like_sops() {
    for (enc, _, format) in STORES {
        let codec = store_codec(format);
        let file = core::parse_encrypted_with(&*codec, format, &read(enc)).expect(enc);
        let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
        let plain = core::decrypt(&file, &key, &DecryptOptions::default()).expect(enc);
        let ours = codec.emit_plain(&plain.documents).expect(enc);
        let (code, theirs) = sops_decrypt_as(&read(enc), format, &["age1"]);
        assert_eq!(code, 0, "{enc}");
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{enc}"
        );
    }
}

#[test]
fn files_we_encrypt_in_every_store_decrypt_with_real_sops() {
    for (enc, plain, format) in STORES {
        let codec = store_codec(format);
        let docs = codec.parse_plain(&read(plain)).expect(plain);
        let mut rng = rand_core::OsRng;
        let file = core::encrypt(
            docs,
            format,
            &EncryptConfig {
                key_groups: vec![vec![recipient("age1")]],
                shamir_threshold: None,
                rule: SelectionRule::default(),
                mac_only_encrypted: false,
            },
            &mut env(&mut rng),
        )
        .expect(plain);
        let bytes = core::emit_encrypted_with(&*codec, &file).expect(plain);
        let (code, ours) = sops_decrypt_as(&bytes, format, &["age1"]);
        assert_eq!(code, 0, "{plain}: {}", String::from_utf8_lossy(&bytes));
        let (_, theirs) = sops_decrypt_as(&read(enc), format, &["age1"]);
        assert_eq!(
            String::from_utf8_lossy(&ours),
            String::from_utf8_lossy(&theirs),
            "{plain}"
        );
    }
}

/// The file with ciphertexts, age armor and `lastmodified` masked.
fn layout(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = regex::Regex::new(r"ENC\[AES256_GCM,[^\]]*\]")
        .unwrap()
        .replace_all(&text, "ENC[]");
    let text = regex::Regex::new(
        r"(?s)-----BEGIN AGE ENCRYPTED FILE-----.*?-----END AGE ENCRYPTED FILE-----",
    )
    .unwrap()
    .replace_all(&text, "ARMOR");
    regex::Regex::new(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ")
        .unwrap()
        .replace_all(&text, "TIME")
        .into_owned()
}

#[test]
fn files_we_encrypt_have_the_same_layout_as_sops_files() {
    for (enc, plain, format) in STORES {
        let codec = store_codec(format);
        let mut rng = rand_core::OsRng;
        let file = core::encrypt(
            codec.parse_plain(&read(plain)).unwrap(),
            format,
            &EncryptConfig {
                key_groups: vec![vec![recipient("age1")]],
                shamir_threshold: None,
                rule: SelectionRule::default(),
                mac_only_encrypted: false,
            },
            &mut env(&mut rng),
        )
        .unwrap();
        let ours = core::emit_encrypted_with(&*codec, &file).unwrap();
        let (mut ours, mut theirs) = (layout(&ours), layout(&read(enc)));
        if format == Format::Ini {
            // sops' [sops] key order is Go map order, random per run (spec §6.3).
            let sorted = |t: &str| {
                let (head, tail) = t.split_once("[sops]\n").expect("[sops] section");
                let mut lines: Vec<&str> = tail.lines().collect();
                lines.sort();
                format!("{head}[sops]\n{}", lines.join("\n"))
            };
            (ours, theirs) = (sorted(&ours), sorted(&theirs));
        }
        assert_eq!(ours, theirs, "{enc}");
    }
}

#[test]
fn comment_regex_probes_select_the_same_values_as_sops_both_ways() {
    // tests/data/comment_probes: sops encrypted each probe with encrypted_ and
    // unencrypted_comment_regex `@X` (`@` is never in base64, so no ciphertext can match
    // it; sops aborts when one does, spec §3.2). Which values are ENC[...] shows where
    // each comment sits and how far it reaches (spec §3.2, §3.4).
    let codec = store_codec(Format::Yaml);
    let mut checked = 0;
    for n in 1..=6 {
        for (kind, rule) in [
            (
                "encrypted",
                SelectionRule::EncryptedCommentRegex("@X".into()),
            ),
            (
                "unencrypted",
                SelectionRule::UnencryptedCommentRegex("@X".into()),
            ),
        ] {
            let enc = format!("comment_probes/p{n}.{kind}.enc.yaml");
            // sops' file decrypts here (MAC verified) to what sops prints.
            let file = open(&enc).unwrap();
            assert_eq!(file.metadata.rule, Some(rule.clone()), "{enc}");
            let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
            let plain = core::decrypt(&file, &key, &DecryptOptions::default()).expect(&enc);
            let (code, theirs) = sops_decrypt_as(&read(&enc), Format::Yaml, &["age1"]);
            assert_eq!(code, 0, "{enc}");
            assert_eq!(
                String::from_utf8_lossy(&codec.emit_plain(&plain.documents).unwrap()),
                String::from_utf8_lossy(&theirs),
                "{enc}"
            );
            // Our encryption selects the same values and sops reads it.
            let mut rng = rand_core::OsRng;
            let ours = core::encrypt(
                codec
                    .parse_plain(&read(&format!("comment_probes/p{n}.yaml")))
                    .unwrap(),
                Format::Yaml,
                &EncryptConfig {
                    key_groups: vec![vec![recipient("age1")]],
                    shamir_threshold: None,
                    rule,
                    mac_only_encrypted: false,
                },
                &mut env(&mut rng),
            )
            .unwrap();
            let bytes = core::emit_encrypted(&ours, &FormatOptions::default()).unwrap();
            assert_eq!(layout(&bytes), layout(&read(&enc)), "{enc}");
            let (code, out) = sops_decrypt_as(&bytes, Format::Yaml, &["age1"]);
            assert_eq!((code, out), (0, theirs), "{enc}");
            checked += 1;
        }
    }
    assert_eq!(checked, 12);
}

#[test]
fn sops_made_files_emit_back_byte_identical() {
    // INI's [sops] section order is random in sops (spec §6.3), so INI is left out.
    for (enc, format) in [
        ("basic.enc.json", Format::Json),
        ("shamir.enc.json", Format::Json),
        ("mixed_keys.enc.json", Format::Json),
        ("basic.enc.yaml", Format::Yaml),
        ("marker.enc.yaml", Format::Yaml),
        ("basic.enc.env", Format::Dotenv),
        ("basic.enc.bin", Format::Binary),
    ] {
        let codec = store_codec(format);
        let file = core::parse_encrypted_with(&*codec, format, &read(enc)).expect(enc);
        let out = core::emit_encrypted_with(&*codec, &file).expect(enc);
        assert_eq!(
            String::from_utf8_lossy(&out),
            String::from_utf8_lossy(&read(enc)),
            "{enc}"
        );
    }
}

#[test]
fn yaml_comment_rules_match_sops_including_its_own_mac_mismatch() {
    let codec = store_codec(Format::Yaml);
    // unencrypted_comment_regex: the marker and the marked value stay readable.
    let file = core::parse_encrypted_with(&*codec, Format::Yaml, &read("marker.enc.yaml")).unwrap();
    let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
    let plain = core::decrypt(&file, &key, &DecryptOptions::default()).unwrap();
    assert_eq!(
        plain.documents[0].get("other"),
        Some(&Value::str("canary-other"))
    );
    // spec §3.3: a marker plus a second comment in a list: sops reports a MAC mismatch
    // on its own file, and so do we.
    let file =
        core::parse_encrypted_with(&*codec, Format::Yaml, &read("fail_comment_quirk.enc.yaml"))
            .unwrap();
    let key = core::unwrap_data_key(&file.metadata, &identities(&["age1"])).unwrap();
    let err = core::decrypt(&file, &key, &DecryptOptions::default()).unwrap_err();
    assert!(matches!(err, CoreError::MacMismatch), "{err:?}");
    assert_eq!(err.exit_code(), 51);
    assert_eq!(
        sops_decrypt_as(
            &read("fail_comment_quirk.enc.yaml"),
            Format::Yaml,
            &["age1"]
        )
        .0,
        51
    );
    assert!(!format!("{err} {err:?}").contains(CANARY));
}

mod roundtrip {
    use super::*;
    use proptest::prelude::*;
    use sopsync::core::tree::Timestamp;

    fn leaf() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<bool>().prop_map(Value::Bool),
            any::<i64>().prop_map(Value::Int),
            // Every bit pattern except NaN (NaN != NaN under PartialEq), plus edges.
            any::<f64>()
                .prop_filter("not NaN", |f| !f.is_nan())
                .prop_map(Value::Float),
            prop_oneof![
                Just(0.0),
                Just(-0.0),
                Just(f64::INFINITY),
                Just(f64::NEG_INFINITY),
                Just(f64::MIN_POSITIVE),
                Just(5e-324),
                Just(f64::MAX),
                Just(1e21),
                Just(9007199254740993.0),
            ]
            .prop_map(Value::Float),
            proptest::collection::vec(any::<u8>(), 0..24).prop_map(|b| Value::Str(Text::new(b))),
            ".{0,12}".prop_map(|s| Value::str(&s)),
            (0u32..999_999_999, -50400i32..50400).prop_map(|(n, off)| Value::Time(Timestamp {
                year: 2024,
                month: 2,
                day: 29,
                hour: 23,
                minute: 59,
                second: 58,
                nanos: n,
                offset_seconds: off / 60 * 60,
            })),
        ]
    }

    fn key() -> impl Strategy<Value = String> {
        prop_oneof!["[a-z]{1,6}", "[a-z]{1,3}_unencrypted", "[a-z]{1,3}_e"]
    }

    fn tree() -> impl Strategy<Value = Value> {
        leaf().prop_recursive(4, 40, 6, |inner| {
            prop_oneof![
                proptest::collection::vec(
                    prop_oneof![
                        (key(), inner.clone())
                            .prop_map(|(k, v)| MapEntry::Pair { key: k, value: v }),
                        ".{0,8}".prop_map(|c| MapEntry::Comment(Text::from(c.as_str()))),
                    ],
                    0..6
                )
                .prop_map(|entries| Value::Map(Mapping { entries })),
                proptest::collection::vec(
                    prop_oneof![
                        inner.prop_map(SeqEntry::Value),
                        ".{0,8}".prop_map(|c| SeqEntry::Comment(Text::from(c.as_str()))),
                    ],
                    0..6
                )
                .prop_map(|items| Value::Seq(Sequence { items })),
            ]
        })
    }

    fn document() -> impl Strategy<Value = Mapping> {
        proptest::collection::vec((key(), tree()), 0..6).prop_map(|pairs| {
            let mut m = Mapping::new();
            for (k, v) in pairs {
                m.push(k, v);
            }
            m
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        // Path rules only: with comment-regex rules sops' own walks can disagree (§3.3),
        // which `fail_comment_quirk` and `fail_comment_panic` cover.
        fn encrypt_then_decrypt_gives_the_same_tree_and_a_verified_mac(
            docs in proptest::collection::vec(document(), 1..3),
            mac_only in any::<bool>(),
            rule in prop_oneof![
                Just(SelectionRule::default()),
                Just(SelectionRule::EncryptedSuffix("_e".into())),
                Just(SelectionRule::UnencryptedRegex("^[a-c]".into())),
                Just(SelectionRule::EncryptedRegex("^[d-m]".into())),
            ],
        ) {
            let ids = identities(&["age1"]);
            let mut rng = rand_core::OsRng;
            let file = core::encrypt(
                docs.clone(),
                Format::Yaml,
                &EncryptConfig {
                    key_groups: vec![vec![recipient("age1")]],
                    shamir_threshold: None,
                    rule,
                    mac_only_encrypted: mac_only,
                },
                &mut env(&mut rng),
            ).unwrap();
            let key = core::unwrap_data_key(&file.metadata, &ids).unwrap();
            // decrypt verifies the MAC (ignore_mac = false).
            let plain = core::decrypt(&file, &key, &DecryptOptions::default()).unwrap();
            prop_assert_eq!(plain.documents, docs);
        }
    }
}
