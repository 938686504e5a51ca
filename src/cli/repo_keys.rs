//! `updatekeys --recursive` and `rotate --recursive`: every SOPS file under some
//! directories re-wrapped or rotated in parallel, each written atomically, with a
//! progress bar on a terminal, a summary, and a journal so that an interrupted
//! rotation finishes without rotating a file twice (issue 14). What to do with each
//! file is decided in `repo::rekey` (pure); this module reads, unwraps and writes.
//!
//! Finding the files and their `.sops.yaml` is `cli/repo_files.rs`, shared with `audit`.

use super::repo_files::{discover, Configs, SopsFile};
use super::{core_err, format_for, rule_path, write_output, Context};
use crate::core::formats::codec;
use crate::core::keys::{Keyring, KmsKey, Recipient};
use crate::core::{self as core_ops, CryptoEnv, DecryptOptions, EncryptedFile};
use crate::error::CliError;
use crate::keysource::RecipientMaker;
use crate::repo::rekey::{self, Action, RecipientChange};
use rayon::prelude::*;
use sha2::{Digest, Sha256};
use std::collections::{BTreeMap, HashMap};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// The flags `updatekeys` and `rotate` share for a repository-wide run.
#[derive(clap::Args, Debug)]
pub struct RecursiveArgs {
    /// Every SOPS file under the given directories (found by content; `.git` and
    /// paths ignored by `.gitignore` are skipped).
    #[arg(short = 'r', long)]
    pub recursive: bool,
    /// With --recursive: print what would be done and change nothing.
    #[arg(long, requires = "recursive")]
    pub dry_run: bool,
    /// With --recursive: finish an interrupted rotation; files the journal shows as
    /// already rotated by it are left as they are.
    #[arg(long, requires = "recursive")]
    pub resume: bool,
    /// With --recursive: the journal of rotated files (default: a file per set of
    /// directories under $XDG_STATE_HOME/sopsync, or ~/.local/state/sopsync).
    #[arg(long, requires = "recursive", value_name = "FILE")]
    pub journal: Option<PathBuf>,
    /// With --recursive: files processed at once (default: one per CPU).
    #[arg(long, requires = "recursive", value_name = "N")]
    pub jobs: Option<usize>,
}

/// What a recursive run does.
pub(super) enum Mode {
    /// `updatekeys`: wrap for the `.sops.yaml` rule; `rotate` also changes the data key.
    UpdateKeys {
        /// `--rotate`.
        rotate: bool,
    },
    /// `rotate`: a new data key, the file's own recipients with `add` and `remove`.
    Rotate {
        /// The labels of `--add-kms`, `--add-pgp`, `--add-age`.
        add: Vec<String>,
        /// `--rm-kms` (by ARN), `--rm-pgp`, `--rm-age`, as labels.
        remove: Vec<String>,
        /// The `--add-kms` keys, with their role, context and profile.
        add_kms: Vec<KmsKey>,
    },
}

impl Mode {
    fn rotates(&self) -> bool {
        matches!(
            self,
            Mode::Rotate { .. } | Mode::UpdateKeys { rotate: true }
        )
    }
}

/// Recipients from their labels (a rule's keys, `--add-age`, `--add-pgp`: see
/// `repo::rekey::recipient_label`); a KMS label is made from the key it came from in
/// `kms_keys` (the label alone does not give the context as written).
fn parse_groups(
    groups: &[Vec<String>],
    kms_keys: &HashMap<String, KmsKey>,
    make: &Mutex<RecipientMaker>,
) -> Result<Vec<Vec<Recipient>>, CliError> {
    let mut make = make.lock().unwrap_or_else(|p| p.into_inner());
    groups
        .iter()
        .map(|g| {
            g.iter()
                .map(|label| {
                    match kms_keys.get(label) {
                        Some(key) => make.kms_recipient(key.clone()),
                        None => make.label(label),
                    }
                    .map_err(CliError::Config)
                })
                .collect()
        })
        .collect()
}

