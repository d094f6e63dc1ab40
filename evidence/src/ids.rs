//! [`AgentId`]: the identifier of an enrolled agent, which names a host in
//! everything the evidence formats carry.

annexa_checks::string_id! {
    /// The id the collector assigns an agent at enrollment; it names the
    /// agent (and so its host) in the scan-run predicate, receipts, log
    /// entries, bundles, reports, drift bodies and API bodies.
    ///
    /// Made by the collector when it enrolls an agent; everywhere else it
    /// is read from a signed or stored document and taken as written (no
    /// validation: see `annexa_checks::ids`), so a `String` on the wire,
    /// byte for byte.
    AgentId
}
