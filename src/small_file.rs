//! Reading a small file whose path a user, a repository or an operator chose: key
//! files, `.sops.yaml`, the webhook secret. Such a path may name a FIFO (opening it
//! would wait for a writer forever), a device (`/dev/zero` never ends) or a huge file.
//!
//! Guarantees: [`read_small_file`] returns promptly whatever the path names. The file is
//! opened with `O_NONBLOCK`, so a FIFO does not wait for a writer, and its type is
//! checked on the open descriptor (no race with a rename): anything but a regular file
//! is refused. At most `max` bytes are read; more is an error. The bytes are wiped when
//! dropped (key files and secrets go through here).

use std::io::Read;
use std::path::Path;
use zeroize::Zeroizing;

/// Why a small file could not be read. The message never holds the content.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SmallFileError {
    /// Opening or reading failed (`NotFound`, `PermissionDenied`, ...).
    #[error("{0}")]
    Io(#[from] std::io::Error),
    /// A FIFO, device, socket or directory.
    #[error("not a regular file (a FIFO, device, socket or directory)")]
    NotRegular,
    /// More bytes than the cap.
    #[error("larger than {0} bytes")]
    TooLarge(u64),
}

impl From<SmallFileError> for std::io::Error {
    /// For callers that report I/O errors: the open's own error as it was, the
    /// refusals as `InvalidInput` with their message.
    fn from(e: SmallFileError) -> std::io::Error {
        match e {
            SmallFileError::Io(e) => e,
            refused => std::io::Error::new(std::io::ErrorKind::InvalidInput, refused.to_string()),
        }
    }
}

/// Reads `path` if it is a regular file of at most `max` bytes.
///
/// Errors: [`SmallFileError`].
pub fn read_small_file(path: &Path, max: u64) -> Result<Zeroizing<Vec<u8>>, SmallFileError> {
    use rustix::fs::{Mode, OFlags};
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::CLOEXEC | OFlags::NOCTTY,
        Mode::empty(),
    )
    .map_err(std::io::Error::from)?;
    let file = std::fs::File::from(fd);
    if !file.metadata()?.is_file() {
        return Err(SmallFileError::NotRegular);
    }
    // O_NONBLOCK does nothing on a regular file, so the read below is an ordinary one.
    let mut bytes = Zeroizing::new(Vec::new());
    file.take(max + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > max {
        return Err(SmallFileError::TooLarge(max));
    }
    Ok(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_regular_file_within_the_cap_is_read_and_anything_else_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        std::fs::write(&file, b"hello").expect("write");
        assert_eq!(&read_small_file(&file, 5).expect("read")[..], b"hello");
        let over = read_small_file(&file, 4).expect_err("over the cap");
        assert_eq!(over.to_string(), "larger than 4 bytes");
        let fifo = dir.path().join("fifo");
        rustix::fs::mkfifoat(
            rustix::fs::CWD,
            &fifo,
            rustix::fs::Mode::from_raw_mode(0o600),
        )
        .expect("mkfifo");
        let e = read_small_file(&fifo, 1024).expect_err("a FIFO");
        assert!(e.to_string().starts_with("not a regular file"), "{e}");
        let e = read_small_file(Path::new("/dev/zero"), 1024).expect_err("a device");
        assert!(e.to_string().starts_with("not a regular file"), "{e}");
        let e = read_small_file(dir.path(), 1024).expect_err("a directory");
        assert!(e.to_string().starts_with("not a regular file"), "{e}");
    }
}
