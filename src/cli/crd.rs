//! `sopsync crd`: print the CustomResourceDefinitions generated from the Rust types, or
//! write one file per CRD into a directory (how `charts/sopsync/crds/` is made).

use super::write_stdout;
use crate::error::CliError;
use std::path::PathBuf;

/// `crd` flags.
#[derive(clap::Args, Debug)]
pub struct Args {
    /// Write `<crd name>.yaml` files into this directory instead of printing them.
    #[arg(long, value_name = "DIR")]
    output_dir: Option<PathBuf>,
}

pub(super) fn run(a: Args) -> Result<(), CliError> {
    match a.output_dir {
        None => write_stdout(crate::controller::crd::crds_yaml().as_bytes()),
        Some(dir) => {
            for (name, text) in crate::controller::crd::crd_files() {
                let path = dir.join(name);
                std::fs::write(&path, text).map_err(|source| CliError::Write {
                    path: path.display().to_string(),
                    source,
                })?;
            }
            Ok(())
        }
    }
}
