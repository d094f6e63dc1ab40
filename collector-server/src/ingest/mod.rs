//! The ingest path, from a request's bytes to a committed, acknowledged
//! envelope, and the writer that owns every write of evidence.
//!
//! - [`acceptance`]: where an envelope is refused, and why — every rule,
//!   and the [`Rejection`] it answers with;
//! - `submit`: one submission end to end ([`Intake::submit`]), what the
//!   HTTP handler calls;
//! - `writer`: the single writer's channel and loop ([`Writer`]);
//! - `task`: the writer task's state and what it answers ([`Committed`]);
//! - `chain`: the writer's view of one agent's chain;
//! - `batch`: one batch, as named steps: decide, admit (chain, conformity,
//!   log leaf), commit, reply;
//! - `upkeep`: what the writer does between batches: reconcile, the
//!   staleness sweep, other collectors' entries, checkpoints, retention;
//! - `agent_cache`: enrolled agents' keys ([`AgentCache`]).

pub mod acceptance;
mod agent_cache;
mod batch;
mod chain;
mod submit;
mod task;
mod upkeep;
mod writer;

pub use acceptance::{Checked, Gate, Rejection, check, signer};
pub use agent_cache::AgentCache;
pub use submit::{Intake, Submitted};
pub use task::{Committed, Conformity, LogSettings};
pub use upkeep::{load_policy, store_checkpoint};
pub use writer::Writer;
