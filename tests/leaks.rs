//! Secrets never leak: a canary value is planted, every failure path that sees it is
//! exercised, and stdout/stderr plus the temp directory are searched for it.

use crate::support::{age_keypair, run, sopsync, tempdir};
use std::path::Path;

const CANARY: &str = "leak-canary-4b1d7e";

fn contains_canary(dir: &Path) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            hits.extend(contains_canary(&p));
        } else if let Ok(bytes) = std::fs::read(&p) {
            if bytes.windows(CANARY.len()).any(|w| w == CANARY.as_bytes()) {
                hits.push(p.display().to_string());
            }
        }
    }
    hits
}

#[test]
fn no_failure_path_prints_or_leaves_the_canary() {
    let dir = tempdir();
    let (key, recipient) = age_keypair(dir.path(), "k");
    let (_other, _) = age_keypair(dir.path(), "other");
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    // A private TMPDIR, so that anything the binary leaves behind is found here.
    let tmp = dir.path().join("tmp");
    std::fs::create_dir_all(&tmp).unwrap();
    std::fs::write(work.join("plain.yaml"), format!("apiVersion: v1\nkind: Secret\nmetadata:\n    name: s\nstringData:\n    token: {CANARY}\n    other: x\n")).unwrap();
    let enc =
        run(sopsync()
            .current_dir(&work)
            .args(["encrypt", "--age", &recipient, "plain.yaml"]));
    assert!(enc.status.success());
    std::fs::write(work.join("s.yaml"), &enc.stdout).unwrap();
    std::fs::remove_file(work.join("plain.yaml")).unwrap();
    let text = String::from_utf8(enc.stdout).unwrap();
    std::fs::write(
        work.join("mac.yaml"),
        text.replacen("lastmodified: \"20", "lastmodified: \"19", 1),
    )
    .unwrap();
    let other_line = text
        .lines()
        .find(|l| l.trim_start().starts_with("other: ENC["))
        .unwrap();
    std::fs::write(
        work.join("value.yaml"),
        text.replace(other_line, &other_line.replacen("data:", "data:AA", 1)),
    )
    .unwrap();
    std::fs::write(
        work.join("editor.sh"),
        "#!/bin/sh\nprintf 'not: [valid' > \"$1\"\n",
    )
    .unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(
        work.join("editor.sh"),
        std::fs::Permissions::from_mode(0o755),
    )
    .unwrap();

    // (what, arguments, extra environment)
    type Run<'a> = (&'a str, Vec<&'a str>, Vec<(&'a str, String)>);
    let runs: Vec<Run> = vec![
        (
            "wrong key",
            vec!["decrypt", "s.yaml"],
            vec![(
                "SOPS_AGE_KEY_FILE",
                dir.path().join("other.agekey").display().to_string(),
            )],
        ),
        ("tampered lastmodified", vec!["decrypt", "mac.yaml"], vec![]),
        ("tampered value", vec!["decrypt", "value.yaml"], vec![]),
        ("render with failures", vec!["render", "."], vec![]),
        ("render strict", vec!["render", ".", "--strict"], vec![]),
        (
            "edit producing invalid YAML",
            vec!["edit", "s.yaml"],
            vec![("EDITOR", work.join("editor.sh").display().to_string())],
        ),
        (
            "set with bad JSON",
            vec!["set", "s.yaml", "[\"x\"]", "{bad"],
            vec![],
        ),
        (
            "extract missing",
            vec!["decrypt", "--extract", "[\"nope\"]", "s.yaml"],
            vec![],
        ),
    ];
    for (what, args, env) in runs {
        let mut cmd = sopsync();
        cmd.current_dir(&work)
            .env("SOPS_AGE_KEY_FILE", &key)
            .env("TMPDIR", &tmp)
            .args(&args);
        for (k, v) in &env {
            cmd.env(k, v);
        }
        let out = run(&mut cmd);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(
            !stderr.contains(CANARY),
            "{what}: canary on stderr: {stderr}"
        );
        if !out.status.success() && !args.contains(&"render") {
            assert!(
                !String::from_utf8_lossy(&out.stdout).contains(CANARY),
                "{what}: canary on stdout of a failure"
            );
        }
        if what == "render with failures" {
            // The good file still renders (base64 in data), the tampered ones are named.
            assert!(
                stderr.contains("mac.yaml") && stderr.contains("value.yaml"),
                "{stderr}"
            );
        }
        assert!(
            contains_canary(&tmp).is_empty(),
            "{what}: plaintext left in TMPDIR: {:?}",
            contains_canary(&tmp)
        );
    }
    // The encrypted files themselves never hold the canary in clear.
    assert!(
        contains_canary(&work).is_empty(),
        "{:?}",
        contains_canary(&work)
    );
}
