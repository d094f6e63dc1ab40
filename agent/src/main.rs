//! `annexa`: the host agent and command-line client.
//!
//! This binary only wires the libraries together: argument parsing, loading
//! packs, choosing the host view, and rendering. Exit codes: 0 nothing
//! failed, 1 a check failed, 2 usage or configuration error.

#![forbid(unsafe_code)]

mod cli;
mod output;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(code) => code,
        Err(err) => {
            eprintln!("annexa: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
