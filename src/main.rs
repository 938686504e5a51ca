//! The `sopsync` binary: parse arguments, run, map errors to exit codes.

fn main() {
    // Invoked by git as GIT_ASKPASS for an HTTP fetch: answer from the environment.
    if let Some(code) = sopsync::repo::git::askpass_main() {
        std::process::exit(code);
    }
    let cli = sopsync::cli::Cli::parse_from_args(std::env::args_os().collect());
    if let Err(err) = sopsync::cli::run(cli) {
        // Errors carry the file and key path, never a value (STYLE 8).
        eprintln!("sopsync: {err}");
        if let Some(hint) = err.hint() {
            eprintln!("hint: {hint}");
        }
        std::process::exit(err.exit_code());
    }
}
