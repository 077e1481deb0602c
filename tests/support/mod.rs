//! Helpers shared by the test crates. Each crate declares `mod support;` and uses the
//! part it needs.
#![allow(dead_code, reason = "each test crate uses a part of the helpers")]

pub(crate) mod contexts;
pub(crate) mod errors;
pub(crate) mod full;
pub(crate) mod jwt;
#[cfg(feature = "metrics")]
pub(crate) mod metrics;
pub(crate) mod raw;
pub(crate) mod verifiers;
