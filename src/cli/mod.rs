//! The command-line shell: a clap tree over the core. Each subcommand is one module;
//! this file holds what they share (reading input, `.sops.yaml`, atomic writes).

mod argocd;
mod audit;
mod completion;
mod controller;
mod crd;
mod decrypt;
mod edit;
mod encrypt;
mod examples;
mod exec;
mod filestatus;
mod groups;
mod helm;
mod keygen;
mod render;
mod repo_files;
mod repo_keys;
mod rotate;

use crate::core::creation_rules::SopsConfig;
use crate::core::error::CoreError;
use crate::core::formats::{codec, Format, FormatOptions};
use crate::core::tree::Timestamp;
use crate::error::CliError;
use clap::{Parser, Subcommand};
use std::io::Write;
use std::path::{Path, PathBuf};

/// SOPS-compatible secrets for Kubernetes.
#[derive(Parser, Debug)]
#[command(name = "sopsync", version, about, after_help = examples::SOPSYNC)]
pub struct Cli {
    #[command(flatten)]
    globals: Globals,
    #[command(subcommand)]
    command: Command,
}

/// Options every subcommand takes (sops' global flags).
#[derive(clap::Args, Debug)]
struct Globals {
    /// Path to `.sops.yaml` (default: search from the current directory upwards).
    #[arg(long, global = true, env = "SOPS_CONFIG")]
    config: Option<PathBuf>,
    /// Output indent for YAML and JSON (0: the default; sops' global --indent).
    #[arg(long, global = true, allow_negative_numbers = true)]
    indent: Option<i64>,
    /// Key types to try first, comma-separated, e.g. `age,pgp`.
    #[arg(long, global = true, env = "SOPS_DECRYPTION_ORDER")]
    decryption_order: Option<String>,
}

