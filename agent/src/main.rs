//! `annexa`: the host agent and command-line client.
//!
//! This binary is the command line only ([`cli`]: clap definitions,
//! conversion into options, dispatch); the commands are the `annexa_agent`
//! library's (`annexa_agent::commands`). Exit codes: 0 success, 1 a check
//! failed (scan) or envelopes remain undelivered (run --once), 2 usage,
//! configuration or state error.

#![forbid(unsafe_code)]

mod cli;

use std::process::ExitCode;

use clap::Parser;

fn main() -> ExitCode {
    let cli = cli::Cli::parse();
    match cli::run(cli) {
        Ok(exit) => ExitCode::from(exit.code()),
        Err(err) => {
            eprintln!("annexa: error: {err:#}");
            ExitCode::from(2)
        }
    }
}
