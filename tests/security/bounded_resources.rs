//! Issue 11, point 4. Memory and time bounded by the input's size: YAML alias expansion, key files, key commands, FIFOs, git's helpers.

// ---- Directory walk: never blocks on a FIFO, never reads a non-regular file. ----

mod directory_walk {
    use super::super::output_dir_escape::{example_key, manifest, write_encrypted};
    use crate::support::{sopsync, tempdir};
    use std::time::{Duration, Instant};

    /// Far above a render of two files; a walk that opens the FIFO never ends.
    const DEADLINE: Duration = Duration::from_secs(60);

    #[test]
    fn a_fifo_in_the_tree_is_skipped_unopened_and_render_finishes() {
        let tmp = tempdir();
        let repo = tmp.path().join("repo");
        write_encrypted(&repo, "good.yaml", &manifest("default", "good", "k", "v"));
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            repo.join("pipe.yaml"),
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("mkfifo");
        std::os::unix::fs::symlink("pipe.yaml", repo.join("to-pipe.yaml")).expect("symlink");
        let stdout = tmp.path().join("stdout");
        let stderr = tmp.path().join("stderr");
        let mut child = sopsync()
            .env("SOPS_AGE_KEY_FILE", example_key())
            .arg("render")
            .arg(&repo)
            .stdin(std::process::Stdio::null())
            .stdout(std::fs::File::create(&stdout).expect("stdout file"))
            .stderr(std::fs::File::create(&stderr).expect("stderr file"))
            .spawn()
            .expect("start sopsync render");
        let started = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if started.elapsed() > DEADLINE {
                let _ = child.kill();
                let _ = child.wait();
                panic!("render blocked on the FIFO (killed after {DEADLINE:?})");
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let stderr = std::fs::read_to_string(&stderr).expect("stderr");
        assert!(
            status.success(),
            "a FIFO is skipped, not a failure: {stderr}"
        );
        assert!(std::fs::read_to_string(&stdout)
            .expect("stdout")
            .contains("name: good"));
        for note in [
            "sopsync: note: pipe.yaml: skipped: a FIFO, not a regular file (never opened)",
            "sopsync: note: to-pipe.yaml: skipped: a FIFO, not a regular file (never opened)",
        ] {
            assert!(stderr.contains(note), "{note:?} in:\n{stderr}");
        }
    }
}

// ---- Child processes: git and SOPS_AGE_KEY_CMD run under a deadline that ends their
// whole process group, and the key command's output is capped (issue 11 point 4).

mod child_processes {
    use crate::support::git_server::{processes_with, silent_server};
    use crate::support::{project_root, run_with_deadline, sopsync, tempdir};
    use std::process::{Command, Output};
    use std::time::Duration;

    /// Longer than any limit set below: past it the test fails instead of hanging.
    const DEADLINE: Duration = Duration::from_secs(60);

    /// `sopsync decrypt` of a fixture with `SOPS_AGE_KEY_CMD=key_cmd`, no other key.
    fn decrypt_with_key_cmd(key_cmd: &str, timeout: Option<&str>) -> Output {
        let home = tempdir();
        let mut cmd = sopsync();
        cmd.env("HOME", home.path())
            .env_remove("XDG_CONFIG_HOME")
            .env("SOPS_AGE_KEY_CMD", key_cmd)
            .arg("decrypt")
            .arg(project_root().join("tests/data/basic.enc.yaml"));
        if let Some(t) = timeout {
            cmd.env("SOPSYNC_AGE_KEY_CMD_TIMEOUT", t);
        }
        run_with_deadline(&mut cmd, DEADLINE)
    }

