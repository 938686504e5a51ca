//! `sopsync encrypt`: sops-compatible encryption of a plaintext file.

use super::{core_err, format_for, rule_path, write_output, Context, Source};
use crate::core::formats::codec;
use crate::core::keys::Recipient;
use crate::core::metadata::SelectionRule;
use crate::core::{self as core_ops, CryptoEnv, EncryptConfig};
use crate::error::CliError;
use std::path::PathBuf;

/// `encrypt` flags (sops names).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The plaintext file; standard input when left out (then `--filename-override`
    /// is required, as in sops).
    file: Option<PathBuf>,
    /// Age recipients, comma-separated.
    #[arg(short = 'a', long = "age")]
    age: Option<String>,
    /// PGP fingerprints, comma-separated (default: `SOPS_PGP_FP`); encrypted through
    /// your GnuPG (`gpg`, or `SOPS_GPG_EXEC`).
    #[arg(short = 'p', long = "pgp")]
    pgp: Option<String>,
    #[command(flatten)]
    kms: KmsArgs,
    /// Input format (yaml, json, dotenv, ini, binary); default: by extension.
    #[arg(long)]
    input_type: Option<String>,
    /// Output format; default: the input's.
    #[arg(long)]
    output_type: Option<String>,
    /// Name used for format detection and .sops.yaml rule matching.
    #[arg(long)]
    filename_override: Option<PathBuf>,
    /// Write the result back to the file (atomically).
    #[arg(short = 'i', long)]
    in_place: bool,
    /// Write the result to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Leave values whose key path has a key ending with this suffix unencrypted.
    #[arg(long)]
    unencrypted_suffix: Option<String>,
    /// Encrypt only values whose key path has a key ending with this suffix.
    #[arg(long)]
    encrypted_suffix: Option<String>,
    /// Leave values whose key path has a key matching this regex unencrypted.
    #[arg(long)]
    unencrypted_regex: Option<String>,
    /// Encrypt only values whose key path has a key matching this regex.
    #[arg(long)]
    encrypted_regex: Option<String>,
    /// Leave values after a comment matching this regex unencrypted.
    #[arg(long)]
    unencrypted_comment_regex: Option<String>,
    /// Encrypt only values after a comment matching this regex.
    #[arg(long)]
    encrypted_comment_regex: Option<String>,
    /// Hash only the encrypted values into the MAC.
    #[arg(long)]
    mac_only_encrypted: bool,
    /// Shamir threshold for several key groups.
    #[arg(long = "shamir-secret-sharing-threshold")]
    shamir_threshold: Option<usize>,
}

fn flag_rule(a: &Args) -> Result<Option<SelectionRule>, CliError> {
    let given: Vec<SelectionRule> = [
        a.unencrypted_suffix
            .clone()
            .map(SelectionRule::UnencryptedSuffix),
        a.encrypted_suffix
            .clone()
            .map(SelectionRule::EncryptedSuffix),
        a.unencrypted_regex
            .clone()
            .map(SelectionRule::UnencryptedRegex),
        a.encrypted_regex.clone().map(SelectionRule::EncryptedRegex),
        a.unencrypted_comment_regex
            .clone()
            .map(SelectionRule::UnencryptedCommentRegex),
        a.encrypted_comment_regex
            .clone()
            .map(SelectionRule::EncryptedCommentRegex),
    ]
    .into_iter()
    .flatten()
    .collect();
    if given.len() > 1 {
        return Err(CliError::Conflict(
            "only one of --unencrypted-suffix, --encrypted-suffix, --unencrypted-regex, --encrypted-regex, --unencrypted-comment-regex, --encrypted-comment-regex may be given".into(),
        ));
    }
    Ok(given.into_iter().next())
}

/// The AWS KMS flags of `encrypt` (sops' names).
#[derive(clap::Args, Debug)]
pub struct KmsArgs {
    /// AWS KMS key ARNs, comma-separated (default: `SOPS_KMS_ARN`); `ARN+ROLE_ARN`
    /// assumes that role first. Credentials come from the AWS SDK's default chain.
    #[arg(short = 'k', long = "kms")]
    pub kms: Option<String>,
    /// AWS KMS encryption context for the `--kms` keys: `key:value` pairs,
    /// comma-separated.
    #[arg(long = "encryption-context")]
    pub encryption_context: Option<String>,
    /// The AWS profile (shared config) for the `--kms` keys.
    #[arg(long = "aws-profile")]
    pub aws_profile: Option<String>,
}