/// The AWS KMS keys a file's new groups may name, by label: the file's own entries
/// (their `created_at` kept), then the rule's keys and the `--add-kms` keys (stamped
/// now), the first of each label winning. A file's entry is hostile, but it cannot
/// stand in for another key: equal labels mean equal ARN, role, context and profile
/// (`kms::label` quotes whatever could blur a boundary).
fn kms_keys_for(
    md: &crate::core::metadata::Metadata,
    rule: Option<&crate::core::creation_rules::CreationRule>,
    added: &[KmsKey],
    make: &Mutex<RecipientMaker>,
) -> Result<HashMap<String, KmsKey>, CliError> {
    let mut keys = HashMap::new();
    for entry in md.key_groups.iter().flat_map(|g| &g.keys) {
        if let Some(Ok((key, _))) = KmsKey::of_master_key(entry) {
            keys.entry(key.label()).or_insert(key);
        }
    }
    let make = make.lock().unwrap_or_else(|p| p.into_inner());
    for k in rule.iter().flat_map(|r| r.key_groups.iter().flatten()) {
        if let crate::core::creation_rules::RuleKey::Kms(k) = k {
            let key = make.rule_kms_key(k).map_err(CliError::Config)?;
            keys.entry(key.label()).or_insert(key);
        }
    }
    for key in added {
        keys.entry(key.label()).or_insert_with(|| key.clone());
    }
    Ok(keys)
}

/// Lowercase hex SHA-256.
fn sha256_hex(bytes: &[u8]) -> String {
    Sha256::digest(bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

// ---------------------------------------------------------------------------------
// The journal

/// The record of files a rotating run has written, so that `--resume` skips them.
///
/// One JSON line per file: its canonical path and the SHA-256 of the ciphertext this
/// run wrote there. The line is written and synced BEFORE the file is replaced, so
/// a run killed at any point leaves either a file whose digest matches its line
/// (rotated: skipped on resume) or a file that does not match (not rotated yet: done
/// on resume). Nothing in it is secret: paths, and digests of ciphertext only.
struct Journal {
    file: Mutex<std::fs::File>,
    done: HashMap<String, String>,
}

impl Journal {
    fn open(path: &Path, resume: bool) -> Result<Journal, CliError> {
        use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
        let werr = |source| CliError::Write {
            path: path.display().to_string(),
            source,
        };
        let mut done = HashMap::new();
        if resume {
            let text = std::fs::read_to_string(path).map_err(|source| CliError::Other {
                message: format!(
                    "--resume: cannot read the journal {}: {source}",
                    path.display()
                ),
                code: 2,
                hint: Some(
                    "pass the --journal of the interrupted run, or run again without --resume"
                        .into(),
                ),
            })?;
            // A line cut short by the kill is simply not a record.
            for line in text.lines() {
                if let Ok(v) = serde_json::from_str::<serde_json::Value>(line) {
                    if let (Some(p), Some(d)) = (v["path"].as_str(), v["sha256"].as_str()) {
                        done.insert(p.to_string(), d.to_string());
                    }
                }
            }
        }
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(parent)
                .map_err(werr)?;
        }
        let file = std::fs::OpenOptions::new()
            .create(true)
            .append(resume)
            .write(true)
            .truncate(!resume)
            .mode(0o600)
            .open(path)
            .map_err(werr)?;
        Ok(Journal {
            file: Mutex::new(file),
            done,
        })
    }

    /// True when this run already wrote exactly these bytes at `real`.
    fn is_done(&self, real: &Path, digest: &str) -> bool {
        self.done
            .get(real.to_string_lossy().as_ref())
            .is_some_and(|d| d == digest)
    }

    /// Records that `digest` is about to be written at `real` (synced before return).
    fn record(&self, real: &Path, digest: &str) -> std::io::Result<()> {
        let mut line =
            serde_json::json!({ "path": real.to_string_lossy(), "sha256": digest }).to_string();
        line.push('\n');
        let mut f = self.file.lock().unwrap_or_else(|e| e.into_inner());
        f.write_all(line.as_bytes())?;
        f.sync_data()
    }
}

/// The default journal: one per set of directories, under the user's state dir.
fn default_journal(dirs: &[PathBuf]) -> Option<PathBuf> {
    let state = std::env::var_os("XDG_STATE_HOME")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/state")))?;
    let mut h = Sha256::new();
    for d in dirs {
        let real = std::fs::canonicalize(d).unwrap_or_else(|_| d.clone());
        h.update(real.as_os_str().as_encoded_bytes());
        h.update([0]);
    }
    let id: String = h
        .finalize()
        .iter()
        .take(8)
        .map(|b| format!("{b:02x}"))
        .collect();
    Some(state.join("sopsync").join(format!("rotate-{id}.jsonl")))
}

// ---------------------------------------------------------------------------------
// The run

/// What happened to one file.
enum Outcome {
    Unchanged,
    AlreadyRotated,
    Rewrapped(RecipientChange),
    Rotated(RecipientChange),
    Planned(Action),
    Failed(String),
}

/// Everything a file's processing needs, shared by the worker threads.
struct Run<'a> {
    ctx: &'a Context,
    mode: &'a Mode,
    dry_run: bool,
    ids: Keyring,
    /// Makes the recipients of new groups; GnuPG and the AWS SDK are set up once, on
    /// the first file that needs them, and shared by the workers.
    make: Mutex<RecipientMaker>,
    configs: Configs,
    journal: Option<Journal>,
}

