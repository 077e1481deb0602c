//! The factory's errors: [`FactoryError`] (why an admission was refused),
//! [`TryRecvError`] (why an outbound queue yielded nothing) and, with `serde`,
//! `EmitError` (why an event was not sent). A leaf of the factory.

use crate::rejection::{ErrorCode, Rejection};

/// Why [`ManagerFactory::create`](crate::ManagerFactory::create) refused a socket.
///
/// Each variant is one row of the rejection table; convert it into a [`Rejection`] to
/// render it as an HTTP response or a close frame. Messages are fixed, lowercase, and
/// contain no id.
///
/// # Examples
///
/// ```
/// use wsctx::{ErrorCode, FactoryError, Rejection};
///
/// let error = FactoryError::ConnectionLimit;
/// assert_eq!(error.code(), ErrorCode::ConnectionLimit);
/// assert_eq!(error.to_string(), "too many connections for this user");
/// assert_eq!(Rejection::from(error).http_status(), Some(429));
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum FactoryError {
    /// The user already holds [`Limits::per_user`](crate::Limits::per_user) sockets:
    /// CONNECTION_LIMIT.
    #[error("{}", ErrorCode::ConnectionLimit.message())]
    ConnectionLimit,
    /// The factory already holds [`Limits::global`](crate::Limits::global) sockets:
    /// OVERLOADED.
    #[error("{}", ErrorCode::Overloaded.message())]
    Overloaded,
    /// The user already has a live socket with this client id: DUPLICATE_CLIENT.
    #[error("{}", ErrorCode::DuplicateClient.message())]
    DuplicateClient,
    /// The factory is draining after [`shutdown`](crate::ManagerFactory::shutdown):
    /// SHUTTING_DOWN.
    #[error("{}", ErrorCode::ShuttingDown.message())]
    ShuttingDown,
}

impl FactoryError {
    /// The error code of the rejection table.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{ErrorCode, FactoryError};
    ///
    /// assert_eq!(FactoryError::Overloaded.code(), ErrorCode::Overloaded);
    /// ```
    #[must_use]
    pub const fn code(&self) -> ErrorCode {
        match self {
            Self::ConnectionLimit => ErrorCode::ConnectionLimit,
            Self::Overloaded => ErrorCode::Overloaded,
            Self::DuplicateClient => ErrorCode::DuplicateClient,
            Self::ShuttingDown => ErrorCode::ShuttingDown,
        }
    }
}

impl From<FactoryError> for Rejection {
    fn from(error: FactoryError) -> Self {
        Self::new(error.code())
    }
}

impl From<FactoryError> for ErrorCode {
    fn from(error: FactoryError) -> Self {
        error.code()
    }
}

/// Why [`Outbound::try_recv`](crate::Outbound::try_recv) returned no frame.
///
/// # Examples
///
/// ```
/// assert_eq!(wsctx::TryRecvError::Empty.to_string(), "no frame is queued");
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum TryRecvError {
    /// Nothing is queued yet; [`recv`](crate::Outbound::recv) would wait.
    #[error("no frame is queued")]
    Empty,
    /// The close frame has been yielded; nothing more will come.
    #[error("the socket is closed")]
    Closed,
}

/// Why an event was not sent: its data could not be rendered into an event frame
/// within the limit. Nothing was sent to anyone. Messages are fixed and never
/// contain the event data.
///
/// # Examples
///
/// ```
/// use wsctx::EmitError;
///
/// let error = EmitError::DataTooLarge { limit: 65_536 };
/// assert_eq!(error.to_string(), "event data is larger than 65536 bytes");
/// ```
#[cfg(feature = "serde")]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, thiserror::Error)]
#[non_exhaustive]
pub enum EmitError {
    /// The data serializes to more than `limit` bytes of JSON. Serialization stops
    /// as soon as the limit is passed.
    #[error("event data is larger than {limit} bytes")]
    DataTooLarge {
        /// The configured limit, in bytes of serialized JSON.
        limit: usize,
    },
    /// The data's `Serialize` implementation failed, or it cannot be written as JSON
    /// (for example a map whose keys are not strings). The serializer's message is
    /// not kept: it may quote the data.
    #[error("event data cannot be serialized as json")]
    Serialize,
}
