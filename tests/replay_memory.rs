//! Memory held per buffered event, measured with a counting global allocator (this file
//! holds one test, so no other test allocates concurrently), next to what the replay
//! budget counts for it (`MetricsSnapshot::replay_bytes`).
//!
//! Run `cargo test --test replay_memory -- --nocapture` to see the numbers.
#![cfg(feature = "serde")]

mod support;

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use support::contexts::bound;
use wsctx::{EventType, Limits, ManagerFactory, ReplayLimits};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
fn live() -> isize {
    let stats = INSTRUMENTED_SYSTEM.stats();
    isize::try_from(stats.bytes_allocated).unwrap()
        - isize::try_from(stats.bytes_deallocated).unwrap()
}

#[test]
fn a_buffered_event_holds_its_frame_and_less_than_the_counted_bookkeeping() {
    const USERS: usize = 100;
    const EVENTS: usize = 256;
    let factory = ManagerFactory::new(Limits {
        replay: ReplayLimits {
            bytes_total: usize::MAX,
            ..ReplayLimits::default()
        },
        ..Limits::default()
    });
    let event = EventType::try_new("agent_thinking").unwrap();
    let data = serde_json::json!({"step": 2, "thought": "looking for related notes"});
    let emitters: Vec<_> = (0..USERS)
        .map(|user| factory.emitter(&bound(&format!("user-{user:04}"), "worker")))
        .collect();
    // Each user gets a ring (a tab that left) before measuring the events.
    let before_rings = live();
    for user in 0..USERS {
        drop(
            factory
                .create_with_position(bound(&format!("user-{user:04}"), "tab"))
                .unwrap(),
        );
    }
    let per_ring = (live() - before_rings) / isize::try_from(USERS).unwrap();
    emitters[0].emit(&event, &data).unwrap(); // warm up lazy statics
    let before = live();
    let counted_before = factory.metrics().replay_bytes;
    let mut frame_bytes = 0;
    for emitter in &emitters {
        for _ in 0..EVENTS {
            let delivery = emitter.emit(&event, &data).unwrap();
            assert!(delivery.buffered);
        }
    }
    let held = live() - before;
    let counted = factory.metrics().replay_bytes - counted_before;
    // The frame of a buffered event is the same size for every event of this test
    // except for the digits of its sequence number; measure one.
    let (_tab, mut out) = factory.create(bound("user-0001", "tab")).unwrap();
    emitters[1].emit(&event, &data).unwrap();
    frame_bytes += out.try_recv().unwrap().as_text().unwrap().len();

    let n = isize::try_from(USERS * EVENTS).unwrap();
    let per_event = held / n;
    let counted_per_event = i64::try_from(counted).unwrap() / i64::try_from(n).unwrap();
    #[allow(clippy::print_stderr, reason = "the measurement is the point")]
    {
        eprintln!("heap bytes of an empty ring (a user whose last tab left): {per_ring}");
        eprintln!("frame bytes of one event: {frame_bytes}");
        eprintln!("heap bytes held per buffered event: {per_event}");
        eprintln!("bytes counted per buffered event by the replay budget: {counted_per_event}");
    }
    // The budget never counts less than what is held (the frame, its shared-string
    // header and the ring's slot), so `bytes_total` bounds the real memory.
    assert!(per_event <= isize::try_from(counted_per_event).unwrap());
    assert!(per_event >= isize::try_from(frame_bytes).unwrap());
}
