//! Reading a repository tree safely: no escape through `..` or symlinks, a size cap
//! per SOPS file, a cap on the number of files, only regular files opened, and
//! detection of SOPS files by their metadata rather than their name. One bad entry
//! is that entry's failure, never the whole walk's (issue 11, point 5).

use std::collections::BTreeMap;
use std::path::{Component, Path, PathBuf};

/// Limits applied while walking (every one is a clear error naming the file).
#[derive(Clone, Copy, Debug)]
pub struct WalkLimits {
    /// Largest SOPS file or `sopsync.yaml` read, in bytes (other files are only
    /// scanned, whatever their size).
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
    /// A symlink that leads to no file (dangling, or a loop).
    #[error("{path}: symlink leads to no file ({source})")]
    BrokenSymlink {
        /// The link.
        path: String,
        /// Why it could not be resolved.
        source: std::io::Error,
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

/// What a walk found: the files the render needs, and every entry it did not take.
#[derive(Debug, Default)]
pub struct Tree {
    /// SOPS files and `sopsync.yaml` manifests (path relative to the walked
    /// directory, with `/`) → their bytes, each within the size limit. Other files are
    /// not kept: nothing renders from them.
    pub files: BTreeMap<String, Vec<u8>>,
    /// Entries that could not be looked at or are refused (an escaping, dangling or
    /// looping symlink, an unreadable file or directory, a SOPS file over the size
    /// limit): each is a failure of that entry alone, like a file that fails to decrypt.
    pub failures: Vec<WalkError>,
    /// Entries skipped because they cannot hold a SOPS file (FIFOs, sockets,
    /// devices), with the reason: reported as notes, not failures.
    pub skipped: Vec<Skipped>,
    /// The other regular files (not SOPS files, not kept), by path: `audit` looks for
    /// plaintext files that a `.sops.yaml` rule says should be encrypted.
    pub others: Vec<String>,
}

/// An entry the walk passed over, and why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Skipped {
    /// The entry, relative to the walked directory.
    pub path: String,
    /// Why (for a note on stderr or in a status).
    pub reason: &'static str,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: skipped: {}", self.path, self.reason)
    }
}

/// Why a non-regular entry is skipped (`None` for a directory or a regular file).
fn not_regular(ft: &std::fs::FileType) -> Option<&'static str> {
    use std::os::unix::fs::FileTypeExt;
    if ft.is_dir() || ft.is_file() {
        None
    } else if ft.is_fifo() {
        Some("a FIFO, not a regular file (never opened)")
    } else if ft.is_socket() {
        Some("a socket, not a regular file")
    } else if ft.is_block_device() || ft.is_char_device() {
        Some("a device, not a regular file")
    } else {
        Some("not a regular file")
    }
}

