//! The JSON, dotenv, INI and binary codecs against the real sops 3.11 (spec §1.6, §6.3,
//! §6.4, §7.2–7.5). For every input of `tests/data/formats/<format>/` (plus generated
//! binary inputs) sops encrypts the file with a fresh age key, and:
//! (1) our `emit_plain(parse_plain(input))` equals what `sops decrypt` prints, byte for byte;
//! (2) our `emit_encrypted(parse_encrypted(sops' file))` equals sops' encrypted file byte for
//!     byte (INI: the `[sops]` section's lines are sorted on both sides first, because sops
//!     writes that section in Go map order, which is random from run to run, spec §6.3),
//!     our full decryption of sops' file equals `sops decrypt`, and sops decrypts our own
//!     encryption of the input to the same bytes;
//! (3) conversions: `sops decrypt --output-type json|dotenv|yaml|ini` of every file (and
//!     of the YAML corpus `tests/data/yaml/`) equals our decryption emitted by that codec,
//!     or both fail with the same exit code.
//! Then the JSON indent options, flattening edge cases and the exact `FormatError` variants.

use crate::support::{age_keypair, run, run_ok, sops, tempdir};
use sopsync::core::formats::{codec, flatten, Codec, Format, FormatError, FormatOptions};
use sopsync::core::keys::age::AgeIdentities;
use sopsync::core::keys::{AgeRecipient, Recipient};
use sopsync::core::metadata::SelectionRule;
use sopsync::core::tree::{Mapping, Value};
use sopsync::core::{CryptoEnv, EncryptConfig};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The bytes as text for a failure message, cut to a readable length.
fn show(bytes: &[u8]) -> String {
    let text = String::from_utf8_lossy(bytes);
    match text.char_indices().nth(1500) {
        Some((i, _)) => format!("{}... ({} bytes in all)", &text[..i], bytes.len()),
        None => text.into_owned(),
    }
}

fn ext(format: Format) -> &'static str {
    match format {
        Format::Json => "json",
        Format::Dotenv => "env",
        Format::Ini => "ini",
        Format::Yaml => "yaml",
        Format::Binary => "bin",
    }
}

/// sops writes the `[sops]` section of an INI file in random order (spec §6.3): sort the
/// lines of that last section so two files with the same content compare equal. The key
/// padding does not depend on the order, so nothing else changes.
fn normalize_ini(bytes: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(bytes);
    let Some(pos) = text.rfind("[sops]\n") else {
        return bytes.to_vec();
    };
    let (head, tail) = text.split_at(pos + "[sops]\n".len());
    let mut lines: Vec<&str> = tail.lines().collect();
    lines.sort_unstable();
    let mut out = head.to_string();
    for l in lines {
        out.push_str(l);
        out.push('\n');
    }
    out.into_bytes()
}

struct Setup {
    key: PathBuf,
    recipient: String,
    ids: AgeIdentities,
    dir: PathBuf,
}

/// One corpus input.
struct Case {
    name: String,
    format: Format,
    input: Vec<u8>,
    /// A `.sops.yaml` (stores options) and the matching options for our codec.
    config: Option<PathBuf>,
    opts: FormatOptions,
}

#[derive(Default)]
struct Outcome {
    format: Option<Format>,
    plain_ok: bool,
    encrypted_ok: bool,
    conversions: usize,
    conversions_ok: usize,
    failures: Vec<String>,
}

fn ours_decrypt(
    codec: &dyn Codec,
    format: Format,
    enc: &[u8],
    ids: &AgeIdentities,
) -> Result<Vec<Mapping>, sopsync::core::error::CoreError> {
    let f = sopsync::core::parse_encrypted_with(codec, format, enc)?;
    let k = sopsync::core::unwrap_data_key(&f.metadata, ids)?;
    Ok(sopsync::core::decrypt(&f, &k, &Default::default())?.documents)
}

fn our_encryption(
    codec: &dyn Codec,
    format: Format,
    input: &[u8],
    recipient: &str,
) -> Result<Vec<u8>, String> {
    let recipient = Recipient::Age(AgeRecipient::parse(recipient).unwrap());
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: sopsync::core::tree::Timestamp::parse_rfc3339("2026-11-24T15:00:00Z").unwrap(),
    };
    let docs = codec.parse_plain(input).map_err(|e| e.to_string())?;
    let file = sopsync::core::encrypt(
        docs,
        format,
        &EncryptConfig {
            key_groups: vec![vec![recipient]],
            shamir_threshold: None,
            rule: SelectionRule::default(),
            mac_only_encrypted: false,
        },
        &mut env,
    )
    .map_err(|e| e.to_string())?;
    sopsync::core::emit_encrypted_with(codec, &file).map_err(|e| e.to_string())
}

