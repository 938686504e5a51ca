//! One fuzz target for every parser sopsync runs on untrusted bytes (issue 16).
//!
//! One binary keeps the fuzz build to a single link on 2 CPU cores. Which parser an
//! input goes to:
//! - with `SOPSYNC_FUZZ_PARSER=<name>` set (what scripts/fuzz does, one run per
//!   parser), the whole input goes to that parser, so the executions of a run are all
//!   its own and its corpus (`fuzz/corpus/<name>/`) holds the files as they are;
//! - without it, the first byte picks the parser (`PARSERS[byte % len]`) and the rest
//!   is its input, so a crash file found by any run reproduces with a plain
//!   `cargo fuzz run parsers FILE` once that byte is put in front.
//!
//! Each parser is driven the way the product drives it, past the parse where the
//! product goes further (an encrypted file is also unwrapped and decrypted with the
//! test keys, so the seeds that really decrypt lead the fuzzer into the MAC and value
//! checks). Only panics, aborts, hangs and runaway memory are findings: an `Err` is
//! the parser doing its job.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sopsync::core::cipher;
use sopsync::core::creation_rules::SopsConfig;
use sopsync::core::formats::{codec, wire, Format, FormatOptions};
use sopsync::core::keys::age::AgeIdentities;
use sopsync::core::secret::DataKey;
use sopsync::core::tree::Value;
use sopsync::core::{self as core_ops, DecryptOptions};
use sopsync::repo::render::{render_files, RenderOptions};
use std::collections::BTreeMap;
use std::sync::OnceLock;

/// The parsers, by the name their corpus directory and scripts/fuzz use. The order
/// is the first-byte dispatch: append, never reorder (saved crash files name a parser
/// by its index).
const PARSERS: &[(&str, fn(&[u8]))] = &[
    ("envelope", envelope),
    ("yaml", |d| format(Format::Yaml, d)),
    ("json", |d| format(Format::Json, d)),
    ("dotenv", |d| format(Format::Dotenv, d)),
    ("ini", |d| format(Format::Ini, d)),
    ("metadata", metadata),
    ("sops_yaml", sops_yaml),
    ("sopsync_yaml", sopsync_yaml),
    ("webhook", webhook),
];

/// The test identities: tests/data's vectors are encrypted to age1.agekey, the
/// examples to keys-example/age.key. Both are public test keys.
fn identities() -> &'static AgeIdentities {
    static IDS: OnceLock<AgeIdentities> = OnceLock::new();
    IDS.get_or_init(|| {
        let mut ids = AgeIdentities::new();
        ids.add_source(
            include_str!("../../tests/data/age1.agekey"),
            "tests/data/age1.agekey",
        );
        ids.add_source(
            include_str!("../../keys-example/age.key"),
            "keys-example/age.key",
        );
        ids
    })
}

/// The data key of tests/data/basic.enc.json, so that the envelope seeds taken from
/// that file decrypt and the fuzzer mutates values that really open.
fn vector_data_key() -> &'static DataKey {
    static KEY: OnceLock<DataKey> = OnceLock::new();
    KEY.get_or_init(|| {
        let file = core_ops::parse_encrypted(
            include_bytes!("../../tests/data/basic.enc.json"),
            Format::Json,
            &FormatOptions::default(),
        )
        .expect("tests/data/basic.enc.json parses");
        core_ops::unwrap_data_key(&file.metadata, identities())
            .expect("tests/data/age1.agekey opens tests/data/basic.enc.json")
    })
}

/// The `ENC[...]` envelope: the input is `<aad>\n<envelope>`; the AAD is the value's
/// key path as sops writes it (`data:password:`).
fn envelope(data: &[u8]) {
    let (aad, text) = match data.iter().position(|&b| b == b'\n') {
        Some(i) => (&data[..i], &data[i + 1..]),
        None => (&b""[..], data),
    };
    let _ = cipher::is_envelope(text);
    let _ = cipher::open(vector_data_key(), text, aad);
}

/// One format's plaintext and encrypted parsers, each followed by what the product does
/// with a successful parse: write it back, or unwrap the key, decrypt and re-emit.
fn format(format: Format, data: &[u8]) {
    let opts = FormatOptions::default();
    let c = codec(format, &opts);
    if let Ok(docs) = c.parse_plain(data) {
        let _ = c.emit_plain(&docs);
    }
    let Ok(file) = core_ops::parse_encrypted_with(c.as_ref(), format, data) else {
        return;
    };
    let _ = core_ops::emit_encrypted_with(c.as_ref(), &file);
    let Ok(key) = core_ops::unwrap_data_key(&file.metadata, identities()) else {
        return;
    };
    if let Ok(plain) = core_ops::decrypt(&file, &key, &DecryptOptions::default()) {
        let _ = c.emit_plain(&plain.documents);
    }
}

