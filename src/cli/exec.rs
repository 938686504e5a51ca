//! `sopsync exec-file`: run a command on the decrypted file, as sops 3.11 does. The
//! plaintext reaches the command through a named pipe in a private 0700 directory
//! (nothing on disk), or with `--no-fifo` through a 0600 file there that is wiped and
//! removed when the command exits, fails, or we are interrupted (`ephemeral.rs`).
//! With `--user`, only the pipe or file becomes the user's; the directory stays ours,
//! 0711, so the user's command cannot move it and leave a link for us to wipe as root.
//!
//! The command is run as sops runs it, `sh -c COMMAND` (the `sh` on PATH, as for
//! `exec-env`; sops names /bin/sh), with every `{}` in it
//! replaced by the file's path as text before the shell reads it. The path is ours
//! (`$TMPDIR/sopsync-exec-XXXXXX/NAME`) apart from `--filename`, which must be a plain
//! file name; a name with spaces or shell characters needs quotes in the command
//! (`'cat "{}"'`), exactly as with sops.

use super::{edit, format_for, Context};
use crate::core::formats::codec;
use crate::ephemeral::{run_foreground, wipe_on_interrupt, PrivateDir};
use crate::error::CliError;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;
use zeroize::Zeroizing;

/// `exec-file` flags (sops' names).
#[derive(clap::Args, Debug)]
pub struct ExecFileArgs {
    /// The encrypted file.
    file: PathBuf,
    /// The command, run with `sh -c`; each `{}` becomes the decrypted file's path.
    command: String,
    /// Use a regular file (0600, wiped after the command) instead of a named pipe.
    #[arg(long)]
    no_fifo: bool,
    /// Run the command as this user (needs root; sops' --user). The user's
    /// supplementary groups are not set: the command runs with none.
    #[arg(long)]
    user: Option<String>,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
    /// Format of the decrypted file; default: the input file's.
    #[arg(long)]
    output_type: Option<String>,
    /// Name of the decrypted file in its private directory (default: tmp-file).
    #[arg(long)]
    filename: Option<String>,
}

/// sops' name for the file when `--filename` is not given (`exec.FallbackFilename`).
const FALLBACK_FILENAME: &str = "tmp-file";

/// A user from the password database, for `--user`.
struct User {
    name: String,
    uid: u32,
    gid: u32,
    home: String,
}

/// Looks `name` up in /etc/passwd (sops uses Go's os/user, which reads the same file
/// when built without cgo, as sops' releases are).
fn lookup_user(name: &str) -> Result<User, CliError> {
    let unknown = || CliError::Other {
        message: format!("--user {name}: no such user in /etc/passwd"),
        code: 1,
        hint: None,
    };
    let passwd = std::fs::read_to_string("/etc/passwd").map_err(|source| CliError::Read {
        path: "/etc/passwd".into(),
        source,
    })?;
    passwd
        .lines()
        .map(|l| l.split(':').collect::<Vec<_>>())
        .find(|f| f.len() >= 7 && f[0] == name)
        .and_then(|f| {
            Some(User {
                name: f[0].to_string(),
                uid: f[2].parse().ok()?,
                gid: f[3].parse().ok()?,
                home: f[5].to_string(),
            })
        })
        .ok_or_else(unknown)
}

/// `--filename` as one plain name: sops refuses absolute and non-local paths, and a
/// name with a directory in it fails there when the file is created.
fn checked_filename(name: &str) -> Result<&str, CliError> {
    let mut parts = Path::new(name)
        .components()
        .filter(|c| !matches!(c, Component::CurDir));
    match (parts.next(), parts.next()) {
        (Some(Component::Normal(n)), None) => n.to_str().ok_or_else(|| not_local(name)),
        _ => Err(not_local(name)),
    }
}

fn not_local(name: &str) -> CliError {
    CliError::Other {
        message: format!("--filename {name}: the provided filename is not a local path"),
        code: 1,
        hint: Some("give a plain file name such as secrets.yaml".into()),
    }
}

