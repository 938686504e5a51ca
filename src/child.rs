//! Running a child process with a deadline and bounded output: the one place that
//! starts `git` and the `SOPS_AGE_KEY_CMD` command (STYLE.md 27: one helper per job).
//!
//! Guarantees:
//! - the child leads a process group of its own, and when it times out, overflows its
//!   output cap, or exits, that whole group is killed: the helpers it started (git's
//!   `git-remote-http`, `ssh`, `upload-pack`; a shell's background jobs) never outlive it.
//!   The exception is [`Limits::on_terminal`]: a child that may prompt on the user's
//!   terminal stays in our (foreground) process group, since a background group that
//!   reads the terminal is stopped by the kernel (SIGTTIN); then only the child itself
//!   is killed on timeout, and the person at the terminal can end the rest with Ctrl-C;
//! - the group is killed while the child is still a zombie (it is observed with
//!   `waitid(WNOWAIT)`, reaped afterwards), so its id, which is the group's id, cannot
//!   have been reused by an unrelated process when the signal is sent;
//! - at most `max_stdout` bytes of standard output and `max_stderr` of standard error
//!   are kept in memory; more standard output is an error (the caller parses it), more
//!   standard error is read and dropped (it is only shown to people).
//!
//! Assumptions: the caller has set the command's program, arguments, environment and
//! standard input; this module sets standard output and error and the process group.

use rustix::process::{kill_process_group, waitid, Pid, Signal, WaitId, WaitIdOptions};
use std::io::Read;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};
use zeroize::Zeroizing;

/// What a child may take.
#[derive(Clone, Copy, Debug)]
pub struct Limits {
    /// Wall-clock time from start to exit (and the end of its output).
    pub timeout: Duration,
    /// Largest standard output kept; more is an error.
    pub max_stdout: usize,
    /// Standard error: captured up to this many bytes (the rest is drained), or,
    /// with `None`, passed through to ours (a key command may prompt there).
    pub max_stderr: Option<usize>,
    /// The child may prompt on the terminal (a pinentry or password manager started by
    /// a person): it stays in our process group instead of leading its own.
    pub on_terminal: bool,
}

/// A child that ran to completion within its limits.
#[derive(Debug)]
pub struct Finished {
    /// How it exited.
    pub status: ExitStatus,
    /// Its standard output (wiped on drop: a key command prints keys).
    pub stdout: Zeroizing<Vec<u8>>,
    /// The first `max_stderr` bytes of its standard error (empty when passed through).
    pub stderr: Vec<u8>,
}

/// Why a child did not run to completion. Every variant means its process group has
/// been killed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ChildError {
    /// The program could not be started.
    #[error("cannot start it: {0}")]
    Spawn(std::io::Error),
    /// The deadline passed first.
    #[error("timed out after {}s", .0.as_secs())]
    Timeout(Duration),
    /// It printed more than the cap.
    #[error("its output exceeds {0} bytes")]
    OutputTooLarge(usize),
    /// Waiting for it failed.
    #[error("cannot wait for it: {0}")]
    Wait(std::io::Error),
}

/// How long the polling loop sleeps between looks at the child. Short enough that a
/// fast git command is not slowed noticeably, long enough to cost nothing.
const POLL: Duration = Duration::from_millis(10);

/// What a reader thread hands back: the bytes kept, and whether there were more.
type Captured = (Vec<u8>, bool);

/// Reads `from` to its end, keeping at most `cap` bytes; with `stop`, stops at the first
/// byte past the cap, closing the pipe (the writer then gets `EPIPE` instead of
/// filling memory or running on until the deadline).
fn capture(mut from: impl Read, cap: usize, stop: bool) -> Captured {
    let mut kept = Vec::new();
    let mut overflow = false;
    let mut buf = Zeroizing::new([0u8; 8192]);
    loop {
        match from.read(&mut buf[..]) {
            Ok(0) | Err(_) => return (kept, overflow),
            Ok(n) => {
                let room = cap.saturating_sub(kept.len());
                kept.extend_from_slice(&buf[..n.min(room)]);
                overflow |= n > room;
                if overflow && stop {
                    return (kept, overflow);
                }
            }
        }
    }
}

/// Starts a reader thread for one pipe; the channel yields what it captured.
fn reader(from: impl Read + Send + 'static, cap: usize, stop: bool) -> mpsc::Receiver<Captured> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(capture(from, cap, stop));
    });
    rx
}

/// Kills the child's whole process group, or only the child when it shares ours
/// ([`Limits::on_terminal`]). Errors are ignored: `ESRCH` means the group is already
/// empty, and nothing else can fail for our own child.
fn kill_group(group: Pid, on_terminal: bool) {
    if on_terminal {
        let _ = rustix::process::kill_process(group, Signal::KILL);
    } else {
        let _ = kill_process_group(group, Signal::KILL);
    }
}