/// Runs `updatekeys`/`rotate` over every SOPS file under `dirs`.
pub(super) fn run(
    ctx: &Context,
    mode: Mode,
    dirs: &[PathBuf],
    args: &RecursiveArgs,
) -> Result<(), CliError> {
    if args.resume && !mode.rotates() {
        return Err(CliError::Conflict(
            "--resume applies to runs that rotate; updatekeys without --rotate changes no file twice: just run it again".into(),
        ));
    }
    let found = discover(dirs)?;
    for n in &found.notes {
        eprintln!("note: {}", super::terminal_safe(n));
    }
    let journal = if mode.rotates() && !args.dry_run {
        let path = args.journal.clone().or_else(|| default_journal(dirs)).ok_or_else(|| {
            CliError::Config("no place for the rotation journal: set XDG_STATE_HOME or HOME, or pass --journal FILE".into())
        })?;
        let j = Journal::open(&path, args.resume)?;
        eprintln!("journal: {}", path.display());
        Some(j)
    } else {
        None
    };
    let run = Run {
        ctx,
        mode: &mode,
        dry_run: args.dry_run,
        ids: crate::keysource::keys(),
        make: Mutex::new(RecipientMaker::new(super::now_utc().to_rfc3339())),
        configs: Configs::new(ctx.config.clone()),
        journal,
    };
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = indicatif::ProgressBar::new(found.sops.len() as u64);
        bar.set_style(
            indicatif::ProgressStyle::with_template("{bar:40} {pos}/{len} files {elapsed}")
                .unwrap_or_else(|_| indicatif::ProgressStyle::default_bar()),
        );
        bar
    });
    let say = |line: String| match &bar {
        Some(b) => b.println(line),
        None => eprintln!("{line}"),
    };
    let work = || -> Vec<(String, Outcome)> {
        found
            .sops
            .par_iter()
            .map(|f| {
                let outcome = run.file(f);
                say(describe(&super::terminal_safe(&f.shown), &outcome));
                if let Some(b) = &bar {
                    b.inc(1);
                }
                (f.shown.clone(), outcome)
            })
            .collect()
    };
    let results = match args.jobs {
        Some(n) => rayon::ThreadPoolBuilder::new()
            .num_threads(n.max(1))
            .build()
            .map_err(|e| CliError::Config(format!("--jobs {n}: {e}")))?
            .install(work),
        None => work(),
    };
    if let Some(b) = &bar {
        b.finish_and_clear();
    }
    summarize(&found.failures, results, args.dry_run)
}

