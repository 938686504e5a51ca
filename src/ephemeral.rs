//! Last-resort plaintext on disk, for `edit` (an editor needs a file) and
//! `exec-file --no-fifo` (a command needs a file): a 0700 directory of our own whose
//! files are overwritten with zeros and removed on drop, and, for the CLI commands that
//! run a child on it, on SIGINT, SIGTERM or SIGHUP too.
//!
//! Guarantees:
//! - [`PrivateDir`] is created 0700 and its files 0600 (`O_EXCL`); on drop every regular
//!   file in it is zeroed and removed, not only the one we made: an editor leaves swap
//!   and backup copies of the plaintext beside the file (vim's `.swp`, `file~`);
//! - after [`wipe_on_interrupt`], a SIGINT, SIGTERM or SIGHUP ends the process only
//!   after the child started by [`run_foreground`] has exited (it is sent SIGTERM,
//!   then SIGKILL if it is still there after [`CHILD_GRACE`]) and every live
//!   [`PrivateDir`] has been wiped; the exit code is 128 + the signal's number.
//!
//! Assumptions: only one-shot CLI commands call [`wipe_on_interrupt`]; the controller
//! has its own graceful shutdown on SIGTERM and must not get this one.

use rustix::process::{kill_process, waitid, Pid, Signal, WaitId, WaitIdOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus};
use std::sync::{Mutex, MutexGuard, OnceLock};
use std::time::{Duration, Instant};

/// What the signal thread must clean up: every live private directory and the child
/// running on one of them.
#[derive(Default)]
struct Live {
    dirs: Vec<PathBuf>,
    child: Option<Pid>,
}

/// Shared by the signal thread, [`PrivateDir`] and [`run_foreground`]; whoever holds it
/// may wipe, so a wipe on drop and one on a signal never run at once.
static LIVE: Mutex<Live> = Mutex::new(Live {
    dirs: Vec::new(),
    child: None,
});

fn live() -> MutexGuard<'static, Live> {
    // A panic while holding it leaves the lists as they were: still right to use.
    LIVE.lock().unwrap_or_else(|p| p.into_inner())
}

/// A private directory for plaintext.
pub struct PrivateDir {
    dir: Option<tempfile::TempDir>,
}

impl PrivateDir {
    /// Creates a new 0700 directory under the system temporary directory.
    pub fn create(prefix: &str) -> std::io::Result<PrivateDir> {
        use std::os::unix::fs::PermissionsExt;
        // Registered while the lock is held, so that a signal arriving now finds it.
        let mut live = live();
        let dir = tempfile::Builder::new().prefix(prefix).tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        live.dirs.push(dir.path().to_path_buf());
        Ok(PrivateDir { dir: Some(dir) })
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or_else(|| Path::new("/"))
    }

    /// Creates `name` (one path component) 0600 in the directory and writes `bytes`.
    pub fn create_file(&self, name: &str, bytes: &[u8]) -> std::io::Result<PathBuf> {
        use std::os::unix::fs::OpenOptionsExt;
        let path = self.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(path)
    }

    /// Creates a 0600 named pipe `name` (one path component) in the directory.
    pub fn create_fifo(&self, name: &str) -> std::io::Result<PathBuf> {
        let path = self.path().join(name);
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &path,
            rustix::fs::Mode::RUSR | rustix::fs::Mode::WUSR,
        )?;
        Ok(path)
    }
}

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let mut live = live();
        if let Some(d) = self.dir.take() {
            wipe_dir(d.path());
            live.dirs.retain(|p| p != d.path());
            let _ = d.close();
        }
    }
}

