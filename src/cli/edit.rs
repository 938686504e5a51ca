//! `sopsync edit`, `set`, `unset` and `exec-env`: decrypt, change or use the
//! plaintext, and re-encrypt with the same data key, reusing the IVs of unchanged
//! values so diffs stay small (spec §2.4, §9.3).

use super::{core_err, format_for, parse_tree_path, read_input, write_output, Context, Step};
use crate::core::formats::{codec, json::JsonCodec, Codec, Format, FormatOptions};
use crate::core::tree::{Mapping, SeqEntry, Value};
use crate::core::{self as core_ops, CryptoEnv, DecryptOptions, EncryptedFile};
use crate::error::CliError;
use sha2::{Digest, Sha256};
use std::path::{Path, PathBuf};

/// `edit` flags.
#[derive(clap::Args, Debug)]
pub struct EditArgs {
    /// The encrypted file.
    file: PathBuf,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
}

/// `set` flags.
#[derive(clap::Args, Debug)]
pub struct SetArgs {
    /// The encrypted file (rewritten in place).
    file: PathBuf,
    /// Where, e.g. '["data"]["password"]'.
    path: String,
    /// The new value as JSON ('"text"', 5, {"a": [1]}); omit with --value-stdin.
    value: Option<String>,
    /// Read the JSON value from stdin.
    #[arg(long)]
    value_stdin: bool,
    /// Do not rewrite the file when the value is already there.
    #[arg(long)]
    idempotent: bool,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
}

/// `unset` flags.
#[derive(clap::Args, Debug)]
pub struct UnsetArgs {
    /// The encrypted file (rewritten in place).
    file: PathBuf,
    /// What to remove, e.g. '["data"]["old"]' or '["list"][2]'.
    path: String,
    /// Succeed without writing when the path does not exist.
    #[arg(long)]
    idempotent: bool,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
}

/// `exec-env` flags.
#[derive(clap::Args, Debug)]
pub struct ExecEnvArgs {
    /// The encrypted file; its top-level keys become environment variables.
    file: PathBuf,
    /// The command, run with `sh -c`.
    command: String,
    /// Start from an empty environment (only the decrypted variables).
    #[arg(long)]
    pristine: bool,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
}

/// An encrypted file opened for change: parsed, data key unwrapped, decrypted with
/// the MAC verified, IVs remembered.
pub(super) struct Opened {
    pub(super) format: Format,
    pub(super) opts: FormatOptions,
    pub(super) file: EncryptedFile,
    pub(super) key: crate::core::secret::DataKey,
    pub(super) plain: core_ops::Decrypted,
}

/// Opens `path` with the environment's keys (shared by edit, set, unset, exec-env, rotate).
pub(super) fn open(
    ctx: &Context,
    path: &Path,
    input_type: Option<&str>,
) -> Result<Opened, CliError> {
    let format = format_for(input_type, path);
    let opts = ctx.format_options()?;
    let input = read_input(path)?;
    let file = core_ops::parse_encrypted_with(codec(format, &opts).as_ref(), format, &input)
        .map_err(core_err(path))?;
    let ids = crate::keysource::keys();
    let key = ctx.unwrap_key(&file.metadata, &ids, path)?;
    let plain =
        core_ops::decrypt(&file, &key, &DecryptOptions::default()).map_err(core_err(path))?;
    Ok(Opened {
        format,
        opts,
        file,
        key,
        plain,
    })
}

fn save(o: &Opened, docs: Vec<Mapping>, path: &Path, raise_version: bool) -> Result<(), CliError> {
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: super::now_utc(),
    };
    let mut next = core_ops::reencrypt(docs, &o.file, &o.key, &o.plain.iv_stash, &mut env)
        .map_err(core_err(path))?;
    if raise_version {
        // `edit` raises `version` to ours when it is older (spec §6.6); set/unset keep it.
        next.metadata.version = crate::core::metadata::SOPS_VERSION.to_string();
    }
    let out = core_ops::emit_encrypted_with(codec(o.format, &o.opts).as_ref(), &next)
        .map_err(core_err(path))?;
    write_output(&out, Some(path), None)
}

