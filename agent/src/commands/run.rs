//! `annexa run`: the agent, as the daemon (until SIGTERM or SIGINT) or
//! once (one envelope, then delivery of everything pending).

use std::io::Write;
use std::path::PathBuf;
use std::time::Duration;

use crate::commands::{Exit, runtime};
use crate::config::AgentConfig;
use crate::daemon::{SHUTDOWN_GRACE, init_logging, run_daemon, run_once, shutdown_signal};

/// How to run.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// agent.toml (default: /etc/annexa/agent.toml, if it exists).
    pub config: Option<PathBuf>,
    /// One envelope and one delivery, then exit; else the daemon.
    pub once: bool,
    /// With `once`: into the spool only, deliver nothing.
    pub no_send: bool,
}

/// Runs the agent. Once: [`Exit::Failure`] when envelopes remain spooled
/// after delivery (not with `no_send`).
pub fn run_agent(opts: RunOptions) -> anyhow::Result<Exit> {
    let config = AgentConfig::load_or_default(opts.config.as_deref())?;
    init_logging(config.log_format);
    let rt = runtime()?;
    if opts.once {
        let outcome = rt.block_on(run_once(&config, !opts.no_send))?;
        let p = &outcome.produced;
        let mut out = std::io::stdout().lock();
        writeln!(
            out,
            "produced envelope {} ({} bytes, sha256 {}): {} pass, {} fail, {} error, {} not applicable",
            p.sequence,
            p.size,
            p.digest,
            p.summary.pass,
            p.summary.fail,
            p.summary.error,
            p.summary.not_applicable
        )?;
        if let Some(gap) = &p.gap {
            writeln!(
                out,
                "recorded a gap: dropped {:?} ({})",
                gap.dropped, gap.reason
            )?;
        }
        if opts.no_send {
            writeln!(
                out,
                "{} envelope(s) spooled, not sent (--no-send)",
                outcome.pending
            )?;
            return Ok(Exit::Success);
        }
        writeln!(
            out,
            "delivered {}, {} still spooled",
            outcome.delivered, outcome.pending
        )?;
        if let Some(e) = &outcome.delivery_error {
            eprintln!("annexa: delivery failed: {e}");
        }
        return Ok(Exit::failure_if(outcome.pending != 0));
    }
    let result = rt.block_on(run_daemon(config, shutdown_signal()));
    // A scan abandoned on a blocking thread must not keep the process.
    rt.shutdown_timeout(SHUTDOWN_GRACE + Duration::from_secs(1));
    result?;
    Ok(Exit::Success)
}
