//! Reading a repository tree safely: no escape through `..` or symlinks, a size cap
//! per file, a cap on the number of files, and detection of SOPS files by their
//! metadata rather than their name.

use std::path::{Component, Path, PathBuf};

/// Limits applied while walking (every one is a clear error naming the file).
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// Largest file read, in bytes.
    pub max_file_bytes: u64,
    /// Most files visited.
    pub max_files: usize,
}

impl Default for WalkLimits {
    fn default() -> Self {
        WalkLimits {
            max_file_bytes: 8 * 1024 * 1024,
            max_files: 20_000,
        }
    }
}

/// A problem with the tree or one file.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalkError {
    /// A path escapes the root (`..`, absolute, or a symlink pointing outside).
    #[error("{path}: path escapes the repository root")]
    Escape {
        /// The offending path.
        path: String,
    },
    /// A file exceeds the size limit.
    #[error("{path}: file is {size} bytes, over the {limit}-byte limit")]
    TooLarge {
        /// The file.
        path: String,
        /// Its size.
        size: u64,
        /// The limit.
        limit: u64,
    },
    /// Too many files.
    #[error("{root}: more than {limit} files; narrow it with --path")]
    TooManyFiles {
        /// The root.
        root: String,
        /// The limit.
        limit: usize,
    },
    /// An I/O error.
    #[error("{path}: {source}")]
    Io {
        /// Where.
        path: String,
        /// What.
        source: std::io::Error,
    },
}

/// Joins `rel` under `root`, refusing absolute paths and `..` (a secure join).
pub fn secure_join(root: &Path, rel: &str) -> Result<PathBuf, WalkError> {
    let p = Path::new(rel);
    let mut out = root.to_path_buf();
    for c in p.components() {
        match c {
            Component::Normal(s) => out.push(s),
            Component::CurDir => {}
            _ => {
                return Err(WalkError::Escape {
                    path: rel.to_string(),
                })
            }
        }
    }
    Ok(out)
}

/// Checks that `path` (after resolving symlinks) stays under `root`.
pub fn ensure_inside(root: &Path, path: &Path, shown: &str) -> Result<PathBuf, WalkError> {
    let real_root = root.canonicalize().map_err(|source| WalkError::Io {
        path: root.display().to_string(),
        source,
    })?;
    let real = path.canonicalize().map_err(|source| WalkError::Io {
        path: shown.to_string(),
        source,
    })?;
    if real.starts_with(&real_root) {
        Ok(real)
    } else {
        Err(WalkError::Escape {
            path: shown.to_string(),
        })
    }
}

/// Reads a file under the root, with the size limit.
pub fn read_limited(root: &Path, rel: &str, limits: &WalkLimits) -> Result<Vec<u8>, WalkError> {
    let joined = secure_join(root, rel)?;
    let real = ensure_inside(root, &joined, rel)?;
    let meta = std::fs::metadata(&real).map_err(|source| WalkError::Io {
        path: rel.to_string(),
        source,
    })?;
    if meta.len() > limits.max_file_bytes {
        return Err(WalkError::TooLarge {
            path: rel.to_string(),
            size: meta.len(),
            limit: limits.max_file_bytes,
        });
    }
    std::fs::read(&real).map_err(|source| WalkError::Io {
        path: rel.to_string(),
        source,
    })
}

/// Lists regular files under `root/sub` (relative paths with `/`, sorted), skipping
/// `.git`. Symlinks are followed only when they stay inside the root.
pub fn list_files(root: &Path, limits: &WalkLimits) -> Result<Vec<String>, WalkError> {
    let mut out = Vec::new();
    let mut stack = vec![PathBuf::new()];
    while let Some(rel_dir) = stack.pop() {
        let dir = root.join(&rel_dir);
        let entries = std::fs::read_dir(&dir).map_err(|source| WalkError::Io {
            path: dir.display().to_string(),
            source,
        })?;
        for entry in entries {
            let entry = entry.map_err(|source| WalkError::Io {
                path: dir.display().to_string(),
                source,
            })?;
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let rel = rel_dir.join(&name);
            let shown = rel.to_string_lossy().replace('\\', "/");
            let ft = entry.file_type().map_err(|source| WalkError::Io {
                path: shown.clone(),
                source,
            })?;
            let is_dir = if ft.is_symlink() {
                let real = ensure_inside(root, &entry.path(), &shown)?;
                real.is_dir()
            } else {
                ft.is_dir()
            };
            if is_dir {
                stack.push(rel);
            } else {
                out.push(shown);
                if out.len() > limits.max_files {
                    return Err(WalkError::TooManyFiles {
                        root: root.display().to_string(),
                        limit: limits.max_files,
                    });
                }
            }
        }
    }
    out.sort();
    Ok(out)
}

/// A cheap check for the `sops` metadata markers of every store, before parsing.
pub fn looks_like_sops(bytes: &[u8]) -> bool {
    let has = |needle: &[u8]| bytes.windows(needle.len()).any(|w| w == needle);
    has(b"ENC[AES256_GCM,")
        && (has(b"sops:") || has(b"\"sops\"") || has(b"sops_mac=") || has(b"[sops]"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secure_join_refuses_escapes() {
        let root = Path::new("/repo");
        assert!(secure_join(root, "a/b.yaml").is_ok());
        assert!(matches!(
            secure_join(root, "../etc/passwd"),
            Err(WalkError::Escape { .. })
        ));
        assert!(matches!(
            secure_join(root, "/etc/passwd"),
            Err(WalkError::Escape { .. })
        ));
        assert!(matches!(
            secure_join(root, "a/../../x"),
            Err(WalkError::Escape { .. })
        ));
    }
}
