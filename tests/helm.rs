//! Helm values from SOPS files (issue 13): the `sopsync helm` wrapper and `sopsync
//! values` with the Helm engine behind scripts/helm_shim.py (a test stand-in for helm,
//! not helm: no helm binary can be installed here), and the downloader plugin through
//! its command contract (the arguments and stdout exactly as helm uses them).

use crate::support::{project_root, run, run_ok, run_with_deadline, sops, sopsync, tempdir, tool};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

/// A value that must never reach a file on disk.
pub const CANARY: &str = "helm-canary-7c41e9";

/// The test age identity (keys-example/, TEST KEYS ONLY).
pub fn age_key_file() -> PathBuf {
    project_root().join("keys-example/age.key")
}

fn age_recipient() -> String {
    std::fs::read_to_string(project_root().join("keys-example/age.pub"))
        .expect("keys-example/age.pub")
        .trim()
        .to_string()
}

/// A `helm` over this checkout's scripts/helm_shim.py, run by the Python of the
/// installed shim (the installed one imports the shim of the checkout that installed it).
pub fn helm_shim(dir: &Path) -> PathBuf {
    let installed = std::fs::read_to_string(tool("helm")).expect("read the helm shim");
    let python = installed
        .lines()
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .expect("the helm shim starts with #!python");
    let path = dir.join("helm");
    std::fs::write(
        &path,
        format!(
            "#!{python}\nimport sys\nsys.dont_write_bytecode = True\nsys.path.insert(0, {:?})\nfrom helm_shim import main\nsys.exit(main(sys.argv[1:]))\n",
            project_root().join("scripts").display().to_string()
        ),
    )
    .expect("write shim");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    path
}

