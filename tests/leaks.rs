//! Secrets never leak (issue 16): one unique plaintext value is planted and carried
//! through every mode sopsync has (the CLI's failures, `edit`, `render`, the `helm`
//! wrapper, `argocd generate` in safe mode, and the controller under API faults and a
//! tampered file); then every place a user, a log collector or another tenant can read
//! is searched for it: stderr (and stdout where it must not hold the value), the
//! controller's log, its metrics, the Events and status objects, and every temp and
//! working directory.
//!
//! What is searched for is the value itself, its base64 at each of the three byte
//! alignments it can take inside a longer base64 string (a Secret's `data` or a log
//! that base64-encodes a whole file), and its bare SHA-256 in hex and in base64 (an
//! unkeyed digest of a low-entropy value is as good as the value to someone guessing).
//!
//! Every run that must fail is asserted to fail with its exit code: a tamper that
//! wrongly succeeded would otherwise print the value on stdout, where a failure check
//! that only looks at failed runs would never look.

use crate::support::cluster::{condition, ready_is, wait_attempted, wait_until, Cluster};
use crate::support::fake_apiserver::{Fault, Match};
use crate::support::{age_keypair, project_root, run, run_with_deadline, sopsync, tempdir};
use base64::Engine;
use serde_json::json;
use sha2::Digest;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

/// What must never be found, each with a name for the failure message.
struct Needles(Vec<(String, Vec<u8>)>);

impl Needles {
    fn of(value: &str) -> Needles {
        let b64 = base64::engine::general_purpose::STANDARD;
        let mut list = vec![("the value".to_string(), value.as_bytes().to_vec())];
        // Base64 of the value after k other bytes: only the characters that depend on
        // the value's bytes alone are searched, from ceil(4k/3) to floor(4(k+len)/3).
        for k in 0..3 {
            let mut bytes = vec![0u8; k];
            bytes.extend_from_slice(value.as_bytes());
            let encoded = b64.encode(&bytes);
            let from = (4 * k).div_ceil(3);
            let to = 4 * (k + value.len()) / 3;
            list.push((
                format!("its base64 at offset {k}"),
                encoded.as_bytes()[from..to].to_vec(),
            ));
        }
        let digest = sha2::Sha256::digest(value.as_bytes());
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        list.push(("its SHA-256 in hex".into(), hex.into_bytes()));
        list.push((
            "its SHA-256 in base64".into(),
            b64.encode(digest).into_bytes(),
        ));
        Needles(list)
    }

    /// The names of the needles found in `hay`.
    fn found_in(&self, hay: &[u8]) -> Vec<String> {
        self.0
            .iter()
            .filter(|(_, n)| hay.windows(n.len()).any(|w| w == n.as_slice()))
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Fails when `hay`, read from `place`, holds any needle.
    fn assert_absent(&self, place: &str, hay: &[u8]) {
        let found = self.found_in(hay);
        assert!(
            found.is_empty(),
            "{place} holds {}:\n{}",
            found.join(", "),
            String::from_utf8_lossy(hay)
        );
    }

    /// Fails when any regular file under `dir` holds a needle (symbolic links are not
    /// followed: what they point to is searched where it lives).
    fn assert_absent_under(&self, dir: &Path) {
        let mut hits = Vec::new();
        self.collect_hits(dir, &mut hits);
        assert!(hits.is_empty(), "files hold the planted value: {hits:?}");
    }

    fn collect_hits(&self, dir: &Path, hits: &mut Vec<String>) {
        let entries = std::fs::read_dir(dir)
            .unwrap_or_else(|e| panic!("cannot search {}: {e}", dir.display()));
        for e in entries.flatten() {
            let p = e.path();
            let Ok(meta) = std::fs::symlink_metadata(&p) else {
                continue;
            };
            if meta.is_dir() {
                self.collect_hits(&p, hits);
            } else if meta.is_file() {
                let bytes = std::fs::read(&p)
                    .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
                for name in self.found_in(&bytes) {
                    hits.push(format!("{}: {name}", p.display()));
                }
            }
        }
    }
}

/// A value no other test, fixture or earlier run holds.
fn unique_value() -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .expect("clock after 1970")
        .as_nanos();
    format!("planted-{}-{nanos:x}", std::process::id())
}

fn secret_manifest(value: &str) -> String {
    format!(
        "apiVersion: v1\nkind: Secret\nmetadata:\n    name: db\n    namespace: prod\ntype: Opaque\nstringData:\n    token: {value}\n    other: x\n"
    )
}

fn executable(path: &Path, script: &str) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::write(path, script).expect("write script");
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
}

