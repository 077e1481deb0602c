//! The five-id accept/reject rule in wsctx, garde and validator, measured in one run.
//!
//! ```text
//! cargo bench --features serde --bench validation -- --warm-up-time 1 --measurement-time 3
//! ```
//!
//! The rule (`ARCHITECTURE.md`, "Field rules"; `Policy::default()`) for `user_id`, `thread_id`,
//! `run_id`, `request_id` and `websocket_client_id`: trimmed non-empty, at most 256
//! bytes, no control, invisible or ambiguous characters (general categories `Cc`, `Cf`,
//! `Zl`, `Zp`, `Co`, `Cs`, default-ignorable code points, noncharacters; from
//! `icu_properties`), in Unicode NFC (`unicode-normalization`), not a placeholder word,
//! and not a placeholder prefix when shorter than 20 bytes. garde and validator run it through
//! their custom-validator hooks (`#[garde(custom(..))]`, `#[validate(custom(..))]`),
//! both calling [`id_rule`], the rule as their users write it (trim, scan, lowercase once
//! and compare). A fourth line, `garde_tuned`, runs garde with [`id_rule_tuned`], the
//! rule tuned like wsctx's (one pass, ASCII fast path, no allocation), to show how much
//! of the difference is the rule and how much the validation machinery.
//!
//! Groups:
//! - `validate_only/{accept,reject}`: the input is already in memory as `String`s. wsctx
//!   = builder + `validate(&Policy::default(), …)` with every id given (nothing is
//!   generated); garde and validator = `.validate()`. Inputs are cloned in criterion's
//!   untimed setup (`iter_batched`), and outputs are dropped outside the timing.
//! - `json_to_validated/{accept,reject}`: `serde_json::from_str` then validate, timed
//!   end to end (parsing, allocation, validation and dropping).
#![allow(missing_docs, reason = "a benchmark binary")]
#![allow(
    clippy::struct_field_names,
    reason = "the structs mirror the context's wire field names"
)]

use std::hint::black_box;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use icu_properties::props::{
    DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup, NoncharacterCodePoint,
};
use icu_properties::{CodePointMapData, CodePointSetData};

#[path = "support/cpu_clock.rs"]
mod cpu_clock;
use cpu_clock::Clock;
use serde::Deserialize;
use wsctx::state::Raw;
use wsctx::{
    Context, DEFAULT_PLACEHOLDER_PREFIXES, DEFAULT_PLACEHOLDER_WORDS, Policy, UuidGenerator,
};

// ---------------------------------------------------------------------------------------
// The rule, for garde and validator.
// ---------------------------------------------------------------------------------------

/// An invisible or ambiguous character, with the same tables wsctx uses.
fn is_invisible(c: char) -> bool {
    const CATEGORIES: GeneralCategoryGroup = GeneralCategoryGroup::Format
        .union(GeneralCategoryGroup::LineSeparator)
        .union(GeneralCategoryGroup::ParagraphSeparator)
        .union(GeneralCategoryGroup::PrivateUse)
        .union(GeneralCategoryGroup::Surrogate);
    CATEGORIES.contains(CodePointMapData::<GeneralCategory>::new().get(c))
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || CodePointSetData::new::<NoncharacterCodePoint>().contains(c)
}

/// The rule as a garde or validator user writes it: trim, check, lowercase once, compare.
fn id_rule(value: &str) -> Result<(), &'static str> {
    let value = value.trim();
    if value.is_empty() {
        return Err("empty");
    }
    if value.len() > 256 {
        return Err("too_long");
    }
    if value.chars().any(char::is_control) {
        return Err("control_character");
    }
    if value.chars().any(is_invisible) {
        return Err("invisible_character");
    }
    if !unicode_normalization::is_nfc(value) {
        return Err("not_normalized");
    }
    let lower = value.to_lowercase();
    if DEFAULT_PLACEHOLDER_WORDS.contains(&lower.as_str()) {
        return Err("placeholder_word");
    }
    if value.len() < 20
        && DEFAULT_PLACEHOLDER_PREFIXES
            .iter()
            .any(|prefix| lower.starts_with(prefix))
    {
        return Err("placeholder_prefix");
    }
    Ok(())
}

