//! Helm values from SOPS files: decrypted in this process and handed to `helm` through
//! pipes (`/dev/fd/N`), never through a file (issue 13).
//!
//! Three callers: `sopsync helm <helm args>` (the wrapper), `sopsync values FILE...`
//! (the merged values, for debugging) and the Argo CD plugin's `helm` mode.
//!
//! Guarantees:
//! - every SOPS values file is decrypted before helm starts, in parallel, each file's
//!   data key unwrapped once; if any fails, helm is not started and the error names the
//!   first failing file in argument order (no partial render);
//! - plaintext exists only in this process's memory (zeroized on drop) and in the pipe
//!   buffers helm reads; the read end of each pipe is the only descriptor helm inherits
//!   besides its standard streams, and the write ends are close-on-exec, so helm sees
//!   end-of-file when we are done writing;
//! - every argument that is not a values file reaches helm unchanged and in order; plain
//!   values files, `-` (standard input), URLs (`https://`, `sops://`, ...) and
//!   non-regular files (`-f <(...)`) are passed through unread, so a FIFO is not drained
//!   before helm gets to it;
//! - helm runs under a deadline, in a process group that is ended with it
//!   ([`crate::child`]); the identity text in `SOPS_AGE_KEY` is not passed on to it (nor
//!   to the plugins and post-renderers it starts).
//!
//! Assumptions: helm's values flag is `-f`/`--values`, a string slice (comma-separated
//! lists allowed), as in Helm 3 and 4. The flags that take a value are listed in
//! [`FLAGS_WITH_VALUE`]; a flag missing from that list is taken for a switch, so an
//! argument after it that looks like `-f` would be read as a values flag here while
//! helm reads it as that flag's value (helm then gets `/dev/fd/N` in place of it).

use crate::child::{ChildError, Finished, Limits};
use crate::core::error::CoreError;
use crate::core::formats::{codec, Format, FormatOptions};
use crate::core::keys::KeyBackend;
use crate::core::tree::{MapEntry, Mapping, Value};
use crate::core::{self as core_ops, DecryptOptions};
use rayon::prelude::*;
use std::ffi::{OsStr, OsString};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Largest values file read (a values file is configuration, not data).
pub const MAX_VALUES_BYTES: u64 = 8 << 20;

/// Long helm flags that take a value as the next argument (Helm 3.x and 4.x `template`,
/// `install`, `upgrade`, `lint`, `show`, and the global flags). Flags whose value is
/// optional (`--dry-run`, `--wait` in Helm 4) are not here: pflag never takes their value
/// from the next argument.
pub const FLAGS_WITH_VALUE: &[&str] = &[
    "--api-versions",
    "--burst-limit",
    "--ca-file",
    "--cert-file",
    "--color",
    "--content-cache",
    "--description",
    "--history-max",
    "--key-file",
    "--keyring",
    "--kube-apiserver",
    "--kube-as-group",
    "--kube-as-user",
    "--kube-ca-file",
    "--kube-context",
    "--kube-tls-server-name",
    "--kube-token",
    "--kube-version",
    "--kubeconfig",
    "--labels",
    "--max-history",
    "--name-template",
    "--namespace",
    "--output",
    "--output-dir",
    "--password",
    "--post-renderer",
    "--post-renderer-args",
    "--qps",
    "--registry-config",
    "--repo",
    "--repository-cache",
    "--repository-config",
    "--revision",
    "--set",
    "--set-file",
    "--set-json",
    "--set-literal",
    "--set-string",
    "--show-only",
    "--timeout",
    "--username",
    "--version",
];

/// Short helm flags that take a value (`-n ns`, `-nns`, `-n=ns`).
const SHORT_WITH_VALUE: &[char] = &['a', 'l', 'n', 'o', 's'];

/// One argument of the helm command line after [`plan_args`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HelmArg {
    /// Passed to helm as it is.
    Keep(OsString),
    /// A values file: the index into [`Plan::values`].
    Values(usize),
}

/// A helm command line with its values files found.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// The arguments, values files replaced by their index.
    pub args: Vec<HelmArg>,
    /// The values files, in argument order (a comma list gives one entry per file).
    pub values: Vec<OsString>,
}

