//! Issue 11, point 4. Memory and time bounded by the input's size: YAML alias expansion, key files, key commands, FIFOs, git's helpers.

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
