//! `sopsync filestatus`: `{"encrypted":true}` when the metadata loads with a version
//! and a MAC (spec §9.3).

use super::{format_for, read_input, write_stdout};
use crate::core::formats::{codec, FormatOptions};
use crate::error::CliError;
use std::path::PathBuf;

/// `filestatus` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// The file.
    file: PathBuf,
    /// Input format; default: by extension.
    #[arg(long)]
    input_type: Option<String>,
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    let format = format_for(a.input_type.as_deref(), &a.file);
    let input = read_input(&a.file)?;
    let opts = FormatOptions::default();
    let encrypted =
        crate::core::parse_encrypted_with(codec(format, &opts).as_ref(), format, &input)
            .map(|f| !f.metadata.version.is_empty() && !f.metadata.mac.is_empty())
            .unwrap_or(false);
    write_stdout(format!("{{\"encrypted\":{encrypted}}}\n").as_bytes())
}
