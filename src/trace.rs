//! Crate-private tracing shims: with the `tracing` feature they forward to `tracing`,
//! without it they expand to nothing (their arguments are not evaluated). Callers pass
//! field names and error codes only, never values.

#[cfg(feature = "tracing")]
macro_rules! event {
    ($level:ident, $($arg:tt)*) => { ::tracing::$level!(target: "wsctx", $($arg)*) };
}

#[cfg(not(feature = "tracing"))]
macro_rules! event {
    ($level:ident, $($arg:tt)*) => {};
}

macro_rules! debug_event {
    ($($arg:tt)*) => { $crate::trace::event!(debug, $($arg)*) };
}

macro_rules! warn_event {
    ($($arg:tt)*) => { $crate::trace::event!(warn, $($arg)*) };
}

pub(crate) use {debug_event, event, warn_event};
