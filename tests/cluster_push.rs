//! Delivery across nodes on a real `redis-server`: three `ClusterFactory` nodes in one
//! process. Frames, events and disconnects from any node reach every tab of the user on
//! every node exactly once, and no other user's; events keep one order and one position
//! everywhere; a tab resumes on another node without loss or duplicates, also while
//! events keep coming; a lost disconnect message is caught by the revocation marker;
//! with Redis away, local delivery goes on.

#![cfg(all(feature = "redis", feature = "serde"))]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

mod redis_support;

use std::time::Duration;

use redis_support::{RedisServer, ban, bound, node_config, user};
use wsctx::cluster::{Backplane, BusConfig, ClusterFactory, ClusterManager, RemoteDelivery};
use wsctx::{
    CloseCode, EventType, Frame, Limits, ManagerFactory, Outbound, ResumePoint, TryRecvError,
};

const WAIT: Duration = Duration::from_secs(5);

async fn node_with_ttl(redis: &RedisServer, name: &str, ttl: Duration) -> ClusterFactory {
    let config = node_config(
        &redis.url(),
        name,
        ttl,
        Duration::from_millis(300).min(ttl / 3),
    );
    let local = ManagerFactory::new(Limits {
        per_user: 8,
        ..Limits::default()
    });
    let probe = BusConfig::default().probe_interval(Duration::from_millis(100));
    ClusterFactory::builder(local, Backplane::connect(config).await.unwrap())
        .bus(probe)
        .start()
}

/// A private Redis and three nodes whose leases live long (30 s): anything that
/// reaches another node within a test came over pub/sub, not a renewal.
async fn three_nodes() -> Option<(RedisServer, [ClusterFactory; 3])> {
    let redis = RedisServer::start()?;
    let ttl = Duration::from_secs(30);
    let nodes = [
        node_with_ttl(&redis, "a", ttl).await,
        node_with_ttl(&redis, "b", ttl).await,
        node_with_ttl(&redis, "c", ttl).await,
    ];
    Some((redis, nodes))
}

struct Tab {
    _manager: ClusterManager,
    outbound: Outbound,
}

async fn tab(node: &ClusterFactory, user_id: &str, client: &str) -> Tab {
    let (manager, outbound) = node.admit(bound(user_id, client)).await.unwrap();
    Tab {
        _manager: manager,
        outbound,
    }
}

impl Tab {
    async fn next(&mut self) -> Frame {
        tokio::time::timeout(WAIT, self.outbound.recv())
            .await
            .expect("a frame in time")
            .expect("a frame, not the end")
    }

    async fn next_text(&mut self) -> String {
        self.next().await.as_text().unwrap().to_owned()
    }

    /// Nothing more within a short while.
    async fn quiet(&mut self) {
        tokio::time::sleep(Duration::from_millis(150)).await;
        match self.outbound.try_recv() {
            Err(TryRecvError::Empty) => {}
            other => panic!("unexpected: {other:?}"),
        }
    }
}

/// A tab of alice on each node, and one of bob on `bob_on`.
async fn alice_everywhere_and_bob(
    nodes: [&ClusterFactory; 3],
    bob_on: &ClusterFactory,
) -> ([Tab; 3], Tab) {
    let tabs = [
        tab(nodes[0], "alice", "t1").await,
        tab(nodes[1], "alice", "t2").await,
        tab(nodes[2], "alice", "t3").await,
    ];
    (tabs, tab(bob_on, "bob", "t1").await)
}

fn event_type(name: &str) -> EventType {
    EventType::try_new(name).unwrap()
}

