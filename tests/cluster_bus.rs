//! The pub/sub bus on a real `redis-server`: several nodes (one `Bus` each, own
//! connections) in one process. Messages reach the other subscribed nodes once and never
//! the publisher; a channel is subscribed exactly while a subscription lives; the
//! subscription comes back after a kill, a restart without data and a silent deafness
//! (a proxy that stops forwarding); garbage on a channel is counted and dropped.

#![cfg(feature = "redis")]
#![allow(clippy::unwrap_used, reason = "a test fails loudly on the unexpected")]

mod redis_support;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use redis_support::{RedisServer, node_config, user};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use wsctx::cluster::{
    Backplane, BackplaneErrorKind, Bus, BusConfig, ClusterConfig, ClusterMessage, Incoming,
};
use wsctx::{CloseCode, CloseFrame, Frame, UserId};

const WAIT: Duration = Duration::from_secs(10);
const PROBE: Duration = Duration::from_millis(100);

struct Node {
    bus: Bus,
    inbox: mpsc::UnboundedReceiver<Incoming>,
}

fn config(url: &str, name: &str) -> ClusterConfig {
    let response = Duration::from_millis(300);
    node_config(url, name, Duration::from_secs(30), response)
}

async fn node_at(url: &str, name: &str) -> Node {
    on(Backplane::connect(config(url, name)).await.unwrap())
}

/// A bus on `backplane` whose deliveries land in the node's inbox.
fn on(backplane: Backplane) -> Node {
    let (sender, inbox) = mpsc::unbounded_channel();
    let bus = Bus::start(
        backplane,
        BusConfig::default().probe_interval(PROBE),
        move |incoming| {
            let _ = sender.send(incoming);
        },
    );
    Node { bus, inbox }
}

async fn node(redis: &RedisServer, name: &str) -> Node {
    node_at(&redis.url(), name).await
}

/// A private Redis and two nodes on it, B subscribed to alice's channel.
async fn alice_on_b(
    redis: Option<RedisServer>,
) -> Option<(
    RedisServer,
    Node,
    Node,
    UserId,
    wsctx::cluster::Subscription,
)> {
    let redis = redis?;
    let (a, b) = (node(&redis, "a").await, node(&redis, "b").await);
    let alice = user("alice");
    let held = b.bus.subscribe(&alice).await.unwrap();
    Some((redis, a, b, alice, held))
}

fn text(message: &str) -> ClusterMessage {
    ClusterMessage::Frame(Frame::text(message))
}

impl Node {
    async fn next(&mut self) -> Incoming {
        tokio::time::timeout(WAIT, self.inbox.recv())
            .await
            .expect("a message in time")
            .expect("the bus lives")
    }

    /// The next message is `message` for `user`.
    async fn expect(&mut self, user: &UserId, message: ClusterMessage) {
        let got = self.next().await;
        assert_eq!((&got.user, &got.message), (user, &message));
    }

    /// Nothing more arrives within a short while.
    async fn quiet(&mut self) {
        tokio::time::sleep(Duration::from_millis(200)).await;
        if let Ok(extra) = self.inbox.try_recv() {
            panic!("an extra message: {:?}", extra.message);
        }
    }
}

/// Publishes until another node receives (after a reconnection the first messages may be
/// lost by design), then returns how many publications it took.
async fn publish_until_received(from: &Node, to: &mut Node, alice: &UserId) -> usize {
    let deadline = Instant::now() + WAIT;
    for attempt in 1.. {
        let _ = from.bus.publish(alice, &text("again?")).await;
        if let Ok(Some(got)) =
            tokio::time::timeout(Duration::from_millis(100), to.inbox.recv()).await
        {
            assert_eq!(got.user, *alice);
            return attempt;
        }
        assert!(
            Instant::now() < deadline,
            "no delivery after {attempt} publications"
        );
    }
    unreachable!()
}

async fn subscribers(redis: &RedisServer, channel: &str) -> usize {
    let mut connection = redis.connection().await;
    let reply: Vec<(String, usize)> = redis::cmd("PUBSUB")
        .arg("NUMSUB")
        .arg(channel)
        .query_async(&mut connection)
        .await
        .unwrap();
    reply[0].1
}

