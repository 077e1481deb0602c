//! Token verifiers whose backend misbehaves.

use wsctx::{AuthError, AuthenticatedUser, Token, TokenVerifier};

/// A verifier whose backend is down: every token is AUTH_UNAVAILABLE.
pub(crate) struct Down;

impl TokenVerifier for Down {
    async fn verify(&self, _: &Token) -> Result<AuthenticatedUser, AuthError> {
        Err(AuthError::unavailable("identity provider unreachable"))
    }
}

/// A verifier that never answers.
pub(crate) struct Hangs;

impl TokenVerifier for Hangs {
    async fn verify(&self, _: &Token) -> Result<AuthenticatedUser, AuthError> {
        std::future::pending().await
    }
}
