//! The field rules: the structural rule every id obeys, and the [`Policy`] that
//! [`Context::validate`](crate::Context::validate) applies on top of it.
//!
//! This module is the single source of truth for what an acceptable id is. The
//! newtypes in [`crate::id`] call [`check_structure_trimmed`]; the policy checks call
//! [`Policy::check`]. Neither allocates when a value is accepted (the NFC check may,
//! for a run of more than four combining marks).

use std::borrow::Cow;

use icu_properties::props::{
    DefaultIgnorableCodePoint, GeneralCategory, GeneralCategoryGroup, NoncharacterCodePoint,
};
use icu_properties::{CodePointMapData, CodePointSetData};
use unicode_normalization::UnicodeNormalization as _;

use crate::error::{FieldErrorKind, IdError};

/// The longest id, in bytes after trimming, that the structural rule accepts.
pub const MAX_ID_BYTES: usize = 256;

/// Placeholder prefixes are only checked on values shorter than this many bytes.
pub const PLACEHOLDER_PREFIX_MAX_BYTES: usize = 20;

/// The exact placeholder words of [`Policy::default`] (the original system's list).
pub const DEFAULT_PLACEHOLDER_WORDS: [&str; 19] = [
    "registry",
    "placeholder",
    "default",
    "temp",
    "none",
    "null",
    "undefined",
    "0",
    "1",
    "xxx",
    "yyy",
    "example",
    "test",
    "demo",
    "sample",
    "template",
    "mock",
    "fake",
    "dummy",
];

/// The placeholder prefixes of [`Policy::default`] (the original system's list).
pub const DEFAULT_PLACEHOLDER_PREFIXES: [&str; 11] = [
    "placeholder_",
    "registry_",
    "default_",
    "temp_",
    "test_",
    "example_",
    "demo_",
    "sample_",
    "template_",
    "mock_",
    "fake_",
];

/// The general categories an id may not contain besides `Cc` (which has its own error):
/// format characters (`Cf`: zero-width, bidi, soft hyphen, tags), line and paragraph
/// separators (`Zl`, `Zp`), private-use characters (`Co`) and surrogates (`Cs`, which a
/// `str` cannot hold anyway).
const REFUSED_CATEGORIES: GeneralCategoryGroup = GeneralCategoryGroup::Format
    .union(GeneralCategoryGroup::LineSeparator)
    .union(GeneralCategoryGroup::ParagraphSeparator)
    .union(GeneralCategoryGroup::PrivateUse)
    .union(GeneralCategoryGroup::Surrogate);

/// Why the character `c` may not appear in an id, if it may not: a control character
/// (general category `Cc`), or an invisible or ambiguous one (general category `Cf`,
/// `Zl`, `Zp`, `Co` or `Cs`, `Default_Ignorable_Code_Point`, or
/// `Noncharacter_Code_Point`).
///
/// The classes come from ICU4X's compiled Unicode tables (`icu_properties`), not from
/// hand-written ranges.
#[must_use]
pub(crate) fn refused_character(c: char) -> Option<IdError> {
    let category = CodePointMapData::<GeneralCategory>::new().get(c);
    if category == GeneralCategory::Control {
        Some(IdError::ControlCharacter)
    } else if REFUSED_CATEGORIES.contains(category)
        || CodePointSetData::new::<DefaultIgnorableCodePoint>().contains(c)
        || CodePointSetData::new::<NoncharacterCodePoint>().contains(c)
    {
        Some(IdError::InvisibleCharacter)
    } else {
        None
    }
}