impl Cli {
    /// Parses `args` (the program name first); prints help or the error and exits
    /// like `clap::Parser::parse`.
    ///
    /// The file commands that tools run once per file (`decrypt`, `encrypt`,
    /// `filestatus`) are first parsed by a parser holding only that subcommand:
    /// building the whole command tree (the controller alone has dozens of flags) was a
    /// tenth of a small decrypt. Anything that parser does not accept, help and errors
    /// included, goes to the full parser, so what is printed is always the same.
    pub fn parse_from_args(args: Vec<std::ffi::OsString>) -> Cli {
        use clap::{CommandFactory, FromArgMatches};
        let narrow = args
            .get(1)
            .and_then(|a| a.to_str())
            .and_then(Self::narrow_command);
        if let Some(cmd) = narrow {
            if let Ok(cli) = cmd
                .try_get_matches_from(&args)
                .and_then(|m| Cli::from_arg_matches(&m))
            {
                return cli;
            }
        }
        let matches = Cli::command().get_matches_from(args);
        Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit())
    }

    /// The parser for `sopsync NAME …` alone, for the file commands.
    fn narrow_command(name: &str) -> Option<clap::Command> {
        use clap::Args as _;
        let sub = match name {
            "decrypt" => decrypt::Args::augment_args(clap::Command::new("decrypt")),
            "encrypt" => encrypt::Args::augment_args(clap::Command::new("encrypt")),
            "filestatus" => filestatus::Args::augment_args(clap::Command::new("filestatus")),
            _ => return None,
        };
        let top = clap::Command::new("sopsync").subcommand_required(true);
        Some(Globals::augment_args(top).subcommand(sub))
    }
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Generate an age identity (like age-keygen).
    #[command(after_help = examples::KEYGEN)]
    Keygen(keygen::Args),
    /// Encrypt a file (sops encrypt).
    #[command(after_help = examples::ENCRYPT)]
    Encrypt(encrypt::Args),
    /// Decrypt a file (sops decrypt).
    #[command(after_help = examples::DECRYPT)]
    Decrypt(decrypt::Args),
    /// Print whether a file is sops-encrypted (sops filestatus).
    #[command(after_help = examples::FILESTATUS)]
    Filestatus(filestatus::Args),
    /// Re-encrypt with a new data key, optionally adding/removing recipients: age, PGP, AWS KMS (sops rotate).
    #[command(after_help = examples::ROTATE)]
    Rotate(rotate::RotateArgs),
    /// Re-wrap the data key for the recipients of the matching .sops.yaml rule (sops updatekeys).
    #[command(after_help = examples::UPDATEKEYS)]
    Updatekeys(rotate::UpdateKeysArgs),
    /// Render a repository of SOPS files (path or Git URL) into Kubernetes Secrets.
    #[command(after_help = examples::RENDER)]
    Render(render::Args),
    /// Edit the decrypted file in $SOPS_EDITOR/$EDITOR and re-encrypt it (sops edit).
    #[command(after_help = examples::EDIT)]
    Edit(edit::EditArgs),
    /// Set one value, given as JSON (sops set).
    #[command(after_help = examples::SET)]
    Set(edit::SetArgs),
    /// Remove one key or list element (sops unset).
    #[command(after_help = examples::UNSET)]
    Unset(edit::UnsetArgs),
    /// Run the in-cluster controller (SecretSource, SopsSecret -> Secrets).
    #[command(after_help = examples::CONTROLLER)]
    Controller(Box<controller::Args>),
    /// Print the CustomResourceDefinitions of the controller (SecretSource, SopsSecret).
    #[command(after_help = examples::CRD)]
    Crd(crd::Args),
    /// Run a command with the file's top-level keys as environment variables (sops exec-env).
    #[command(after_help = examples::EXEC_ENV)]
    ExecEnv(edit::ExecEnvArgs),
    /// Run a command with the decrypted file in a named pipe (or, with --no-fifo, a
    /// private temporary file) whose path replaces `{}` in it (sops exec-file).
    #[command(after_help = examples::EXEC_FILE)]
    ExecFile(exec::ExecFileArgs),
    /// Add or delete a key group of a SOPS file (sops groups).
    #[command(subcommand, after_help = examples::GROUPS)]
    Groups(groups::GroupsCommand),
    /// Report every SOPS file's recipients and problems (stale or missing recipients, no
    /// rule, cannot open, MAC failure, plaintext under a path_regex rule); exit 1 on any.
    #[command(after_help = examples::AUDIT)]
    Audit(audit::Args),
    /// Print a shell completion script (bash, zsh, fish).
    #[command(after_help = examples::COMPLETION)]
    Completion(completion::CompletionArgs),
    /// Print the man page (roff), or write one page per command into a directory.
    #[command(after_help = examples::MAN)]
    Man(completion::ManArgs),
    /// Run helm with every -f/--values SOPS file decrypted into a pipe (/dev/fd/N), never a file.
    #[command(after_help = examples::HELM)]
    Helm(helm::HelmArgs),
    /// Print the merged values of SOPS (and plain) values files, for debugging.
    #[command(after_help = examples::VALUES)]
    Values(helm::ValuesArgs),
    /// Helm downloader plugin command: print the decrypted values of a sops:// URL.
    #[command(after_help = examples::HELM_DOWNLOADER)]
    HelmDownloader(helm::DownloaderArgs),
    /// Argo CD Config Management Plugin steps (init, generate), modes safe|secrets|helm.
    #[command(after_help = examples::ARGOCD)]
    Argocd(argocd::Args),
}

impl Cli {
    /// True for every command but the long-running controller.
    pub fn is_one_shot(&self) -> bool {
        !matches!(self.command, Command::Controller(_))
    }
}

/// Runs the parsed command line.
pub fn run(cli: Cli) -> Result<(), CliError> {
    let ctx = Context {
        config: cli.globals.config,
        indent: cli.globals.indent,
        decryption_order: cli.globals.decryption_order,
    };
    match cli.command {
        Command::Keygen(a) => keygen::run(a),
        Command::Encrypt(a) => encrypt::run(&ctx, a),
        Command::Decrypt(a) => decrypt::run(&ctx, a),
        Command::Filestatus(a) => filestatus::run(a),
        Command::Rotate(a) => rotate::run_rotate(&ctx, a),
        Command::Updatekeys(a) => rotate::run_updatekeys(&ctx, a),
        Command::Render(a) => render::run(a),
        Command::Edit(a) => edit::run_edit(&ctx, a),
        Command::Set(a) => edit::run_set(&ctx, a),
        Command::Unset(a) => edit::run_unset(&ctx, a),
        Command::ExecEnv(a) => edit::run_exec_env(&ctx, a),
        Command::ExecFile(a) => exec::run_exec_file(&ctx, a),
        Command::Groups(a) => groups::run(&ctx, a),
        Command::Audit(a) => audit::run(&ctx, a),
        Command::Crd(a) => crd::run(a),
        Command::Controller(a) => controller::run(*a),
        Command::Completion(a) => completion::run_completion(a),
        Command::Man(a) => completion::run_man(a),
        Command::Helm(a) => helm::run_helm(a),
        Command::Values(a) => helm::run_values(a),
        Command::HelmDownloader(a) => helm::run_downloader(a),
        Command::Argocd(a) => argocd::run(a),
    }
}

