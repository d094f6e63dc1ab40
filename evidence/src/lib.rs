//! # annexa-evidence
//!
//! The byte formats annexa's components exchange, and the only place that
//! touches key material:
//!
//! - [`keys`]: Ed25519 keys (PKCS#8 files created with mode 0600), key ids.
//! - [`AgentId`]: the enrolled agent's id in every format below.
//! - [`dsse`]: DSSE envelopes, the pre-authentication encoding (PAE),
//!   signing and verification, exactly as the DSSE specification defines
//!   them (tested against its published vectors).
//! - [`statement`]: the in-toto Statement v1 an agent signs for each scan
//!   run, and its annexa predicate.
//! - [`receipt`]: the collector's signed acknowledgement of an envelope.
//! - [`merkle`]: RFC 6962 / 9162 Merkle trees, inclusion and consistency
//!   proofs; [`note`]: C2SP signed notes and tlog checkpoints;
//!   [`collector_keys`]: rotation of the collector's key.
//! - [`chain`]: the rule linking an agent's envelopes (ingest and audit).
//! - [`log`]: the evidence log's leaf entry and export bundle;
//!   [`audit`]: verification of a whole log from its bundle.
//! - [`report`]: signed evidence reports for auditors, their offline
//!   verification and their HTML, OSCAL and CSV renderings.
//!
//! The format is documented in docs/evidence-format.md precisely enough to
//! verify an envelope without this code.

#![forbid(unsafe_code)]

pub mod api;
pub mod audit;
pub mod chain;
pub mod collector_keys;
pub mod drift;
pub mod dsse;
pub mod encoding;
pub mod ids;
pub mod keys;
pub mod log;
pub mod merkle;
pub mod note;
pub mod person;
pub mod receipt;
pub mod report;
pub mod statement;

pub use ids::AgentId;

/// Lower-case hex SHA-256 of some bytes.
pub fn sha256_hex(bytes: &[u8]) -> String {
    encoding::hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}
