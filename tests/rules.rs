//! Table-driven tests of the structural rule and the default policy, with exact messages.

use wsctx::{
    Context, ContextError, DEFAULT_PLACEHOLDER_PREFIXES, DEFAULT_PLACEHOLDER_WORDS, Field,
    FieldErrorKind, IdError, Policy, RequestId, RunId, SequenceGenerator, ThreadId, UserId,
    WebSocketClientId,
};

/// Validates a context whose only given field is `user_id`, returning the user id's error.
#[track_caller]
fn user_id_error(value: &str) -> Option<FieldErrorKind> {
    user_id_error_with(&Policy::default(), value)
}

#[track_caller]
fn user_id_error_with(policy: &Policy, value: &str) -> Option<FieldErrorKind> {
    match Context::builder()
        .user_id(value)
        .build()
        .validate(policy, &SequenceGenerator::new())
    {
        Ok(_) => None,
        Err(ContextError::Invalid(error)) => {
            assert_eq!(error.len(), 1, "only user_id was given: {error}");
            assert_eq!(error.errors()[0].field(), Field::UserId);
            Some(error.errors()[0].kind())
        }
        Err(other) => panic!("unexpected internal error: {other}"),
    }
}

#[test]
fn structural_rule_table() {
    let cases: &[(&str, Result<&str, IdError>)] = &[
        ("alice", Ok("alice")),
        ("  alice  ", Ok("alice")),
        ("\t\nalice\u{3000}\u{85}", Ok("alice")),
        ("a b", Ok("a b")),
        ("", Err(IdError::Empty)),
        ("   ", Err(IdError::Empty)),
        ("\u{3000}\u{2028}", Err(IdError::Empty)),
        ("a\u{0}b", Err(IdError::ControlCharacter)),
        ("a\u{7f}b", Err(IdError::ControlCharacter)),
        ("a\u{9f}b", Err(IdError::ControlCharacter)),
        ("a\u{1b}[31m", Err(IdError::ControlCharacter)),
        ("\u{200B}alice", Err(IdError::InvisibleCharacter)),
        ("ali\u{200F}ce", Err(IdError::InvisibleCharacter)),
        ("alice\u{202A}", Err(IdError::InvisibleCharacter)),
        ("\u{202E}ecila", Err(IdError::InvisibleCharacter)),
        ("a\u{2060}", Err(IdError::InvisibleCharacter)),
        ("a\u{2064}", Err(IdError::InvisibleCharacter)),
        ("a\u{2066}b\u{2069}", Err(IdError::InvisibleCharacter)),
        ("\u{FEFF}alice", Err(IdError::InvisibleCharacter)),
        // Neighbours of the refused ranges are accepted.
        ("a\u{2010}b", Ok("a\u{2010}b")),
        // U+2065 is unassigned, but reserved as default-ignorable: refused.
        ("a\u{2065}b", Err(IdError::InvisibleCharacter)),
    ];
    for (input, expected) in cases {
        assert_eq!(
            UserId::try_new(*input).map(UserId::into_inner).as_deref(),
            expected.as_deref(),
            "input {input:?}"
        );
    }
}

#[test]
fn length_boundary_is_256_bytes_after_trimming() {
    let ascii_256 = "a".repeat(256);
    let ascii_257 = "a".repeat(257);
    assert!(UserId::try_new(ascii_256.clone()).is_ok());
    assert_eq!(UserId::try_new(ascii_257).unwrap_err(), IdError::TooLong);
    // Surrounding whitespace does not count.
    assert!(UserId::try_new(format!("   {ascii_256}   ")).is_ok());

    // Multi-byte: 128 two-byte characters are 256 bytes; one more byte is too many.
    let two_byte_256 = "é".repeat(128);
    assert_eq!(two_byte_256.len(), 256);
    assert!(ThreadId::try_new(two_byte_256.clone()).is_ok());
    assert_eq!(
        ThreadId::try_new(format!("{two_byte_256}a")).unwrap_err(),
        IdError::TooLong
    );
    // 64 four-byte characters: 256 bytes, but only 64 characters.
    let four_byte_256 = "😀".repeat(64);
    assert!(RunId::try_new(four_byte_256.clone()).is_ok());
    assert_eq!(
        RunId::try_new(format!("{four_byte_256}😀")).unwrap_err(),
        IdError::TooLong
    );
    // 85 three-byte characters are 255 bytes; 86 are 258.
    assert!(RequestId::try_new("€".repeat(85)).is_ok());
    assert_eq!(
        RequestId::try_new("€".repeat(86)).unwrap_err(),
        IdError::TooLong
    );
}

