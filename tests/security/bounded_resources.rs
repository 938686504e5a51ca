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
