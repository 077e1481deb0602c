//! Id generation per kind with [`UuidGenerator`] (target: at most 100 ns per id) and
//! [`SequenceGenerator`], plus the generator chain [`Fallback`] when the primary fails.
//!
//! ```text
//! cargo bench --bench idgen -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! Each iteration generates one id and drops it (the `String` allocation is part of the
//! cost).
#![allow(missing_docs, reason = "a benchmark binary")]

use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::Clock;
use wsctx::{
    Fallback, GenerateError, IdGenerator, IdKind, SequenceGenerator, UuidGenerator, from_fn,
};

fn kind_name(kind: IdKind) -> &'static str {
    kind.prefix()
}

fn idgen(c: &mut Criterion<Clock>) {
    let uuid = UuidGenerator::new();
    let sequence = SequenceGenerator::new();
    let fallback = Fallback::to_uuid(from_fn(|kind| Err(GenerateError::new(kind))));

    let mut group = c.benchmark_group("idgen/uuid");
    for kind in IdKind::ALL {
        group.bench_function(kind_name(kind), |b| {
            b.iter(|| uuid.generate(black_box(kind)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("idgen/sequence");
    for kind in IdKind::ALL {
        group.bench_function(kind_name(kind), |b| {
            b.iter(|| sequence.generate(black_box(kind)));
        });
    }
    group.finish();

    let mut group = c.benchmark_group("idgen/fallback_to_uuid");
    group.bench_function(kind_name(IdKind::Request), |b| {
        b.iter(|| fallback.generate(black_box(IdKind::Request)));
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(Clock::from_env());
    targets = idgen
}
criterion_main!(benches);
