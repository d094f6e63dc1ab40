//! `annexa`: the host agent and command-line client.
//!
//! This binary only wires the libraries together: argument parsing, loading
//! packs, choosing the host view, rendering, and handing `enroll` and `run`
//! to the `annexa_agent` library. Exit codes: 0 success, 1 a check failed
//! (scan) or envelopes remain undelivered (run --once), 2 usage,
//! configuration or state error.

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
