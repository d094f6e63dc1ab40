//! End-to-end tests of annexa live under `tests/`.
