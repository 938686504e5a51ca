//! The YAML codec against the real sops 3.11. For every input of `tests/data/yaml/` and the
//! 22 comment-placement probes of `tests/data/yaml/probes/` (spec §3.4, §12 item 2):
//! (1) our parse+emit equals what `sops decrypt` prints for sops' own encryption,
//! (2) our parse_encrypted+emit_encrypted reproduces sops' encrypted file byte for byte,
//! and our full decryption of sops' file equals `sops decrypt`;
//! (3) probes only: sops encrypts the probe with `--encrypted-comment-regex @X`; which values
//! it encrypted shows where each comment sits in the tree. Our encryption of our parse with the
//! same rule encrypts exactly the same values (same layout), and (2) holds for that file too.
//! Then the error cases (exact `FormatError` variants) and the YAML-bomb limits.

use crate::support::{age_keypair, run_ok, sops, tempdir};
use sopsync::core::formats::{codec, Codec, Format, FormatError, FormatOptions};
use sopsync::core::keys::age::AgeIdentities;
use sopsync::core::keys::{AgeRecipient, Recipient};
use sopsync::core::metadata::SelectionRule;
use sopsync::core::{CryptoEnv, EncryptConfig};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The comment marker of the probes: `@` is not a base64 character, so no ciphertext can
/// match it (spec §3.2).
const MARKER: &str = "@X";

fn yaml_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    files
}

fn identities(key: &Path) -> AgeIdentities {
    let mut ids = AgeIdentities::new();
    ids.add_source(
        &std::fs::read_to_string(key).expect("key"),
        key.to_str().expect("utf-8 path"),
    );
    ids
}

