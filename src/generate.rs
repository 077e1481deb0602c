//! Generation of the ids a client may omit: thread, run, request and client ids.
//!
//! A user id is never generated. Every generated id goes through the same structural
//! rule as a client-supplied one; a generator that emits an invalid id produces a
//! [`GenerateError`] (an internal error), never an invalid context.

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::error::{Field, IdError};
use crate::rejection::{ErrorCode, Rejection};
use crate::trace::warn_event;

/// The kinds of id a generator is asked for.
///
/// # Examples
///
/// ```
/// use wsctx::IdKind;
///
/// assert_eq!(IdKind::Request.prefix(), "req");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum IdKind {
    /// A [`ThreadId`](crate::ThreadId).
    Thread,
    /// A [`RunId`](crate::RunId).
    Run,
    /// A [`RequestId`](crate::RequestId).
    Request,
    /// A [`WebSocketClientId`](crate::WebSocketClientId).
    WebSocketClient,
}

impl IdKind {
    /// Every kind.
    pub const ALL: [Self; 4] = [
        Self::Thread,
        Self::Run,
        Self::Request,
        Self::WebSocketClient,
    ];

    /// The prefix [`UuidGenerator`] puts before the UUID: `thread`, `run`, `req`, `ws`.
    #[must_use]
    pub const fn prefix(self) -> &'static str {
        match self {
            Self::Thread => "thread",
            Self::Run => "run",
            Self::Request => "req",
            Self::WebSocketClient => "ws",
        }
    }

    /// The context field this kind fills.
    #[must_use]
    pub const fn field(self) -> Field {
        match self {
            Self::Thread => Field::ThreadId,
            Self::Run => Field::RunId,
            Self::Request => Field::RequestId,
            Self::WebSocketClient => Field::WebSocketClientId,
        }
    }
}

impl fmt::Display for IdKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.field().as_str())
    }
}

/// An id generator failed, or produced an id that breaks the structural rule. Either
/// way it is a server bug: it renders as INTERNAL_ERROR, never as the client's fault.
///
/// # Examples
///
/// ```
/// use wsctx::{GenerateError, IdKind};
///
/// let error = GenerateError::new(IdKind::Run);
/// assert_eq!(error.to_string(), "the run_id generator failed");
/// ```
#[derive(Debug, thiserror::Error)]
#[error("{}", Describe(self))]
pub struct GenerateError {
    kind: IdKind,
    invalid_output: Option<IdError>,
    #[source]
    source: Option<Box<dyn StdError + Send + Sync>>,
}

struct Describe<'a>(&'a GenerateError);

impl fmt::Display for Describe<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0.invalid_output {
            Some(error) => write!(
                f,
                "the {} generator produced an id that {error}",
                self.0.kind
            ),
            None => write!(f, "the {} generator failed", self.0.kind),
        }
    }
}

impl GenerateError {
    /// A generator of `kind` ids failed.
    #[must_use]
    pub const fn new(kind: IdKind) -> Self {
        Self {
            kind,
            invalid_output: None,
            source: None,
        }
    }

    /// A generator of `kind` ids failed because of `source`.
    ///
    /// # Examples
    ///
    /// ```
    /// use std::error::Error as _;
    /// use wsctx::{GenerateError, IdKind};
    ///
    /// let io = std::io::Error::other("entropy pool closed");
    /// let error = GenerateError::with_source(IdKind::Thread, io);
    /// assert!(error.source().is_some());
    /// ```
    #[must_use]
    pub fn with_source(kind: IdKind, source: impl StdError + Send + Sync + 'static) -> Self {
        Self {
            kind,
            invalid_output: None,
            source: Some(Box::new(source)),
        }
    }

    pub(crate) const fn invalid_output(kind: IdKind, error: IdError) -> Self {
        Self {
            kind,
            invalid_output: Some(error),
            source: None,
        }
    }

    /// The kind of id that could not be generated.
    #[must_use]
    pub const fn kind(&self) -> IdKind {
        self.kind
    }

    /// The rule the generated id broke, when the generator produced an invalid id.
    #[must_use]
    pub const fn invalid_output_error(&self) -> Option<IdError> {
        self.invalid_output
    }
}

impl From<GenerateError> for Rejection {
    /// INTERNAL_ERROR: a generator failure is never the client's fault.
    fn from(_: GenerateError) -> Self {
        Self::new(ErrorCode::InternalError)
    }
}

/// Produces the ids a client may omit. Object safe; implemented for `&T`, `Box<T>` and
/// `Arc<T>`, and by closures through [`from_fn`].
///
/// Implementations must not embed any part of the user id (they are never given it).
/// What they return is re-validated by the structural rule; an invalid id becomes a
/// [`GenerateError`].
///
/// # Errors
///
/// [`generate`](Self::generate) returns a [`GenerateError`] when no id can be produced.
///
/// # Examples
///
/// ```
/// use wsctx::{GenerateError, IdGenerator, IdKind};
///
/// struct Fixed;
/// impl IdGenerator for Fixed {
///     fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
///         Ok(format!("{}_fixed", kind.prefix()))
///     }
/// }
///
/// let boxed: Box<dyn IdGenerator> = Box::new(Fixed);
/// assert_eq!(boxed.generate(IdKind::Run)?, "run_fixed");
/// # Ok::<(), GenerateError>(())
/// ```
pub trait IdGenerator: Send + Sync {
    /// Returns a fresh id of the given kind.
    ///
    /// # Errors
    ///
    /// A [`GenerateError`] when no id can be produced.
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError>;
}