/// The editor command: $SOPS_EDITOR, then $EDITOR, then vim, nano, vi (sops' order).
fn editor() -> Result<Vec<String>, CliError> {
    for var in ["SOPS_EDITOR", "EDITOR"] {
        if let Ok(v) = std::env::var(var) {
            if !v.trim().is_empty() {
                return crate::keysource::split_command(&v)
                    .map_err(|e| CliError::Config(format!("{var}: {e}")));
            }
        }
    }
    for candidate in ["vim", "nano", "vi"] {
        let found = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).any(|d| d.join(candidate).is_file()))
            .unwrap_or(false);
        if found {
            return Ok(vec![candidate.to_string()]);
        }
    }
    Err(CliError::Other {
        message: "no editor found".into(),
        code: 201,
        hint: Some("set SOPS_EDITOR or EDITOR".into()),
    })
}

pub(super) fn run_edit(ctx: &Context, a: EditArgs) -> Result<(), CliError> {
    let o = open(ctx, &a.file, a.input_type.as_deref())?;
    let c = codec(o.format, &o.opts);
    let plain = zeroize::Zeroizing::new(
        c.emit_plain(&o.plain.documents)
            .map_err(|e| core_err(&a.file)(e.into()))?,
    );
    let name = a
        .file
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| "file".into());
    let private = |source| CliError::Write {
        path: "a private temporary file".into(),
        source,
    };
    // Before the plaintext reaches disk: from here on, Ctrl+C, a SIGTERM or a closed
    // terminal ends the editor and wipes the file instead of leaving it behind.
    crate::ephemeral::wipe_on_interrupt().map_err(private)?;
    let tmp = crate::ephemeral::EphemeralFile::create(&name, &plain).map_err(private)?;
    let before = Sha256::digest(&plain[..]);
    let argv = editor()?;
    // As sops' runEditorUntilOk: text that does not parse sends the user back to the
    // editor with their changes, on a terminal; sops 3.11 does that on any standard
    // input, so without a terminal it starts the editor again and again without end.
    // Here a non-terminal fails instead, and nothing is written.
    let docs = loop {
        let status = crate::ephemeral::run_foreground(
            std::process::Command::new(&argv[0])
                .args(&argv[1..])
                .arg(tmp.path()),
        )
        .map_err(|e| CliError::Other {
            message: format!("could not start editor `{}`: {e}", argv[0]),
            code: 201,
            hint: Some("set SOPS_EDITOR or EDITOR to an installed editor".into()),
        })?;
        if !status.success() {
            return Err(CliError::Other {
                message: format!(
                    "editor `{}` exited with {status}; the file was not changed",
                    argv[0]
                ),
                code: 200,
                hint: None,
            });
        }
        let edited = zeroize::Zeroizing::new(std::fs::read(tmp.path()).map_err(|source| {
            CliError::Read {
                path: tmp.path().to_path_buf(),
                source,
            }
        })?);
        if Sha256::digest(&edited[..]) == before {
            return Err(CliError::Other {
                message: "File has not changed, exiting.".into(),
                code: 200,
                hint: None,
            });
        }
        let invalid = match c.parse_plain(&edited) {
            Ok(docs) => break docs,
            Err(e) => format!(
                "{}: the edited file is not valid {}: {e}",
                a.file.display(),
                o.format.name()
            ),
        };
        if !std::io::IsTerminal::is_terminal(&std::io::stdin()) {
            return Err(CliError::Other {
                message: format!("{invalid}; nothing was written"),
                code: 2,
                hint: Some(
                    "run sopsync edit again (on a terminal it reopens the editor with your changes)"
                        .into(),
                ),
            });
        }
        eprintln!(
            "sopsync: {invalid}\nPress Enter to return to the editor, or Ctrl+C to exit (your changes are then wiped)."
        );
        let mut line = String::new();
        match std::io::stdin().read_line(&mut line) {
            Ok(n) if n > 0 => continue,
            _ => {
                return Err(CliError::Other {
                    message: format!("{invalid}; standard input closed, nothing was written"),
                    code: 2,
                    hint: None,
                })
            }
        }
    };
    save(&o, docs, &a.file, true)
}

