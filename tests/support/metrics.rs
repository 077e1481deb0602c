//! The metric table read back (feature `metrics`): series keyed by name and error code,
//! read from metrics-util's debugging recorder or from Prometheus text, and each
//! series' value in a `MetricsSnapshot`, written out by hand as a second copy of the
//! table's snapshot column.

use std::cell::RefCell;
use std::collections::BTreeMap;

use metrics_util::debugging::{DebugValue, Snapshotter};
use wsctx::metrics::Metric;
use wsctx::{ErrorCode, MetricsSnapshot};

/// One series: a metric name and its `code` label, if any.
pub(crate) type Series = (String, Option<String>);

/// Every series a recorder holds, with its value (counters as floats).
pub(crate) type Values = BTreeMap<Series, f64>;

/// Reads a debugging recorder. Its snapshots drain it (each counter and gauge is
/// swapped to 0 and reports what it moved since the last one), so the reader keeps the
/// running totals.
pub(crate) struct Reader {
    snapshotter: Snapshotter,
    totals: RefCell<Values>,
}

impl Reader {
    pub(crate) fn new(snapshotter: Snapshotter) -> Self {
        Self {
            snapshotter,
            totals: RefCell::default(),
        }
    }

    /// Every series the recorder has registered, with its value now. Panics on a
    /// label other than `code`.
    #[allow(
        clippy::cast_precision_loss,
        reason = "test counters stay far below 2^53"
    )]
    pub(crate) fn read(&self) -> Values {
        let mut totals = self.totals.borrow_mut();
        for (key, _, _, value) in self.snapshotter.snapshot().into_vec() {
            let key = key.key();
            let mut code = None;
            for label in key.labels() {
                assert_eq!(label.key(), "code", "{}: only the code label", key.name());
                code = Some(label.value().to_owned());
            }
            let moved = match value {
                DebugValue::Counter(n) => n as f64,
                DebugValue::Gauge(g) => g.into_inner(),
                DebugValue::Histogram(_) => panic!("{}: no histograms", key.name()),
            };
            *totals.entry((key.name().to_owned(), code)).or_default() += moved;
        }
        totals.clone()
    }
}

/// The samples of Prometheus text: `name{code="X"} value` lines. Panics on a label
/// other than `code`.
pub(crate) fn scraped(text: &str) -> Values {
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| {
            let (series, value) = line.rsplit_once(' ').expect("a sample line");
            let value: f64 = value.parse().expect("a number");
            let (name, code) = match series.split_once('{') {
                None => (series, None),
                Some((name, labels)) => {
                    let code = labels
                        .strip_prefix("code=\"")
                        .and_then(|rest| rest.strip_suffix("\"}"))
                        .unwrap_or_else(|| panic!("{series}: only the code label"));
                    (name, Some(code.to_owned()))
                }
            };
            ((name.to_owned(), code), value)
        })
        .collect()
}

/// The series of `metric` (with `code` for a labelled one).
pub(crate) fn series(metric: Metric, code: Option<ErrorCode>) -> Series {
    (
        metric.name().to_owned(),
        code.map(|c| c.as_str().to_owned()),
    )
}

/// The value `snapshot` has for the series of `metric` and `code`; `None` for a metric
/// the snapshot does not hold (the handshake's refusals).
#[allow(
    clippy::cast_precision_loss,
    reason = "test counters stay far below 2^53"
)]
pub(crate) fn in_snapshot(
    snapshot: &MetricsSnapshot,
    metric: Metric,
    code: Option<ErrorCode>,
) -> Option<f64> {
    let m = snapshot;
    let value = match (metric, code) {
        (Metric::ConnectionsAdmitted, None) => m.admitted,
        (Metric::ConnectionsFreed, None) => m.freed,
        (Metric::ConnectionsActive, None) => m.active,
        (Metric::AdmissionRejections, Some(code)) => m.rejected(code),
        (Metric::ConnectionsClosed, Some(code)) => m.closed(code),
        (Metric::ConnectionsDisconnected, None) => m.disconnected,
        (Metric::MessagesDelivered, None) => m.messages_delivered,
        (Metric::MessagesDropped, None) => m.messages_dropped,
        (Metric::MessagesDiscarded, None) => m.messages_discarded,
        (Metric::EventsEmitted, None) => m.events_emitted,
        (Metric::EventsReplayed, None) => m.events_replayed,
        (Metric::Resumes, None) => m.resumes,
        (Metric::ResumeGaps, None) => m.resume_gaps,
        (Metric::ReplayRings, None) => m.replay_rings,
        (Metric::ReplayBytes, None) => m.replay_bytes,
        (Metric::HandshakeRejections, Some(_)) => return None,
        (metric, _) if is_cluster(metric) => return None,
        (metric, code) => panic!("{metric:?} with {code:?} is no series of the table"),
    };
    Some(value as f64)
}

/// Whether `metric` is reported by cluster mode (a `Bus` or a `ClusterFactory`), not by
/// a factory or a handshake.
pub(crate) fn is_cluster(metric: Metric) -> bool {
    use Metric::{
        ClusterDeaf, ClusterLeaseRefusals, ClusterLeasesGranted, ClusterMalformed, ClusterProbeLag,
        ClusterPublishErrors, ClusterPublished, ClusterReceived, ClusterReconnects,
        ClusterSubscribed,
    };
    matches!(
        metric,
        ClusterSubscribed
            | ClusterLeasesGranted
            | ClusterLeaseRefusals
            | ClusterPublished
            | ClusterPublishErrors
            | ClusterReceived
            | ClusterMalformed
            | ClusterReconnects
            | ClusterDeaf
            | ClusterProbeLag
    )
}

/// Every series of the table: each unlabelled metric once, each labelled one per code.
pub(crate) fn every_series() -> impl Iterator<Item = (Metric, Option<ErrorCode>)> {
    Metric::ALL.into_iter().flat_map(|metric| {
        let codes: Vec<Option<ErrorCode>> = match metric.label() {
            Some(_) => ErrorCode::ALL.into_iter().map(Some).collect(),
            None => vec![None],
        };
        codes.into_iter().map(move |code| (metric, code))
    })
}

/// Asserts that `values` holds every series of the factory's part of the table with
/// the value `snapshot` has.
#[track_caller]
pub(crate) fn assert_mirrors(values: &Values, snapshot: &MetricsSnapshot) {
    for (metric, code) in every_series() {
        let Some(expected) = in_snapshot(snapshot, metric, code) else {
            continue;
        };
        let key = series(metric, code);
        assert_eq!(values.get(&key), Some(&expected), "{key:?}");
    }
}
