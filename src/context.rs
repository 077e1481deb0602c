//! [`Context<S>`]: the user execution context and its transitions.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::time::SystemTime;

use crate::error::{Field, FieldError, FieldErrorKind, ValidationError};
use crate::generate::{GenerateError, IdGenerator, IdKind};
use crate::id::{IdNewtype, RequestId, RunId, ThreadId, UserId, WebSocketClientId};
use crate::metadata::{MAX_METADATA_ENTRIES, Metadata, check_key, check_value};
use crate::rejection::Rejection;
use crate::rule::{Policy, check_structure};
use crate::state::{Bound, Raw, State, Valid, Validated};
use crate::trace::{debug_event, warn_event};

/// The deepest operation a context may describe; [`Context::child`] fails past it.
pub const MAX_OPERATION_DEPTH: u8 = 10;

/// Why a context could not move to its next state: the client's input was invalid, or
/// the server's id generator failed (a server bug, never the client's fault).
///
/// # Examples
///
/// ```
/// use wsctx::{Context, ContextError, ErrorCode, Policy, Rejection, UuidGenerator};
///
/// let error = Context::builder().build().validate(&Policy::default(), &UuidGenerator::new()).unwrap_err();
/// assert!(matches!(error, ContextError::Invalid(_)));
/// assert_eq!(Rejection::from(error).code(), ErrorCode::InvalidContext);
/// ```
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ContextError {
    /// The input failed the rules: INVALID_CONTEXT.
    #[error(transparent)]
    Invalid(#[from] ValidationError),
    /// The id generator failed or produced an invalid id: INTERNAL_ERROR.
    #[error(transparent)]
    Internal(#[from] GenerateError),
}

impl ContextError {
    /// The validation error, when the input was at fault.
    #[must_use]
    pub fn as_invalid(&self) -> Option<&ValidationError> {
        match self {
            Self::Invalid(error) => Some(error),
            Self::Internal(_) => None,
        }
    }
}

impl From<ContextError> for Rejection {
    fn from(error: ContextError) -> Self {
        match error {
            ContextError::Invalid(error) => error.into(),
            ContextError::Internal(error) => error.into(),
        }
    }
}

/// A raw field value: what the client sent, or a value of the wrong type (kept only as
/// the fact that it was wrong, never its content).
#[derive(Clone, PartialEq, Eq)]
#[cfg_attr(
    not(feature = "serde"),
    allow(dead_code, reason = "only deserialization produces WrongType")
)]
pub(crate) enum RawValue<T> {
    Given(T),
    WrongType,
}

/// The storage of a `Context<Raw>`.
#[derive(Clone, PartialEq, Default)]
pub struct RawParts {
    pub(crate) user_id: Option<RawValue<String>>,
    pub(crate) thread_id: Option<RawValue<String>>,
    pub(crate) run_id: Option<RawValue<String>>,
    pub(crate) request_id: Option<RawValue<String>>,
    pub(crate) parent_request_id: Option<RawValue<String>>,
    pub(crate) websocket_client_id: Option<RawValue<String>>,
    pub(crate) metadata: Vec<(String, RawValue<String>)>,
    pub(crate) operation_depth: Option<RawValue<u64>>,
    pub(crate) operation: Option<RawValue<String>>,
}

impl fmt::Debug for RawParts {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Raw input may hold a user id: show only which fields are present.
        let present = |v: &Option<RawValue<String>>| match v {
            None => "absent",
            Some(RawValue::Given(_)) => "given",
            Some(RawValue::WrongType) => "wrong type",
        };
        f.debug_struct("Raw")
            .field("user_id", &present(&self.user_id))
            .field("thread_id", &present(&self.thread_id))
            .field("run_id", &present(&self.run_id))
            .field("request_id", &present(&self.request_id))
            .field("parent_request_id", &present(&self.parent_request_id))
            .field("websocket_client_id", &present(&self.websocket_client_id))
            .field("metadata_entries", &self.metadata.len())
            .field("operation", &present(&self.operation))
            .finish_non_exhaustive()
    }
}