fn check(setup: &Setup, case: &Case) -> Outcome {
    let mut out = Outcome {
        format: Some(case.format),
        ..Outcome::default()
    };
    let name = &case.name;
    let stem = name.replace(['/', ' ', '(', ')'], "_");
    let e = ext(case.format);
    let input_path = setup.dir.join(format!("{stem}.{e}"));
    std::fs::write(&input_path, &case.input).unwrap();
    let config: Vec<std::ffi::OsString> = match &case.config {
        Some(c) => vec!["--config".into(), c.into()],
        None => vec![],
    };
    let ours = codec(case.format, &case.opts);
    let enc = run_ok(
        sops()
            .args(&config)
            .args(["encrypt", "--age", &setup.recipient])
            .arg(&input_path),
    );
    let enc_path = setup.dir.join(format!("{stem}.enc.{e}"));
    std::fs::write(&enc_path, &enc).unwrap();
    let decrypt = |path: &Path, out_type: Option<&str>| {
        let mut c = sops();
        c.env("SOPS_AGE_KEY_FILE", &setup.key)
            .args(&config)
            .arg("decrypt");
        if let Some(t) = out_type {
            c.args(["--output-type", t]);
        }
        run(c.arg(path))
    };
    let expected = run_ok(
        sops()
            .env("SOPS_AGE_KEY_FILE", &setup.key)
            .args(&config)
            .arg("decrypt")
            .arg(&enc_path),
    );

    // (1) plaintext round trip.
    match ours
        .parse_plain(&case.input)
        .and_then(|d| ours.emit_plain(&d))
    {
        Ok(bytes) if bytes == expected => out.plain_ok = true,
        Ok(bytes) => out.failures.push(format!(
            "{name}: (1) parse+emit differs from sops decrypt\n--- sops\n{}\n--- ours\n{}",
            show(&expected),
            show(&bytes)
        )),
        Err(e) => out.failures.push(format!("{name}: (1) parse failed: {e}")),
    }

    // (2) encrypted round trip, our decryption of sops' file, sops' decryption of ours.
    let norm = |b: &[u8]| {
        if case.format == Format::Ini {
            normalize_ini(b)
        } else {
            b.to_vec()
        }
    };
    let mut ok2 = true;
    match ours
        .parse_encrypted(&enc)
        .map_err(|e| e.to_string())
        .and_then(|(docs, meta)| {
            let meta = meta.ok_or("no metadata found in sops' file")?;
            ours.emit_encrypted(&docs, &meta).map_err(|e| e.to_string())
        }) {
        Ok(bytes) if norm(&bytes) == norm(&enc) => {}
        Ok(bytes) => {
            ok2 = false;
            out.failures.push(format!(
                "{name}: (2) encrypted re-emit differs\n--- sops\n{}\n--- ours\n{}",
                show(&norm(&enc)),
                show(&norm(&bytes))
            ));
        }
        Err(e) => {
            ok2 = false;
            out.failures
                .push(format!("{name}: (2) parse_encrypted failed: {e}"));
        }
    }
    let our_docs = ours_decrypt(ours.as_ref(), case.format, &enc, &setup.ids);
    match our_docs
        .as_ref()
        .map_err(|e| e.to_string())
        .and_then(|d| ours.emit_plain(d).map_err(|e| e.to_string()))
    {
        Ok(bytes) if bytes == expected => {}
        Ok(bytes) => {
            ok2 = false;
            out.failures.push(format!(
                "{name}: (2) our decryption differs from sops decrypt\n--- sops\n{}\n--- ours\n{}",
                show(&expected),
                show(&bytes)
            ));
        }
        Err(e) => {
            ok2 = false;
            out.failures
                .push(format!("{name}: (2) our decryption failed: {e}"));
        }
    }
    match our_encryption(ours.as_ref(), case.format, &case.input, &setup.recipient) {
        Ok(bytes) => {
            let path = setup.dir.join(format!("{stem}.ours.enc.{e}"));
            std::fs::write(&path, &bytes).unwrap();
            let theirs = decrypt(&path, None);
            if !theirs.status.success() || theirs.stdout != expected {
                ok2 = false;
                out.failures.push(format!(
                    "{name}: (2) sops decrypt of our encryption: {}\n--- expected\n{}\n--- sops printed\n{}",
                    show(&theirs.stderr),
                    show(&expected),
                    show(&theirs.stdout)
                ));
            }
        }
        Err(e) => {
            ok2 = false;
            out.failures
                .push(format!("{name}: (2) our encryption failed: {e}"));
        }
    }
    out.encrypted_ok = ok2;

    // (3) conversions to the other text formats.
    if let Ok(docs) = &our_docs {
        for target in [Format::Json, Format::Dotenv, Format::Yaml, Format::Ini] {
            if target == case.format {
                continue;
            }
            out.conversions += 1;
            if convert(
                setup,
                &config,
                &case.opts,
                name,
                &enc_path,
                docs,
                target,
                &mut out.failures,
            ) {
                out.conversions_ok += 1;
            }
        }
    }
    out
}

