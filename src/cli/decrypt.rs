//! `sopsync decrypt`: sops-compatible decryption, MAC always verified unless
//! `--ignore-mac`.

use super::{core_err, format_for, parse_tree_path, write_output, Context, Source, Step};
use crate::core::formats::{codec, Format, FormatOptions};
use crate::core::tree::Mapping;
use crate::core::tree::{SeqEntry, Value};
use crate::core::{self as core_ops, DecryptOptions};
use crate::error::CliError;
use std::path::{Path, PathBuf};

/// `decrypt` flags (sops names).
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The encrypted file; standard input when left out (name its format with
    /// `--filename-override`, as sops does: without it the input is read as binary).
    file: Option<PathBuf>,
    /// Print only this part, e.g. '["data"]["password"]' or '["list"][0]'.
    #[arg(long)]
    extract: Option<String>,
    /// Write the plaintext back to the file (atomically).
    #[arg(short = 'i', long)]
    in_place: bool,
    /// Write the plaintext to this file.
    #[arg(long)]
    output: Option<PathBuf>,
    /// Do not verify the MAC (for inspecting a damaged file).
    #[arg(long)]
    ignore_mac: bool,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
    /// Output format; default: the input's.
    #[arg(long)]
    output_type: Option<String>,
    /// Name used for format detection.
    #[arg(long)]
    filename_override: Option<PathBuf>,
}

fn extract<'a>(docs: &'a [Mapping], steps: &[Step], path: &str) -> Result<&'a Value, CliError> {
    let missing = || CliError::Extract {
        message: format!("component {path} not found"),
        code: 1,
    };
    let root = docs.first().ok_or_else(missing)?;
    let (first, rest) = steps.split_first().ok_or_else(missing)?;
    let Step::Key(k) = first else {
        return Err(missing());
    };
    let mut cur = root.get(k).ok_or_else(missing)?;
    for step in rest {
        cur = match (step, cur) {
            (Step::Key(k), Value::Map(m)) => m.get(k.as_str()).ok_or_else(missing)?,
            (&Step::Index(i), Value::Seq(s)) => s
                .items
                .iter()
                .filter_map(|e| {
                    if let SeqEntry::Value(v) = e {
                        Some(v)
                    } else {
                        None
                    }
                })
                .nth(i)
                .ok_or_else(missing)?,
            _ => return Err(missing()),
        };
    }
    Ok(cur)
}

/// Decrypts and verifies `input` (named `path` in errors) with the environment's keys.
fn decrypt_bytes(
    ctx: &Context,
    input: &[u8],
    path: &Path,
    format: Format,
    opts: &FormatOptions,
    ignore_mac: bool,
) -> Result<Vec<Mapping>, CliError> {
    let file = core_ops::parse_encrypted_with(codec(format, opts).as_ref(), format, input)
        .map_err(core_err(path))?;
    let ids = crate::keysource::keys();
    let key = ctx.unwrap_key(&file.metadata, &ids, path)?;
    let plain = core_ops::decrypt_owned(
        file,
        &key,
        &DecryptOptions {
            ignore_mac,
            skip_iv_stash: true,
        },
    )
    .map_err(core_err(path))?;
    Ok(plain.documents)
}

pub(super) fn run(ctx: &Context, a: Args) -> Result<(), CliError> {
    // sops 3.11 checks these in this order, both exit 8.
    if a.file.is_none() && a.in_place {
        return Err(CliError::Conflict(
            "cannot use --in-place when reading from stdin".into(),
        ));
    }
    if a.in_place && a.output.is_some() {
        return Err(CliError::Conflict(
            "--in-place and --output cannot be combined".into(),
        ));
    }
    let source = Source::new(a.file.as_deref());
    let name = source.format_name(a.filename_override.as_deref());
    let in_format = format_for(a.input_type.as_deref(), name);
    // As sops: the output format is `--output-type` or the name's, never the input
    // type's (so stdin without `--filename-override` is written as binary).
    let out_format = format_for(a.output_type.as_deref(), name);
    let opts = ctx.format_options()?;
    let steps = a
        .extract
        .as_deref()
        .map(|p| parse_tree_path(p, "--extract path"))
        .transpose()?;
    let input = source.read()?;
    let label = source.label();
    let docs = decrypt_bytes(ctx, &input, label, in_format, &opts, a.ignore_mac)?;
    let out_codec = codec(out_format, &opts);
    let emit_err = |e: crate::core::formats::FormatError| core_err(label)(e.into());
    let bytes = match (&steps, a.extract.as_deref()) {
        (Some(steps), Some(path)) => match extract(&docs, steps, path)? {
            // A string is written raw, without a newline (§7.6).
            Value::Str(t) => t.expose_secret().to_vec(),
            Value::Map(m) => out_codec
                .emit_plain(std::slice::from_ref(m))
                .map_err(emit_err)?,
            other => out_codec.emit_value(other).map_err(emit_err)?,
        },
        _ => out_codec.emit_plain(&docs).map_err(emit_err)?,
    };
    let bytes = zeroize::Zeroizing::new(bytes);
    write_output(
        &bytes,
        a.file.as_deref().filter(|_| a.in_place),
        a.output.as_deref(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn extract_paths_parse_like_sops() {
        assert_eq!(
            parse_tree_path(r#"["a"][0]["b"]"#, "path").unwrap(),
            vec![Step::Key("a".into()), Step::Index(0), Step::Key("b".into())]
        );
        assert_eq!(
            parse_tree_path(r#"["a""#, "path").unwrap_err().exit_code(),
            91
        );
        assert_eq!(parse_tree_path("[0]", "path").unwrap_err().exit_code(), 91);
    }
}
