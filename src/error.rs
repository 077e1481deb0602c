//! The field vocabulary: which field ([`Field`]), what is wrong with it
//! ([`FieldErrorKind`], [`IdError`]), and every failing field of one validation
//! ([`ValidationError`]). The bottom layer: it names no other module of the crate. What
//! a client is told about these errors is [`Rejection`](crate::Rejection)'s job.
//!
//! No error in this module stores or prints a rejected value: messages name the field
//! and the rule, never the input.

use std::fmt;

/// Why an id failed the structural rule (see the crate docs, "Field rules").
///
/// # Examples
///
/// ```
/// use wsctx::{IdError, UserId};
///
/// assert_eq!(UserId::try_new("   ").unwrap_err(), IdError::Empty);
/// assert_eq!(IdError::TooLong.to_string(), "is longer than 256 bytes");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum IdError {
    /// Nothing is left after trimming whitespace.
    #[error("is empty")]
    Empty,
    /// Longer than [`MAX_ID_BYTES`](crate::MAX_ID_BYTES) bytes after trimming.
    #[error("is longer than 256 bytes")]
    TooLong,
    /// Contains a control character (Unicode `Cc`).
    #[error("contains a control character")]
    ControlCharacter,
    /// Contains a character that renders as nothing or changes rendering: general
    /// category `Cf` (zero-width, bidi, soft hyphen, tags), `Zl`, `Zp`, `Co` (private
    /// use) or `Cs`, a default-ignorable code point (variation selectors, Hangul fillers,
    /// U+034F) or a noncharacter.
    #[error("contains an invisible formatting character")]
    InvisibleCharacter,
    /// Not in Unicode Normalization Form C (for example `e` followed by U+0301 instead
    /// of `é`). Refused, never rewritten: two spellings of one visible id must not become
    /// two ids.
    #[error("is not in unicode normalization form c")]
    NotNormalized,
}

