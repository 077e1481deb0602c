//! Crate-private tracing shims: with the `tracing` feature they forward to `tracing`,
//! without it they expand to nothing. Callers pass field names and error codes only,
//! never values.

#[cfg(feature = "tracing")]
macro_rules! debug_event {
    ($($arg:tt)*) => { ::tracing::debug!(target: "wsctx", $($arg)*) };
}

#[cfg(not(feature = "tracing"))]
macro_rules! debug_event {
    ($($arg:tt)*) => {};
}

#[cfg(feature = "tracing")]
macro_rules! warn_event {
    ($($arg:tt)*) => { ::tracing::warn!(target: "wsctx", $($arg)*) };
}

#[cfg(not(feature = "tracing"))]
macro_rules! warn_event {
    ($($arg:tt)*) => {};
}

pub(crate) use debug_event;
pub(crate) use warn_event;