/// The code point ranges [`refused_character`] refuses as invisible (everything but
/// `Cc`), straight from its tables, without surrogates (no `char` is one). They overlap
/// (a format character is also default-ignorable). For the property-test strategies.
#[cfg(feature = "proptest")]
pub(crate) fn invisible_ranges() -> Vec<std::ops::RangeInclusive<u32>> {
    const SURROGATES: std::ops::RangeInclusive<u32> = 0xD800..=0xDFFF;
    let categories =
        CodePointMapData::<GeneralCategory>::new().iter_ranges_for_group(REFUSED_CATEGORIES);
    let ignorable = CodePointSetData::new::<DefaultIgnorableCodePoint>().iter_ranges();
    let noncharacters = CodePointSetData::new::<NoncharacterCodePoint>().iter_ranges();
    // Adjacent refused categories come as one range (the surrogates run straight into
    // the private-use area): keep what lies on either side of the surrogates.
    categories
        .chain(ignorable)
        .chain(noncharacters)
        .flat_map(|range| {
            let (start, end) = range.into_inner();
            let below = start..=end.min(SURROGATES.start() - 1);
            let above = start.max(SURROGATES.end() + 1)..=end;
            [below, above]
        })
        .filter(|range| !range.is_empty())
        .collect()
}

/// Applies the structural rule to `value` and returns the trimmed slice it accepts.
///
/// The rule: trim Unicode whitespace, then the value must be non-empty, at most
/// [`MAX_ID_BYTES`] bytes, free of the characters [`refused_character`] refuses, and
/// already in Unicode Normalization Form C (a value in another form is refused, never
/// rewritten). Runs in time linear in the length of `value`: the length is checked
/// before any character is decoded.
pub(crate) fn check_structure(value: &str) -> Result<&str, IdError> {
    let trimmed = value.trim();
    check_structure_trimmed(trimmed)?;
    Ok(trimmed)
}

/// [`check_structure`] for a value that is already trimmed (the id newtypes trim in
/// their sanitizer, before their validator runs).
pub(crate) fn check_structure_trimmed(trimmed: &str) -> Result<(), IdError> {
    if trimmed.is_empty() {
        return Err(IdError::Empty);
    }
    if trimmed.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong);
    }
    // The only refused ASCII characters are the control bytes (no ASCII character is
    // `Cf`, `Zl`, `Zp`, `Co`, default-ignorable or a noncharacter), and ASCII text is
    // always in NFC, so an ASCII value needs neither UTF-8 decoding nor the tables. A
    // unit test checks this against the tables for all 128 ASCII characters.
    match ascii_scan(trimmed.as_bytes()) {
        AsciiScan::Clean => Ok(()),
        AsciiScan::Control => Err(IdError::ControlCharacter),
        AsciiScan::NotAscii => check_unicode(trimmed),
    }
}

/// The structural rule for a value with at least one non-ASCII character: every
/// character (the ASCII ones without the tables, as in the fast path), then NFC.
fn check_unicode(trimmed: &str) -> Result<(), IdError> {
    let refused = |c: char| {
        if c.is_ascii() {
            c.is_ascii_control().then_some(IdError::ControlCharacter)
        } else {
            refused_character(c)
        }
    };
    if let Some(error) = trimmed.chars().find_map(refused) {
        return Err(error);
    }
    if !unicode_normalization::is_nfc(trimmed) {
        return Err(IdError::NotNormalized);
    }
    Ok(())
}

/// What [`ascii_scan`] found.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AsciiScan {
    /// ASCII without control bytes.
    Clean,
    /// ASCII with a control byte (U+0000–U+001F or U+007F).
    Control,
    /// At least one byte is not ASCII: decode and check character by character.
    NotAscii,
}

/// Scans `bytes` eight at a time (SWAR): one pass tells whether they are ASCII and, if
/// so, whether any is a control byte.
fn ascii_scan(bytes: &[u8]) -> AsciiScan {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let (words, rest) = bytes.as_chunks::<8>();
    let mut high = 0;
    let mut control = 0;
    for word in words {
        let w = u64::from_le_bytes(*word);
        high |= w;
        // A byte below 0x20 (exact as a yes/no for ASCII bytes; any other byte sets
        // `high` and sends the value to the slow path anyway).
        control |= w.wrapping_sub(0x20 * ONES) & !w;
        // A byte equal to 0x7F: a zero byte of `w ^ 0x7F…7F`.
        let x = w ^ (0x7F * ONES);
        control |= x.wrapping_sub(ONES) & !x;
    }
    for &b in rest {
        high |= u64::from(b);
        control |= u64::from(b < 0x20 || b == 0x7F) << 7;
    }
    if high & HIGH != 0 {
        AsciiScan::NotAscii
    } else if control & HIGH != 0 {
        AsciiScan::Control
    } else {
        AsciiScan::Clean
    }
}

