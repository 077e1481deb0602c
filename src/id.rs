//! The id newtypes. Each one holds a value that passed the structural rule of
//! [`crate::rule`]: trimmed, non-empty, at most 256 bytes, no control, invisible or
//! ambiguous characters, and in Unicode NFC. The [`Policy`](crate::Policy) (placeholder
//! words) is applied by [`Context::validate`](crate::Context::validate), not here,
//! because it is a deployment's choice while the structural rule is not.

use std::fmt;
use std::hash::{BuildHasher, RandomState};
use std::sync::OnceLock;

use nutype::nutype;

use crate::error::IdError;
use crate::rule::check_structure_trimmed;

/// nutype sanitizer: trims Unicode whitespace in place (no allocation when there is
/// nothing to trim).
fn trim_in_place(mut value: String) -> String {
    let trimmed = value.trim();
    if trimmed.len() == value.len() {
        return value;
    }
    let start = trimmed.as_ptr() as usize - value.as_ptr() as usize;
    let end = start + trimmed.len();
    value.truncate(end);
    value.drain(..start);
    value
}

/// nutype validator: the structural rule. nutype runs the sanitizer first, so the value
/// is already trimmed.
fn validate_id(value: &str) -> Result<(), IdError> {
    check_structure_trimmed(value)
}

/// What the validation path in [`crate::context`] needs of an id newtype, so that
/// client-supplied and generated ids of every kind go through one function.
pub(crate) trait IdNewtype: Sized {
    /// Trims `value` and applies the structural rule (nutype's `try_new`).
    fn parse(value: String) -> Result<Self, IdError>;
    /// The trimmed value.
    fn text(&self) -> &str;
}

macro_rules! id_newtype {
    (
        $(#[$doc:meta])*
        $name:ident, $example:literal, [$($display:ident)?]
    ) => {
        $(#[$doc])*
        ///
        /// # Invariants
        ///
        /// Trimmed of Unicode whitespace, non-empty, at most 256 bytes, free of
        /// characters that render as nothing or change rendering (general categories
        /// `Cc`, `Cf`, `Zl`, `Zp`, `Co`, `Cs`, default-ignorable code points and
        /// noncharacters), and already in Unicode NFC.
        ///
        /// # Examples
        ///
        /// ```
        #[doc = concat!("use wsctx::{IdError, ", stringify!($name), "};")]
        ///
        #[doc = concat!("let id = ", stringify!($name), "::try_new(\"  ", $example, " \")?;")]
        #[doc = concat!("assert_eq!(id.as_str(), \"", $example, "\");")]
        ///
        #[doc = concat!("assert_eq!(", stringify!($name), "::try_new(\"\\u{202E}abc\"), Err(IdError::InvisibleCharacter));")]
        #[doc = concat!("assert_eq!(", stringify!($name), "::try_new(\"x\".repeat(257)), Err(IdError::TooLong));")]
        #[doc = concat!("assert_eq!(", stringify!($name), "::try_new(\"e\\u{301}\"), Err(IdError::NotNormalized));")]
        /// # Ok::<(), IdError>(())
        /// ```
        #[nutype(
            sanitize(with = trim_in_place),
            validate(with = validate_id, error = IdError),
            derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord, AsRef, TryFrom, FromStr, $($display)?),
        )]
        pub struct $name(String);

        impl $name {
            /// The id as a string slice.
            #[must_use]
            pub fn as_str(&self) -> &str {
                self.as_ref()
            }
        }

        impl IdNewtype for $name {
            fn parse(value: String) -> Result<Self, IdError> {
                Self::try_new(value)
            }

            fn text(&self) -> &str {
                self.as_ref()
            }
        }
    };
}

id_newtype!(
    /// The id of the authenticated user who owns a connection.
    ///
    /// A user id is never generated and never invented: it comes from a verified
    /// credential. It is personal data, so `UserId` has no `Display`, and its `Debug`
    /// prints only a per-process [`Fingerprint`], never the id.
    UserId, "user-8f14e45f", []
);

id_newtype!(
    /// The id of a conversation thread; generated when the client sends none.
    ThreadId, "thread_42", [Display]
);

id_newtype!(
    /// The id of one run inside a thread; generated when the client sends none.
    RunId, "run_42", [Display]
);

id_newtype!(
    /// The id of one request; generated when the client sends none, and anew for every
    /// [`Context::child`](crate::Context::child).
    RequestId, "req_42", [Display]
);

id_newtype!(
    /// The id of one socket (one browser tab) of a user; generated at
    /// [`Context::bind`](crate::Context::bind) when the client sends none. It identifies
    /// a socket; it authorizes nothing.
    WebSocketClientId, "ws_tab_1", [Display]
);

macro_rules! plain_debug {
    ($($name:ident),*) => {$(
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.debug_tuple(stringify!($name)).field(&self.as_str()).finish()
            }
        }
    )*};
}
plain_debug!(ThreadId, RunId, RequestId, WebSocketClientId);

impl fmt::Debug for UserId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("UserId").field(&self.fingerprint()).finish()
    }
}

impl UserId {
    /// A keyed hash of the id, stable within this process and unrelated across
    /// processes: correlate log lines of one user without writing the id down.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::UserId;
    ///
    /// let a = UserId::try_new("alice-1")?;
    /// assert_eq!(a.fingerprint(), UserId::try_new(" alice-1 ")?.fingerprint());
    /// assert!(!format!("{a:?}").contains("alice"));
    /// # Ok::<(), wsctx::IdError>(())
    /// ```
    #[must_use]
    pub fn fingerprint(&self) -> Fingerprint {
        static KEY: OnceLock<RandomState> = OnceLock::new();
        Fingerprint(KEY.get_or_init(RandomState::new).hash_one(self.as_str()))
    }
}

/// A per-process keyed hash of a [`UserId`], printed as 16 hex digits. Safe to log; it
/// cannot be turned back into the id without this process's random key.
///
/// # Examples
///
/// ```
/// let fp = wsctx::UserId::try_new("bob-7")?.fingerprint();
/// assert_eq!(fp.to_string().len(), 16);
/// # Ok::<(), wsctx::IdError>(())
/// ```
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Fingerprint(u64);

impl fmt::Display for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

impl fmt::Debug for Fingerprint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{self}")
    }
}

#[cfg(test)]
mod tests {
    use super::trim_in_place;

    #[test]
    fn trim_in_place_keeps_the_inner_text() {
        assert_eq!(trim_in_place("  a b\u{3000}".to_owned()), "a b");
        assert_eq!(trim_in_place("ab".to_owned()), "ab");
        assert_eq!(trim_in_place("   ".to_owned()), "");
    }
}
