//! The replay ring, on a fake clock: unit tests of each rule, and property tests
//! against a naive model that keeps every event ever pushed.

use std::sync::Arc;
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, FileFailurePersistence};
use tokio::time::Instant;

use super::*;

const SECOND: Duration = Duration::from_secs(1);

fn limits(events: usize, window: Duration, per_user: usize, total: usize) -> ReplayLimits {
    ReplayLimits {
        events_per_user: events,
        window,
        bytes_per_user: per_user,
        bytes_total: total,
    }
}

fn ring(limits: ReplayLimits) -> ReplayRing {
    ReplayRing::new(Arc::new(ReplayPool::unreported(limits)), 0xfeed)
}

/// A frame that names its position, padded to `len` bytes (at least the name).
fn frame(epoch: u64, seq: u64, len: usize) -> Arc<str> {
    let name = format!("{epoch:x}.{seq}:");
    let pad = len.saturating_sub(name.len());
    Arc::from(format!("{name}{}", "x".repeat(pad)))
}

/// Pushes a frame of `len` bytes at `at`.
fn push(ring: &mut ReplayRing, at: Instant, len: usize) -> Pushed {
    ring.push_with(at, |epoch, seq| frame(epoch, seq, len))
}

/// The sequence numbers named by the frames of a replay.
fn seqs(replay: &Replay) -> Option<Vec<u64>> {
    match replay {
        Replay::Missed(frames) => Some(
            frames
                .iter()
                .map(|f| f.split([':', '.']).nth(1).unwrap().parse().unwrap())
                .collect(),
        ),
        Replay::Gap => None,
    }
}

fn at(ring: &ReplayRing, seq: u64) -> ResumePoint {
    ResumePoint::new(ring.epoch(), seq)
}

#[test]
fn numbers_from_one_and_returns_exactly_what_was_missed() {
    let t0 = Instant::now();
    let mut ring = ring(ReplayLimits::DEFAULT);
    assert_eq!(ring.position(), ResumePoint::new(0xfeed, 0));
    assert_eq!(seqs(&ring.since(at(&ring, 0), t0)), Some(vec![]));
    for expected in 1..=5 {
        let pushed = push(&mut ring, t0, 10);
        assert_eq!((pushed.seq, pushed.stored), (expected, true));
        assert_eq!(&*pushed.frame, &*frame(0xfeed, expected, 10));
    }
    assert_eq!(ring.position(), ResumePoint::new(0xfeed, 5));
    assert_eq!(
        seqs(&ring.since(at(&ring, 0), t0)),
        Some(vec![1, 2, 3, 4, 5])
    );
    assert_eq!(seqs(&ring.since(at(&ring, 3), t0)), Some(vec![4, 5]));
    assert_eq!(seqs(&ring.since(at(&ring, 5), t0)), Some(vec![]));
    // A position this ring never reached, or another epoch: a gap.
    assert_eq!(ring.since(at(&ring, 6), t0), Replay::Gap);
    assert_eq!(ring.since(at(&ring, u64::MAX), t0), Replay::Gap);
    assert_eq!(ring.since(ResumePoint::new(0xfeee, 3), t0), Replay::Gap);
    // Replaying takes nothing away.
    assert_eq!(ring.len(), 5);
}

#[test]
fn the_event_cap_throws_away_the_oldest() {
    let t0 = Instant::now();
    let mut ring = ring(limits(3, 60 * SECOND, 1 << 20, 1 << 20));
    for _ in 0..5 {
        assert!(push(&mut ring, t0, 10).stored);
    }
    assert_eq!(ring.len(), 3);
    assert_eq!(ring.since(at(&ring, 1), t0), Replay::Gap); // needs 2, gone
    assert_eq!(seqs(&ring.since(at(&ring, 2), t0)), Some(vec![3, 4, 5]));
}

#[test]
fn the_byte_cap_throws_away_the_oldest_and_counts_the_overhead() {
    let t0 = Instant::now();
    let cost = 100 + EVENT_OVERHEAD_BYTES;
    let mut ring = ring(limits(100, 60 * SECOND, 3 * cost, 1 << 20));
    for _ in 0..3 {
        push(&mut ring, t0, 100);
    }
    assert_eq!((ring.len(), ring.bytes()), (3, 3 * cost));
    // One byte more than the room left by dropping one event: two go.
    push(&mut ring, t0, 101);
    assert_eq!((ring.len(), ring.bytes()), (2, 2 * cost + 1));
    assert_eq!(seqs(&ring.since(at(&ring, 2), t0)), Some(vec![3, 4]));
    assert_eq!(ring.since(at(&ring, 1), t0), Replay::Gap);
}

