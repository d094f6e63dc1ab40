//! The signing keys of enrolled agents, by key id: one store lookup per
//! agent, not one per envelope.

use std::collections::HashMap;

use crate::store::AgentRecord;

/// The signing keys of enrolled agents, by key id.
#[derive(Debug, Default)]
pub struct AgentCache {
    by_key: std::sync::RwLock<HashMap<String, AgentRecord>>,
}

impl AgentCache {
    /// A cached agent.
    pub fn get(&self, key_id: &str) -> Option<AgentRecord> {
        self.by_key
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
            .cloned()
    }

    /// Caches an agent.
    pub fn put(&self, agent: AgentRecord) {
        self.by_key
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(agent.key_id.clone(), agent);
    }

    /// Forgets an agent (after revocation or a key rotation), so the store
    /// is asked again.
    pub fn forget(&self, agent_id: &str) {
        self.by_key
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, a| a.id != agent_id);
    }
}