/// Options shared by every subcommand.
pub(crate) struct Context {
    config: Option<PathBuf>,
    indent: Option<i64>,
    decryption_order: Option<String>,
}

/// A `.sops.yaml` found on disk, with the directory its paths are relative to.
pub(crate) struct LoadedConfig {
    pub config: SopsConfig,
    pub dir: PathBuf,
}

impl Context {
    /// Output options: `.sops.yaml` `stores:` (when a config is found and valid), then
    /// `--indent` (spec §7.1, §7.2).
    pub fn format_options(&self) -> Result<FormatOptions, CliError> {
        let stores = self
            .load_config()
            .ok()
            .flatten()
            .map(|l| l.config.stores)
            .unwrap_or_default();
        self.apply_indent(stores)
    }

    /// Applies `--indent` to `opts`.
    pub fn apply_indent(&self, mut opts: FormatOptions) -> Result<FormatOptions, CliError> {
        match self.indent {
            None => {}
            Some(n) if n < 0 => {
                return Err(CliError::Config(format!(
                    "--indent {n}: the indent must not be negative"
                )))
            }
            // sops' --indent sets the YAML, JSON and binary-JSON indents alike.
            Some(0) => {
                opts.json_indent = Some(0);
                opts.json_binary_indent = Some(0);
            }
            Some(n) => {
                opts.yaml_indent = n as usize;
                opts.json_indent = Some(n as usize);
                opts.json_binary_indent = Some(n as usize);
            }
        }
        Ok(opts)
    }

    /// Recovers a file's data key, in `--decryption-order` when given (spec §5.5).
    pub fn unwrap_key(
        &self,
        metadata: &crate::core::metadata::Metadata,
        keys: &dyn crate::core::keys::KeyBackend,
        file: &Path,
    ) -> Result<crate::core::secret::DataKey, CliError> {
        match &self.decryption_order {
            None => crate::core::unwrap_data_key(metadata, keys).map_err(core_err(file)),
            Some(list) => {
                let order = crate::core::keys::DecryptionOrder::parse(list).map_err(|reason| {
                    CliError::Other {
                        message: format!("--decryption-order {list}: {reason}"),
                        code: 112,
                        hint: None,
                    }
                })?;
                crate::core::unwrap_data_key_in_order(metadata, keys, &order)
                    .map_err(core_err(file))
            }
        }
    }

    /// `--config`/`SOPS_CONFIG`, else `.sops.yaml` in the CWD or a parent (spec §8.1).
    pub fn load_config(&self) -> Result<Option<LoadedConfig>, CliError> {
        let path = match &self.config {
            Some(p) => Some(p.clone()),
            None => {
                let mut dir = std::env::current_dir().ok();
                let mut found = None;
                let mut depth = 0;
                while let Some(d) = dir {
                    let candidate = d.join(".sops.yaml");
                    // As sops finds it (os.Stat): any entry, so that a FIFO or a device named
                    // .sops.yaml is refused by read_config rather than silently passed over.
                    if candidate.exists() {
                        found = Some(candidate);
                        break;
                    }
                    depth += 1;
                    if depth > 100 {
                        break;
                    }
                    dir = d.parent().map(Path::to_path_buf);
                }
                found
            }
        };
        let Some(path) = path else { return Ok(None) };
        read_config(path).map(Some)
    }
}

/// The largest `.sops.yaml` read (the size limit of a SOPS file in `render`).
const MAX_CONFIG_BYTES: u64 = 8 * 1024 * 1024;