fn seq_value_mut(items: &mut [SeqEntry], i: usize) -> Option<&mut Value> {
    items
        .iter_mut()
        .filter_map(|e| {
            if let SeqEntry::Value(v) = e {
                Some(v)
            } else {
                None
            }
        })
        .nth(i)
}

/// Sets `value` at `steps`, creating missing mappings; returns whether it changed.
fn set_at(doc: &mut Mapping, steps: &[Step], value: Value, shown: &str) -> Result<bool, CliError> {
    let missing = |what: &str| CliError::Extract {
        message: format!("cannot set {shown}: {what}"),
        code: 1,
    };
    let mut cur: &mut Value = {
        let Step::Key(k) = &steps[0] else {
            unreachable!("checked by parse_path")
        };
        if doc.get(k).is_none() {
            doc.push(
                k.clone(),
                if steps.len() == 1 {
                    Value::Null
                } else {
                    Value::Map(Mapping::new())
                },
            );
        }
        doc.get_mut(k).expect("just inserted")
    };
    for (n, step) in steps[1..].iter().enumerate() {
        let last = n + 2 == steps.len();
        cur = match (step, cur) {
            (Step::Key(k), Value::Map(m)) => {
                if m.get(k).is_none() {
                    m.push(
                        k.clone(),
                        if last {
                            Value::Null
                        } else {
                            Value::Map(Mapping::new())
                        },
                    );
                }
                m.get_mut(k).expect("just inserted")
            }
            (Step::Index(i), Value::Seq(s)) => {
                seq_value_mut(&mut s.items, *i).ok_or_else(|| missing("index out of range"))?
            }
            _ => {
                return Err(missing(
                    "a step goes through a value that is not a mapping or list",
                ))
            }
        };
    }
    let changed = *cur != value;
    *cur = value;
    Ok(changed)
}

fn unset_at(doc: &mut Mapping, steps: &[Step]) -> bool {
    let (last, parents) = steps.split_last().expect("non-empty");
    if parents.is_empty() {
        let Step::Key(k) = last else { return false };
        return doc.remove(k).is_some();
    }
    let Step::Key(first) = &parents[0] else {
        return false;
    };
    let Some(mut cur) = doc.get_mut(first) else {
        return false;
    };
    for step in &parents[1..] {
        cur = match (step, cur) {
            (Step::Key(k), Value::Map(m)) => match m.get_mut(k) {
                Some(v) => v,
                None => return false,
            },
            (Step::Index(i), Value::Seq(s)) => match seq_value_mut(&mut s.items, *i) {
                Some(v) => v,
                None => return false,
            },
            _ => return false,
        };
    }
    match (last, cur) {
        (Step::Key(k), Value::Map(m)) => m.remove(k).is_some(),
        (Step::Index(i), Value::Seq(s)) => {
            let pos = s
                .items
                .iter()
                .enumerate()
                .filter(|(_, e)| matches!(e, SeqEntry::Value(_)))
                .nth(*i)
                .map(|(p, _)| p);
            match pos {
                Some(p) => {
                    s.items.remove(p);
                    true
                }
                None => false,
            }
        }
        _ => false,
    }
}