/// Compares `value` with `lower` (already lowercase) under Unicode lowercasing,
/// without allocating.
fn eq_lowercase(value: &str, lower: &str) -> bool {
    value.chars().flat_map(char::to_lowercase).eq(lower.chars())
}

/// Whether `value`, lowercased, starts with `lower` (already lowercase), without allocating.
fn starts_with_lowercase(value: &str, lower: &str) -> bool {
    let mut folded = value.chars().flat_map(char::to_lowercase);
    lower
        .chars()
        .all(|expected| folded.next() == Some(expected))
}

/// [`eq_lowercase`] for an ASCII `value`: every ASCII character lowercases to exactly one
/// ASCII character, so the folded value has the same bytes as `value` in ASCII lowercase.
fn ascii_eq_lowercase(value: &[u8], lower: &[u8]) -> bool {
    value.len() == lower.len()
        && value
            .iter()
            .zip(lower)
            .all(|(v, l)| v.to_ascii_lowercase() == *l)
}

/// [`starts_with_lowercase`] for an ASCII `value` (see [`ascii_eq_lowercase`]).
fn ascii_starts_with_lowercase(value: &[u8], lower: &[u8]) -> bool {
    value
        .get(..lower.len())
        .is_some_and(|head| ascii_eq_lowercase(head, lower))
}

/// The deployment's policy on top of the structural rule: which placeholder words and
/// prefixes are refused.
///
/// `Policy::default()` is the original system's list (see [`DEFAULT_PLACEHOLDER_WORDS`]
/// and [`DEFAULT_PLACEHOLDER_PREFIXES`]). It is a typed value built in code and never
/// switched by environment variables: a test deployment and a production deployment
/// apply the same rule unless their code says otherwise.
///
/// Words are compared case-insensitively with the trimmed value; prefixes are checked
/// case-insensitively, and only when the trimmed value is shorter than
/// [`PLACEHOLDER_PREFIX_MAX_BYTES`] bytes.
///
/// # Examples
///
/// A deployment whose user ids are integers must be able to accept `"1"`:
///
/// ```
/// use wsctx::{FieldErrorKind, Policy};
///
/// let strict = Policy::default();
/// assert_eq!(strict.check("1"), Err(FieldErrorKind::PlaceholderWord));
///
/// let numeric = Policy::default().allow_word("1").allow_word("0");
/// assert_eq!(numeric.check("1"), Ok(()));
/// assert_eq!(numeric.check("null"), Err(FieldErrorKind::PlaceholderWord));
/// ```
#[derive(Clone, PartialEq, Eq)]
pub struct Policy {
    words: Vec<Cow<'static, str>>,
    prefixes: Vec<Cow<'static, str>>,
    /// Derived from the lists (rebuilt on every change): lets an ASCII value skip them.
    ascii: AsciiIndex,
}

/// What an ASCII value can match. An ASCII value lowercases to ASCII of the same length,
/// so it can only equal an ASCII word of its own length, and only start with an ASCII
/// prefix whose first byte is its own first byte in lowercase.
#[derive(Clone, Copy, Default, PartialEq, Eq)]
struct AsciiIndex {
    /// Bit `n` is set when an ASCII word has `n` bytes; bit 63 stands for 63 and more.
    word_lengths: u64,
    /// Bit `b` is set when an ASCII prefix starts with byte `b`; all bits for `""`.
    prefix_starts: u128,
}

impl AsciiIndex {
    const fn length_bit(len: usize) -> u64 {
        1 << if len < 63 { len } else { 63 }
    }