#[test]
fn an_event_larger_than_the_ring_is_not_kept_and_nothing_before_it_either() {
    let t0 = Instant::now();
    let per_user = 1000;
    let mut ring = ring(limits(100, 60 * SECOND, per_user, 1 << 20));
    push(&mut ring, t0, 10);
    push(&mut ring, t0, 10);
    let big = push(&mut ring, t0, per_user - EVENT_OVERHEAD_BYTES + 1);
    assert_eq!((big.seq, big.stored), (3, false));
    assert_eq!((ring.len(), ring.bytes(), ring.pool.held()), (0, 0, 0));
    // Whoever had not seen event 3 must reload; whoever had, missed nothing.
    assert_eq!(ring.since(at(&ring, 1), t0), Replay::Gap);
    assert_eq!(ring.since(at(&ring, 2), t0), Replay::Gap);
    assert_eq!(seqs(&ring.since(at(&ring, 3), t0)), Some(vec![]));
    // Exactly the per-user cap fits.
    assert!(push(&mut ring, t0, per_user - EVENT_OVERHEAD_BYTES).stored);
    assert_eq!(seqs(&ring.since(at(&ring, 3), t0)), Some(vec![4]));
}

#[test]
fn events_expire_after_the_window() {
    let t0 = Instant::now();
    let window = 120 * SECOND;
    let mut ring = ring(limits(100, window, 1 << 20, 1 << 20));
    push(&mut ring, t0, 10);
    push(&mut ring, t0 + 60 * SECOND, 10);
    // Just inside the window, both are there.
    let before = t0 + window - Duration::from_nanos(1);
    assert_eq!(seqs(&ring.since(at(&ring, 0), before)), Some(vec![1, 2]));
    // At the window, event 1 is gone.
    assert_eq!(ring.since(at(&ring, 0), t0 + window), Replay::Gap);
    assert_eq!(seqs(&ring.since(at(&ring, 1), t0 + window)), Some(vec![2]));
    assert_eq!(ring.len(), 1);
    // Pruning without a resume frees the bytes too.
    assert_eq!(ring.prune(t0 + 60 * SECOND + window), 1);
    assert_eq!((ring.len(), ring.bytes(), ring.pool.held()), (0, 0, 0));
    // A client that saw everything still resumes with nothing missed.
    assert_eq!(
        seqs(&ring.since(at(&ring, 2), t0 + 10 * window)),
        Some(vec![])
    );
}

#[test]
fn a_clock_read_out_of_order_counts_as_the_previous_event_time() {
    let t0 = Instant::now();
    let window = 10 * SECOND;
    let mut ring = ring(limits(100, window, 1 << 20, 1 << 20));
    push(&mut ring, t0 + 5 * SECOND, 10);
    push(&mut ring, t0, 10); // read the clock first, took the lock second
    // Event 2 lives as long as event 1, and the ring outlives it by the window.
    assert_eq!(
        seqs(&ring.since(at(&ring, 0), t0 + 14 * SECOND)),
        Some(vec![1, 2])
    );
    ring.last_socket_left(t0);
    assert_eq!(ring.expires_at(), Some(t0 + 15 * SECOND));
}

#[test]
fn limits_of_zero_keep_nothing_but_still_number_events() {
    let t0 = Instant::now();
    for zero in [
        limits(0, SECOND, 1 << 20, 1 << 20),
        limits(10, Duration::ZERO, 1 << 20, 1 << 20),
        limits(10, SECOND, 0, 1 << 20),
        limits(10, SECOND, 1 << 20, 0),
    ] {
        let mut ring = ring(zero);
        for seq in 1..=3 {
            let pushed = push(&mut ring, t0, 1);
            assert_eq!((pushed.seq, pushed.stored), (seq, false), "{zero:?}");
        }
        assert_eq!((ring.len(), ring.pool.held()), (0, 0));
        assert_eq!(ring.since(at(&ring, 2), t0), Replay::Gap);
        assert_eq!(seqs(&ring.since(at(&ring, 3), t0)), Some(vec![]));
    }
}