/// Masks what differs between two encryptions of the same tree: ciphertexts (keeping the
/// type), the age armor, the MAC and the timestamp. What stays is which values are
/// encrypted, the layout, and the metadata keys.
fn layout(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    let text = regex::Regex::new(r"ENC\[AES256_GCM,data:[^,]*,iv:[^,]*,tag:[^,]*,type:([a-z]+)\]")
        .unwrap()
        .replace_all(&text, "ENC[$1]");
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

fn show(bytes: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(bytes)
}

/// The outcome of one corpus file: which checks passed, and what diverged.
#[derive(Default)]
struct Outcome {
    /// `None` for [`Mode::Unstable`] inputs, where (1) does not apply.
    plain_ok: Option<bool>,
    encrypted_ok: bool,
    comments_ok: Option<bool>,
    failures: Vec<String>,
}

struct Setup {
    key: PathBuf,
    recipient: String,
    ids: AgeIdentities,
    dir: PathBuf,
    /// A `.sops.yaml` whose one creation rule sets `encrypted_comment_regex: '@X'`.
    comment_config: PathBuf,
}

/// How one corpus file is checked.
#[derive(Clone, Copy, PartialEq)]
enum Mode {
    /// (1) and (2) with sops' default indent.
    Default,
    /// (1), (2) and (3).
    Probe,
    /// (1) and (2) with `stores.yaml.indent` set to this width in `.sops.yaml`.
    Indent(usize),
    /// Inputs whose round trip through sops is not stable (spec §3.4): sops' own decryption
    /// of its own file differs from the input's tree (`a: {} # c` loses the comment), so
    /// (1) cannot hold; (2) must.
    Unstable,
}

fn check_file(setup: &Setup, input_path: &Path, mode: Mode) -> Outcome {
    let mut opts = FormatOptions::default();
    let mut config: Vec<std::ffi::OsString> = Vec::new();
    if let Mode::Indent(w) = mode {
        opts.yaml_indent = w;
        let path = setup.dir.join(format!("indent{w}.sops.yaml"));
        config = vec!["--config".into(), path.into()];
    }
    let yaml = codec(Format::Yaml, &opts);
    let mut out = Outcome::default();
    let mut name = input_path
        .strip_prefix(crate::support::project_root())
        .unwrap_or(input_path)
        .display()
        .to_string();
    if let Mode::Indent(w) = mode {
        name = format!("{name} (indent {w})");
    }
    let stem = name.replace(['/', ' ', '(', ')'], "_");
    let input = std::fs::read(input_path).unwrap();
    let enc = run_ok(
        sops()
            .args(&config)
            .args(["encrypt", "--age", &setup.recipient])
            .arg(input_path),
    );
    let enc_path = setup.dir.join(format!("{stem}.enc.yaml"));
    std::fs::write(&enc_path, &enc).unwrap();
    let expected = run_ok(
        sops()
            .env("SOPS_AGE_KEY_FILE", &setup.key)
            .args(&config)
            .args(["decrypt"])
            .arg(&enc_path),
    );
    // (1) plaintext round trip.
    match yaml.parse_plain(&input).and_then(|d| yaml.emit_plain(&d)) {
        _ if mode == Mode::Unstable => {}
        Ok(ours) if ours == expected => out.plain_ok = Some(true),
        Ok(ours) => out.failures.push(format!(
            "{name}: (1) parse+emit differs from sops decrypt\n--- sops\n{}\n--- ours\n{}",
            show(&expected),
            show(&ours)
        )),
        Err(e) => out.failures.push(format!("{name}: (1) parse failed: {e}")),
    }
    if mode != Mode::Unstable && out.plain_ok.is_none() {
        out.plain_ok = Some(false);
    }
    // (2) encrypted layout round trip, and our decryption of sops' file.
    let reemit = reemit(yaml.as_ref(), &enc);
    let full = sopsync::core::parse_encrypted_with(yaml.as_ref(), Format::Yaml, &enc)
        .and_then(|f| {
            let k = sopsync::core::unwrap_data_key(&f.metadata, &setup.ids)?;
            sopsync::core::decrypt(&f, &k, &Default::default())
        })
        .map_err(|e| e.to_string())
        .and_then(|d| yaml.emit_plain(&d.documents).map_err(|e| e.to_string()));
    // For unstable inputs sops itself does not reproduce its file when it reads and
    // writes it again; the reference is then what `sops rotate` writes (same layout).
    let reference = if mode == Mode::Unstable {
        let rotated = run_ok(
            sops()
                .env("SOPS_AGE_KEY_FILE", &setup.key)
                .args(["rotate"])
                .arg(&enc_path),
        );
        Some(rotated)
    } else {
        None
    };
    let same = |ours: &[u8]| match &reference {
        None => ours == enc.as_slice(),
        Some(rotated) => layout(ours) == layout(rotated),
    };
    match (reemit, full) {
        (Ok(ours), Ok(plain)) if same(&ours) && plain == expected => out.encrypted_ok = true,
        (Ok(ours), _) if !same(&ours) => out.failures.push(format!(
            "{name}: (2) encrypted re-emit differs\n--- sops\n{}\n--- ours\n{}",
            match &reference {
                None => show(&enc).into_owned(),
                Some(rotated) => layout(rotated),
            },
            match &reference {
                None => show(&ours).into_owned(),
                Some(_) => layout(&ours),
            }
        )),
        (Err(e), _) => out
            .failures
            .push(format!("{name}: (2) parse_encrypted failed: {e}")),
        (_, Ok(plain)) => out.failures.push(format!(
            "{name}: (2) our decryption differs from sops decrypt\n--- sops\n{}\n--- ours\n{}",
            show(&expected),
            show(&plain)
        )),
        (_, Err(e)) => out
            .failures
            .push(format!("{name}: (2) our decryption failed: {e}")),
    }
    if mode == Mode::Probe {
        out.comments_ok = Some(check_comment_placement(
            setup,
            yaml.as_ref(),
            &name,
            input_path,
            &input,
            &mut out.failures,
        ));
    }
    out
}

fn reemit(yaml: &dyn Codec, enc: &[u8]) -> Result<Vec<u8>, String> {
    let (docs, metadata) = yaml.parse_encrypted(enc).map_err(|e| e.to_string())?;
    let metadata = metadata.ok_or("sops' file has no `sops` metadata")?;
    yaml.emit_encrypted(&docs, &metadata)
        .map_err(|e| e.to_string())
}

/// (3): sops and we encrypt the probe with `encrypted_comment_regex: @X`; the same values
/// must come out encrypted (spec §3.2, §3.4), and our re-emit of sops' file is byte-identical.
fn check_comment_placement(
    setup: &Setup,
    yaml: &dyn Codec,
    name: &str,
    input_path: &Path,
    input: &[u8],
    failures: &mut Vec<String>,
) -> bool {
    let theirs = run_ok(
        sops()
            // sops 3.11 refuses `encrypt --encrypted-comment-regex` and silently ignores the
            // global `--encrypted-comment-regex`; a creation rule is what takes effect.
            .arg("--config")
            .arg(&setup.comment_config)
            .arg("encrypt")
            .arg(input_path),
    );
    let mut ok = true;
    // sops decrypting its own comment-regex file: where it succeeds our decryption prints
    // the same bytes; where it fails (its own round trip moves comments, spec §3.4, §10)
    // ours fails with the same exit code.
    let regex_path = setup
        .dir
        .join(format!("{}.regex.enc.yaml", name.replace(['/', ' '], "_")));
    std::fs::write(&regex_path, &theirs).unwrap();
    let sops_out = crate::support::run(
        sops()
            .env("SOPS_AGE_KEY_FILE", &setup.key)
            .arg("decrypt")
            .arg(&regex_path),
    );
    let ours_plain =
        sopsync::core::parse_encrypted_with(yaml, Format::Yaml, &theirs).and_then(|f| {
            let k = sopsync::core::unwrap_data_key(&f.metadata, &setup.ids)?;
            sopsync::core::decrypt(&f, &k, &Default::default())
        });
    let sops_code = sops_out.status.code().unwrap_or(-1);
    match ours_plain {
        Ok(d) if sops_code == 0 => {
            let ours = yaml.emit_plain(&d.documents).unwrap();
            if ours != sops_out.stdout {
                ok = false;
                failures.push(format!(
                    "{name}: (3) our decryption of the comment-regex file differs\n--- sops\n{}\n--- ours\n{}",
                    show(&sops_out.stdout),
                    show(&ours)
                ));
            }
        }
        Err(e) if e.exit_code() == sops_code => println!(
            "{name}: sops cannot decrypt its own comment-regex file (exit {sops_code}); ours fails alike: {e}"
        ),
        other => {
            ok = false;
            failures.push(format!(
                "{name}: (3) sops decrypt exits {sops_code} on its comment-regex file, ours gives {:?}",
                other.map(|_| "success").map_err(|e| (e.exit_code(), e.to_string()))
            ));
        }
    }
    match reemit(yaml, &theirs) {
        Ok(ours) if ours == theirs => {}
        Ok(ours) => {
            ok = false;
            failures.push(format!(
                "{name}: (3) re-emit of the comment-regex file differs\n--- sops\n{}\n--- ours\n{}",
                show(&theirs),
                show(&ours)
            ));
        }
        Err(e) => {
            ok = false;
            failures.push(format!("{name}: (3) parse_encrypted failed: {e}"));
        }
    }
    let recipient = Recipient::Age(AgeRecipient::parse(&setup.recipient).unwrap());
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: sopsync::core::tree::Timestamp::parse_rfc3339("2026-11-24T15:00:00Z").unwrap(),
    };
    let ours = yaml
        .parse_plain(input)
        .map_err(|e| e.to_string())
        .and_then(|docs| {
            sopsync::core::encrypt(
                docs,
                Format::Yaml,
                &EncryptConfig {
                    key_groups: vec![vec![recipient]],
                    shamir_threshold: None,
                    rule: SelectionRule::EncryptedCommentRegex(MARKER.into()),
                    mac_only_encrypted: false,
                },
                &mut env,
            )
            .map_err(|e| e.to_string())
        })
        .and_then(|f| sopsync::core::emit_encrypted_with(yaml, &f).map_err(|e| e.to_string()));
    match ours {
        Ok(ours) if layout(&ours) == layout(&theirs) => {}
        Ok(ours) => {
            ok = false;
            failures.push(format!(
                "{name}: (3) comment-regex selection differs\n--- sops\n{}\n--- ours\n{}",
                layout(&theirs),
                layout(&ours)
            ));
        }
        Err(e) => {
            ok = false;
            failures.push(format!("{name}: (3) our encryption failed: {e}"));
        }
    }
    ok
}