impl KmsArgs {
    /// A recipient maker with these flags' context and profile.
    ///
    /// Errors: a malformed `--encryption-context` (sops exit 6).
    pub fn maker(&self) -> Result<crate::keysource::RecipientMaker, CliError> {
        crate::keysource::RecipientMaker::new(super::now_utc().to_rfc3339())
            .with_kms_options(
                self.encryption_context.as_deref(),
                self.aws_profile.as_deref(),
            )
            .map_err(|message| CliError::Other {
                message,
                code: 6,
                hint: Some(
                    "write the context as key:value pairs separated by commas, e.g. --encryption-context app:web,env:prod".into(),
                ),
            })
    }
}

/// The one key group of `--kms`/`SOPS_KMS_ARN`, `--pgp`/`SOPS_PGP_FP` and
/// `--age`/`SOPS_AGE_RECIPIENTS`, in sops' order (kms, pgp, age); `None` when none is
/// given.
fn flag_recipients(
    a: &Args,
    make: &mut crate::keysource::RecipientMaker,
) -> Result<Option<Vec<Recipient>>, CliError> {
    let age = a.age.clone().or_else(crate::keysource::env_recipients);
    let pgp = a
        .pgp
        .clone()
        .or_else(crate::keysource::env_pgp_fingerprints);
    let kms = a.kms.kms.clone().or_else(crate::keysource::env_kms_arns);
    if age.is_none() && pgp.is_none() && kms.is_none() {
        return Ok(None);
    }
    let items = |list: &Option<String>| -> Vec<String> {
        list.iter()
            .flat_map(|l| l.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let mut group = Vec::new();
    for arn in items(&kms) {
        group.push(make.kms(&arn).map_err(CliError::Config)?);
    }
    for fp in items(&pgp) {
        group.push(make.pgp(&fp).map_err(CliError::Config)?);
    }
    for r in items(&age) {
        group.push(make.age(&r).map_err(CliError::Config)?);
    }
    Ok(Some(group))
}

pub(super) fn run(ctx: &Context, a: Args) -> Result<(), CliError> {
    // sops 3.11 checks these in this order, each exit 8; `--input-type` alone does not
    // name the file for `.sops.yaml` rules, so it is not enough.
    if a.file.is_none() && a.in_place {
        return Err(CliError::Conflict(
            "cannot use --in-place when reading from stdin".into(),
        ));
    }
    if a.file.is_none() && a.filename_override.is_none() {
        return Err(CliError::Conflict(
            "must specify --filename-override when reading from stdin".into(),
        ));
    }
    if a.in_place && a.output.is_some() {
        return Err(CliError::Conflict(
            "--in-place and --output cannot be combined".into(),
        ));
    }
    let source = Source::new(a.file.as_deref());
    let name = source
        .format_name(a.filename_override.as_deref())
        .to_path_buf();
    let in_format = format_for(a.input_type.as_deref(), &name);
    // As sops: `--output-type` or the name's format, never the input type's.
    let out_format = format_for(a.output_type.as_deref(), &name);
    let flag_rule = flag_rule(&a)?;
    let loaded = ctx.load_config()?;
    let opts = ctx.apply_indent(loaded.as_ref().map(|l| l.config.stores).unwrap_or_default())?;
    let rule_from_config = loaded
        .as_ref()
        .and_then(|l| l.config.rule_for(&rule_path(&name, &l.dir)).cloned());

    // Key flags replace the rule's keys entirely (spec §8.2).
    let mut make = a.kms.maker()?;
    let key_groups: Vec<Vec<Recipient>> = if let Some(group) = flag_recipients(&a, &mut make)? {
        vec![group]
    } else if let Some(rule) = &rule_from_config {
        make.rule_groups(&rule.key_groups)
            .map_err(CliError::Config)?
    } else {
        Vec::new()
    };
    if key_groups.is_empty() || key_groups.iter().all(|g| g.is_empty()) {
        return Err(CliError::NoRecipients);
    }
    let rule = flag_rule
        .or_else(|| rule_from_config.as_ref().and_then(|r| r.rule.clone()))
        .unwrap_or_default();
    let config = EncryptConfig {
        key_groups,
        shamir_threshold: a
            .shamir_threshold
            .or(rule_from_config.as_ref().and_then(|r| r.shamir_threshold)),
        rule,
        mac_only_encrypted: a.mac_only_encrypted
            || rule_from_config
                .as_ref()
                .is_some_and(|r| r.mac_only_encrypted),
    };
    let input = source.read()?;
    let label = source.label();
    let docs = codec(in_format, &opts)
        .parse_plain(&input)
        .map_err(|e| core_err(label)(e.into()))?;
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: super::now_utc(),
    };
    let mut file =
        core_ops::encrypt(docs, in_format, &config, &mut env).map_err(core_err(label))?;
    file.format = out_format;
    let out = core_ops::emit_encrypted_with(codec(out_format, &opts).as_ref(), &file)
        .map_err(core_err(label))?;
    write_output(
        &out,
        a.file.as_deref().filter(|_| a.in_place),
        a.output.as_deref(),
    )
}
