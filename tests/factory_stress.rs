//! A seeded concurrency stress test: thousands of admissions, sends, reads, closes and
//! drops across dozens of users, interleaved on a multi-thread runtime. At the end
//! every slot is freed exactly once, the books balance frame by frame, and no frame
//! ever reached a socket of another user.
//!
//! Set `WSCTX_STRESS_SEED` to replay one seed.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use wsctx::state::Bound;
use wsctx::{
    CloseCode, CloseFrame, Context, ErrorCode, FactoryError, Frame, IsolatedManager, Limits,
    ManagerFactory, Outbound, TryRecvError, UserId,
};

const USERS: usize = 24;
const TASKS: usize = 48;
const OPS_PER_TASK: usize = 600;
const TABS: usize = 6;

/// `SplitMix64`: a tiny seeded generator, so every run of one seed draws the same
/// numbers (the interleaving itself is up to the scheduler).
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: usize) -> usize {
        usize::try_from(self.next() % n as u64).unwrap()
    }
}

fn user_name(user: usize) -> String {
    format!("user-{user:02}")
}

fn bound(user: usize, tab: usize) -> Context<Bound> {
    support::contexts::bound(&user_name(user), &format!("tab-{tab}"))
}

/// What the test itself counted; compared with the factory's metrics at the end.
#[derive(Default)]
struct Tally {
    admitted: AtomicU64,
    rejected: [AtomicU64; 4],
    delivered: AtomicU64,
    dropped: AtomicU64,
    received: AtomicU64,
}

impl Tally {
    fn count(counter: &AtomicU64, n: usize) {
        counter.fetch_add(n as u64, Ordering::Relaxed);
    }
}

struct Held {
    user: usize,
    manager: IsolatedManager,
    outbound: Outbound,
    closed: bool,
}

/// Checks one frame received by a socket of `user`: data frames must carry `user`.
fn check(frame: &Frame, user: usize, seed: u64) {
    match frame {
        Frame::Text(text) => {
            let owner = text.split(':').next().unwrap();
            assert_eq!(
                owner,
                user_name(user),
                "seed {seed}: text frame reached another user's socket"
            );
        }
        Frame::Binary(bytes) => {
            assert_eq!(
                usize::from(bytes[0]),
                user,
                "seed {seed}: binary frame reached another user's socket"
            );
        }
        Frame::Close(..) => {}
    }
}

/// Reads what is ready now. Returns true once the close frame has been read.
fn drain_ready(held: &mut Held, tally: &Tally, seed: u64) {
    loop {
        match held.outbound.try_recv() {
            Ok(frame) => {
                check(&frame, held.user, seed);
                if frame.is_close() {
                    held.closed = true;
                } else {
                    Tally::count(&tally.received, 1);
                }
            }
            Err(TryRecvError::Empty | TryRecvError::Closed) => return,
            Err(other) => panic!("seed {seed}: {other:?}"),
        }
    }
}

/// Drops the manager, then reads the outbound to its end: it must finish with exactly
/// one close frame.
async fn finish(mut held: Held, tally: &Tally, seed: u64) {
    drop(held.manager);
    let mut closes = usize::from(held.closed);
    while let Some(frame) = held.outbound.recv().await {
        check(&frame, held.user, seed);
        if frame.is_close() {
            closes += 1;
        } else {
            Tally::count(&tally.received, 1);
        }
    }
    assert_eq!(
        closes, 1,
        "seed {seed}: a socket must be closed exactly once"
    );
}

