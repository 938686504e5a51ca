//! The Helm chart, rendered by the real Helm engine (the `helm` shim over the Helm
//! SDK), and the CRDs in it checked against `sopsync crd` (STYLE.md 20, 23).

use crate::support::{run, run_ok, sopsync, tempdir};
use std::collections::BTreeMap;

fn crd_dir() -> std::path::PathBuf {
    crate::support::project_root().join("charts/sopsync/crds")
}

fn files_in(dir: &std::path::Path) -> BTreeMap<String, String> {
    std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| {
            let e = e.expect("dir entry");
            (
                e.file_name().to_string_lossy().into_owned(),
                std::fs::read_to_string(e.path()).expect("read"),
            )
        })
        .collect()
}

#[test]
fn checked_in_crds_equal_the_output_of_sopsync_crd() {
    let tmp = tempdir();
    run_ok(sopsync().arg("crd").arg("--output-dir").arg(tmp.path()));
    let generated = files_in(tmp.path());
    let checked_in = files_in(&crd_dir());
    assert_eq!(
        generated.keys().collect::<Vec<_>>(),
        checked_in.keys().collect::<Vec<_>>(),
        "charts/sopsync/crds/ holds other files than `sopsync crd` makes"
    );
    for (name, text) in &generated {
        assert!(
            &checked_in[name] == text,
            "charts/sopsync/crds/{name} drifted from the Rust types; regenerate it with \
             `cargo run -- crd --output-dir charts/sopsync/crds`"
        );
    }
    assert_eq!(generated.len(), 2);
}

#[test]
fn sopsync_crd_prints_both_definitions() {
    let out = run(sopsync().arg("crd"));
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).expect("utf-8");
    assert_eq!(text.matches("kind: CustomResourceDefinition").count(), 2);
    assert!(text.contains("name: secretsources.sopsync.io"));
    assert!(text.contains("name: sopssecrets.sopsync.io"));
}
