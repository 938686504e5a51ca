//! `sopsync completion SHELL` and `sopsync man`: shell completions and man pages,
//! generated from the clap tree at run time so that they always match the binary's flags
//! (nothing generated is committed, so nothing can drift).

use super::{write_stdout, Cli};
use crate::error::CliError;
use clap::CommandFactory;
use std::path::PathBuf;

/// `completion` flags.
#[derive(clap::Args, Debug)]
pub struct CompletionArgs {
    /// The shell to complete for.
    #[arg(value_enum)]
    shell: Shell,
}

/// The shells we generate for (those our users run; each is checked by the tests).
#[derive(clap::ValueEnum, Clone, Copy, Debug)]
enum Shell {
    Bash,
    Zsh,
    Fish,
}

/// `man` flags.
#[derive(clap::Args, Debug)]
pub struct ManArgs {
    /// Write sopsync.1 and one sopsync-COMMAND.1 per subcommand into this directory
    /// instead of printing sopsync.1.
    #[arg(long, value_name = "DIR")]
    dir: Option<PathBuf>,
}

pub(super) fn run_completion(a: CompletionArgs) -> Result<(), CliError> {
    let shell = match a.shell {
        Shell::Bash => clap_complete::Shell::Bash,
        Shell::Zsh => clap_complete::Shell::Zsh,
        Shell::Fish => clap_complete::Shell::Fish,
    };
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "sopsync", &mut script);
    write_stdout(&script)
}

pub(super) fn run_man(a: ManArgs) -> Result<(), CliError> {
    match a.dir {
        Some(dir) => {
            clap_mangen::generate_to(Cli::command(), &dir).map_err(|source| CliError::Write {
                path: dir.display().to_string(),
                source,
            })
        }
        None => {
            let mut page = Vec::new();
            clap_mangen::Man::new(Cli::command())
                .render(&mut page)
                .map_err(|source| CliError::Write {
                    path: "stdout".into(),
                    source,
                })?;
            write_stdout(&page)
        }
    }
}