/// `sops decrypt --output-type <target>` against our codec for `target` on our decryption:
/// same bytes, or the same exit code when sops refuses.
#[allow(clippy::too_many_arguments)]
fn convert(
    setup: &Setup,
    config: &[std::ffi::OsString],
    opts: &FormatOptions,
    name: &str,
    enc_path: &Path,
    docs: &[Mapping],
    target: Format,
    failures: &mut Vec<String>,
) -> bool {
    let theirs = run(sops()
        .env("SOPS_AGE_KEY_FILE", &setup.key)
        .args(config)
        .args(["decrypt", "--output-type", target.name()])
        .arg(enc_path));
    let ours = codec(target, opts).emit_plain(docs);
    let code = theirs.status.code().unwrap_or(-1);
    match ours {
        Ok(bytes) if code == 0 && bytes == theirs.stdout => true,
        Err(e)
            if code != 0
                && sopsync::core::error::CoreError::from(e.clone()).exit_code() == code =>
        {
            true
        }
        Ok(bytes) => {
            failures.push(format!(
                "{name}: (3) -> {}: sops exit {code} {}\n--- sops\n{}\n--- ours\n{}",
                target.name(),
                show(&theirs.stderr),
                show(&theirs.stdout),
                show(&bytes)
            ));
            false
        }
        Err(e) => {
            failures.push(format!(
                "{name}: (3) -> {}: sops exit {code}, ours: {e} (exit {})\n--- sops\n{}",
                target.name(),
                sopsync::core::error::CoreError::from(e.clone()).exit_code(),
                show(&theirs.stdout)
            ));
            false
        }
    }
}

fn corpus(format: Format, dir: &str) -> Vec<Case> {
    let root = crate::support::project_root()
        .join("tests/data/formats")
        .join(dir);
    let mut files: Vec<_> = std::fs::read_dir(&root)
        .unwrap_or_else(|e| panic!("{}: {e}", root.display()))
        .map(|e| e.expect("entry").path())
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|p| Case {
            name: format!("{dir}/{}", p.file_name().unwrap().to_string_lossy()),
            format,
            input: std::fs::read(&p).unwrap(),
            config: None,
            opts: FormatOptions::default(),
        })
        .collect()
}

/// Deterministic pseudo-random bytes (a 64-bit LCG): every byte value occurs.
fn noise(len: usize, mut seed: u64) -> Vec<u8> {
    (0..len)
        .map(|_| {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as u8
        })
        .collect()
}

fn binary_cases() -> Vec<Case> {
    let mut all_bytes: Vec<u8> = (0..=255u8).collect();
    all_bytes.extend(noise(4096, 7));
    [
        ("random_4k", all_bytes),
        (
            "crlf_text",
            b"line one\r\nline two\r\n\r\nlast\r\n".to_vec(),
        ),
        ("empty", Vec::new()),
        ("no_trailing_newline", b"no newline at the end".to_vec()),
        ("invalid_utf8", b"caf\xe9 \xc0\xaf \xff\xfe\n".to_vec()),
        ("nul_bytes", b"\0\0a\0b\n\0".to_vec()),
        (
            "pem",
            b"-----BEGIN CERTIFICATE-----\nMIIB<&>\n-----END CERTIFICATE-----\n".to_vec(),
        ),
        ("json_looking", b"{\"data\": \"not json store\"}\n".to_vec()),
    ]
    .into_iter()
    .map(|(n, input)| Case {
        name: format!("binary/{n}"),
        format: Format::Binary,
        input,
        config: None,
        opts: FormatOptions::default(),
    })
    .collect()
}

