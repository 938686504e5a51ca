//! The commands issue 15 adds, each against the real sops 3.11 with exact exit codes:
//! `exec-file` (FIFO, `--no-fifo`, `--filename`, `{}`, `--output-type`, the child's
//! exit code), `groups add` / `groups delete`, `decrypt`/`encrypt --output`, and `edit`
//! (reopening the editor on text that does not parse; wiping the plaintext when
//! interrupted). Every sopsync run gets a TMPDIR of its own, so "nothing left on disk"
//! is checked by reading everything under it.
//! https://github.com/sopsync/sopsync/issues/15

use crate::support::gnupg::GnuPg;
use crate::support::{project_root, run, run_ok, run_with_deadline, sops, sopsync, tempdir};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::Duration;

const CANARY: &str = "canary-c15-5d1e";
const DEADLINE: Duration = Duration::from_secs(60);

/// A temp dir with the test keys, a file the real sops encrypted for key 1, and an
/// empty TMPDIR for sopsync.
struct Fx {
    dir: tempfile::TempDir,
    key1: PathBuf,
    /// Keys 1 and 2 in one file (a 2-of-2 Shamir file needs both).
    both: PathBuf,
    r2: String,
}

fn recipient(key: &Path) -> String {
    std::fs::read_to_string(key)
        .unwrap()
        .lines()
        .find_map(|l| l.strip_prefix("# public key: "))
        .expect("the key file names its recipient")
        .to_string()
}

fn fx() -> Fx {
    let dir = tempdir();
    let data = project_root().join("tests/data");
    let key1 = data.join("age1.agekey");
    let key2 = data.join("age2.agekey");
    let both = dir.path().join("both.agekey");
    std::fs::write(
        &both,
        std::fs::read_to_string(&key1).unwrap() + &std::fs::read_to_string(&key2).unwrap(),
    )
    .unwrap();
    std::fs::create_dir(dir.path().join("tmp")).unwrap();
    std::fs::create_dir(dir.path().join("sops-tmp")).unwrap();
    std::fs::write(
        dir.path().join("plain.yaml"),
        format!("password: {CANARY}\nport: 5432\n"),
    )
    .unwrap();
    let enc = run_ok(sops().current_dir(dir.path()).args([
        "encrypt",
        "--age",
        &recipient(&key1),
        "plain.yaml",
    ]));
    std::fs::write(dir.path().join("enc.yaml"), enc).unwrap();
    Fx {
        r2: recipient(&key2),
        dir,
        key1,
        both,
    }
}

impl Fx {
    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn tmp(&self) -> PathBuf {
        self.path("tmp")
    }

    /// sopsync in the fixture dir, with key 1 and the fixture's TMPDIR.
    fn sopsync(&self) -> Command {
        let mut c = sopsync();
        c.current_dir(self.dir.path())
            .env("SOPS_AGE_KEY_FILE", &self.key1)
            .env("TMPDIR", self.tmp());
        c
    }

    /// The real sops in the fixture dir, with key 1 and a TMPDIR of its own (sops 3.11
    /// leaves its exec-file directory behind when it fails).
    fn sops(&self) -> Command {
        let mut c = sops();
        c.current_dir(self.dir.path())
            .env("SOPS_AGE_KEY_FILE", &self.key1)
            .env("TMPDIR", self.path("sops-tmp"));
        c
    }

    /// Fails unless sopsync's TMPDIR is empty (no private dir left, no plaintext).
    fn assert_tmp_is_empty(&self) {
        let left: Vec<_> = walk(&self.tmp());
        for f in &left {
            let text = std::fs::read(f).unwrap_or_default();
            assert!(
                !String::from_utf8_lossy(&text).contains(CANARY),
                "plaintext left in {}",
                f.display()
            );
        }
        let entries: Vec<_> = std::fs::read_dir(self.tmp())
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert!(entries.is_empty(), "left under TMPDIR: {entries:?}");
    }
}