#[test]
fn yaml_codec_matches_real_sops_byte_for_byte_on_the_corpus_and_comment_probes() {
    let tmp = tempdir();
    let (key, recipient) = age_keypair(tmp.path(), "k");
    let comment_config = tmp.path().join("comment-rule.sops.yaml");
    std::fs::write(
        &comment_config,
        format!(
            "creation_rules:\n  - age: '{recipient}'\n    encrypted_comment_regex: '{MARKER}'\n"
        ),
    )
    .unwrap();
    // sops 3.11 takes the YAML indent from `.sops.yaml` (`--indent` is refused by the
    // subcommands, spec §7.1).
    for w in [2, 3, 8] {
        std::fs::write(
            tmp.path().join(format!("indent{w}.sops.yaml")),
            format!("stores:\n  yaml:\n    indent: {w}\n"),
        )
        .unwrap();
    }
    let setup = Setup {
        comment_config,
        ids: identities(&key),
        key,
        recipient,
        dir: tmp.path().to_path_buf(),
    };
    let root = crate::support::project_root().join("tests/data/yaml");
    let files = yaml_files(&root);
    let probes = yaml_files(&root.join("probes"));
    let unstable = yaml_files(&root.join("unstable"));
    assert!(files.len() >= 14, "the YAML corpus is missing files");
    assert_eq!(probes.len(), 22, "spec §12 item 2 has 22 comment probes");
    let indented = [
        "nested.yaml",
        "compact.yaml",
        "keys.yaml",
        "blocks.yaml",
        "torture.yaml",
        "comments.yaml",
        "k8s.yaml",
    ];
    let work: Vec<(PathBuf, Mode)> = files
        .iter()
        .map(|p| (p.clone(), Mode::Default))
        .chain(probes.iter().map(|p| (p.clone(), Mode::Probe)))
        .chain(unstable.iter().map(|p| (p.clone(), Mode::Unstable)))
        .chain([2, 3, 8].into_iter().flat_map(|w| {
            let root = &root;
            indented
                .iter()
                .map(move |f| (root.join(f), Mode::Indent(w)))
        }))
        .collect();
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::new());
    // sops is a separate process: a few threads keep the whole corpus quick.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some((path, mode)) = work.get(i) else {
                    break;
                };
                let outcome = check_file(&setup, path, *mode);
                results.lock().unwrap().push(outcome);
            });
        }
    });
    let results = results.into_inner().unwrap();
    let plain = results.iter().filter(|o| o.plain_ok == Some(true)).count();
    let encrypted = results.iter().filter(|o| o.encrypted_ok).count();
    let comments = results
        .iter()
        .filter(|o| o.comments_ok == Some(true))
        .count();
    println!(
        "yaml corpus: {} checks ({} files + {} probes + {} unstable + {} at indent 2/3/8): \
         (1) {plain} of {} pass, (2) {encrypted} of {} pass, (3) {comments} of {} probes pass",
        work.len(),
        files.len(),
        probes.len(),
        unstable.len(),
        3 * indented.len(),
        work.len() - unstable.len(),
        work.len(),
        probes.len()
    );
    let failures: Vec<String> = results.into_iter().flat_map(|o| o.failures).collect();
    assert!(
        failures.is_empty(),
        "{} divergences from sops:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_eq!(
        (plain, encrypted, comments),
        (work.len() - unstable.len(), work.len(), probes.len())
    );
}

