//! Prometheus metrics: envelopes accepted and rejected (by reason),
//! enrollments, batch sizes and ingest latency.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;

/// Label of rejection counters.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// The API error code.
    pub reason: String,
}

/// The collector's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Envelopes durably accepted.
    pub accepted: Counter,
    /// Envelopes answered as duplicates of accepted ones.
    pub duplicates: Counter,
    /// Envelopes rejected, by reason.
    pub rejected: Family<Reason, Counter>,
    /// Agents enrolled.
    pub enrolled: Counter,
    /// Seconds from request to receipt for accepted envelopes.
    pub ingest_latency: Histogram,
    /// Envelopes per committed batch.
    pub batch_size: Histogram,
}

impl Metrics {
    /// Registers every metric.
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("annexa");
        let accepted = Counter::default();
        let duplicates = Counter::default();
        let rejected = Family::<Reason, Counter>::default();
        let enrolled = Counter::default();
        let ingest_latency = Histogram::new([
            0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5,
        ]);
        let batch_size =
            Histogram::new([1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0]);
        registry.register(
            "envelopes_accepted",
            "Envelopes durably accepted",
            accepted.clone(),
        );
        registry.register(
            "envelopes_duplicate",
            "Envelopes resent after acceptance, answered with their receipt",
            duplicates.clone(),
        );
        registry.register(
            "envelopes_rejected",
            "Envelopes rejected, by reason",
            rejected.clone(),
        );
        registry.register("agents_enrolled", "Agents enrolled", enrolled.clone());
        registry.register(
            "ingest_latency_seconds",
            "Time from request to signed receipt",
            ingest_latency.clone(),
        );
        registry.register(
            "ingest_batch_envelopes",
            "Envelopes committed per transaction",
            batch_size.clone(),
        );
        Metrics {
            registry,
            accepted,
            duplicates,
            rejected,
            enrolled,
            ingest_latency,
            batch_size,
        }
    }

    /// Counts a rejection.
    pub fn reject(&self, reason: &str) {
        self.rejected
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }

    /// The text exposition format.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Encoding into a String cannot fail.
        let _ = prometheus_client::encoding::text::encode(&mut out, &self.registry);
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