#[test]
fn every_newtype_applies_the_same_rule() {
    for input in ["ok-id", "", "x\u{202E}", &"z".repeat(300)] {
        let expected = UserId::try_new(input).map(UserId::into_inner);
        assert_eq!(ThreadId::try_new(input).map(ThreadId::into_inner), expected);
        assert_eq!(RunId::try_new(input).map(RunId::into_inner), expected);
        assert_eq!(
            RequestId::try_new(input).map(RequestId::into_inner),
            expected
        );
        assert_eq!(
            WebSocketClientId::try_new(input).map(WebSocketClientId::into_inner),
            expected
        );
    }
}

#[test]
fn every_placeholder_word_is_refused_in_any_case_with_whitespace() {
    assert_eq!(DEFAULT_PLACEHOLDER_WORDS.len(), 19);
    for word in DEFAULT_PLACEHOLDER_WORDS {
        let upper = word.to_uppercase();
        let mixed: String = word
            .chars()
            .enumerate()
            .map(|(i, c)| {
                if i % 2 == 0 {
                    c.to_ascii_uppercase()
                } else {
                    c
                }
            })
            .collect();
        for variant in [
            word.to_owned(),
            upper,
            mixed,
            format!(" {word} "),
            format!("\t{word}\u{3000}"),
        ] {
            assert_eq!(
                user_id_error(&variant),
                Some(FieldErrorKind::PlaceholderWord),
                "{variant:?}"
            );
        }
        // Words are exact matches, not prefixes or substrings.
        assert_eq!(user_id_error(&format!("{word}x9")), None, "{word}x9");
        assert_eq!(user_id_error(&format!("my-{word}")), None, "my-{word}");
    }
}

#[test]
fn placeholder_prefixes_apply_below_20_bytes_only() {
    assert_eq!(DEFAULT_PLACEHOLDER_PREFIXES.len(), 11);
    for prefix in DEFAULT_PLACEHOLDER_PREFIXES {
        let short = format!("{prefix}x");
        assert_eq!(
            user_id_error(&short),
            Some(FieldErrorKind::PlaceholderPrefix),
            "{short:?}"
        );
        assert_eq!(
            user_id_error(&short.to_uppercase()),
            Some(FieldErrorKind::PlaceholderPrefix)
        );
        let nineteen = format!("{prefix}{}", "9".repeat(19 - prefix.len()));
        let twenty = format!("{prefix}{}", "9".repeat(20 - prefix.len()));
        assert_eq!(nineteen.len(), 19);
        assert_eq!(
            user_id_error(&nineteen),
            Some(FieldErrorKind::PlaceholderPrefix),
            "{nineteen:?}"
        );
        assert_eq!(user_id_error(&twenty), None, "{twenty:?}");
    }
    // The original system's documented boundary.
    assert_eq!(
        user_id_error("test_user_123456789"),
        Some(FieldErrorKind::PlaceholderPrefix)
    );
    assert_eq!(user_id_error("test_user_1234567890"), None);
    // Trimmed length decides: whitespace does not push a short value past 20 bytes.
    assert_eq!(
        user_id_error("      test_x        "),
        Some(FieldErrorKind::PlaceholderPrefix)
    );
    assert_eq!(user_id_error("dummy_x"), None);
    assert_eq!(user_id_error("null_x"), None);
}

#[test]
fn policy_is_adjustable_in_code() {
    let numeric = Policy::default().allow_word("1");
    let stricter = Policy::default().deny_word("Guest").deny_prefix("ANON_");
    let permissive = Policy::permissive();
    let cases = [
        (&numeric, "1", None),
        (&numeric, "0", Some(FieldErrorKind::PlaceholderWord)),
        (&stricter, " guest ", Some(FieldErrorKind::PlaceholderWord)),
        (&stricter, "anon_7", Some(FieldErrorKind::PlaceholderPrefix)),
        (&permissive, "test", None),
        // The structural rule is not part of the policy: a permissive policy still refuses it.
        (
            &permissive,
            "\u{202E}x",
            Some(FieldErrorKind::InvisibleCharacter),
        ),
    ];
    for (policy, value, expected) in cases {
        assert_eq!(user_id_error_with(policy, value), expected, "{value:?}");
    }
}