#[test]
fn the_shared_total_is_never_exceeded_and_one_user_never_evicts_another() {
    let t0 = Instant::now();
    let cost = 100 + EVENT_OVERHEAD_BYTES;
    let pool = Arc::new(ReplayPool::unreported(limits(
        100,
        60 * SECOND,
        10 * cost,
        3 * cost,
    )));
    let mut alice = ReplayRing::new(Arc::clone(&pool), 1);
    let mut bob = ReplayRing::new(Arc::clone(&pool), 2);
    for _ in 0..3 {
        assert!(push(&mut alice, t0, 100).stored);
    }
    assert_eq!(pool.held(), 3 * cost);
    // Bob holds nothing, so he cannot make room: his event is not kept.
    let refused = push(&mut bob, t0, 100);
    assert!(!refused.stored);
    assert_eq!((alice.len(), bob.len(), pool.held()), (3, 0, 3 * cost));
    assert_eq!(bob.since(at(&bob, 0), t0), Replay::Gap);
    // Alice makes room from her own oldest event.
    assert!(push(&mut alice, t0, 100).stored);
    assert_eq!((alice.len(), pool.held()), (3, 3 * cost));
    assert_eq!(seqs(&alice.since(at(&alice, 1), t0)), Some(vec![2, 3, 4]));
    // Freeing Alice's ring gives her bytes back; Bob's next event fits.
    drop(alice);
    assert_eq!(pool.held(), 0);
    assert!(push(&mut bob, t0, 100).stored);
    assert_eq!(seqs(&bob.since(at(&bob, 1), t0)), Some(vec![2]));
    drop(bob);
    assert_eq!(pool.held(), 0);
}

#[test]
fn a_ring_expires_one_window_after_its_last_socket_and_its_last_event() {
    let t0 = Instant::now();
    let window = 120 * SECOND;
    let mut ring = ring(limits(100, window, 1 << 20, 1 << 20));
    assert_eq!(ring.expires_at(), None);
    assert!(!ring.is_expired(t0 + 100 * window));
    push(&mut ring, t0, 10);
    ring.last_socket_left(t0 + SECOND);
    assert_eq!(ring.expires_at(), Some(t0 + SECOND + window));
    // An event for the user while no socket is there keeps the ring longer.
    push(&mut ring, t0 + 30 * SECOND, 10);
    assert_eq!(ring.expires_at(), Some(t0 + 30 * SECOND + window));
    assert!(!ring.is_expired(t0 + 30 * SECOND + window - Duration::from_nanos(1)));
    assert!(ring.is_expired(t0 + 30 * SECOND + window));
    // A socket came back: in use again.
    ring.socket_arrived();
    assert_eq!(ring.expires_at(), None);
    // A window too long for the clock never expires, and never panics.
    let mut forever = self::ring(limits(100, Duration::MAX, 1 << 20, 1 << 20));
    push(&mut forever, t0, 10);
    forever.last_socket_left(t0);
    assert_eq!(forever.expires_at(), None);
    assert_eq!(
        seqs(&forever.since(ResumePoint::new(0xfeed, 0), t0 + 1000 * window)),
        Some(vec![1])
    );
}

#[test]
fn the_last_number_of_an_epoch_starts_another_epoch() {
    let t0 = Instant::now();
    let mut ring = ring(ReplayLimits::DEFAULT);
    ring.next_seq = u64::MAX - 2;
    let old = ring.epoch();
    assert_eq!(push(&mut ring, t0, 40).seq, u64::MAX - 2);
    assert_eq!(push(&mut ring, t0, 40).seq, u64::MAX - 1);
    assert_eq!(ring.position(), ResumePoint::new(old, u64::MAX - 1));
    let pushed = push(&mut ring, t0, 40);
    assert_eq!(pushed.seq, 1);
    assert_ne!(ring.epoch(), old);
    assert_eq!(&*pushed.frame, &*frame(ring.epoch(), 1, 40));
    assert_eq!((ring.len(), ring.bytes()), (1, 40 + EVENT_OVERHEAD_BYTES));
    assert_eq!(ring.pool.held(), ring.bytes());
    assert_eq!(
        ring.since(ResumePoint::new(old, u64::MAX - 2), t0),
        Replay::Gap
    );
    assert_eq!(seqs(&ring.since(at(&ring, 0), t0)), Some(vec![1]));
}