/// Reads and parses the `.sops.yaml` at `path`; its rules are relative to its
/// directory (canonical).
pub(crate) fn read_config(path: PathBuf) -> Result<LoadedConfig, CliError> {
    // A repository's `.sops.yaml` may be a FIFO or a link to /dev/zero: read it only if
    // it is a regular file, and only as far as the largest file `render` reads.
    let text = crate::small_file::read_small_file(&path, MAX_CONFIG_BYTES).map_err(|e| {
        CliError::Read {
            path: path.clone(),
            source: e.into(),
        }
    })?;
    let docs = codec(Format::Yaml, &FormatOptions::default())
        .parse_plain(&text)
        .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?;
    let config = match docs.first() {
        Some(d) => SopsConfig::from_document(d)
            .map_err(|e| CliError::Config(format!("{}: {e}", path.display())))?,
        None => SopsConfig::default(),
    };
    let abs = std::fs::canonicalize(&path).unwrap_or(path);
    let dir = abs.parent().map(Path::to_path_buf).unwrap_or_default();
    Ok(LoadedConfig { config, dir })
}

/// The path used to match creation rules: relative to the config's directory when
/// inside it, absolute otherwise (spec §8.2).
pub(crate) fn rule_path(file: &Path, config_dir: &Path) -> String {
    let abs = std::path::absolute(file).unwrap_or_else(|_| file.to_path_buf());
    match abs.strip_prefix(config_dir) {
        Ok(rel) => rel.to_string_lossy().into_owned(),
        Err(_) => abs.to_string_lossy().into_owned(),
    }
}

/// Where `encrypt`/`decrypt` read from: a file, or standard input when no file is
/// given (sops 3.11's `decrypt`/`encrypt` without a positional argument).
pub(crate) struct Source<'a>(Option<&'a Path>);

impl<'a> Source<'a> {
    pub(crate) fn new(file: Option<&'a Path>) -> Self {
        Source(file)
    }

    /// The name whose extension picks the format and `.sops.yaml` rule: the override,
    /// else the file; empty for stdin without one, which selects binary as in sops.
    pub(crate) fn format_name(&self, filename_override: Option<&'a Path>) -> &'a Path {
        filename_override.or(self.0).unwrap_or(Path::new(""))
    }

    /// How errors name the input.
    pub(crate) fn label(&self) -> &'a Path {
        self.0.unwrap_or(Path::new("<stdin>"))
    }

    /// All of the input (exit 100 for a missing file, 2 for another read error).
    pub(crate) fn read(&self) -> Result<Vec<u8>, CliError> {
        match self.0 {
            Some(path) => read_input(path),
            None => {
                let mut buf = Vec::new();
                std::io::Read::read_to_end(&mut std::io::stdin().lock(), &mut buf).map_err(
                    |source| CliError::Read {
                        path: PathBuf::from("<stdin>"),
                        source,
                    },
                )?;
                Ok(buf)
            }
        }
    }
}

/// Reads an input file (exit 100 when it does not exist).
pub(crate) fn read_input(path: &Path) -> Result<Vec<u8>, CliError> {
    std::fs::read(path).map_err(|source| CliError::Read {
        path: path.to_path_buf(),
        source,
    })
}

/// The format from `--input-type`/`--output-type`, else the file name (an unknown
/// type name falls back to the extension, as sops does).
pub(crate) fn format_for(explicit: Option<&str>, name: &Path) -> Format {
    explicit
        .and_then(Format::from_name)
        .unwrap_or_else(|| Format::from_path(&name.to_string_lossy()))
}

/// Wraps a core error with the file it concerns.
pub(crate) fn core_err(file: &Path) -> impl Fn(CoreError) -> CliError + '_ {
    move |source| CliError::Core {
        file: file.display().to_string(),
        source,
    }
}

