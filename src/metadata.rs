//! Validated metadata: string keys to string values, with the limits of
//! `ARCHITECTURE.md`, "Field rules".

use std::collections::BTreeMap;
use std::fmt;

use crate::error::{Field, FieldErrorKind};

/// At most this many metadata entries.
pub const MAX_METADATA_ENTRIES: usize = 64;
/// A metadata key is at most this many bytes of `[a-z0-9_.-]`.
pub const MAX_METADATA_KEY_BYTES: usize = 64;
/// A metadata value is at most this many bytes.
pub const MAX_METADATA_VALUE_BYTES: usize = 1024;
/// Keys that name context fields and may not be used as metadata keys (the wire names
/// of [`Field`], spelled once there, and `created_at`).
pub const RESERVED_METADATA_KEYS: [&str; 6] = [
    Field::UserId.as_str(),
    Field::ThreadId.as_str(),
    Field::RunId.as_str(),
    Field::RequestId.as_str(),
    "created_at",
    Field::WebSocketClientId.as_str(),
];

/// Checks one metadata key: 1 to 64 bytes of `[a-z0-9_.-]`, not reserved.
pub(crate) fn check_key(key: &str) -> Result<(), FieldErrorKind> {
    let well_formed = !key.is_empty()
        && key.len() <= MAX_METADATA_KEY_BYTES
        && key
            .bytes()
            .all(|b| matches!(b, b'a'..=b'z' | b'0'..=b'9' | b'_' | b'.' | b'-'));
    if !well_formed {
        return Err(FieldErrorKind::InvalidKey);
    }
    if RESERVED_METADATA_KEYS.contains(&key) {
        return Err(FieldErrorKind::ReservedKey);
    }
    Ok(())
}

/// Checks one metadata value: at most 1024 bytes.
pub(crate) fn check_value(value: &str) -> Result<(), FieldErrorKind> {
    if value.len() > MAX_METADATA_VALUE_BYTES {
        Err(FieldErrorKind::ValueTooLong)
    } else {
        Ok(())
    }
}

/// The metadata of a validated context: at most 64 entries, keys of 1 to 64 bytes of
/// `[a-z0-9_.-]` that are not [reserved](RESERVED_METADATA_KEYS), values of at most
/// 1024 bytes. Iterates in key order.
///
/// # Examples
///
/// ```
/// use wsctx::{Context, Policy, UuidGenerator};
///
/// let ctx = Context::builder()
///     .user_id("user-1")
///     .metadata("locale", "de-CH")
///     .build()
///     .validate(&Policy::default(), &UuidGenerator::new())?;
/// assert_eq!(ctx.metadata().get("locale"), Some("de-CH"));
/// assert_eq!(ctx.metadata().len(), 1);
/// # Ok::<(), wsctx::ContextError>(())
/// ```
#[derive(Clone, Default, PartialEq, Eq)]
pub struct Metadata(pub(crate) BTreeMap<String, String>);

impl Metadata {
    /// The value for `key`.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<&str> {
        self.0.get(key).map(String::as_str)
    }

    /// The number of entries.
    #[must_use]
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether there are no entries.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The entries, in key order.
    #[must_use]
    pub fn iter(&self) -> impl ExactSizeIterator<Item = (&str, &str)> {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}

impl fmt::Debug for Metadata {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

impl<'a> IntoIterator for &'a Metadata {
    type Item = (&'a str, &'a str);
    type IntoIter = std::iter::Map<
        std::collections::btree_map::Iter<'a, String, String>,
        fn((&'a String, &'a String)) -> (&'a str, &'a str),
    >;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter().map(|(k, v)| (k.as_str(), v.as_str()))
    }
}