pub(super) fn run_set(ctx: &Context, a: SetArgs) -> Result<(), CliError> {
    let text = match (&a.value, a.value_stdin) {
        (Some(v), false) => zeroize::Zeroizing::new(v.clone()),
        (None, true) => {
            let mut s = String::new();
            std::io::Read::read_to_string(&mut std::io::stdin(), &mut s).map_err(|source| {
                CliError::Read {
                    path: "stdin".into(),
                    source,
                }
            })?;
            zeroize::Zeroizing::new(s)
        }
        _ => {
            return Err(CliError::Conflict(
                "give the value as an argument or with --value-stdin, not both".into(),
            ))
        }
    };
    // The value is JSON (numbers become floats, as in sops).
    let wrapped = zeroize::Zeroizing::new(format!("{{\"v\": {}}}", text.as_str()));
    let mut parsed = JsonCodec::new(&FormatOptions::default())
        .parse_plain(wrapped.as_bytes())
        .map_err(|_| CliError::Other {
            message: "the value is not valid JSON (strings need quotes: '\"text\"')".into(),
            code: 7,
            hint: None,
        })?;
    let value = parsed[0].remove("v").unwrap_or(Value::Null);
    let steps = parse_tree_path(&a.path, "path")?;
    let mut o = open(ctx, &a.file, a.input_type.as_deref())?;
    let mut docs = std::mem::take(&mut o.plain.documents);
    let doc = docs
        .first_mut()
        .ok_or_else(|| CliError::Config("the file has no document".into()))?;
    let changed = set_at(doc, &steps, value, &a.path)?;
    if !changed && a.idempotent {
        return Ok(());
    }
    save(&o, docs, &a.file, false)
}

pub(super) fn run_unset(ctx: &Context, a: UnsetArgs) -> Result<(), CliError> {
    let steps = parse_tree_path(&a.path, "path")?;
    let mut o = open(ctx, &a.file, a.input_type.as_deref())?;
    let mut docs = std::mem::take(&mut o.plain.documents);
    let removed = docs.first_mut().is_some_and(|d| unset_at(d, &steps));
    if !removed {
        if a.idempotent {
            return Ok(());
        }
        return Err(CliError::Extract {
            message: format!("component {} not found", a.path),
            code: 1,
        });
    }
    save(&o, docs, &a.file, false)
}

pub(super) fn run_exec_env(ctx: &Context, a: ExecEnvArgs) -> Result<(), CliError> {
    let o = open(ctx, &a.file, a.input_type.as_deref())?;
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c").arg(&a.command);
    if a.pristine {
        cmd.env_clear();
    }
    let dotenv = codec(Format::Dotenv, &FormatOptions::default());
    for doc in &o.plain.documents {
        for (k, v) in doc.pairs() {
            if k.contains('=') {
                return Err(CliError::Config(format!(
                    "{}: key `{k}` contains `=`, which cannot be an environment variable",
                    a.file.display()
                )));
            }
            let text = match v {
                Value::Str(t) => zeroize::Zeroizing::new(t.expose_secret().to_vec()),
                Value::Map(_) | Value::Seq(_) => {
                    return Err(CliError::Config(format!(
                        "{}: `{k}` is not a scalar; exec-env needs flat key/value files",
                        a.file.display()
                    )))
                }
                other => {
                    // Non-strings as sops converts them for dotenv (spec §7.3).
                    let mut single = Mapping::new();
                    single.push("v", other.clone());
                    let line = dotenv
                        .emit_plain(&[single])
                        .map_err(|e| core_err(&a.file)(e.into()))?;
                    let s = String::from_utf8_lossy(&line);
                    zeroize::Zeroizing::new(
                        s.trim_end_matches('\n')
                            .trim_start_matches("v=")
                            .as_bytes()
                            .to_vec(),
                    )
                }
            };
            use std::os::unix::ffi::OsStrExt;
            cmd.env(k, std::ffi::OsStr::from_bytes(&text));
        }
    }
    let status = cmd.status().map_err(|e| CliError::Other {
        message: format!("could not run sh: {e}"),
        code: 1,
        hint: None,
    })?;
    match status.code() {
        Some(0) => Ok(()),
        Some(code) => std::process::exit(code),
        None => std::process::exit(1),
    }
}