/// The storage of a `Context<Validated>`, and the validated core of a `Context<Bound>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Core {
    pub(crate) user_id: UserId,
    pub(crate) thread_id: ThreadId,
    pub(crate) run_id: RunId,
    pub(crate) request_id: RequestId,
    pub(crate) parent_request_id: Option<RequestId>,
    pub(crate) requested_client_id: Option<WebSocketClientId>,
    pub(crate) metadata: Metadata,
    pub(crate) operation_depth: u8,
    pub(crate) operation: Option<String>,
}

/// The storage of a `Context<Bound>`.
#[derive(Clone, Debug, PartialEq)]
pub struct BoundParts {
    pub(crate) core: Core,
    pub(crate) client_id: WebSocketClientId,
    pub(crate) connected_at: SystemTime,
    pub(crate) peer_addr: Option<SocketAddr>,
}

/// A user execution context in state `S`: [`Raw`], [`Validated`] or [`Bound`].
///
/// | state | guaranteed | reached by | next |
/// |---|---|---|---|
/// | `Context<Raw>` | nothing; plain data | [`Context::builder`], deserializing | [`validate`](Context::validate) |
/// | `Context<Validated>` | every field passed the rule and the policy; missing thread, run and request ids were generated and checked | [`validate`](Context::validate) only | [`bind`](Context::bind), [`child`](Context::child) |
/// | `Context<Bound>` | validated, and tied to one socket: a client id, connected-at, peer address | [`bind`](Context::bind) only | the connection manager factory |
///
/// There is no `Default`, no public field and no unchecked constructor: the only way to
/// a `Context<Validated>` is through validation.
///
/// # Examples
///
/// ```
/// use wsctx::{Context, Policy, UuidGenerator};
///
/// let ids = UuidGenerator::new();
/// let ctx = Context::builder()
///     .user_id("user-8f14e45f")
///     .thread_id("thread_42")
///     .build()
///     .validate(&Policy::default(), &ids)?;
/// assert_eq!(ctx.thread_id().as_str(), "thread_42");
/// assert!(ctx.run_id().as_str().starts_with("run_")); // generated
///
/// let bound = ctx.bind(Some("127.0.0.1:50000".parse()?), &ids)?;
/// assert!(bound.websocket_client_id().as_str().starts_with("ws_"));
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
///
/// A function that needs a bound context refuses the other states at compile time:
///
/// ```compile_fail
/// use wsctx::{Context, Policy, UuidGenerator, state::Bound};
///
/// fn admit(_: Context<Bound>) {}
///
/// let raw = Context::builder().user_id("user-1").build();
/// admit(raw); // error: expected `Context<Bound>`, found `Context<Raw>`
/// ```
///
/// ```compile_fail
/// use wsctx::{Context, Policy, UuidGenerator, state::Bound};
///
/// fn admit(_: Context<Bound>) {}
///
/// let validated = Context::builder().user_id("user-1").build()
///     .validate(&Policy::default(), &UuidGenerator::new()).unwrap();
/// admit(validated); // error: expected `Context<Bound>`, found `Context<Validated>`
/// ```
///
/// The passing twin:
///
/// ```
/// use wsctx::{Context, Policy, UuidGenerator, state::Bound};
///
/// fn admit(_: Context<Bound>) {}
///
/// let ids = UuidGenerator::new();
/// let bound = Context::builder().user_id("user-1").build()
///     .validate(&Policy::default(), &ids)?
///     .bind(None, &ids)?;
/// admit(bound);
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[must_use]
pub struct Context<S: State> {
    pub(crate) repr: S::Repr,
}

impl<S: State> Clone for Context<S> {
    fn clone(&self) -> Self {
        Self {
            repr: self.repr.clone(),
        }
    }
}

impl<S: State> PartialEq for Context<S> {
    fn eq(&self, other: &Self) -> bool {
        self.repr == other.repr
    }
}

impl<S: State> fmt::Debug for Context<S> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Context").field(&self.repr).finish()
    }
}

