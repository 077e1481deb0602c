//! A criterion [`Measurement`] of the benchmark thread's CPU time
//! (`CLOCK_THREAD_CPUTIME_ID`) instead of wall time.
//!
//! The benchmark machines are shared (2 cores, other builds running); wall time then
//! counts the time the thread spends descheduled, which swamps differences of a few
//! hundred nanoseconds. Thread CPU time does not. Set `WSCTX_BENCH_CLOCK=wall` to measure
//! wall time instead.

use std::time::{Duration, Instant};

use cpu_time::ThreadTime;
use criterion::Throughput;
use criterion::measurement::{Measurement, ValueFormatter};

/// Thread CPU time, or wall time when `WSCTX_BENCH_CLOCK=wall`.
pub(crate) struct Clock {
    wall: bool,
}

impl Clock {
    /// Reads `WSCTX_BENCH_CLOCK`.
    pub(crate) fn from_env() -> Self {
        Self {
            wall: std::env::var("WSCTX_BENCH_CLOCK").is_ok_and(|v| v == "wall"),
        }
    }
}

/// A start instant on either clock.
pub(crate) enum Start {
    Cpu(ThreadTime),
    Wall(Instant),
}

impl Measurement for Clock {
    type Intermediate = Start;
    type Value = Duration;

    fn start(&self) -> Start {
        if self.wall {
            Start::Wall(Instant::now())
        } else {
            Start::Cpu(ThreadTime::now())
        }
    }

    fn end(&self, start: Start) -> Duration {
        match start {
            Start::Cpu(start) => start.elapsed(),
            Start::Wall(start) => start.elapsed(),
        }
    }

    fn add(&self, a: &Duration, b: &Duration) -> Duration {
        *a + *b
    }

    fn zero(&self) -> Duration {
        Duration::ZERO
    }

    fn to_f64(&self, value: &Duration) -> f64 {
        value.as_secs_f64() * 1e9
    }

    fn formatter(&self) -> &dyn ValueFormatter {
        &Nanoseconds
    }
}

/// Formats nanoseconds as ns, µs, ms or s.
struct Nanoseconds;

impl Nanoseconds {
    fn scale(typical: f64, values: &mut [f64]) -> &'static str {
        let (factor, unit) = if typical < 1e3 {
            (1.0, "ns")
        } else if typical < 1e6 {
            (1e-3, "µs")
        } else if typical < 1e9 {
            (1e-6, "ms")
        } else {
            (1e-9, "s")
        };
        for value in values {
            *value *= factor;
        }
        unit
    }
}

impl ValueFormatter for Nanoseconds {
    fn scale_values(&self, typical: f64, values: &mut [f64]) -> &'static str {
        Self::scale(typical, values)
    }

    /// These benchmarks declare no throughput: report iterations per second.
    fn scale_throughputs(
        &self,
        _typical: f64,
        _throughput: &Throughput,
        values: &mut [f64],
    ) -> &'static str {
        for value in values {
            *value = 1e9 / *value;
        }
        "iter/s"
    }

    fn scale_for_machines(&self, _values: &mut [f64]) -> &'static str {
        "ns"
    }
}
