//! Factory benchmarks: admission (create + drop) on one thread and on two threads
//! (two users, one hot user), and `send_to_user` fan-out to the five sockets of a user.
//!
//! `cargo bench --bench factory -- --warm-up-time 1 --measurement-time 3`
//! Results and the machine they ran on: BENCHMARKS.md.

#[path = "../tests/support/contexts.rs"]
mod contexts;

use std::hint::black_box;
use std::sync::Barrier;
use std::thread;
use std::time::{Duration, Instant};

use contexts::bound;
use criterion::{BatchSize, Criterion, Throughput, criterion_group, criterion_main};
use wsctx::{Frame, ManagerFactory};

/// Contexts are consumed by `create`, so each thread clones them in chunks outside the
/// timed section.
const CHUNK: u64 = 4_096;

/// Two threads each admit and drop `iters / 2` sockets of `users[thread]` in
/// `factories[thread]`; returns the wall time of the slower thread, so `time / iters`
/// is the cost of one admission at the pair's combined throughput.
fn two_threads(factories: [&ManagerFactory; 2], users: [&str; 2], iters: u64) -> Duration {
    let per_thread = iters.div_ceil(2);
    let barrier = Barrier::new(2);
    thread::scope(|scope| {
        let workers: Vec<_> = (0..2)
            .map(|t| {
                let (barrier, factory) = (&barrier, factories[t]);
                let template = bound(users[t], &format!("tab-{t}"));
                scope.spawn(move || {
                    let mut total = Duration::ZERO;
                    let mut remaining = per_thread;
                    while remaining > 0 {
                        let n = remaining.min(CHUNK);
                        let mut contexts: Vec<_> = (0..n).map(|_| template.clone()).collect();
                        barrier.wait();
                        let start = Instant::now();
                        for ctx in contexts.drain(..) {
                            drop(black_box(factory.create(ctx).unwrap()));
                        }
                        total += start.elapsed();
                        remaining -= n;
                    }
                    total
                })
            })
            .collect();
        workers
            .into_iter()
            .map(|w| w.join().unwrap())
            .max()
            .unwrap()
    })
}

fn admission(c: &mut Criterion) {
    let mut group = c.benchmark_group("admission");
    group.throughput(Throughput::Elements(1));

    let factory = ManagerFactory::default();
    let template = bound("user-a", "tab-1");
    group.bench_function("create_drop/1_thread", |b| {
        b.iter_batched(
            || template.clone(),
            |ctx| drop(black_box(factory.create(ctx).unwrap())),
            BatchSize::SmallInput,
        );
    });

    // The baseline: nothing shared at all, one factory per thread. It shows how far
    // two threads scale on this machine.
    let other = ManagerFactory::default();
    group.bench_function("create_drop/2_threads_2_factories", |b| {
        b.iter_custom(|iters| two_threads([&factory, &other], ["user-a", "user-b"], iters));
    });
    group.bench_function("create_drop/2_threads_2_users", |b| {
        b.iter_custom(|iters| two_threads([&factory, &factory], ["user-a", "user-b"], iters));
    });
    group.bench_function("create_drop/2_threads_1_hot_user", |b| {
        b.iter_custom(|iters| two_threads([&factory, &factory], ["user-a", "user-a"], iters));
    });
    group.finish();
}

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("send_to_user");
    group.throughput(Throughput::Elements(1));
    let factory = ManagerFactory::default();
    let mut sockets = contexts::tabs::<5>(&factory, "user-a");
    let frame = Frame::text("{\"type\":\"message\",\"text\":\"hello\"}");

    // One message to 5 sockets, and the 5 writers taking it off their queues.
    group.bench_function("5_sockets/send_and_drain", |b| {
        b.iter(|| {
            let delivery = sockets[0].0.send_to_user(frame.clone());
            debug_assert_eq!(delivery.delivered, 5);
            for (_, outbound) in &mut sockets {
                black_box(outbound.try_recv().unwrap());
            }
        });
    });

    // The send alone: queues are drained between timed runs of 128 messages.
    group.bench_function("5_sockets/send_only", |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut remaining = iters;
            while remaining > 0 {
                let n = remaining.min(128);
                let start = Instant::now();
                for _ in 0..n {
                    black_box(sockets[0].0.send_to_user(frame.clone()));
                }
                total += start.elapsed();
                for (_, outbound) in &mut sockets {
                    while outbound.try_recv().is_ok() {}
                }
                remaining -= n;
            }
            total
        });
    });

    group.bench_function("record_activity", |b| {
        b.iter(|| sockets[0].0.record_activity());
    });
    group.finish();
    assert_eq!(factory.metrics().slow_consumers, 0);
}

criterion_group!(benches, admission, fan_out);
criterion_main!(benches);
