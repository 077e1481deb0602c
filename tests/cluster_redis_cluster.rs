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