    fn new(words: &[Cow<'static, str>], prefixes: &[Cow<'static, str>]) -> Self {
        let mut index = Self::default();
        for word in words.iter().filter(|w| w.is_ascii()) {
            index.word_lengths |= Self::length_bit(word.len());
        }
        for prefix in prefixes.iter().filter(|p| p.is_ascii()) {
            index.prefix_starts |= prefix.as_bytes().first().map_or(u128::MAX, |&b| 1 << b);
        }
        index
    }

    /// Whether an ASCII `value` may equal a word.
    const fn may_be_word(self, value: &[u8]) -> bool {
        self.word_lengths & Self::length_bit(value.len()) != 0
    }

    /// Whether an ASCII `value` may start with a prefix.
    fn may_have_prefix(self, value: &[u8]) -> bool {
        match value.first() {
            Some(&b) => self.prefix_starts & (1 << b.to_ascii_lowercase()) != 0,
            None => self.prefix_starts != 0,
        }
    }
}

/// The two setters of one policy list (`words` or `prefixes`), each with its docs: the
/// first adds an entry, folded, unless it is there already; the second removes it. Both
/// index the lists again.
macro_rules! list_setters {
    ($(
        $list:ident:
        $(#[$deny_attr:meta])* $deny:ident($deny_arg:ident),
        $(#[$allow_attr:meta])* $allow:ident($allow_arg:ident);
    )+) => {$(
        $(#[$deny_attr])*
        #[must_use]
        pub fn $deny(mut self, $deny_arg: impl Into<Cow<'static, str>>) -> Self {
            add_folded(&mut self.$list, $deny_arg.into());
            self.reindexed()
        }

        $(#[$allow_attr])*
        #[must_use]
        pub fn $allow(mut self, $allow_arg: &str) -> Self {
            remove_folded(&mut self.$list, $allow_arg);
            self.reindexed()
        }
    )+};
}

impl Default for Policy {
    /// The original system's placeholder words and prefixes.
    fn default() -> Self {
        Self::from_lists(
            DEFAULT_PLACEHOLDER_WORDS.map(Cow::Borrowed).to_vec(),
            DEFAULT_PLACEHOLDER_PREFIXES.map(Cow::Borrowed).to_vec(),
        )
    }
}

// `ascii` is derived from the two lists: nothing to show.
debug_fields!(Policy {
    words,
    prefixes,
    ..
});

impl Policy {
    /// A policy that refuses no placeholder at all: only the structural rule applies.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::Policy;
    ///
    /// assert_eq!(Policy::permissive().check("test"), Ok(()));
    /// ```
    #[must_use]
    pub const fn permissive() -> Self {
        Self {
            words: Vec::new(),
            prefixes: Vec::new(),
            ascii: AsciiIndex {
                word_lengths: 0,
                prefix_starts: 0,
            },
        }
    }

    list_setters! {
        words:
            /// Refuses `word` as well (compared case-insensitively with the trimmed value).
            ///
            /// The word is stored the way [`check`](Self::check) folds its input: trimmed and
            /// lowercased character by character, so that every configured word can match. (A
            /// word that is not in Unicode NFC is stored in NFC first, as ids are.)
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::{FieldErrorKind, Policy};
            ///
            /// let policy = Policy::default().deny_word(" Anonymous ").deny_word("ΟΔΟΣ");
            /// assert_eq!(policy.check("anonymous"), Err(FieldErrorKind::PlaceholderWord));
            /// assert_eq!(policy.check("ΟΔΟΣ"), Err(FieldErrorKind::PlaceholderWord));
            /// ```
            deny_word(word),

            /// Stops refusing `word` (folded as [`deny_word`](Self::deny_word) folds it).
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::Policy;
            ///
            /// assert_eq!(Policy::default().allow_word("0").check("0"), Ok(()));
            /// assert_eq!(Policy::default().allow_word(" NULL ").check("null"), Ok(()));
            /// ```
            allow_word(word);

        prefixes:
            /// Refuses values shorter than [`PLACEHOLDER_PREFIX_MAX_BYTES`] bytes that start with
            /// `prefix` (case-insensitively). The prefix is trimmed and folded as
            /// [`deny_word`](Self::deny_word) folds a word.
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::{FieldErrorKind, Policy};
            ///
            /// let policy = Policy::default().deny_prefix(" ANON_");
            /// assert_eq!(policy.check("anon_42"), Err(FieldErrorKind::PlaceholderPrefix));
            /// ```
            deny_prefix(prefix),

            /// Stops refusing values that start with `prefix` (folded as
            /// [`deny_prefix`](Self::deny_prefix) folds it).
            ///
            /// # Examples
            ///
            /// ```
            /// use wsctx::Policy;
            ///
            /// assert_eq!(Policy::default().allow_prefix("TEST_").check("test_x"), Ok(()));
            /// ```
            allow_prefix(prefix);
    }

    fn from_lists(words: Vec<Cow<'static, str>>, prefixes: Vec<Cow<'static, str>>) -> Self {
        let ascii = AsciiIndex::new(&words, &prefixes);
        Self {
            words,
            prefixes,
            ascii,
        }
    }

    fn reindexed(mut self) -> Self {
        self.ascii = AsciiIndex::new(&self.words, &self.prefixes);
        self
    }

    /// The refused words, trimmed and folded to lowercase.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = wsctx::Policy::permissive().deny_word(" Guest ");
    /// assert_eq!(policy.words().collect::<Vec<_>>(), ["guest"]);
    /// ```
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().map(AsRef::as_ref)
    }

    /// The refused prefixes, trimmed and folded to lowercase.
    ///
    /// # Examples
    ///
    /// ```
    /// let policy = wsctx::Policy::permissive().deny_prefix("Anon_");
    /// assert_eq!(policy.prefixes().collect::<Vec<_>>(), ["anon_"]);
    /// ```
    pub fn prefixes(&self) -> impl Iterator<Item = &str> {
        self.prefixes.iter().map(AsRef::as_ref)
    }

    /// Checks an id (already accepted by the structural rule, or not) against the policy.
    ///
    /// The value is trimmed first. This never allocates.
    ///
    /// # Errors
    ///
    /// [`FieldErrorKind::PlaceholderWord`] when the trimmed value is one of the refused
    /// words, [`FieldErrorKind::PlaceholderPrefix`] when it is shorter than
    /// [`PLACEHOLDER_PREFIX_MAX_BYTES`] bytes and starts with a refused prefix.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{FieldErrorKind, Policy};
    ///
    /// let policy = Policy::default();
    /// assert_eq!(policy.check(" NuLL "), Err(FieldErrorKind::PlaceholderWord));
    /// assert_eq!(policy.check("test_user_123456789"), Err(FieldErrorKind::PlaceholderPrefix));
    /// assert_eq!(policy.check("test_user_1234567890"), Ok(()));
    /// assert_eq!(policy.check("dummy_x"), Ok(()));
    /// ```
    pub fn check(&self, value: &str) -> Result<(), FieldErrorKind> {
        self.check_trimmed(value.trim())
    }

    /// Whether the trimmed `value` matches an entry of `list`: for an ASCII value only when
    /// the ASCII index allows it, comparing bytes; otherwise by folding Unicode.
    #[inline]
    fn list_matches(&self, list: List, value: &str) -> bool {
        let (entries, ascii_match, unicode_match): (
            &[Cow<'static, str>],
            AsciiMatch,
            UnicodeMatch,
        ) = match list {
            List::Words => (&self.words, ascii_eq_lowercase, eq_lowercase),
            List::Prefixes => (
                &self.prefixes,
                ascii_starts_with_lowercase,
                starts_with_lowercase,
            ),
        };
        if !value.is_ascii() {
            return entries.iter().any(|entry| unicode_match(value, entry));
        }
        let bytes = value.as_bytes();
        let may_match = match list {
            List::Words => self.ascii.may_be_word(bytes),
            List::Prefixes => self.ascii.may_have_prefix(bytes),
        };
        may_match
            && entries
                .iter()
                .any(|entry| ascii_match(bytes, entry.as_bytes()))
    }

    /// [`check`](Self::check) for a value that is already trimmed (a newtype's value).
    pub(crate) fn check_trimmed(&self, value: &str) -> Result<(), FieldErrorKind> {
        // Ids are nearly always ASCII: skip the lists when the index rules a match out,
        // compare bytes otherwise, and fold Unicode only for non-ASCII values.
        if self.list_matches(List::Words, value) {
            return Err(FieldErrorKind::PlaceholderWord);
        }
        if value.len() >= PLACEHOLDER_PREFIX_MAX_BYTES {
            return Ok(());
        }
        if self.list_matches(List::Prefixes, value) {
            return Err(FieldErrorKind::PlaceholderPrefix);
        }
        Ok(())
    }
}

/// Folds a configured word or prefix the way [`Policy::check`] folds its input: trimmed,
/// then lowercased character by character with `char::to_lowercase`.
///
/// Not `str::to_lowercase`: that one lowercases a final capital sigma to `ς`, which the
/// character-wise fold of the input never produces, so `"ΟΔΟΣ"` would never match. A
/// value that is not in NFC is put in NFC first: ids are in NFC, so a word in another
/// form could never match one. Borrows when there is nothing to change (the default
/// lists).
fn fold(value: Cow<'_, str>) -> Cow<'_, str> {
    let trimmed = value.trim();
    let unchanged = trimmed.len() == value.len()
        && unicode_normalization::is_nfc(trimmed)
        && trimmed.chars().all(|c| {
            let mut lower = c.to_lowercase();
            lower.next() == Some(c) && lower.next().is_none()
        });
    if unchanged {
        return value;
    }
    Cow::Owned(trimmed.nfc().flat_map(char::to_lowercase).collect())
}

/// A comparison of an ASCII value's bytes with a folded list entry.
type AsciiMatch = fn(&[u8], &[u8]) -> bool;
/// A comparison of a value with a folded list entry, folding Unicode.
type UnicodeMatch = fn(&str, &str) -> bool;

/// One of a policy's two lists.
#[derive(Clone, Copy)]
enum List {
    /// Exact placeholder words.
    Words,
    /// Placeholder prefixes.
    Prefixes,
}

/// Adds `entry` to a policy list (a word or a prefix), folded, unless it is there already.
fn add_folded(list: &mut Vec<Cow<'static, str>>, entry: Cow<'static, str>) {
    let entry = fold(entry);
    if !list.contains(&entry) {
        list.push(entry);
    }
}

/// Removes `entry`, folded as [`add_folded`] folds it, from a policy list.
fn remove_folded(list: &mut Vec<Cow<'static, str>>, entry: &str) {
    let entry = fold(Cow::Borrowed(entry));
    list.retain(|listed| *listed != entry);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unicode_lowercase_comparison_matches_to_lowercase() {
        // U+212A KELVIN SIGN lowercases to ASCII 'k'.
        assert!(eq_lowercase("MOC\u{212A}", "mock"));
        assert!(!eq_lowercase("mocks", "mock"));
        assert!(!eq_lowercase("moc", "mock"));
        assert!(starts_with_lowercase("TEST_x", "test_"));
        assert!(!starts_with_lowercase("TES", "test_"));
    }

    #[test]
    fn ascii_fast_paths_agree_with_unicode_folding() {
        let words = ["", "test", "test_", "mock", "0", "\u{e9}t\u{e9}", "a_b"];
        let values = [
            "",
            "TEST",
            "Test_x",
            "tes",
            "test_",
            "MOCK",
            "0",
            "\u{c9}T\u{c9}",
            "A_B",
        ];
        for value in values.iter().filter(|v| v.is_ascii()) {
            for word in words {
                assert_eq!(
                    ascii_eq_lowercase(value.as_bytes(), word.as_bytes()),
                    eq_lowercase(value, word),
                    "{value:?} == {word:?}"
                );
                assert_eq!(
                    ascii_starts_with_lowercase(value.as_bytes(), word.as_bytes()),
                    starts_with_lowercase(value, word),
                    "{value:?} starts with {word:?}"
                );
            }
        }
        // The ASCII index never hides a match, whatever the lists hold.
        let long_word = "w".repeat(70);
        let policies = [
            Policy::default(),
            Policy::permissive(),
            Policy::permissive().deny_prefix(""),
            Policy::permissive().deny_word(""),
            Policy::default()
                .deny_word(long_word.clone())
                .deny_word("\u{e9}t\u{e9}"),
            Policy::default()
                .deny_prefix("\u{e9}_")
                .deny_prefix("Z9")
                .allow_word("test"),
        ];
        let inputs = [
            "",
            "0",
            "TEST",
            "tEsT_1",
            "x",
            "Z9abc",
            "z9",
            "\u{c9}T\u{c9}",
            "\u{e9}_a",
            long_word.as_str(),
            "W",
            "placeholder_",
            "PLACEHOLDER_123456",
        ];
        for policy in &policies {
            for input in inputs {
                let slow_word = policy.words().any(|w| eq_lowercase(input, w));
                let slow_prefix = input.len() < PLACEHOLDER_PREFIX_MAX_BYTES
                    && policy.prefixes().any(|p| starts_with_lowercase(input, p));
                let expected = if slow_word {
                    Err(FieldErrorKind::PlaceholderWord)
                } else if slow_prefix {
                    Err(FieldErrorKind::PlaceholderPrefix)
                } else {
                    Ok(())
                };
                assert_eq!(
                    policy.check_trimmed(input),
                    expected,
                    "{policy:?} {input:?}"
                );
            }
        }
        // A non-ASCII value still folds: the Kelvin sign lowercases to `k`.
        assert_eq!(
            Policy::default().check("MOC\u{212A}"),
            Err(FieldErrorKind::PlaceholderWord)
        );
        assert_eq!(check_structure("a\u{7F}b"), Err(IdError::ControlCharacter));
        assert_eq!(check_structure("\u{1}"), Err(IdError::ControlCharacter));
    }

    #[test]
    fn ascii_scan_agrees_with_a_byte_loop() {
        let expected = |bytes: &[u8]| {
            if !bytes.is_ascii() {
                AsciiScan::NotAscii
            } else if bytes.iter().any(u8::is_ascii_control) {
                AsciiScan::Control
            } else {
                AsciiScan::Clean
            }
        };
        // Every byte value at every position of inputs of 0 to 24 bytes (three words and
        // a tail), on a background of printable ASCII.
        for len in 0..=24 {
            for pos in 0..len {
                for b in 0..=255u8 {
                    let mut bytes = vec![b'a'; len];
                    bytes[pos] = b;
                    assert_eq!(ascii_scan(&bytes), expected(&bytes), "{bytes:?}");
                }
            }
        }
        // Borrows between bytes: neighbours of the thresholds next to each other.
        for a in [0x1F, 0x20, 0x21, 0x7E, 0x7F, 0x80, 0x00, 0xFF] {
            for b in [0x1F, 0x20, 0x21, 0x7E, 0x7F, 0x80, 0x00, 0xFF] {
                let bytes = [a, b, b'x', a, b, b'y', b, a, b'z'];
                assert_eq!(ascii_scan(&bytes), expected(&bytes), "{bytes:?}");
            }
        }
    }

    /// The ASCII fast path skips the tables and the NFC check: that is only right if no
    /// ASCII character is refused except the controls, and no ASCII text is unnormalized.
    #[test]
    fn ascii_needs_neither_the_tables_nor_the_nfc_check() {
        for b in 0..=0x7F_u8 {
            let c = char::from(b);
            let expected = c.is_ascii_control().then_some(IdError::ControlCharacter);
            assert_eq!(refused_character(c), expected, "{c:?}");
            for d in (0..=0x7F_u8).map(char::from) {
                let pair: String = [c, d].into_iter().collect();
                assert!(unicode_normalization::is_nfc(&pair), "{pair:?}");
            }
        }
        // The slow path gives the fast path's answer on ASCII input.
        for value in ["a", "user-8f14e45f", "a\u{7F}b", "\u{1}", "x y"] {
            let slow = check_unicode(value);
            assert_eq!(check_structure_trimmed(value), slow, "{value:?}");
        }
    }

    #[test]
    fn the_tables_refuse_each_class_of_look_alike() {
        let invisible = [
            '\u{AD}',
            '\u{61C}',
            '\u{180E}',
            '\u{200B}',
            '\u{202E}',
            '\u{2066}',
            '\u{FEFF}',
            '\u{2028}',
            '\u{2029}',
            '\u{34F}',
            '\u{115F}',
            '\u{3164}',
            '\u{FFA0}',
            '\u{FE0F}',
            '\u{E0100}',
            '\u{E0001}',
            '\u{E0041}',
            '\u{E007F}',
            '\u{2065}',
            '\u{E000}',
            '\u{F0000}',
            '\u{10FFFD}',
            '\u{FDD0}',
            '\u{FDEF}',
            '\u{FFFE}',
            '\u{FFFF}',
            '\u{1FFFE}',
            '\u{10FFFF}',
        ];
        for c in invisible {
            assert_eq!(
                refused_character(c),
                Some(IdError::InvisibleCharacter),
                "{c:?}"
            );
        }
        for c in ['\u{0}', '\u{1F}', '\u{7F}', '\u{85}', '\u{9F}'] {
            assert_eq!(
                refused_character(c),
                Some(IdError::ControlCharacter),
                "{c:?}"
            );
        }
        // Visible neighbours and ordinary text stay allowed.
        for c in [
            'a', 'é', '\u{2010}', '\u{A0}', '\u{3000}', '\u{301}', '\u{FFFD}', '\u{1160}',
            '\u{FDCF}', '\u{FDF0}', '日', '🙂',
        ] {
            let expected = (c == '\u{1160}').then_some(IdError::InvisibleCharacter);
            assert_eq!(refused_character(c), expected, "{c:?}");
        }
    }

    #[cfg(feature = "proptest")]
    #[test]
    fn invisible_ranges_hold_only_refused_characters() {
        let ranges = invisible_ranges();
        for range in &ranges {
            for cp in [*range.start(), *range.end()] {
                let c = char::from_u32(cp).expect("no surrogate");
                assert_eq!(
                    refused_character(c),
                    Some(IdError::InvisibleCharacter),
                    "{cp:#X}"
                );
            }
        }
        // The private-use area right after the surrogates is not lost with them.
        for cp in [0xE000, 0xF8FF, 0x00AD, 0x2028, 0xFE0F, 0xFDD0, 0x10_FFFF] {
            assert!(ranges.iter().any(|r| r.contains(&cp)), "{cp:#X}");
        }
    }

    #[test]
    fn configured_words_are_folded_like_the_input() {
        assert_eq!(fold(Cow::Borrowed("ΟΔΟΣ")), "οδοσ");
        assert_eq!(fold(Cow::Borrowed(" Admin\t")), "admin");
        assert_eq!(fold(Cow::Borrowed("E\u{301}VIL")), "\u{e9}vil");
        assert!(matches!(fold(Cow::Borrowed("test")), Cow::Borrowed("test")));
        for word in DEFAULT_PLACEHOLDER_WORDS
            .into_iter()
            .chain(DEFAULT_PLACEHOLDER_PREFIXES)
        {
            assert!(
                matches!(fold(Cow::Borrowed(word)), Cow::Borrowed(_)),
                "{word}"
            );
        }
    }

    #[test]
    fn structure_returns_trimmed_slice() {
        assert_eq!(check_structure("  a b \u{3000}"), Ok("a b"));
        assert_eq!(
            check_structure("\u{200B}"),
            Err(IdError::InvisibleCharacter)
        );
        assert_eq!(check_structure("a\u{0}b"), Err(IdError::ControlCharacter));
        assert_eq!(check_structure(" e\u{301} "), Err(IdError::NotNormalized));
        assert_eq!(check_structure(" \u{e9} "), Ok("\u{e9}"));
        // A combining mark with nothing to combine with is in NFC.
        assert_eq!(check_structure(" \u{301}x"), Ok("\u{301}x"));
    }
}
