//! The metric table, and (feature `metrics`) the reporting of every metric through the
//! [`metrics`](https://docs.rs/metrics) crate's facade: every counter and gauge of
//! [`MetricsSnapshot`](crate::MetricsSnapshot), the handshakes refused by
//! [`Handshake`](crate::http::Handshake) and the closes of the socket runner, reported to
//! whatever recorder the application installs (Prometheus, `StatsD`, OpenTelemetry, ...).
//! Without a recorder, read [`ManagerFactory::metrics`](crate::ManagerFactory::metrics)
//! instead: it is always there.
//!
//! # The names
//!
//! [`Metric`] is the table: one row per metric, with its name, kind, unit, label and
//! help text (its API documentation shows it whole). Names follow Prometheus
//! conventions: counters end in `_total`, gauges do not. The only label is `code`, an
//! [`ErrorCode`] wire name such as `CONNECTION_LIMIT`: a closed set, so a family has at
//! most [`ErrorCode::COUNT`] series. No metric name or label ever carries a user id, a
//! client id or any other value a client sent.
//!
//! # When the recorder must be installed
//!
//! A [`ManagerFactory`](crate::ManagerFactory) takes its metric handles once, when it is
//! created, and a [`Handshake`](crate::http::Handshake) when it is built: install the
//! recorder first (`metrics::set_global_recorder`, or the exporter's `install`). Every
//! transition then updates its handle directly: no name lookup, no allocation, no lock
//! on the hot paths. A factory created inside `metrics::with_local_recorder` keeps
//! reporting to that recorder from every thread, which is how tests and servers that
//! run several factories in one process keep their figures apart. Each labelled family
//! registers all of its codes at creation, so every series is exported from 0.
//!
//! The factory also describes every metric (help text and unit) to the recorder.
//!
//! Cluster mode's series (`wsctx_cluster_*`, feature `redis`) are taken the same way: by a
//! `cluster::Bus` (its subscription, publications, deliveries from other nodes, probes)
//! and a `cluster::ClusterFactory` (lease outcomes) when they are created.
//!
//! Without the feature, nothing is reported and nothing of the facade is compiled in;
//! [`Metric`] stays, as the list of names.
//!
//! # Examples
//!
#![cfg_attr(feature = "metrics", doc = "```")]
#![cfg_attr(not(feature = "metrics"), doc = "```ignore")]
//! # use wsctx::{Context, Policy, SequenceGenerator, UuidGenerator};
//! # let bound = Context::builder().user_id("user-8f14").build()
//! #     .validate(&Policy::default(), &SequenceGenerator::new())?.bind(None, &UuidGenerator::new())?;
//! use metrics_util::debugging::{DebugValue, DebuggingRecorder};
//! use wsctx::ManagerFactory;
//! use wsctx::metrics::Metric;
//!
//! let recorder = DebuggingRecorder::new();
//! let snapshotter = recorder.snapshotter();
//! let factory = metrics::with_local_recorder(&recorder, ManagerFactory::default);
//!
//! let _tab = factory.create(bound)?;
//! let values = snapshotter.snapshot().into_vec();
//! let admitted = values
//!     .iter()
//!     .find(|(key, ..)| key.key().name() == Metric::ConnectionsAdmitted.name())
//!     .map(|(.., value)| value);
//! assert_eq!(admitted, Some(&DebugValue::Counter(1)));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

use crate::rejection::ErrorCode;

/// Whether a metric only grows or goes up and down.
///
/// # Examples
///
/// ```
/// use wsctx::metrics::{Metric, MetricKind};
///
/// assert_eq!(Metric::ConnectionsActive.kind(), MetricKind::Gauge);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum MetricKind {
    /// Only grows; its name ends in `_total`.
    Counter,
    /// Goes up and down with the state it measures.
    Gauge,
}

impl MetricKind {
    /// `"counter"` or `"gauge"`, as Prometheus types them.
    ///
    /// # Examples
    ///
    /// ```
    /// assert_eq!(wsctx::metrics::MetricKind::Counter.as_str(), "counter");
    /// ```
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Counter => "counter",
            Self::Gauge => "gauge",
        }
    }
}

/// What a metric counts, for [`Metric::unit`].
#[cfg(feature = "metrics")]
macro_rules! unit {
    (count) => {
        ::metrics::Unit::Count
    };
    (bytes) => {
        ::metrics::Unit::Bytes
    };
    (seconds) => {
        ::metrics::Unit::Seconds
    };
}

/// The documentation cells of a row.
macro_rules! doc_cell {
    (label -) => {
        "—"
    };
    (label code) => {
        "`code`"
    };
    (snapshot -) => {
        "—"
    };
    (snapshot $field:literal) => {
        concat!("`", $field, "`")
    };
}

