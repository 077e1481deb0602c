//! Fuzz checks for wsctx. Each fuzz target in `fuzz_targets/` is one line that calls a
//! function of [`checks`]; `tests/fuzz_seeds.rs` in the main crate includes the same
//! file to replay the committed seeds on stable.

pub mod checks;
pub mod checks_http;