impl Context<Raw> {
    /// Starts building a raw context.
    ///
    /// # Examples
    ///
    /// ```
    /// let raw = wsctx::Context::builder().user_id("user-1").run_id("run_7").build();
    /// # let _ = raw;
    /// ```
    pub fn builder() -> ContextBuilder {
        ContextBuilder {
            parts: RawParts::default(),
        }
    }

    /// Checks every field against the structural rule and `policy`, generates the
    /// missing thread, run and request ids with `ids`, and returns the validated context.
    ///
    /// Every failing field is reported at once, in field order. A user id is never
    /// generated: a missing one is [`FieldErrorKind::Missing`]. Generated ids take the
    /// same path as given ones, the structural rule and then `policy`; a generator that
    /// fails or emits an id either refuses yields [`ContextError::Internal`], never a
    /// context that a later validation under `policy` would refuse.
    ///
    /// # Errors
    ///
    /// [`ContextError::Invalid`] with every failing field; [`ContextError::Internal`]
    /// when the id generator fails or emits an id the rule or the policy refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Context, Field, FieldErrorKind, Policy, UuidGenerator};
    ///
    /// let error = Context::builder()
    ///     .user_id("alice")
    ///     .run_id("x".repeat(10_000))
    ///     .operation_depth(11)
    ///     .build()
    ///     .validate(&Policy::default(), &UuidGenerator::new())
    ///     .unwrap_err();
    /// let invalid = error.as_invalid().unwrap();
    /// assert!(invalid.contains(Field::RunId, FieldErrorKind::TooLong));
    /// assert!(invalid.contains(Field::OperationDepth, FieldErrorKind::DepthExceeded));
    /// assert!(!error.to_string().contains("xxx"));
    /// ```
    pub fn validate(
        self,
        policy: &Policy,
        ids: &(impl IdGenerator + ?Sized),
    ) -> Result<Context<Validated>, ContextError> {
        let raw = self.repr;
        let mut checks = IdChecks::new(policy);
        if raw.user_id.is_none() {
            checks
                .errors
                .push(FieldError::new(Field::UserId, FieldErrorKind::Missing));
        }
        let user_id = checks.given::<UserId>(Field::UserId, raw.user_id);
        let thread_id = checks.given::<ThreadId>(Field::ThreadId, raw.thread_id);
        let run_id = checks.given::<RunId>(Field::RunId, raw.run_id);
        let request_id = checks.given::<RequestId>(Field::RequestId, raw.request_id);
        let parent_request_id =
            checks.given::<RequestId>(Field::ParentRequestId, raw.parent_request_id);
        let requested_client_id =
            checks.given::<WebSocketClientId>(Field::WebSocketClientId, raw.websocket_client_id);
        let operation = check_operation(raw.operation, &mut checks.errors);
        let metadata = check_metadata(raw.metadata, &mut checks.errors);
        let operation_depth = check_depth(raw.operation_depth.as_ref(), &mut checks.errors);

        if let Some(error) = ValidationError::from_errors(std::mem::take(&mut checks.errors)) {
            #[cfg(feature = "tracing")]
            for e in &error {
                debug_event!(
                    field = e.field().as_str(),
                    error_code = "INVALID_CONTEXT",
                    "context field rejected"
                );
            }
            return Err(error.into());
        }

        // No error was pushed, so the user id was given and accepted. A `None` here would
        // be a bug in this module: report it as an internal error rather than panicking.
        let Some(user_id) = user_id else {
            return Err(GenerateError::new(IdKind::Request).into());
        };
        let core = Core {
            user_id,
            thread_id: checks.given_or_generated(thread_id, IdKind::Thread, ids)?,
            run_id: checks.given_or_generated(run_id, IdKind::Run, ids)?,
            request_id: checks.given_or_generated(request_id, IdKind::Request, ids)?,
            parent_request_id,
            requested_client_id,
            metadata,
            operation_depth,
            operation,
        };
        debug_event!("context validated");
        Ok(Context { repr: core })
    }
}

