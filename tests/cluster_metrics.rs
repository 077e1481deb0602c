//! Cluster mode's series of the metric table, read through metrics-util's debugging
//! recorder, on a real `redis-server`: two nodes, each created under a recorder of its
//! own, so each reads only what it reported. A granted lease, refusals by code across
//! nodes and with Redis stopped, publications and their failures, messages received
//! from the other node, the subscription gauge and the probe's lag each move their
//! series; no label is anything but an error code, and no user id appears anywhere.

#![cfg(all(feature = "redis", feature = "metrics"))]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]
#![allow(
    clippy::float_cmp,
    reason = "the recorder holds counts as floats; every value compared is an exact integer"
)]

mod redis_support;
mod support;

use std::time::{Duration, Instant};

use metrics_util::debugging::DebuggingRecorder;
use redis_support::{RedisServer, bound, node_config, user};
use support::metrics::{Reader, Values, series};
use wsctx::cluster::{Backplane, BusConfig, ClusterFactory, RemoteDelivery};
use wsctx::metrics::Metric;
use wsctx::{ErrorCode, Frame, Limits, ManagerFactory};

struct Node {
    factory: ClusterFactory,
    reader: Reader,
}

async fn node(redis: &RedisServer, name: &str) -> Node {
    let config = node_config(
        &redis.url(),
        name,
        Duration::from_secs(30),
        Duration::from_millis(300),
    );
    let backplane = Backplane::connect(config).await.unwrap();
    let recorder = DebuggingRecorder::new();
    let reader = Reader::new(recorder.snapshotter());
    let factory = metrics::with_local_recorder(&recorder, || {
        let local = ManagerFactory::new(Limits {
            per_user: 1,
            ..Limits::default()
        });
        ClusterFactory::builder(local, backplane)
            .bus(BusConfig::default().probe_interval(Duration::from_millis(100)))
            .start()
    });
    Node { factory, reader }
}

fn value(values: &Values, metric: Metric, code: Option<ErrorCode>) -> f64 {
    values
        .get(&series(metric, code))
        .copied()
        .unwrap_or_default()
}

/// Reads until `metric` reaches at least `at_least` (deliveries are asynchronous).
async fn reaches(node: &Node, metric: Metric, at_least: f64) -> Values {
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let values = node.reader.read();
        if value(&values, metric, None) >= at_least {
            return values;
        }
        assert!(
            Instant::now() < deadline,
            "{metric:?} stayed below {at_least}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cluster_transitions_move_their_series_and_no_label_names_a_user() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let refusals = |values: &Values, code| value(values, Metric::ClusterLeaseRefusals, Some(code));

    // A granted lease on A; the user's second tab, on B, is over the limit of 1.
    let (_alice, _out) = a.factory.admit(bound("alice-7f3a", "t1")).await.unwrap();
    let refused = b
        .factory
        .admit(bound("alice-7f3a", "t2"))
        .await
        .unwrap_err();
    assert_eq!(refused.code(), ErrorCode::ConnectionLimit);
    let on_a = a.reader.read();
    assert_eq!(value(&on_a, Metric::ClusterLeasesGranted, None), 1.0);
    let on_b = b.reader.read();
    assert_eq!(value(&on_b, Metric::ClusterLeasesGranted, None), 0.0);
    assert_eq!(refusals(&on_b, ErrorCode::ConnectionLimit), 1.0);

    // B publishes to alice; A delivers it to her tab. (First B lets go of alice's
    // channel, which the refused admission subscribed: while that is in flight the
    // count of other nodes may be off by one.)
    let deadline = Instant::now() + Duration::from_secs(5);
    while b.factory.bus_status().channels != 0 {
        assert!(Instant::now() < deadline, "B kept alice's channel");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let sent = b
        .factory
        .send_to_user(&user("alice-7f3a"), Frame::text("hi"))
        .await;
    assert_eq!(sent.remote, RemoteDelivery::Published { nodes: 1 });
    assert_eq!(value(&b.reader.read(), Metric::ClusterPublished, None), 1.0);
    let on_a = reaches(&a, Metric::ClusterReceived, 1.0).await;
    assert_eq!(value(&on_a, Metric::ClusterReceived, None), 1.0);

    // The subscription is live and its probes come back with a lag.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let on_a = a.reader.read();
    assert!(
        value(&on_a, Metric::ClusterSubscribed, None) >= 1.0,
        "{on_a:?}"
    );
    assert!(
        value(&on_a, Metric::ClusterProbeLag, None) > 0.0,
        "{on_a:?}"
    );

    // Redis stopped: a refusal as BACKPLANE_UNAVAILABLE, a failed publication.
    redis.pause();
    let refused = a.factory.admit(bound("bob-21c9", "t1")).await.unwrap_err();
    assert_eq!(refused.code(), ErrorCode::BackplaneUnavailable);
    let sent = a
        .factory
        .send_to_user(&user("alice-7f3a"), Frame::text("lost"))
        .await;
    assert!(matches!(sent.remote, RemoteDelivery::Failed(_)));
    redis.resume();
    let on_a = a.reader.read();
    assert_eq!(refusals(&on_a, ErrorCode::BackplaneUnavailable), 1.0);
    assert_eq!(value(&on_a, Metric::ClusterPublishErrors, None), 1.0);

    // Every series is of the table; labels are error codes; no user id anywhere.
    for values in [a.reader.read(), b.reader.read()] {
        for (name, code) in values.keys() {
            assert!(Metric::ALL.iter().any(|m| m.name() == name), "{name}");
            assert!(!name.contains("alice") && !name.contains("bob"), "{name}");
            if let Some(code) = code {
                assert!(
                    ErrorCode::ALL.iter().any(|c| c.as_str() == code),
                    "{name}: {code}"
                );
            }
        }
    }
}
