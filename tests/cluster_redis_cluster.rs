//! The lease scripts on a real Redis Cluster of three masters: every user's names hash
//! to one slot (no CROSSSLOT), users spread over the shards, and limits, duplicates,
//! renewals, revocations and releases work as on one server.

#![cfg(feature = "redis-cluster")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

mod redis_support;

use redis_support::{RedisCluster, granted, tab, user};
use wsctx::CloseCode;
use wsctx::CloseReason;
use wsctx::cluster::{Acquire, Backplane, ClusterConfig, HashingKey, NodeId, Renewal};

async fn node(cluster: &RedisCluster, name: &str) -> Backplane {
    let urls = cluster.urls();
    let config = ClusterConfig::cluster_builder(
        urls.iter().map(String::as_str),
        HashingKey::new(b"cluster-tests-hashing-key-32byte").unwrap(),
    )
    .node_id(NodeId::try_new(name).unwrap())
    .build()
    .unwrap();
    Backplane::connect(config).await.unwrap()
}

#[tokio::test]
async fn leases_work_on_three_masters_with_each_user_in_one_slot() {
    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let (a, b) = (node(&cluster, "a").await, node(&cluster, "b").await);
    let users: Vec<String> = (0..24).map(|i| format!("user-{i}")).collect();

    let mut leases = Vec::new();
    for id in &users {
        leases.push(granted(&a, id, "t1", 2).await);
        leases.push(granted(&b, id, "t2", 2).await);
        assert_eq!(
            a.acquire(&user(id), &tab("t3"), 2).await.unwrap(),
            Acquire::Limit { held: 2 }
        );
        assert_eq!(
            b.acquire(&user(id), &tab("t1"), 2).await.unwrap(),
            Acquire::Duplicate { held: 2 }
        );
    }
    // One renew call for 48 leases of 24 users: one script per user, on its shard.
    let (on_a, on_b): (Vec<_>, Vec<_>) = leases
        .iter()
        .cloned()
        .partition(|l| l.owner().starts_with("a:"));
    for result in a.renew(&on_a).await {
        assert_eq!(result.unwrap(), Renewal::Renewed);
    }

    // Every name of a user is in one slot; the users are spread over the masters.
    let mut inspect = cluster.nodes()[0]
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let keyspace = a.config().keyspace();
    for id in &users {
        let keys = keyspace.user_keys(keyspace.user_hash(&user(id)));
        let mut slots = Vec::new();
        for name in [
            keys.leases(),
            keys.owners(),
            keys.revoked(),
            keys.stream(),
            keys.position(),
            keys.channel(),
        ] {
            let slot: u16 = redis::cmd("CLUSTER")
                .arg("KEYSLOT")
                .arg(name)
                .query_async(&mut inspect)
                .await
                .unwrap();
            slots.push(slot);
        }
        assert!(slots.windows(2).all(|w| w[0] == w[1]), "{id}: {slots:?}");
    }
    let mut masters_with_keys = 0;
    for server in cluster.nodes() {
        let mut conn = server
            .client()
            .get_multiplexed_async_connection()
            .await
            .unwrap();
        let size: u64 = redis::cmd("DBSIZE").query_async(&mut conn).await.unwrap();
        masters_with_keys += usize::from(size > 0);
    }
    assert!(masters_with_keys >= 2, "24 users on one shard only");

    // Revoke one user; its leases on both nodes are reported at renewal.
    let dropped = b
        .revoke(
            &user("user-0"),
            CloseCode::FORBIDDEN,
            &CloseReason::new("banned"),
        )
        .await
        .unwrap();
    assert_eq!(dropped, 2);
    let renewed = a.renew(&on_a[..2]).await;
    assert!(
        matches!(renewed[0].as_ref().unwrap(), Renewal::Revoked(Some(_))),
        "{renewed:?}"
    );
    assert_eq!(renewed[1].as_ref().unwrap(), &Renewal::Renewed);

    // Release everything else, in two batches, one per node.
    let released = a.release(&on_a[1..]).await.unwrap();
    assert_eq!((released.released, released.not_held), (23, 0));
    let released = b.release(&on_b).await.unwrap();
    assert_eq!((released.released, released.not_held), (23, 1));
    for id in &users {
        assert_eq!(a.held(&user(id)).await.unwrap(), 0, "{id}");
    }
}

/// The three-node scenario on three masters, over sharded pub/sub: the per-user limit
/// counts every node, a frame and a run's events reach every tab once (users spread over
/// the shards), and a tab resumes on another node.
#[cfg(feature = "serde")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_cluster_factories_on_three_masters_share_limits_delivery_and_replay() {
    use wsctx::cluster::{ClusterFactory, RemoteDelivery};
    use wsctx::{EventType, Frame, Limits, ManagerFactory, ResumePoint};

    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let mut nodes = Vec::new();
    for name in ["a", "b", "c"] {
        let local = ManagerFactory::new(Limits {
            per_user: 3,
            ..Limits::default()
        });
        nodes.push(ClusterFactory::start(local, node(&cluster, name).await));
    }
    for n in 0..6 {
        let id = format!("user-{n}");
        let mut tabs = Vec::new();
        for (i, node) in nodes.iter().enumerate() {
            let client = format!("t{i}");
            tabs.push(
                node.admit(redis_support::bound(&id, &client))
                    .await
                    .unwrap(),
            );
        }
        for node in &nodes {
            let refused = node
                .admit(redis_support::bound(&id, "t9"))
                .await
                .unwrap_err();
            assert_eq!(refused.code(), wsctx::ErrorCode::ConnectionLimit, "{id}");
        }
        let sent = nodes[n % 3]
            .send_to_user(&user(&id), Frame::text("hi"))
            .await;
        assert_eq!(sent.remote, RemoteDelivery::Published { nodes: 2 }, "{id}");
        let emitter = nodes[(n + 1) % 3].emitter(&redis_support::bound(&id, "worker"));
        let step = EventType::try_new("run.step").unwrap();
        for k in 0..3 {
            emitter.emit(&step, &k).await.unwrap();
        }
        let mut last = None;
        for (_, outbound) in &mut tabs {
            assert_eq!(next(outbound).await, Frame::text("hi"));
            for seq in 1..=3 {
                let frame = next(outbound).await;
                let text = frame.as_text().unwrap();
                assert!(text.contains(&format!(r#""seq":{seq},"#)), "{id}: {text}");
                last = Some(text.to_owned());
            }
        }
        // The first tab drops and resumes on another node from event 1.
        let value: serde_json::Value = serde_json::from_str(&last.unwrap()).unwrap();
        let epoch = u64::from_str_radix(value["epoch"].as_str().unwrap(), 16).unwrap();
        drop(tabs.remove(0));
        let point = ResumePoint::new(epoch, 1);
        let (_again, mut again) = nodes[2]
            .admit_resuming(redis_support::bound(&id, "t5"), point)
            .await
            .unwrap();
        for seq in 2..=3 {
            let text = again.recv().await.unwrap();
            assert!(
                text.as_text()
                    .unwrap()
                    .contains(&format!(r#""seq":{seq},"#))
            );
        }
        assert_eq!(
            again.recv().await.unwrap(),
            Frame::text(r#"{"type":"resumed","missed":2}"#)
        );
    }
}

#[cfg(feature = "serde")]
async fn next(outbound: &mut wsctx::Outbound) -> wsctx::Frame {
    tokio::time::timeout(std::time::Duration::from_secs(5), outbound.recv())
        .await
        .expect("a frame in time")
        .expect("a frame")
}