#[test]
fn an_emptied_ring_gives_back_its_queue() {
    let t0 = Instant::now();
    let mut ring = ring(limits(1000, SECOND, 1 << 20, 1 << 20));
    for _ in 0..500 {
        push(&mut ring, t0, 1);
    }
    assert!(ring.events.capacity() >= 500);
    ring.prune(t0 + SECOND);
    assert!(
        ring.events.capacity() <= RETAINED_SLOTS,
        "{}",
        ring.events.capacity()
    );
}

#[test]
fn random_epochs_use_all_64_bits() {
    let (mut ones, mut zeros) = (0_u64, 0_u64);
    for _ in 0..64 {
        let epoch = random_epoch();
        ones |= epoch;
        zeros |= !epoch;
    }
    // Each bit was 1 at least once and 0 at least once (a fixed bit fails this always;
    // a random one with probability 2^-63).
    assert_eq!((ones, zeros), (u64::MAX, u64::MAX));
}

// ---------------------------------------------------------------------------------------
// Property tests against a naive model.
// ---------------------------------------------------------------------------------------

fn config() -> Config {
    Config {
        failure_persistence: Some(Box::new(FileFailurePersistence::Direct(
            "proptest-regressions/replay.txt",
        ))),
        ..Config::default()
    }
}

#[derive(Clone, Debug)]
enum Op {
    /// Advance the clock by `ms`, then push an event of `len` bytes to ring `user`.
    Push { user: usize, ms: u64, len: usize },
    /// Advance the clock by `ms`, then resume ring `user` from `back` events before its
    /// newest (negative: from the future), in the right epoch or not.
    Since {
        user: usize,
        ms: u64,
        back: i64,
        right_epoch: bool,
    },
    /// Advance the clock by `ms`, then prune ring `user`.
    Prune { user: usize, ms: u64 },
}

fn op(users: usize) -> impl Strategy<Value = Op> {
    let user = 0..users;
    prop_oneof![
        4 => (user.clone(), 0_u64..400, 0_usize..300).prop_map(|(user, ms, len)| Op::Push { user, ms, len }),
        2 => (user.clone(), 0_u64..400, -2_i64..20, prop::bool::weighted(0.9))
            .prop_map(|(user, ms, back, right_epoch)| Op::Since { user, ms, back, right_epoch }),
        1 => (user, 0_u64..400).prop_map(|(user, ms)| Op::Prune { user, ms }),
    ]
}

fn any_limits(total: impl Strategy<Value = usize>) -> impl Strategy<Value = ReplayLimits> {
    (
        prop_oneof![1 => Just(0_usize), 9 => 1_usize..12],
        prop_oneof![1 => Just(0_u64), 9 => 1_u64..3000],
        prop_oneof![1 => Just(0_usize), 9 => 64_usize..2000],
        total,
    )
        .prop_map(|(events, ms, per_user, total)| {
            limits(events, Duration::from_millis(ms), per_user, total)
        })
}

/// Everything ever pushed to one ring, and the newest event it refused.
#[derive(Default)]
struct Model {
    /// (seq, time, frame), oldest first; the time after the clamp.
    events: Vec<(u64, Instant, Arc<str>)>,
    refused: Option<u64>,
}

impl Model {
    fn newest(&self) -> u64 {
        self.events.last().map_or(0, |e| e.0)
    }

    /// How many of the newest events a ring under `limits` can hold at `now`, with the
    /// shared total out of the way: the longest run ending at the newest that is after
    /// the last refused event, at most `events_per_user` long, at most
    /// `bytes_per_user` in cost, and younger than the window.
    fn holdable(&self, limits: &ReplayLimits, now: Instant) -> usize {
        let (mut count, mut bytes) = (0, 0);
        for (seq, at, frame) in self.events.iter().rev() {
            let cost = frame.len() + EVENT_OVERHEAD_BYTES;
            if self.refused.is_some_and(|r| *seq <= r)
                || count + 1 > limits.events_per_user
                || bytes + cost > limits.bytes_per_user
                || now.saturating_duration_since(*at) >= limits.window
            {
                break;
            }
            count += 1;
            bytes += cost;
        }
        count
    }

