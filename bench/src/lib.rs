//! Shared pieces of annexa's load generators: simulated agents
//! (enrollment, signed chained envelopes, sending with failover across
//! collectors), shared with the end-to-end tests that drive the same load.

pub use annexa_tests::load::*;
