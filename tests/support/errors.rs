//! Reading a refused context's errors.

use wsctx::{ContextError, Field, FieldErrorKind};

/// Whether `error` is a validation failure (INVALID_CONTEXT) that reports `kind` for
/// `field`.
pub(crate) fn reports(error: &ContextError, field: Field, kind: FieldErrorKind) -> bool {
    error
        .as_invalid()
        .is_some_and(|invalid| invalid.contains(field, kind))
}