/// Has the child exited? It is left a zombie (not reaped), so that its group id stays
/// reserved until [`kill_group`] has run.
fn exited(pid: Pid) -> std::io::Result<bool> {
    let options = WaitIdOptions::EXITED | WaitIdOptions::NOHANG | WaitIdOptions::NOWAIT;
    Ok(waitid(WaitId::Pid(pid), options)?.is_some())
}

/// Runs `cmd` to completion within `limits` (see the module's guarantees).
///
/// Errors: [`ChildError`]; on every error the child's group has been killed and the
/// child reaped.
pub fn run(cmd: &mut Command, limits: &Limits) -> Result<Finished, ChildError> {
    use std::os::unix::process::CommandExt;
    let deadline = Instant::now() + limits.timeout;
    // Group 0: a new group whose id is the child's pid, so one signal reaches
    // everything it starts (unless something leaves the group on purpose, as a
    // daemon such as gpg-agent does with setsid).
    if !limits.on_terminal {
        cmd.process_group(0);
    }
    cmd.stdout(Stdio::piped());
    cmd.stderr(match limits.max_stderr {
        Some(_) => Stdio::piped(),
        None => Stdio::inherit(),
    });
    let mut child = cmd.spawn().map_err(ChildError::Spawn)?;
    let pid = Pid::from_child(&child);
    let stdout = child
        .stdout
        .take()
        .map(|s| reader(s, limits.max_stdout, true));
    let stderr = match (child.stderr.take(), limits.max_stderr) {
        (Some(s), Some(cap)) => Some(reader(s, cap, false)),
        _ => None,
    };
    // Ends the group, reaps the child, and returns `e`.
    let mut fail = |e: ChildError| {
        kill_group(pid, limits.on_terminal);
        let _ = child.wait();
        Err(e)
    };
    loop {
        match exited(pid) {
            Ok(true) => break,
            Ok(false) if Instant::now() >= deadline => {
                return fail(ChildError::Timeout(limits.timeout))
            }
            Ok(false) => std::thread::sleep(POLL),
            Err(e) => return fail(ChildError::Wait(e)),
        }
    }
    // The child has exited: whatever it left behind in its group goes too (and with
    // it any copy of the pipes that would keep the readers waiting).
    kill_group(pid, limits.on_terminal);
    let status = child.wait().map_err(ChildError::Wait)?;
    // A helper that left the group may still hold a pipe open: wait for the readers
    // only until the deadline.
    let collect = |rx: Option<mpsc::Receiver<Captured>>| -> Result<Captured, ChildError> {
        let Some(rx) = rx else {
            return Ok((Vec::new(), false));
        };
        let left = deadline.saturating_duration_since(Instant::now());
        rx.recv_timeout(left)
            .map_err(|_| ChildError::Timeout(limits.timeout))
    };
    let (out, out_overflow) = collect(stdout)?;
    let out = Zeroizing::new(out);
    if out_overflow {
        return Err(ChildError::OutputTooLarge(limits.max_stdout));
    }
    let (err, _) = collect(stderr)?;
    Ok(Finished {
        status,
        stdout: out,
        stderr: err,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(max_stdout: usize) -> Limits {
        Limits {
            timeout: Duration::from_secs(30),
            max_stdout,
            max_stderr: Some(1024),
            on_terminal: false,
        }
    }

    #[test]
    fn output_and_status_come_back() {
        let done = run(
            Command::new("sh").args(["-c", "echo out; echo err >&2; exit 3"]),
            &limits(1024),
        )
        .expect("runs");
        assert_eq!(done.status.code(), Some(3));
        assert_eq!(&done.stdout[..], b"out\n");
        assert_eq!(done.stderr, b"err\n");
    }

    /// The process group the child ran in (field 5 of /proc/self/stat, read by `cut`,
    /// a member of the child's group).
    fn group_of_child(on_terminal: bool) -> String {
        let done = run(
            Command::new("sh").args(["-c", "cut -d' ' -f5 /proc/self/stat"]),
            &Limits {
                on_terminal,
                ..limits(1024)
            },
        )
        .expect("runs");
        String::from_utf8(done.stdout.to_vec())
            .expect("utf-8")
            .trim()
            .to_string()
    }

    #[test]
    fn a_child_leads_its_own_group_unless_it_may_prompt_on_the_terminal() {
        let ours = rustix::process::getpgrp().as_raw_nonzero().to_string();
        assert_ne!(group_of_child(false), ours);
        assert_eq!(group_of_child(true), ours);
    }

    #[test]
    fn output_over_the_cap_is_an_error() {
        let e = run(
            Command::new("sh").args(["-c", "head -c 5000 /dev/zero"]),
            &limits(4096),
        )
        .expect_err("too much output");
        assert!(matches!(e, ChildError::OutputTooLarge(4096)), "{e:?}");
    }
}
