//! `sopsync rotate` (new data key) and `sopsync updatekeys` (re-wrap for the
//! recipients of the matching `.sops.yaml` rule).

use super::repo_keys::{Mode, RecursiveArgs};
use super::{core_err, format_for, read_input, rule_path, write_output, Context};
use crate::core::formats::codec;
use crate::core::keys::kms::label_is_named_by;
use crate::core::{self as core_ops, CryptoEnv};
use crate::error::CliError;
use std::path::PathBuf;

/// `rotate` flags.
#[derive(clap::Args, Debug)]
pub struct RotateArgs {
    /// The encrypted file; with --recursive, the directories to walk.
    #[arg(required = true, value_name = "FILE")]
    paths: Vec<PathBuf>,
    /// Write back to the file (atomically).
    #[arg(short = 'i', long)]
    in_place: bool,
    /// Age recipients to add to the first key group, comma-separated.
    #[arg(long)]
    add_age: Option<String>,
    /// Age recipients to remove from every key group, comma-separated.
    #[arg(long)]
    rm_age: Option<String>,
    /// PGP fingerprints to add to the first key group, comma-separated.
    #[arg(long)]
    add_pgp: Option<String>,
    /// PGP fingerprints to remove from every key group, comma-separated.
    #[arg(long)]
    rm_pgp: Option<String>,
    /// AWS KMS key ARNs to add to the first key group, comma-separated (`ARN+ROLE_ARN`
    /// assumes that role first).
    #[arg(long)]
    add_kms: Option<String>,
    /// AWS KMS key ARNs to remove from every key group, comma-separated.
    #[arg(long)]
    rm_kms: Option<String>,
    /// AWS KMS encryption context for the `--add-kms` keys: `key:value` pairs,
    /// comma-separated.
    #[arg(long = "encryption-context")]
    encryption_context: Option<String>,
    /// The AWS profile (shared config) for the `--add-kms` keys.
    #[arg(long = "aws-profile")]
    aws_profile: Option<String>,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
    #[command(flatten)]
    recursive: RecursiveArgs,
}

/// `updatekeys` flags.
#[derive(clap::Args, Debug)]
pub struct UpdateKeysArgs {
    /// The encrypted file; with --recursive, the directories to walk.
    #[arg(required = true, value_name = "FILE")]
    paths: Vec<PathBuf>,
    /// Do not ask for confirmation (sopsync never prompts; accepted for compatibility).
    #[arg(short = 'y', long)]
    yes: bool,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
    /// With --recursive: also give every file a new data key (updatekeys keeps it).
    #[arg(long, requires = "recursive")]
    rotate: bool,
    #[command(flatten)]
    recursive: RecursiveArgs,
}

/// The one file of a single-file run; several paths need --recursive.
fn single(
    paths: &[PathBuf],
    input_type: Option<&str>,
    a: &RecursiveArgs,
) -> Result<Option<PathBuf>, CliError> {
    if a.recursive {
        if input_type.is_some() {
            return Err(CliError::Conflict(
                "--input-type applies to one file; with --recursive each file's format comes from its name".into(),
            ));
        }
        return Ok(None);
    }
    match paths {
        [one] => Ok(Some(one.clone())),
        _ => Err(CliError::Conflict(
            "several paths given: pass one file, or --recursive to walk directories".into(),
        )),
    }
}

fn split(list: &Option<String>) -> Vec<String> {
    list.as_deref()
        .unwrap_or("")
        .split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(String::from)
        .collect()
}

/// Keys named by `--rm-*` (and `--add-pgp`/`--add-age`) as recipient labels
/// (`repo::rekey`), in sops' order (kms, pgp, age). A KMS name is `kms:ARN` without a
/// `+ROLE_ARN`: it removes every key of that ARN, as sops removes by ARN.
fn labels(kms: &Option<String>, pgp: &Option<String>, age: &Option<String>) -> Vec<String> {
    split(kms)
        .iter()
        .map(|arn| {
            let arn = arn.replace(' ', "");
            let arn = arn.split("+arn:").next().unwrap_or("");
            crate::core::keys::kms::label(arn, None, &[], None)
        })
        .chain(
            split(pgp)
                .iter()
                .map(|fp| format!("pgp:{}", fp.replace(' ', ""))),
        )
        .chain(split(age))
        .collect()
}

