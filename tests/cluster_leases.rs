//! The lease scripts on a real `redis-server`: acquire, limit, duplicate, expiry, renew
//! (also after Redis lost its data), revoke, owner-checked batched release, and the
//! backplane's errors when Redis is stopped, full or refuses. Several nodes are several
//! `Backplane` values (own node id, own connection) in one process; TTLs are sub-second,
//! on Redis's clock.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

mod redis_support;

use std::time::{Duration, Instant};

use redis::AsyncCommands;
use redis_support::{RedisServer, granted, tab, user};
use wsctx::cluster::{
    Acquire, Backplane, BackplaneErrorKind, ClusterConfig, HashingKey, Renewal, Revocation,
};
use wsctx::{CloseCode, CloseReason, ErrorCode, Rejection};

const KEY: &[u8; 32] = b"cluster-tests-hashing-key-32byte";

/// The lease TTL of most nodes here (the default).
const DEFAULT_TTL: Duration = Duration::from_secs(30);
/// The lease TTL of the expiry and renewal tests.
const SHORT_TTL: Duration = Duration::from_millis(600);

/// A fresh `redis-server` and a node on it per name, whose leases live `ttl`; `None`
/// where no `redis-server` can be started (the test then does nothing).
async fn cluster<const N: usize>(
    names: [&str; N],
    ttl: Duration,
) -> Option<(RedisServer, [Backplane; N])> {
    let redis = RedisServer::start()?;
    let mut nodes = Vec::with_capacity(N);
    for name in names {
        nodes.push(node_with_ttl(&redis, name, ttl).await);
    }
    let Ok(nodes) = nodes.try_into() else {
        unreachable!("one node per name")
    };
    Some((redis, nodes))
}

/// A node with the default 30 s lease TTL.
async fn node(redis: &RedisServer, name: &str) -> Backplane {
    node_with_ttl(redis, name, DEFAULT_TTL).await
}

/// A node whose leases live `ttl` (response timeout: a third of it, at most 500 ms).
async fn node_with_ttl(redis: &RedisServer, name: &str, ttl: Duration) -> Backplane {
    let config = ClusterConfig::builder(&redis.url(), HashingKey::new(KEY).unwrap())
        .node_id(wsctx::cluster::NodeId::try_new(name).unwrap())
        .lease_ttl(ttl)
        .response_timeout((ttl / 3).min(Duration::from_millis(500)))
        .build()
        .unwrap();
    Backplane::connect(config).await.unwrap()
}

