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
pub mod gnupg;
pub mod moto;
pub mod workloads;

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

/// Runs a command that might hang (issue 11) with a deadline: its output goes to files
/// (a full pipe cannot block it), and past the deadline it is killed and the test
/// fails, so a regression fails instead of hanging CI.
pub fn run_with_deadline(cmd: &mut Command, deadline: std::time::Duration) -> Output {
    use std::process::Stdio;
    let dir = tempdir();
    let (out_path, err_path) = (dir.path().join("stdout"), dir.path().join("stderr"));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&out_path).expect("stdout file"))
        .stderr(std::fs::File::create(&err_path).expect("stderr file"))
        .spawn()
        .unwrap_or_else(|e| panic!("could not start {:?}: {e}", cmd.get_program()));
    let started = std::time::Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "{cmd:?} was still running after {}s (killed); stderr so far:\n{}",
                deadline.as_secs(),
                std::fs::read_to_string(&err_path).unwrap_or_default()
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    };
    Output {
        status,
        stdout: std::fs::read(&out_path).expect("stdout"),
        stderr: std::fs::read(&err_path).expect("stderr"),
    }
}
