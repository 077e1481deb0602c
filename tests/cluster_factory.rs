//! `ClusterFactory` on a real `redis-server`: three nodes in one process (each its own
//! `ManagerFactory`, `Backplane` and background tasks) on one Redis, sub-second lease
//! TTLs on Redis's clock. Per-user limits and duplicate client ids across nodes, release
//! on drop, a crashed node's slots, disconnects reaching other nodes through the
//! revocation marker, a taken lease, a paused Redis, and a Redis that lost its data.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

mod redis_support;

use std::time::{Duration, Instant};

use redis_support::{RedisServer, ban, bound, node_config, tab, user};
use wsctx::cluster::{
    AdmitError, Backplane, BackplaneErrorKind, ClusterFactory, ClusterManager, RemoteDelivery,
    WhenUnavailable,
};
use wsctx::{
    CloseCode, CloseFrame, ErrorCode, FactoryError, Frame, Limits, ManagerFactory, Outbound,
    Rejection, ResumePoint, TryRecvError,
};

/// Lease TTL, renew interval (a third of it) and response timeout of most tests.
const TTL: Duration = Duration::from_millis(900);
const RENEW: Duration = Duration::from_millis(300);
const RESPONSE: Duration = Duration::from_millis(300);

/// A node allowing `per_user` sockets per user across the cluster, with leases living
/// `ttl`.
async fn node_with(
    redis: &RedisServer,
    name: &str,
    per_user: usize,
    ttl: Duration,
) -> ClusterFactory {
    let config = node_config(&redis.url(), name, ttl, RESPONSE.min(ttl / 3));
    let local = ManagerFactory::new(Limits {
        per_user,
        ..Limits::default()
    });
    ClusterFactory::start(local, Backplane::connect(config).await.unwrap())
}

async fn node(redis: &RedisServer, name: &str, per_user: usize) -> ClusterFactory {
    node_with(redis, name, per_user, TTL).await
}

/// A private Redis and three nodes on it (`None` only when skipping was asked for).
async fn cluster(per_user: usize) -> Option<(RedisServer, [ClusterFactory; 3])> {
    let redis = RedisServer::start()?;
    let nodes = [
        node(&redis, "a", per_user).await,
        node(&redis, "b", per_user).await,
        node(&redis, "c", per_user).await,
    ];
    Some((redis, nodes))
}

async fn admit(node: &ClusterFactory, user_id: &str, client: &str) -> (ClusterManager, Outbound) {
    node.admit(bound(user_id, client)).await.unwrap()
}

async fn refused(node: &ClusterFactory, user_id: &str, client: &str) -> AdmitError {
    node.admit(bound(user_id, client)).await.unwrap_err()
}

