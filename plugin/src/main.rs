//! The `seer` command: parses arguments and hands them to the library.

use clap::Parser;
use std::process::ExitCode;

fn main() -> ExitCode {
    let cli = seer::cli::Cli::parse();
    match seer::cli::run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("seer: {e:#}");
            ExitCode::FAILURE
        }
    }
}
