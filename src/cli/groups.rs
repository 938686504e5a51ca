//! `sopsync groups add` / `groups delete`: add or remove a key group, as sops 3.11's
//! `groups` command (cmd/sops/subcommand/groups): the data key stays the same, so the
//! values, `mac` and `lastmodified` are unchanged; it is split again over the new
//! groups (Shamir, spec §5.3) and wrapped for every key of every group.
//!
//! Where sops 3.11 writes a file nobody can open (a group left empty because a key
//! did not parse, a threshold above the number of groups, both of which it ignores),
//! this refuses and writes nothing.

use super::{core_err, format_for, read_input, write_output, Context};
use crate::core::formats::codec;
use crate::core::keys::Recipient;
use crate::core::{self as core_ops, CryptoEnv};
use crate::error::CliError;
use std::path::{Path, PathBuf};

/// `groups` subcommands.
#[derive(clap::Subcommand, Debug)]
pub enum GroupsCommand {
    /// Add a new key group to a SOPS file (sops groups add).
    #[command(after_help = super::examples::GROUPS_ADD)]
    Add(AddArgs),
    /// Delete a key group from a SOPS file, by its index from 0 (sops groups delete).
    #[command(after_help = super::examples::GROUPS_DELETE)]
    Delete(DeleteArgs),
}

/// `groups add` flags (sops' names).
#[derive(clap::Args, Debug)]
pub struct AddArgs {
    /// The encrypted file.
    #[arg(short = 'f', long, value_name = "FILE")]
    file: PathBuf,
    /// An age recipient of the new group; repeat for several.
    #[arg(long, value_name = "RECIPIENT")]
    age: Vec<String>,
    /// A PGP fingerprint of the new group (through the user's GnuPG); repeat for several.
    #[arg(long, value_name = "FINGERPRINT")]
    pgp: Vec<String>,
    /// An AWS KMS key ARN of the new group (`ARN+ROLE_ARN` assumes the role); repeat for
    /// several. Credentials from the AWS SDK's default chain, as `encrypt --kms`.
    #[arg(long, value_name = "ARN")]
    kms: Vec<String>,
    /// A GCP KMS key of the new group (not supported: sopsync cannot use GCP KMS).
    #[arg(long, value_name = "RESOURCE_ID")]
    gcp_kms: Vec<String>,
    /// An Azure Key Vault key of the new group (not supported).
    #[arg(long, value_name = "URL")]
    azure_kv: Vec<String>,
    /// A Vault transit key of the new group (not supported).
    #[arg(long, value_name = "URI")]
    hc_vault_transit: Vec<String>,
    /// A HuaweiCloud KMS key of the new group (not supported).
    #[arg(long, value_name = "REGION:KEY_ID")]
    hckms: Vec<String>,
    /// Write the result back to the file (atomically) instead of standard output.
    #[arg(short = 'i', long)]
    in_place: bool,
    /// How many groups are needed to recover the data key (default: all of them).
    #[arg(long = "shamir-secret-sharing-threshold", value_name = "N")]
    shamir_threshold: Option<usize>,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
    /// Anything else is refused, as sops refuses positional arguments here.
    #[arg(hide = true)]
    rest: Vec<String>,
}

/// `groups delete` flags (sops' names).
#[derive(clap::Args, Debug)]
pub struct DeleteArgs {
    /// The encrypted file.
    #[arg(short = 'f', long, value_name = "FILE")]
    file: PathBuf,
    /// The group to delete, counting from 0 in the file's order.
    #[arg(value_name = "INDEX")]
    index: Vec<String>,
    /// Write the result back to the file (atomically) instead of standard output.
    #[arg(short = 'i', long)]
    in_place: bool,
    /// How many of the remaining groups are needed to recover the data key.
    #[arg(long = "shamir-secret-sharing-threshold", value_name = "N")]
    shamir_threshold: Option<usize>,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
}

pub(super) fn run(ctx: &Context, cmd: GroupsCommand) -> Result<(), CliError> {
    match cmd {
        GroupsCommand::Add(a) => run_add(ctx, a),
        GroupsCommand::Delete(a) => run_delete(ctx, a),
    }
}