impl Run<'_> {
    fn file(&self, f: &SopsFile) -> Outcome {
        match self.try_file(f) {
            Ok(o) => o,
            Err(e) => {
                let mut reason = match e.hint() {
                    Some(h) => format!("{e} ({h})"),
                    None => e.to_string(),
                };
                // Every failure names its file (some errors, of a key, do not).
                if !reason.starts_with(&f.shown) {
                    reason = format!("{}: {reason}", f.shown);
                }
                Outcome::Failed(super::terminal_safe(&reason).into_owned())
            }
        }
    }

    fn try_file(&self, f: &SopsFile) -> Result<Outcome, CliError> {
        let shown = Path::new(&f.shown);
        let real = std::fs::canonicalize(&f.path).unwrap_or_else(|_| f.path.clone());
        if let Some(j) = &self.journal {
            if j.is_done(&real, &sha256_hex(&f.bytes)) {
                return Ok(Outcome::AlreadyRotated);
            }
        }
        let config = self
            .configs
            .for_file(&f.path)
            .map_err(|e| CliError::Config(format!("{}: {e}", f.shown)))?;
        let stores = config
            .as_ref()
            .map(|(c, _)| c.config.stores)
            .unwrap_or_default();
        let opts = self.ctx.apply_indent(stores)?;
        let format = format_for(None, &f.path);
        let c = codec(format, &opts);
        let file = core_ops::parse_encrypted_with(c.as_ref(), format, &f.bytes)
            .map_err(core_err(shown))?;
        let md = &file.metadata;
        let (action, groups, threshold, kms_keys) = match self.mode {
            Mode::UpdateKeys { rotate } => {
                let (cfg, cfg_path) = config.ok_or_else(|| {
                    CliError::Config(format!(
                        "{}: no .sops.yaml in its directory or above (or pass --config)",
                        f.shown
                    ))
                })?;
                let rule = cfg
                    .config
                    .rule_for(&rule_path(&f.path, &cfg.dir))
                    .ok_or_else(|| {
                        CliError::Config(format!(
                            "{}: no creation rule in {} matches it",
                            f.shown,
                            cfg_path.display()
                        ))
                    })?;
                if rule.key_groups.is_empty() {
                    return Err(CliError::Config(format!(
                        "{}: its rule in {} has no keys",
                        f.shown,
                        cfg_path.display()
                    )));
                }
                (
                    rekey::plan_updatekeys(md, rule, *rotate),
                    rule.label_groups(),
                    rekey::rule_threshold(md, rule),
                    kms_keys_for(md, Some(rule), &[], &self.make)?,
                )
            }
            Mode::Rotate {
                add,
                remove,
                add_kms,
            } => {
                let rule = config
                    .as_ref()
                    .and_then(|(cfg, _)| cfg.config.rule_for(&rule_path(&f.path, &cfg.dir)));
                let (action, groups) = rekey::plan_rotate(md, add, remove, rule);
                let kms_keys = kms_keys_for(md, None, add_kms, &self.make)?;
                (action, groups, md.shamir_threshold, kms_keys)
            }
        };
        // OsRng is a unit struct: one per file needs no lock between the threads.
        let mut rng = rand_core::OsRng;
        let mut env = CryptoEnv {
            rng: &mut rng,
            now: super::now_utc(),
        };
        match action {
            Action::Refuse { key_types } => Err(CliError::Other {
                message: format!(
                    "{}: refused: it holds {} key entries, which sopsync cannot wrap a data key for; not rewritten (update it with sops)",
                    f.shown,
                    key_types.join(", ")
                ),
                code: 1,
                hint: None,
            }),
            Action::Unchanged => Ok(Outcome::Unchanged),
            planned if self.dry_run => Ok(Outcome::Planned(planned)),
            Action::Rewrap(change) => {
                let key = self.ctx.unwrap_key(md, &self.ids, shown)?;
                let next = core_ops::update_keys(
                    &file,
                    &key,
                    parse_groups(&groups, &kms_keys, &self.make)?,
                    threshold,
                    &mut env,
                )
                .map_err(core_err(shown))?;
                self.write(f, &real, c.as_ref(), &next)?;
                Ok(Outcome::Rewrapped(change))
            }
            Action::Rotate(change) => {
                let key = self.ctx.unwrap_key(md, &self.ids, shown)?;
                // The MAC is verified: a tampered file is not given a fresh seal.
                let plain = core_ops::decrypt(&file, &key, &DecryptOptions::default())
                    .map_err(core_err(shown))?;
                let next = core_ops::rotate(
                    plain.documents,
                    &file,
                    &plain.iv_stash,
                    Some(parse_groups(&groups, &kms_keys, &self.make)?),
                    threshold,
                    &mut env,
                )
                .map_err(core_err(shown))?;
                self.write(f, &real, c.as_ref(), &next)?;
                Ok(Outcome::Rotated(change))
            }
        }
    }

    /// Emits `next` and replaces the file atomically (the one writer, `write_output`),
    /// journaling a rotation first.
    fn write(
        &self,
        f: &SopsFile,
        real: &Path,
        c: &dyn crate::core::formats::Codec,
        next: &EncryptedFile,
    ) -> Result<(), CliError> {
        let out = core_ops::emit_encrypted_with(c, next).map_err(core_err(Path::new(&f.shown)))?;
        if let Some(j) = &self.journal {
            j.record(real, &sha256_hex(&out))
                .map_err(|source| CliError::Write {
                    path: "the rotation journal".into(),
                    source,
                })?;
        }
        write_output(&out, Some(&f.path), None)
    }
}

