//! Issue 11, point 3. Commands that write a file in place (`encrypt -i`, `decrypt -i`,
//! `rotate -i`, `updatekeys`, `edit`, `set`, `unset`) write through a symlink to its
//! target, atomically in the target's directory, and leave the link a link, as sops
//! 3.11 does; a link that leads nowhere is an error and nothing is written.

use super::output_dir_escape::{example_key, EXAMPLE_RECIPIENT};
use crate::support::{age_keypair, run, sops, sopsync, tempdir};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;
use std::process::Command;

const PLAIN: &str = "a: in-place-plaintext\n";

/// What a write through `dir/link.yaml` left behind: whether the link is still a
/// link to `real.yaml`, the target's content and its mode.
#[derive(Debug, PartialEq)]
struct Shape {
    link_kept: bool,
    encrypted: bool,
    plaintext_visible: bool,
    mode: u32,
}

fn shape(dir: &Path) -> Shape {
    let link = std::fs::read_link(dir.join("link.yaml")).ok();
    let text = std::fs::read_to_string(dir.join("real.yaml")).expect("target");
    Shape {
        link_kept: link.as_deref() == Some(Path::new("real.yaml")),
        encrypted: text.contains("ENC[AES256_GCM,") && text.contains("sops:"),
        plaintext_visible: text.contains("in-place-plaintext"),
        mode: std::fs::metadata(dir.join("real.yaml"))
            .expect("stat")
            .permissions()
            .mode()
            & 0o777,
    }
}

/// `dir/real.yaml` (0640) holding `text`, and `dir/link.yaml -> real.yaml`.
fn linked(dir: &Path, text: &str) {
    std::fs::create_dir_all(dir).expect("mkdir");
    std::fs::write(dir.join("real.yaml"), text).expect("write");
    std::fs::set_permissions(
        dir.join("real.yaml"),
        std::fs::Permissions::from_mode(0o640),
    )
    .expect("chmod");
    std::os::unix::fs::symlink("real.yaml", dir.join("link.yaml")).expect("symlink");
}

fn encrypted_text(dir: &Path) -> String {
    let plain = dir.join("to-encrypt.yaml");
    std::fs::write(&plain, PLAIN).expect("write");
    let out = run(sops()
        .args(["encrypt", "--age", EXAMPLE_RECIPIENT])
        .arg(&plain));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::remove_file(&plain).expect("rm");
    String::from_utf8(out.stdout).expect("utf-8")
}

/// Runs `tool args… link` in `dir` and returns the shape left behind.
fn through_link(mut tool: Command, dir: &Path, args: &[&str], file: &str) -> Shape {
    let out = run(tool
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", example_key())
        .args(args)
        .arg(file));
    assert!(
        out.status.success(),
        "{:?} {args:?} {file}: {}",
        tool.get_program(),
        String::from_utf8_lossy(&out.stderr)
    );
    shape(dir)
}

#[test]
fn encrypt_in_place_through_a_symlink_encrypts_the_target_and_keeps_the_link_like_sops() {
    let tmp = tempdir();
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    linked(&ours, PLAIN);
    linked(&theirs, PLAIN);
    let args = ["encrypt", "-i", "--age", EXAMPLE_RECIPIENT];
    let want = through_link(sops(), &theirs, &args, "link.yaml");
    let got = through_link(sopsync(), &ours, &args, "link.yaml");
    assert_eq!(
        want,
        Shape {
            link_kept: true,
            encrypted: true,
            plaintext_visible: false,
            mode: 0o640
        },
        "what sops 3.11 does"
    );
    assert_eq!(got, want);
}

#[test]
fn decrypt_in_place_through_a_symlink_decrypts_the_target_and_keeps_the_link_like_sops() {
    let tmp = tempdir();
    let ours = tmp.path().join("ours");
    let theirs = tmp.path().join("theirs");
    std::fs::create_dir_all(tmp.path()).expect("mkdir");
    let enc = encrypted_text(tmp.path());
    linked(&ours, &enc);
    linked(&theirs, &enc);
    let want = through_link(sops(), &theirs, &["decrypt", "-i"], "link.yaml");
    let got = through_link(sopsync(), &ours, &["decrypt", "-i"], "link.yaml");
    assert_eq!(
        want,
        Shape {
            link_kept: true,
            encrypted: false,
            plaintext_visible: true,
            mode: 0o640
        }
    );
    assert_eq!(got, want);
}