fn run_add(ctx: &Context, a: AddArgs) -> Result<(), CliError> {
    if !a.rest.is_empty() {
        return Err(CliError::Config(
            "groups add takes no positional arguments; name the file with --file".into(),
        ));
    }
    for (flag, given) in [
        ("--gcp-kms", &a.gcp_kms),
        ("--azure-kv", &a.azure_kv),
        ("--hc-vault-transit", &a.hc_vault_transit),
        ("--hckms", &a.hckms),
    ] {
        if !given.is_empty() {
            return Err(CliError::Config(format!(
                "groups add {flag}: sopsync cannot add this key type to a group; use age recipients (--age), PGP keys (--pgp) or AWS KMS keys (--kms), or sops"
            )));
        }
    }
    // sops' order within the group: PGP keys, KMS keys, then age. Like `encrypt --pgp`/`--age`,
    // one flag may hold several keys separated by commas.
    let items = |flags: &[String]| -> Vec<String> {
        flags
            .iter()
            .flat_map(|f| f.split(','))
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .map(String::from)
            .collect()
    };
    let mut make = crate::keysource::RecipientMaker::new(super::now_utc().to_rfc3339());
    let mut group = Vec::new();
    for fp in items(&a.pgp) {
        group.push(make.pgp(&fp).map_err(|e| {
            CliError::Config(format!("groups add --pgp: {e}; nothing was written"))
        })?);
    }
    for arn in items(&a.kms) {
        group.push(make.kms(&arn).map_err(|e| {
            CliError::Config(format!("groups add --kms: {e}; nothing was written"))
        })?);
    }
    for r in items(&a.age) {
        group.push(make.age(&r).map_err(|e| {
            CliError::Config(format!("groups add --age: {e}; nothing was written"))
        })?);
    }
    if group.is_empty() {
        return Err(CliError::Config(
            "groups add: the new group has no keys; give at least one --age, --pgp or --kms".into(),
        ));
    }
    rewrap(
        ctx,
        &a.file,
        a.input_type.as_deref(),
        a.in_place,
        |groups| {
            groups.push(group);
            Ok(a.shamir_threshold)
        },
    )
}

fn run_delete(ctx: &Context, a: DeleteArgs) -> Result<(), CliError> {
    // sops checks these before reading the file, each exit 1; the index is an
    // unsigned 32-bit number.
    let [given] = a.index.as_slice() else {
        return Err(CliError::Config(
            "groups delete: exactly one positional argument (index) required".into(),
        ));
    };
    let index: u32 = given.parse().map_err(|_| {
        CliError::Config(format!(
            "failed to parse [index] argument `{given}`: expected a group number from 0"
        ))
    })?;
    rewrap(
        ctx,
        &a.file,
        a.input_type.as_deref(),
        a.in_place,
        |groups| {
            let index = index as usize;
            if index >= groups.len() {
                // sops 3.11 panics here (exit 2); the code is kept, with a message.
                return Err(CliError::Other {
                    message: format!(
                        "groups delete {index}: the file has {} key groups, numbered from 0",
                        groups.len()
                    ),
                    code: 2,
                    hint: None,
                });
            }
            groups.remove(index);
            Ok(a.shamir_threshold)
        },
    )
}

/// Opens `path`, recovers its data key, lets `change` edit the key groups (returning
/// the `--shamir-secret-sharing-threshold` given, if any), and wraps the same data key
/// for the result.
fn rewrap(
    ctx: &Context,
    path: &Path,
    input_type: Option<&str>,
    in_place: bool,
    change: impl FnOnce(&mut Vec<Vec<Recipient>>) -> Result<Option<usize>, CliError>,
) -> Result<(), CliError> {
    let format = format_for(input_type, path);
    let opts = ctx.format_options()?;
    let c = codec(format, &opts);
    let input = read_input(path)?;
    let file =
        core_ops::parse_encrypted_with(c.as_ref(), format, &input).map_err(core_err(path))?;
    // Every key source (age, then GnuPG), as decrypt: a file whose only way in is a
    // PGP key can have groups added or deleted too.
    let keys = crate::keysource::keys();
    let key = ctx.unwrap_key(&file.metadata, &keys, path)?;
    // The file's PGP and KMS entries are wrapped again (as sops does for every key), so
    // GnuPG and the AWS SDK are needed when there are any; neither is set up otherwise.
    let engines = crate::keysource::RecipientMaker::new(super::now_utc().to_rfc3339())
        .engines_for(&file.metadata)
        .map_err(CliError::Config)?;
    let mut groups =
        core_ops::recipients_of_in(&file.metadata, &engines).map_err(core_err(path))?;
    let flag = change(&mut groups)?;
    // As sops: a threshold given (non-zero) replaces the file's; else the file's stays,
    // and a file that had none needs every group.
    let threshold = flag.filter(|&t| t != 0).or(file.metadata.shamir_threshold);
    if let Some(t) = threshold {
        if groups.len() < t {
            return Err(CliError::Config(format!(
                "{}: the Shamir threshold is {t}, but there would be only {} key groups; nothing was written",
                path.display(),
                groups.len()
            )));
        }
    }
    let mut rng = rand_core::OsRng;
    let mut env = CryptoEnv {
        rng: &mut rng,
        now: super::now_utc(),
    };
    let next =
        core_ops::update_keys(&file, &key, groups, threshold, &mut env).map_err(core_err(path))?;
    let out = core_ops::emit_encrypted_with(c.as_ref(), &next).map_err(core_err(path))?;
    write_output(&out, in_place.then_some(path), None)
}
