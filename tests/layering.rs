//! The core is pure (STYLE.md 1): no I/O, no async, no Kubernetes, no imports from
//! outside `core`. This scans `src/core/**` for forbidden paths.

use std::path::Path;

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).expect("read src/core") {
        let path = entry.expect("dir entry").path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn core_uses_no_io_async_kubernetes_or_outer_modules() {
    let forbidden = [
        "tokio",
        "kube",
        "axum",
        "std::fs",
        "std::net",
        "std::env",
        "std::process",
        "std::thread",
        "std::time::SystemTime",
        "rayon",
        "crate::cli",
        "crate::repo",
        "crate::controller",
        "crate::server",
        "crate::keysource",
    ];
    let mut files = Vec::new();
    rust_files(&super::support::project_root().join("src/core"), &mut files);
    assert!(
        files.len() >= 5,
        "expected the core modules, found {}",
        files.len()
    );
    let mut violations = Vec::new();
    for f in &files {
        let text = std::fs::read_to_string(f).expect("read source");
        for (n, line) in text.lines().enumerate() {
            let code = line.split("//").next().unwrap_or("");
            for bad in forbidden {
                if code.contains(bad) {
                    violations.push(format!("{}:{}: uses `{bad}`", f.display(), n + 1));
                }
            }
        }
    }
    assert!(
        violations.is_empty(),
        "core must stay pure:\n{}",
        violations.join("\n")
    );
}