/// The one path every id takes, client-supplied or generated: the structural rule (by
/// building the newtype, which trims once) and then the policy on the trimmed value.
///
/// A client-supplied id that fails is recorded in `errors` against its field (the
/// client's fault); a generated one that fails is a [`GenerateError`] (a server bug). So
/// a context never holds an id that a later validation under the same policy refuses.
struct IdChecks<'p> {
    policy: &'p Policy,
    errors: Vec<FieldError>,
}

impl<'p> IdChecks<'p> {
    const fn new(policy: &'p Policy) -> Self {
        Self {
            policy,
            errors: Vec::new(),
        }
    }

    /// Structure, then policy.
    fn check<T: IdNewtype>(&self, value: String) -> Result<T, FieldErrorKind> {
        let id = T::parse(value)?;
        self.policy.check_trimmed(id.text())?;
        Ok(id)
    }

    /// A client-supplied id of `field`: `None` when absent or refused (then recorded).
    fn given<T: IdNewtype>(&mut self, field: Field, value: Option<RawValue<String>>) -> Option<T> {
        let outcome = match value? {
            RawValue::WrongType => Err(FieldErrorKind::WrongType),
            RawValue::Given(value) => self.check(value),
        };
        outcome
            .map_err(|kind| self.errors.push(FieldError::new(field, kind)))
            .ok()
    }

    /// A fresh id of `kind` from `ids`, checked like a client-supplied one.
    fn generated<T: IdNewtype>(
        &self,
        kind: IdKind,
        ids: &(impl IdGenerator + ?Sized),
    ) -> Result<T, GenerateError> {
        debug_event!(id_kind = kind.prefix(), "generating missing id");
        self.check(ids.generate(kind)?).map_err(|error| {
            warn_event!(
                id_kind = kind.prefix(),
                rule = %error,
                "the id generator produced an id that validation refuses"
            );
            GenerateError::invalid_output(kind, error)
        })
    }

    /// The given (already checked) id, or a generated one.
    fn given_or_generated<T: IdNewtype>(
        &self,
        given: Option<T>,
        kind: IdKind,
        ids: &(impl IdGenerator + ?Sized),
    ) -> Result<T, GenerateError> {
        match given {
            Some(id) => Ok(id),
            None => self.generated(kind, ids),
        }
    }
}

/// Checks the operation name with the structural rule only (the policy is for ids, and
/// [`Context::child`] does the same), keeping the trimmed value.
fn check_operation(
    value: Option<RawValue<String>>,
    errors: &mut Vec<FieldError>,
) -> Option<String> {
    let value = match value? {
        RawValue::Given(value) => value,
        RawValue::WrongType => {
            errors.push(FieldError::new(Field::Operation, FieldErrorKind::WrongType));
            return None;
        }
    };
    match check_structure(&value) {
        Ok(trimmed) if trimmed.len() == value.len() => Some(value),
        Ok(trimmed) => Some(trimmed.to_owned()),
        Err(error) => {
            errors.push(FieldError::new(Field::Operation, error.into()));
            None
        }
    }
}

/// Checks the metadata entries; reports each kind of failure once.
fn check_metadata(
    entries: Vec<(String, RawValue<String>)>,
    errors: &mut Vec<FieldError>,
) -> Metadata {
    let mut seen = Vec::new();
    let mut report = |kind: FieldErrorKind| {
        if !seen.contains(&kind) {
            seen.push(kind);
            errors.push(FieldError::new(Field::Metadata, kind));
        }
    };
    if entries.len() > MAX_METADATA_ENTRIES {
        report(FieldErrorKind::TooManyEntries);
    }
    let mut map = BTreeMap::new();
    for (key, value) in entries {
        if let Err(kind) = check_key(&key) {
            report(kind);
            continue;
        }
        match value {
            RawValue::WrongType => report(FieldErrorKind::WrongType),
            RawValue::Given(value) => match check_value(&value) {
                Ok(()) => {
                    map.insert(key, value);
                }
                Err(kind) => report(kind),
            },
        }
    }
    Metadata(map)
}