/// A chart whose ConfigMap shows the values it was given.
pub fn write_chart(dir: &Path) {
    std::fs::create_dir_all(dir.join("templates")).unwrap();
    std::fs::write(
        dir.join("Chart.yaml"),
        "apiVersion: v2\nname: demo\nversion: 0.1.0\n",
    )
    .unwrap();
    std::fs::write(dir.join("values.yaml"), "replicas: 1\ndb:\n  user: app\n").unwrap();
    std::fs::write(
        dir.join("templates/cm.yaml"),
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}\n  namespace: {{ .Release.Namespace }}\n\
         data:\n  user: {{ .Values.db.user | quote }}\n  password: {{ .Values.db.password | default \"none\" | quote }}\n\
         \x20 replicas: {{ .Values.replicas | quote }}\n  kube: {{ .Capabilities.KubeVersion.Version | quote }}\n",
    )
    .unwrap();
}

/// Encrypts `plain` (YAML) with the real sops for the keys-example recipient into
/// `out`, through a private scratch directory removed afterwards (the plaintext never
/// sits in a directory a test scans).
pub fn sops_encrypt_yaml(plain: &str, out: &Path) {
    let scratch = tempdir();
    let src = scratch.path().join("plain.yaml");
    std::fs::write(&src, plain).unwrap();
    let bytes = run_ok(
        sops()
            .args(["encrypt", "--age", &age_recipient()])
            .arg(&src),
    );
    std::fs::write(out, bytes).unwrap();
}

/// Files under `dir` that hold `needle`.
pub fn files_holding(dir: &Path, needle: &str) -> Vec<String> {
    let mut hits = Vec::new();
    let Ok(entries) = std::fs::read_dir(dir) else {
        return hits;
    };
    for e in entries.flatten() {
        let p = e.path();
        let Ok(meta) = std::fs::symlink_metadata(&p) else {
            continue;
        };
        if meta.is_dir() {
            hits.extend(files_holding(&p, needle));
        } else if meta.is_file() {
            if let Ok(bytes) = std::fs::read(&p) {
                if bytes.windows(needle.len()).any(|w| w == needle.as_bytes()) {
                    hits.push(p.display().to_string());
                }
            }
        }
    }
    hits
}

struct Setup {
    _root: tempfile::TempDir,
    work: PathBuf,
    tmp: PathBuf,
    helm: PathBuf,
    argv_log: PathBuf,
}

fn setup() -> Setup {
    let root = tempdir();
    let work = root.path().join("work");
    let tmp = root.path().join("tmp");
    let bin = root.path().join("bin");
    for d in [&work, &tmp, &bin] {
        std::fs::create_dir_all(d).unwrap();
    }
    write_chart(&work.join("chart"));
    std::fs::write(work.join("plain.yaml"), "replicas: 3\n").unwrap();
    sops_encrypt_yaml(
        &format!("db:\n    password: {CANARY}\n"),
        &work.join("secrets.yaml"),
    );
    let helm = helm_shim(&bin);
    Setup {
        argv_log: root.path().join("argv.jsonl"),
        _root: root,
        work,
        tmp,
        helm,
    }
}

fn wrapper(s: &Setup) -> Command {
    let mut c = sopsync();
    c.current_dir(&s.work)
        .env("SOPS_AGE_KEY_FILE", age_key_file())
        .env("SOPSYNC_HELM", &s.helm)
        .env("HELM_SHIM_ARGV_LOG", &s.argv_log)
        .env("TMPDIR", &s.tmp);
    c
}

#[test]
fn helm_wrapper_renders_sops_values_through_pipes_and_no_plaintext_reaches_disk() {
    let s = setup();
    let out = run_with_deadline(
        wrapper(&s).args([
            "helm",
            "template",
            "rel",
            "chart",
            "-n",
            "prod",
            "-f",
            "plain.yaml",
            "--values",
            "secrets.yaml",
            "--set",
            "db.user=ops",
        ]),
        Duration::from_secs(120),
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains(&format!("password: \"{CANARY}\"")),
        "{stdout}"
    );
    assert!(
        stdout.contains("replicas: \"3\""),
        "plain -f file applied: {stdout}"
    );
    assert!(
        stdout.contains("user: \"ops\""),
        "--set untouched: {stdout}"
    );
    assert!(stdout.contains("namespace: prod"), "{stdout}");
    // helm got the plain file by name and the SOPS one as a pipe, every other argument as given.
    let argv: Vec<String> = std::fs::read_to_string(&s.argv_log)
        .expect("helm ran")
        .lines()
        .next()
        .map(|l| {
            l.trim_matches(|c| c == '[' || c == ']')
                .split(", ")
                .map(|a| a.trim_matches('"').to_string())
                .collect()
        })
        .unwrap();
    assert_eq!(argv[..5], ["template", "rel", "chart", "-n", "prod"]);
    assert_eq!(argv[5], "--values=plain.yaml");
    assert!(argv[6].starts_with("--values=/dev/fd/"), "{argv:?}");
    assert_eq!(argv[7..], ["--set", "db.user=ops"]);
    // No plaintext in the working directory, the temp directory, or on stderr.
    assert_eq!(files_holding(&s.work, CANARY), Vec::<String>::new());
    assert_eq!(files_holding(&s.tmp, CANARY), Vec::<String>::new());
    assert!(!String::from_utf8_lossy(&out.stderr).contains(CANARY));
}

#[test]
fn a_tampered_sops_values_file_stops_the_run_naming_the_file_and_helm_never_starts() {
    let s = setup();
    let path = s.work.join("secrets.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Flip one character of the password's ciphertext.
    let at = text.find("ENC[AES256_GCM,data:").unwrap() + "ENC[AES256_GCM,data:".len();
    let mut bytes = text.into_bytes();
    bytes[at] = if bytes[at] == b'A' { b'B' } else { b'A' };
    std::fs::write(&path, bytes).unwrap();
    let out = run_with_deadline(
        wrapper(&s).args([
            "helm",
            "template",
            "rel",
            "chart",
            "-f",
            "plain.yaml",
            "-f",
            "secrets.yaml",
        ]),
        Duration::from_secs(120),
    );
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(out.stdout.is_empty(), "nothing rendered");
    assert!(
        stderr.starts_with("sopsync: values file secrets.yaml: "),
        "{stderr}"
    );
    assert!(stderr.contains("hint: "), "{stderr}");
    assert!(!s.argv_log.exists(), "helm was started");
}

#[test]
fn helms_exit_code_and_stderr_are_passed_back_unchanged() {
    let s = setup();
    let out = run_with_deadline(
        wrapper(&s).args(["helm", "template", "rel", "chart", "--no-such-flag"]),
        Duration::from_secs(120),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "Error: unknown flag: --no-such-flag\n"
    );
    assert!(out.stdout.is_empty());
}

#[test]
fn values_prints_the_merged_decrypted_values() {
    let s = setup();
    let out = run(wrapper(&s).args(["values", "chart/values.yaml", "secrets.yaml", "plain.yaml"]));
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        format!("replicas: 3\ndb:\n  user: app\n  password: {CANARY}\n")
    );
}

/// Runs a plugin's command as helm does: `<plugin dir>/<command> certFile keyFile
/// caFile URL` in helm's working directory, the values read from stdout.
fn run_getter(plugin_dir: &Path, cwd: &Path, url: &str) -> std::process::Output {
    let sopsync_bin = PathBuf::from(env!("CARGO_BIN_EXE_sopsync"));
    run(Command::new(plugin_dir.join("sopsync-getter"))
        .args(["", "", "", url])
        .current_dir(cwd)
        .env("SOPSYNC_BIN", &sopsync_bin)
        .env("SOPS_AGE_KEY_FILE", age_key_file())
        .env_remove("SOPS_AGE_KEY"))
}

#[test]
fn the_downloader_plugin_prints_decrypted_values_for_a_sops_url_in_both_plugin_forms() {
    let s = setup();
    for form in ["v3", "v4"] {
        let dir = project_root().join("helm-plugin").join(form);
        let manifest = std::fs::read_to_string(dir.join("plugin.yaml")).unwrap();
        assert!(manifest.contains("\"sops\""), "{form}: the sops protocol");
        assert!(
            manifest.contains("\"sopsync-getter\""),
            "{form}: the command"
        );
        if form == "v4" {
            for line in ["apiVersion: v1", "type: getter/v1", "runtime: subprocess"] {
                assert!(manifest.contains(line), "v4 plugin.yaml lacks {line}");
            }
        }
        for url in ["sops://secrets.yaml", "secrets://secrets.yaml"] {
            let out = run_getter(&dir, &s.work, url);
            assert!(
                out.status.success(),
                "{form} {url}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                String::from_utf8_lossy(&out.stdout),
                format!("db:\n  password: {CANARY}\n"),
                "{form} {url}"
            );
        }
    }
    assert_eq!(files_holding(&s.work, CANARY), Vec::<String>::new());
}

#[test]
fn the_downloader_refuses_a_url_outside_helms_working_directory() {
    let s = setup();
    let dir = project_root().join("helm-plugin/v4");
    let outside = s.work.join("secrets.yaml");
    for url in [
        format!("sops://{}", outside.display()),
        "sops://../work/secrets.yaml".to_string(),
    ] {
        let out = run_getter(&dir, &s.work.join("chart"), &url);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{url}: {stderr}");
        assert!(out.stdout.is_empty());
        assert!(
            stderr.starts_with(&format!(
                "sopsync: helm-downloader {url}: absolute paths and `..` are refused\n"
            )),
            "{stderr}"
        );
    }
}