/// Walks `root/sub` (or `root`) and reads what the render needs, within `limits`.
///
/// Guarantees:
/// - Nothing outside the walked directory is read: `sub` is joined securely and must
///   not resolve outside `root`; a symlink is followed only when its target stays
///   inside, and a directory reached twice (a symlink loop) is walked once.
/// - Nothing but regular files is opened, and those with `O_NONBLOCK|O_NOFOLLOW`, so a
///   FIFO (even one swapped in after the type check) cannot block the walk.
/// - Memory per file is bounded by `max_file_bytes`: a larger file is scanned in
///   chunks for the SOPS markers and kept only if it is not a SOPS file (then dropped).
///
/// Errors: only for the walk as a whole (the root is unreadable or escapes, or there
/// are more than `max_files` files); one bad entry goes to [`Tree::failures`].
pub fn walk_tree(root: &Path, sub: Option<&str>, limits: &WalkLimits) -> Result<Tree, WalkError> {
    let base = match sub.map(|s| s.trim_matches('/')) {
        Some(s) if !s.is_empty() && s != "." => {
            let joined = secure_join(root, s)?;
            let real_root = canonical(root, &root.display().to_string())?;
            let real = canonical(&joined, s)?;
            if !real.starts_with(&real_root) {
                return Err(WalkError::Escape {
                    path: s.to_string(),
                });
            }
            real
        }
        _ => canonical(root, &root.display().to_string())?,
    };
    let mut tree = Tree::default();
    let mut visited_dirs = std::collections::HashSet::new();
    visited_dirs.insert(base.clone());
    let mut seen_files = 0usize;
    let mut stack = vec![(base.clone(), String::new())];
    while let Some((dir, rel_dir)) = stack.pop() {
        let shown_dir = if rel_dir.is_empty() {
            ".".to_string()
        } else {
            rel_dir.clone()
        };
        let entries = match std::fs::read_dir(&dir) {
            Ok(e) => e,
            Err(source) if rel_dir.is_empty() => {
                return Err(WalkError::Io {
                    path: base.display().to_string(),
                    source,
                })
            }
            Err(source) => {
                tree.failures.push(WalkError::Io {
                    path: shown_dir,
                    source,
                });
                continue;
            }
        };
        for entry in entries {
            let entry = match entry {
                Ok(e) => e,
                Err(source) => {
                    tree.failures.push(WalkError::Io {
                        path: shown_dir.clone(),
                        source,
                    });
                    break;
                }
            };
            let name = entry.file_name();
            if name == ".git" {
                continue;
            }
            let shown = if rel_dir.is_empty() {
                name.to_string_lossy().into_owned()
            } else {
                format!("{rel_dir}/{}", name.to_string_lossy())
            };
            // The entry's own type (lstat: a symlink is reported as a symlink).
            let ft = match entry.file_type() {
                Ok(ft) => ft,
                Err(source) => {
                    tree.failures.push(WalkError::Io {
                        path: shown,
                        source,
                    });
                    continue;
                }
            };
            let (path, ft) = if ft.is_symlink() {
                match resolve_link(&base, &entry.path(), &shown) {
                    Ok(found) => found,
                    Err(e) => {
                        tree.failures.push(e);
                        continue;
                    }
                }
            } else {
                (entry.path(), ft)
            };
            if let Some(reason) = not_regular(&ft) {
                tree.skipped.push(Skipped {
                    path: shown,
                    reason,
                });
            } else if ft.is_dir() {
                if visited_dirs.insert(path.clone()) {
                    stack.push((path, shown));
                }
            } else {
                seen_files += 1;
                if seen_files > limits.max_files {
                    return Err(WalkError::TooManyFiles {
                        root: root.display().to_string(),
                        limit: limits.max_files,
                    });
                }
                match read_entry(&path, &shown, limits) {
                    Ok(Some(bytes)) => {
                        tree.files.insert(shown, bytes);
                    }
                    Ok(None) => tree.others.push(shown),
                    Err(e) => tree.failures.push(e),
                }
            }
        }
    }
    tree.failures.sort_by_key(|e| e.path().to_string());
    tree.skipped.sort_by(|a, b| a.path.cmp(&b.path));
    tree.others.sort();
    Ok(tree)
}

fn canonical(path: &Path, shown: &str) -> Result<PathBuf, WalkError> {
    path.canonicalize().map_err(|source| WalkError::Io {
        path: shown.to_string(),
        source,
    })
}

/// A symlink's final target (absolute, no symlinks left) and its type, when it
/// stays inside `base`.
fn resolve_link(
    base: &Path,
    link: &Path,
    shown: &str,
) -> Result<(PathBuf, std::fs::FileType), WalkError> {
    let real = link
        .canonicalize()
        .map_err(|source| WalkError::BrokenSymlink {
            path: shown.to_string(),
            source,
        })?;
    if !real.starts_with(base) {
        return Err(WalkError::Escape {
            path: shown.to_string(),
        });
    }
    let meta = std::fs::symlink_metadata(&real).map_err(|source| WalkError::Io {
        path: shown.to_string(),
        source,
    })?;
    Ok((real, meta.file_type()))
}