impl<T: IdGenerator + ?Sized> IdGenerator for &T {
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        (**self).generate(kind)
    }
}

impl<T: IdGenerator + ?Sized> IdGenerator for Box<T> {
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        (**self).generate(kind)
    }
}

impl<T: IdGenerator + ?Sized> IdGenerator for Arc<T> {
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        (**self).generate(kind)
    }
}

/// The default generator: `<prefix>_<uuid v4>`, e.g.
/// `thread_67e55044-10b1-426f-9247-bb680e5fe0c8`, with the prefixes of
/// [`IdKind::prefix`]. Uses a thread-local fast RNG (uuid's `fast-rng`); ids are
/// identifiers, not secrets or capabilities.
///
/// # Examples
///
/// ```
/// use wsctx::{IdGenerator, IdKind, UuidGenerator};
///
/// let id = UuidGenerator::new().generate(IdKind::WebSocketClient)?;
/// assert!(id.starts_with("ws_"));
/// assert_eq!(id.len(), 3 + 36);
/// # Ok::<(), wsctx::GenerateError>(())
/// ```
#[derive(Clone, Copy, Debug, Default)]
pub struct UuidGenerator {
    _private: (),
}

impl UuidGenerator {
    /// The default generator.
    #[must_use]
    pub const fn new() -> Self {
        Self { _private: () }
    }
}

impl IdGenerator for UuidGenerator {
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        let prefix = kind.prefix();
        let mut buffer = uuid::Uuid::encode_buffer();
        let uuid = uuid::Uuid::new_v4().hyphenated().encode_lower(&mut buffer);
        let mut id = String::with_capacity(prefix.len() + 1 + uuid.len());
        id.push_str(prefix);
        id.push('_');
        id.push_str(uuid);
        Ok(id)
    }
}

/// A deterministic generator for tests: `<prefix>_<n>` with one counter shared by all
/// kinds, starting at 1.
///
/// # Examples
///
/// ```
/// use wsctx::{IdGenerator, IdKind, SequenceGenerator};
///
/// let ids = SequenceGenerator::new();
/// assert_eq!(ids.generate(IdKind::Thread)?, "thread_1");
/// assert_eq!(ids.generate(IdKind::Request)?, "req_2");
/// # Ok::<(), wsctx::GenerateError>(())
/// ```
#[derive(Debug, Default)]
pub struct SequenceGenerator {
    next: AtomicU64,
}

impl SequenceGenerator {
    /// A sequence starting at 1.
    #[must_use]
    pub const fn new() -> Self {
        Self::starting_at(1)
    }

    /// A sequence starting at `first`.
    #[must_use]
    pub const fn starting_at(first: u64) -> Self {
        Self {
            next: AtomicU64::new(first),
        }
    }
}

impl IdGenerator for SequenceGenerator {
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        Ok(format!("{}_{n}", kind.prefix()))
    }
}

/// A generator made from a closure; see [`from_fn`].
#[derive(Clone, Copy)]
pub struct FromFn<F>(F);

impl<F> fmt::Debug for FromFn<F> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("FromFn")
    }
}

/// Makes a generator from a closure.
///
/// # Examples
///
/// ```
/// use wsctx::{IdGenerator, IdKind, from_fn};
///
/// let ids = from_fn(|kind: IdKind| Ok(format!("{}_from_fn", kind.prefix())));
/// assert_eq!(ids.generate(IdKind::Thread)?, "thread_from_fn");
/// # Ok::<(), wsctx::GenerateError>(())
/// ```
pub fn from_fn<F>(f: F) -> FromFn<F>
where
    F: Fn(IdKind) -> Result<String, GenerateError> + Send + Sync,
{
    FromFn(f)
}

impl<F> IdGenerator for FromFn<F>
where
    F: Fn(IdKind) -> Result<String, GenerateError> + Send + Sync,
{
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        (self.0)(kind)
    }
}

/// Tries `primary` and, when it fails, uses `secondary` (by default [`UuidGenerator`]),
/// emitting one tracing warning per failure (with the `tracing` feature).
///
/// # Examples
///
/// ```
/// use wsctx::{Fallback, GenerateError, IdGenerator, IdKind, SequenceGenerator, from_fn};
///
/// let broken = from_fn(|kind| Err(GenerateError::new(kind)));
/// let ids = Fallback::new(broken, SequenceGenerator::new());
/// assert_eq!(ids.generate(IdKind::Run)?, "run_1");
/// # Ok::<(), GenerateError>(())
/// ```
#[derive(Clone, Debug, Default)]
pub struct Fallback<P, S = UuidGenerator> {
    primary: P,
    secondary: S,
}

impl<P: IdGenerator> Fallback<P> {
    /// Falls back to [`UuidGenerator`].
    #[must_use]
    pub const fn to_uuid(primary: P) -> Self {
        Self {
            primary,
            secondary: UuidGenerator::new(),
        }
    }
}

impl<P: IdGenerator, S: IdGenerator> Fallback<P, S> {
    /// Tries `primary`, then `secondary`.
    #[must_use]
    pub const fn new(primary: P, secondary: S) -> Self {
        Self { primary, secondary }
    }
}

impl<P: IdGenerator, S: IdGenerator> IdGenerator for Fallback<P, S> {
    fn generate(&self, kind: IdKind) -> Result<String, GenerateError> {
        match self.primary.generate(kind) {
            Ok(id) => Ok(id),
            Err(_error) => {
                warn_event!(
                    id_kind = kind.prefix(),
                    "primary id generator failed; using the fallback generator"
                );
                self.secondary.generate(kind)
            }
        }
    }
}