    /// The frames after position `seq`.
    fn after(&self, seq: u64) -> Vec<Arc<str>> {
        self.events
            .iter()
            .filter(|e| e.0 > seq)
            .map(|e| Arc::clone(&e.2))
            .collect()
    }
}

/// The position `back` events before the newest (negative: past it), or `None` when
/// that is before 0.
fn back_from(newest: u64, back: i64) -> Option<u64> {
    if back < 0 {
        Some(newest + back.unsigned_abs())
    } else {
        newest.checked_sub(back.unsigned_abs())
    }
}

/// Runs `ops` on `users` rings sharing one pool, checking after every step what holds
/// whatever the shared total did. With `exact`, the total is out of reach and every
/// resume must match the model exactly.
fn run(limits: ReplayLimits, users: usize, ops: &[Op], exact: bool) -> Result<(), TestCaseError> {
    let pool = Arc::new(ReplayPool::unreported(limits));
    let mut rings: Vec<ReplayRing> = (0..users)
        .map(|i| ReplayRing::new(Arc::clone(&pool), 0x1000 + i as u64))
        .collect();
    let mut models: Vec<Model> = (0..users).map(|_| Model::default()).collect();
    let mut now = Instant::now();
    for op in ops {
        match *op {
            Op::Push { user, ms, len } => {
                now += Duration::from_millis(ms);
                let others: Vec<usize> = rings.iter().map(ReplayRing::bytes).collect();
                let epoch = rings[user].epoch();
                let pushed = push(&mut rings[user], now, len);
                let model = &mut models[user];
                let seq = model.newest() + 1;
                prop_assert_eq!(pushed.seq, seq);
                prop_assert_eq!(&*pushed.frame, &*frame(epoch, seq, len));
                let at = model.events.last().map_or(now, |e| e.1.max(now));
                model.events.push((seq, at, Arc::clone(&pushed.frame)));
                let cost = pushed.frame.len() + EVENT_OVERHEAD_BYTES;
                if pushed.stored {
                    prop_assert!(keeps_anything(&limits) && cost <= limits.bytes_per_user);
                } else {
                    model.refused = Some(seq);
                    prop_assert_eq!(rings[user].len(), 0);
                    // Refused only when the event cannot fit even with this ring empty.
                    prop_assert!(
                        !keeps_anything(&limits)
                            || cost > limits.bytes_per_user
                            || cost + pool.held() > limits.bytes_total
                    );
                }
                for (i, ring) in rings.iter().enumerate() {
                    if i != user {
                        prop_assert_eq!(ring.bytes(), others[i], "a push changed another ring");
                    }
                }
            }
            Op::Since {
                user,
                ms,
                back,
                right_epoch,
            } => {
                now += Duration::from_millis(ms);
                let model = &models[user];
                let Some(seq) = back_from(model.newest(), back) else {
                    continue;
                };
                let ring = &mut rings[user];
                let epoch = if right_epoch {
                    ring.epoch()
                } else {
                    ring.epoch() ^ 1
                };
                let replay = ring.since(ResumePoint::new(epoch, seq), now);
                let possible = right_epoch && seq <= model.newest();
                if let Replay::Missed(frames) = &replay {
                    // Whatever the total did: never a wrong, missing, doubled or
                    // expired event.
                    prop_assert!(possible);
                    prop_assert_eq!(frames, &model.after(seq));
                    let missed = usize::try_from(model.newest() - seq).unwrap_or(usize::MAX);
                    prop_assert!(missed <= model.holdable(&limits, now));
                }
                if exact {
                    let missed = usize::try_from(model.newest() - seq.min(model.newest()))
                        .unwrap_or(usize::MAX);
                    let expected = if possible && missed <= model.holdable(&limits, now) {
                        Replay::Missed(model.after(seq))
                    } else {
                        Replay::Gap
                    };
                    prop_assert_eq!(replay, expected);
                }
            }
            Op::Prune { user, ms } => {
                now += Duration::from_millis(ms);
                rings[user].prune(now);
            }
        }
        let mut sum = 0;
        for (ring, model) in rings.iter().zip(&models) {
            prop_assert!(ring.len() <= limits.events_per_user);
            prop_assert!(ring.bytes() <= limits.bytes_per_user);
            let costs: usize = ring.events.iter().map(Entry::cost).sum();
            prop_assert_eq!(costs, ring.bytes());
            // The ring holds a run ending at the newest event.
            if let Some(last) = ring.events.back() {
                prop_assert_eq!(&last.frame, &model.events.last().unwrap().2);
            }
            sum += ring.bytes();
        }
        prop_assert_eq!(pool.held(), sum);
        prop_assert!(pool.held() <= limits.bytes_total);
    }
    drop(rings);
    prop_assert_eq!(pool.held(), 0);
    Ok(())
}