/// Zeroes and removes every regular file in `dir` (what the editor left, under any
/// name), then the directory (named pipes and the rest are removed with it).
///
/// Everything goes through a handle on the directory opened with `O_NOFOLLOW`, and each
/// file is opened from it with `O_NOFOLLOW` too: we run as root for `exec-file --user`,
/// and a link put where the directory or a file was must never lead us to zero and
/// remove the files it points to.
fn wipe_dir(dir: &Path) {
    use rustix::fs::{openat, Dir, FileType, Mode, OFlags, CWD};
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    if let Ok(fd) = openat(CWD, dir, flags, Mode::empty()) {
        if let Ok(entries) = Dir::read_from(&fd) {
            for entry in entries.flatten() {
                // The entry's type only saves an open; the handle's own is checked.
                if matches!(entry.file_type(), FileType::RegularFile | FileType::Unknown) {
                    wipe_file(&fd, entry.file_name());
                }
            }
        }
    }
    // std removes a link in the directory's place, never what it points to.
    let _ = std::fs::remove_dir_all(dir);
}

/// Overwrites the regular file `name` in the directory `dir` with zeros and removes it.
fn wipe_file(dir: &rustix::fd::OwnedFd, name: &std::ffi::CStr) {
    use rustix::fs::{openat, unlinkat, AtFlags, Mode, OFlags};
    // NONBLOCK: a named pipe put in the file's place must not keep us waiting.
    let flags = OFlags::WRONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    let Ok(fd) = openat(dir, name, flags, Mode::empty()) else {
        return;
    };
    let mut f = std::fs::File::from(fd);
    // fstat of the handle: what we opened, not what the name is now.
    let Ok(meta) = f.metadata() else {
        return;
    };
    if !meta.is_file() {
        return;
    }
    let zeros = vec![0u8; 64 * 1024];
    let mut left = meta.len();
    while left > 0 {
        let n = left.min(zeros.len() as u64) as usize;
        if f.write_all(&zeros[..n]).is_err() {
            break;
        }
        left -= n as u64;
    }
    let _ = f.sync_all();
    let _ = unlinkat(dir, name, AtFlags::empty());
}

/// A private temporary file holding plaintext (one file in its own [`PrivateDir`]).
pub struct EphemeralFile {
    dir: PrivateDir,
    path: PathBuf,
}