/// The label of a row.
macro_rules! label {
    (-) => {
        None
    };
    (code) => {
        Some("code")
    };
}

/// Generates [`Metric`] and its documentation table from one row per metric, with named
/// columns: `name`; `kind` (`Counter` or `Gauge`); `unit` (`count` or `bytes`); `label`
/// (`code` or `-`); `snapshot`: the [`MetricsSnapshot`](crate::MetricsSnapshot) field or
/// accessor it mirrors (`-` when the snapshot has none); `help`: the description given
/// to the recorder.
macro_rules! metric_table {
    ($(
        $variant:ident { name: $name:literal, kind: $kind:ident, unit: $unit:ident, label: $label:tt, snapshot: $snapshot:tt, help: $help:literal }
    )*) => {
        spec_table! {
            /// Every metric `wsctx` reports through the `metrics` facade: one row each of the
            /// metric table, which decides its name, kind, unit, label and help text.
            ///
            /// | name | kind | label | `MetricsSnapshot` | help |
            /// |---|---|---|---|---|
            $(
                #[doc = concat!(
                    "| `", $name, "` | ", stringify!($kind), " | ", doc_cell!(label $label),
                    " | ", doc_cell!(snapshot $snapshot), " | ", $help, " |"
                )]
            )*
            ///
            /// `closed(code)` includes `slow_consumers`, `idle_timeouts` and
            /// `closed_by_shutdown` (codes SLOW_CONSUMER, IDLE_TIMEOUT, SHUTTING_DOWN).
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::metrics::Metric;
            ///
            /// assert_eq!(Metric::ConnectionsActive.name(), "wsctx_connections_active");
            /// assert_eq!(Metric::ConnectionsClosed.label(), Some("code"));
            /// assert_eq!(Metric::ALL[Metric::ReplayBytes.index()], Metric::ReplayBytes);
            /// ```
            pub enum Metric("metrics", "metric", metric) {
                $(
                    #[doc = concat!("`", $name, "`: ", $help)]
                    $variant => Spec {
                        name: $name,
                        kind: MetricKind::$kind,
                        label: label!($label),
                        help: $help,
                    },
                )*
            }
        }

        impl Metric {
            /// The unit the recorder is told.
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::metrics::Metric;
            ///
            /// assert_eq!(Metric::ReplayBytes.unit(), metrics::Unit::Bytes);
            /// ```
            #[cfg(feature = "metrics")]
            #[must_use]
            pub const fn unit(self) -> ::metrics::Unit {
                match self {
                    $(Self::$variant => unit!($unit),)*
                }
            }
        }
    };
}

/// The data of one row.
struct Spec {
    name: &'static str,
    kind: MetricKind,
    label: Option<&'static str>,
    help: &'static str,
}

