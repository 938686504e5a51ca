//! Shared test support: tool lookup that fails loudly, temp dirs, the binary runner.
//!
//! Every external tool (sops, age, git, sshd, helm) is installed by
//! `scripts/install-test-tools`; a test that needs one and cannot find it panics
//! with the command to run. Nothing is skipped silently.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

pub mod cluster;
pub mod fake_apiserver;
pub mod git_server;

/// Path of an external tool, or a panic that says how to install it.
pub fn tool(name: &str) -> PathBuf {
    let candidates = std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    for dir in candidates.into_iter().chain([
        PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/.tools/bin")),
        PathBuf::from("/usr/sbin"),
    ]) {
        let p = dir.join(name);
        if p.is_file() {
            return p;
        }
    }
    panic!(
        "required test tool `{name}` is not installed; run `scripts/test` (it installs sops, age, git, sshd and the helm shim) \
         or `eval \"$(scripts/install-test-tools)\"` first"
    );
}

/// A `sops` command (the real Go binary) with the version check disabled.
pub fn sops() -> Command {
    let mut c = Command::new(tool("sops"));
    c.arg("--disable-version-check");
    // Never let a developer's own keys or config leak into a test.
    c.env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env_remove("SOPS_AGE_RECIPIENTS")
        .env("SOPS_DISABLE_VERSION_CHECK", "1");
    c
}

/// The `sopsync` binary built for this test run.
pub fn sopsync() -> Command {
    let mut c = Command::new(env!("CARGO_BIN_EXE_sopsync"));
    c.env_remove("SOPS_AGE_KEY")
        .env_remove("SOPS_AGE_KEY_FILE")
        .env_remove("SOPS_AGE_KEY_CMD")
        .env_remove("SOPS_AGE_RECIPIENTS");
    c
}

/// Runs a command, returning its output; panics if it could not start.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output()
        .unwrap_or_else(|e| panic!("could not start {:?}: {e}", cmd.get_program()))
}

/// Runs a command that must succeed; returns stdout.
pub fn run_ok(cmd: &mut Command) -> Vec<u8> {
    let out = run(cmd);
    assert!(
        out.status.success(),
        "{:?} failed with {}: {}",
        cmd,
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A fresh private temp dir, removed on drop.
pub fn tempdir() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("sopsync-test-")
        .tempdir()
        .expect("temp dir")
}

/// The project root.
pub fn project_root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// A fresh age key pair made with the real `age-keygen`: (identity file path, recipient).
pub fn age_keypair(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.agekey"));
    let out = run(Command::new(tool("age-keygen")).arg("-o").arg(&path));
    assert!(
        out.status.success(),
        "age-keygen failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&path).expect("read age key");
    let recipient = text
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("age-keygen writes the public key")
        .to_string();
    (path, recipient)
}
