//! Last-resort plaintext on disk, for `edit` (an editor needs a file): a 0600 file
//! in a fresh 0700 directory, overwritten with zeros and removed on drop.

use std::io::Write;
use std::path::{Path, PathBuf};

/// A private temporary file holding plaintext.
pub struct EphemeralFile {
    dir: Option<tempfile::TempDir>,
    path: PathBuf,
}

impl EphemeralFile {
    /// Creates `name` (a base name) in a new private directory and writes `bytes`.
    pub fn create(name: &str, bytes: &[u8]) -> std::io::Result<EphemeralFile> {
        use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
        let dir = tempfile::Builder::new().prefix("sopsync-edit-").tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o700))?;
        let path = dir.path().join(name);
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&path)?;
        f.write_all(bytes)?;
        f.sync_all()?;
        Ok(EphemeralFile {
            dir: Some(dir),
            path,
        })
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The directory holding it.
    pub fn dir(&self) -> &Path {
        self.dir
            .as_ref()
            .map(|d| d.path())
            .unwrap_or_else(|| Path::new("/"))
    }

    fn wipe(&self) {
        // Overwrite whatever the editor left (it may have replaced the file), then remove.
        if let Ok(meta) = std::fs::metadata(&self.path) {
            if let Ok(mut f) = std::fs::OpenOptions::new().write(true).open(&self.path) {
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
            }
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

impl Drop for EphemeralFile {
    fn drop(&mut self) {
        self.wipe();
        if let Some(d) = self.dir.take() {
            let _ = d.close();
        }
    }
}
