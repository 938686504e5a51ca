//! `sopsync helm`, `sopsync values` and `sopsync helm-downloader`: the Helm shells over
//! [`crate::helm`] (issue 13). They only translate arguments and errors.

use super::write_stdout;
use crate::core::formats::{codec, Format, FormatOptions};
use crate::core::tree::Mapping;
use crate::error::CliError;
use crate::helm::{self, HelmError};
use std::ffi::OsString;
use std::io::IsTerminal;
use std::path::{Component, Path, PathBuf};
use std::time::Duration;

/// `sopsync helm <helm args>`.
#[derive(clap::Args, Debug)]
pub struct HelmArgs {
    /// helm's own arguments, passed on unchanged but for `-f/--values` SOPS files,
    /// which become `--values=/dev/fd/N` pipes.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        num_args = 0..,
        value_name = "HELM_ARGS"
    )]
    args: Vec<OsString>,
}

/// `sopsync values FILE...`.
#[derive(clap::Args, Debug)]
pub struct ValuesArgs {
    /// Values files (SOPS or plain), merged left to right as helm merges `-f` files.
    #[arg(required = true)]
    files: Vec<PathBuf>,
}

/// `sopsync helm-downloader certFile keyFile caFile URL` (helm's downloader contract).
#[derive(clap::Args, Debug)]
pub struct DownloaderArgs {
    /// Client certificate helm passes for HTTP getters (unused: files are local).
    cert_file: OsString,
    /// Client key helm passes (unused).
    key_file: OsString,
    /// CA bundle helm passes (unused).
    ca_file: OsString,
    /// `sops://path/to/values.yaml` (or `secrets://`, the helm-secrets scheme),
    /// relative to helm's working directory.
    url: String,
}

/// Default of `SOPSYNC_HELM_TIMEOUT`: long enough for `helm upgrade --install --wait`
/// with helm's own default `--timeout 5m`, bounded so a stuck helm ends.
const HELM_TIMEOUT_SECS: u64 = 1800;
/// Largest output of helm kept (a rendered release of thousands of objects fits).
const HELM_MAX_STDOUT: usize = 256 << 20;
/// Largest standard error of helm kept.
const HELM_MAX_STDERR: usize = 1 << 20;

/// The helm program: `SOPSYNC_HELM`, else `helm` on PATH.
pub(crate) fn helm_program() -> OsString {
    std::env::var_os("SOPSYNC_HELM")
        .filter(|v| !v.is_empty())
        .unwrap_or_else(|| OsString::from("helm"))
}

/// `SOPSYNC_HELM_TIMEOUT` seconds (a positive whole number), else `default`.
pub(crate) fn helm_timeout(default: u64) -> Result<Duration, CliError> {
    let secs = match std::env::var("SOPSYNC_HELM_TIMEOUT") {
        Err(_) => default,
        Ok(v) => v
            .trim()
            .parse::<u64>()
            .ok()
            .filter(|s| *s > 0)
            .ok_or_else(|| CliError::Other {
                message: format!("SOPSYNC_HELM_TIMEOUT={v:?} is not a positive number of seconds"),
                code: 2,
                hint: None,
            })?,
    };
    Ok(Duration::from_secs(secs))
}

/// A [`HelmError`] as the CLI reports it: decryption failures keep sops' exit codes and
/// hints; the message names the values file.
pub(crate) fn helm_err(e: HelmError) -> CliError {
    match e {
        HelmError::Decrypt { file, source } => CliError::Core {
            file: format!("values file {}", file.display()),
            source,
        },
        HelmError::Read { file, source } => CliError::Read {
            path: PathBuf::from(format!("values file {}", file.display())),
            source,
        },
        HelmError::Run { .. } => CliError::Other {
            message: e.to_string(),
            code: 1,
            hint: Some(
                "install helm, or point SOPSYNC_HELM at it; raise SOPSYNC_HELM_TIMEOUT (seconds) if it needs longer".into(),
            ),
        },
        other => CliError::Other {
            message: other.to_string(),
            code: 1,
            hint: None,
        },
    }
}

/// The exit code that reports how helm ended: its own, or 128 + the signal.
fn exit_code_of(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    status
        .code()
        .or_else(|| status.signal().map(|s| 128 + s))
        .unwrap_or(1)
}

pub(super) fn run_helm(a: HelmArgs) -> Result<(), CliError> {
    let plan = helm::plan_args(&a.args);
    let keys = crate::keysource::keys();
    let values = helm::prepare_values(&plan, &keys).map_err(helm_err)?;
    let limits = crate::child::Limits {
        timeout: helm_timeout(HELM_TIMEOUT_SECS)?,
        max_stdout: HELM_MAX_STDOUT,
        max_stderr: Some(HELM_MAX_STDERR),
        // From a terminal, Ctrl-C must reach helm too (same process group).
        on_terminal: std::io::stdin().is_terminal(),
    };
    let done = helm::run_helm(&helm_program(), &plan, values, |_| {}, &limits).map_err(helm_err)?;
    write_stdout(&done.stdout)?;
    // helm's standard error, as it wrote it (its messages already say what failed).
    let _ = std::io::Write::write_all(&mut std::io::stderr().lock(), &done.stderr);
    if !done.status.success() {
        // helm's exit code is the wrapper's; nothing is added to what helm said.
        std::process::exit(exit_code_of(done.status));
    }
    Ok(())
}