fn run_cases(setup: &Setup, cases: &[Case]) -> Vec<Outcome> {
    let next = Mutex::new(0usize);
    let results = Mutex::new(Vec::new());
    // sops is a separate process: a few threads keep the corpus quick.
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(case) = cases.get(i) else { break };
                let outcome = check(setup, case);
                results.lock().unwrap().push(outcome);
            });
        }
    });
    results.into_inner().unwrap()
}

fn setup(dir: &Path) -> Setup {
    let (key, recipient) = age_keypair(dir, "k");
    let mut ids = AgeIdentities::new();
    ids.add_source(&std::fs::read_to_string(&key).unwrap(), "test key");
    Setup {
        key,
        recipient,
        ids,
        dir: dir.to_path_buf(),
    }
}

#[test]
fn json_dotenv_ini_binary_codecs_match_real_sops_byte_for_byte_on_the_corpus() {
    let tmp = tempdir();
    let setup = setup(tmp.path());
    let mut cases = Vec::new();
    cases.extend(corpus(Format::Json, "json"));
    cases.extend(corpus(Format::Dotenv, "dotenv"));
    cases.extend(corpus(Format::Ini, "ini"));
    cases.extend(binary_cases());
    // JSON and binary with `stores.json.indent` / `stores.json_binary.indent` (spec §7.2).
    for (label, opt) in [("2", Some(2usize)), ("0", Some(0)), ("-1", None)] {
        let cfg = tmp.path().join(format!("indent{label}.sops.yaml"));
        std::fs::write(
            &cfg,
            format!("stores:\n  json:\n    indent: {label}\n  json_binary:\n    indent: {label}\n"),
        )
        .unwrap();
        let opts = FormatOptions {
            json_indent: opt,
            json_binary_indent: opt,
            ..FormatOptions::default()
        };
        for f in ["nested.json", "empty_containers.json", "numbers.json"] {
            let input = std::fs::read(
                crate::support::project_root()
                    .join("tests/data/formats/json")
                    .join(f),
            )
            .unwrap();
            cases.push(Case {
                name: format!("json/{f} (indent {label})"),
                format: Format::Json,
                input,
                config: Some(cfg.clone()),
                opts,
            });
        }
        cases.push(Case {
            name: format!("binary/crlf_text (indent {label})"),
            format: Format::Binary,
            input: b"a\r\nb\r\n".to_vec(),
            config: Some(cfg.clone()),
            opts,
        });
    }
    let results = run_cases(&setup, &cases);
    let mut summary = Vec::new();
    for f in [Format::Json, Format::Dotenv, Format::Ini, Format::Binary] {
        let rs: Vec<&Outcome> = results.iter().filter(|o| o.format == Some(f)).collect();
        summary.push(format!(
            "{}: {} inputs, (1) {} pass, (2) {} pass, (3) {} of {} conversions pass",
            f.name(),
            rs.len(),
            rs.iter().filter(|o| o.plain_ok).count(),
            rs.iter().filter(|o| o.encrypted_ok).count(),
            rs.iter().map(|o| o.conversions_ok).sum::<usize>(),
            rs.iter().map(|o| o.conversions).sum::<usize>(),
        ));
    }
    println!("formats corpus vs sops 3.11:\n  {}", summary.join("\n  "));
    let failures: Vec<String> = results.into_iter().flat_map(|o| o.failures).collect();
    assert!(
        failures.is_empty(),
        "{} divergences from sops:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
}

#[test]
fn yaml_corpus_converts_to_json_dotenv_and_ini_like_sops() {
    let tmp = tempdir();
    let setup = setup(tmp.path());
    let root = crate::support::project_root().join("tests/data/yaml");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&root)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 14, "the YAML corpus is missing files");
    let yaml = codec(Format::Yaml, &FormatOptions::default());
    let next = Mutex::new(0usize);
    let results = Mutex::new((0usize, 0usize, Vec::new()));
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| loop {
                let i = {
                    let mut n = next.lock().unwrap();
                    *n += 1;
                    *n - 1
                };
                let Some(path) = files.get(i) else { break };
                let name = format!("yaml/{}", path.file_name().unwrap().to_string_lossy());
                let enc = run_ok(
                    sops()
                        .args(["encrypt", "--age", &setup.recipient])
                        .arg(path),
                );
                let enc_path = tmp.path().join(format!("conv-{i}.enc.yaml"));
                std::fs::write(&enc_path, &enc).unwrap();
                let mut failures = Vec::new();
                let mut ok = 0;
                let docs = ours_decrypt(yaml.as_ref(), Format::Yaml, &enc, &setup.ids)
                    .unwrap_or_else(|e| panic!("{name}: our decryption failed: {e}"));
                for target in [Format::Json, Format::Dotenv, Format::Ini] {
                    if convert(
                        &setup,
                        &[],
                        &FormatOptions::default(),
                        &name,
                        &enc_path,
                        &docs,
                        target,
                        &mut failures,
                    ) {
                        ok += 1;
                    }
                }
                let mut r = results.lock().unwrap();
                r.0 += 3;
                r.1 += ok;
                r.2.extend(failures);
            });
        }
    });
    let (total, ok, failures) = results.into_inner().unwrap();
    println!(
        "yaml corpus conversions vs sops 3.11: {ok} of {total} pass ({} files x json, dotenv, ini)",
        files.len()
    );
    assert!(
        failures.is_empty(),
        "{} divergences from sops:\n{}",
        failures.len(),
        failures.join("\n\n")
    );
    assert_eq!(ok, total);
}