fn parse(text: &str) -> Result<Vec<sopsync::core::tree::Mapping>, FormatError> {
    codec(Format::Yaml, &FormatOptions::default()).parse_plain(text.as_bytes())
}

#[test]
fn yaml_errors_are_the_exact_format_error_variants() {
    // spec §1.6: uint64 values, non-string keys, duplicates, top-level sequences, no documents.
    assert!(matches!(
        parse("a: 18446744073709551615\n"),
        Err(FormatError::Uint64Value { line: 1 })
    ));
    assert!(matches!(
        parse("a: 1\nb: 9223372036854775808\n"),
        Err(FormatError::Uint64Value { line: 2 })
    ));
    for key in ["123", "true", "null", "1.5", "2001-12-14"] {
        let r = parse(&format!("ok: 1\n{key}: v\n"));
        assert!(
            matches!(r, Err(FormatError::NonStringKey { line: 2, .. })),
            "{key}: {r:?}"
        );
    }
    assert!(matches!(
        parse("a: 1\na: 2\n"),
        Err(FormatError::Parse { line: Some(2), .. })
    ));
    let r = parse("a:\n    d: 1\n    d: 2\n");
    assert!(
        matches!(r, Err(FormatError::Parse { line: Some(3), .. })),
        "{r:?}"
    );
    // Only the first document is checked, as in sops (tests/data/yaml/dup_later_docs.yaml).
    assert!(parse("a: 1\n---\nb: 1\nb: 2\n").is_ok());
    assert!(matches!(
        parse("- a\n- b\n"),
        Err(FormatError::Parse { .. })
    ));
    assert!(matches!(
        parse("a: [1, 2\n"),
        Err(FormatError::Parse { .. })
    ));
    assert!(matches!(
        parse("a: *nope\n"),
        Err(FormatError::Parse { .. })
    ));
    // go-yaml is a YAML 1.1 reader: a 1.2 directive and the 1.2-only escape `\/` are
    // refused by sops (exit 2).
    let r = parse("%YAML 1.2\n---\na: 1\n");
    assert!(matches!(r, Err(FormatError::Parse { .. })), "{r:?}");
    let r = parse("a: \"x\\/y\"\n");
    assert!(
        matches!(r, Err(FormatError::Parse { line: Some(1), .. })),
        "{r:?}"
    );
    assert!(parse("%YAML 1.1\n---\na: 1\n").is_ok());
    // ...and go-yaml's `\'` escape is read (the 1.2 parser alone would refuse it).
    let docs = parse("a: \"x\\'y\\'z\"\nb: 'it''s \\'\nc: \"\\\\'\"\nd: \"q\\'\"\n").unwrap();
    let text = |k: &str| docs[0].get(k).and_then(|v| v.as_str()).map(str::to_owned);
    assert_eq!(text("a").as_deref(), Some("x'y'z"));
    assert_eq!(text("b").as_deref(), Some("it's \\"));
    assert_eq!(text("c").as_deref(), Some("\\'"));
    assert_eq!(text("d").as_deref(), Some("q'"));
    assert!(
        parse("a: \"x\\\\/y\"\n").is_ok(),
        "an escaped backslash before / is fine"
    );
    // A collection as a key: sops cannot unmarshal it into a string key (exit 2).
    for complex in ["? [a, b]\n: x\n", "? {a: 1}\n: x\n"] {
        let r = parse(complex);
        assert!(
            matches!(r, Err(FormatError::Parse { .. })),
            "{complex:?}: {r:?}"
        );
    }
    // An empty file is exit 92 in sops; whitespace or comments only is exit 2.
    assert!(matches!(parse(""), Err(FormatError::NoDocuments)));
    for only in ["# only a comment\n", "   \n", "\n", "#c\n\n#d\n", "...\n"] {
        let r = parse(only);
        assert!(
            matches!(r, Err(FormatError::Parse { .. })),
            "{only:?}: {r:?}"
        );
    }
    // A document marker with comments is a document: the comments, then `{}`.
    let yaml = codec(Format::Yaml, &FormatOptions::default());
    for (input, out) in [
        ("--- # c\n", "# c\n{}\n"),
        ("---\n# c\n", "# c\n{}\n"),
        ("---\n---\n", "{}\n---\n{}\n"),
        ("---\n...\n", "{}\n"),
        ("~\n", "{}\n"),
        ("\u{feff}a: 1\n", "a: 1\n"),
    ] {
        let docs = yaml.parse_plain(input.as_bytes()).unwrap();
        assert_eq!(show(&yaml.emit_plain(&docs).unwrap()), out, "{input:?}");
    }
    // An empty document is an empty mapping.
    let docs = parse("---\n").unwrap();
    assert_eq!(docs.len(), 1);
    assert!(docs[0].entries.is_empty());
    // Quoted keys that look like other types are fine.
    assert!(parse("\"123\": v\n'true': w\n").is_ok());
}