impl EphemeralFile {
    /// Creates `name` (a base name) in a new private directory and writes `bytes`.
    pub fn create(name: &str, bytes: &[u8]) -> std::io::Result<EphemeralFile> {
        let dir = PrivateDir::create("sopsync-edit-")?;
        let path = dir.create_file(name, bytes)?;
        Ok(EphemeralFile { dir, path })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

/// How long a child is given to exit after SIGTERM before it is killed: an editor saves
/// its recovery file and exits well within it; one that ignores SIGTERM must not keep
/// the plaintext on disk.
pub const CHILD_GRACE: Duration = Duration::from_secs(5);

/// Makes SIGINT, SIGTERM and SIGHUP wipe every [`PrivateDir`] before the process exits,
/// for the rest of the process (a signal handler cannot be removed). Idempotent.
///
/// The handlers are tokio's (already linked for the controller), which need no
/// `unsafe` here: a thread of its own waits for the signals and does the cleanup.
pub fn wipe_on_interrupt() -> std::io::Result<()> {
    static STARTED: OnceLock<Result<(), String>> = OnceLock::new();
    STARTED
        .get_or_init(start_signal_thread)
        .clone()
        .map_err(std::io::Error::other)
}

fn start_signal_thread() -> Result<(), String> {
    let (ready, installed) = std::sync::mpsc::channel::<Result<(), String>>();
    std::thread::Builder::new()
        .name("sopsync-signals".into())
        .spawn(move || {
            use tokio::signal::unix::{signal, SignalKind};
            let rt = match tokio::runtime::Builder::new_current_thread()
                .enable_io()
                .build()
            {
                Ok(rt) => rt,
                Err(e) => {
                    let _ = ready.send(Err(e.to_string()));
                    return;
                }
            };
            rt.block_on(async move {
                let streams = (|| {
                    Ok::<_, std::io::Error>((
                        signal(SignalKind::interrupt())?,
                        signal(SignalKind::terminate())?,
                        signal(SignalKind::hangup())?,
                    ))
                })();
                let (mut int, mut term, mut hup) = match streams {
                    Ok(s) => s,
                    Err(e) => {
                        let _ = ready.send(Err(e.to_string()));
                        return;
                    }
                };
                let _ = ready.send(Ok(()));
                let (name, number) = tokio::select! {
                    _ = int.recv() => ("SIGINT", 2),
                    _ = term.recv() => ("SIGTERM", 15),
                    _ = hup.recv() => ("SIGHUP", 1),
                };
                clean_up_and_exit(name, number)
            });
        })
        .map_err(|e| e.to_string())?;
    installed
        .recv()
        .map_err(|_| "the signal thread ended before it was ready".to_string())?
}

/// Ends the child, wipes every private directory and exits, holding the lock so that
/// nothing else wipes, reaps or spawns meanwhile.
fn clean_up_and_exit(name: &str, number: i32) -> ! {
    let live = live();
    if let Some(pid) = live.child {
        // Not reaped yet (run_foreground reaps only after taking the lock), so the pid
        // is still our child's.
        let _ = kill_process(pid, Signal::TERM);
        let deadline = Instant::now() + CHILD_GRACE;
        while !exited(pid, WaitIdOptions::NOHANG) {
            if Instant::now() >= deadline {
                let _ = kill_process(pid, Signal::KILL);
                exited(pid, WaitIdOptions::empty());
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
    let wiped = live.dirs.len();
    for dir in &live.dirs {
        wipe_dir(dir);
    }
    let what = if wiped == 0 {
        String::new()
    } else {
        "; the plaintext temporary files were wiped and removed".into()
    };
    eprintln!("sopsync: interrupted by {name}{what}");
    std::process::exit(128 + number)
}

/// Whether `pid` has exited (leaving it a zombie: `WNOWAIT`); with no `NOHANG` in
/// `how`, waits for it. A pid that is not (or no longer) our child counts as exited.
fn exited(pid: Pid, how: WaitIdOptions) -> bool {
    loop {
        match waitid(
            WaitId::Pid(pid),
            how | WaitIdOptions::EXITED | WaitIdOptions::NOWAIT,
        ) {
            Ok(Some(_)) => return true,
            Ok(None) => return false,
            Err(rustix::io::Errno::INTR) => continue,
            Err(_) => return true,
        }
    }
}

/// Runs `cmd` with our standard streams and waits for it, known to the signal thread
/// meanwhile (so that an interrupt ends it before the files it reads are wiped).
pub fn run_foreground(cmd: &mut Command) -> std::io::Result<ExitStatus> {
    let mut child = {
        let mut live = live();
        let child = cmd.spawn()?;
        live.child = Some(Pid::from_child(&child));
        child
    };
    let pid = Pid::from_child(&child);
    exited(pid, WaitIdOptions::empty());
    live().child = None;
    child.wait()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_private_dir_is_0700_and_drop_wipes_every_file_in_it() {
        use std::os::unix::fs::PermissionsExt;
        let dir = PrivateDir::create("sopsync-unit-").unwrap();
        let path = dir.path().to_path_buf();
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700);
        let file = dir.create_file("f.yaml", b"plain").unwrap();
        assert_eq!(
            std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o600
        );
        // What an editor leaves beside the file is wiped too.
        std::fs::write(path.join(".f.yaml.swp"), b"plain").unwrap();
        dir.create_fifo("pipe").unwrap();
        assert!(live().dirs.contains(&path));
        drop(dir);
        assert!(!path.exists());
        assert!(!live().dirs.contains(&path));
    }

    #[test]
    fn a_wipe_never_follows_a_link_put_in_the_directorys_or_a_files_place() {
        let root = tempfile::tempdir().unwrap();
        let victim = root.path().join("victim");
        std::fs::create_dir(&victim).unwrap();
        std::fs::write(victim.join("keep"), b"data").unwrap();
        let swapped = root.path().join("swapped");
        std::os::unix::fs::symlink(&victim, &swapped).unwrap();
        wipe_dir(&swapped);
        let dir = root.path().join("dir");
        std::fs::create_dir(&dir).unwrap();
        std::os::unix::fs::symlink(victim.join("keep"), dir.join("link")).unwrap();
        wipe_dir(&dir);
        assert_eq!(std::fs::read(victim.join("keep")).unwrap(), b"data");
        assert!(!swapped.exists() && !dir.exists());
    }
}