fn channel_of(url: &str, user: &UserId) -> String {
    let config = config(url, "inspector");
    let keyspace = config.keyspace();
    keyspace
        .user_keys(keyspace.user_hash(user))
        .channel()
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn messages_reach_the_other_subscribed_nodes_once_and_never_the_publisher() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let (mut a, mut b, mut c) = (
        node(&redis, "a").await,
        node(&redis, "b").await,
        node(&redis, "c").await,
    );
    let (alice, bob) = (user("alice"), user("bob"));
    let _b_alice = b.bus.subscribe(&alice).await.unwrap();
    let _c_alice = c.bus.subscribe(&alice).await.unwrap();
    let _b_bob = b.bus.subscribe(&bob).await.unwrap();

    assert_eq!(a.bus.publish(&alice, &text("one")).await.unwrap(), 2);
    b.expect(&alice, text("one")).await;
    c.expect(&alice, text("one")).await;

    let ban = ClusterMessage::Disconnect(CloseFrame::new(CloseCode::FORBIDDEN, "banned"));
    assert_eq!(a.bus.publish(&bob, &ban).await.unwrap(), 1);
    b.expect(&bob, ban).await;

    // B holds alice too: its own message comes back to it and is skipped.
    let bytes = ClusterMessage::Frame(Frame::binary(vec![0, 1, 2]));
    assert_eq!(b.bus.publish(&alice, &bytes).await.unwrap(), 1);
    c.expect(&alice, bytes).await;
    for node in [&mut a, &mut b, &mut c] {
        node.quiet().await;
    }
    assert_eq!(b.bus.status().received, 2);
    assert_eq!(c.bus.status().received, 2);
    assert_eq!(a.bus.status().published, 2);

    let close = ClusterMessage::Frame(Frame::Close(CloseFrame::new(CloseCode::NORMAL, "")));
    let refused = a.bus.publish(&alice, &close).await.unwrap_err();
    assert_eq!(refused.kind(), BackplaneErrorKind::Protocol);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_is_subscribed_exactly_while_a_subscription_lives() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let b = node(&redis, "b").await;
    let alice = user("alice");
    let channel = channel_of(&redis.url(), &alice);
    assert_eq!(subscribers(&redis, &channel).await, 0);

    let first = b.bus.subscribe(&alice).await.unwrap();
    // `subscribe` returned: Redis has the subscription already.
    assert_eq!(subscribers(&redis, &channel).await, 1);
    let second = b.bus.subscribe(&alice).await.unwrap();
    assert_eq!(b.bus.status().channels, 1);
    drop(first);
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert_eq!(subscribers(&redis, &channel).await, 1);
    drop(second);
    let deadline = Instant::now() + WAIT;
    while subscribers(&redis, &channel).await != 0 {
        assert!(Instant::now() < deadline, "still subscribed");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(b.bus.status().channels, 0);

    // Drop and subscribe again at once: the queued unsubscribe must not win.
    for _ in 0..20 {
        drop(b.bus.subscribe(&alice).await.unwrap());
        let held = b.bus.subscribe(&alice).await.unwrap();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(subscribers(&redis, &channel).await, 1);
        drop(held);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_subscription_reconnects_and_subscribes_again() {
    let Some((mut redis, a, mut b, alice, _held)) = alice_on_b(RedisServer::start()).await else {
        return;
    };

    let killed = redis.kill_subscribers().await;
    assert_eq!(killed, 2, "one subscription per bus");
    publish_until_received(&a, &mut b, &alice).await;
    assert!(b.bus.status().reconnects >= 1);
    assert!(b.bus.status().subscribed);

    redis.restart_empty();
    publish_until_received(&a, &mut b, &alice).await;
    assert!(b.bus.status().reconnects >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paused_redis_fails_publications_in_time_and_they_work_after() {
    let Some((redis, a, mut b, alice, _held)) = alice_on_b(RedisServer::start()).await else {
        return;
    };

    redis.pause();
    let start = Instant::now();
    let error = a.bus.publish(&alice, &text("lost")).await.unwrap_err();
    assert!(error.is_unavailable(), "{error:?}");
    assert!(start.elapsed() < Duration::from_millis(300) + Duration::from_millis(700));
    assert_eq!(a.bus.status().publish_errors, 1);
    // A new subscription cannot be confirmed either.
    assert!(
        b.bus
            .subscribe(&user("bob"))
            .await
            .unwrap_err()
            .is_unavailable()
    );
    redis.resume();

    publish_until_received(&a, &mut b, &alice).await;
    // The pause was no deafness: Redis did not answer anyone.
    assert_eq!(b.bus.status().deaf, 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_on_a_channel_is_counted_and_dropped() {
    let Some((redis, a, mut b, alice, _held)) = alice_on_b(RedisServer::start()).await else {
        return;
    };
    let mut raw = redis.connection().await;
    for garbage in [
        &b""[..],
        b"\x01",
        b"not an envelope at all",
        &[1, 3, 0xff][..],
    ] {
        let receivers: usize = redis::cmd("PUBLISH")
            .arg(channel_of(&redis.url(), &alice))
            .arg(garbage)
            .query_async(&mut raw)
            .await
            .unwrap();
        assert_eq!(receivers, 1);
    }
    a.bus.publish(&alice, &text("fine")).await.unwrap();
    b.expect(&alice, text("fine")).await;
    assert_eq!(b.bus.status().malformed, 4);
    assert_eq!(b.bus.status().received, 1);
}

/// A TCP proxy that can go silent towards the subscriber connections it carries (those
/// that sent SUBSCRIBE), keeping them open: what a half-dead proxy or a failover that
/// leaves a client on the old server looks like to a subscriber.
struct SilentProxy {
    address: String,
    silence: Arc<AtomicBool>,
}

impl SilentProxy {
    async fn start(upstream: String) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap().to_string();
        let silence = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&silence);
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let server = TcpStream::connect(&upstream).await.unwrap();
                // Only connections opened before `silence()` go silent.
                let silenced = Arc::new(AtomicBool::new(false));
                let armed = Arc::clone(&flag);
                tokio::spawn(carry(client, server, silenced, armed));
            }
        });
        Self { address, silence }
    }

    fn url(&self) -> String {
        format!("redis://{}", self.address)
    }

    fn silence(&self) {
        self.silence.store(true, Ordering::SeqCst);
    }
}

async fn carry(
    client: TcpStream,
    server: TcpStream,
    silenced: Arc<AtomicBool>,
    armed: Arc<AtomicBool>,
) {
    let opened_armed = armed.load(Ordering::SeqCst);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let subscriber = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&subscriber);
    tokio::spawn(async move {
        let mut buffer = vec![0u8; 16 * 1024];
        while let Ok(n @ 1..) = client_read.read(&mut buffer).await {
            if buffer[..n]
                .windows(9)
                .any(|w| w.eq_ignore_ascii_case(b"SUBSCRIBE"))
            {
                seen.store(true, Ordering::SeqCst);
            }
            if server_write.write_all(&buffer[..n]).await.is_err() {
                break;
            }
        }
    });
    let mut buffer = vec![0u8; 16 * 1024];
    while let Ok(n @ 1..) = server_read.read(&mut buffer).await {
        if !opened_armed && armed.load(Ordering::SeqCst) && subscriber.load(Ordering::SeqCst) {
            silenced.store(true, Ordering::SeqCst);
        }
        if silenced.load(Ordering::SeqCst) {
            continue; // swallowed: the connection stays open and says nothing
        }
        if client_write.write_all(&buffer[..n]).await.is_err() {
            break;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deaf_subscription_is_found_by_its_probe_and_reconnected() {
    let Some(redis) = RedisServer::start() else {
        return;
    };
    let proxy = SilentProxy::start(redis.url().trim_start_matches("redis://").to_owned()).await;
    let a = node(&redis, "a").await;
    let mut b = node_at(&proxy.url(), "b").await;
    let alice = user("alice");
    let _held = b.bus.subscribe(&alice).await.unwrap();
    a.bus.publish(&alice, &text("before")).await.unwrap();
    b.expect(&alice, text("before")).await;

    proxy.silence();
    // Redis still counts B's old subscription, so the publication "reaches" it.
    assert_eq!(
        a.bus.publish(&alice, &text("into the void")).await.unwrap(),
        1
    );
    let publications = publish_until_received(&a, &mut b, &alice).await;
    assert!(publications > 1, "the silenced connection delivered");
    assert_eq!(b.bus.status().deaf, 1);
    assert!(b.bus.status().reconnects >= 1);
}

/// The same delivery on a Redis Cluster of three masters, over sharded pub/sub: users'
/// channels spread over the shards, each message reaches each other subscribed node once.
#[cfg(feature = "redis-cluster")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sharded_channels_on_a_redis_cluster_deliver_once_to_each_other_node() {
    use redis_support::RedisCluster;

    let Some(cluster) = RedisCluster::start(3) else {
        return;
    };
    let urls = cluster.urls();
    let cluster_node = |name: &'static str| {
        let urls = urls.clone();
        async move {
            let config = ClusterConfig::cluster_builder(
                urls.iter().map(String::as_str),
                wsctx::cluster::HashingKey::new(redis_support::HASHING_KEY).unwrap(),
            )
            .node_id(wsctx::cluster::NodeId::try_new(name).unwrap())
            .build()
            .unwrap();
            on(Backplane::connect(config).await.unwrap())
        }
    };
    let (mut a, mut b, mut c) = (
        cluster_node("a").await,
        cluster_node("b").await,
        cluster_node("c").await,
    );
    let users: Vec<UserId> = (0..12).map(|i| user(&format!("user-{i}"))).collect();
    let mut held = Vec::new();
    for id in &users {
        held.push(b.bus.subscribe(id).await.unwrap());
        held.push(c.bus.subscribe(id).await.unwrap());
    }
    for (i, id) in users.iter().enumerate() {
        let message = text(&format!("to {i}"));
        assert_eq!(a.bus.publish(id, &message).await.unwrap(), 2);
        b.expect(id, message.clone()).await;
        c.expect(id, message).await;
    }
    for node in [&mut a, &mut b, &mut c] {
        node.quiet().await;
    }
    // The probes of every node come back over the shards too.
    tokio::time::sleep(PROBE * 3).await;
    for node in [&a, &b, &c] {
        let status = node.bus.status();
        assert!(
            status.subscribed && status.probe_lag.is_some(),
            "{status:?}"
        );
        assert_eq!(status.deaf, 0);
    }
}
