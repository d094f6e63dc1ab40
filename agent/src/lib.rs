//! # annexa-agent
//!
//! The host agent as a library: the `annexa` binary is a thin command line
//! over it (argument parsing and dispatch), and the collector's
//! `quickstart` drives it in-process.
//!
//! - [`config`]: `/etc/annexa/agent.toml`, typed and validated.
//! - [`state`]: the state directory (key, enrollment, pinned CA, chain head,
//!   receipts, spool) and the host's machine identity.
//! - [`tls`]: rustls client configurations that trust only the collector's
//!   pinned CA, and the fingerprint verifier used to pin it at enrollment.
//! - [`enroll`]: enrollment with the collector ([`enroll()`]).
//! - [`spool`]: the durable queue of signed envelopes awaiting delivery.
//! - [`run`]: producing one signed envelope from a scan of this host.
//! - [`send`]: delivering spooled envelopes and verifying receipts.
//! - [`logwatch`]: checking each new checkpoint of the collector's log
//!   against the one held (consistency proofs).
//! - [`daemon`]: the long-running agent and the one-shot [`run_once()`].
//! - [`client`]: the auditor's and CI's side of the collector API, with an
//!   API token instead of the agent's key (conformity, drift, reports, the
//!   log bundle).
//! - [`commands`]: the bodies of the `annexa` commands, one per file.
//! - [`render`]: what those commands print (scan tables and JUnit, gate
//!   verdicts in every CI format, status tables, verification results).
//!
//! Every signed envelope is first made durable in the spool and recorded as
//! the head of the agent's hash chain, and is deleted only once the
//! collector's signed receipt for exactly its bytes has been verified
//! (docs/agent.md).

#![forbid(unsafe_code)]

pub mod client;
pub mod commands;
pub mod config;
pub mod daemon;
pub mod enroll;
pub mod logwatch;
pub mod render;
pub mod run;
pub mod send;
pub mod spool;
pub mod state;
pub mod tls;

pub use config::{AgentConfig, ConfigError, LogFormat};
pub use daemon::{OnceOutcome, run_daemon, run_once};
pub use enroll::{CaPin, EnrollError, EnrollOptions, EnrollOutcome, enroll};
pub use run::{Produced, RunError, produce};
pub use send::{CollectorClient, SendError, deliver_pending};

/// The agent's version, recorded in every envelope it signs.
pub const VERSION: &str = env!("CARGO_PKG_VERSION");