/// Our parse error and sops' exit status on the same input: sops must refuse it with
/// the exit code our error maps to (spec §9.5).
fn refused_like_sops(setup: &Setup, format: Format, input: &[u8], n: usize) -> FormatError {
    let err = codec(format, &FormatOptions::default())
        .parse_plain(input)
        .expect_err(&format!(
            "{} input {n} must be refused: {}",
            format.name(),
            show(input)
        ));
    let path = setup.dir.join(format!("bad{n}.{}", ext(format)));
    std::fs::write(&path, input).unwrap();
    let out = run(sops()
        .args(["encrypt", "--age", &setup.recipient])
        .arg(&path));
    let ours = sopsync::core::error::CoreError::from(err.clone()).exit_code();
    assert_eq!(
        out.status.code(),
        Some(ours),
        "{} input {n} ({}): sops says {}, ours is {err}",
        format.name(),
        show(input),
        show(&out.stderr)
    );
    err
}

#[test]
fn bad_json_dotenv_and_ini_input_gives_the_exact_format_error_and_sops_exit_code() {
    let tmp = tempdir();
    let setup = setup(tmp.path());
    let parse_at = |e: &FormatError| match e {
        FormatError::Parse { line, .. } => *line,
        other => panic!("expected FormatError::Parse, got {other:?}"),
    };
    // JSON (spec §1.6): the top level must be an object; Go's scanner errors.
    let json: [(&[u8], Option<usize>); 12] = [
        (b"[1]\n", Some(1)),
        (b"", Some(1)),
        (b"\"s\"", Some(1)),
        (b"{\"a\": 1,}", Some(1)),
        (b"{\n\"a\": \"\\x\"\n}", Some(2)),
        (b"{\"a\":\n\n\"b\\u12\"}", Some(3)),
        (b"{\"a\": 01}", Some(1)),
        (b"{\"a\": \"unterminated", Some(1)),
        (b"{\"a\": \"raw\ttab\"}", Some(1)),
        (b"{'a': 1}", Some(1)),
        (b"{\"a\": 1e400}", Some(1)),
        (b"{\"a\": tru}", Some(1)),
    ];
    for (n, (input, line)) in json.iter().enumerate() {
        let e = refused_like_sops(&setup, Format::Json, input, n);
        assert_eq!(parse_at(&e), *line, "json input {n}: {e}");
    }
    // dotenv (spec §7.3): a line without `=`.
    let e = refused_like_sops(&setup, Format::Dotenv, b"A=1\n# c\nno equals sign\n", 100);
    assert_eq!(parse_at(&e), Some(3));
    // INI (spec §7.4): go-ini's errors.
    let ini: [(&[u8], Option<usize>); 5] = [
        (b"[s]\nnovalue\n", Some(2)),
        (b"[s]\n[unclosed\n", Some(2)),
        (b"[s]\n = v\n", Some(2)),
        (b"[s]\n\"unterminated = v\n", Some(2)),
        (b"[s]\na = \"\"\"x\ny\n", Some(2)),
    ];
    for (n, (input, line)) in ini.iter().enumerate() {
        let e = refused_like_sops(&setup, Format::Ini, input, 200 + n);
        assert_eq!(parse_at(&e), *line, "ini input {n}: {e}");
    }
    // Nesting beyond the limit is a named limit, not a stack overflow.
    let deep = format!("{{\"a\": {}1{}}}", "[".repeat(300), "]".repeat(300));
    assert!(matches!(
        codec(Format::Json, &FormatOptions::default()).parse_plain(deep.as_bytes()),
        Err(FormatError::Limit { format: "json", .. })
    ));
    // Writing: NaN/Inf cannot be JSON (exit 4), nested values cannot be dotenv (exit 4),
    // binary has no --extract.
    let mut m = Mapping::new();
    m.push("x", Value::Float(f64::NAN));
    let e = codec(Format::Json, &FormatOptions::default())
        .emit_plain(std::slice::from_ref(&m))
        .unwrap_err();
    assert!(
        matches!(e, FormatError::Emit { format: "json", .. }),
        "{e:?}"
    );
    assert_eq!(sopsync::core::error::CoreError::from(e).exit_code(), 4);
    let mut nested = Mapping::new();
    nested.push("n", Value::Map(m));
    assert!(matches!(
        codec(Format::Dotenv, &FormatOptions::default()).emit_plain(&[nested]),
        Err(FormatError::Emit {
            format: "dotenv",
            ..
        })
    ));
    assert!(matches!(
        codec(Format::Binary, &FormatOptions::default()).emit_value(&Value::str("x")),
        Err(FormatError::Emit {
            format: "binary",
            ..
        })
    ));
}

