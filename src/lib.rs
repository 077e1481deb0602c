//! wsctx
#![allow(missing_docs)]
mod auth;
#[cfg(feature = "axum")]
pub mod axum;
mod close;
mod context;
mod error;
mod generate;
#[cfg(feature = "http")]
pub mod http;
mod id;
#[cfg(feature = "jwt")]
pub mod jwt;
mod metadata;
mod rule;
pub mod state;
mod trace;

pub use auth::{AuthError, AuthenticatedUser, BoxError, Token, TokenSource, TokenVerifier};
pub use close::{CloseCode, CloseReason, MAX_CLOSE_REASON_BYTES, UnsendableCloseCode};
pub use context::{Context, ContextBuilder, MAX_OPERATION_DEPTH};
pub use error::{
    CloseStyle, ContextError, ErrorCode, Field, FieldError, FieldErrorKind, IdError, Rejection,
    Retry, ValidationError,
};
pub use generate::{
    Fallback, FromFn, GenerateError, IdGenerator, IdKind, SequenceGenerator, UuidGenerator, from_fn,
};
pub use id::{Fingerprint, RequestId, RunId, ThreadId, UserId, WebSocketClientId};
pub use metadata::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES, Metadata,
    RESERVED_METADATA_KEYS,
};
pub use rule::{
    DEFAULT_PLACEHOLDER_PREFIXES, DEFAULT_PLACEHOLDER_WORDS, MAX_ID_BYTES,
    PLACEHOLDER_PREFIX_MAX_BYTES, Policy,
};
