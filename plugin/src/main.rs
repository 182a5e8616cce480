//! The `seer` command: parses arguments and hands them to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    // SAFETY: called first, before any thread exists; it only restores the
    // default action of SIGPIPE, so writing to a closed pipe (`... | head`)
    // ends the process quietly, as other command-line tools do, instead of
    // making `println!` panic.
    unsafe { libc::signal(libc::SIGPIPE, libc::SIG_DFL) };
    let cli = seer::cli::Cli::parse();
    match seer::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
