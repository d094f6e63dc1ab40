//! The writer's view of one agent's chain: its head (what the next
//! envelope must continue) and the latest result of each check, loaded
//! from the store the first time the agent is seen.

use std::collections::HashMap;

use annexa_checks::CheckId;

use super::acceptance::{ChainHead, Checked};
use crate::conformity;
use crate::store::{AgentRecord, LatestChange, Store, StoreError};

/// The writer's view of one agent's chain: its head, and the latest
/// result of each check (what conformity is evaluated on).
#[derive(Debug)]
pub(super) struct Chain {
    pub(super) head: ChainHead,
    pub(super) latest: conformity::Latest,
}

impl Chain {
    async fn load(store: &dyn Store, agent: &AgentRecord) -> Result<Chain, StoreError> {
        let fresh = store
            .agent(&agent.id)
            .await?
            .ok_or_else(|| StoreError::NotFound(agent.id.clone()))?;
        let latest = store
            .latest(agent.no)
            .await?
            .into_iter()
            .map(|r| (CheckId::from(r.check_id), (r.status, r.observed)))
            .collect();
        Ok(Chain {
            head: ChainHead {
                next: fresh.next_sequence,
                last: fresh.last_digest,
                key_id: fresh.key_id,
            },
            latest,
        })
    }

    /// Moves the chain past `c`; returns the latest results it changed and
    /// the key that signed it (the key in force before a rotation).
    pub(super) fn advance(&mut self, c: &Checked) -> (Vec<LatestChange>, String) {
        let mut changes = Vec::new();
        for (check_id, status, observed) in &c.latest {
            let same = self
                .latest
                .get(check_id)
                .is_some_and(|(s, o)| s == status && o == observed);
            if !same {
                self.latest
                    .insert(check_id.clone(), (*status, observed.clone()));
                changes.push(LatestChange {
                    check_id: check_id.to_string(),
                    status: *status,
                    observed: observed.clone(),
                });
            }
        }
        self.head.next = c.sequence + 1;
        self.head.last = Some(c.sha256.clone());
        let next_key = c
            .rotate_to
            .as_ref()
            .map_or_else(|| c.agent.key_id.clone(), |(k, _)| k.clone());
        let signed_with = std::mem::replace(&mut self.head.key_id, next_key);
        (changes, signed_with)
    }
}

/// The chain of `agent`, loaded from the store the first time.
pub(super) async fn chain_of<'a>(
    chains: &'a mut HashMap<i64, Chain>,
    store: &dyn Store,
    agent: &AgentRecord,
) -> Result<&'a mut Chain, StoreError> {
    use std::collections::hash_map::Entry;
    Ok(match chains.entry(agent.no) {
        Entry::Occupied(e) => e.into_mut(),
        Entry::Vacant(slot) => slot.insert(Chain::load(store, agent).await?),
    })
}