pub(super) fn run_rotate(ctx: &Context, a: RotateArgs) -> Result<(), CliError> {
    let kms_flags = super::encrypt::KmsArgs {
        kms: None,
        encryption_context: a.encryption_context.clone(),
        aws_profile: a.aws_profile.clone(),
    };
    let mut make = kms_flags.maker()?;
    // `--add-kms` keys as given (a `+ROLE_ARN` kept) with the flags' context and
    // profile: a label alone would lose them.
    let add_kms = split(&a.add_kms)
        .iter()
        .map(|given| make.kms_key(given))
        .collect::<Result<Vec<_>, _>>()
        .map_err(CliError::Config)?;
    let add_other = labels(&None, &a.add_pgp, &a.add_age);
    let remove = labels(&a.rm_kms, &a.rm_pgp, &a.rm_age);
    let Some(path) = single(&a.paths, a.input_type.as_deref(), &a.recursive)? else {
        let add = add_kms
            .iter()
            .map(crate::core::keys::KmsKey::label)
            .chain(add_other)
            .collect();
        let mode = Mode::Rotate {
            add,
            remove,
            add_kms,
        };
        return super::repo_keys::run(ctx, mode, &a.paths, &a.recursive);
    };
    let super::edit::Opened {
        format,
        opts,
        file,
        plain,
        ..
    } = super::edit::open(ctx, &path, a.input_type.as_deref())?;
    let c = codec(format, &opts);
    // GnuPG and the AWS SDK are needed to wrap again for the file's PGP and KMS keys.
    let engines = make.engines_for(&file.metadata).map_err(CliError::Config)?;
    let mut groups =
        core_ops::recipients_of_in(&file.metadata, &engines).map_err(core_err(&path))?;
    for g in groups.iter_mut() {
        g.retain(|r| {
            let label = r.label();
            !remove.iter().any(|name| label_is_named_by(&label, name))
        });
    }
    let mut added = Vec::new();
    for key in add_kms {
        added.push(make.kms_recipient(key).map_err(CliError::Config)?);
    }
    for label in &add_other {
        added.push(make.label(label).map_err(CliError::Config)?);
    }
    for r in added {
        if let Some(first) = groups.first_mut() {
            if !first.iter().any(|x| x.label() == r.label()) {
                first.push(r);
            }
        }
    }
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: super::now_utc(),
    };
    let threshold = file.metadata.shamir_threshold;
    let next = core_ops::rotate(
        plain.documents.clone(),
        &file,
        &plain.iv_stash,
        Some(groups),
        threshold,
        &mut env,
    )
    .map_err(core_err(&path))?;
    let out = core_ops::emit_encrypted_with(c.as_ref(), &next).map_err(core_err(&path))?;
    write_output(&out, a.in_place.then_some(path.as_path()), None)
}

pub(super) fn run_updatekeys(ctx: &Context, a: UpdateKeysArgs) -> Result<(), CliError> {
    let _ = a.yes;
    let Some(path) = single(&a.paths, a.input_type.as_deref(), &a.recursive)? else {
        let mode = Mode::UpdateKeys { rotate: a.rotate };
        return super::repo_keys::run(ctx, mode, &a.paths, &a.recursive);
    };
    let format = format_for(a.input_type.as_deref(), &path);
    let loaded = ctx.load_config()?.ok_or_else(|| {
        CliError::Config("updatekeys needs a .sops.yaml with creation rules".into())
    })?;
    let rule = loaded
        .config
        .rule_for(&rule_path(&path, &loaded.dir))
        .cloned()
        .ok_or_else(|| {
            CliError::Config(format!(
                "no creation rule in .sops.yaml matches {}",
                path.display()
            ))
        })?;
    let mut make = crate::keysource::RecipientMaker::new(super::now_utc().to_rfc3339());
    let groups = make
        .rule_groups(&rule.key_groups)
        .map_err(CliError::Config)?;
    if groups.is_empty() {
        return Err(CliError::NoRecipients);
    }
    let opts = ctx.apply_indent(loaded.config.stores)?;
    let c = codec(format, &opts);
    let input = read_input(&path)?;
    let file =
        core_ops::parse_encrypted_with(c.as_ref(), format, &input).map_err(core_err(&path))?;
    let ids = crate::keysource::keys();
    let key = ctx.unwrap_key(&file.metadata, &ids, &path)?;
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: super::now_utc(),
    };
    let next = core_ops::update_keys(
        &file,
        &key,
        groups,
        rule.shamir_threshold.or(file.metadata.shamir_threshold),
        &mut env,
    )
    .map_err(core_err(&path))?;
    let out = core_ops::emit_encrypted_with(c.as_ref(), &next).map_err(core_err(&path))?;
    write_output(&out, Some(&path), None)?;
    eprintln!("updated keys of {}", path.display());
    Ok(())
}
