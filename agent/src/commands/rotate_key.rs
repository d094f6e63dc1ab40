//! `annexa rotate-key`: make the agent's next key, which the next run
//! declares in its envelope (docs/security.md).

use std::io::Write;
use std::path::Path;

use anyhow::bail;

use crate::commands::Exit;
use crate::config::AgentConfig;
use crate::state::StateDir;

/// Makes the next key unless one is pending, and says which.
pub fn rotate_key(config: Option<&Path>) -> anyhow::Result<Exit> {
    let config = AgentConfig::load_or_default(config)?;
    let state = StateDir::open(&config.state_dir)?;
    let Some(enrollment) = state.enrollment()? else {
        bail!(
            "not enrolled ({} is missing): enroll first with `annexa enroll`",
            state.enrollment_path().display()
        );
    };
    // No state lock: the daemon holds it while it runs, and it reads
    // agent.key.next (written whole, atomically) only at its next run.
    if let Some(n) = state.undropable()?
        && !state.next_key_path().exists()
    {
        bail!(
            "the key declared in envelope {n} is in use but the collector has not acknowledged that envelope yet; \
             rotate again once it is delivered (`annexa run --once`)"
        );
    }
    let (current, _) = state.signing_key()?;
    let (next, made) = state.prepare_rotation()?;
    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "{} key {} for agent {} (now {}): the next run declares it and signs with it from the envelope after",
        if made { "made" } else { "already pending:" },
        next.public().key_id(),
        enrollment.agent_id,
        current.public().key_id()
    )?;
    Ok(Exit::Success)
}