fn change_text(c: &RecipientChange) -> String {
    let mut parts = Vec::new();
    let list = |labels: &[String]| {
        labels
            .iter()
            .map(|l| super::terminal_safe(l))
            .collect::<Vec<_>>()
            .join(", ")
    };
    if !c.removed.is_empty() {
        parts.push(format!("removed {}", list(&c.removed)));
    }
    if !c.added.is_empty() {
        parts.push(format!("added {}", list(&c.added)));
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!(" ({})", parts.join("; "))
    }
}

/// The warning line for a rotation that keeps recipients its rule does not list.
fn unlisted_warning(shown: &str, c: &RecipientChange) -> String {
    if c.unlisted.is_empty() {
        return String::new();
    }
    let names: Vec<_> = c.unlisted.iter().map(|l| super::terminal_safe(l)).collect();
    format!(
        "\nwarning: {shown}: the new data key is also wrapped for {}, which its .sops.yaml rule does not list (an entry added to the file by hand is not covered by the MAC); if nobody added it on purpose, run `sopsync updatekeys --recursive --rotate` instead: it wraps for the rule's recipients only",
        names.join(", ")
    )
}

/// The line printed for one file.
fn describe(shown: &str, o: &Outcome) -> String {
    match o {
        Outcome::Unchanged => format!("unchanged {shown}"),
        Outcome::AlreadyRotated => format!("already rotated {shown} (journal)"),
        Outcome::Rewrapped(c) if !c.removed.is_empty() => format!(
            "updated keys of {shown}{}\nwarning: {shown}: the removed recipients still know its data key; rotate it (sopsync rotate --recursive) to shut them out",
            change_text(c)
        ),
        Outcome::Rewrapped(c) => format!("updated keys of {shown}{}", change_text(c)),
        Outcome::Rotated(c) => format!("rotated {shown}{}{}", change_text(c), unlisted_warning(shown, c)),
        Outcome::Planned(Action::Rewrap(c)) => {
            format!("would update keys of {shown}{}", change_text(c))
        }
        Outcome::Planned(Action::Rotate(c)) => format!(
            "would rotate {shown}{}{}",
            change_text(c),
            unlisted_warning(shown, c)
        ),
        Outcome::Planned(_) => format!("unchanged {shown}"),
        Outcome::Failed(reason) => format!("FAILED {reason}"),
    }
}

/// Prints the summary; an error (exit 1) when any file failed.
fn summarize(
    walk_failures: &[(String, String)],
    results: Vec<(String, Outcome)>,
    dry_run: bool,
) -> Result<(), CliError> {
    let mut changed = 0usize;
    let mut unchanged = 0usize;
    let mut failed: Vec<String> = walk_failures
        .iter()
        .map(|(shown, why)| super::terminal_safe(&format!("{shown}: {why}")).into_owned())
        .collect();
    // Recipient → files that dropped it but kept their data key.
    let mut still_knows: BTreeMap<String, usize> = BTreeMap::new();
    for (_, o) in &results {
        match o {
            Outcome::Unchanged | Outcome::AlreadyRotated => unchanged += 1,
            Outcome::Rewrapped(c) => {
                changed += 1;
                for r in &c.removed {
                    *still_knows.entry(r.clone()).or_default() += 1;
                }
            }
            Outcome::Rotated(_) | Outcome::Planned(_) => changed += 1,
            Outcome::Failed(reason) => failed.push(reason.clone()),
        }
    }
    failed.sort();
    let verb = if dry_run { "to change" } else { "changed" };
    eprintln!(
        "summary: {changed} {verb}, {unchanged} unchanged, {} failed",
        failed.len()
    );
    for f in &failed {
        eprintln!("  failed: {}", super::terminal_safe(f));
    }
    for (r, n) in &still_knows {
        let r = super::terminal_safe(r);
        eprintln!(
            "  removed {r} from {n} file(s) without a new data key: its holder still knows those keys; rotate next (sopsync rotate --recursive, or updatekeys --recursive --rotate)"
        );
    }
    if failed.is_empty() {
        Ok(())
    } else {
        Err(CliError::Other {
            message: format!("{} file(s) failed (listed above)", failed.len()),
            code: 1,
            hint: Some("fix them and run again: done files are not redone (updatekeys changes nothing twice; rotate: add --resume)".into()),
        })
    }
}