/// Polls `held` until it is `expected`, for at most `within`; returns how long it took.
async fn held_becomes(
    node: &ClusterFactory,
    user_id: &str,
    expected: u64,
    within: Duration,
) -> Duration {
    let start = Instant::now();
    loop {
        let held = node.held(&user(user_id)).await;
        if held.as_ref().is_ok_and(|&held| held == expected) {
            return start.elapsed();
        }
        assert!(
            start.elapsed() < within,
            "held is {held:?}, not {expected}, after {within:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The next frame, within `within`.
async fn next_frame(outbound: &mut Outbound, within: Duration) -> Frame {
    tokio::time::timeout(within, outbound.recv())
        .await
        .expect("a frame in time")
        .expect("a frame, not the end")
}

#[tokio::test]
async fn the_per_user_limit_counts_every_node() {
    let Some((_redis, [a, b, c])) = cluster(3).await else {
        return;
    };
    let _tabs = [
        admit(&a, "alice", "t1").await,
        admit(&b, "alice", "t2").await,
        admit(&c, "alice", "t3").await,
    ];
    // Each node holds one tab: only the leases know the user is at 3.
    for node in [&a, &b, &c] {
        let error = refused(node, "alice", "t4").await;
        assert!(matches!(error, AdmitError::ConnectionLimit), "{error:?}");
        let rejection = Rejection::from(error);
        assert_eq!(rejection.code(), ErrorCode::ConnectionLimit);
        assert_eq!(rejection.http_status(), Some(429));
        // The refused socket's local slot is gone again.
        assert_eq!(node.local().connections(&user("alice")), 1);
        assert_eq!(node.local().metrics().active, 1);
        assert_eq!(node.leases(), 1);
    }
    assert_eq!(a.held(&user("alice")).await.unwrap(), 3);
    // Another user is not counted with alice.
    let _bob = admit(&b, "bob", "t1").await;
    assert_eq!(a.held(&user("bob")).await.unwrap(), 1);
}

#[tokio::test]
async fn a_client_id_live_on_another_node_is_a_duplicate() {
    let Some((_redis, [a, b, _c])) = cluster(5).await else {
        return;
    };
    let (_tab, _out) = admit(&a, "alice", "tab-1").await;
    let error = refused(&b, "alice", "tab-1").await;
    assert!(matches!(error, AdmitError::DuplicateClient), "{error:?}");
    assert_eq!(Rejection::from(error).http_status(), Some(409));
    assert_eq!(b.local().connections(&user("alice")), 0);
    // On the node that holds it, the local check answers first, the same way.
    let local = refused(&a, "alice", "tab-1").await;
    assert_eq!(local.code(), ErrorCode::DuplicateClient);
    // Another user may use the same client id.
    let _bob = admit(&b, "bob", "tab-1").await;
    assert_eq!(a.held(&user("alice")).await.unwrap(), 1);
}

#[tokio::test]
async fn dropping_a_manager_frees_its_slot_on_every_node_exactly_once() {
    let Some((_redis, [a, b, c])) = cluster(2).await else {
        return;
    };
    let (t1, _out1) = admit(&a, "alice", "t1").await;
    let (_t2, _out2) = admit(&b, "alice", "t2").await;
    assert_eq!(
        refused(&c, "alice", "t3").await.code(),
        ErrorCode::ConnectionLimit
    );

    drop(t1);
    assert_eq!(a.leases(), 0);
    // Released by the releaser, well before the lease would expire.
    let took = held_becomes(&a, "alice", 1, TTL).await;
    assert!(took < TTL / 2, "released after {took:?}");
    let (t3, _out3) = admit(&c, "alice", "t3").await;
    drop(t3);
    held_becomes(&a, "alice", 1, TTL).await;
    // The first client id again, on another node: a fresh lease that the old owner's
    // release (or a renewal racing with it) can never remove.
    let (_t1_again, _out) = admit(&b, "alice", "t1").await;
    tokio::time::sleep(RENEW * 3).await;
    assert_eq!(a.held(&user("alice")).await.unwrap(), 2);
    assert_eq!(
        refused(&c, "alice", "t4").await.code(),
        ErrorCode::ConnectionLimit
    );
}

#[tokio::test]
async fn drops_racing_with_renewals_leave_no_lease_behind() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Two nodes renew every 50 ms while their tabs come and go; the third node's leases
    // live 3 s. Every lease must be gone within a second of the last drop: one
    // never released, or re-created by a renewal after its release, would still be
    // counted. (Whether a renewal and a release meet in between is up to the scheduler.)
    let ttl = Duration::from_millis(150);
    let nodes = [
        node_with(&redis, "a", 200, ttl).await,
        node_with(&redis, "b", 200, ttl).await,
    ];
    let long = node_with(&redis, "c", 200, Duration::from_secs(3)).await;
    for round in 0..40_u64 {
        let node = &nodes[usize::from(round % 2 == 1)];
        let tabs = [
            admit(node, "alice", &format!("{round}-1")).await,
            admit(&long, "alice", &format!("{round}-2")).await,
            admit(node, "alice", &format!("{round}-3")).await,
        ];
        tokio::time::sleep(Duration::from_millis(7 * (round % 5))).await;
        drop(tabs);
    }
    held_becomes(&long, "alice", 0, Duration::from_secs(1)).await;
    for node in nodes.iter().chain([&long]) {
        assert_eq!(node.leases(), 0);
    }
}

#[tokio::test]
async fn a_crashed_nodes_slots_free_after_the_lease_ttl() {
    let Some((_redis, [a, _b, c])) = cluster(2).await else {
        return;
    };
    let tabs = [
        admit(&c, "alice", "t1").await,
        admit(&c, "alice", "t2").await,
    ];
    // The node dies: its tasks stop (the last handle is dropped) and no manager is
    // ever dropped.
    std::mem::forget(tabs);
    drop(c);
    let crashed = Instant::now();
    assert_eq!(
        refused(&a, "alice", "t3").await.code(),
        ErrorCode::ConnectionLimit
    );
    // Nobody releases them: they expire one TTL after their last renewal.
    let start = Instant::now();
    let admitted = loop {
        match a.admit(bound("alice", "t3")).await {
            Ok(admitted) => break admitted,
            Err(AdmitError::ConnectionLimit) => {
                assert!(
                    start.elapsed() < TTL * 3,
                    "the crashed node's leases never expired"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(other) => panic!("{other:?}"),
        }
    };
    let freed_after = crashed.elapsed();
    assert!(
        // At least TTL - RENEW after the last renewal; a third of the TTL leaves room
        // for a renewer that ran late on a busy machine.
        freed_after >= TTL / 3,
        "freed after {freed_after:?}"
    );
    // The other crashed lease expires too (it was granted a little later).
    held_becomes(&a, "alice", 1, TTL).await;
    drop(admitted);
}

#[tokio::test]
async fn a_disconnect_on_one_node_closes_the_users_tabs_on_the_others() {
    let Some((_redis, [a, b, c])) = cluster(5).await else {
        return;
    };
    let (_a1, mut a1) = admit(&a, "alice", "t1").await;
    let (_b2, mut b2) = admit(&b, "alice", "t2").await;
    let (_c3, mut c3) = admit(&c, "alice", "t3").await;
    let (_bob, mut bob) = admit(&b, "bob", "t1").await;

    let banned = CloseFrame::new(CloseCode::FORBIDDEN, "banned");
    let start = Instant::now();
    let done = ban(&a, "alice").await;
    assert_eq!(done.local, 1);
    assert_eq!(done.remote.unwrap(), 3);
    assert_eq!(a1.try_recv().unwrap(), Frame::Close(banned.clone()));
    // No message crosses nodes: the other nodes learn it at their next renewal.
    for outbound in [&mut b2, &mut c3] {
        let frame = next_frame(outbound, RENEW + RESPONSE + Duration::from_millis(200)).await;
        assert_eq!(frame, Frame::Close(banned.clone()));
    }
    assert!(start.elapsed() <= RENEW + RESPONSE + Duration::from_millis(200));
    // Bob is untouched, and alice may come back at once.
    assert_eq!(bob.try_recv(), Err(TryRecvError::Empty));
    assert!(!bob.is_closing());
    let (_back, mut back) = admit(&c, "alice", "t4").await;
    tokio::time::sleep(RENEW * 2).await;
    assert!(
        !back.is_closing(),
        "a socket admitted after the disconnect stays open"
    );
    assert_eq!(back.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(a.held(&user("alice")).await.unwrap(), 1);
}

#[tokio::test]
async fn a_socket_whose_lease_was_taken_is_closed_as_a_duplicate() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let a = node(&redis, "a", 5).await;
    let (_tab, mut outbound) = admit(&a, "alice", "t1").await;
    // Another admission now owns the client id (as after this node lost the lease for a
    // while and the client was admitted elsewhere).
    let keyspace = a.backplane().config().keyspace();
    let alice = keyspace.user_hash(&user("alice"));
    let owners = keyspace.user_keys(alice).owners().to_owned();
    let client = keyspace.client_hash(alice, &tab("t1")).to_string();
    let mut conn = redis
        .client()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let _: () = redis::cmd("HSET")
        .arg(&owners)
        .arg(&client)
        .arg("1 elsewhere:0000000000000000:0")
        .query_async(&mut conn)
        .await
        .unwrap();
    let frame = next_frame(&mut outbound, RENEW + RESPONSE + Duration::from_millis(200)).await;
    assert!(
        matches!(&frame, Frame::Close(close) if close.code == CloseCode::CONFLICT),
        "{frame:?}"
    );
}

#[tokio::test]
async fn a_paused_redis_refuses_admissions_in_time_and_releases_follow_when_it_is_back() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Leases live long enough that only a release, not an expiry, brings the count down.
    let ttl = Duration::from_millis(4500);
    let a = node_with(&redis, "a", 5, ttl).await;
    let b = node_with(&redis, "b", 5, ttl).await;
    let (_t1, mut t1) = admit(&a, "alice", "t1").await;
    let (t2, _out2) = admit(&a, "alice", "t2").await;
    let (_t3, _out3) = admit(&b, "alice", "t3").await;

    redis.pause();
    let paused = Instant::now();
    drop(t2); // its release must wait for Redis
    let start = Instant::now();
    let error = refused(&a, "alice", "t4").await;
    let took = start.elapsed();
    assert!(
        took < RESPONSE + Duration::from_millis(400),
        "refused after {took:?}"
    );
    assert_eq!(error.code(), ErrorCode::BackplaneUnavailable);
    let rejection = Rejection::from(error);
    assert_eq!(rejection.http_status(), Some(503));
    assert!(rejection.retry_after().is_some());
    assert_eq!(
        a.local().connections(&user("alice")),
        1,
        "the refused socket is gone"
    );
    // Local delivery goes on.
    let sent = a
        .send_to_user(&user("alice"), Frame::text("still here"))
        .await;
    assert_eq!(sent.local.delivered, 1);
    assert!(
        matches!(sent.remote, RemoteDelivery::Failed(kind) if kind == BackplaneErrorKind::Timeout)
    );
    assert_eq!(t1.try_recv().unwrap(), Frame::text("still here"));
    tokio::time::sleep(Duration::from_millis(700)).await;
    redis.resume();

    // Admissions work again, and the release made while Redis was stopped (and the
    // lease the timed-out admission may have left) are gone: t1, t3 and t5 remain,
    // long before any lease could have expired.
    let start = Instant::now();
    let _t5 = loop {
        match a.admit(bound("alice", "t5")).await {
            Ok(admitted) => break admitted,
            Err(error) => {
                assert_eq!(error.code(), ErrorCode::BackplaneUnavailable);
                assert!(
                    start.elapsed() < Duration::from_secs(2),
                    "no admission after resume"
                );
            }
        }
    };
    held_becomes(&a, "alice", 3, Duration::from_secs(1)).await;
    assert!(
        paused.elapsed() < ttl * 2 / 3,
        "too slow to tell a release from an expiry"
    );
    assert!(!t1.is_closing());
}

#[tokio::test]
async fn sockets_stay_open_while_redis_is_away_and_their_leases_come_back() {
    let Some((redis, [a, b, _c])) = cluster(2).await else {
        return;
    };
    let (_t1, mut t1) = admit(&a, "alice", "t1").await;
    let (_t2, t2) = admit(&b, "alice", "t2").await;
    redis.pause();
    // Longer than a lease lives: every renewal in between fails.
    tokio::time::sleep(TTL + RENEW).await;
    assert!(!t1.is_closing() && !t2.is_closing());
    assert_eq!(
        a.send_to_user(&user("alice"), Frame::text("hi"))
            .await
            .local
            .delivered,
        1
    );
    assert_eq!(t1.try_recv().unwrap(), Frame::text("hi"));
    redis.resume();
    // Redis's clock moved on: the leases expired, and the next renewals re-create them,
    // so the limit holds again.
    tokio::time::sleep(RENEW * 3).await;
    held_becomes(&a, "alice", 2, Duration::from_secs(2)).await;
    assert_eq!(
        refused(&b, "alice", "t3").await.code(),
        ErrorCode::ConnectionLimit
    );
}

#[tokio::test]
async fn renewals_rebuild_the_leases_after_redis_lost_its_data() {
    let Some((mut redis, [a, b, c])) = cluster(3).await else {
        return;
    };
    let _alice = [
        admit(&a, "alice", "t1").await,
        admit(&a, "alice", "t2").await,
        admit(&b, "alice", "t3").await,
    ];
    let _bob = admit(&c, "bob", "t1").await;
    redis.restart_empty();
    // Back to the number of live tabs (the nodes reconnect within a second or so).
    held_becomes(&c, "alice", 3, Duration::from_secs(5)).await;
    held_becomes(&c, "bob", 1, Duration::from_secs(1)).await;
    assert_eq!(
        refused(&c, "alice", "t4").await.code(),
        ErrorCode::ConnectionLimit
    );
    assert_eq!(
        refused(&c, "alice", "t1").await.code(),
        ErrorCode::DuplicateClient
    );
}

#[tokio::test]
async fn a_resuming_admission_holds_a_lease_and_a_point_the_stream_never_gave_is_a_gap() {
    let Some((_redis, [a, b, _c])) = cluster(2).await else {
        return;
    };
    let (_t1, _out1) = admit(&b, "alice", "t1").await;
    // A point of an epoch the user's stream never had: the tab must reload.
    let point: ResumePoint = "0123456789abcdef.1".parse().unwrap();
    let (_t2, mut t2) = a.admit_resuming(bound("alice", "t2"), point).await.unwrap();
    assert_eq!(
        t2.try_recv().unwrap(),
        Frame::text(r#"{"type":"resume_gap"}"#)
    );
    assert_eq!(a.held(&user("alice")).await.unwrap(), 2);
    let error = a
        .admit_resuming(bound("alice", "t3"), point)
        .await
        .unwrap_err();
    assert_eq!(error.code(), ErrorCode::ConnectionLimit);
    assert_eq!(a.local().connections(&user("alice")), 1);
}

#[tokio::test]
async fn an_admission_given_up_while_redis_decides_leaves_no_lease() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    // Leases that outlive the test: only a release can bring the count back to 0.
    let a = node_with(&redis, "a", 5, Duration::from_secs(6)).await;
    redis.pause();
    // The caller gives up (a handshake timeout, a closed connection) before Redis,
    // stopped, could answer; Redis then grants the lease it had received.
    let gave_up = tokio::time::timeout(Duration::from_millis(100), a.admit(bound("alice", "t1")));
    assert!(gave_up.await.is_err());
    assert_eq!(a.local().connections(&user("alice")), 0);
    redis.resume();
    // Asked on the same connection, so after the acquisition ran.
    held_becomes(&a, "alice", 0, Duration::from_secs(1)).await;
    tokio::time::sleep(RENEW).await;
    assert_eq!(a.held(&user("alice")).await.unwrap(), 0);
    assert_eq!(a.leases(), 0);
}

#[tokio::test]
async fn a_draining_node_refuses_new_sockets_and_still_releases_its_old_ones() {
    let Some((_redis, [a, b, _c])) = cluster(2).await else {
        return;
    };
    let (t1, mut out1) = admit(&a, "alice", "t1").await;
    let (_t2, _out2) = admit(&b, "alice", "t2").await;
    a.shutdown();
    let frame = out1.try_recv().unwrap();
    assert!(
        matches!(&frame, Frame::Close(close) if close.code == CloseCode::SERVICE_RESTART),
        "{frame:?}"
    );
    let error = refused(&a, "alice", "t3").await;
    assert!(
        matches!(error, AdmitError::Local(FactoryError::ShuttingDown)),
        "{error:?}"
    );
    assert_eq!(b.held(&user("alice")).await.unwrap(), 2);
    // The socket ends after the drain began: its lease is released at once, not left
    // to expire.
    drop(t1);
    let took = held_becomes(&b, "alice", 1, TTL).await;
    assert!(took < TTL / 2, "released after {took:?}");
    let _t3 = admit(&b, "alice", "t3").await;
}

/// With `WhenUnavailable::AdmitLocally`, a node admits on its own limits while Redis is
/// stopped; once Redis is back the first renewal creates the lease, and the socket hears
/// the other nodes. The default node refuses meanwhile.
#[tokio::test]
async fn the_admit_locally_policy_admits_while_redis_is_away_and_counts_the_socket_after() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let config = node_config(&redis.url(), "lenient", TTL, RESPONSE);
    let local = ManagerFactory::new(Limits {
        per_user: 2,
        ..Limits::default()
    });
    let lenient = ClusterFactory::builder(local, Backplane::connect(config).await.unwrap())
        .when_unavailable(WhenUnavailable::AdmitLocally)
        .start();
    let strict = node(&redis, "strict", 2).await;
    redis.pause();
    let error = refused(&strict, "alice", "t0").await;
    assert_eq!(error.code(), ErrorCode::BackplaneUnavailable);
    let start = Instant::now();
    let (_t1, mut t1) = admit(&lenient, "alice", "t1").await;
    assert!(
        start.elapsed() < RESPONSE * 3,
        "admitted after {:?}",
        start.elapsed()
    );
    // This node's own limit still holds.
    let (_t2, _o2) = admit(&lenient, "alice", "t2").await;
    assert_eq!(
        refused(&lenient, "alice", "t3").await.code(),
        ErrorCode::ConnectionLimit
    );
    redis.resume();
    // The renewals create both leases; the strict node counts them.
    held_becomes(&strict, "alice", 2, TTL * 3).await;
    assert_eq!(
        refused(&strict, "alice", "t4").await.code(),
        ErrorCode::ConnectionLimit
    );
    // The socket hears the other nodes once the bus has subscribed again.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let sent = strict
            .send_to_user(&user("alice"), Frame::text("hello"))
            .await;
        if sent.remote == (RemoteDelivery::Published { nodes: 1 }) {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the lenient node never subscribed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        next_frame(&mut t1, Duration::from_secs(2)).await,
        Frame::text("hello")
    );
}
