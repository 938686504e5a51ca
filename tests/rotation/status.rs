//! `status.decryption` (issue 12: "aggregate what can grow (per recipient: how many files
//! it opened) so status stays far below the object size limit"): one entry per
//! recipient however many files a source holds, public keys only.

use crate::support::cluster::{secret_manifest, wait_applied, Cluster, CANARY};
use serde_json::json;

const NS: &str = "team-a";

#[test]
fn the_recipients_status_is_one_entry_per_recipient_however_many_files() {
    const FILES: usize = 40;
    let values: Vec<String> = (0..FILES).map(|i| format!("{CANARY}-{i}")).collect();
    let manifests: Vec<(String, String)> = values
        .iter()
        .enumerate()
        .map(|(i, v)| {
            let name = format!("s{i:02}");
            let text = secret_manifest(&name, None, &[("value", v)]);
            (format!("apps/{name}.yaml"), text)
        })
        .collect();
    let files: Vec<(&str, &str)> = manifests
        .iter()
        .map(|(p, t)| (p.as_str(), t.as_str()))
        .collect();
    let c = Cluster::new(&files);
    c.key_secret(NS);
    c.source(
        NS,
        "apps",
        json!({"url": c.url(), "path": "apps", "interval": "1h"}),
    );
    let ctl = c.controller("c1", &[]);
    wait_applied(&c, &ctl, NS, "apps", &c.head());
    let status = c.status(NS, "apps").expect("status");
    assert_eq!(status.inventory.len(), FILES, "every Secret was written");
    let decryption = status.decryption.expect("status.decryption");
    let counts: Vec<(&str, u32)> = decryption
        .recipients
        .iter()
        .map(|r| (r.recipient.as_str(), r.files))
        .collect();
    assert_eq!(
        counts,
        [(c.recipient.as_str(), FILES as u32)],
        "one entry for the one recipient, counting every file"
    );
    assert_eq!(decryption.recipients_omitted, 0);
    // Bounded by the recipients, not the files: the aggregate of 40 files is one
    // public key and a number.
    let json = serde_json::to_string(&decryption).expect("JSON");
    assert!(json.len() < 200, "{} bytes: {json}", json.len());
    // A public key, never the identity.
    let identity = std::fs::read_to_string(&c.key_file).expect("identity");
    let secret_line = identity
        .lines()
        .find(|l| l.starts_with("AGE-SECRET-KEY-"))
        .expect("an age identity");
    let stored = c
        .fake
        .get_raw(
            &c.fake
                .resource_type_raw("sopsync.io", "v1alpha1", "secretsources"),
            NS,
            "apps",
        )
        .expect("the source");
    assert!(!stored["status"].to_string().contains(secret_line));
    super::assert_no_plaintext_anywhere(&c, &ctl, &values);
}