#[test]
fn metadata_flattening_round_trips_sops_shamir_files_and_reads_float_thresholds() {
    use sopsync::core::formats::wire::metadata_from_mapping;
    // A sops-made dotenv file with three key groups and a threshold (spec §6.4): the
    // metadata comes back as sops wrote it, byte for byte, and reads as 3 groups of 2.
    let file =
        std::fs::read(crate::support::project_root().join("tests/data/shamir.enc.env")).unwrap();
    let env = codec(Format::Dotenv, &FormatOptions::default());
    let (docs, meta) = env.parse_encrypted(&file).unwrap();
    let meta = meta.expect("sops_ lines");
    assert_eq!(env.emit_encrypted(&docs, &meta).unwrap(), file);
    let md = metadata_from_mapping(&meta, Format::Dotenv).unwrap();
    assert_eq!((md.key_groups.len(), md.shamir_threshold), (3, Some(2)));
    // The same metadata flattened: threshold and mac_only as strings, nulls dropped,
    // armor newlines as `\n`, keys sorted bytewise.
    let mut with_null = meta.clone();
    with_null.push("hc_vault", Value::Null);
    with_null.push("mac_only_encrypted", Value::Bool(true));
    let flat = flatten::flatten(&with_null);
    let keys: Vec<&str> = flat.iter().map(|(k, _)| k.as_str()).collect();
    let mut sorted = keys.clone();
    sorted.sort_unstable();
    assert_eq!(keys, sorted);
    assert!(!keys.contains(&"hc_vault"));
    let get = |k: &str| flat.iter().find(|(f, _)| f == k).map(|(_, v)| v.as_str());
    assert_eq!(get("shamir_threshold"), Some("2"));
    assert_eq!(get("mac_only_encrypted"), Some("true"));
    let enc = get("key_groups__list_2__map_age__list_0__map_enc").unwrap();
    assert!(enc.starts_with("-----BEGIN AGE ENCRYPTED FILE-----\\n") && !enc.contains('\n'));
    // Written by sops before 3.11, INI thresholds were floats (`2.000000`): still read.
    let ini = codec(Format::Ini, &FormatOptions::default());
    let mut old = String::from("[s]\nk = v\n\n[sops]\n");
    for (k, v) in &flat {
        let v = if k == "shamir_threshold" {
            "2.000000"
        } else {
            v.as_str()
        };
        old.push_str(&format!("{k} = {v}\n"));
    }
    let (_, meta) = ini.parse_encrypted(old.as_bytes()).unwrap();
    let md = metadata_from_mapping(&meta.unwrap(), Format::Ini).unwrap();
    assert_eq!((md.key_groups.len(), md.shamir_threshold), (3, Some(2)));
    assert!(md.mac_only_encrypted);
}
