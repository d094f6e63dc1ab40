//! `annexa-quickstart`: the whole path in one command, with no external
//! service — a collector on the embedded SQLite store, a local agent
//! enrolled with a fresh token, one scan of this machine signed, delivered
//! over TLS and verified, and what the collector recorded.
//!
//! It lives in a crate of its own because it is the one program that
//! drives both the collector and the agent libraries; neither depends on
//! the other.

#![forbid(unsafe_code)]

mod run;

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;

/// Start a collector on the embedded SQLite store, enroll a local agent,
/// scan this machine, deliver the signed evidence and print what the
/// collector recorded.
#[derive(Debug, Parser)]
#[command(name = "annexa-quickstart", version)]
struct Cli {
    /// Directory for the collector's and the agent's state (default: a new
    /// directory under the system temporary directory; it is kept so you
    /// can look at what was written).
    #[arg(long, value_name = "DIR")]
    data: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")
        .and_then(|rt| rt.block_on(quickstart(cli.data)));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("annexa-quickstart: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn quickstart(data: Option<PathBuf>) -> anyhow::Result<()> {
    let dir = match data {
        Some(d) => d,
        None => private_temp_dir()?,
    };
    run::quickstart(&dir).await?;
    println!("\n(data in {})", dir.display());
    Ok(())
}

/// A fresh private directory under the system temporary directory.
fn private_temp_dir() -> anyhow::Result<PathBuf> {
    let base = std::env::temp_dir().join(format!("annexa-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&base).with_context(|| base.display().to_string())?;
    std::fs::set_permissions(&base, std::os::unix::fs::PermissionsExt::from_mode(0o700))
        .with_context(|| base.display().to_string())?;
    Ok(base)
}