    /// Fails, and ends them, if processes carrying `marker` are still running.
    fn assert_none_left(marker: &str) {
        let left = processes_with(marker);
        for (pid, _) in &left {
            // Only processes this test started carry the marker.
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
        assert!(left.is_empty(), "still running: {left:?}");
    }

    #[test]
    fn a_key_command_that_never_ends_is_ended_with_its_children_after_the_timeout() {
        // A child in the background and one in the foreground: both must go.
        let marker = "987.654321";
        let out = decrypt_with_key_cmd(
            &format!("sh -c 'sleep {marker} & sleep {marker}'"),
            Some("2"),
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("SOPS_AGE_KEY_CMD")
                && stderr.contains(
                    "`sh` timed out after 2s and was ended; raise SOPSYNC_AGE_KEY_CMD_TIMEOUT"
                ),
            "{stderr}"
        );
        assert_none_left(marker);
    }

    #[test]
    fn a_key_command_printing_more_than_the_cap_is_refused() {
        let out = decrypt_with_key_cmd("sh -c 'yes AGE-SECRET-KEY | head -c 3000000'", None);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("`sh`: its output exceeds 1048576 bytes"),
            "{stderr}"
        );
    }

    #[test]
    fn a_git_server_that_never_answers_times_out_and_leaves_no_helper_running() {
        let dir = tempdir();
        let port = silent_server();
        let address = format!("127.0.0.1:{port}");
        let out = run_with_deadline(
            sopsync()
                .args(["render", &format!("http://{address}/r.git")])
                .args(["--git-timeout", "2", "--cache-dir"])
                .arg(dir.path().join("cache")),
            DEADLINE,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "git fetch of http://{address}/r.git timed out after 2s"
            )),
            "{stderr}"
        );
        // git-remote-http carries the URL in its argv.
        assert_none_left(&address);
    }
}