impl Plan {
    fn push_values(&mut self, list: &OsStr) {
        // pflag's string slice: a comma-separated list (helm `-f a.yaml,b.yaml`).
        let text = list.to_string_lossy();
        let items: Vec<OsString> = if list.to_str().is_some() && text.contains(',') {
            text.split(',').map(OsString::from).collect()
        } else {
            vec![list.to_os_string()]
        };
        for item in items {
            self.args.push(HelmArg::Values(self.values.len()));
            self.values.push(item);
        }
    }
}

/// Finds the values files in a helm command line, reading it as helm's flag parser
/// (pflag) does: `-f X`, `-fX`, `-f=X`, `--values X`, `--values=X`, `-f` at the end of
/// a cluster of switches (`-gf X`), comma lists; the value of a flag that takes one is
/// never mistaken for a flag; after `--` everything is an argument.
pub fn plan_args(args: &[OsString]) -> Plan {
    let mut plan = Plan::default();
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let Some(text) = arg.to_str() else {
            plan.args.push(HelmArg::Keep(arg.clone()));
            continue;
        };
        if text == "--" {
            plan.args.push(HelmArg::Keep(arg.clone()));
            plan.args
                .extend(it.by_ref().map(|a| HelmArg::Keep(a.clone())));
            break;
        }
        if let Some(long) = text.strip_prefix("--") {
            let (name, inline) = match long.split_once('=') {
                Some((n, v)) => (n, Some(v)),
                None => (long, None),
            };
            if name == "values" {
                match inline {
                    Some(v) => plan.push_values(OsStr::new(v)),
                    None => match it.next() {
                        Some(v) => plan.push_values(v),
                        // helm reports the missing value itself.
                        None => plan.args.push(HelmArg::Keep(arg.clone())),
                    },
                }
                continue;
            }
            plan.args.push(HelmArg::Keep(arg.clone()));
            if inline.is_none() && FLAGS_WITH_VALUE.contains(&text) {
                if let Some(v) = it.next() {
                    plan.args.push(HelmArg::Keep(v.clone()));
                }
            }
            continue;
        }
        match text.strip_prefix('-').filter(|s| !s.is_empty()) {
            Some(cluster) => plan_short_cluster(&mut plan, arg, cluster, &mut it),
            None => plan.args.push(HelmArg::Keep(arg.clone())),
        }
    }
    plan
}

/// A cluster of short flags (`-f`, `-gf`, `-nprod`): switches up to the first flag that
/// takes a value; the rest of the cluster (after an optional `=`) or the next argument
/// is its value.
fn plan_short_cluster<'a>(
    plan: &mut Plan,
    arg: &OsString,
    cluster: &str,
    it: &mut impl Iterator<Item = &'a OsString>,
) {
    for (i, c) in cluster.char_indices() {
        if c != 'f' && !SHORT_WITH_VALUE.contains(&c) {
            continue;
        }
        let rest = &cluster[i + c.len_utf8()..];
        let rest = rest.strip_prefix('=').unwrap_or(rest);
        if c != 'f' {
            plan.args.push(HelmArg::Keep(arg.clone()));
            if rest.is_empty() {
                if let Some(v) = it.next() {
                    plan.args.push(HelmArg::Keep(v.clone()));
                }
            }
            return;
        }
        if i > 0 {
            plan.args
                .push(HelmArg::Keep(OsString::from(format!("-{}", &cluster[..i]))));
        }
        if rest.is_empty() {
            match it.next() {
                Some(v) => plan.push_values(v),
                None => plan.args.push(HelmArg::Keep(OsString::from("-f"))),
            }
        } else {
            plan.push_values(OsStr::new(rest));
        }
        return;
    }
    plan.args.push(HelmArg::Keep(arg.clone()));
}