metric_table! {
    ConnectionsAdmitted { name: "wsctx_connections_admitted_total", kind: Counter, unit: count, label: -, snapshot: "admitted", help: "Sockets admitted by the connection manager factory." }
    ConnectionsFreed { name: "wsctx_connections_freed_total", kind: Counter, unit: count, label: -, snapshot: "freed", help: "Admission slots freed (a manager dropped)." }
    ConnectionsActive { name: "wsctx_connections_active", kind: Gauge, unit: count, label: -, snapshot: "active", help: "Sockets holding an admission slot now." }
    AdmissionRejections { name: "wsctx_admission_rejections_total", kind: Counter, unit: count, label: code, snapshot: "rejected(code)", help: "Admissions the factory refused, by error code." }
    HandshakeRejections { name: "wsctx_handshake_rejections_total", kind: Counter, unit: count, label: code, snapshot: -, help: "Handshakes refused before admission (origin, credential, context, resume point, client id), by error code." }
    ConnectionsClosed { name: "wsctx_connections_closed_total", kind: Counter, unit: count, label: code, snapshot: "closed(code)", help: "Sockets the server closed with a rejection, by error code." }
    ConnectionsDisconnected { name: "wsctx_connections_disconnected_total", kind: Counter, unit: count, label: -, snapshot: "disconnected", help: "Sockets closed by disconnect_user or a manager's close." }
    MessagesDelivered { name: "wsctx_messages_delivered_total", kind: Counter, unit: count, label: -, snapshot: "messages_delivered", help: "Frames placed in an outbound queue, one per receiving socket." }
    MessagesDropped { name: "wsctx_messages_dropped_total", kind: Counter, unit: count, label: -, snapshot: "messages_dropped", help: "Frames not queued: the queue was full, the socket closing, or the send refused." }
    MessagesDiscarded { name: "wsctx_messages_discarded_total", kind: Counter, unit: count, label: -, snapshot: "messages_discarded", help: "Queued frames thrown away unsent because their socket closed." }
    EventsEmitted { name: "wsctx_events_emitted_total", kind: Counter, unit: count, label: -, snapshot: "events_emitted", help: "Events sent by an emitter, one per event." }
    EventsReplayed { name: "wsctx_events_replayed_total", kind: Counter, unit: count, label: -, snapshot: "events_replayed", help: "Events queued again for resuming clients." }
    Resumes { name: "wsctx_resumes_total", kind: Counter, unit: count, label: -, snapshot: "resumes", help: "Resumes that found every missed event." }
    ResumeGaps { name: "wsctx_resume_gaps_total", kind: Counter, unit: count, label: -, snapshot: "resume_gaps", help: "Resumes that could not be served and were told to reload." }
    ReplayRings { name: "wsctx_replay_rings", kind: Gauge, unit: count, label: -, snapshot: "replay_rings", help: "Users holding a replay ring now." }
    ReplayBytes { name: "wsctx_replay_bytes", kind: Gauge, unit: bytes, label: -, snapshot: "replay_bytes", help: "Bytes held by all replay rings now." }
    ClusterSubscribed { name: "wsctx_cluster_subscribed", kind: Gauge, unit: count, label: -, snapshot: -, help: "Cluster mode: 1 while this node's pub/sub subscription is live and its probes come back, else 0." }
    ClusterLeasesGranted { name: "wsctx_cluster_leases_granted_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: leases Redis granted to this node's admissions." }
    ClusterLeaseRefusals { name: "wsctx_cluster_lease_refusals_total", kind: Counter, unit: count, label: code, snapshot: -, help: "Cluster mode: admissions refused after this node's own checks passed, by error code (CONNECTION_LIMIT and DUPLICATE_CLIENT across nodes, BACKPLANE_UNAVAILABLE, INTERNAL_ERROR)." }
    ClusterPublished { name: "wsctx_cluster_published_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: messages this node published for the user's sockets on other nodes." }
    ClusterPublishErrors { name: "wsctx_cluster_publish_errors_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: publications that failed or were refused (Redis away, queue full)." }
    ClusterReceived { name: "wsctx_cluster_received_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: messages from other nodes handed to this node's sockets (remote deliveries)." }
    ClusterMalformed { name: "wsctx_cluster_malformed_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: payloads on a subscribed channel that were not envelopes, dropped." }
    ClusterReconnects { name: "wsctx_cluster_reconnects_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: reconnections of this node's pub/sub subscription." }
    ClusterDeaf { name: "wsctx_cluster_deaf_total", kind: Counter, unit: count, label: -, snapshot: -, help: "Cluster mode: subscriptions found deaf by their probe (Redis answered, the probe never came back)." }
    ClusterProbeLag { name: "wsctx_cluster_probe_lag_seconds", kind: Gauge, unit: seconds, label: -, snapshot: -, help: "Cluster mode: the pub/sub lag, how long this node's last probe took from publish to receipt." }
}

impl Metric {
    spec_accessors! {
        /// This metric's position in [`ALL`](Self::ALL).
        ///
        /// # Examples
        ///
        /// ```
        /// assert_eq!(wsctx::metrics::Metric::ConnectionsAdmitted.index(), 0);
        /// ```
        index;

        /// The name the recorder sees, e.g. `"wsctx_connections_closed_total"`.
        ///
        /// # Examples
        ///
        /// ```
        /// use wsctx::metrics::Metric;
        ///
        /// assert_eq!(Metric::AdmissionRejections.name(), "wsctx_admission_rejections_total");
        /// ```
        name -> &'static str = name;

        /// Counter or gauge.
        ///
        /// # Examples
        ///
        /// ```
        /// use wsctx::metrics::{Metric, MetricKind};
        ///
        /// assert_eq!(Metric::MessagesDelivered.kind(), MetricKind::Counter);
        /// ```
        kind -> MetricKind = kind;

        /// The name of its one label (`"code"`: an [`ErrorCode`] wire name), or `None` for
        /// an unlabelled metric.
        ///
        /// # Examples
        ///
        /// ```
        /// use wsctx::metrics::Metric;
        ///
        /// assert_eq!(Metric::HandshakeRejections.label(), Some("code"));
        /// assert_eq!(Metric::ReplayRings.label(), None);
        /// ```
        label -> Option<&'static str> = label;

        /// The help text the recorder is given (one sentence, no value in it).
        ///
        /// # Examples
        ///
        /// ```
        /// use wsctx::metrics::Metric;
        ///
        /// assert_eq!(Metric::ConnectionsActive.help(), "Sockets holding an admission slot now.");
        /// ```
        help -> &'static str = help;
    }
}

// The crate-private shim. With the feature, each handle wraps a `metrics` handle taken
// from the recorder in force when it is registered; without it, each is a zero-sized
// value whose methods do nothing, so the transitions that call them compile to what
// they were before.