/// Memory: YAML alias expansion bounded by bytes (per file and across `render`'s
/// threads), key files read without blocking and with a size cap (issue 11, point 4).
mod memory {
    use crate::support::{project_root, run_ok, sopsync, tempdir, tool};
    use sopsync::core::formats::yaml::parse::{
        expansion_budget, parse_documents, MIN_EXPANSION_BUDGET,
    };
    use sopsync::core::formats::FormatError;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};
    use std::time::{Duration, Instant};

    /// How long a run may take before it counts as a hang. Generous: a hang guard,
    /// not a timing assertion (every run here takes well under a second).
    const HANG: Duration = Duration::from_secs(60);

    /// Billion laughs in 2.5 KB: six levels of nine aliases over 240-byte strings,
    /// 600,000 nodes and 130 MB of text once expanded: under the node cap.
    fn alias_bomb() -> String {
        let mut s = format!("l0: &l0 [{}]\n", vec!["x".repeat(240); 9].join(", "));
        for i in 1..6 {
            s.push_str(&format!(
                "l{i}: &l{i} [{}]\n",
                vec![format!("*l{}", i - 1); 9].join(", ")
            ));
        }
        s
    }

    /// A bomb padded to 100 KB that stays just under its file's bound: 360,000
    /// one-letter scalars, the most nodes the bound lets a file of that size hold.
    fn bomb_under_the_bound() -> String {
        let mut s = format!("# {}\n", "p".repeat(100_000));
        s.push_str(&format!("l0: &l0 [{}]\n", vec!["a"; 100].join(", ")));
        s.push_str(&format!("l1: &l1 [{}]\n", vec!["*l0"; 100].join(", ")));
        s.push_str(&format!("l2: [{}]\n", vec!["*l1"; 34].join(", ")));
        s
    }

    /// `doc` followed by a real SOPS-encrypted mapping and its `sops` block: a file that
    /// `render` takes for a SOPS file and parses whole (the MAC is checked only after).
    fn as_sops_file(dir: &Path, doc: &str) -> Vec<u8> {
        let plain = dir.join("small.yaml");
        std::fs::write(&plain, "token: hello\n").unwrap();
        let recipient =
            std::fs::read_to_string(project_root().join("keys-example/age.pub")).unwrap();
        let enc = run_ok(
            sopsync()
                .args(["encrypt", "--age", recipient.trim()])
                .arg(&plain),
        );
        let mut out = doc.as_bytes().to_vec();
        out.extend_from_slice(&enc);
        out
    }

    /// Runs `sopsync ARGS` under GNU time with a hang deadline: (output, peak RSS in KiB).
    fn run_measured(args: &[&str], dir: &Path, env: &[(&str, &str)]) -> (Output, u64) {
        let rss = dir.join("peak-rss");
        let mut cmd = Command::new(tool("time"));
        cmd.args(["-f", "%M", "-o"])
            .arg(&rss)
            .arg(env!("CARGO_BIN_EXE_sopsync"))
            .args(args)
            .current_dir(dir)
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env(
                "SOPS_AGE_KEY_FILE",
                project_root().join("keys-example/age.key"),
            );
        for (k, v) in env {
            cmd.env(k, v);
        }
        let out = run_with_deadline(&mut cmd, dir);
        let text = std::fs::read_to_string(&rss).unwrap();
        // GNU time writes "Command exited with non-zero status N" first on failure.
        let kib = text
            .lines()
            .last()
            .and_then(|l| l.trim().parse().ok())
            .unwrap_or_else(|| panic!("GNU time wrote no peak RSS: {text:?}"));
        (out, kib)
    }

    /// Runs `cmd` with its output in files; kills it and fails the test past [`HANG`].
    fn run_with_deadline(cmd: &mut Command, dir: &Path) -> Output {
        let (out_path, err_path) = (dir.join("stdout"), dir.join("stderr"));
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&out_path).unwrap())
            .stderr(std::fs::File::create(&err_path).unwrap())
            .spawn()
            .unwrap_or_else(|e| panic!("could not start {cmd:?}: {e}"));
        let start = Instant::now();
        let status = loop {
            if let Some(status) = child.try_wait().unwrap() {
                break status;
            }
            if start.elapsed() > HANG {
                let _ = child.kill();
                let _ = child.wait();
                panic!("{cmd:?} still ran after {HANG:?}: it hangs");
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        Output {
            status,
            stdout: std::fs::read(&out_path).unwrap(),
            stderr: std::fs::read(&err_path).unwrap(),
        }
    }

    fn limit_reason(doc: &str) -> String {
        match parse_documents(doc.as_bytes()) {
            Err(FormatError::Limit { reason, .. }) => reason,
            other => panic!("not refused by a limit: {other:?}"),
        }
    }

    #[test]
    fn alias_expansion_is_bounded_by_bytes_below_the_node_cap() {
        let bomb = alias_bomb();
        let reason = limit_reason(&bomb);
        assert!(
            reason.contains(&format!(
                "more than {} bytes after alias expansion (near line 3;",
                expansion_budget(bomb.len())
            )),
            "{reason}"
        );
        // Copies kept for anchors count too: nested anchors copy their contents once
        // per level, so a chain of them is a bomb without a single alias.
        let mut chain = String::new();
        for i in 0..200 {
            chain.push_str(&format!("{}k{i}: &a{i}\n", " ".repeat(i)));
        }
        // ~62 KB of input, and 200 copies of the 40 KB leaf: 8 MB.
        chain.push_str(&format!(
            "{}leaf: {}\n",
            " ".repeat(200),
            "x".repeat(40_000)
        ));
        assert!(
            limit_reason(&chain).contains("bytes after alias expansion"),
            "anchor copies were not counted"
        );
    }

    #[test]
    fn anchors_used_as_people_use_them_stay_within_the_bound() {
        // A 200-byte anchor reused 20 times in a small file (the floor covers it) ...
        let mut small = format!("base: &b {{user: admin, url: '{}'}}\n", "u".repeat(150));
        for i in 0..20 {
            small.push_str(&format!("env{i}: {{<<: *b, name: e{i}}}\n"));
        }
        assert!(small.len() * 64 < MIN_EXPANSION_BUDGET);
        parse_documents(small.as_bytes()).unwrap();
        // ... and a large file whose defaults block is merged into 30 services.
        let mut large = String::from("defaults: &d\n");
        for i in 0..40 {
            large.push_str(&format!("  setting{i}: value-{i}-{}\n", "v".repeat(20)));
        }
        for s in 0..30 {
            large.push_str(&format!("svc{s}:\n  <<: *d\n"));
            for i in 0..40 {
                large.push_str(&format!("  own{i}: value-{i}-{}\n", "w".repeat(20)));
            }
        }
        parse_documents(large.as_bytes()).unwrap();
    }

    #[test]
    fn decrypt_of_an_alias_bomb_is_refused_with_memory_proportional_to_the_file() {
        let dir = tempdir();
        let file = dir.path().join("bomb.yaml");
        let bytes = as_sops_file(dir.path(), &alias_bomb());
        std::fs::write(&file, &bytes).unwrap();
        let (out, kib) = run_measured(&["decrypt", "bomb.yaml"], dir.path(), &[]);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains(&format!(
                "sopsync: bomb.yaml: the encrypted file cannot be read: yaml input exceeds a limit: more than {} bytes after alias expansion",
                expansion_budget(bytes.len())
            )),
            "{stderr}"
        );
        // 330 MB before the byte bound; now the process's own ~10 MB and the bound.
        assert!(
            kib < 64 * 1024,
            "peak RSS {kib} KiB for a {}-byte file",
            bytes.len()
        );
    }

    #[test]
    fn render_of_many_alias_bombs_stays_bounded_whatever_the_thread_count() {
        let dir = tempdir();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let bytes = as_sops_file(dir.path(), &alias_bomb());
        for i in 0..16 {
            std::fs::write(repo.join(format!("bomb{i}.yaml")), &bytes).unwrap();
        }
        let (out, kib) = run_measured(
            &["render", "repo"],
            dir.path(),
            &[("RAYON_NUM_THREADS", "8")],
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        for i in 0..16 {
            assert!(
                stderr.contains(&format!(
                    "bomb{i}.yaml: the encrypted file cannot be read: yaml input exceeds a limit"
                )),
                "{stderr}"
            );
        }
        // 2.6 GB before: one bomb held per thread.
        assert!(kib < 64 * 1024, "peak RSS {kib} KiB");
    }

    #[test]
    fn render_reserves_each_files_bound_so_threads_do_not_multiply_memory() {
        let dir = tempdir();
        let repo = dir.path().join("repo");
        std::fs::create_dir(&repo).unwrap();
        let bytes = as_sops_file(dir.path(), &bomb_under_the_bound());
        for i in 0..16 {
            std::fs::write(repo.join(format!("big{i}.yaml")), &bytes).unwrap();
        }
        // One malloc arena: glibc otherwise keeps each thread's own peak resident after
        // the memory is freed, which measures the allocator, not how many parses run at once.
        let env = [("RAYON_NUM_THREADS", "16"), ("MALLOC_ARENA_MAX", "1")];
        let (out, kib) = run_measured(&["render", "repo"], dir.path(), &env);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        // Each parse holds ~35 MB; sixteen at once (one a thread) held 530 MB. The shared
        // budget lets two of these run at a time.
        assert!(kib < 200 * 1024, "peak RSS {kib} KiB");
    }

    /// `sopsync decrypt` of the example Secret with `env` as its only key source.
    fn decrypt_with(dir: &Path, env: &[(&str, &Path)]) -> Output {
        let mut cmd = sopsync();
        cmd.arg("decrypt")
            .arg(project_root().join("examples/gitops/apps/web/secret.yaml"))
            .env("HOME", dir)
            .env_remove("XDG_CONFIG_HOME");
        for (k, v) in env {
            cmd.env(k, v);
        }
        run_with_deadline(&mut cmd, dir)
    }

    fn mkfifo(path: &Path) {
        run_ok(Command::new(tool("mkfifo")).arg(path));
    }

    fn assert_refused(out: &Output, source: &str, reason: &str) {
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(128), "{stderr}");
        assert!(
            stderr.contains(&format!("tried unusable source: {source} ({reason}")),
            "{stderr}"
        );
    }

    const NOT_REGULAR: &str = "not a regular file (a FIFO, device, socket or directory)";

    #[test]
    fn key_file_that_is_a_fifo_is_refused_without_blocking() {
        let dir = tempdir();
        let fifo = dir.path().join("keys.fifo");
        mkfifo(&fifo);
        let out = decrypt_with(dir.path(), &[("SOPS_AGE_KEY_FILE", &fifo)]);
        assert_refused(
            &out,
            &format!("SOPS_AGE_KEY_FILE={}", fifo.display()),
            NOT_REGULAR,
        );
    }

    #[test]
    fn key_file_that_is_an_endless_device_is_refused_without_reading_it() {
        let dir = tempdir();
        let zero = PathBuf::from("/dev/zero");
        // Address space capped at 1 GiB: the old unbounded read ends in an allocation
        // failure rather than in the machine's memory.
        let mut cmd = Command::new("sh");
        cmd.args(["-c", "ulimit -v 1048576 && exec \"$0\" \"$@\""])
            .arg(env!("CARGO_BIN_EXE_sopsync"))
            .arg("decrypt")
            .arg(project_root().join("examples/gitops/apps/web/secret.yaml"))
            .env_remove("SOPS_AGE_KEY")
            .env_remove("SOPS_AGE_KEY_CMD")
            .env("HOME", dir.path())
            .env_remove("XDG_CONFIG_HOME")
            .env("SOPS_AGE_KEY_FILE", &zero);
        let out = run_with_deadline(&mut cmd, dir.path());
        assert_refused(&out, "SOPS_AGE_KEY_FILE=/dev/zero", NOT_REGULAR);
    }

    #[test]
    fn default_key_file_that_is_a_fifo_is_refused_without_blocking() {
        let dir = tempdir();
        let keys = dir.path().join(".config/sops/age");
        std::fs::create_dir_all(&keys).unwrap();
        let fifo = keys.join("keys.txt");
        mkfifo(&fifo);
        let out = decrypt_with(dir.path(), &[]);
        assert_refused(&out, &fifo.display().to_string(), NOT_REGULAR);
    }

    #[test]
    fn key_file_over_the_size_cap_is_refused_with_the_cap_named() {
        let dir = tempdir();
        let big = dir.path().join("big.key");
        // A real identity first: the file is refused whole, not read up to the cap.
        let mut text = std::fs::read(project_root().join("keys-example/age.key")).unwrap();
        text.resize(2 << 20, b'#');
        std::fs::write(&big, text).unwrap();
        let out = decrypt_with(dir.path(), &[("SOPS_AGE_KEY_FILE", &big)]);
        assert_refused(
            &out,
            &format!("SOPS_AGE_KEY_FILE={}", big.display()),
            "larger than 1048576 bytes, more than any key file holds",
        );
    }
}