/// The `sops` metadata block, read from YAML as a file's trailer or on its own, then
/// written back, its recipients listed and its data key unwrapped (the age stanza
/// parser in core/keys/age_file.rs).
fn metadata(data: &[u8]) {
    let Ok(docs) = codec(Format::Yaml, &FormatOptions::default()).parse_plain(data) else {
        return;
    };
    for doc in &docs {
        let block = match doc.get("sops") {
            Some(Value::Map(m)) => m,
            _ => doc,
        };
        for format in [Format::Yaml, Format::Json, Format::Dotenv] {
            if let Ok(md) = wire::metadata_from_mapping(block, format) {
                let _ = wire::metadata_to_mapping(&md, format);
                let _ = core_ops::recipients_of(&md);
                let _ = core_ops::unwrap_data_key(&md, identities());
            }
        }
    }
}

/// `.sops.yaml`: read as the CLI reads it (its first YAML document), then matched
/// against a few paths as `encrypt` does.
fn sops_yaml(data: &[u8]) {
    let Ok(docs) = codec(Format::Yaml, &FormatOptions::default()).parse_plain(data) else {
        return;
    };
    let Some(first) = docs.first() else { return };
    if let Ok(cfg) = SopsConfig::from_document(first) {
        for path in ["secret.yaml", "apps/web/secret.enc.yaml", "a/b.env", ""] {
            let _ = cfg.rule_for(path);
        }
    }
}

/// `sopsync.yaml`: the input is the generator of examples/gitops/apps/payments, whose
/// encrypted files (to keys-example/age.key) it may reference; rendered in memory as
/// the controller renders a checkout.
fn sopsync_yaml(data: &[u8]) {
    static FILES: OnceLock<BTreeMap<String, Vec<u8>>> = OnceLock::new();
    let base = FILES.get_or_init(|| {
        let mut files = BTreeMap::new();
        for (name, bytes) in [
            (
                "apps/payments/app.env",
                &include_bytes!("../../examples/gitops/apps/payments/app.env")[..],
            ),
            (
                "apps/payments/config.json",
                include_bytes!("../../examples/gitops/apps/payments/config.json"),
            ),
            (
                "apps/payments/ca.crt",
                include_bytes!("../../examples/gitops/apps/payments/ca.crt"),
            ),
            (
                "apps/web/secret.yaml",
                include_bytes!("../../examples/gitops/apps/web/secret.yaml"),
            ),
        ] {
            files.insert(name.to_string(), bytes.to_vec());
        }
        files
    });
    let mut files = base.clone();
    files.insert("apps/payments/sopsync.yaml".into(), data.to_vec());
    let opts = RenderOptions {
        source: "fuzz".into(),
        revision: "local".into(),
        default_namespace: "default".into(),
    };
    let _ = render_files(&files, identities(), &opts);
}

/// The push webhook's payload, after its signature checked out: JSON, the repository
/// URLs it names, each reduced for comparison (src/server/routes.rs).
fn webhook(data: &[u8]) {
    let Ok(payload) = serde_json::from_slice::<serde_json::Value>(data) else {
        return;
    };
    for url in sopsync::server::routes::repository_urls(&payload) {
        let _ = sopsync::server::routes::normalize_repo_url(&url);
    }
}

/// The parser named by `SOPSYNC_FUZZ_PARSER`, read once; `None` when unset.
fn chosen() -> Option<fn(&[u8])> {
    static CHOSEN: OnceLock<Option<fn(&[u8])>> = OnceLock::new();
    *CHOSEN.get_or_init(|| {
        let name = std::env::var("SOPSYNC_FUZZ_PARSER").ok()?;
        let found = PARSERS.iter().find(|(n, _)| *n == name).map(|(_, f)| *f);
        // A typo would otherwise fuzz nothing for the whole run and report it as clean.
        assert!(
            found.is_some(),
            "SOPSYNC_FUZZ_PARSER={name} is not one of {:?}",
            PARSERS.iter().map(|(n, _)| *n).collect::<Vec<_>>()
        );
        found
    })
}

fuzz_target!(|data: &[u8]| {
    match chosen() {
        Some(parse) => parse(data),
        None => {
            let Some((&first, rest)) = data.split_first() else {
                return;
            };
            (PARSERS[usize::from(first) % PARSERS.len()].1)(rest);
        }
    }
});