/// A handle type's value: with the feature, `$ty { handle: $handle }` (`$handle` takes a
/// `metrics` handle from the recorder in force); without it, the empty `$ty`, with the
/// arguments `$unused` marked used.
macro_rules! shim {
    ($ty:ident, $handle:expr, $unused:expr) => {{
        #[cfg(feature = "metrics")]
        let value = $ty { handle: $handle };
        #[cfg(not(feature = "metrics"))]
        let value = {
            let _ = $unused;
            $ty {}
        };
        value
    }};
}

/// Moves `$handle_of.handle` by `$n` with `$method($arg)`, and only for a step above 0;
/// without the feature, nothing (the arguments marked used).
macro_rules! step {
    ($handle_of:ident, $n:ident, $method:ident($arg:expr)) => {
        #[cfg(feature = "metrics")]
        if $n > 0 {
            $handle_of.handle.$method($arg);
        }
        #[cfg(not(feature = "metrics"))]
        let _ = ($handle_of, $n);
    };
}

/// An unlabelled series type `$ty` over the `metrics` handle type `$handle`: `register`
/// takes the series of a metric from the recorder in force with `$register!`, and `none`
/// (under the attribute given last, if any) is one that goes nowhere.
macro_rules! series {
    ($(#[$attr:meta])* $ty:ident: $handle:ident, $register:ident! $(, #[$none_attr:meta])?) => {
        $(#[$attr])*
        #[derive(Clone)]
        pub(crate) struct $ty {
            #[cfg(feature = "metrics")]
            handle: ::metrics::$handle,
        }

        impl $ty {
            /// The unlabelled series `metric`, from the recorder in force.
            pub(crate) fn register(metric: Metric) -> Self {
                shim!(Self, ::metrics::$register!(metric.name()), metric)
            }

            /// A series that goes nowhere.
            $(#[$none_attr])?
            pub(crate) fn none() -> Self {
                Self {
                    #[cfg(feature = "metrics")]
                    handle: ::metrics::$handle::noop(),
                }
            }
        }
    };
}

/// Describes every metric (help text and unit) to the recorder in force.
pub(crate) fn describe() {
    #[cfg(feature = "metrics")]
    for metric in Metric::ALL {
        let (name, unit, help) = (metric.name(), metric.unit(), metric.help());
        match metric.kind() {
            MetricKind::Counter => ::metrics::describe_counter!(name, unit, help),
            MetricKind::Gauge => ::metrics::describe_gauge!(name, unit, help),
        }
    }
}

series! {
    /// One counter series.
    Count: Counter, counter!
}

impl Count {
    /// Adds `n`; a no-op for 0.
    pub(crate) fn add(&self, n: usize) {
        step!(self, n, increment(u64::try_from(n).unwrap_or(u64::MAX)));
    }
}

/// One counter series per [`ErrorCode`], labelled `code`.
pub(crate) struct ByCode {
    counts: [Count; ErrorCode::COUNT],
}

impl ByCode {
    /// Every series of the counter family `metric`, from the recorder in force.
    pub(crate) fn register(metric: Metric) -> Self {
        Self {
            counts: ErrorCode::ALL.map(|code| {
                shim!(
                    Count,
                    ::metrics::counter!(metric.name(), "code" => code.as_str()),
                    (metric, code)
                )
            }),
        }
    }

    /// The series of `code`.
    pub(crate) fn get(&self, code: ErrorCode) -> &Count {
        &self.counts[code.index()]
    }

    /// Adds one to the series of `code`.
    pub(crate) fn add(&self, code: ErrorCode) {
        self.get(code).add(1);
    }
}

series! {
    /// One gauge series, moved by the transitions that change what it measures.
    Level: Gauge, gauge!, #[cfg(test)]
}

impl Level {
    /// Raises the gauge by `n`; a no-op for 0.
    pub(crate) fn up(&self, n: usize) {
        step!(self, n, increment(as_f64(n)));
    }

    /// Lowers the gauge by `n`; a no-op for 0.
    pub(crate) fn down(&self, n: usize) {
        step!(self, n, decrement(as_f64(n)));
    }

    /// Sets the gauge to `value` (a state or a measurement, not a count).
    #[cfg_attr(
        not(feature = "redis"),
        allow(dead_code, reason = "only cluster mode sets gauges")
    )]
    pub(crate) fn set(&self, value: f64) {
        #[cfg(feature = "metrics")]
        self.handle.set(value);
        #[cfg(not(feature = "metrics"))]
        let _ = (self, value);
    }
}

/// `n` as a gauge step: exact below 2^53, which sockets and bytes held stay under.
#[cfg(feature = "metrics")]
#[allow(
    clippy::cast_precision_loss,
    reason = "gauge steps are counts of sockets, rings and bytes, far below 2^53"
)]
fn as_f64(n: usize) -> f64 {
    n as f64
}