/// Why values could not be prepared or helm could not be run. Never carries a value.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum HelmError {
    /// A values file could not be read.
    #[error("values file {file}: {source}")]
    Read {
        /// The file.
        file: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// A values file is larger than [`MAX_VALUES_BYTES`].
    #[error("values file {file}: larger than {max} bytes")]
    TooLarge {
        /// The file.
        file: PathBuf,
        /// The cap.
        max: u64,
    },
    /// A SOPS values file could not be decrypted (wrong key, tampered, malformed).
    #[error("values file {file}: {source}")]
    Decrypt {
        /// The file.
        file: PathBuf,
        /// What failed.
        source: CoreError,
    },
    /// A SOPS file is not YAML or JSON, which is all helm reads values from.
    #[error(
        "values file {file}: it is a SOPS {format} file; helm reads values from YAML or JSON only"
    )]
    NotValuesFormat {
        /// The file.
        file: PathBuf,
        /// The sops format name.
        format: &'static str,
    },
    /// A pipe to helm could not be set up.
    #[error("cannot create a pipe for helm: {0}")]
    Pipe(std::io::Error),
    /// helm could not be run to completion.
    #[error("helm ({program}): {source}")]
    Run {
        /// The program started.
        program: String,
        /// What failed.
        source: ChildError,
    },
}

impl HelmError {
    /// The file the error is about, if any.
    pub fn file(&self) -> Option<&Path> {
        match self {
            HelmError::Read { file, .. }
            | HelmError::TooLarge { file, .. }
            | HelmError::Decrypt { file, .. }
            | HelmError::NotValuesFormat { file, .. } => Some(file),
            HelmError::Pipe(_) | HelmError::Run { .. } => None,
        }
    }
}

/// One values file, ready for helm.
pub enum ValuesFile {
    /// Given to helm as it was named (plain file, `-`, URL, FIFO).
    PassThrough(OsString),
    /// A SOPS file's plaintext, for a pipe.
    Decrypted {
        /// The file it came from.
        file: PathBuf,
        /// The decrypted document(s), in the file's format (YAML or JSON).
        text: Zeroizing<Vec<u8>>,
    },
}

/// Is this a values reference helm resolves itself (standard input or a URL)?
fn helm_resolves(name: &OsStr) -> bool {
    let text = name.to_string_lossy();
    text == "-" || text.contains("://")
}

/// Reads one values file: `Ok(None)` when helm should read it itself (not a regular
/// file, or not SOPS-encrypted), else its plaintext.
fn decrypt_if_sops(
    name: &OsStr,
    keys: &(dyn KeyBackend + Sync),
) -> Result<Option<Zeroizing<Vec<u8>>>, HelmError> {
    if helm_resolves(name) {
        return Ok(None);
    }
    let file = PathBuf::from(name);
    let read_err = |source| HelmError::Read {
        file: file.clone(),
        source,
    };
    let meta = std::fs::metadata(&file).map_err(read_err)?;
    // A FIFO or `/dev/fd/N` from the shell can be read once only: it is helm's.
    if !meta.is_file() {
        return Ok(None);
    }
    if meta.len() > MAX_VALUES_BYTES {
        return Err(HelmError::TooLarge {
            file,
            max: MAX_VALUES_BYTES,
        });
    }
    // Through the descriptor: a file swapped for a FIFO after the stat above is
    // refused rather than opened and drained before helm could read it.
    let bytes = crate::small_file::read_small_file(&file, MAX_VALUES_BYTES)
        .map_err(|e| read_err(e.into()))?;
    if !crate::repo::walk::looks_like_sops(&bytes) {
        return Ok(None);
    }
    decrypt_values(&file, &bytes, keys).map(Some)
}

/// Decrypts a SOPS values file (`name` picks JSON for `.json`, YAML otherwise) and
/// emits its plaintext in the same format, without the `sops` block.
///
/// Errors: [`HelmError::Decrypt`] (wrong key, tampered, malformed) or
/// [`HelmError::NotValuesFormat`] (a dotenv, INI or binary SOPS file).
pub fn decrypt_values(
    name: &Path,
    bytes: &[u8],
    keys: &(dyn KeyBackend + Sync),
) -> Result<Zeroizing<Vec<u8>>, HelmError> {
    let docs = decrypt_documents(name, bytes, keys)?;
    let format = values_format(name);
    let fail = |source: CoreError| HelmError::Decrypt {
        file: name.to_path_buf(),
        source,
    };
    codec(format, &emit_options())
        .emit_plain(&docs)
        .map(Zeroizing::new)
        .map_err(|e| fail(e.into()))
}

/// YAML for every values file but `.json` ones (helm reads both as YAML).
fn values_format(name: &Path) -> Format {
    match Format::from_path(&name.to_string_lossy()) {
        Format::Json => Format::Json,
        _ => Format::Yaml,
    }
}