#[test]
fn yaml_bombs_and_deep_nesting_hit_a_named_limit() {
    // Billion laughs: 10 levels of 10 aliases each = 10^10 nodes once expanded.
    let mut bomb = String::from("a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]\n");
    for i in 1..10 {
        let p = i - 1;
        bomb.push_str(&format!(
            "a{i}: &a{i} [*a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}, *a{p}]\n"
        ));
    }
    match parse(&bomb) {
        Err(FormatError::Limit { reason, .. }) => assert!(reason.contains("alias"), "{reason}"),
        other => panic!("the bomb was not refused: {other:?}"),
    }
    // Deep nesting, flow and block.
    let deep = format!("a: {}{}\n", "[".repeat(10_000), "]".repeat(10_000));
    match parse(&deep) {
        Err(FormatError::Limit { reason, .. }) => assert!(reason.contains("nesting"), "{reason}"),
        other => panic!("deep flow nesting was not refused: {other:?}"),
    }
    let mut block = String::new();
    for i in 0..300 {
        block.push_str(&" ".repeat(i));
        block.push_str("k:\n");
    }
    match parse(&block) {
        Err(FormatError::Limit { reason, .. }) => assert!(reason.contains("nesting"), "{reason}"),
        other => panic!("deep block nesting was not refused: {other:?}"),
    }
    // Many cheap aliases hit the alias count, not the node count.
    let many = format!("a: &s x\nl: [{}]\n", vec!["*s"; 100_001].join(", "));
    match parse(&many) {
        Err(FormatError::Limit { reason, .. }) => {
            assert!(reason.contains("100000 aliases"), "{reason}")
        }
        other => panic!("100,001 aliases were not refused: {other:?}"),
    }
    // Below the limits, aliases expand by copy.
    let docs = parse("a: &x {k: v}\nb: *x\n").unwrap();
    assert_eq!(docs[0].get("a"), docs[0].get("b"));
}