fn check_depth(depth: Option<&RawValue<u64>>, errors: &mut Vec<FieldError>) -> u8 {
    match depth {
        None => 0,
        Some(RawValue::Given(depth)) => match u8::try_from(*depth) {
            Ok(depth) if depth <= MAX_OPERATION_DEPTH => depth,
            _ => {
                errors.push(FieldError::new(
                    Field::OperationDepth,
                    FieldErrorKind::DepthExceeded,
                ));
                0
            }
        },
        Some(RawValue::WrongType) => {
            errors.push(FieldError::new(
                Field::OperationDepth,
                FieldErrorKind::WrongType,
            ));
            0
        }
    }
}

impl TryFrom<Context<Raw>> for Context<Validated> {
    type Error = ContextError;

    /// Validates with [`Policy::default`] and [`UuidGenerator`](crate::UuidGenerator).
    fn try_from(raw: Context<Raw>) -> Result<Self, Self::Error> {
        raw.validate(&Policy::default(), &crate::generate::UuidGenerator::new())
    }
}

/// `#[must_use] pub fn $field(&self) -> &$ty`, a borrow of the field of the context's core.
macro_rules! core_ref_accessors {
    ($($(#[$doc:meta])* $field:ident: $ty:ty;)+) => {$(
        $(#[$doc])*
        #[must_use]
        pub fn $field(&self) -> &$ty {
            &self.core().$field
        }
    )+};
}

impl<S: Valid> Context<S> {
    fn core(&self) -> &Core {
        S::core(&self.repr)
    }

    core_ref_accessors! {
        /// The user who owns this context. Never generated.
        ///
        /// # Examples
        ///
        /// ```
        /// # use wsctx::{Context, Policy, UuidGenerator};
        /// let ctx = Context::builder().user_id(" u-1 ").build().validate(&Policy::default(), &UuidGenerator::new())?;
        /// assert_eq!(ctx.user_id().as_str(), "u-1");
        /// # Ok::<(), wsctx::ContextError>(())
        /// ```
        user_id: UserId;
        /// The thread id, given or generated.
        thread_id: ThreadId;
        /// The run id, given or generated.
        run_id: RunId;
        /// The request id, given or generated; new for every [`child`](Self::child).
        request_id: RequestId;
    }

    /// The request id of the parent operation, for a [`child`](Self::child) context.
    #[must_use]
    pub fn parent_request_id(&self) -> Option<&RequestId> {
        self.core().parent_request_id.as_ref()
    }

    core_ref_accessors! {
        /// The metadata.
        metadata: Metadata;
    }

    /// The operation depth, 0 to [`MAX_OPERATION_DEPTH`].
    #[must_use]
    pub fn operation_depth(&self) -> u8 {
        self.core().operation_depth
    }

    /// The client id the client asked for, if any; [`bind`](Context::bind) uses it.
    #[must_use]
    pub fn requested_client_id(&self) -> Option<&WebSocketClientId> {
        self.core().requested_client_id.as_ref()
    }

    /// The operation name given to [`child`](Self::child), if any.
    #[must_use]
    pub fn operation(&self) -> Option<&str> {
        self.core().operation.as_deref()
    }

    /// A context for a sub-operation: same user, thread, run and client ids; a new
    /// request id; `parent_request_id` set to this context's request id; depth + 1.
    ///
    /// The new request id is generated with `ids` and checked like a client-supplied one:
    /// the structural rule and `policy` (pass the policy this context was validated
    /// with), so the child validates again under that policy.
    ///
    /// # Errors
    ///
    /// [`ContextError::Invalid`] when this context is already at depth
    /// [`MAX_OPERATION_DEPTH`] or `operation` fails the structural rule;
    /// [`ContextError::Internal`] when the generator fails or emits an id the rule or
    /// `policy` refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Context, Policy, SequenceGenerator};
    ///
    /// let (policy, ids) = (Policy::default(), SequenceGenerator::new());
    /// let parent = Context::builder().user_id("u-1").build().validate(&policy, &ids)?;
    /// let child = parent.child("summarize", &policy, &ids)?;
    /// assert_eq!(child.user_id(), parent.user_id());
    /// assert_eq!(child.parent_request_id(), Some(parent.request_id()));
    /// assert_ne!(child.request_id(), parent.request_id());
    /// assert_eq!(child.operation_depth(), 1);
    /// # Ok::<(), wsctx::ContextError>(())
    /// ```
    pub fn child(
        &self,
        operation: &str,
        policy: &Policy,
        ids: &(impl IdGenerator + ?Sized),
    ) -> Result<Self, ContextError> {
        let core = self.core();
        let mut checks = IdChecks::new(policy);
        let operation = match check_structure(operation) {
            Ok(op) => Some(op),
            Err(e) => {
                checks
                    .errors
                    .push(FieldError::new(Field::Operation, e.into()));
                None
            }
        };
        if core.operation_depth >= MAX_OPERATION_DEPTH {
            checks.errors.push(FieldError::new(
                Field::OperationDepth,
                FieldErrorKind::DepthExceeded,
            ));
        }
        if let Some(error) = ValidationError::from_errors(std::mem::take(&mut checks.errors)) {
            return Err(error.into());
        }
        let request_id = checks.generated::<RequestId>(IdKind::Request, ids)?;
        let mut repr = self.repr.clone();
        let child = S::core_mut(&mut repr);
        child.parent_request_id = Some(core.request_id.clone());
        child.request_id = request_id;
        child.operation_depth = core.operation_depth + 1;
        child.operation = operation.map(str::to_owned);
        Ok(Self { repr })
    }

    /// Turns the context back into raw data holding the same values, for example to
    /// serialize it or to validate it under another policy.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Context, Policy, UuidGenerator};
    ///
    /// let ids = UuidGenerator::new();
    /// let ctx = Context::builder().user_id("u-1").build().validate(&Policy::default(), &ids)?;
    /// let again = ctx.clone().into_raw().validate(&Policy::default(), &ids)?;
    /// assert_eq!(again, ctx);
    /// # Ok::<(), wsctx::ContextError>(())
    /// ```
    pub fn into_raw(self) -> Context<Raw> {
        let core = S::core(&self.repr).clone();
        let given = |s: String| Some(RawValue::Given(s));
        Context {
            repr: RawParts {
                user_id: given(core.user_id.into_inner()),
                thread_id: given(core.thread_id.into_inner()),
                run_id: given(core.run_id.into_inner()),
                request_id: given(core.request_id.into_inner()),
                parent_request_id: core
                    .parent_request_id
                    .map(|id| RawValue::Given(id.into_inner())),
                websocket_client_id: core
                    .requested_client_id
                    .map(|id| RawValue::Given(id.into_inner())),
                metadata: core
                    .metadata
                    .0
                    .into_iter()
                    .map(|(k, v)| (k, RawValue::Given(v)))
                    .collect(),
                operation_depth: Some(RawValue::Given(u64::from(core.operation_depth))),
                operation: core.operation.map(RawValue::Given),
            },
        }
    }
}

impl Context<Validated> {
    /// Ties the context to one live socket: the requested client id (or one generated
    /// with `ids`), the current time, and the peer address.
    ///
    /// A generated client id takes the same path as every other id, with no placeholder
    /// policy (this method is given none): the structural rule. It is never validated
    /// again: a bound context serializes and [`into_raw`](Context::into_raw)s its
    /// requested client id, not this one.
    ///
    /// # Errors
    ///
    /// A [`GenerateError`] (an internal error) when a client id must be generated and the
    /// generator fails or emits an id the structural rule refuses.
    ///
    /// # Examples
    ///
    /// ```
    /// use wsctx::{Context, Policy, UuidGenerator};
    ///
    /// let ids = UuidGenerator::new();
    /// let bound = Context::builder()
    ///     .user_id("u-1")
    ///     .websocket_client_id("tab-1")
    ///     .build()
    ///     .validate(&Policy::default(), &ids)?
    ///     .bind(Some("127.0.0.1:9000".parse()?), &ids)?;
    /// assert_eq!(bound.websocket_client_id().as_str(), "tab-1");
    /// assert_eq!(bound.peer_addr().map(|a| a.port()), Some(9000));
    /// # Ok::<(), Box<dyn std::error::Error>>(())
    /// ```
    pub fn bind(
        self,
        peer_addr: Option<SocketAddr>,
        ids: &(impl IdGenerator + ?Sized),
    ) -> Result<Context<Bound>, GenerateError> {
        let core = self.repr;
        let client_id = IdChecks::new(&Policy::permissive()).given_or_generated(
            core.requested_client_id.clone(),
            IdKind::WebSocketClient,
            ids,
        )?;
        Ok(Context {
            repr: BoundParts {
                core,
                client_id,
                connected_at: SystemTime::now(),
                peer_addr,
            },
        })
    }
}

impl Context<Bound> {
    /// The id of the socket this context is bound to.
    #[must_use]
    pub fn websocket_client_id(&self) -> &WebSocketClientId {
        &self.repr.client_id
    }

    /// When the socket was bound.
    #[must_use]
    pub fn connected_at(&self) -> SystemTime {
        self.repr.connected_at
    }

    /// The peer's address, when known.
    #[must_use]
    pub fn peer_addr(&self) -> Option<SocketAddr> {
        self.repr.peer_addr
    }
}

/// Builds a [`Context<Raw>`]. Every setter stores the value as given; nothing is checked
/// until [`Context::validate`].
///
/// # Examples
///
/// ```
/// use wsctx::Context;
///
/// let raw = Context::builder()
///     .user_id("u-1")
///     .thread_id("thread_1")
///     .run_id("run_1")
///     .request_id("req_1")
///     .websocket_client_id("tab-1")
///     .metadata("locale", "en")
///     .build();
/// # let _ = raw;
/// ```
#[derive(Debug, Clone)]
#[must_use]
pub struct ContextBuilder {
    parts: RawParts,
}

macro_rules! string_setters {
    ($($(#[$doc:meta])* $name:ident;)*) => {$(
        $(#[$doc])*
        pub fn $name(mut self, value: impl Into<String>) -> Self {
            self.parts.$name = Some(RawValue::Given(value.into()));
            self
        }
    )*};
}

impl ContextBuilder {
    string_setters! {
        /// Sets the user id (normally the verified subject of a token).
        user_id;
        /// Sets the thread id; generated when not set.
        thread_id;
        /// Sets the run id; generated when not set.
        run_id;
        /// Sets the request id; generated when not set.
        request_id;
        /// Sets the parent request id.
        parent_request_id;
        /// Sets the client id the socket asks for; generated at bind when not set.
        websocket_client_id;
        /// Sets the operation name.
        operation;
    }

    /// Adds a metadata entry.
    pub fn metadata(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.parts
            .metadata
            .push((key.into(), RawValue::Given(value.into())));
        self
    }

    /// Sets the operation depth (0 by default).
    pub fn operation_depth(mut self, depth: u64) -> Self {
        self.parts.operation_depth = Some(RawValue::Given(depth));
        self
    }

    /// Finishes the raw context.
    pub fn build(self) -> Context<Raw> {
        Context { repr: self.parts }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::SequenceGenerator;

    /// Regression: `child` checks the operation name with the structural rule only, so
    /// `validate` must too; otherwise a child named like a placeholder ("test") could not
    /// be re-validated after `into_raw` (validate would not be idempotent).
    #[test]
    fn a_child_named_like_a_placeholder_survives_revalidation() {
        let ids = SequenceGenerator::new();
        let policy = Policy::default();
        let parent = Context::builder()
            .user_id("u-1")
            .build()
            .validate(&policy, &ids)
            .expect("valid");
        for operation in ["test", "Default", "mock_x", " 0 "] {
            let child = parent
                .child(operation, &policy, &ids)
                .expect("a structurally valid name");
            let again = child.clone().into_raw().validate(&policy, &ids);
            assert_eq!(again.ok(), Some(child), "{operation}");
        }
    }
}