async fn inspect(redis: &RedisServer) -> redis::aio::MultiplexedConnection {
    redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// Renews `leases` on `node`; every renewal must succeed.
async fn renewed(node: &Backplane, leases: &[wsctx::cluster::Lease]) -> Vec<Renewal> {
    node.renew(leases)
        .await
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// Renews until the node has reconnected (at most 10 s).
async fn renew_once_reconnected(
    node: &Backplane,
    leases: &[wsctx::cluster::Lease],
) -> Vec<Renewal> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let results = node.renew(leases).await;
        if results.iter().all(Result::is_ok) {
            return results.into_iter().map(Result::unwrap).collect();
        }
        assert!(Instant::now() < deadline, "no reconnection: {results:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Redis's own clock, in ms.
async fn redis_now_ms(redis: &RedisServer) -> u64 {
    let (secs, micros): (u64, u64) = redis::cmd("TIME")
        .query_async(&mut inspect(redis).await)
        .await
        .unwrap();
    secs * 1000 + micros / 1000
}

#[tokio::test]
async fn the_per_user_limit_holds_across_nodes_and_users_are_apart() {
    let Some((redis, [a, b])) = cluster(["a", "b"], DEFAULT_TTL).await else {
        return;
    };

    let first = a.acquire(&user("alice"), &tab("t1"), 2).await.unwrap();
    assert!(
        matches!(first, Acquire::Granted { held: 1, .. }),
        "{first:?}"
    );
    let second = b.acquire(&user("alice"), &tab("t2"), 2).await.unwrap();
    assert!(
        matches!(second, Acquire::Granted { held: 2, .. }),
        "{second:?}"
    );
    // A third tab on either node: the limit counts both nodes.
    for node in [&a, &b] {
        let third = node.acquire(&user("alice"), &tab("t3"), 2).await.unwrap();
        assert_eq!(third, Acquire::Limit { held: 2 });
        assert_eq!(third.code(), Some(ErrorCode::ConnectionLimit));
    }
    // Another user is not affected.
    let bob = b.acquire(&user("bob"), &tab("t1"), 2).await.unwrap();
    assert!(matches!(bob, Acquire::Granted { held: 1, .. }), "{bob:?}");
    assert_eq!(a.held(&user("alice")).await.unwrap(), 2);
    assert_eq!(a.held(&user("carol")).await.unwrap(), 0);

    // What Redis holds: hashes only, one hash tag per user.
    let mut conn = inspect(&redis).await;
    let keys: Vec<String> = conn.keys("*").await.unwrap();
    assert_eq!(keys.len(), 4, "{keys:?}"); // leases + owners, for two users
    let alice_keys = a
        .config()
        .keyspace()
        .user_keys(a.config().keyspace().user_hash(&user("alice")));
    for key in &keys {
        assert!(!key.contains("alice") && !key.contains("bob"), "{key}");
        assert!(!key.contains("t1") && !key.contains("t2"), "{key}");
    }
    let members: Vec<String> = conn.zrange(alice_keys.leases(), 0, -1).await.unwrap();
    assert_eq!(members.len(), 2);
    let owners: Vec<String> = conn.hvals(alice_keys.owners()).await.unwrap();
    assert!(owners.iter().any(|o| o.contains(" a:")), "{owners:?}");
    assert!(owners.iter().any(|o| o.contains(" b:")), "{owners:?}");
}

#[tokio::test]
async fn concurrent_admissions_on_three_nodes_never_exceed_the_limit() {
    let Some((_redis, nodes)) = cluster(["a", "b", "c"], DEFAULT_TTL).await else {
        return;
    };
    let attempts = (0..30).map(|i| {
        let node = nodes[i % 3].clone();
        tokio::spawn(async move {
            node.acquire(&user("alice"), &tab(&format!("t{i}")), 5)
                .await
        })
    });
    let mut granted = 0;
    let mut limited = 0;
    for attempt in attempts {
        match attempt.await.unwrap().unwrap() {
            Acquire::Granted { .. } => granted += 1,
            Acquire::Limit { held: 5 } => limited += 1,
            other => panic!("{other:?}"),
        }
    }
    assert_eq!((granted, limited), (5, 25));
    assert_eq!(nodes[0].held(&user("alice")).await.unwrap(), 5);
}

#[tokio::test]
async fn a_client_id_is_a_duplicate_on_any_node_but_only_for_its_user() {
    let Some((_redis, [a, b])) = cluster(["a", "b"], DEFAULT_TTL).await else {
        return;
    };
    granted(&a, "alice", "tab-1", 5).await;

    let again = b.acquire(&user("alice"), &tab("tab-1"), 5).await.unwrap();
    assert_eq!(again, Acquire::Duplicate { held: 1 });
    assert_eq!(again.code(), Some(ErrorCode::DuplicateClient));
    // The duplicate check runs before the limit: a full user still hears "duplicate".
    let full = a.acquire(&user("alice"), &tab("tab-1"), 1).await.unwrap();
    assert_eq!(full, Acquire::Duplicate { held: 1 });
    // The same client id for another user is another lease.
    granted(&b, "bob", "tab-1", 5).await;
    assert_eq!(a.held(&user("alice")).await.unwrap(), 1);
}

#[tokio::test]
async fn leases_of_a_crashed_node_expire_on_redis_clock() {
    let Some((redis, [crashed, survivor])) = cluster(["crashed", "survivor"], SHORT_TTL).await
    else {
        return;
    };

    let before = redis_now_ms(&redis).await;
    let lease = granted(&crashed, "alice", "t1", 2).await;
    let after = redis_now_ms(&redis).await;
    // The expiry is Redis's time plus the TTL.
    let ttl_ms = 600;
    assert!(
        (before + ttl_ms..=after + ttl_ms).contains(&lease.expires_ms()),
        "{before} {after} {}",
        lease.expires_ms()
    );
    granted(&crashed, "alice", "t2", 2).await;
    // The node dies: no release, no renewal.
    drop(crashed);
    assert!(matches!(
        survivor
            .acquire(&user("alice"), &tab("t3"), 2)
            .await
            .unwrap(),
        Acquire::Limit { held: 2 }
    ));
    // The keys themselves go away after twice the TTL at most.
    let keys = survivor
        .config()
        .keyspace()
        .user_keys(survivor.config().keyspace().user_hash(&user("alice")));
    let pttl: i64 = inspect(&redis).await.pttl(keys.leases()).await.unwrap();
    assert!((1..=1200).contains(&pttl), "{pttl}");

    tokio::time::sleep(SHORT_TTL + Duration::from_millis(100)).await;
    assert_eq!(survivor.held(&user("alice")).await.unwrap(), 0);
    // Both slots are free again, and so is the crashed node's client id.
    let reused = survivor
        .acquire(&user("alice"), &tab("t1"), 2)
        .await
        .unwrap();
    assert!(
        matches!(reused, Acquire::Granted { held: 1, .. }),
        "{reused:?}"
    );
    granted(&survivor, "alice", "t3", 2).await;
}

#[tokio::test]
async fn renewal_keeps_leases_alive_beyond_the_ttl() {
    let Some((_redis, [a])) = cluster(["a"], SHORT_TTL).await else {
        return;
    };
    let leases = [
        granted(&a, "alice", "t1", 5).await,
        granted(&a, "bob", "t1", 5).await,
        granted(&a, "alice", "t2", 5).await,
    ];
    let start = Instant::now();
    while start.elapsed() < 3 * SHORT_TTL {
        tokio::time::sleep(a.config().renew_interval()).await;
        let renewals = renewed(&a, &leases).await;
        assert_eq!(
            renewals,
            [Renewal::Renewed, Renewal::Renewed, Renewal::Renewed]
        );
    }
    assert_eq!(a.held(&user("alice")).await.unwrap(), 2);
    assert_eq!(a.held(&user("bob")).await.unwrap(), 1);
    // Stop renewing: gone one TTL later.
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(100)).await;
    assert_eq!(a.held(&user("alice")).await.unwrap(), 0);
}

#[tokio::test]
async fn renewal_rebuilds_leases_after_flushall_and_after_a_restart_without_data() {
    let Some((mut redis, [a, b])) = cluster(["a", "b"], DEFAULT_TTL).await else {
        return;
    };
    let on_a = [
        granted(&a, "alice", "t1", 3).await,
        granted(&a, "alice", "t2", 3).await,
    ];
    let on_b = [granted(&b, "alice", "t3", 3).await];

    redis::cmd("FLUSHALL")
        .exec_async(&mut inspect(&redis).await)
        .await
        .unwrap();
    assert_eq!(a.held(&user("alice")).await.unwrap(), 0);
    let renewed = renewed(&a, &on_a).await;
    assert_eq!(renewed, [Renewal::Recreated, Renewal::Recreated]);
    assert_eq!(
        b.renew(&on_b).await.into_iter().next().unwrap().unwrap(),
        Renewal::Recreated
    );
    assert_eq!(a.held(&user("alice")).await.unwrap(), 3);
    // Rebuilt leases count: the limit is exact again.
    assert!(matches!(
        b.acquire(&user("alice"), &tab("t4"), 3).await.unwrap(),
        Acquire::Limit { held: 3 }
    ));
    // Rebuilt leases keep their owners: nobody else can release them.
    let keys = a.config().keyspace().user_keys(on_a[0].user());
    let entry: String = inspect(&redis)
        .await
        .hget(keys.owners(), on_a[0].client().to_string())
        .await
        .unwrap();
    assert_eq!(
        entry,
        format!("{} {}", on_a[0].acquired_us(), on_a[0].owner())
    );

    // Now Redis dies and comes back empty on the same port; the nodes reconnect by
    // themselves and their next renewal rebuilds everything.
    redis.restart_empty();
    for (node, leases) in [(&a, &on_a[..]), (&b, &on_b[..])] {
        let renewed = renew_once_reconnected(node, leases).await;
        assert!(
            renewed.iter().all(|r| *r == Renewal::Recreated),
            "{renewed:?}"
        );
    }
    assert_eq!(a.held(&user("alice")).await.unwrap(), 3);
}

#[tokio::test]
async fn a_revocation_is_reported_to_renewals_of_older_leases_only() {
    // Over a unix socket, to run the harness's other transport.
    let Some(redis) = RedisServer::start_unix() else {
        return;
    };
    let (a, b, c) = (
        node(&redis, "a").await,
        node(&redis, "b").await,
        node(&redis, "c").await,
    );
    let on_a = granted(&a, "alice", "t1", 5).await;
    let on_b = granted(&b, "alice", "t2", 5).await;
    let bobs = granted(&b, "bob", "t1", 5).await;

    let reason = CloseReason::new("banned for spam");
    let dropped = c
        .revoke(&user("alice"), CloseCode::FORBIDDEN, &reason)
        .await
        .unwrap();
    assert_eq!(dropped, 2);
    assert_eq!(a.held(&user("alice")).await.unwrap(), 0);

    // A node that missed the disconnect message learns it at its next renewal, with
    // the same close frame, and the lease is not re-created.
    let revoked = Renewal::Revoked(Some(Revocation {
        code: CloseCode::FORBIDDEN,
        reason: reason.clone(),
    }));
    assert_eq!(
        a.renew(std::slice::from_ref(&on_a)).await[0]
            .as_ref()
            .unwrap(),
        &revoked
    );
    let on_b_results = b.renew(&[on_b, bobs]).await;
    assert_eq!(on_b_results[0].as_ref().unwrap(), &revoked);
    assert_eq!(
        on_b_results[1].as_ref().unwrap(),
        &Renewal::Renewed,
        "bob is not alice"
    );
    assert_eq!(a.held(&user("alice")).await.unwrap(), 0);

    // A disconnect is not a ban: the same tab may come back at once, and its new lease
    // is newer than the marker, so renewals keep it.
    let back = granted(&b, "alice", "t1", 5).await;
    assert_eq!(
        b.renew(std::slice::from_ref(&back)).await[0]
            .as_ref()
            .unwrap(),
        &Renewal::Renewed
    );
    assert_eq!(a.held(&user("alice")).await.unwrap(), 1);

    // The marker stays for the revocation TTL (twice the lease TTL by default).
    let keys = a.config().keyspace().user_keys(back.user());
    let pttl: i64 = inspect(&redis).await.pttl(keys.revoked()).await.unwrap();
    assert!((59_000..=60_000).contains(&pttl), "{pttl}");
}

#[tokio::test]
async fn release_is_batched_idempotent_and_checks_the_owner() {
    let Some((_redis, [a, b])) = cluster(["a", "b"], SHORT_TTL).await else {
        return;
    };
    let batch = [
        granted(&a, "alice", "t1", 5).await,
        granted(&a, "bob", "t1", 5).await,
        granted(&a, "alice", "t2", 5).await,
    ];
    let kept = granted(&b, "alice", "t3", 5).await;

    let released = a.release(&batch).await.unwrap();
    assert_eq!((released.released, released.not_held), (3, 0));
    assert_eq!(a.held(&user("alice")).await.unwrap(), 1, "b's lease stays");
    assert_eq!(a.held(&user("bob")).await.unwrap(), 0);
    // Releasing again (a retry after a timeout) changes nothing.
    let again = a.release(&batch).await.unwrap();
    assert_eq!((again.released, again.not_held), (0, 3));

    // A lease that expired while its node was cut off, and whose client id was admitted
    // again on another node: the old owner's release must not remove the new lease.
    let stale = granted(&a, "alice", "t4", 5).await;
    tokio::time::sleep(SHORT_TTL + Duration::from_millis(100)).await;
    let renewed = b.renew(std::slice::from_ref(&kept)).await; // b stays alive
    assert_eq!(renewed[0].as_ref().unwrap(), &Renewal::Recreated);
    let fresh = granted(&b, "alice", "t4", 5).await;
    assert_eq!(stale.client(), fresh.client());
    let released = a.release(std::slice::from_ref(&stale)).await.unwrap();
    assert_eq!((released.released, released.not_held), (0, 1));
    assert_eq!(a.held(&user("alice")).await.unwrap(), 2);
    // And its renewal learns that the client id is someone else's now.
    assert_eq!(
        a.renew(&[stale]).await[0].as_ref().unwrap(),
        &Renewal::Taken
    );
}

#[tokio::test]
async fn a_stopped_redis_fails_calls_within_the_response_timeout_then_recovers() {
    let Some((redis, [a])) = cluster(["a"], DEFAULT_TTL).await else {
        return;
    };
    let lease = granted(&a, "alice", "t1", 5).await;
    let limit = a.config().response_timeout() + Duration::from_millis(250);

    redis.pause();
    let start = Instant::now();
    let (error, orphan) = a
        .acquire(&user("alice"), &tab("t2"), 5)
        .await
        .unwrap_err()
        .into_parts();
    assert!(start.elapsed() < limit, "{:?}", start.elapsed());
    assert_eq!(error.kind(), BackplaneErrorKind::Timeout);
    assert!(error.is_unavailable() && error.may_have_applied());
    let rejection = Rejection::from(error.clone());
    assert_eq!(rejection.code(), ErrorCode::BackplaneUnavailable);
    assert_eq!(rejection.http_status(), Some(503));
    assert_eq!(
        rejection.close_code(wsctx::CloseStyle::Detailed),
        CloseCode::TRY_AGAIN_LATER
    );
    assert!(rejection.retry_after().is_some());
    assert!(!error.to_string().contains("alice"));
    let start = Instant::now();
    assert!(a.renew(std::slice::from_ref(&lease)).await[0].is_err());
    assert!(a.ping().await.is_err());
    assert!(start.elapsed() < 2 * limit, "{:?}", start.elapsed());

    redis.resume();
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.ping().await.is_err() {
        assert!(Instant::now() < deadline, "no recovery after SIGCONT");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The timed-out acquisition ran when Redis continued: a phantom lease that would
    // hold a slot (and the client id) for a whole TTL. The error carried it; release it.
    assert_eq!(a.held(&user("alice")).await.unwrap(), 2);
    let orphan = orphan.expect("a timeout may have applied");
    let released = a.release(&[orphan]).await.unwrap();
    assert_eq!((released.released, released.not_held), (1, 0));
    granted(&a, "alice", "t2", 5).await;
}

#[tokio::test]
async fn no_server_is_unavailable_quickly() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let url = redis.url();
    drop(redis); // nothing listens there any more
    let config = ClusterConfig::builder(&url, HashingKey::new(KEY).unwrap())
        .connection_timeout(Duration::from_millis(200))
        .build()
        .unwrap();
    let start = Instant::now();
    let error = Backplane::connect(config).await.unwrap_err();
    assert!(
        start.elapsed() < Duration::from_secs(1),
        "{:?}",
        start.elapsed()
    );
    assert!(error.is_unavailable(), "{error:?}");
    assert_eq!(error.code(), ErrorCode::BackplaneUnavailable);
}

#[tokio::test]
async fn a_full_redis_is_busy_and_a_forbidden_command_is_refused() {
    let Some((redis, [a])) = cluster(["a"], DEFAULT_TTL).await else {
        return;
    };
    let mut admin = inspect(&redis).await;

    // Out of memory: Redis answers, but cannot take writes now.
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "1"])
        .exec_async(&mut admin)
        .await
        .unwrap();
    let failed = a.acquire(&user("alice"), &tab("t1"), 5).await.unwrap_err();
    assert_eq!(
        failed.error().kind(),
        BackplaneErrorKind::Busy,
        "{failed:?}"
    );
    assert!(failed.error().is_unavailable() && !failed.error().may_have_applied());
    assert!(
        failed.orphan().is_none(),
        "redis answered: nothing to release"
    );
    redis::cmd("CONFIG")
        .arg(&["SET", "maxmemory", "0"])
        .exec_async(&mut admin)
        .await
        .unwrap();
    granted(&a, "alice", "t1", 5).await;

    // A user whose ACL does not allow scripts: refused, a server fault, not an outage.
    redis::cmd("ACL")
        .arg(&[
            "SETUSER",
            "limited",
            "on",
            ">limited-pw",
            "~*",
            "+@connection",
        ])
        .exec_async(&mut admin)
        .await
        .unwrap();
    let url = redis
        .url()
        .replace("redis://", "redis://limited:limited-pw@");
    let config = ClusterConfig::builder(&url, HashingKey::new(KEY).unwrap())
        .build()
        .unwrap();
    let limited = Backplane::connect(config).await.unwrap();
    let error = limited
        .acquire(&user("alice"), &tab("t2"), 5)
        .await
        .unwrap_err()
        .into_parts()
        .0;
    assert_eq!(error.kind(), BackplaneErrorKind::Auth, "{error:?}");
    assert!(error.is_refused());
    assert_eq!(Rejection::from(error).code(), ErrorCode::InternalError);
    // A wrong password is refused at connect time.
    let url = redis.url().replace("redis://", "redis://limited:wrong@");
    let config = ClusterConfig::builder(&url, HashingKey::new(KEY).unwrap())
        .build()
        .unwrap();
    let error = Backplane::connect(config).await.unwrap_err();
    assert_eq!(error.kind(), BackplaneErrorKind::Auth, "{error:?}");
}