// ---- Settings files named by a repository or an operator: a `.sops.yaml` or a webhook
// secret file that is a FIFO or a device is refused at once, never waited on.

mod settings_files {
    use crate::support::{run_with_deadline, sopsync, tempdir};
    use std::time::Duration;

    /// Far above a refusal; a read that waits on the FIFO never ends.
    const DEADLINE: Duration = Duration::from_secs(60);

    fn mkfifo(path: &std::path::Path) {
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            path,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("mkfifo");
    }

    #[test]
    fn a_sops_yaml_that_is_a_fifo_or_a_device_is_refused_without_blocking() {
        let tmp = tempdir();
        std::fs::write(tmp.path().join("plain.yaml"), "password: hunter2\n").expect("write");
        mkfifo(&tmp.path().join(".sops.yaml"));
        let out = run_with_deadline(
            sopsync()
                .current_dir(tmp.path())
                .args(["encrypt", "plain.yaml"]),
            DEADLINE,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(
            stderr.contains(".sops.yaml") && stderr.contains("not a regular file"),
            "{stderr}"
        );
        assert!(out.stdout.is_empty());
        std::fs::remove_file(tmp.path().join(".sops.yaml")).expect("rm");
        std::os::unix::fs::symlink("/dev/zero", tmp.path().join(".sops.yaml")).expect("link");
        let out = run_with_deadline(
            sopsync()
                .current_dir(tmp.path())
                .args(["encrypt", "plain.yaml"]),
            DEADLINE,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{stderr}");
        assert!(stderr.contains("not a regular file"), "{stderr}");
    }

    #[test]
    fn a_webhook_secret_file_that_is_a_fifo_stops_the_controller_with_a_clear_error() {
        let tmp = tempdir();
        let fifo = tmp.path().join("hook-secret");
        mkfifo(&fifo);
        let out = run_with_deadline(
            sopsync()
                .args([
                    "controller",
                    "--listen",
                    "127.0.0.1:0",
                    "--webhook-secret-file",
                ])
                .arg(&fifo),
            DEADLINE,
        );
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{stderr}");
        assert!(
            stderr.contains("hook-secret") && stderr.contains("not a regular file"),
            "{stderr}"
        );
    }
}