async fn worker(factory: ManagerFactory, tally: Arc<Tally>, seed: u64, task: usize) {
    let mut rng = Rng(seed ^ (task as u64).wrapping_mul(0xa076_1d64_78bd_642f));
    let mut held: Vec<Held> = Vec::new();
    for op in 0..OPS_PER_TASK {
        match rng.below(100) {
            0..25 => {
                let user = rng.below(USERS);
                match factory.create(bound(user, rng.below(TABS))) {
                    Ok((manager, outbound)) => {
                        Tally::count(&tally.admitted, 1);
                        held.push(Held {
                            user,
                            manager,
                            outbound,
                            closed: false,
                        });
                    }
                    Err(error) => {
                        let index = match error {
                            FactoryError::ConnectionLimit => 0,
                            FactoryError::Overloaded => 1,
                            FactoryError::DuplicateClient => 2,
                            FactoryError::ShuttingDown => 3,
                            other => panic!("seed {seed}: {other:?}"),
                        };
                        Tally::count(&tally.rejected[index], 1);
                    }
                }
            }
            25..60 if !held.is_empty() => {
                let h = &held[rng.below(held.len())];
                let frame = if rng.below(4) == 0 {
                    Frame::binary(vec![u8::try_from(h.user).unwrap(), 1, 2, 3])
                } else {
                    Frame::text(format!("{}:{task}:{op}", user_name(h.user)))
                };
                let delivery = h.manager.send_to_user(frame);
                Tally::count(&tally.delivered, delivery.delivered);
                Tally::count(&tally.dropped, delivery.dropped);
            }
            60..82 if !held.is_empty() => {
                let index = rng.below(held.len());
                drain_ready(&mut held[index], &tally, seed);
            }
            82..84 => {
                // Another part of the server kicks a random user.
                let user = UserId::try_new(user_name(rng.below(USERS))).unwrap();
                factory.disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, "kicked"));
                // The limits hold at every moment, not only at the end.
                assert!(
                    factory.connections(&user) <= factory.limits().per_user,
                    "seed {seed}"
                );
                assert!(
                    factory.metrics().active <= factory.limits().global as u64,
                    "seed {seed}"
                );
            }
            84..85 if !held.is_empty() => {
                let h = &held[rng.below(held.len())];
                h.manager.record_activity();
                h.manager.close(&CloseFrame::new(CloseCode::NORMAL, "bye"));
            }
            _ if !held.is_empty() => {
                let h = held.swap_remove(rng.below(held.len()));
                finish(h, &tally, seed).await;
            }
            _ => {}
        }
        if rng.below(3) == 0 {
            tokio::task::yield_now().await;
        }
    }
    for h in held {
        finish(h, &tally, seed).await;
    }
}

async fn run(seed: u64) {
    let factory = ManagerFactory::new(Limits {
        per_user: 4,
        global: 80,
        outbound_queue: 8,
        idle_timeout: Duration::from_secs(3600),
        ..Limits::default()
    });
    let tally = Arc::new(Tally::default());
    let workers: Vec<_> = (0..TASKS)
        .map(|task| tokio::spawn(worker(factory.clone(), Arc::clone(&tally), seed, task)))
        .collect();
    for w in workers {
        w.await.unwrap();
    }

    let m = factory.metrics();
    let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
    // Every slot freed exactly once, and nothing left in the registry.
    assert_eq!(m.active, 0, "seed {seed}");
    assert_eq!(m.admitted, m.freed, "seed {seed}");
    assert_eq!(m.admitted, get(&tally.admitted), "seed {seed}");
    for user in 0..USERS {
        assert_eq!(
            factory.connections(&UserId::try_new(user_name(user)).unwrap()),
            0,
            "seed {seed}"
        );
    }
    // Refusals, per code.
    assert_eq!(
        m.rejected(ErrorCode::ConnectionLimit),
        get(&tally.rejected[0]),
        "seed {seed}"
    );
    assert_eq!(
        m.rejected(ErrorCode::Overloaded),
        get(&tally.rejected[1]),
        "seed {seed}"
    );
    assert_eq!(
        m.rejected(ErrorCode::DuplicateClient),
        get(&tally.rejected[2]),
        "seed {seed}"
    );
    assert_eq!(get(&tally.rejected[3]), 0, "seed {seed}");
    // Frame books: every queued frame was either read or discarded at a close.
    assert_eq!(m.messages_delivered, get(&tally.delivered), "seed {seed}");
    assert_eq!(m.messages_dropped, get(&tally.dropped), "seed {seed}");
    assert_eq!(
        m.messages_delivered,
        get(&tally.received) + m.messages_discarded,
        "seed {seed}"
    );
    // The run exercised what it claims to.
    assert!(m.admitted > 1_000, "seed {seed}: {m:?}");
    assert!(m.messages_delivered > 1_000, "seed {seed}: {m:?}");
    assert!(
        m.rejected_total() > 0 && m.disconnected > 0,
        "seed {seed}: {m:?}"
    );
    if std::env::var_os("WSCTX_STRESS_VERBOSE").is_some() {
        #[allow(clippy::print_stderr, reason = "opt-in report")]
        {
            eprintln!("seed {seed}: {m:?}");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn interleaved_admissions_sends_and_drops_keep_users_isolated_and_slots_balanced() {
    let seeds: Vec<u64> = match std::env::var("WSCTX_STRESS_SEED") {
        Ok(seed) => vec![seed.parse().unwrap()],
        Err(_) => vec![1, 2, 3],
    };
    let started = Instant::now();
    for seed in seeds {
        run(seed).await;
    }
    assert!(
        started.elapsed() < Duration::from_secs(30),
        "took {:?}",
        started.elapsed()
    );
}