/// Generates [`Field`] from one row per field: the variant, its wire name, and what it
/// is. The enum, [`Field::ALL`], [`Field::as_str`] and [`Field::from_name`] come from the
/// rows, so a wire name is spelled once.
macro_rules! fields {
    ($($variant:ident => $name:literal $(: $what:literal)?,)*) => {
        /// A field of a context, as named in error messages and on the wire.
        ///
        /// # Examples
        ///
        /// ```
        /// use wsctx::Field;
        ///
        /// assert_eq!(Field::WebSocketClientId.as_str(), "websocket_client_id");
        /// assert_eq!(Field::from_name("run_id"), Some(Field::RunId));
        /// assert_eq!(Field::ALL.len(), 9);
        /// ```
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        #[non_exhaustive]
        pub enum Field {
            $(
                #[doc = concat!("`", $name, "`", $(": ", $what,)? ".")]
                $variant,
            )*
        }

        impl Field {
            /// Every field, in the order [`Context::validate`](crate::Context::validate)
            /// checks them.
            pub const ALL: [Self; [$($name),*].len()] = [$(Self::$variant),*];

            /// The field's wire name.
            ///
            /// # Examples
            ///
            /// ```
            /// assert_eq!(wsctx::Field::UserId.as_str(), "user_id");
            /// ```
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

fields! {
    UserId => "user_id",
    ThreadId => "thread_id",
    RunId => "run_id",
    RequestId => "request_id",
    ParentRequestId => "parent_request_id",
    WebSocketClientId => "websocket_client_id",
    Metadata => "metadata": "the map as a whole, or one of its entries (never named: keys are input)",
    OperationDepth => "operation_depth",
    Operation => "operation": "the name given to [`Context::child`](crate::Context::child)",
}

impl Field {
    /// The field whose wire name is `name` (exactly; no case folding).
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::Field;
    ///
    /// assert_eq!(Field::from_name("metadata"), Some(Field::Metadata));
    /// assert_eq!(Field::from_name("User_Id"), None);
    /// ```
    #[must_use]
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|field| field.as_str() == name)
    }
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with a field.
///
/// # Examples
///
/// ```
/// use wsctx::FieldErrorKind;
///
/// assert_eq!(FieldErrorKind::PlaceholderWord.to_string(), "is a placeholder value");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FieldErrorKind {
    /// A required field is absent.
    #[error("is missing")]
    Missing,
    /// The value has the wrong type (for example a JSON number, array, object or null
    /// where a string is expected). Never coerced.
    #[error("has the wrong type")]
    WrongType,
    /// Nothing is left after trimming whitespace.
    #[error("{}", IdError::Empty)]
    Empty,
    /// Longer than 256 bytes after trimming.
    #[error("{}", IdError::TooLong)]
    TooLong,
    /// Contains a control character.
    #[error("{}", IdError::ControlCharacter)]
    ControlCharacter,
    /// Contains an invisible or ambiguous character (see [`IdError::InvisibleCharacter`]).
    #[error("{}", IdError::InvisibleCharacter)]
    InvisibleCharacter,
    /// Not in Unicode Normalization Form C (see [`IdError::NotNormalized`]).
    #[error("{}", IdError::NotNormalized)]
    NotNormalized,
    /// Equal to a placeholder word of the [`Policy`](crate::Policy).
    #[error("is a placeholder value")]
    PlaceholderWord,
    /// Shorter than 20 bytes and starts with a placeholder prefix of the [`Policy`](crate::Policy).
    #[error("starts with a placeholder prefix")]
    PlaceholderPrefix,
    /// The metadata has more than [`MAX_METADATA_ENTRIES`](crate::MAX_METADATA_ENTRIES) entries.
    #[error("has more than 64 entries")]
    TooManyEntries,
    /// A metadata key is reserved for a context field.
    #[error("uses a reserved key")]
    ReservedKey,
    /// A metadata key is empty, longer than 64 bytes, or not made of `[a-z0-9_.-]`.
    #[error("has a key that is not 1 to 64 bytes of [a-z0-9_.-]")]
    InvalidKey,
    /// A metadata value is longer than 1024 bytes.
    #[error("has a value longer than 1024 bytes")]
    ValueTooLong,
    /// The operation depth is above [`MAX_OPERATION_DEPTH`](crate::MAX_OPERATION_DEPTH).
    #[error("is deeper than 10")]
    DepthExceeded,
}

impl From<IdError> for FieldErrorKind {
    fn from(error: IdError) -> Self {
        match error {
            IdError::Empty => Self::Empty,
            IdError::TooLong => Self::TooLong,
            IdError::ControlCharacter => Self::ControlCharacter,
            IdError::InvisibleCharacter => Self::InvisibleCharacter,
            IdError::NotNormalized => Self::NotNormalized,
        }
    }
}

/// One failing field: which field, and what is wrong with it.
///
/// # Examples
///
/// ```
/// use wsctx::{Field, FieldError, FieldErrorKind};
///
/// let error = FieldError::new(Field::RunId, FieldErrorKind::Empty);
/// assert_eq!(error.to_string(), "run_id is empty");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[error("{field} {kind}")]
pub struct FieldError {
    field: Field,
    kind: FieldErrorKind,
}

impl FieldError {
    /// A field error.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Field, FieldError, FieldErrorKind};
    ///
    /// let error = FieldError::new(Field::UserId, FieldErrorKind::Missing);
    /// assert_eq!(error.field(), Field::UserId);
    /// ```
    #[must_use]
    pub const fn new(field: Field, kind: FieldErrorKind) -> Self {
        Self { field, kind }
    }

    /// The failing field.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Field, FieldError, FieldErrorKind};
    /// assert_eq!(FieldError::new(Field::RunId, FieldErrorKind::Empty).field(), Field::RunId);
    /// ```
    #[must_use]
    pub const fn field(&self) -> Field {
        self.field
    }

    /// What is wrong with it.
    ///
    /// # Examples
    ///
    /// ```
    /// # use wsctx::{Field, FieldError, FieldErrorKind};
    /// assert_eq!(FieldError::new(Field::RunId, FieldErrorKind::Empty).kind(), FieldErrorKind::Empty);
    /// ```
    #[must_use]
    pub const fn kind(&self) -> FieldErrorKind {
        self.kind
    }
}

/// Every failing field of one validation, in field order; never empty.
///
/// # Examples
///
/// ```
/// use wsctx::{Context, Field, FieldErrorKind, Policy, UuidGenerator};
///
/// let error = Context::builder()
///     .user_id(" null ")
///     .thread_id("")
///     .build()
///     .validate(&Policy::default(), &UuidGenerator::new())
///     .unwrap_err();
/// let invalid = error.as_invalid().unwrap();
/// assert_eq!(invalid.len(), 2);
/// assert!(invalid.contains(Field::UserId, FieldErrorKind::PlaceholderWord));
/// assert_eq!(
///     invalid.to_string(),
///     "invalid context: user_id is a placeholder value; thread_id is empty"
/// );
/// ```
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ValidationError {
    errors: Vec<FieldError>,
}

impl ValidationError {
    /// Builds the error from the collected field errors; `None` when there are none.
    pub(crate) fn from_errors(errors: Vec<FieldError>) -> Option<Self> {
        (!errors.is_empty()).then_some(Self { errors })
    }

    /// A validation error with a single failing field.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Field, FieldError, FieldErrorKind, ValidationError};
    ///
    /// let error = ValidationError::single(FieldError::new(Field::UserId, FieldErrorKind::Missing));
    /// assert_eq!(error.len(), 1);
    /// ```
    #[must_use]
    pub fn single(error: FieldError) -> Self {
        Self {
            errors: vec![error],
        }
    }

    /// The failing fields, in the order they were checked.
    #[must_use]
    pub fn errors(&self) -> &[FieldError] {
        &self.errors
    }

    /// How many fields failed (at least one).
    #[must_use]
    pub fn len(&self) -> usize {
        self.errors.len()
    }

    /// Always `false`: a `ValidationError` has at least one field error. Present for
    /// symmetry with [`len`](Self::len).
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.errors.is_empty()
    }

    /// Whether `field` failed with `kind`.
    #[must_use]
    pub fn contains(&self, field: Field, kind: FieldErrorKind) -> bool {
        self.errors.contains(&FieldError::new(field, kind))
    }

    /// Iterates over the failing fields.
    pub fn iter(&self) -> std::slice::Iter<'_, FieldError> {
        self.errors.iter()
    }
}

impl fmt::Display for ValidationError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("invalid context: ")?;
        for (i, error) in self.errors.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            fmt::Display::fmt(error, f)?;
        }
        Ok(())
    }
}

impl<'a> IntoIterator for &'a ValidationError {
    type Item = &'a FieldError;
    type IntoIter = std::slice::Iter<'a, FieldError>;

    fn into_iter(self) -> Self::IntoIter {
        self.errors.iter()
    }
}