fn emit_options() -> FormatOptions {
    FormatOptions {
        yaml_indent: 2,
        json_indent: Some(2),
        ..FormatOptions::default()
    }
}

/// Decrypts and verifies a SOPS values file into its documents.
pub fn decrypt_documents(
    name: &Path,
    bytes: &[u8],
    keys: &(dyn KeyBackend + Sync),
) -> Result<Vec<Mapping>, HelmError> {
    let fail = |source: CoreError| HelmError::Decrypt {
        file: name.to_path_buf(),
        source,
    };
    let by_name = Format::from_path(&name.to_string_lossy());
    if matches!(by_name, Format::Dotenv | Format::Ini) {
        return Err(HelmError::NotValuesFormat {
            file: name.to_path_buf(),
            format: by_name.name(),
        });
    }
    let format = values_format(name);
    let c = codec(format, &FormatOptions::default());
    let file = core_ops::parse_encrypted_with(c.as_ref(), format, bytes).map_err(fail)?;
    let key = core_ops::unwrap_data_key(&file.metadata, keys).map_err(fail)?;
    let opts = DecryptOptions {
        skip_iv_stash: true,
        ..DecryptOptions::default()
    };
    Ok(core_ops::decrypt_owned(file, &key, &opts)
        .map_err(fail)?
        .documents)
}

/// Prepares every values file of `plan`: SOPS files decrypted in parallel, the others
/// passed through. The first failure in argument order is returned, and then nothing
/// is handed to helm.
pub fn prepare_values(
    plan: &Plan,
    keys: &(dyn KeyBackend + Sync),
) -> Result<Vec<ValuesFile>, HelmError> {
    plan.values
        .par_iter()
        .map(|name| {
            Ok(match decrypt_if_sops(name, keys)? {
                None => ValuesFile::PassThrough(name.clone()),
                Some(text) => ValuesFile::Decrypted {
                    file: PathBuf::from(name),
                    text,
                },
            })
        })
        .collect::<Vec<Result<ValuesFile, HelmError>>>()
        .into_iter()
        .collect()
}

/// Runs `program` with `plan`'s arguments, each decrypted values file given as
/// `--values /dev/fd/N` (a pipe fed from this process), passed-through ones as
/// `--values=NAME`. Returns helm's exit status and output (the caller prints them).
///
/// Errors: [`HelmError::Pipe`], [`HelmError::Run`] (helm could not start, or passed the
/// deadline and was ended with its process group).
pub fn run_helm(
    program: &OsStr,
    plan: &Plan,
    values: Vec<ValuesFile>,
    configure: impl FnOnce(&mut std::process::Command),
    limits: &Limits,
) -> Result<Finished, HelmError> {
    use std::os::fd::AsRawFd;
    let mut readers = Vec::new();
    let mut feeds = Vec::new();
    let mut names: Vec<OsString> = Vec::with_capacity(values.len());
    for v in values {
        match v {
            ValuesFile::PassThrough(name) => {
                let mut flag = OsString::from("--values=");
                flag.push(&name);
                names.push(flag);
            }
            ValuesFile::Decrypted { text, .. } => {
                let (reader, writer) = std::io::pipe().map_err(HelmError::Pipe)?;
                // Both ends are close-on-exec; only the read end is made inheritable, so
                // helm sees end-of-file once our writer is done.
                rustix::io::fcntl_setfd(&reader, rustix::io::FdFlags::empty())
                    .map_err(|e| HelmError::Pipe(e.into()))?;
                names.push(OsString::from(format!(
                    "--values=/dev/fd/{}",
                    reader.as_raw_fd()
                )));
                readers.push(reader);
                feeds.push((writer, text));
            }
        }
    }
    let mut cmd = std::process::Command::new(program);
    for arg in &plan.args {
        match arg {
            HelmArg::Keep(a) => cmd.arg(a),
            HelmArg::Values(i) => cmd.arg(&names[*i]),
        };
    }
    // The identity itself stays here; key files and commands are paths helm's own
    // `sops://` downloader may need.
    cmd.env_remove("SOPS_AGE_KEY");
    configure(&mut cmd);
    // One writer thread per pipe: helm reads the files one after another, and a file
    // larger than the pipe buffer would block a single writer on a pipe helm has not
    // reached yet.
    let writers: Vec<_> = feeds
        .into_iter()
        .map(|(mut writer, text)| {
            std::thread::spawn(move || {
                use std::io::Write;
                // helm may exit without reading (a bad flag): EPIPE then, not an error.
                let _ = writer.write_all(&text);
            })
        })
        .collect();
    let finished = crate::child::run(&mut cmd, limits);
    // helm has exited: with our read ends closed too, a writer still blocked on a pipe
    // helm never read gets EPIPE and ends.
    drop(readers);
    for w in writers {
        let _ = w.join();
    }
    finished.map_err(|source| HelmError::Run {
        program: program.to_string_lossy().into_owned(),
        source,
    })
}

