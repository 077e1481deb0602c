//! wsctx
#![allow(missing_docs)]
mod close;
mod context;
mod error;
mod generate;
mod id;
mod metadata;
#[cfg(feature = "proptest")]
pub mod proptest;
mod rule;
#[cfg(feature = "serde")]
mod serde;
pub mod state;
mod trace;

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
