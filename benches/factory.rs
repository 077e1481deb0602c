//! Factory benchmarks: admission (create + drop) on one thread and on two threads
//! (two users, one hot user), `send_to_user` fan-out to the five sockets of a user, and
//! (feature `serde`) server push: `emit` to a user with five tabs next to
//! `ManagerFactory::send_to_user` of the same frame pre-serialized, and a resume that
//! replays 256 missed events; (feature `metrics`) admission and fan-out with the factory
//! reporting to a Prometheus recorder, next to a factory reporting nowhere.
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
use wsctx::{Frame, IsolatedManager, ManagerFactory, Outbound};

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

/// The managers and the outbounds of `sockets`, apart.
fn split(
    sockets: &mut [(IsolatedManager, Outbound)],
) -> (Vec<&IsolatedManager>, Vec<&mut Outbound>) {
    sockets.iter_mut().map(|(m, o)| (&*m, o)).unzip()
}

/// Times `iters` calls of `send` in runs of 128; `outbounds` are drained between runs,
/// untimed, so that no queue fills up.
fn sends_in_runs(
    iters: u64,
    mut outbounds: Vec<&mut Outbound>,
    mut send: impl FnMut(),
) -> Duration {
    let mut total = Duration::ZERO;
    let mut remaining = iters;
    while remaining > 0 {
        let n = remaining.min(128);
        let start = Instant::now();
        for _ in 0..n {
            send();
        }
        total += start.elapsed();
        for outbound in &mut outbounds {
            while outbound.try_recv().is_ok() {}
        }
        remaining -= n;
    }
    total
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
            let (managers, outbounds) = split(&mut sockets);
            sends_in_runs(iters, outbounds, || {
                black_box(managers[0].send_to_user(frame.clone()));
            })
        });
    });

    group.bench_function("record_activity", |b| {
        b.iter(|| sockets[0].0.record_activity());
    });
    group.finish();
    assert_eq!(factory.metrics().slow_consumers, 0);
}

/// `emit` against a plain send of the same bytes, and the cost of a resume.
#[cfg(feature = "serde")]
fn events(c: &mut Criterion) {
    use wsctx::{EventType, Limits, ResumePoint, UserId};

    let mut group = c.benchmark_group("events");
    group.throughput(Throughput::Elements(1));
    let factory = ManagerFactory::default();
    let mut sockets = contexts::tabs::<5>(&factory, "user-a");
    let emitter = factory.emitter(sockets[0].0.context());
    let event = EventType::try_new("agent_thinking").unwrap();
    let data = serde_json::json!({"step": 2, "thought": "looking for related notes"});
    // The frame `emit` sends, serialized once: what a plain send of the same bytes costs.
    emitter.emit(&event, &data).unwrap();
    let frame = sockets[0].1.try_recv().unwrap();
    for (_, outbound) in &mut sockets[1..] {
        outbound.try_recv().unwrap();
    }
    let user = UserId::try_new("user-a").unwrap();

    // Both timed in runs of 128 events, the 5 queues drained in between, untimed.
    group.bench_function("5_sockets/emit", |b| {
        b.iter_custom(|iters| {
            sends_in_runs(iters, split(&mut sockets).1, || {
                black_box(emitter.emit(&event, &data).unwrap());
            })
        });
    });
    group.bench_function("5_sockets/send_to_user_preserialized", |b| {
        b.iter_custom(|iters| {
            sends_in_runs(iters, split(&mut sockets).1, || {
                black_box(factory.send_to_user(&user, frame.clone()));
            })
        });
    });
    assert_eq!(factory.metrics().slow_consumers, 0);
    group.finish();

    // A user whose ring holds 256 events; a tab comes back having missed all of them
    // (or none). One iteration admits it and queues the replay; dropping the socket is
    // not timed.
    let mut group = c.benchmark_group("resume");
    let factory = ManagerFactory::new(Limits::default());
    let (_keep, mut keep_out) = factory
        .create_with_position(bound("user-r", "tab-0"))
        .unwrap();
    let position: serde_json::Value =
        serde_json::from_str(keep_out.try_recv().unwrap().as_text().unwrap()).unwrap();
    let start: ResumePoint = format!(
        "{}.{}",
        position["epoch"].as_str().unwrap(),
        position["seq"]
    )
    .parse()
    .unwrap();
    let emitter = factory.emitter(&bound("user-r", "worker"));
    for _ in 0..256 {
        emitter.emit(&event, &data).unwrap();
    }
    while keep_out.try_recv().is_ok() {}
    let newest = ResumePoint::new(start.epoch(), 256);
    let template = bound("user-r", "tab-1");
    for (name, point) in [("256_missed", start), ("0_missed", newest)] {
        group.bench_function(name, |b| {
            b.iter_batched(
                || template.clone(),
                |ctx| factory.create_resuming(ctx, point).unwrap(),
                BatchSize::PerIteration,
            );
        });
    }
    assert_eq!(factory.metrics().resume_gaps, 0);
    group.finish();
}

/// What reporting through the `metrics` facade adds (feature `metrics`): admission and
/// fan-out on a factory created under a Prometheus recorder, next to the same on a
/// factory created under no recorder (its handles go nowhere).
fn metrics_overhead(c: &mut Criterion) {
    #[cfg(feature = "metrics")]
    {
        let recorder = metrics_exporter_prometheus::PrometheusBuilder::new().build_recorder();
        let factories = [
            ("no_recorder", ManagerFactory::default()),
            (
                "prometheus",
                metrics::with_local_recorder(&recorder, ManagerFactory::default),
            ),
        ];
        let mut group = c.benchmark_group("metrics");
        group.throughput(Throughput::Elements(1));
        let frame = Frame::text("{\"type\":\"message\",\"text\":\"hello\"}");
        for (name, factory) in &factories {
            let template = bound("user-a", "tab-1");
            group.bench_function(format!("create_drop/{name}"), |b| {
                b.iter_batched(
                    || template.clone(),
                    |ctx| drop(black_box(factory.create(ctx).unwrap())),
                    BatchSize::SmallInput,
                );
            });
            let mut sockets = contexts::tabs::<5>(factory, "user-b");
            group.bench_function(format!("send_only_5_sockets/{name}"), |b| {
                b.iter_custom(|iters| {
                    let (managers, outbounds) = split(&mut sockets);
                    sends_in_runs(iters, outbounds, || {
                        black_box(managers[0].send_to_user(frame.clone()));
                    })
                });
            });
        }
        group.finish();
        let text = recorder.handle().render();
        assert!(text.contains("wsctx_messages_delivered_total"), "{text}");
    }
    #[cfg(not(feature = "metrics"))]
    let _ = c;
}

#[cfg(feature = "serde")]
criterion_group!(benches, admission, fan_out, events, metrics_overhead);
#[cfg(not(feature = "serde"))]
criterion_group!(benches, admission, fan_out, metrics_overhead);
criterion_main!(benches);