/// The same rule tuned the way wsctx's is: one pass, an ASCII fast path, no allocation.
/// Used only by the `garde_tuned` line, to separate the cost of the validation machinery
/// from the cost of the rule.
fn id_rule_tuned(value: &str) -> Result<(), &'static str> {
    fn fold_eq(value: &str, lower: &str, ascii: bool) -> bool {
        if ascii {
            value.len() == lower.len()
                && value
                    .bytes()
                    .zip(lower.bytes())
                    .all(|(v, l)| v.to_ascii_lowercase() == l)
        } else {
            value.chars().flat_map(char::to_lowercase).eq(lower.chars())
        }
    }
    fn fold_starts_with(value: &str, lower: &str, ascii: bool) -> bool {
        if ascii {
            value
                .get(..lower.len())
                .is_some_and(|head| fold_eq(head, lower, true))
        } else {
            let mut folded = value.chars().flat_map(char::to_lowercase);
            lower.chars().all(|l| folded.next() == Some(l))
        }
    }
    let value = value.trim();
    if value.is_empty() {
        return Err("empty");
    }
    if value.len() > 256 {
        return Err("too_long");
    }
    let ascii = value.is_ascii();
    if ascii {
        if value.bytes().any(|b| b.is_ascii_control()) {
            return Err("control_character");
        }
    } else {
        for c in value.chars() {
            if c.is_control() {
                return Err("control_character");
            }
            if is_invisible(c) {
                return Err("invisible_character");
            }
        }
        if !unicode_normalization::is_nfc(value) {
            return Err("not_normalized");
        }
    }
    if DEFAULT_PLACEHOLDER_WORDS
        .iter()
        .any(|word| fold_eq(value, word, ascii))
    {
        return Err("placeholder_word");
    }
    if value.len() < 20
        && DEFAULT_PLACEHOLDER_PREFIXES
            .iter()
            .any(|prefix| fold_starts_with(value, prefix, ascii))
    {
        return Err("placeholder_prefix");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// garde
// ---------------------------------------------------------------------------------------

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "garde's custom-rule signature"
)]
fn garde_id(value: &str, (): &()) -> garde::Result {
    id_rule(value).map_err(garde::Error::new)
}

#[allow(
    clippy::trivially_copy_pass_by_ref,
    reason = "garde's custom-rule signature"
)]
fn garde_id_tuned(value: &str, (): &()) -> garde::Result {
    id_rule_tuned(value).map_err(garde::Error::new)
}

#[derive(Clone, Debug, Deserialize, garde::Validate)]
struct GardeIds {
    #[garde(custom(garde_id))]
    user_id: String,
    #[garde(custom(garde_id))]
    thread_id: String,
    #[garde(custom(garde_id))]
    run_id: String,
    #[garde(custom(garde_id))]
    request_id: String,
    #[garde(custom(garde_id))]
    websocket_client_id: String,
}

#[derive(Clone, Debug, Deserialize, garde::Validate)]
struct GardeIdsTuned {
    #[garde(custom(garde_id_tuned))]
    user_id: String,
    #[garde(custom(garde_id_tuned))]
    thread_id: String,
    #[garde(custom(garde_id_tuned))]
    run_id: String,
    #[garde(custom(garde_id_tuned))]
    request_id: String,
    #[garde(custom(garde_id_tuned))]
    websocket_client_id: String,
}

// ---------------------------------------------------------------------------------------
// validator
// ---------------------------------------------------------------------------------------

fn validator_id(value: &str) -> Result<(), validator::ValidationError> {
    id_rule(value).map_err(validator::ValidationError::new)
}

#[derive(Clone, Debug, Deserialize, validator::Validate)]
struct ValidatorIds {
    #[validate(custom(function = "validator_id"))]
    user_id: String,
    #[validate(custom(function = "validator_id"))]
    thread_id: String,
    #[validate(custom(function = "validator_id"))]
    run_id: String,
    #[validate(custom(function = "validator_id"))]
    request_id: String,
    #[validate(custom(function = "validator_id"))]
    websocket_client_id: String,
}

// ---------------------------------------------------------------------------------------
// Inputs
// ---------------------------------------------------------------------------------------

/// Five ids, in field order.
type Ids = [String; 5];

fn accept_ids() -> Ids {
    [
        "user-8f14e45f".into(),
        "thread_67e55044-10b1-426f-9247-bb680e5fe0c8".into(),
        "run_0c6f1d1e-5d0c-4b4e-9a51-1b0b6d2f7e11".into(),
        "req_3f2b8c9a-7d4e-4f1a-8b6c-2e9d0a1b3c4d".into(),
        "ws_tab_1".into(),
    ]
}

/// Two failing fields: a placeholder user id and a run id with a bidi override.
fn reject_ids() -> Ids {
    let mut ids = accept_ids();
    ids[0] = " null ".into();
    ids[2] = "run_\u{202E}0c6f1d1e".into();
    ids
}

fn to_json(ids: &Ids) -> String {
    serde_json::json!({
        "user_id": ids[0],
        "thread_id": ids[1],
        "run_id": ids[2],
        "request_id": ids[3],
        "websocket_client_id": ids[4],
    })
    .to_string()
}