#[test]
fn yaml_extract_of_every_value_kind_matches_sops() {
    // spec §7.6: a string is written raw by the caller; a mapping as a document; the rest
    // through the codec's single-value emitter.
    let tmp = tempdir();
    let (key, recipient) = age_keypair(tmp.path(), "k");
    let input = crate::support::project_root().join("tests/data/yaml/extract.yaml");
    let enc = run_ok(sops().args(["encrypt", "--age", &recipient]).arg(&input));
    let enc_path = tmp.path().join("extract.enc.yaml");
    std::fs::write(&enc_path, &enc).unwrap();
    let yaml = codec(Format::Yaml, &FormatOptions::default());
    let docs = yaml.parse_plain(&std::fs::read(&input).unwrap()).unwrap();
    let mut checked = 0;
    for entry in &docs[0].entries {
        let sopsync::core::tree::MapEntry::Pair { key: name, value } = entry else {
            continue;
        };
        let theirs = run_ok(
            sops()
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(["decrypt", "--extract", &format!("[\"{name}\"]")])
                .arg(&enc_path),
        );
        let ours = match value {
            sopsync::core::tree::Value::Str(t) => t.expose_secret().to_vec(),
            other => yaml.emit_value(other).unwrap(),
        };
        assert_eq!(show(&ours), show(&theirs), "--extract [\"{name}\"]");
        checked += 1;
    }
    // Deeper paths: mappings inside a list whose first item is a comment.
    let listmaps = docs[0].get("listmaps").unwrap();
    let sopsync::core::tree::Value::Seq(items) = listmaps else {
        panic!("listmaps is a list")
    };
    let values: Vec<_> = items
        .items
        .iter()
        .filter_map(|e| match e {
            sopsync::core::tree::SeqEntry::Value(v) => Some(v),
            _ => None,
        })
        .collect();
    // sops indexes a list's raw items, comments included (its [0] here is the comment,
    // printed as `value: ' lead comment'`), so the maps are its [1] and [2].
    for (path, value) in [
        ("[\"listmaps\"][1]", values[0]),
        ("[\"listmaps\"][2]", values[1]),
    ] {
        let theirs = run_ok(
            sops()
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(["decrypt", "--extract", path])
                .arg(&enc_path),
        );
        assert_eq!(
            show(&yaml.emit_value(value).unwrap()),
            show(&theirs),
            "{path}"
        );
        checked += 1;
    }
    assert_eq!(checked, 19);
}
