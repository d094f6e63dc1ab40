//! Shared pieces of annexa's load generators.
