//! Memory held by the factory per admitted socket, measured with a counting global
//! allocator (this file holds one test, so no other test allocates concurrently).
//!
//! Run `cargo test --test factory_memory -- --nocapture` to see the numbers.

mod support;

use std::alloc::System;

use stats_alloc::{INSTRUMENTED_SYSTEM, StatsAlloc};
use wsctx::state::Bound;
use wsctx::{Context, Frame, Limits, ManagerFactory};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

/// Bytes allocated and not yet freed.
fn live() -> isize {
    let stats = INSTRUMENTED_SYSTEM.stats();
    bytes(stats.bytes_allocated) - bytes(stats.bytes_deallocated)
}

fn bytes(n: usize) -> isize {
    isize::try_from(n).unwrap()
}

fn bound(user: usize, tab: usize) -> Context<Bound> {
    support::contexts::bound(&format!("user-{user:08x}"), &format!("tab-{tab}"))
}

/// Bytes the factory allocates and keeps per admitted socket, and the heap bytes of
/// the context each socket owns (allocated by the caller before admission).
/// Returns (bytes per socket after admission, bytes per socket after a burst of 100
/// frames to every user was sent and read, heap bytes per context).
fn measure(users: usize, tabs: usize) -> (isize, isize, isize) {
    let n = users * tabs;
    let factory = ManagerFactory::new(Limits {
        global: n,
        ..Limits::default()
    });
    drop(factory.create(bound(usize::MAX, 0)).unwrap()); // warm up lazy statics

    let before_contexts = live();
    let mut contexts = Vec::with_capacity(n);
    let contexts_vec = live() - before_contexts;
    for user in 0..users {
        for tab in 0..tabs {
            contexts.push(bound(user, tab));
        }
    }
    let context_heap = (live() - before_contexts - contexts_vec) / bytes(n);

    let mut held = Vec::with_capacity(n);
    let before = live();
    for ctx in contexts.drain(..) {
        held.push(factory.create(ctx).unwrap());
    }
    let per_socket = (live() - before) / bytes(n);

    // A burst grows the queues; draining shrinks them back to a few slots.
    let frame = Frame::text("burst");
    for (manager, _) in held.iter().step_by(tabs) {
        for _ in 0..100 {
            manager.send_to_user(frame.clone());
        }
    }
    for (_, outbound) in &mut held {
        while outbound.try_recv().is_ok() {}
    }
    let after_burst = (live() - before) / bytes(n);

    drop(held);
    assert_eq!(factory.metrics().active, 0);
    assert_eq!(factory.metrics().slow_consumers, 0);
    (per_socket, after_burst, context_heap)
}

#[test]
fn an_admitted_socket_costs_at_most_1_kib() {
    let (five_tabs, five_tabs_after_burst, context_heap) = measure(2_000, 5);
    let (one_tab, one_tab_after_burst, _) = measure(10_000, 1);
    #[allow(clippy::print_stderr, reason = "the measurement is the point")]
    {
        eprintln!(
            "bytes allocated by the factory per admitted socket (5 sockets per user): {five_tabs}"
        );
        eprintln!(
            "bytes allocated by the factory per admitted socket (1 socket per user): {one_tab}"
        );
        eprintln!(
            "the same after a burst of 100 queued frames was read (5 / 1 per user): {five_tabs_after_burst} / {one_tab_after_burst}"
        );
        eprintln!(
            "heap bytes of each bound context, allocated by the caller and moved in: {context_heap}"
        );
        eprintln!(
            "inline size of a bound context (part of the factory's bytes): {}",
            size_of::<Context<Bound>>()
        );
    }
    assert!(five_tabs <= 1024, "{five_tabs} bytes per socket");
    assert!(one_tab <= 1024, "{one_tab} bytes per socket");
    assert!(
        five_tabs_after_burst <= 1024,
        "{five_tabs_after_burst} bytes per socket after a burst"
    );
    assert!(
        one_tab_after_burst <= 1024,
        "{one_tab_after_burst} bytes per socket after a burst"
    );
}