#[test]
fn exact_messages() {
    let cases = [
        ("", "invalid context: user_id is empty"),
        ("   ", "invalid context: user_id is empty"),
        (" null ", "invalid context: user_id is a placeholder value"),
        (
            "test_x",
            "invalid context: user_id starts with a placeholder prefix",
        ),
        (
            "a\u{1}",
            "invalid context: user_id contains a control character",
        ),
        (
            "\u{202E}x",
            "invalid context: user_id contains an invisible formatting character",
        ),
    ];
    for (input, message) in cases {
        let error = Context::builder()
            .user_id(input)
            .build()
            .validate(&Policy::default(), &SequenceGenerator::new())
            .unwrap_err();
        assert_eq!(error.to_string(), message, "{input:?}");
    }
    let long = Context::builder()
        .user_id("x".repeat(10_000))
        .build()
        .validate(&Policy::default(), &SequenceGenerator::new())
        .unwrap_err();
    assert_eq!(
        long.to_string(),
        "invalid context: user_id is longer than 256 bytes"
    );
    let missing = Context::builder()
        .build()
        .validate(&Policy::default(), &SequenceGenerator::new())
        .unwrap_err();
    assert_eq!(missing.to_string(), "invalid context: user_id is missing");
}

#[test]
fn a_one_mebibyte_id_is_rejected_in_linear_time() {
    // A quadratic rule would take minutes on these inputs; a linear one takes
    // milliseconds. No wall-clock assertion: the test harness timeout is the guard.
    let huge = "a".repeat(1 << 20);
    let padded = format!("{}{huge}{}", " ".repeat(1 << 19), " ".repeat(1 << 19));
    let invisible_last = format!("{}\u{202E}", "é".repeat(1 << 19));
    for _ in 0..20 {
        assert_eq!(
            UserId::try_new(huge.as_str()).unwrap_err(),
            IdError::TooLong
        );
        assert_eq!(
            UserId::try_new(padded.as_str()).unwrap_err(),
            IdError::TooLong
        );
        assert_eq!(
            UserId::try_new(invisible_last.as_str()).unwrap_err(),
            IdError::TooLong
        );
        assert_eq!(
            user_id_error(&huge),
            Some(FieldErrorKind::TooLong),
            "through validate"
        );
    }
}

/// Each `(what, value)` is refused with `error` by the newtype and, as the matching
/// field error kind, by validation.
#[track_caller]
fn assert_all_refused(cases: &[(&str, &str)], error: IdError) {
    for (what, value) in cases {
        assert_eq!(UserId::try_new(*value).unwrap_err(), error, "{what}");
        assert_eq!(user_id_error(value), Some(error.into()), "{what}");
    }
}

/// Characters that render as nothing or change rendering make ids that look like other
/// ids: every class is refused, whichever field carries it, with its own kind.
#[test]
fn look_alike_characters_are_refused() {
    let invisible = [
        ("soft hyphen", "alice\u{AD}"),
        ("line separator", "ali\u{2028}ce"),
        ("paragraph separator", "ali\u{2029}ce"),
        ("arabic letter mark", "\u{61C}alice"),
        ("mongolian vowel separator", "ali\u{180E}ce"),
        ("combining grapheme joiner", "alice\u{34F}"),
        ("hangul choseong filler", "\u{115F}alice"),
        ("hangul filler", "alice\u{3164}"),
        ("halfwidth hangul filler", "alice\u{FFA0}"),
        ("variation selector 16", "alice\u{FE0F}"),
        ("variation selector 17", "alice\u{E0100}"),
        ("mongolian free variation selector", "alice\u{180B}"),
        ("tag latin small a", "alice\u{E0061}"),
        ("cancel tag", "alice\u{E007F}"),
        ("private use", "alice\u{E000}"),
        ("supplementary private use", "alice\u{F0000}"),
        ("noncharacter U+FDD0", "alice\u{FDD0}"),
        ("noncharacter U+FFFE", "alice\u{FFFE}"),
        ("noncharacter U+10FFFF", "alice\u{10FFFF}"),
        ("interlinear annotation", "alice\u{FFF9}"),
        ("arabic number sign", "\u{600}42"),
    ];
    assert_all_refused(&invisible, IdError::InvisibleCharacter);
    // `alice` and `alice` + U+00AD are not two users: the second is refused.
    assert!(UserId::try_new("alice").is_ok());
    // Not every format-looking character is refused: visible ones stay.
    for visible in [
        "al-ice",
        "alice\u{2010}",
        "al\u{A0}ice",
        "日本",
        "🙂",
        "\u{FFFD}",
    ] {
        assert_eq!(user_id_error(visible), None, "{visible:?}");
    }
}