/// The position an event frame states.
fn position(frame: &str) -> ResumePoint {
    let value: serde_json::Value = serde_json::from_str(frame).unwrap();
    let epoch = u64::from_str_radix(value["epoch"].as_str().unwrap(), 16).unwrap();
    ResumePoint::new(epoch, value["seq"].as_u64().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn frames_from_any_node_reach_every_tab_of_the_user_once() {
    let Some((_redis, [a, b, c])) = three_nodes().await else {
        return;
    };
    let mut tabs = [
        tab(&a, "alice", "t1").await,
        tab(&b, "alice", "t2").await,
        tab(&c, "alice", "t3").await,
        tab(&c, "alice", "t4").await,
    ];
    let mut bob = tab(&b, "bob", "t1").await;
    for (i, from) in [&a, &b, &c].into_iter().enumerate() {
        let text = format!("from node {i}");
        let sent = from
            .send_to_user(&user("alice"), Frame::text(text.clone()))
            .await;
        let here = [1, 1, 2][i];
        assert_eq!(sent.local.delivered, here);
        assert_eq!(sent.remote, RemoteDelivery::Published { nodes: 2 });
        for tab in &mut tabs {
            assert_eq!(tab.next().await, Frame::text(text.clone()));
        }
    }
    for tab in &mut tabs {
        tab.quiet().await;
    }
    bob.quiet().await;
    // A user with no tab anywhere: nobody receives, nobody listens.
    let sent = a.send_to_user(&user("carol"), Frame::text("x")).await;
    assert_eq!(
        (sent.local.delivered, sent.remote),
        (0, RemoteDelivery::Published { nodes: 0 })
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_from_any_node_reach_every_tab_once_in_one_order() {
    let Some((_redis, [a, b, c])) = three_nodes().await else {
        return;
    };
    let (mut tabs, mut bob) = alice_everywhere_and_bob([&a, &b, &c], &a).await;
    let ctx = bound("alice", "worker");
    let emitters = [a.emitter(&ctx), b.emitter(&ctx), c.emitter(&ctx)];
    let step = event_type("run.step");
    let mut positions = Vec::new();
    for n in 0..9 {
        let sent = emitters[n % 3].emit(&step, &n).await.unwrap();
        assert_eq!(sent.remote, RemoteDelivery::Published { nodes: 2 });
        positions.push(sent.local.position.unwrap());
    }
    // One stream: one epoch, numbered 1..=9 whichever node emitted.
    assert!(positions.iter().all(|p| p.epoch() == positions[0].epoch()));
    assert_eq!(
        positions.iter().map(ResumePoint::seq).collect::<Vec<_>>(),
        (1..=9).collect::<Vec<_>>()
    );
    for tab in &mut tabs {
        for (n, expected) in positions.iter().enumerate() {
            let frame = tab.next_text().await;
            assert_eq!(position(&frame), *expected);
            assert!(frame.contains(&format!(r#""data":{n}}}"#)), "{frame}");
        }
        tab.quiet().await;
    }
    bob.quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_disconnect_from_one_node_closes_the_tabs_on_all_at_once() {
    let Some((_redis, [a, b, c])) = three_nodes().await else {
        return;
    };
    let (mut tabs, mut bob) = alice_everywhere_and_bob([&a, &b, &c], &b).await;
    let done = ban(&a, "alice").await;
    assert_eq!(done.local, 1);
    assert_eq!(done.remote.unwrap(), 3);
    assert_eq!(done.published, RemoteDelivery::Published { nodes: 2 });
    // Leases live 30 s, renewals come every 10 s: this is the published message.
    for tab in &mut tabs {
        let Frame::Close(close) = tab.next().await else {
            panic!("not a close frame");
        };
        assert_eq!(
            (close.code, close.reason.as_str()),
            (CloseCode::FORBIDDEN, "banned")
        );
    }
    bob.quiet().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_disconnect_message_is_caught_by_the_revocation_marker() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let ttl = Duration::from_millis(900);
    let (a, b) = (
        node_with_ttl(&redis, "a", ttl).await,
        node_with_ttl(&redis, "b", ttl).await,
    );
    // Kill every subscription right before the disconnect until one publication
    // reaches nobody: then only the marker can close the tab on B.
    for attempt in 0.. {
        assert!(attempt < 20, "the subscriptions always came back first");
        let mut on_b = tab(&b, "alice", &format!("t{attempt}")).await;
        redis.kill_subscribers().await;
        let done = ban(&a, "alice").await;
        assert_eq!(done.remote.unwrap(), 1);
        let Frame::Close(close) = on_b.next().await else {
            panic!("not a close frame");
        };
        assert_eq!(close.code, CloseCode::FORBIDDEN);
        if done.published == (RemoteDelivery::Published { nodes: 0 }) {
            return; // closed within the test's wait, by a renewal that read the marker
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tab_resumes_on_another_node_without_loss_or_duplicates() {
    let Some((_redis, [a, b, c])) = three_nodes().await else {
        return;
    };
    let (manager, mut first) = a.admit_with_position(bound("alice", "t1")).await.unwrap();
    let start = first.recv().await.unwrap();
    assert!(
        start
            .as_text()
            .unwrap()
            .starts_with(r#"{"type":"position""#)
    );
    let emitter = c.emitter(&bound("alice", "worker"));
    let step = event_type("run.step");
    for n in 1..=3 {
        emitter.emit(&step, &n).await.unwrap();
    }
    let mut seen = ResumePoint::new(0, 0);
    for _ in 1..=3 {
        seen = position(first.recv().await.unwrap().as_text().unwrap());
    }
    assert_eq!(seen.seq(), 3);
    drop((manager, first)); // the tab drops
    for n in 4..=6 {
        emitter.emit(&step, &n).await.unwrap();
    }
    // It comes back on B, which has never held alice.
    let (_manager, mut again) = b.admit_resuming(bound("alice", "t1"), seen).await.unwrap();
    for seq in 4..=6 {
        let frame = again.recv().await.unwrap();
        assert_eq!(
            position(frame.as_text().unwrap()),
            ResumePoint::new(seen.epoch(), seq)
        );
    }
    assert_eq!(
        again.recv().await.unwrap(),
        Frame::text(r#"{"type":"resumed","missed":3}"#)
    );
    emitter.emit(&step, &7).await.unwrap();
    let live = again.recv().await.unwrap();
    assert_eq!(position(live.as_text().unwrap()).seq(), 7);
    assert!(matches!(again.try_recv(), Err(TryRecvError::Empty)));

    // A point of another epoch, or one the stream never reached: a gap.
    for point in [
        ResumePoint::new(seen.epoch() ^ 1, 2),
        ResumePoint::new(seen.epoch(), 99),
    ] {
        let (_m, mut gap) = a.admit_resuming(bound("alice", "t9"), point).await.unwrap();
        assert_eq!(
            gap.recv().await.unwrap(),
            Frame::text(r#"{"type":"resume_gap"}"#)
        );
    }
}

/// Tabs keep dropping and coming back on another node while events keep coming: every
/// tab sees the positions 1, 2, 3, … in order, each once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resuming_while_events_keep_coming_loses_and_repeats_nothing() {
    let Some((_redis, nodes)) = three_nodes().await else {
        return;
    };
    let emitter = nodes[2].emitter(&bound("alice", "worker"));
    let pump = tokio::spawn(async move {
        let step = EventType::try_new("run.step").unwrap();
        for n in 0..300_u32 {
            emitter.emit(&step, &n).await.unwrap();
            if n.is_multiple_of(10) {
                tokio::task::yield_now().await;
            }
        }
    });
    let mut handles = Vec::new();
    for t in 0..3 {
        let nodes = nodes.clone();
        handles.push(tokio::spawn(async move {
            let client = format!("t{t}");
            let (mut manager, mut outbound) = nodes[t % 3]
                .admit_with_position(bound("alice", &client))
                .await
                .unwrap();
            let text = outbound.recv().await.unwrap();
            let value: serde_json::Value = serde_json::from_str(text.as_text().unwrap()).unwrap();
            let epoch = u64::from_str_radix(value["epoch"].as_str().unwrap(), 16).unwrap();
            let mut last = ResumePoint::new(epoch, value["seq"].as_u64().unwrap());
            let mut hops = 0;
            while last.seq() < 300 {
                let frame = tokio::time::timeout(WAIT, outbound.recv())
                    .await
                    .unwrap()
                    .unwrap();
                let text = frame.as_text().unwrap();
                if text.starts_with(r#"{"type":"resumed""#) {
                    continue;
                }
                assert!(
                    !text.contains("resume_gap"),
                    "tab {t} got a gap after {last}"
                );
                let got = position(text);
                assert_eq!(
                    got,
                    ResumePoint::new(last.epoch(), last.seq() + 1),
                    "tab {t}"
                );
                last = got;
                if got.seq().is_multiple_of(25) {
                    // Drop and come back on the next node.
                    hops += 1;
                    drop((manager, outbound));
                    let node = &nodes[(t + hops) % 3];
                    // A fresh client id: the old one's lease is released in the
                    // background, and until then it is a duplicate.
                    let client = format!("t{t}-{hops}");
                    (manager, outbound) = node
                        .admit_resuming(bound("alice", &client), last)
                        .await
                        .unwrap();
                }
            }
            hops
        }));
    }
    pump.await.unwrap();
    for handle in handles {
        assert!(handle.await.unwrap() >= 10);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_away_events_still_reach_the_tabs_here_in_an_epoch_of_their_own() {
    let Some((redis, [a, b, _c])) = three_nodes().await else {
        return;
    };
    let (_m, mut here) = a.admit_with_position(bound("alice", "t1")).await.unwrap();
    let stream = position(here.recv().await.unwrap().as_text().unwrap());
    let mut there = tab(&b, "alice", "t2").await;
    let emitter = a.emitter(&bound("alice", "worker"));
    let step = event_type("run.step");
    redis.pause();
    let sent = emitter.emit(&step, &1).await.unwrap();
    assert!(
        matches!(sent.remote, RemoteDelivery::Failed(_)),
        "{:?}",
        sent.remote
    );
    assert_eq!(sent.local.delivered, 1);
    let detached = position(here.recv().await.unwrap().as_text().unwrap());
    assert_ne!(detached.epoch(), stream.epoch());
    redis.resume();
    // Once B listens again (a frame published reaches it), the next event is the
    // stream's, on both nodes.
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let sent = a.send_to_user(&user("alice"), Frame::text("ping")).await;
        if sent.remote == (RemoteDelivery::Published { nodes: 1 }) {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "B never listened again"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Every ping reached A's tab at once; only the last one reached B.
    while here.try_recv().is_ok() {}
    assert_eq!(there.next().await, Frame::text("ping"));
    // A paused Redis is no deafness: nobody reconnected.
    assert_eq!((a.bus_status().deaf, b.bus_status().deaf), (0, 0));
    let sent = emitter.emit(&step, &2).await.unwrap();
    assert_eq!(sent.remote, RemoteDelivery::Published { nodes: 1 });
    let next = position(here.recv().await.unwrap().as_text().unwrap());
    assert_eq!(next, ResumePoint::new(stream.epoch(), stream.seq() + 1));
    assert_eq!(position(&there.next_text().await), next);
    // A tab that stored the detached position gets a gap on any node.
    let (_m2, mut back) = b
        .admit_resuming(bound("alice", "t3"), detached)
        .await
        .unwrap();
    assert_eq!(
        back.recv().await.unwrap(),
        Frame::text(r#"{"type":"resume_gap"}"#)
    );
}
