//! One submission end to end, as `POST /v1/evidence` runs it: acceptance
//! on the request's task, the writer's commit, the agent cache kept right,
//! and the consistency proof the agent asked for.

use annexa_evidence::AgentId;
use annexa_evidence::api::codes;

use super::Writer;
use super::acceptance::{self, Gate, Rejection};
use super::task::Committed;
use crate::log::Log;

/// What a submission goes through.
pub struct Intake<'a> {
    /// The request-side rules' inputs.
    pub gate: Gate<'a>,
    /// The writer.
    pub writer: &'a Writer,
    /// The evidence log, for consistency proofs.
    pub log: &'a Log,
}

/// An envelope committed (or recognised as already committed).
pub struct Submitted {
    /// The envelope's agent.
    pub agent_id: AgentId,
    /// Its sequence number.
    pub sequence: u64,
    /// The SHA-256 of its bytes.
    pub sha256: String,
    /// What the writer answered.
    pub committed: Committed,
    /// The size the consistency proof starts from, if one was made.
    pub consistency_from: Option<u64>,
    /// The proof from that size to the committed checkpoint.
    pub consistency: Vec<[u8; 32]>,
}

impl Intake<'_> {
    /// Accepts and commits `body`; `agent_time` is the raw
    /// `annexa-agent-time` header, `log_size` the checkpoint size the agent
    /// holds.
    pub async fn submit(
        &self,
        body: Vec<u8>,
        agent_time: Option<&[u8]>,
        log_size: Option<u64>,
    ) -> Result<Submitted, Rejection> {
        let checked = acceptance::accept(&self.gate, body, agent_time).await?;
        let (agent_id, sequence, sha256) = (
            AgentId::new(&checked.agent.id),
            checked.sequence,
            checked.sha256.clone(),
        );
        let rotated = checked.rotate_to.is_some();
        let committed = self.writer.submit(checked).await.inspect_err(|r| {
            if r.code == codes::REVOKED_AGENT {
                // Revoked by another process while cached here: look it up
                // in the store from now on.
                self.gate.agents.forget(agent_id.as_str());
            }
        })?;
        if rotated && !committed.duplicate {
            // The cache maps the old key to the agent: from now on it is the
            // new key's.
            self.gate.agents.forget(agent_id.as_str());
            tracing::info!(agent = %agent_id, sequence, "agent key rotated");
        }
        let size = committed.checkpoint.size;
        // The proof is a courtesy to the agent's own check: a size the log
        // cannot prove from (beyond it, or 0) gets no proof, and the agent
        // reports what it then sees.
        let consistency_from = log_size.filter(|m| *m > 0 && *m < size);
        let consistency = match consistency_from {
            Some(m) => self
                .log
                .consistency(self.gate.store, m, size)
                .await
                .unwrap_or_default(),
            None => Vec::new(),
        };
        Ok(Submitted {
            agent_id,
            sequence,
            sha256,
            committed,
            consistency_from,
            consistency,
        })
    }
}