/// Writes bytes to `--output`, in place (atomically: temp file + rename in the same
/// directory, keeping the permissions), or to stdout. Every command that writes a
/// file (`encrypt`/`decrypt`/`rotate -i`, `updatekeys`, `edit`, `set`, `unset`, and
/// `--output`) goes through here.
///
/// A symlink is written through, as sops does: the file it finally points to is
/// replaced, atomically in that file's own directory, and the link stays a link.
/// Renaming over the link itself would turn it into a regular file and leave the
/// old content (the plaintext, after `encrypt -i`) at the target.
pub(crate) fn write_output(
    bytes: &[u8],
    in_place: Option<&Path>,
    output: Option<&Path>,
) -> Result<(), CliError> {
    let target = in_place.or(output);
    match target {
        Some(path) => {
            let werr = |source| CliError::Write {
                path: path.display().to_string(),
                source,
            };
            let real = write_target(path).map_err(werr)?;
            let dir = real
                .parent()
                .filter(|p| !p.as_os_str().is_empty())
                .unwrap_or(Path::new("."));
            // A named prefix: a write killed before its rename leaves a file that
            // `updatekeys/rotate --recursive` and `audit` recognize and name, instead
            // of walking it as one more SOPS file.
            let mut tmp = tempfile::Builder::new()
                .prefix(TEMP_PREFIX)
                .suffix(".tmp")
                .tempfile_in(dir)
                .map_err(werr)?;
            if let Ok(meta) = std::fs::metadata(&real) {
                tmp.as_file()
                    .set_permissions(meta.permissions())
                    .map_err(werr)?;
            }
            tmp.write_all(bytes).map_err(werr)?;
            tmp.as_file().sync_all().map_err(werr)?;
            tmp.persist(&real).map_err(|e| werr(e.error))?;
            Ok(())
        }
        None => write_stdout(bytes),
    }
}

/// How the temporary files of [`write_output`] begin (they end in `.tmp`).
pub(crate) const TEMP_PREFIX: &str = ".sopsync-write-";

/// The file a write to `path` replaces: `path` itself, or the end of its chain of
/// symlinks (relative links resolve against their own directory). A link that leads
/// nowhere (dangling or looping) is an error, and nothing is written: creating its
/// target would put a file wherever the link happens to point.
fn write_target(path: &Path) -> std::io::Result<PathBuf> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::canonicalize(path).map_err(|e| {
            std::io::Error::new(
                e.kind(),
                format!("it is a symlink that leads to no file ({e}); nothing was written"),
            )
        }),
        _ => Ok(path.to_path_buf()),
    }
}

/// Writes to stdout; a closed pipe is not an error (the reader went away).
pub(crate) fn write_stdout(bytes: &[u8]) -> Result<(), CliError> {
    let mut out = std::io::stdout().lock();
    match out.write_all(bytes).and_then(|_| out.flush()) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        Err(source) => Err(CliError::Write {
            path: "stdout".into(),
            source,
        }),
    }
}

/// One step of a tree path like `["a"][0]` (`--extract`, `set`, `unset`).
#[derive(Debug, PartialEq)]
pub(crate) enum Step {
    Key(String),
    Index(usize),
}

/// Parses a sops tree path `["key"][0]...` (spec §7.6); the first step must be a
/// key. `what` names the argument in the error (sops exit 91).
pub(crate) fn parse_tree_path(path: &str, what: &str) -> Result<Vec<Step>, CliError> {
    let bad = || CliError::Extract {
        message: format!("invalid {what} `{path}`: expected a form like '[\"key\"][0]'"),
        code: 91,
    };
    let mut steps = Vec::new();
    let mut rest = path.trim();
    while !rest.is_empty() {
        rest = rest.strip_prefix('[').ok_or_else(bad)?;
        if let Some(quote) = rest.chars().next().filter(|c| *c == '"' || *c == '\'') {
            let r = &rest[1..];
            let end = r.find(quote).ok_or_else(bad)?;
            steps.push(Step::Key(r[..end].to_string()));
            rest = r[end + 1..].strip_prefix(']').ok_or_else(bad)?;
        } else {
            let end = rest.find(']').ok_or_else(bad)?;
            steps.push(Step::Index(rest[..end].trim().parse().map_err(|_| bad())?));
            rest = &rest[end + 1..];
        }
    }
    if !matches!(steps.first(), Some(Step::Key(_))) {
        return Err(bad());
    }
    Ok(steps)
}