/// Merges `over` into `base` as helm merges values files: mappings key by key,
/// recursively; anything else is replaced.
pub fn merge_values(base: &mut Mapping, over: Mapping) {
    for entry in over.entries {
        let MapEntry::Pair { key, value } = entry else {
            continue;
        };
        match (base.get_mut(&key), value) {
            (Some(Value::Map(b)), Value::Map(o)) => merge_values(b, o),
            (Some(slot), v) => *slot = v,
            (None, v) => base.push(key, v),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan(args: &[&str]) -> (Vec<String>, Vec<String>) {
        let os: Vec<OsString> = args.iter().map(OsString::from).collect();
        let p = plan_args(&os);
        let shown = p
            .args
            .iter()
            .map(|a| match a {
                HelmArg::Keep(s) => s.to_string_lossy().into_owned(),
                HelmArg::Values(i) => format!("<{i}>"),
            })
            .collect();
        let values = p
            .values
            .iter()
            .map(|s| s.to_string_lossy().into_owned())
            .collect();
        (shown, values)
    }

    #[test]
    fn values_flags_are_found_in_every_form_pflag_accepts() {
        let (args, values) = plan(&[
            "template",
            "rel",
            "chart",
            "-f",
            "a.yaml",
            "-fb.yaml",
            "-f=c.yaml",
            "--values",
            "d.yaml",
            "--values=e.yaml,f.yaml",
            "-gf",
            "g.yaml",
        ]);
        assert_eq!(
            args,
            ["template", "rel", "chart", "<0>", "<1>", "<2>", "<3>", "<4>", "<5>", "-g", "<6>"]
        );
        assert_eq!(
            values,
            ["a.yaml", "b.yaml", "c.yaml", "d.yaml", "e.yaml", "f.yaml", "g.yaml"]
        );
    }

    #[test]
    fn a_flags_value_that_looks_like_a_values_flag_is_left_to_helm() {
        let (args, values) = plan(&[
            "template",
            "--set",
            "-f",
            "-n",
            "-f",
            "--kube-context=x",
            "-s",
            "-f",
            "--",
            "-f",
            "x.yaml",
        ]);
        assert_eq!(
            args,
            [
                "template",
                "--set",
                "-f",
                "-n",
                "-f",
                "--kube-context=x",
                "-s",
                "-f",
                "--",
                "-f",
                "x.yaml"
            ]
        );
        assert!(values.is_empty());
    }

    #[test]
    fn a_values_flag_without_its_value_is_left_for_helm_to_refuse() {
        assert_eq!(plan(&["template", "-f"]).0, ["template", "-f"]);
        assert_eq!(plan(&["template", "--values"]).0, ["template", "--values"]);
    }

    #[test]
    fn merging_replaces_scalars_and_merges_mappings() {
        let yaml = codec(Format::Yaml, &FormatOptions::default());
        let mut base = yaml
            .parse_plain(b"a: 1\nm:\n  x: 1\n  k: 2\nl: [1, 2]\n")
            .unwrap()
            .remove(0);
        let over = yaml
            .parse_plain(b"m:\n  k: 3\n  z: 4\nl: [9]\nb: 2\n")
            .unwrap()
            .remove(0);
        merge_values(&mut base, over);
        let out = String::from_utf8(yaml.emit_plain(&[base]).unwrap()).unwrap();
        assert_eq!(
            out,
            "a: 1\nm:\n    x: 1\n    k: 3\n    z: 4\nl:\n    - 9\nb: 2\n"
        );
    }
}