proptest! {
    #![proptest_config(config())]

    /// One ring, the total out of reach: every resume is exactly what the model says.
    #[test]
    fn one_ring_matches_the_model_exactly(
        limits in any_limits(Just(usize::MAX)),
        ops in prop::collection::vec(op(1), 1..120),
    ) {
        run(limits, 1, &ops, true)?;
    }

    /// Three rings sharing a small total: the caps hold, pushes never evict another
    /// ring, a refusal happens only when the others leave no room, and a resume is
    /// either exactly the missed events or a gap.
    #[test]
    fn rings_sharing_a_total_stay_within_it(
        limits in any_limits(0_usize..3000),
        ops in prop::collection::vec(op(3), 1..160),
    ) {
        run(limits, 3, &ops, false)?;
    }
}

/// Cluster mode: positions given by the user's stream elsewhere.
#[cfg(feature = "redis")]
mod positioned {
    use super::*;

    const STREAM: u64 = 0x5eed;

    fn given(ring: &mut ReplayRing, now: Instant, seq: u64) -> Inserted {
        ring.insert(now, ResumePoint::new(STREAM, seq), frame(STREAM, seq, 10))
    }

    fn run(range: std::ops::RangeInclusive<u64>) -> Vec<Arc<str>> {
        range.map(|seq| frame(STREAM, seq, 10)).collect()
    }

    fn from(seq: u64) -> ResumePoint {
        ResumePoint::new(STREAM, seq)
    }

    #[test]
    fn the_first_given_position_sets_the_epoch_and_passed_ones_are_duplicates() {
        let t0 = Instant::now();
        let mut ring = ring(ReplayLimits::DEFAULT);
        assert_eq!(given(&mut ring, t0, 7), Inserted::New { stored: true });
        assert_eq!(ring.position(), from(7));
        assert_eq!(given(&mut ring, t0, 8), Inserted::New { stored: true });
        for passed in [1, 7, 8] {
            assert_eq!(given(&mut ring, t0, passed), Inserted::Duplicate);
        }
        assert_eq!(given(&mut ring, t0, 0), Inserted::Duplicate);
        assert_eq!(given(&mut ring, t0, u64::MAX), Inserted::Duplicate);
        assert_eq!(seqs(&ring.since(from(6), t0)), Some(vec![7, 8]));
        assert_eq!(ring.since(from(5), t0), Replay::Gap);
    }

    #[test]
    fn a_hole_or_another_epoch_starts_over() {
        let t0 = Instant::now();
        let mut ring = ring(ReplayLimits::DEFAULT);
        for seq in 1..=3 {
            given(&mut ring, t0, seq);
        }
        // 4 and 5 never came: nothing before 6 can be replayed any more.
        assert_eq!(given(&mut ring, t0, 6), Inserted::New { stored: true });
        assert_eq!(ring.len(), 1);
        assert_eq!(ring.since(from(3), t0), Replay::Gap);
        assert_eq!(seqs(&ring.since(from(5), t0)), Some(vec![6]));
        // The stream started another epoch (it expired): follow it.
        let other = ResumePoint::new(0xbeef, 1);
        assert_eq!(
            ring.insert(t0, other, frame(0xbeef, 1, 10)),
            Inserted::New { stored: true }
        );
        assert_eq!(ring.position(), other);
        assert_eq!(ring.since(from(6), t0), Replay::Gap);
    }

    #[test]
    fn an_unpositioned_ring_takes_a_backfill_whole() {
        let t0 = Instant::now();
        let mut ring = ring(ReplayLimits::DEFAULT);
        // History, nothing to deliver: the ring had no position.
        assert_eq!(
            ring.backfill(t0, STREAM, 4, run(4..=9)),
            Vec::<Arc<str>>::new()
        );
        assert_eq!(ring.position(), from(9));
        assert_eq!(seqs(&ring.since(from(3), t0)), Some(vec![4, 5, 6, 7, 8, 9]));
        // The live copies of what the run brought are duplicates; the next is new.
        assert_eq!(given(&mut ring, t0, 9), Inserted::Duplicate);
        assert_eq!(given(&mut ring, t0, 10), Inserted::New { stored: true });

        // An empty run only positions: the stream's next event is 1, or 42.
        let mut fresh = super::ring(ReplayLimits::DEFAULT);
        assert!(fresh.backfill(t0, STREAM, 42, Vec::new()).is_empty());
        assert_eq!(fresh.position(), from(41));
        assert_eq!(seqs(&fresh.since(from(41), t0)), Some(vec![]));
    }