/// A value not already in NFC is refused, never rewritten: `"e\u{301}"` and `"\u{e9}"`
/// render the same and must not become two users.
#[test]
fn values_not_in_nfc_are_refused() {
    let not_nfc = [
        ("decomposed e acute", "jos\u{65}\u{301}"),
        ("decomposed A ring", "A\u{30A}ngstr\u{f6}m"),
        ("marks out of canonical order", "a\u{301}\u{316}"),
        ("kelvin sign", "\u{212A}elvin"),
        ("ohm sign", "\u{2126}"),
        ("cjk compatibility ideograph", "\u{F900}"),
        ("hangul jamo", "\u{1100}\u{1161}"),
        ("interior en quad", "a\u{2000}b"),
    ];
    assert_all_refused(&not_nfc, IdError::NotNormalized);
    for nfc in [
        "jos\u{e9}",
        "\u{c5}ngstr\u{f6}m",
        "\u{e1}\u{316}",
        "K",
        "\u{3a9}",
        "\u{8c48}",
        "\u{ac00}",
    ] {
        assert_eq!(user_id_error(nfc), None, "{nfc:?}");
    }
    // Whitespace is trimmed before the check: U+2000 at the edges is padding.
    assert_eq!(
        UserId::try_new("\u{2000}bob\u{2000}").map(UserId::into_inner),
        Ok("bob".to_owned())
    );
    let error = Context::builder()
        .user_id("e\u{301}")
        .build()
        .validate(&Policy::default(), &SequenceGenerator::new())
        .unwrap_err();
    assert_eq!(
        error.to_string(),
        "invalid context: user_id is not in unicode normalization form c"
    );
}

/// Words and prefixes configured in code are stored trimmed and folded exactly as
/// `check` folds its input, so each of them can match.
#[test]
fn configured_words_and_prefixes_match_what_they_name() {
    let policy = Policy::permissive()
        .deny_word("ΟΔΟΣ")
        .deny_word(" admin ")
        .deny_word("E\u{301}VE")
        .deny_prefix(" ANON_ ")
        .deny_prefix("ΣΟΦΟΣ");
    assert_eq!(policy.check("ΟΔΟΣ"), Err(FieldErrorKind::PlaceholderWord));
    assert_eq!(policy.check("οδοσ"), Err(FieldErrorKind::PlaceholderWord));
    assert_eq!(policy.check("admin"), Err(FieldErrorKind::PlaceholderWord));
    assert_eq!(
        policy.check(" Admin "),
        Err(FieldErrorKind::PlaceholderWord)
    );
    assert_eq!(
        policy.check("\u{c9}ve"),
        Err(FieldErrorKind::PlaceholderWord)
    );
    assert_eq!(
        policy.check("anon_1"),
        Err(FieldErrorKind::PlaceholderPrefix)
    );
    assert_eq!(
        policy.check("ΣΟΦΟΣ_1"),
        Err(FieldErrorKind::PlaceholderPrefix)
    );
    assert_eq!(
        policy.words().collect::<Vec<_>>(),
        ["οδοσ", "admin", "\u{e9}ve"]
    );
    assert_eq!(policy.prefixes().collect::<Vec<_>>(), ["anon_", "σοφοσ"]);
    // Through validation, on any id field.
    for value in ["ΟΔΟΣ", "admin"] {
        assert_eq!(
            user_id_error_with(&policy, value),
            Some(FieldErrorKind::PlaceholderWord),
            "{value:?}"
        );
    }
    // Allowing folds the same way, so it removes what denying added.
    let relaxed = policy
        .allow_word(" ΟΔΟΣ")
        .allow_word("ADMIN ")
        .allow_prefix("anon_ ");
    assert_eq!(relaxed.check("ΟΔΟΣ"), Ok(()));
    assert_eq!(relaxed.check("admin"), Ok(()));
    assert_eq!(relaxed.check("anon_1"), Ok(()));
    assert_eq!(
        relaxed.check("\u{c9}ve"),
        Err(FieldErrorKind::PlaceholderWord)
    );
}