#[test]
fn every_in_place_command_writes_through_relative_links_and_chains_of_links_like_sops() {
    let tmp = tempdir();
    let enc = encrypted_text(tmp.path());
    let (_, other) = age_keypair(tmp.path(), "other");
    let editor = tmp.path().join("editor.sh");
    std::fs::write(
        &editor,
        "#!/bin/sh\nprintf 'added: by-editor\\n' >> \"$1\"\n",
    )
    .expect("write");
    std::fs::set_permissions(&editor, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    let rules = format!("creation_rules:\n  - age: {EXAMPLE_RECIPIENT},{other}\n");
    let commands: [(&str, &[&str]); 6] = [
        ("rotate", &["rotate", "-i"]),
        ("updatekeys", &["updatekeys", "-y"]),
        ("edit", &["edit"]),
        ("set", &["set"]),
        ("unset", &["unset"]),
        ("decrypt", &["decrypt", "-i"]),
    ];
    for (name, args) in commands {
        for (who, make) in [("sops", sops as fn() -> Command), ("sopsync", sopsync)] {
            let dir = tmp.path().join(format!("{name}-{who}"));
            linked(&dir, &enc);
            std::fs::write(dir.join(".sops.yaml"), &rules).expect("write");
            // sub/chain.yaml -> ../link.yaml -> real.yaml: relative, and a link to a link.
            std::fs::create_dir_all(dir.join("sub")).expect("mkdir");
            std::os::unix::fs::symlink("../link.yaml", dir.join("sub/chain.yaml"))
                .expect("symlink");
            let before = std::fs::read_to_string(dir.join("real.yaml")).expect("read");
            let mut cmd = make();
            cmd.env("EDITOR", &editor).env("SOPS_EDITOR", &editor);
            let mut full: Vec<&str> = args.to_vec();
            full.push("sub/chain.yaml");
            let extra: &[&str] = match name {
                "set" => &["[\"a\"]", "\"changed\""],
                "unset" => &["[\"a\"]"],
                _ => &[],
            };
            let out = run(cmd
                .current_dir(&dir)
                .env("SOPS_AGE_KEY_FILE", example_key())
                .args(&full)
                .args(extra));
            assert!(
                out.status.success(),
                "{who} {name}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            let s = shape(&dir);
            assert!(s.link_kept, "{who} {name}: link.yaml is still a link");
            assert_eq!(
                std::fs::read_link(dir.join("sub/chain.yaml"))
                    .ok()
                    .as_deref(),
                Some(Path::new("../link.yaml")),
                "{who} {name}: the chain is still a link"
            );
            assert_eq!(s.mode, 0o640, "{who} {name}: the target keeps its mode");
            let after = std::fs::read_to_string(dir.join("real.yaml")).expect("read");
            assert_ne!(before, after, "{who} {name}: the target was rewritten");
            let strays: Vec<_> = std::fs::read_dir(&dir)
                .expect("read_dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .filter(|n| ![".sops.yaml", "real.yaml", "link.yaml", "sub"].contains(&n.as_str()))
                .collect();
            assert!(strays.is_empty(), "{who} {name}: left {strays:?}");
        }
    }
}

#[test]
fn a_dangling_link_is_a_clear_error_and_nothing_is_written() {
    let tmp = tempdir();
    let dir = tmp.path();
    std::fs::write(dir.join("plain.yaml"), PLAIN).expect("write");
    std::os::unix::fs::symlink("missing.yaml", dir.join("dangling.yaml")).expect("symlink");
    let out = run(sopsync().current_dir(dir).args([
        "encrypt",
        "--age",
        EXAMPLE_RECIPIENT,
        "--output",
        "dangling.yaml",
        "plain.yaml",
    ]));
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("dangling.yaml") && stderr.contains("symlink that leads to no file"),
        "{stderr}"
    );
    assert!(std::fs::symlink_metadata(dir.join("dangling.yaml"))
        .expect("lstat")
        .file_type()
        .is_symlink());
    assert!(!dir.join("missing.yaml").exists());
    // In place, the same link is refused before anything is read or written.
    let out = run(sopsync()
        .current_dir(dir)
        .env("SOPS_AGE_KEY_FILE", example_key())
        .args(["decrypt", "-i", "dangling.yaml"]));
    assert!(!out.status.success());
    assert!(!dir.join("missing.yaml").exists());
    assert!(std::fs::symlink_metadata(dir.join("dangling.yaml"))
        .expect("lstat")
        .file_type()
        .is_symlink());
}