/// `text` (a path or a recipient read from a repository, an error about them) made
/// safe to print on a terminal or in a CI log: control characters, line breaks
/// included, and the invisible characters that reorder or break a line as it is shown
/// (bidirectional marks, embeddings, overrides and isolates; the Unicode line and
/// paragraph separators) are shown escaped (`\u{1b}`, `\u{202e}`), so a hostile file
/// name or key entry cannot recolour, rewrite, reorder or forge report lines.
pub fn terminal_safe(text: &str) -> std::borrow::Cow<'_, str> {
    fn hidden(c: char) -> bool {
        c.is_control()
            || matches!(
                c,
                '\u{061c}'
                    | '\u{200e}'
                    | '\u{200f}'
                    | '\u{2028}'
                    | '\u{2029}'
                    | '\u{202a}'..='\u{202e}'
                    | '\u{2066}'..='\u{2069}'
            )
    }
    if !text.chars().any(hidden) {
        return std::borrow::Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if hidden(c) {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    std::borrow::Cow::Owned(out)
}

/// "Now" in UTC, for `lastmodified`.
pub(crate) fn now_utc() -> Timestamp {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or(0);
    timestamp_from_unix(secs)
}

/// Converts Unix seconds to a UTC civil time (days-from-civil inverse).
pub fn timestamp_from_unix(secs: i64) -> Timestamp {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    Timestamp {
        year: (if m <= 2 { y + 1 } else { y }) as i32,
        month: m as u8,
        day: d as u8,
        hour: (rem / 3600) as u8,
        minute: ((rem % 3600) / 60) as u8,
        second: (rem % 60) as u8,
        nanos: 0,
        offset_seconds: 0,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_narrow_parsers_read_argv_as_the_full_parser_does() {
        use clap::{CommandFactory, FromArgMatches};
        let cases: &[&[&str]] = &[
            &["decrypt", "a.yaml"],
            &[
                "decrypt",
                "--extract",
                "[\"a\"][0]",
                "--output-type",
                "json",
                "a.enc.yaml",
            ],
            &[
                "decrypt",
                "-i",
                "--ignore-mac",
                "--indent",
                "4",
                "a.yaml",
                "--config",
                "c.yaml",
            ],
            &[
                "decrypt",
                "--decryption-order",
                "age",
                "--filename-override",
                "x.json",
                "f",
            ],
            &[
                "encrypt",
                "--age",
                "age1x,age1y",
                "--encrypted-regex",
                "^data$",
                "p.yaml",
            ],
            &[
                "encrypt",
                "-a",
                "age1x",
                "--mac-only-encrypted",
                "--output",
                "o",
                "p.env",
            ],
            &[
                "encrypt",
                "--shamir-secret-sharing-threshold",
                "2",
                "--indent=-1",
                "p",
            ],
            &["filestatus", "f.yaml"],
            &["decrypt", "--filename-override", "x.yaml"],
        ];
        for case in cases {
            let argv: Vec<std::ffi::OsString> = std::iter::once("sopsync")
                .chain(case.iter().copied())
                .map(Into::into)
                .collect();
            let full = Cli::from_arg_matches(&Cli::command().try_get_matches_from(&argv).unwrap())
                .unwrap();
            let narrow_cmd = Cli::narrow_command(case[0]).expect("a narrow parser");
            let narrow =
                Cli::from_arg_matches(&narrow_cmd.try_get_matches_from(&argv).unwrap()).unwrap();
            assert_eq!(format!("{narrow:?}"), format!("{full:?}"), "{case:?}");
            assert_eq!(
                format!("{:?}", Cli::parse_from_args(argv.clone())),
                format!("{full:?}")
            );
        }
        // Help and mistakes are left to the full parser (same text, same exit).
        for bad in [
            &["decrypt", "--help"][..],
            &["decrypt", "--nope", "f"],
            // No file reads stdin (issue 15); two files are a mistake.
            &["decrypt", "f", "g"],
        ] {
            let argv: Vec<&str> = std::iter::once("sopsync")
                .chain(bad.iter().copied())
                .collect();
            assert!(Cli::narrow_command(bad[0])
                .unwrap()
                .try_get_matches_from(&argv)
                .is_err());
        }
        assert!(Cli::narrow_command("controller").is_none());
    }

    #[test]
    fn unix_time_converts_to_utc_civil_time() {
        assert_eq!(timestamp_from_unix(0).to_rfc3339(), "1970-01-01T00:00:00Z");
        assert_eq!(
            timestamp_from_unix(1_795_527_978).to_rfc3339(),
            "2026-11-24T13:46:18Z"
        );
        assert_eq!(
            timestamp_from_unix(951_782_400).to_rfc3339(),
            "2000-02-29T00:00:00Z"
        );
    }
}