    #[test]
    fn a_positioned_ring_gains_only_older_events_that_reach_it() {
        let t0 = Instant::now();
        let mut ring = ring(ReplayLimits::DEFAULT);
        for seq in 5..=7 {
            given(&mut ring, t0, seq);
        }
        // Events newer than the ring's newest are taken as new, and returned for the
        // live sockets; their live copies are duplicates then.
        let newer = ring.backfill(t0, STREAM, 6, run(6..=9));
        assert_eq!(newer, run(8..=9));
        assert_eq!(ring.position(), from(9));
        assert_eq!(given(&mut ring, t0, 8), Inserted::Duplicate);
        assert_eq!(seqs(&ring.since(from(4), t0)), Some(vec![5, 6, 7, 8, 9]));
        // A run that stops short of the oldest held event leaves a hole: not taken.
        assert!(ring.backfill(t0, STREAM, 1, run(1..=3)).is_empty());
        assert_eq!(ring.since(from(2), t0), Replay::Gap);
        // Another epoch: not taken.
        assert!(ring.backfill(t0, 0xbeef, 1, run(1..=4)).is_empty());
        assert_eq!(ring.since(from(2), t0), Replay::Gap);
        // A run that reaches it fills in the older part, overlapping or touching; it
        // is history, nothing to deliver.
        assert_eq!(
            ring.backfill(t0, STREAM, 2, run(2..=6)),
            Vec::<Arc<str>>::new()
        );
        assert_eq!(ring.position(), from(9));
        assert_eq!(
            seqs(&ring.since(from(1), t0)),
            Some(vec![2, 3, 4, 5, 6, 7, 8, 9])
        );
        assert_eq!(ring.bytes(), 8 * (10 + EVENT_OVERHEAD_BYTES));
        assert_eq!(given(&mut ring, t0, 10), Inserted::New { stored: true });
        // A run after a hole: the ring starts over with it, and it is all new.
        assert_eq!(ring.backfill(t0, STREAM, 20, run(20..=21)), run(20..=21));
        assert_eq!(ring.since(from(10), t0), Replay::Gap);
        assert_eq!(seqs(&ring.since(from(19), t0)), Some(vec![20, 21]));
    }

    #[test]
    fn a_backfill_respects_the_limits() {
        let t0 = Instant::now();
        let mut ring = ring(limits(3, SECOND * 60, 1 << 20, 1 << 20));
        given(&mut ring, t0, 10);
        assert_eq!(
            ring.backfill(t0, STREAM, 1, run(1..=10)),
            Vec::<Arc<str>>::new()
        );
        assert_eq!(ring.len(), 3);
        assert_eq!(seqs(&ring.since(from(7), t0)), Some(vec![8, 9, 10]));
        assert_eq!(ring.since(from(6), t0), Replay::Gap);
    }

    #[cfg(feature = "serde")]
    #[test]
    fn a_detached_event_gets_an_epoch_of_its_own() {
        let t0 = Instant::now();
        let mut ring = ring(ReplayLimits::DEFAULT);
        given(&mut ring, t0, 3);
        let pushed = push_detached(&mut ring, t0);
        assert_eq!(pushed.seq, 1);
        assert_ne!(ring.epoch(), STREAM);
        // Resuming from the detached position works here; the stream's next event
        // brings the ring back to the stream's epoch.
        assert_eq!(seqs(&ring.since(at(&ring, 0), t0)), Some(vec![1]));
        assert_eq!(given(&mut ring, t0, 4), Inserted::New { stored: true });
        assert_eq!(ring.position(), from(4));
    }

    #[cfg(feature = "serde")]
    fn push_detached(ring: &mut ReplayRing, at: Instant) -> Pushed {
        ring.push_detached(at, |epoch, seq| frame(epoch, seq, 10))
    }
}
