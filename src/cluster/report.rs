//! What cluster mode reports through the `metrics` facade (feature `metrics`): the
//! handles of the metric table's `wsctx_cluster_*` rows, taken when a [`Bus`](super::Bus)
//! or a [`ClusterFactory`](super::ClusterFactory) is created (from the recorder in force
//! then), and moved where each event happens. Without the feature the handles are empty
//! and cost nothing. No label carries an id: the only label is an error code.

use std::time::Duration;

use crate::metrics::{ByCode, Count, Level, Metric};
use crate::rejection::ErrorCode;

/// The bus's series: its subscription, publications, deliveries and probes.
pub(crate) struct BusReport {
    pub(crate) subscribed: Level,
    pub(crate) published: Count,
    pub(crate) publish_errors: Count,
    pub(crate) received: Count,
    pub(crate) malformed: Count,
    pub(crate) reconnects: Count,
    pub(crate) deaf: Count,
    probe_lag: Level,
}

impl BusReport {
    pub(crate) fn register() -> Self {
        Self {
            subscribed: Level::register(Metric::ClusterSubscribed),
            published: Count::register(Metric::ClusterPublished),
            publish_errors: Count::register(Metric::ClusterPublishErrors),
            received: Count::register(Metric::ClusterReceived),
            malformed: Count::register(Metric::ClusterMalformed),
            reconnects: Count::register(Metric::ClusterReconnects),
            deaf: Count::register(Metric::ClusterDeaf),
            probe_lag: Level::register(Metric::ClusterProbeLag),
        }
    }

    pub(crate) fn subscribed(&self, live: bool) {
        self.subscribed.set(if live { 1.0 } else { 0.0 });
    }

    pub(crate) fn probe_lag(&self, lag: Duration) {
        self.probe_lag.set(lag.as_secs_f64());
    }
}

/// The cluster factory's series: the outcome of each lease step.
pub(crate) struct LeaseReport {
    granted: Count,
    refused: ByCode,
}

impl LeaseReport {
    pub(crate) fn register() -> Self {
        Self {
            granted: Count::register(Metric::ClusterLeasesGranted),
            refused: ByCode::register(Metric::ClusterLeaseRefusals),
        }
    }

    pub(crate) fn granted(&self) {
        self.granted.add(1);
    }

    pub(crate) fn refused(&self, code: ErrorCode) {
        self.refused.add(code);
    }
}
