//! Safe rotation (issue 12): InPlace restarts, the Versioned strategy and the keyed digests, against the fake
//! API server and a real git daemon. `scripts/test rotation` runs this module.
//!
//! Every test plants the canary (the values of tests/support/cluster.rs's `db` and
//! `api` fixtures) and ends with [`assert_no_plaintext_anywhere`]: no value, nor its
//! bare SHA-256 in hex or base64, in any name, annotation, label, status, Event, metric
//! or log line.

mod digest;
mod docs;
mod gitops;
mod inplace;
mod key_rotation;
mod status;
mod versioned;

use crate::support::cluster::{Cluster, ControllerProcess, CANARY};
use base64::Engine as _;
use serde_json::Value;
use sha2::Digest as _;

/// What a value could leak as: itself, and its bare SHA-256 in hex (whole, and the
/// 10-digit prefix the old versioned names used) and in base64.
fn leak_forms(value: &str) -> Vec<String> {
    let sha = sha2::Sha256::digest(value.as_bytes());
    let hex: String = sha.iter().map(|b| format!("{b:02x}")).collect();
    vec![
        value.to_string(),
        hex[..10].to_string(),
        hex,
        base64::engine::general_purpose::STANDARD.encode(sha),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha),
    ]
}

/// Everything a reader of the cluster sees without reading Secret data: workloads,
/// Events, our objects with their status, and the Secrets' metadata.
fn visible_objects(c: &Cluster) -> Vec<Value> {
    let mut out = Vec::new();
    for (group, version, plural) in [
        ("apps", "v1", "deployments"),
        ("events.k8s.io", "v1", "events"),
        ("", "v1", "events"),
        ("sopsync.io", "v1alpha1", "secretsources"),
        ("sopsync.io", "v1alpha1", "sopssecrets"),
    ] {
        let rt = c.fake.resource_type_raw(group, version, plural);
        out.extend(c.fake.list_raw(&rt, None));
    }
    let rt = c.fake.resource_type_raw("", "v1", "secrets");
    out.extend(
        c.fake
            .list_raw(&rt, None)
            .into_iter()
            .map(|s| s["metadata"].clone()),
    );
    out
}

/// The canary values of a test (each a full plaintext value) appear nowhere a
/// non-reader of Secret data can look, in no form.
pub fn assert_no_plaintext_anywhere(c: &Cluster, ctl: &ControllerProcess, values: &[String]) {
    ctl.assert_no_canary();
    let (_, metrics) = ctl.http("GET", "/metrics", &[], b"");
    let objects = serde_json::to_string(&visible_objects(c)).expect("JSON");
    let logs = ctl.logs();
    for value in values {
        assert!(value.contains(CANARY), "{value} is not a canary value");
        for form in leak_forms(value) {
            for (place, text) in [
                ("the cluster's objects", &objects),
                ("the metrics", &metrics),
                ("the log", &logs),
            ] {
                assert!(
                    !text.contains(&form),
                    "{place} show a canary value or its bare SHA-256 ({form})"
                );
            }
        }
    }
}

#[test]
fn the_leak_check_looks_for_the_bare_sha256_in_hex_and_base64() {
    // SHA-256("abc"), FIPS 180-2 appendix B.1.
    let forms = leak_forms("abc");
    let hex = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    assert!(forms.contains(&hex.to_string()));
    assert!(forms.contains(&hex[..10].to_string()));
    assert!(forms.contains(&"ungWv48Bz+pBQUDeXa4iI7ADYaOWF3qctBD/YfIAFa0=".to_string()));
    assert!(forms.contains(&"ungWv48Bz-pBQUDeXa4iI7ADYaOWF3qctBD_YfIAFa0".to_string()));
}