pub(super) fn run_exec_file(ctx: &Context, a: ExecFileArgs) -> Result<(), CliError> {
    // In sops' order: decrypt first, then check the name.
    let opened = edit::open(ctx, &a.file, a.input_type.as_deref())?;
    let out_format = format_for(a.output_type.as_deref(), &a.file);
    let plain = Arc::new(Zeroizing::new(
        codec(out_format, &opened.opts)
            .emit_plain(&opened.plain.documents)
            .map_err(|e| super::core_err(&a.file)(e.into()))?,
    ));
    drop(opened);
    let name = a.filename.as_deref().map(checked_filename).transpose()?;
    let user = a.user.as_deref().map(lookup_user).transpose()?;
    let private = |source| CliError::Write {
        path: "a private temporary directory".into(),
        source,
    };
    wipe_on_interrupt().map_err(private)?;
    let dir = PrivateDir::create("sopsync-exec-").map_err(private)?;
    let path = if a.no_fifo {
        match name {
            Some(n) => dir.create_file(n, &plain),
            // As sops' os.CreateTemp(dir, "tmp-file"): a random suffix.
            None => tempfile::Builder::new()
                .prefix(FALLBACK_FILENAME)
                .rand_bytes(9)
                .tempfile_in(dir.path())
                .and_then(|f| {
                    use std::io::Write;
                    let (mut file, path) = f.keep().map_err(|e| e.error)?;
                    file.write_all(&plain)?;
                    Ok(path)
                }),
        }
    } else {
        dir.create_fifo(name.unwrap_or(FALLBACK_FILENAME))
    }
    .map_err(private)?;
    if let Some(u) = &user {
        // The command runs as the user: the file (or pipe) becomes theirs, the directory
        // stays ours and only traversable (0711). A user owning it could rename it away
        // in the sticky TMPDIR and put a link in its place, for us to wipe as root.
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711))
            .map_err(private)?;
        rustix::fs::chownat(
            rustix::fs::CWD,
            &path,
            Some(rustix::fs::Uid::from_raw(u.uid)),
            Some(rustix::fs::Gid::from_raw(u.gid)),
            rustix::fs::AtFlags::SYMLINK_NOFOLLOW,
        )
        .map_err(|e| private(e.into()))?;
    }
    let shown = path.to_str().ok_or_else(|| CliError::Other {
        message: format!(
            "the temporary path {} is not UTF-8 and cannot be put into the command",
            path.display()
        ),
        code: 1,
        hint: Some("set TMPDIR to a plain directory such as /tmp".into()),
    })?;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(a.command.replace("{}", shown));
    if let Some(u) = &user {
        use std::os::unix::process::CommandExt;
        cmd.uid(u.uid).gid(u.gid);
        cmd.env("HOME", &u.home)
            .env("USER", &u.name)
            .env("LOGNAME", &u.name);
    }
    if !a.no_fifo {
        // Opening a pipe to write waits for a reader: a thread of its own does it, as
        // sops' goroutine does, so a command that never reads it cannot block us.
        let (fifo, data) = (path.clone(), Arc::clone(&plain));
        std::thread::spawn(move || {
            use std::io::Write;
            use std::os::unix::fs::OpenOptionsExt;
            let nofollow = rustix::fs::OFlags::NOFOLLOW.bits() as i32;
            let open = std::fs::OpenOptions::new()
                .write(true)
                .custom_flags(nofollow)
                .open(&fifo);
            if let Ok(mut f) = open {
                let _ = f.write_all(&data);
            }
        });
    }
    let status = run_foreground(&mut cmd).map_err(|e| CliError::Other {
        message: format!("could not run sh: {e}"),
        code: 1,
        hint: None,
    });
    if !a.no_fifo {
        // A writer still waiting for a reader is let go: opening the pipe to read wakes
        // it, and once we close it again its write fails (EPIPE) instead of waiting.
        let _ = rustix::fs::open(
            &path,
            rustix::fs::OFlags::RDONLY
                | rustix::fs::OFlags::NONBLOCK
                | rustix::fs::OFlags::NOFOLLOW,
            rustix::fs::Mode::empty(),
        );
    }
    drop(dir);
    let status = status?;
    match (
        status.code(),
        std::os::unix::process::ExitStatusExt::signal(&status),
    ) {
        (Some(0), _) => Ok(()),
        // The command's own code is ours, as sops passes it back.
        (Some(code), _) => std::process::exit(code),
        (None, sig) => {
            // sops exits 255 when the shell is killed (Go's ExitCode() is -1).
            eprintln!(
                "sopsync: the command was killed by signal {}",
                sig.unwrap_or(0)
            );
            std::process::exit(255)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_plain_file_name_is_accepted_for_filename() {
        assert_eq!(checked_filename("a.json").unwrap(), "a.json");
        assert_eq!(checked_filename("./a.json").unwrap(), "a.json");
        for bad in ["", "/etc/passwd", "../a", "a/b", ".", ".."] {
            assert_eq!(checked_filename(bad).unwrap_err().exit_code(), 1, "{bad}");
        }
    }
}
