//! How a crate declares the metrics it emits: one [`Metric`] const beside the code that emits
//! it, used at the call site by name, so a misspelt metric does not compile.
//!
//! ```
//! use seams::metric::{Kind, Metric};
//!
//! /// Appends refused before queueing.
//! pub const EXAMPLE_REJECTED_TOTAL: Metric = Metric {
//!     name: "daybook_example_rejected_total",
//!     kind: Kind::Counter,
//!     unit: None,
//!     labels: &["reason"],
//!     help: "Appends refused before queueing, by reason (full: the queue is at its bound).",
//! };
//!
//! metrics::counter!(EXAMPLE_REJECTED_TOTAL.name, "reason" => "full").increment(1);
//! ```
//!
//! Each emitting crate lists its metrics in `pub const METRICS: &[Metric]` at its root; the
//! `daybook` crate gathers the lists (`daybook/src/metric_catalog.rs`), [`describe`]s them
//! when it installs the recorder (the `# HELP` line of the scrape), checks them, and generates
//! `docs/metrics.md` from them. The const is named after the metric: the name without its
//! `daybook_` prefix, upper case (`daybook_log_rejected_total` → `LOG_REJECTED_TOTAL`).

pub use metrics::Unit;

/// What kind of metric a name is: the macro that emits it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// `metrics::counter!`: a monotonic count; its name ends in `_total`.
    Counter,
    /// `metrics::gauge!`: a value that goes up and down.
    Gauge,
    /// `metrics::histogram!`: a distribution of samples (buckets, sum and count).
    Histogram,
}

impl Kind {
    /// `counter`, `gauge` or `histogram`: the macro, and the Prometheus `# TYPE`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
            Kind::Histogram => "histogram",
        }
    }
}

/// One metric: its name, kind, unit, label keys and `# HELP` text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Metric {
    /// The name on the scrape: `daybook_…`, snake case; a counter's ends in `_total`.
    pub name: &'static str,
    /// The macro that emits it.
    pub kind: Kind,
    /// Its physical unit, if it has one (`Some(Unit::Seconds)` for every `…_seconds`).
    pub unit: Option<Unit>,
    /// The label keys every emission sets, in the order they are written (`&[]` for none).
    pub labels: &'static [&'static str],
    /// The `# HELP` text: one line, a sentence or more.
    pub help: &'static str,
}

impl Metric {
    /// Registers the help text and unit of this metric with the installed recorder.
    pub fn describe(&self) {
        let Metric { name, help, .. } = *self;
        match (self.kind, self.unit) {
            (Kind::Counter, Some(unit)) => metrics::describe_counter!(name, unit, help),
            (Kind::Counter, None) => metrics::describe_counter!(name, help),
            (Kind::Gauge, Some(unit)) => metrics::describe_gauge!(name, unit, help),
            (Kind::Gauge, None) => metrics::describe_gauge!(name, help),
            (Kind::Histogram, Some(unit)) => metrics::describe_histogram!(name, unit, help),
            (Kind::Histogram, None) => metrics::describe_histogram!(name, help),
        }
    }
}

/// Registers the help text and unit of every metric of `list` with the installed recorder.
pub fn describe(list: &[Metric]) {
    list.iter().for_each(Metric::describe);
}
