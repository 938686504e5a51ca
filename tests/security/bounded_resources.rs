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
