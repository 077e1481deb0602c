//! Replays every committed fuzz seed (`fuzz/corpus/<target>/*`) through the same checks
//! the fuzz targets run (`fuzz/src/checks.rs`), on stable and without cargo-fuzz.
//!
//! Run with `cargo test --features serde --test fuzz_seeds`.
#![cfg(feature = "serde")]

use std::fs;
use std::panic::{self, AssertUnwindSafe};
use std::path::{Path, PathBuf};

#[path = "../fuzz/src/checks.rs"]
pub mod checks;

#[cfg(feature = "http")]
#[path = "../fuzz/src/checks_http.rs"]
pub mod checks_http;

/// The committed seeds of `target`, sorted by name.
fn seeds(target: &str) -> Vec<PathBuf> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target);
    let mut files: Vec<PathBuf> = fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|entry| entry.expect("a readable directory entry").path())
        .filter(|path| path.is_file())
        .collect();
    files.sort();
    files
}

/// Runs `check` on every seed of `target`; fails naming every seed that panicked.
fn replay(target: &str, min_seeds: usize, check: fn(&[u8])) {
    let files = seeds(target);
    assert!(
        files.len() >= min_seeds,
        "{target}: expected at least {min_seeds} seeds, found {}",
        files.len()
    );
    let failed: Vec<String> = files
        .iter()
        .filter_map(|path| {
            let data = fs::read(path).expect("a readable seed");
            panic::catch_unwind(AssertUnwindSafe(|| check(&data)))
                .err()
                .map(|_| path.display().to_string())
        })
        .collect();
    assert!(failed.is_empty(), "{target}: seeds failed: {failed:#?}");
}

/// One `#[test]` per fuzz target: `name: target, min_seeds, check`.
macro_rules! seed_tests {
    ($($(#[$attr:meta])* $name:ident: $target:literal, $min:literal, $check:path;)+) => {$(
        $(#[$attr])*
        #[test]
        fn $name() {
            replay($target, $min, $check);
        }
    )+};
}

seed_tests! {
    validate_json_seeds_pass: "validate_json", 20, checks::validate_json;
    field_rule_seeds_pass: "field_rule", 20, checks::field_rule;
    #[cfg(feature = "http")]
    token_extraction_seeds_pass: "token_extraction", 8, checks_http::token_extraction;
    close_reason_seeds_pass: "close_reason", 6, checks::close_reason;
}

/// The checks' naive model is right on hand-picked cases, so agreeing with it means
/// something.
#[test]
fn the_naive_model_is_right_on_known_cases() {
    use wsctx::{FieldErrorKind, IdError};
    let invisible = || Err(vec![IdError::InvisibleCharacter]);
    let structure_cases: [(&str, Result<String, Vec<IdError>>); 10] = [
        (" \u{3000}", Err(vec![IdError::Empty])),
        ("a\u{202E}b", invisible()),
        ("\u{85}ab\u{85}", Ok("ab".to_owned())),
        // The look-alike classes and NFC.
        ("alice\u{AD}", invisible()),
        ("a\u{2028}b", invisible()),
        ("\u{3164}", invisible()),
        ("x\u{FE0F}", invisible()),
        ("\u{E000}", invisible()),
        ("jose\u{301}", Err(vec![IdError::NotNormalized])),
        ("jos\u{e9}", Ok("jos\u{e9}".to_owned())),
    ];
    for (input, expected) in structure_cases {
        assert_eq!(checks::model::structure(input), expected, "{input:?}");
    }
    assert_eq!(
        checks::model::policy(" MOC\u{212A} "),
        Err(FieldErrorKind::PlaceholderWord)
    );
    assert_eq!(
        checks::model::policy("test_user_1234567890"),
        Ok(()),
        "20 bytes: the prefix rule no longer applies"
    );
    assert_eq!(checks::model::nfc("\u{212A}"), "K");
    assert!(checks::model::is_default_ignorable('\u{1160}'));
    assert!(checks::model::is_default_ignorable('\u{E0FFF}'));
    assert!(!checks::model::is_default_ignorable('\u{1161}'));
    assert!(checks::model::is_noncharacter('\u{FDEF}'));
    assert!(checks::model::is_noncharacter('\u{8FFFF}'));
    assert!(!checks::model::is_noncharacter('\u{FFFD}'));
    assert!(!checks::model::is_invisible('\u{2010}'));
}