/// `fn $name(&Ids) -> $ty` for a struct with the five id fields, in field order.
macro_rules! ids_into {
    ($name:ident -> $ty:ident) => {
        fn $name(ids: &Ids) -> $ty {
            let [user_id, thread_id, run_id, request_id, websocket_client_id] = ids.clone();
            $ty {
                user_id,
                thread_id,
                run_id,
                request_id,
                websocket_client_id,
            }
        }
    };
}

ids_into!(garde_of -> GardeIds);
ids_into!(garde_tuned_of -> GardeIdsTuned);
ids_into!(validator_of -> ValidatorIds);

fn wsctx_raw(ids: Ids) -> Context<Raw> {
    let [user_id, thread_id, run_id, request_id, websocket_client_id] = ids;
    Context::builder()
        .user_id(user_id)
        .thread_id(thread_id)
        .run_id(run_id)
        .request_id(request_id)
        .websocket_client_id(websocket_client_id)
        .build()
}

// ---------------------------------------------------------------------------------------
// Benchmarks
// ---------------------------------------------------------------------------------------

fn sanity_check(policy: &Policy, ids: &dyn wsctx::IdGenerator) {
    use garde::Validate as _;
    use validator::Validate as _;
    let accept = accept_ids();
    let reject = reject_ids();
    assert!(wsctx_raw(accept.clone()).validate(policy, ids).is_ok());
    assert!(wsctx_raw(reject.clone()).validate(policy, ids).is_err());
    assert!(garde_of(&accept).validate().is_ok());
    assert_eq!(
        garde_of(&reject).validate().map_err(|r| r.iter().count()),
        Err(2)
    );
    assert!(validator_of(&accept).validate().is_ok());
    assert_eq!(
        validator_of(&reject)
            .validate()
            .map_err(|e| e.field_errors().len()),
        Err(2)
    );
}

/// Benches `.validate()` on a struct built from `$input` by `$of` in the untimed setup.
macro_rules! bench_prepared {
    ($group:ident, $input:ident, $label:literal => $of:ident) => {
        $group.bench_function($label, |b| {
            b.iter_batched(
                || $of(&$input),
                |ids| {
                    let outcome = black_box(&ids).validate();
                    (ids, outcome)
                },
                BatchSize::NumIterations(64),
            );
        });
    };
}

/// Benches `serde_json::from_str::<$ty>` then `.validate()`, timed end to end.
macro_rules! bench_from_json {
    ($group:ident, $json:ident, $label:literal => $ty:ty) => {
        $group.bench_function($label, |b| {
            b.iter(|| {
                let ids: $ty = serde_json::from_str(black_box(&$json)).expect("well-formed JSON");
                ids.validate().map(|()| ids)
            });
        });
    };
}

fn validate_only(c: &mut Criterion<Clock>) {
    use garde::Validate as _;
    use validator::Validate as _;
    let policy = Policy::default();
    let generator = UuidGenerator::new();
    sanity_check(&policy, &generator);

    for (name, input) in [("accept", accept_ids()), ("reject", reject_ids())] {
        let mut group = c.benchmark_group(format!("validate_only/{name}"));
        group.bench_function("wsctx", |b| {
            b.iter_batched(
                || input.clone(),
                |ids| wsctx_raw(ids).validate(black_box(&policy), &generator),
                BatchSize::NumIterations(64),
            );
        });
        bench_prepared!(group, input, "garde" => garde_of);
        bench_prepared!(group, input, "garde_tuned" => garde_tuned_of);
        bench_prepared!(group, input, "validator" => validator_of);
        group.finish();
    }
}

fn json_to_validated(c: &mut Criterion<Clock>) {
    use garde::Validate as _;
    use validator::Validate as _;
    let policy = Policy::default();
    let generator = UuidGenerator::new();

    for (name, input) in [("accept", accept_ids()), ("reject", reject_ids())] {
        let json = to_json(&input);
        let mut group = c.benchmark_group(format!("json_to_validated/{name}"));
        group.bench_function("wsctx", |b| {
            b.iter(|| {
                let raw: Context<Raw> =
                    serde_json::from_str(black_box(&json)).expect("well-formed JSON");
                raw.validate(&policy, &generator)
            });
        });
        bench_from_json!(group, json, "garde" => GardeIds);
        bench_from_json!(group, json, "garde_tuned" => GardeIdsTuned);
        bench_from_json!(group, json, "validator" => ValidatorIds);
        group.finish();
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default().with_measurement(Clock::from_env());
    targets = json_to_validated, validate_only
}
criterion_main!(benches);
