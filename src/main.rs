//! The `sopsync` binary: parse arguments, run, map errors to exit codes.

fn main() {
    // Invoked by git as GIT_ASKPASS for an HTTP fetch: answer from the environment.
    if let Some(code) = sopsync::repo::git::askpass_main() {
        std::process::exit(code);
    }
    let cli = sopsync::cli::Cli::parse_from_args(std::env::args_os().collect());
    if cli.is_one_shot() {
        keep_freed_memory_until_exit();
    }
    if let Err(err) = sopsync::cli::run(cli) {
        // Errors carry the file and key path, never a value (STYLE 8); a path or key
        // name from a repository may hold control characters, shown escaped.
        let safe = sopsync::cli::terminal_safe;
        eprintln!("sopsync: {}", safe(&err.to_string()));
        if let Some(hint) = err.hint() {
            eprintln!("hint: {}", safe(&hint));
        }
        std::process::exit(err.exit_code());
    }
}

/// Makes glibc's malloc keep blocks of up to 16 MiB in its heap for the rest of this
/// short-lived process. By default glibc maps every block over 128 KiB on its own and
/// unmaps it when freed, so each large buffer (file text, output, value lists) arrives
/// on fresh pages, one page fault per 4 KiB: a decrypt of a 2.3 MiB file took 2,400
/// faults. glibc raises that threshold to the size of the first mapped block freed
/// (mallopt(3), "M_MMAP_THRESHOLD ... dynamic"), so one untouched 16 MiB block,
/// allocated and freed, does it: one mmap/munmap pair, no page touched. The decrypt
/// above then reuses freed memory: ~600 fewer faults, ~10% of its time (issue 5 (c)).
/// The same could be said with mallopt, but the crate forbids `unsafe`. Not for the
/// controller, which runs for weeks and should give back what it frees. Elsewhere than
/// glibc this is one harmless allocation.
fn keep_freed_memory_until_exit() {
    let block: Vec<u8> = Vec::with_capacity(16 << 20);
    // Keeps the optimizer from removing an allocation nobody reads.
    drop(std::hint::black_box(block));
}
