//! # annexa-checks
//!
//! Compliance as code for ISO/IEC 27001 Annex A: the control catalog of the
//! 2005, 2013 and 2022 editions with their crosswalks ([`catalog`]), check
//! packs in TOML ([`pack`]), probes that examine a host ([`probes`]) through
//! a [`host::HostView`] — the live machine or a root directory — and the
//! engine that runs them into a [`engine::ScanReport`].
//!
//! ```no_run
//! use annexa_checks::{engine, host::HostView, pack::PackSet};
//! let packs = PackSet::load(true, &[], true)?;
//! let params = packs.params_with(&Default::default())?;
//! let host = HostView::root("/mnt/image")?;
//! let report = engine::scan(&packs, &host, &params, &Default::default(), "dev")?;
//! println!("{} failed", report.summary.fail);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! Architecture invariants: this crate does no network I/O and needs no
//! async runtime; it never panics on host content; every result names the
//! bytes it read (path and SHA-256); nothing outside the scanned root is
//! read in root mode.

#![deny(unsafe_code)]

pub mod catalog;
pub mod conformity;
pub mod engine;
pub mod expect;
pub mod gate;
pub mod host;
pub mod ids;
pub mod pack;
pub mod parse;
pub mod platform;
pub mod probes;
pub mod reference;
pub mod result;
pub mod soa;

pub use ids::{CheckId, ControlId};