/// Reads one regular file: its bytes when the render needs them (a SOPS file or a
/// `sopsync.yaml`), `None` for any other file. Only a SOPS file or a manifest over
/// the limit is an error; a larger other file is scanned, never held.
fn read_entry(path: &Path, shown: &str, limits: &WalkLimits) -> Result<Option<Vec<u8>>, WalkError> {
    use rustix::fs::{Mode, OFlags};
    use std::io::Read;
    let io = |source: std::io::Error| WalkError::Io {
        path: shown.to_string(),
        source,
    };
    // O_NONBLOCK: opening a FIFO put here after the type check must not block;
    // O_NOFOLLOW: the path was resolved already, a symlink now is a swap.
    let fd = rustix::fs::open(
        path,
        OFlags::RDONLY | OFlags::NONBLOCK | OFlags::NOFOLLOW | OFlags::CLOEXEC,
        Mode::empty(),
    )
    .map_err(|e| io(e.into()))?;
    let mut file = std::fs::File::from(fd);
    if !file.metadata().map_err(io)?.file_type().is_file() {
        return Ok(None);
    }
    let is_manifest = path.file_name().is_some_and(|n| n == super::MANIFEST_NAME);
    let limit = limits.max_file_bytes;
    let mut kept = Vec::new();
    let mut scan: Option<SopsScan> = None;
    let mut total: u64 = 0;
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        let n = match file.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => n,
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(io(e)),
        };
        total += n as u64;
        match &mut scan {
            Some(s) => s.feed(&chunk[..n]),
            None if total <= limit => kept.extend_from_slice(&chunk[..n]),
            None => {
                // Over the limit: from here on only the markers are looked for.
                let mut s = SopsScan::default();
                s.feed(&kept);
                s.feed(&chunk[..n]);
                kept = Vec::new();
                scan = Some(s);
            }
        }
        // A manifest over the limit is refused whatever it holds; a SOPS file is
        // known as soon as both markers were seen.
        if scan.as_ref().is_some_and(|s| is_manifest || s.found()) {
            break;
        }
    }
    match scan {
        None if is_manifest || looks_like_sops(&kept) => Ok(Some(kept)),
        None => Ok(None),
        Some(s) if is_manifest || s.found() => {
            // The size is at least what was read; stat gives the full size when known.
            let size = file.metadata().map(|m| m.len()).unwrap_or(0).max(total);
            Err(WalkError::TooLarge {
                path: shown.to_string(),
                size,
                limit,
            })
        }
        Some(_) => Ok(None),
    }
}

/// The markers of a SOPS file in every store: an encrypted value, and the `sops`
/// metadata of YAML, JSON, dotenv or INI.
const ENC_MARKER: &[u8] = b"ENC[AES256_GCM,";
const BLOCK_MARKERS: [&[u8]; 4] = [b"sops:", b"\"sops\"", b"sops_mac=", b"[sops]"];

/// A streaming search for the SOPS markers with bounded memory: the `sops` block may
/// sit at the very end of a file, so a large file is read to its end, but only the
/// last few bytes of each chunk are carried to the next (a marker may straddle two).
#[derive(Default)]
struct SopsScan {
    enc: bool,
    block: bool,
    carry: Vec<u8>,
}

impl SopsScan {
    fn feed(&mut self, bytes: &[u8]) {
        let mut window = std::mem::take(&mut self.carry);
        window.extend_from_slice(bytes);
        let has = |needle: &[u8]| window.windows(needle.len()).any(|w| w == needle);
        self.enc = self.enc || has(ENC_MARKER);
        self.block = self.block || BLOCK_MARKERS.iter().any(|m| has(m));
        let keep = ENC_MARKER.len() - 1;
        self.carry = window[window.len().saturating_sub(keep)..].to_vec();
    }

    fn found(&self) -> bool {
        self.enc && self.block
    }
}

/// A cheap check for the `sops` metadata markers of every store, before parsing.
pub fn looks_like_sops(bytes: &[u8]) -> bool {
    let mut scan = SopsScan::default();
    scan.feed(bytes);
    scan.found()
}

impl WalkError {
    /// The path the error is about.
    pub fn path(&self) -> &str {
        match self {
            WalkError::Escape { path }
            | WalkError::TooLarge { path, .. }
            | WalkError::BrokenSymlink { path, .. }
            | WalkError::Io { path, .. } => path,
            WalkError::TooManyFiles { root, .. } => root,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_streaming_scan_finds_markers_split_across_chunks() {
        let text = b"x: ENC[AES256_GCM,data:AA]\n# pad\nsops:\n";
        for cut in 0..text.len() {
            let mut scan = SopsScan::default();
            scan.feed(&text[..cut]);
            scan.feed(&text[cut..]);
            assert!(scan.found(), "split at {cut}");
            assert!(scan.carry.len() < ENC_MARKER.len(), "bounded carry");
        }
        assert!(!looks_like_sops(b"x: ENC[AES256_GCM,data:AA]\n"));
        assert!(!looks_like_sops(b"sops:\n"));
    }

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