/// Reads a values file: a SOPS file decrypted, a plain one parsed as it is.
fn values_documents(path: &Path) -> Result<Vec<Mapping>, CliError> {
    let meta = std::fs::metadata(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    if meta.len() > helm::MAX_VALUES_BYTES {
        return Err(helm_err(HelmError::TooLarge {
            file: path.to_path_buf(),
            max: helm::MAX_VALUES_BYTES,
        }));
    }
    let bytes = zeroize::Zeroizing::new(super::read_input(path)?);
    if crate::repo::walk::looks_like_sops(&bytes) {
        let keys = crate::keysource::keys();
        return helm::decrypt_documents(path, &bytes, &keys).map_err(helm_err);
    }
    let format = match Format::from_path(&path.to_string_lossy()) {
        Format::Json => Format::Json,
        _ => Format::Yaml,
    };
    codec(format, &FormatOptions::default())
        .parse_plain(&bytes)
        .map_err(|e| super::core_err(path)(e.into()))
}

pub(super) fn run_values(a: ValuesArgs) -> Result<(), CliError> {
    let mut merged = Mapping::new();
    for file in &a.files {
        for doc in values_documents(file)? {
            helm::merge_values(&mut merged, doc);
        }
    }
    if std::io::stdout().is_terminal() {
        eprintln!("sopsync: warning: printing decrypted values to a terminal");
    }
    let opts = FormatOptions {
        yaml_indent: 2,
        ..FormatOptions::default()
    };
    let out = codec(Format::Yaml, &opts)
        .emit_plain(std::slice::from_ref(&merged))
        .map_err(|e| CliError::Other {
            message: format!("cannot write the merged values: {e}"),
            code: 1,
            hint: None,
        })?;
    write_stdout(&zeroize::Zeroizing::new(out))
}

/// The local path of a `sops://` (or helm-secrets `secrets://`) URL, checked: relative,
/// no `..`, and (after symlinks) inside the working directory, unless
/// `SOPSYNC_HELM_ALLOW_ANY_PATH=true`. In Argo CD every application renders in the
/// same repo-server: a values URL naming another application's file must not decrypt it.
fn downloader_path(url: &str) -> Result<PathBuf, CliError> {
    let bad = |why: &str| {
        CliError::Other {
        message: format!("helm-downloader {url}: {why}"),
        code: 2,
        hint: Some(
            "name a file under the chart's working directory, e.g. sops://values/secrets.yaml (SOPSYNC_HELM_ALLOW_ANY_PATH=true lifts this)".into(),
        ),
    }
    };
    let rest = ["sops://", "secrets://"]
        .iter()
        .find_map(|s| url.strip_prefix(s))
        .ok_or_else(|| bad("the URL scheme must be sops:// (or secrets://)"))?;
    let path = PathBuf::from(rest);
    if rest.is_empty() {
        return Err(bad("no file named"));
    }
    let anywhere = std::env::var("SOPSYNC_HELM_ALLOW_ANY_PATH").is_ok_and(|v| v == "true");
    if anywhere {
        return Ok(path);
    }
    if path.is_absolute() || path.components().any(|c| c == Component::ParentDir) {
        return Err(bad("absolute paths and `..` are refused"));
    }
    let cwd = std::env::current_dir().map_err(|e| bad(&format!("no working directory: {e}")))?;
    let real = std::fs::canonicalize(&path).map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })?;
    let root = std::fs::canonicalize(&cwd).unwrap_or(cwd);
    if !real.starts_with(&root) {
        return Err(bad("a symlink leads out of the working directory"));
    }
    Ok(path)
}

pub(super) fn run_downloader(a: DownloaderArgs) -> Result<(), CliError> {
    let path = downloader_path(&a.url)?;
    let meta = std::fs::metadata(&path).map_err(|source| CliError::Read {
        path: path.clone(),
        source,
    })?;
    if meta.len() > helm::MAX_VALUES_BYTES {
        return Err(helm_err(HelmError::TooLarge {
            file: path,
            max: helm::MAX_VALUES_BYTES,
        }));
    }
    let bytes = zeroize::Zeroizing::new(super::read_input(&path)?);
    if !crate::repo::walk::looks_like_sops(&bytes) {
        // A plain file under sops:// is handed over as it is (helm-secrets does the same).
        return write_stdout(&bytes);
    }
    let keys = crate::keysource::keys();
    let text = helm::decrypt_values(&path, &bytes, &keys).map_err(helm_err)?;
    write_stdout(&text)
}

#[cfg(test)]
mod tests {
    use crate::cli::{Cli, Command};
    use clap::{CommandFactory, FromArgMatches};

    fn helm_args(argv: &[&str]) -> Vec<String> {
        let argv: Vec<&str> = ["sopsync", "helm"].iter().chain(argv).copied().collect();
        let m = Cli::command().try_get_matches_from(argv).expect("parses");
        match Cli::from_arg_matches(&m).expect("cli").command {
            Command::Helm(a) => a
                .args
                .iter()
                .map(|s| s.to_string_lossy().into_owned())
                .collect(),
            other => panic!("not helm: {other:?}"),
        }
    }

    #[test]
    fn every_argument_after_helm_is_helms_own_help_and_sopsync_globals_included() {
        let all = [
            "--kube-context",
            "x",
            "template",
            "r",
            "c",
            "--help",
            "-f",
            "s.yaml",
            "--config",
            "c.yaml",
            "--indent",
            "2",
        ];
        assert_eq!(helm_args(&all), all);
        assert_eq!(helm_args(&["-n", "prod", "list"]), ["-n", "prod", "list"]);
    }
}