fn walk(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn code(out: &Output) -> Option<i32> {
    out.status.code()
}

/// The `sops:` block without its base64 lines: the shape to compare with sops'.
fn metadata_shape(file: &str) -> String {
    file.split_once("\nsops:\n")
        .expect("a sops block")
        .1
        .lines()
        .filter(|l| {
            let t = l.trim();
            // The armored age stanzas' base64 lines (random per run).
            t.is_empty()
                || !t
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        })
        .filter(|l| !l.trim_start().starts_with("mac:") && !l.contains("lastmodified"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn exec_file_fifo_gives_the_child_the_plaintext_and_leaves_nothing_on_disk() {
    let f = fx();
    // What the command sees: the kind of file, the directory's mode, and the content.
    let probe = "stat -c '%F %a' {}; stat -c '%a' \"$(dirname {})\"; cat {}";
    let ours = f
        .sopsync()
        .args(["exec-file", "enc.yaml", probe])
        .output()
        .unwrap();
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let theirs = run_ok(f.sops().args(["exec-file", "enc.yaml", probe]));
    assert_eq!(text(&ours.stdout), text(&theirs));
    assert_eq!(
        text(&ours.stdout),
        format!("fifo 600\n700\npassword: {CANARY}\nport: 5432\n")
    );
    // A command that never opens the pipe does not keep us waiting.
    let out = run_with_deadline(
        f.sopsync().args(["exec-file", "enc.yaml", "true"]),
        DEADLINE,
    );
    assert_eq!(code(&out), Some(0), "{}", text(&out.stderr));
    f.assert_tmp_is_empty();
}

#[test]
fn exec_file_no_fifo_uses_a_0600_file_that_is_wiped_and_removed_after_the_child_exits() {
    let f = fx();
    let probe = "stat -c '%F %a' {}; basename {}; cat {}";
    let args = [
        "exec-file",
        "--no-fifo",
        "--filename",
        "app.json",
        "--output-type",
        "json",
        "enc.yaml",
        probe,
    ];
    let ours = f.sopsync().args(args).output().unwrap();
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    assert_eq!(text(&ours.stdout), text(&run_ok(f.sops().args(args))));
    assert!(
        text(&ours.stdout).starts_with("regular file 600\napp.json\n{\n"),
        "{}",
        text(&ours.stdout)
    );
    // Without --filename: sops' name, tmp-file and a random suffix.
    let ours = f
        .sopsync()
        .args(["exec-file", "--no-fifo", "enc.yaml", "basename {}"])
        .output()
        .unwrap();
    assert!(
        text(&ours.stdout).starts_with("tmp-file"),
        "{}",
        text(&ours.stdout)
    );
    f.assert_tmp_is_empty();
}

#[test]
fn exec_file_passes_the_childs_exit_code_back_as_sops_does_and_still_wipes() {
    let f = fx();
    for (command, want) in [("exit 7", 7), ("kill -9 $$", 255)] {
        for no_fifo in [false, true] {
            let mut args = vec!["exec-file"];
            if no_fifo {
                args.push("--no-fifo");
            }
            args.extend(["enc.yaml", command]);
            let ours = f.sopsync().args(&args).output().unwrap();
            let theirs = run(f.sops().args(&args));
            assert_eq!(code(&theirs), Some(want), "sops, {args:?}");
            assert_eq!(code(&ours), Some(want), "{args:?}: {}", text(&ours.stderr));
        }
    }
    f.assert_tmp_is_empty();
}

#[test]
fn exec_file_refuses_a_filename_that_is_not_a_local_path_and_runs_nothing() {
    let f = fx();
    // sops refuses these since 3.12 ("The provided filename is not a local path.",
    // exit 1); 3.11 fails (exit 1) only for a name with a directory in it, and for
    // `../name` makes its pipe outside its private directory and leaves it there, so
    // sops 3.11 is run here only on the name it refuses.
    let theirs = run(f
        .sops()
        .args(["exec-file", "--filename", "a/b", "enc.yaml", "touch ran"]));
    assert_eq!(code(&theirs), Some(1), "sops, a/b");
    for name in ["../escape", "/etc/x", "a/b"] {
        let args = ["exec-file", "--filename", name, "enc.yaml", "touch ran"];
        let ours = f.sopsync().args(args).output().unwrap();
        assert_eq!(
            text(&ours.stderr),
            format!("sopsync: --filename {name}: the provided filename is not a local path\nhint: give a plain file name such as secrets.yaml\n")
        );
        assert_eq!(code(&ours), Some(1));
        assert!(!f.path("ran").exists(), "{name}: the command did not run");
    }
    f.assert_tmp_is_empty();
}

#[test]
fn exec_file_no_fifo_wipes_the_plaintext_when_sopsync_is_terminated() {
    let f = fx();
    // The command signals sopsync (its parent) and waits: the file must be gone when
    // sopsync exits, though the command never finished on its own.
    let out = run_with_deadline(
        f.sopsync().args([
            "exec-file",
            "--no-fifo",
            "enc.yaml",
            "kill -TERM $PPID; sleep 600",
        ]),
        DEADLINE,
    );
    assert_eq!(code(&out), Some(143), "{}", text(&out.stderr));
    assert_eq!(
        text(&out.stderr),
        "sopsync: interrupted by SIGTERM; the plaintext temporary files were wiped and removed\n"
    );
    f.assert_tmp_is_empty();
}

#[test]
fn groups_add_makes_the_file_sops_makes_and_both_open_each_others() {
    let f = fx();
    let args = ["groups", "add", "--file", "enc.yaml", "--age", &f.r2];
    let ours = f.sopsync().args(args).output().unwrap();
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let theirs = run_ok(f.sops().args(args));
    let (ours, theirs) = (text(&ours.stdout), text(&theirs));
    assert_eq!(metadata_shape(&ours), metadata_shape(&theirs));
    assert!(metadata_shape(&ours).contains("shamir_threshold: 2"));
    // The values, the MAC and lastmodified are the input's: the data key is the same.
    let input = std::fs::read_to_string(f.path("enc.yaml")).unwrap();
    let head = |t: &str| t.split_once("\nsops:\n").unwrap().0.to_string();
    let line = |t: &str, k: &str| {
        t.lines()
            .find(|l| l.trim_start().starts_with(k))
            .unwrap()
            .to_string()
    };
    assert_eq!(head(&ours), head(&input));
    assert_eq!(line(&ours, "mac:"), line(&input, "mac:"));
    assert_eq!(line(&ours, "lastmodified:"), line(&input, "lastmodified:"));
    std::fs::write(f.path("ours2.yaml"), &ours).unwrap();
    std::fs::write(f.path("sops2.yaml"), &theirs).unwrap();
    // 2 of 2: sops opens ours with both keys and not with one; we open sops'.
    let d = run_ok(
        f.sops()
            .env("SOPS_AGE_KEY_FILE", &f.both)
            .args(["decrypt", "ours2.yaml"]),
    );
    assert_eq!(text(&d), format!("password: {CANARY}\nport: 5432\n"));
    assert_eq!(
        code(&run(f.sops().args(["decrypt", "ours2.yaml"]))),
        Some(128)
    );
    let d = run_ok(
        f.sopsync()
            .env("SOPS_AGE_KEY_FILE", &f.both)
            .args(["decrypt", "sops2.yaml"]),
    );
    assert_eq!(text(&d), format!("password: {CANARY}\nport: 5432\n"));

    // delete: a threshold of 2 cannot stay with one group (exit 1 in both); with 1 it
    // can, and the result (one group, threshold 1) is sops' again, with -i in place.
    for (who, file) in [("sopsync", "sops2.yaml"), ("sops", "ours2.yaml")] {
        let mut c = if who == "sops" { f.sops() } else { f.sopsync() };
        let out = run(c
            .env("SOPS_AGE_KEY_FILE", &f.both)
            .args(["groups", "delete", "--file", file, "0"]));
        assert_eq!(code(&out), Some(1), "{who}: {}", text(&out.stderr));
    }
    let del = [
        "groups",
        "delete",
        "--file",
        "sops2.yaml",
        "--shamir-secret-sharing-threshold",
        "1",
        "0",
    ];
    let theirs = run_ok(f.sops().env("SOPS_AGE_KEY_FILE", &f.both).args(del));
    let mut del_i = del.to_vec();
    del_i.insert(2, "-i");
    let out = f
        .sopsync()
        .env("SOPS_AGE_KEY_FILE", &f.both)
        .args(&del_i)
        .output()
        .unwrap();
    assert!(
        out.status.success() && out.stdout.is_empty(),
        "{}",
        text(&out.stderr)
    );
    let ours = std::fs::read_to_string(f.path("sops2.yaml")).unwrap();
    assert_eq!(metadata_shape(&ours), metadata_shape(&text(&theirs)));
    // Group 0 (key 1) is gone: key 2 alone opens it, in sops.
    let key2 = project_root().join("tests/data/age2.agekey");
    let d = run_ok(
        f.sops()
            .env("SOPS_AGE_KEY_FILE", &key2)
            .args(["decrypt", "sops2.yaml"]),
    );
    assert_eq!(text(&d), format!("password: {CANARY}\nport: 5432\n"));
}

#[test]
fn groups_add_pgp_makes_the_group_sops_makes_and_both_open_each_others() {
    let f = fx();
    let g = GnuPg::with_key(f.dir.path(), "gp");
    let empty = GnuPg {
        home: f.path("nogpg"),
        fingerprint: String::new(),
    };
    std::fs::create_dir(&empty.home).unwrap();
    std::fs::set_permissions(
        &empty.home,
        std::os::unix::fs::PermissionsExt::from_mode(0o700),
    )
    .unwrap();
    let with_gpg = |mut c: Command, home: &Path| {
        c.env("GNUPGHOME", home)
            .env_remove("SOPS_PGP_FP")
            .env_remove("SOPS_GPG_EXEC");
        c
    };
    let args = [
        "groups",
        "add",
        "--file",
        "enc.yaml",
        "--pgp",
        &g.fingerprint,
    ];
    let ours = with_gpg(f.sopsync(), &g.home).args(args).output().unwrap();
    assert!(ours.status.success(), "{}", text(&ours.stderr));
    let theirs = run_ok(with_gpg(f.sops(), &g.home).args(args));
    let (ours, theirs) = (text(&ours.stdout), text(&theirs));
    // The same shape as sops' (the PGP entry's created_at is the time of the run).
    let shape = |t: &str| {
        metadata_shape(t)
            .lines()
            .filter(|l| {
                !l.trim_start()
                    .trim_start_matches("- ")
                    .starts_with("created_at:")
            })
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(shape(&ours), shape(&theirs));
    assert!(ours.contains(&format!("fp: {}", g.fingerprint)), "{ours}");
    assert!(shape(&ours).contains("shamir_threshold: 2"), "{ours}");
    std::fs::write(f.path("ours-pgp.yaml"), &ours).unwrap();
    std::fs::write(f.path("sops-pgp.yaml"), &theirs).unwrap();
    let plain = format!("password: {CANARY}\nport: 5432\n");
    // 2 of 2 (age key 1, the GnuPG key): sops opens ours with both, not without GnuPG's.
    let d = run_ok(with_gpg(f.sops(), &g.home).args(["decrypt", "ours-pgp.yaml"]));
    assert_eq!(text(&d), plain);
    let out = run(with_gpg(f.sops(), &empty.home).args(["decrypt", "ours-pgp.yaml"]));
    assert_eq!(code(&out), Some(128), "{}", text(&out.stderr));
    // We open sops', and delete its age group through the GnuPG key alone remaining.
    let d = run_ok(with_gpg(f.sopsync(), &g.home).args(["decrypt", "sops-pgp.yaml"]));
    assert_eq!(text(&d), plain);
    let del = [
        "groups",
        "delete",
        "--file",
        "sops-pgp.yaml",
        "--shamir-secret-sharing-threshold",
        "1",
        "0",
    ];
    let left = run_ok(with_gpg(f.sopsync(), &g.home).args(del));
    assert!(!text(&left).contains("age:"), "{}", text(&left));
    std::fs::write(f.path("pgp-only.yaml"), &left).unwrap();
    let d = run_ok(
        with_gpg(f.sops(), &g.home)
            .env("SOPS_AGE_KEY_FILE", f.path("no-such-key"))
            .args(["decrypt", "pgp-only.yaml"]),
    );
    assert_eq!(text(&d), plain);
}

#[test]
fn groups_refusals_exit_with_sops_codes_and_write_nothing() {
    let f = fx();
    let before = std::fs::read(f.path("enc.yaml")).unwrap();
    let r2 = f.r2.clone();
    let cases: Vec<(Vec<&str>, i32)> = vec![
        (
            vec!["groups", "add", "--file", "enc.yaml", "--age", &r2, "extra"],
            1,
        ),
        (vec!["groups", "add", "--age", &r2], 2),
        (vec!["groups", "delete", "--file", "enc.yaml", "x"], 1),
        (vec!["groups", "delete", "--file", "enc.yaml"], 1),
        (vec!["groups", "delete", "--file", "enc.yaml", "0", "1"], 1),
        // sops 3.11 panics on an index past the end (Go's exit 2).
        (vec!["groups", "delete", "--file", "enc.yaml", "-i", "5"], 2),
    ];
    for (args, want) in cases {
        assert_eq!(
            code(&run(f.sops().args(&args))),
            Some(want),
            "sops {args:?}"
        );
        let ours = f.sopsync().args(&args).output().unwrap();
        assert_eq!(code(&ours), Some(want), "{args:?}: {}", text(&ours.stderr));
        assert!(ours.stdout.is_empty(), "{args:?}");
    }
    assert_eq!(std::fs::read(f.path("enc.yaml")).unwrap(), before);
}

#[test]
fn decrypt_and_encrypt_output_write_what_sops_writes() {
    let f = fx();
    run_ok(
        f.sops()
            .args(["decrypt", "--output", "theirs.yaml", "enc.yaml"]),
    );
    run_ok(
        f.sopsync()
            .args(["decrypt", "--output", "ours.yaml", "enc.yaml"]),
    );
    assert_eq!(
        std::fs::read(f.path("ours.yaml")).unwrap(),
        std::fs::read(f.path("theirs.yaml")).unwrap()
    );
    // sops creates it 0644 (os.Create); a new plaintext file here is 0600.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(f.path("ours.yaml"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // encrypt --output: sops opens ours, and -i with --output is exit 8 in both.
    let r1 = recipient(&f.key1);
    run_ok(f.sopsync().args([
        "encrypt",
        "--age",
        &r1,
        "--output",
        "o.enc.yaml",
        "plain.yaml",
    ]));
    let d = run_ok(f.sops().args(["decrypt", "o.enc.yaml"]));
    assert_eq!(text(&d), format!("password: {CANARY}\nport: 5432\n"));
    for cmd in ["encrypt", "decrypt"] {
        let file = if cmd == "encrypt" {
            "plain.yaml"
        } else {
            "enc.yaml"
        };
        let args = [cmd, "--age", &r1, "-i", "--output", "x", file];
        let args: Vec<&str> = args
            .into_iter()
            .filter(|a| cmd == "encrypt" || (*a != "--age" && *a != r1))
            .collect();
        assert_eq!(code(&run(f.sops().args(&args))), Some(8), "sops {args:?}");
        assert_eq!(
            code(&f.sopsync().args(&args).output().unwrap()),
            Some(8),
            "{args:?}"
        );
    }
}

fn write_editor(dir: &Path, name: &str, body: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("#!/bin/sh\n{body}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).unwrap();
    p
}

#[test]
fn edit_wipes_the_plaintext_and_the_editors_copies_when_interrupted() {
    let f = fx();
    let before = std::fs::read(f.path("enc.yaml")).unwrap();
    for (signal, want) in [("INT", 130), ("TERM", 143), ("HUP", 129)] {
        // The editor changes the file, leaves a swap copy beside it (as vim does),
        // records the directory, signals sopsync and keeps running.
        let editor = write_editor(
            f.dir.path(),
            "sig.sh",
            &format!(
                "dirname \"$1\" > {0}/seen; echo 'extra: 1' >> \"$1\"; cp \"$1\" \"$1.swp\"; kill -{signal} $PPID; sleep 600",
                f.dir.path().display()
            ),
        );
        let out = run_with_deadline(
            f.sopsync()
                .env("EDITOR", &editor)
                .env_remove("SOPS_EDITOR")
                .args(["edit", "enc.yaml"]),
            DEADLINE,
        );
        assert_eq!(code(&out), Some(want), "SIG{signal}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stderr),
            format!("sopsync: interrupted by SIG{signal}; the plaintext temporary files were wiped and removed\n")
        );
        let seen = std::fs::read_to_string(f.path("seen")).unwrap();
        assert!(
            !Path::new(seen.trim()).exists(),
            "the private dir {seen} is gone"
        );
        f.assert_tmp_is_empty();
        assert_eq!(
            std::fs::read(f.path("enc.yaml")).unwrap(),
            before,
            "nothing written"
        );
    }
}

#[test]
fn edit_reopens_the_editor_on_a_terminal_when_the_text_does_not_parse() {
    let f = fx();
    // First run: text that does not parse; second run: the user fixes it (the first
    // change is still there, so the fix edits what the user wrote).
    let editor = write_editor(
        f.dir.path(),
        "fix.sh",
        &format!(
            "n=$(cat {0}/runs 2>/dev/null || echo 0); n=$((n+1)); echo $n > {0}/runs\n\
             if [ $n = 1 ]; then printf 'password: [unclosed\\nport: 1\\n' > \"$1\"; \
             else sed -i 's/\\[unclosed/fixed/' \"$1\"; fi",
            f.dir.path().display()
        ),
    );
    // `script` gives sopsync a terminal; the newline answers the prompt.
    let sopsync_bin = env!("CARGO_BIN_EXE_sopsync");
    let mut c = Command::new(crate::support::tool("script"));
    c.args(["-qec", &format!("{sopsync_bin} edit enc.yaml"), "/dev/null"])
        .current_dir(f.dir.path())
        .env("SOPS_AGE_KEY_FILE", &f.key1)
        .env("TMPDIR", f.tmp())
        .env("EDITOR", &editor)
        .env_remove("SOPS_EDITOR");
    let mut child = c
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    {
        use std::io::Write;
        child.stdin.take().unwrap().write_all(b"\n").unwrap();
    }
    let out = child.wait_with_output().unwrap();
    let shown = text(&out.stdout);
    assert!(out.status.success(), "{shown}");
    assert!(
        shown.contains("the edited file is not valid yaml")
            && shown.contains("Press Enter to return to the editor, or Ctrl+C to exit"),
        "{shown}"
    );
    assert_eq!(std::fs::read_to_string(f.path("runs")).unwrap().trim(), "2");
    let d = run_ok(f.sops().args(["decrypt", "enc.yaml"]));
    assert_eq!(text(&d), "password: fixed\nport: 1\n");
    f.assert_tmp_is_empty();

    // Without a terminal there is nobody to answer: sops 3.11 starts the editor again
    // without end; here it fails once, writes nothing and leaves nothing.
    let before = std::fs::read(f.path("enc.yaml")).unwrap();
    std::fs::remove_file(f.path("runs")).unwrap();
    let out = run_with_deadline(
        f.sopsync()
            .env("EDITOR", &editor)
            .env_remove("SOPS_EDITOR")
            .args(["edit", "enc.yaml"]),
        DEADLINE,
    );
    assert_eq!(code(&out), Some(2), "{}", text(&out.stderr));
    assert!(
        text(&out.stderr).contains("on a terminal it reopens the editor"),
        "{}",
        text(&out.stderr)
    );
    assert_eq!(std::fs::read_to_string(f.path("runs")).unwrap().trim(), "1");
    assert_eq!(std::fs::read(f.path("enc.yaml")).unwrap(), before);
    f.assert_tmp_is_empty();
}

/// Makes the fixture reachable by `nobody` and its TMPDIR sticky and world-writable,
/// as /tmp is, so that `--user nobody` runs where an attacker would. Fails (never
/// skips) when the tests are not run as root: `--user` needs it.
fn fx_for_user_nobody() -> Fx {
    use std::os::unix::fs::PermissionsExt;
    assert!(
        rustix::process::getuid().is_root(),
        "exec-file --user needs root: run these tests as root (CI does)"
    );
    let f = fx();
    let mode = |p: &Path, m| std::fs::set_permissions(p, std::fs::Permissions::from_mode(m));
    mode(f.dir.path(), 0o755).unwrap();
    mode(&f.tmp(), 0o1777).unwrap();
    f
}

#[test]
fn exec_file_user_command_cannot_swap_the_private_dir_for_a_link_and_make_root_wipe_its_target() {
    let f = fx_for_user_nobody();
    let victim = f.path("victim");
    std::fs::create_dir(&victim).unwrap();
    std::fs::write(victim.join("keep.txt"), "root's data\n").unwrap();
    // The user's command moves the private directory away (it would own it) and puts a
    // link to the victim in its place; sopsync, as root, then wipes "the directory".
    let attack = format!(
        "d=$(dirname {{}}); mv \"$d\" {moved}; ln -s {victim} \"$d\"",
        moved = f.tmp().join("moved").display(),
        victim = victim.display(),
    );
    for no_fifo in [false, true] {
        let mut args = vec!["exec-file", "--user", "nobody"];
        if no_fifo {
            args.push("--no-fifo");
        }
        args.extend(["enc.yaml", &attack]);
        let out = run_with_deadline(f.sopsync().args(&args), DEADLINE);
        assert_eq!(
            std::fs::read_to_string(victim.join("keep.txt"))
                .ok()
                .as_deref(),
            Some("root's data\n"),
            "{args:?}: {}",
            text(&out.stderr)
        );
    }
    assert!(
        !f.tmp().join("moved").exists(),
        "the user moved the directory"
    );
    f.assert_tmp_is_empty();
}

#[test]
fn exec_file_user_runs_the_command_as_the_user_on_its_own_file_in_a_root_owned_dir() {
    let f = fx_for_user_nobody();
    let probe = "id -un; stat -c '%U %a' {}; stat -c '%U %a' \"$(dirname {})\"; cat {}";
    for no_fifo in [false, true] {
        let mut args = vec!["exec-file", "--user", "nobody"];
        if no_fifo {
            args.push("--no-fifo");
        }
        args.extend(["enc.yaml", probe]);
        let out = run_with_deadline(f.sopsync().args(&args), DEADLINE);
        assert_eq!(code(&out), Some(0), "{args:?}: {}", text(&out.stderr));
        assert_eq!(
            text(&out.stdout),
            format!("nobody\nnobody 600\nroot 711\npassword: {CANARY}\nport: 5432\n"),
            "{args:?}"
        );
    }
    f.assert_tmp_is_empty();
}
