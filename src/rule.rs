//! The field rules: the structural rule every id obeys, and the [`Policy`] that
//! [`Context::validate`](crate::Context::validate) applies on top of it.
//!
//! This module is the single source of truth for what an acceptable id is. The
//! newtypes in [`crate::id`] call [`check_structure`]; the policy checks call
//! [`Policy::check`]. Neither allocates when a value is accepted.

use std::borrow::Cow;
use std::fmt;

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

/// Whether `c` is an invisible formatting character that can be used to spoof an id:
/// zero-width (U+200B–U+200F), bidi embeddings and overrides (U+202A–U+202E), bidi
/// isolates (U+2066–U+2069), invisible operators (U+2060–U+2064) and the BOM (U+FEFF).
#[must_use]
pub(crate) const fn is_invisible_format(c: char) -> bool {
    matches!(
        c,
        '\u{200B}'..='\u{200F}'
            | '\u{202A}'..='\u{202E}'
            | '\u{2060}'..='\u{2064}'
            | '\u{2066}'..='\u{2069}'
            | '\u{FEFF}'
    )
}

/// Applies the structural rule to `value` and returns the trimmed slice it accepts.
///
/// The rule: trim Unicode whitespace, then the value must be non-empty, at most
/// [`MAX_ID_BYTES`] bytes, and free of control characters (Unicode `Cc`) and of the
/// invisible formatting characters listed on [`is_invisible_format`]. Runs in one pass
/// over at most `MAX_ID_BYTES + 1` bytes after trimming, so a huge input is rejected in
/// time linear in its length.
pub(crate) fn check_structure(value: &str) -> Result<&str, IdError> {
    let trimmed = value.trim();
    if trimmed.is_empty() {
        return Err(IdError::Empty);
    }
    if trimmed.len() > MAX_ID_BYTES {
        return Err(IdError::TooLong);
    }
    for c in trimmed.chars() {
        if c.is_control() {
            return Err(IdError::ControlCharacter);
        }
        if is_invisible_format(c) {
            return Err(IdError::InvisibleCharacter);
        }
    }
    Ok(trimmed)
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
}

impl Default for Policy {
    /// The original system's placeholder words and prefixes.
    fn default() -> Self {
        Self {
            words: DEFAULT_PLACEHOLDER_WORDS.map(Cow::Borrowed).to_vec(),
            prefixes: DEFAULT_PLACEHOLDER_PREFIXES.map(Cow::Borrowed).to_vec(),
        }
    }
}

impl fmt::Debug for Policy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Policy")
            .field("words", &self.words)
            .field("prefixes", &self.prefixes)
            .finish()
    }
}

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
        }
    }

    /// Refuses `word` as well (compared case-insensitively with the trimmed value).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{FieldErrorKind, Policy};
    ///
    /// let policy = Policy::default().deny_word("anonymous");
    /// assert_eq!(policy.check("Anonymous"), Err(FieldErrorKind::PlaceholderWord));
    /// ```
    #[must_use]
    pub fn deny_word(mut self, word: impl Into<Cow<'static, str>>) -> Self {
        let word = lowercase(word.into());
        if !self.words.contains(&word) {
            self.words.push(word);
        }
        self
    }

    /// Stops refusing `word`.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::Policy;
    ///
    /// assert_eq!(Policy::default().allow_word("0").check("0"), Ok(()));
    /// ```
    #[must_use]
    pub fn allow_word(mut self, word: &str) -> Self {
        self.words.retain(|w| !eq_lowercase(word, w));
        self
    }

    /// Refuses values shorter than [`PLACEHOLDER_PREFIX_MAX_BYTES`] bytes that start with
    /// `prefix` (case-insensitively).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{FieldErrorKind, Policy};
    ///
    /// let policy = Policy::default().deny_prefix("anon_");
    /// assert_eq!(policy.check("anon_42"), Err(FieldErrorKind::PlaceholderPrefix));
    /// ```
    #[must_use]
    pub fn deny_prefix(mut self, prefix: impl Into<Cow<'static, str>>) -> Self {
        let prefix = lowercase(prefix.into());
        if !self.prefixes.contains(&prefix) {
            self.prefixes.push(prefix);
        }
        self
    }

    /// Stops refusing values that start with `prefix`.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::Policy;
    ///
    /// assert_eq!(Policy::default().allow_prefix("test_").check("test_x"), Ok(()));
    /// ```
    #[must_use]
    pub fn allow_prefix(mut self, prefix: &str) -> Self {
        self.prefixes.retain(|p| !eq_lowercase(prefix, p));
        self
    }

    /// The refused words, lowercase.
    pub fn words(&self) -> impl Iterator<Item = &str> {
        self.words.iter().map(AsRef::as_ref)
    }

    /// The refused prefixes, lowercase.
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
        let value = value.trim();
        if self.words.iter().any(|word| eq_lowercase(value, word)) {
            return Err(FieldErrorKind::PlaceholderWord);
        }
        if value.len() < PLACEHOLDER_PREFIX_MAX_BYTES
            && self
                .prefixes
                .iter()
                .any(|prefix| starts_with_lowercase(value, prefix))
        {
            return Err(FieldErrorKind::PlaceholderPrefix);
        }
        Ok(())
    }
}

fn lowercase(value: Cow<'static, str>) -> Cow<'static, str> {
    if value.chars().any(char::is_uppercase) {
        Cow::Owned(value.to_lowercase())
    } else {
        value
    }
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
    fn structure_returns_trimmed_slice() {
        assert_eq!(check_structure("  a b \u{3000}"), Ok("a b"));
        assert_eq!(
            check_structure("\u{200B}"),
            Err(IdError::InvisibleCharacter)
        );
        assert_eq!(check_structure("a\u{0}b"), Err(IdError::ControlCharacter));
    }
}