/// `text` with one base64 character of the first `field` (e.g. `mac: ENC[`) changed.
fn flip_after(text: &str, field: &str) -> String {
    let start = text.find(field).unwrap_or_else(|| panic!("no {field}"));
    let at = start + text[start..].find("data:").expect("data:") + "data:".len();
    let mut out = text.to_string();
    let new = if &text[at..=at] == "A" { "B" } else { "A" };
    out.replace_range(at..=at, new);
    out
}

/// The keys-example recipient (TEST KEYS ONLY), which the helm and argocd runs use.
fn example_recipient() -> String {
    std::fs::read_to_string(project_root().join("keys-example/age.pub"))
        .expect("keys-example/age.pub")
        .trim()
        .to_string()
}

struct Place {
    _root: tempfile::TempDir,
    root: PathBuf,
    work: PathBuf,
    tmp: PathBuf,
}

fn place() -> Place {
    let root = tempdir();
    let path = root.path().to_path_buf();
    let work = path.join("work");
    let tmp = path.join("tmp");
    for d in [&work, &tmp] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    Place {
        _root: root,
        root: path,
        work,
        tmp,
    }
}

/// Encrypts `plain` with `sopsync encrypt ARGS` from a scratch directory that is
/// removed at once, so the plaintext never sits where the test searches.
fn encrypt(plain: &str, args: &[&str]) -> Vec<u8> {
    let scratch = tempdir();
    std::fs::write(scratch.path().join("plain.yaml"), plain).expect("write");
    let out = run(sopsync()
        .current_dir(scratch.path())
        .arg("encrypt")
        .args(args)
        .arg("plain.yaml"));
    assert!(
        out.status.success(),
        "encrypt: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// One CLI run in `p.work` with a private TMPDIR; the exit status it must have is
/// checked, then stderr, stdout unless `stdout_may_hold` (a successful decrypting run
/// prints the value by design) and the TMPDIR are searched.
fn cli(
    p: &Place,
    needles: &Needles,
    what: &str,
    cmd: &mut Command,
    want_code: i32,
    stdout_may_hold: bool,
) -> Output {
    cmd.current_dir(&p.work).env("TMPDIR", &p.tmp);
    let out = run_with_deadline(cmd, Duration::from_secs(120));
    assert_eq!(
        out.status.code(),
        Some(want_code),
        "{what}: exit status; stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    needles.assert_absent(&format!("{what}: stderr"), &out.stderr);
    if !stdout_may_hold {
        needles.assert_absent(&format!("{what}: stdout"), &out.stdout);
    }
    needles.assert_absent_under(&p.tmp);
    out
}

#[test]
fn a_planted_value_reaches_no_stderr_log_event_status_metric_or_file_in_any_mode() {
    let value = unique_value();
    let needles = Needles::of(&value);
    let p = place();
    let (key, recipient) = age_keypair(&p.root, "k");
    let (other_key, _) = age_keypair(&p.root, "other");
    let key_env = |c: &mut Command| {
        c.env("SOPS_AGE_KEY_FILE", &key);
    };

    // The files every CLI mode works on: a good one and three broken copies.
    let good = encrypt(&secret_manifest(&value), &["--age", &recipient]);
    let text = String::from_utf8(good.clone()).expect("utf-8");
    std::fs::write(p.work.join("s.yaml"), &good).expect("write");
    std::fs::write(
        p.work.join("mac.yaml"),
        text.replacen("lastmodified: \"20", "lastmodified: \"19", 1),
    )
    .expect("write");
    std::fs::write(p.work.join("value.yaml"), flip_after(&text, "token: ENC[")).expect("write");
    std::fs::write(p.work.join("truncated.yaml"), &good[..good.len() / 2]).expect("write");

    // 1. CLI failures: each must fail, with sops' exit code for it.
    for (what, args, code) in [
        ("a tampered lastmodified", vec!["decrypt", "mac.yaml"], 51),
        ("a tampered value", vec!["decrypt", "value.yaml"], 25),
        ("a truncated file", vec!["decrypt", "truncated.yaml"], 1),
        (
            "--extract of a missing key",
            vec!["decrypt", "--extract", "[\"nope\"]", "s.yaml"],
            1,
        ),
        (
            "set with bad JSON",
            vec!["set", "s.yaml", "[\"x\"]", "{bad"],
            7,
        ),
    ] {
        let mut c = sopsync();
        key_env(&mut c);
        cli(&p, &needles, what, c.args(&args), code, false);
    }
    let mut c = sopsync();
    c.env("SOPS_AGE_KEY_FILE", &other_key)
        .args(["decrypt", "s.yaml"]);
    cli(&p, &needles, "the wrong key", &mut c, 128, false);

    // 2. edit: an editor that changes another value (the file is re-encrypted and still
    // holds the planted value), then one that leaves invalid YAML (refused).
    executable(
        &p.root.join("editor-ok.sh"),
        "#!/bin/sh\nsed -i 's/other: x/other: edited/' \"$1\"\n",
    );
    executable(
        &p.root.join("editor-bad.sh"),
        "#!/bin/sh\nprintf 'not: [valid' > \"$1\"\n",
    );
    let mut c = sopsync();
    key_env(&mut c);
    c.env("EDITOR", p.root.join("editor-ok.sh"))
        .args(["edit", "s.yaml"]);
    cli(&p, &needles, "edit", &mut c, 0, false);
    let mut c = sopsync();
    key_env(&mut c);
    let out = cli(
        &p,
        &needles,
        "decrypt after edit",
        c.args(["decrypt", "s.yaml"]),
        0,
        true,
    );
    let plain = String::from_utf8_lossy(&out.stdout);
    assert!(
        plain.contains(&value) && plain.contains("other: edited"),
        "the edit was saved and kept the value"
    );
    let mut c = sopsync();
    key_env(&mut c);
    c.env("EDITOR", p.root.join("editor-bad.sh"))
        .args(["edit", "s.yaml"]);
    let out = cli(&p, &needles, "edit to invalid YAML", &mut c, 2, false);
    assert!(!out.stderr.is_empty(), "the refusal says why");

    // 3. render: stdout holds the value (base64 in `data`) by design; stderr names the
    // broken files and nothing else of them.
    let mut c = sopsync();
    key_env(&mut c);
    let out = cli(&p, &needles, "render", c.args(["render", "."]), 1, true);
    assert!(
        !needles.found_in(&out.stdout).is_empty(),
        "render carried the value to stdout (else this test proves nothing)"
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("mac.yaml") && stderr.contains("value.yaml"),
        "{stderr}"
    );
    let mut c = sopsync();
    key_env(&mut c);
    cli(
        &p,
        &needles,
        "render --strict",
        c.args(["render", ".", "--strict"]),
        1,
        false,
    );

    // 4. The helm wrapper over the test helm shim: values through pipes; the rendered
    // chart on stdout holds the value by design; a tampered values file stops the run.
    let bin = p.root.join("bin");
    std::fs::create_dir_all(&bin).expect("mkdir");
    let helm = crate::helm::helm_shim(&bin);
    crate::helm::write_chart(&p.work.join("chart"));
    let values = encrypt(
        &format!("db:\n    password: {value}\n"),
        &["--age", &example_recipient()],
    );
    std::fs::write(p.work.join("values.enc.yaml"), &values).expect("write");
    let values_text = String::from_utf8(values).expect("utf-8");
    std::fs::write(
        p.work.join("values-tampered.enc.yaml"),
        flip_after(&values_text, "password: ENC["),
    )
    .expect("write");
    let helm_run = |file: &str| {
        let mut c = sopsync();
        c.env("SOPS_AGE_KEY_FILE", crate::helm::age_key_file())
            .env("SOPSYNC_HELM", &helm)
            .args(["helm", "template", "rel", "chart", "--values", file]);
        c
    };
    let out = cli(
        &p,
        &needles,
        "helm",
        &mut helm_run("values.enc.yaml"),
        0,
        true,
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains(&value),
        "helm got the value"
    );
    let mut c = helm_run("values-tampered.enc.yaml");
    cli(&p, &needles, "helm with tampered values", &mut c, 25, false);

    // 5. argocd generate, safe mode: the output carries the encrypted bytes only.
    let app = p.work.join("app");
    std::fs::create_dir_all(&app).expect("mkdir");
    let secret = encrypt(
        &secret_manifest(&value),
        &[
            "--age",
            &example_recipient(),
            "--encrypted-regex",
            "^(data|stringData)$",
        ],
    );
    std::fs::write(app.join("db.enc.yaml"), secret).expect("write");
    let mut c = sopsync();
    c.env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ARGOCD_APP_NAME", "web")
        .env("ARGOCD_APP_NAMESPACE", "prod")
        .env("ARGOCD_APP_REVISION", "0123abc")
        .env("ARGOCD_APP_SOURCE_REPO_URL", "https://git.example/apps.git")
        .env("KUBE_VERSION", "1.31.2")
        .env("KUBE_API_VERSIONS", "v1,apps/v1,sopsync.io/v1alpha1")
        .env("ARGOCD_ENV_SOPSYNC_MODE", "safe")
        .env("SOPS_AGE_KEY_FILE", crate::helm::age_key_file())
        .env("SOPSYNC_HELM", &helm)
        .args(["argocd", "generate"]);
    c.current_dir(&app).env("TMPDIR", &p.tmp);
    let out = run_with_deadline(&mut c, Duration::from_secs(60));
    assert_eq!(
        out.status.code(),
        Some(0),
        "argocd generate: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("SopsSecret"),
        "safe mode wrapped the Secret"
    );
    needles.assert_absent("argocd generate: stdout", &out.stdout);
    needles.assert_absent("argocd generate: stderr", &out.stderr);

    // 6. The controller: two 500s on its first Secret writes, then a commit whose file
    // fails its MAC; the value reaches the Secret and nothing else.
    let c = Cluster::new(&[("db.yaml", &secret_manifest(&value))]);
    c.key_secret("prod");
    c.fake.fail_times(
        Match::verb("PATCH").resource("secrets"),
        Fault::Status(500),
        2,
    );
    c.source("prod", "apps", json!({"url": c.url(), "interval": "1s"}));
    let ctl_tmp = c.dir.path().join("controller-tmp");
    std::fs::create_dir_all(&ctl_tmp).expect("mkdir");
    let ctl = c.controller_with_env(
        "c1",
        &[],
        &[("TMPDIR", ctl_tmp.to_str().expect("utf-8 path"))],
    );
    let first = c.head();
    wait_until("the Secret applied through the faults", &ctl, || {
        c.data("prod", "db")
            .is_some_and(|d| d.get("token") == Some(&value))
            && c.status("prod", "apps")
                .is_some_and(|s| s.last_applied_revision.as_deref() == Some(&first))
    });
    let tampered = flip_after(
        &std::fs::read_to_string(c.work.join("db.yaml")).expect("read"),
        "mac: ENC[",
    );
    std::fs::write(c.work.join("db.yaml"), tampered).expect("write");
    crate::support::git_server::git(&c.work, &["commit", "-qam", "tamper"]);
    crate::support::git_server::git(&c.work, &["push", "-q", "origin", "HEAD:main"]);
    let second = c.head();
    wait_attempted(&c, &ctl, "prod", "apps", &second);
    let status = c.status("prod", "apps").expect("status");
    assert!(
        ready_is(Some(&status), "False", "RenderFailed"),
        "{status:?}"
    );
    assert!(condition(&status, "Ready").is_some());
    assert_eq!(
        c.data("prod", "db").expect("db kept").get("token"),
        Some(&value),
        "the last good value is kept"
    );
    let (code, metrics) = ctl.http("GET", "/metrics", &[], b"");
    assert_eq!(code, 200);
    needles.assert_absent("the controller's metrics", metrics.as_bytes());
    needles.assert_absent("the controller's log", ctl.logs().as_bytes());
    let events = c.fake.resource_type_raw("events.k8s.io", "v1", "events");
    let core_events = c.fake.resource_type_raw("", "v1", "events");
    let sources = c
        .fake
        .resource_type_raw("sopsync.io", "v1alpha1", "secretsources");
    for (what, rt) in [
        ("Events", &events),
        ("core/v1 Events", &core_events),
        ("SecretSources (status)", &sources),
    ] {
        let objects = serde_json::to_vec(&c.fake.list_raw(rt, None)).expect("JSON");
        needles.assert_absent(what, &objects);
    }
    assert!(
        !c.fake.list_raw(&events, Some("prod")).is_empty(),
        "the controller recorded Events (else there was nothing to search)"
    );
    drop(ctl);
    // The controller's cache and TMPDIR, the repository's clones, the logs.
    needles.assert_absent_under(c.dir.path());

    // Last, every working and temp directory of the CLI runs.
    needles.assert_absent_under(&p.root);
}

#[test]
fn the_search_finds_the_value_inside_longer_base64_at_every_offset_and_its_digests() {
    let value = unique_value();
    let needles = Needles::of(&value);
    let b64 = base64::engine::general_purpose::STANDARD;
    for prefix in ["", "a", "ab", "abc", "token: "] {
        let embedded = b64.encode(format!("{prefix}{value}\nnext: line\n"));
        assert!(
            !needles.found_in(embedded.as_bytes()).is_empty(),
            "missed after {prefix:?}"
        );
    }
    let digest = sha2::Sha256::digest(value.as_bytes());
    assert!(!needles.found_in(b64.encode(digest).as_bytes()).is_empty());
    assert!(needles.found_in(b"nothing planted here").is_empty());
}
