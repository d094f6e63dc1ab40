//! `annexa-collector`: receives signed evidence from annexa agents.
//!
//! The collector's service (enrollment, verified ingest over TLS, the
//! evidence log, conformity against the Statement of Applicability) is
//! built in the issues that follow the scan engine; this binary already
//! parses its command line so that the workspace, packaging and CI treat it
//! as the real program it will become.

#![forbid(unsafe_code)]

use clap::Parser;

/// annexa-collector: verifies, logs and stores signed compliance evidence.
#[derive(Debug, Parser)]
#[command(name = "annexa-collector", version, about)]
struct Cli {}

fn main() {
    let _cli = Cli::parse();
    println!(
        "annexa-collector {}: no service commands yet; the collector arrives with signed evidence ingest",
        env!("CARGO_PKG_VERSION")
    );
}
