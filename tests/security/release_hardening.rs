//! Issue 11, point 7. The shipped binary keeps ASLR (PIE) and full RELRO.

use crate::support::{project_root, run, tempdir, tool};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// `scripts/check-hardening BINARY`.
fn check(binary: &Path) -> Output {
    run(Command::new(project_root().join("scripts/check-hardening")).arg(binary))
}

/// A tiny C program linked with `flags`, in `dir`.
fn c_binary(dir: &Path, name: &str, flags: &[&str]) -> PathBuf {
    let src = dir.join("main.c");
    std::fs::write(&src, "int main(void) { return 0; }\n").unwrap();
    let out_path = dir.join(name);
    let out = run(Command::new(tool("cc"))
        .args(flags)
        .arg(&src)
        .arg("-o")
        .arg(&out_path));
    assert!(
        out.status.success(),
        "cc {flags:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out_path
}

fn assert_refused(binary: &Path, reason: &str) {
    let out = check(binary);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains(reason), "{stderr}");
}

#[test]
fn hardening_check_accepts_the_sopsync_binary_as_cargo_builds_it() {
    let out = check(Path::new(env!("CARGO_BIN_EXE_sopsync")));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(stderr.contains(": PIE, full RELRO"), "{stderr}");
}

#[test]
fn hardening_check_accepts_a_pie_with_full_relro_and_refuses_each_property_lost() {
    let dir = tempdir();
    let full = ["-pie", "-fPIE", "-Wl,-z,relro,-z,now"];
    let ok = c_binary(dir.path(), "full", &full);
    assert!(check(&ok).status.success());
    // Each binary below loses exactly one property.
    let no_pie = c_binary(
        dir.path(),
        "no-pie",
        &["-no-pie", "-fno-pie", "-Wl,-z,relro,-z,now"],
    );
    assert_refused(&no_pie, "not PIE: the ELF type is not DYN");
    let no_relro = c_binary(
        dir.path(),
        "no-relro",
        &["-pie", "-fPIE", "-Wl,-z,norelro,-z,now"],
    );
    assert_refused(&no_relro, "no RELRO: no GNU_RELRO segment");
    let lazy = c_binary(
        dir.path(),
        "lazy",
        &["-pie", "-fPIE", "-Wl,-z,relro,-z,lazy"],
    );
    assert_refused(&lazy, "partial RELRO only: no BIND_NOW");
}

#[test]
fn release_build_configuration_has_no_flag_that_drops_pie_or_relro() {
    // Flags that make the shipped binary non-PIE, drop RELRO or bind lazily, wherever
    // cargo or the build script could pick them up.
    let banned = [
        "relocation-model=static",
        "relocation-model=dynamic-no-pic",
        "-no-pie",
        "norelro",
        "relro-level=off",
        "relro-level=partial",
        "-z,lazy",
        "-z lazy",
    ];
    let root = project_root();
    let mut files = vec![root.join("scripts/build-release"), root.join("Cargo.toml")];
    files.extend(
        ["config.toml", "config"]
            .map(|name| root.join(".cargo").join(name))
            .into_iter()
            .filter(|p| p.is_file()),
    );
    for file in &files {
        let text = std::fs::read_to_string(file).unwrap();
        for flag in banned {
            assert!(
                !text.contains(flag),
                "{} contains `{flag}`, which drops PIE or full RELRO from the shipped binary",
                file.display()
            );
        }
    }
    // The shipped build runs the check on what it built.
    let script = std::fs::read_to_string(root.join("scripts/build-release")).unwrap();
    assert!(
        script.contains("scripts/check-hardening\" \"$bin\""),
        "{script}"
    );
}
