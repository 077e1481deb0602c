//! A [`TokenVerifier`] over a JSON Web Key set with key rotation (feature `jwt`).
//!
//! [`JwksVerifier`] verifies tokens with the key of a [`JwkSet`] that the token's `kid`
//! header names, so that several keys are valid at once while an identity provider rotates
//! them. The set comes from a source the application supplies: an async function
//! returning a [`JwkSet`] (an HTTP GET of the provider's `jwks_uri`, a file, a secret
//! store). The verifier caches it:
//!
//! - The set is fetched on first use (or by [`JwksVerifier::refresh`]) and again once it
//!   is older than the refresh interval ([`DEFAULT_REFRESH_INTERVAL`]).
//! - A token whose `kid` is not in the set triggers a refetch, so a new key is picked up
//!   at once; but fetches start at most once per minimum interval
//!   ([`DEFAULT_MIN_REFETCH_INTERVAL`]), whatever their reason, so tokens with forged
//!   `kid`s cannot make the verifier hammer the source. Within that interval an unknown
//!   `kid` is VALIDATION_FAILED.
//! - One fetch at a time: every verification that needs the fetch in flight waits for it
//!   and shares its result. No lock is held across an `await`; the fetch runs under a
//!   timeout ([`DEFAULT_FETCH_TIMEOUT`]). Cancelling the verification that started it does
//!   not cancel it: the others waiting drive it on, and a later verification takes it up.
//! - A fetch that fails or times out is AUTH_UNAVAILABLE (503, close 1013), never a 401:
//!   the client's token is not at fault. While the last good set is younger than the
//!   maximum age ([`DEFAULT_MAX_AGE`]) it stays in use for the `kid`s it holds when a
//!   refresh fails; a `kid` it lacks is then AUTH_UNAVAILABLE too (it may be a new key
//!   the source could not deliver).
//!
//! Each key of a set is checked like the keys of [`JwtVerifier`](crate::jwt::JwtVerifier)
//! when the set is loaded: RSA (RS256) of 2048 to 8192 bits, EC on P-256 (ES256), Ed25519
//! (`EdDSA`); a key of another type or size, a symmetric key, a key for encryption, a key
//! without a `kid` or a `kid` used twice is refused (listed in the [`KeySetSummary`]) and
//! never used. A set without any usable key is a failed fetch. A token must carry a `kid`
//! and name the algorithm of its key. The claim checks are those of `JwtVerifier`: see the
//! table in [`crate::jwt`].
//!
//! The verifier uses tokio's timer: verify inside a tokio runtime with time enabled.

use std::collections::HashMap;
use std::error::Error as StdError;
use std::fmt;
use std::future::Future;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use futures_util::FutureExt as _;
use futures_util::future::{BoxFuture, Shared};
use jsonwebtoken::jwk::JwkSet;
use tokio::time::Instant;

use crate::auth::{AuthError, AuthenticatedUser, BoxError, Token, TokenVerifier};
use crate::jwt::{ClaimRules, Compact, JwtKeyError, Key};
use crate::trace::debug_event;

/// How old a key set may get before it is fetched again: 5 minutes.
pub const DEFAULT_REFRESH_INTERVAL: Duration = Duration::from_secs(5 * 60);

/// The shortest time between the starts of two fetches: 30 seconds.
pub const DEFAULT_MIN_REFETCH_INTERVAL: Duration = Duration::from_secs(30);

/// How long a fetch may take before it counts as failed: 3 seconds (less than the
/// handshake's default verify timeout, so the failure is reported by the verifier).
pub const DEFAULT_FETCH_TIMEOUT: Duration = Duration::from_secs(3);

/// How old the last good key set may get and still be used while refreshing it fails:
/// 1 hour.
pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(60 * 60);

/// Why a key set could not be loaded. Verifications report it as AUTH_UNAVAILABLE; the
/// cause is for the server's logs and is never shown to a client.
///
/// # Examples
///
/// ```
/// use std::time::Duration;
/// use wsctx::jwks::JwksError;
///
/// let error = JwksError::TimedOut(Duration::from_secs(3));
/// assert_eq!(error.to_string(), "the key set source did not answer within 3s");
/// ```
#[derive(Clone, Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JwksError {
    /// The source returned an error.
    #[error("the key set source failed")]
    Source(#[source] Arc<dyn StdError + Send + Sync>),
    /// The source did not answer within the fetch timeout.
    #[error("the key set source did not answer within {0:?}")]
    TimedOut(Duration),
    /// The set has no key that passed the checks.
    #[error("the key set has no usable key ({} refused)", .0.len())]
    NoUsableKey(Vec<RefusedKey>),
    /// No set has been loaded yet and a fetch may not start before the minimum interval.
    #[error("no key set has been loaded")]
    NotLoaded,
}

/// A key of a set that was refused when the set was loaded, and why.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use wsctx::jwks::JwksVerifier;
/// use wsctx::jwt::jsonwebtoken::jwk::JwkSet;
///
/// let set: JwkSet = serde_json::from_str(r#"{"keys": [
///     {"kty": "OKP", "crv": "Ed25519", "kid": "a", "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"},
///     {"kty": "oct", "kid": "b", "k": "c2VjcmV0"}
/// ]}"#)?;
/// let verifier = JwksVerifier::builder(move || {
///     let set = set.clone();
///     async move { Ok::<_, std::io::Error>(set) }
/// })
/// .build();
/// let summary = verifier.refresh().await?;
/// assert_eq!(summary.key_ids(), ["a"]);
/// assert_eq!(summary.refused()[0].kid(), Some("b"));
/// # Ok(())
/// # }
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RefusedKey {
    kid: Option<String>,
    error: JwtKeyError,
}

impl RefusedKey {
    /// The key's `kid`, if it had one.
    ///
    /// # Examples
    ///
    /// See [`RefusedKey`].
    #[must_use]
    pub fn kid(&self) -> Option<&str> {
        self.kid.as_deref()
    }

    /// Why the key was refused.
    ///
    /// # Examples
    ///
    /// See [`RefusedKey`].
    #[must_use]
    pub fn error(&self) -> &JwtKeyError {
        &self.error
    }
}

/// What a loaded key set holds: the `kid`s of its usable keys and the keys it refused.
///
/// # Examples
///
/// See [`RefusedKey`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KeySetSummary {
    key_ids: Vec<String>,
    refused: Vec<RefusedKey>,
}

impl KeySetSummary {
    /// The `kid`s of the usable keys, sorted.
    ///
    /// # Examples
    ///
    /// See [`RefusedKey`].
    #[must_use]
    pub fn key_ids(&self) -> &[String] {
        &self.key_ids
    }

    /// The keys that were refused, in the order of the set.
    ///
    /// # Examples
    ///
    /// See [`RefusedKey`].
    #[must_use]
    pub fn refused(&self) -> &[RefusedKey] {
        &self.refused
    }
}

/// A loaded key set.
struct KeySet {
    keys: HashMap<String, Key>,
    fetched_at: Instant,
    summary: KeySetSummary,
}

impl KeySet {
    /// Checks every key of `set`; refused keys are listed, never used.
    fn load(set: &JwkSet, fetched_at: Instant) -> Result<Self, JwksError> {
        let mut uses: HashMap<&str, usize> = HashMap::new();
        for jwk in &set.keys {
            if let Some(kid) = &jwk.common.key_id {
                *uses.entry(kid).or_default() += 1;
            }
        }
        let mut keys = HashMap::new();
        let mut refused = Vec::new();
        for jwk in &set.keys {
            let Some(kid) = jwk.common.key_id.as_deref() else {
                refused.push(RefusedKey {
                    kid: None,
                    error: JwtKeyError::untyped("the key has no kid"),
                });
                continue;
            };
            let checked = if uses.get(kid).copied().unwrap_or_default() > 1 {
                Err(JwtKeyError::untyped("the kid names more than one key"))
            } else {
                Key::from_jwk(jwk)
            };
            match checked {
                Ok(key) => {
                    keys.insert(kid.to_owned(), key);
                }
                Err(error) => refused.push(RefusedKey {
                    kid: Some(kid.to_owned()),
                    error,
                }),
            }
        }
        debug_event!(keys = keys.len(), refused = refused.len(), "key set loaded");
        if keys.is_empty() {
            return Err(JwksError::NoUsableKey(refused));
        }
        let mut key_ids: Vec<String> = keys.keys().cloned().collect();
        key_ids.sort_unstable();
        Ok(Self {
            keys,
            fetched_at,
            summary: KeySetSummary { key_ids, refused },
        })
    }
}

/// The result of one fetch, shared by everyone waiting for it.
type Outcome = Result<Arc<KeySet>, JwksError>;
type Fetch = Shared<BoxFuture<'static, Outcome>>;
type Source = dyn Fn() -> BoxFuture<'static, Result<JwkSet, BoxError>> + Send + Sync;

#[derive(Clone, Copy, Debug)]
struct Timing {
    refresh_interval: Duration,
    min_refetch_interval: Duration,
    fetch_timeout: Duration,
    max_age: Duration,
}

#[derive(Default)]
struct State {
    /// The last set that loaded.
    current: Option<Arc<KeySet>>,
    /// When the last fetch started.
    last_attempt: Option<Instant>,
    /// Why the last fetch failed, until one succeeds.
    last_error: Option<JwksError>,
    /// The fetch in flight (or finished and not yet settled), and its number.
    in_flight: Option<(u64, Fetch)>,
    /// The number of the last fetch started.
    fetches: u64,
}

struct Inner {
    source: Arc<Source>,
    rules: ClaimRules,
    timing: Timing,
    state: Mutex<State>,
}

/// What a verification does next.
enum Step {
    Use(Arc<KeySet>),
    Wait(u64, Fetch),
    Fail(JwksError),
}

impl Inner {
    fn state(&self) -> MutexGuard<'_, State> {
        // The state is consistent after every statement; a panic elsewhere cannot leave
        // it half-updated.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Decides, under the lock and without waiting, whether a set at hand serves `kid`,
    /// a fetch must be waited for (joined or started), or the verification fails.
    fn step(&self, kid: Option<&str>, force: bool) -> Step {
        let now = Instant::now();
        let mut state = self.state();
        if let (Some(set), Some(kid), false) = (&state.current, kid, force)
            && now.duration_since(set.fetched_at) < self.timing.refresh_interval
            && set.keys.contains_key(kid)
        {
            return Step::Use(Arc::clone(set));
        }
        if let Some((number, fetch)) = &state.in_flight {
            return Step::Wait(*number, fetch.clone());
        }
        let may_fetch = force
            || state
                .last_attempt
                .is_none_or(|at| now.duration_since(at) >= self.timing.min_refetch_interval);
        if may_fetch {
            state.fetches += 1;
            state.last_attempt = Some(now);
            let fetch = self.fetch();
            state.in_flight = Some((state.fetches, fetch.clone()));
            return Step::Wait(state.fetches, fetch);
        }
        self.fallback(&state, now, kid)
    }

    /// Without a new set: the last good one while it is young enough, as long as the
    /// answer does not hang on the failed source. A `kid` the set lacks while the last
    /// fetch failed may be a new key the source could not deliver: that is the source's
    /// failure (AUTH_UNAVAILABLE), not the token's.
    fn fallback(&self, state: &State, now: Instant, kid: Option<&str>) -> Step {
        match &state.current {
            Some(set)
                if now.duration_since(set.fetched_at) < self.timing.max_age
                    && (state.last_error.is_none()
                        || kid.is_some_and(|kid| set.keys.contains_key(kid))) =>
            {
                Step::Use(Arc::clone(set))
            }
            _ => Step::Fail(state.last_error.clone().unwrap_or(JwksError::NotLoaded)),
        }
    }

    /// A fetch of the source under the timeout, then the key checks. It runs when first
    /// polled, outside the lock.
    fn fetch(&self) -> Fetch {
        let source = Arc::clone(&self.source);
        let timeout = self.timing.fetch_timeout;
        async move {
            let set = match tokio::time::timeout(timeout, source()).await {
                Ok(Ok(set)) => set,
                Ok(Err(error)) => {
                    debug_event!("key set source failed");
                    return Err(JwksError::Source(Arc::from(error)));
                }
                Err(_) => {
                    debug_event!("key set source timed out");
                    return Err(JwksError::TimedOut(timeout));
                }
            };
            KeySet::load(&set, Instant::now()).map(Arc::new)
        }
        .boxed()
        .shared()
    }

    /// Records the outcome of fetch `number`, once: the first waiter to finish does it.
    fn settle(&self, number: u64, outcome: &Outcome) {
        let mut state = self.state();
        if !matches!(&state.in_flight, Some((in_flight, _)) if *in_flight == number) {
            return;
        }
        state.in_flight = None;
        match outcome {
            Ok(set) => {
                state.current = Some(Arc::clone(set));
                state.last_error = None;
            }
            Err(error) => state.last_error = Some(error.clone()),
        }
    }

    /// The key set to verify a token naming `kid` with.
    async fn key_set(&self, kid: Option<&str>, force: bool) -> Result<Arc<KeySet>, JwksError> {
        let (number, fetch) = match self.step(kid, force) {
            Step::Use(set) => return Ok(set),
            Step::Fail(error) => return Err(error),
            Step::Wait(number, fetch) => (number, fetch),
        };
        let outcome = fetch.await;
        self.settle(number, &outcome);
        let error = match outcome {
            Ok(set) => return Ok(set),
            Err(error) => error,
        };
        let fallback = self.fallback(&self.state(), Instant::now(), kid);
        match fallback {
            Step::Use(set) if !force => Ok(set),
            _ => Err(error),
        }
    }
}

/// Verifies JSON Web Tokens with the keys of a JWK set, chosen by the token's `kid`.
/// A cheap `Clone` handle: clones share the cache. See the [module documentation](self)
/// for the caching rules.
///
/// # Examples
///
/// ```
/// # #[tokio::main(flavor = "current_thread")]
/// # async fn main() -> Result<(), Box<dyn std::error::Error>> {
/// use std::time::Duration;
/// use wsctx::jwks::JwksVerifier;
/// use wsctx::jwt::jsonwebtoken::jwk::JwkSet;
///
/// // In a server the source fetches the provider's `jwks_uri`.
/// async fn fetch_keys() -> Result<JwkSet, std::io::Error> {
///     Ok(serde_json::from_str(r#"{"keys": [{"kty": "OKP", "crv": "Ed25519", "kid": "2025-01",
///         "x": "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"}]}"#)?)
/// }
///
/// let verifier = JwksVerifier::builder(fetch_keys)
///     .audience(["wsctx"])
///     .issuer(["https://id.example"])
///     .refresh_interval(Duration::from_secs(600))
///     .build();
/// // Optional: load now, and fail at start-up if the source is down.
/// let summary = verifier.refresh().await?;
/// assert_eq!(summary.key_ids(), ["2025-01"]);
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct JwksVerifier {
    inner: Arc<Inner>,
}

impl fmt::Debug for JwksVerifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let state = self.inner.state();
        f.debug_struct("JwksVerifier")
            .field("rules", &self.inner.rules)
            .field("timing", &self.inner.timing)
            .field(
                "key_ids",
                &state.current.as_ref().map(|set| &set.summary.key_ids),
            )
            .field("fetches", &state.fetches)
            .finish_non_exhaustive()
    }
}

impl JwksVerifier {
    /// A builder around `source`, the async function that returns the current key set.
    ///
    /// # Examples
    ///
    /// See [`JwksVerifier`].
    pub fn builder<F, Fut, E>(source: F) -> JwksBuilder
    where
        F: Fn() -> Fut + Send + Sync + 'static,
        Fut: Future<Output = Result<JwkSet, E>> + Send + 'static,
        E: Into<BoxError>,
    {
        let source: Arc<Source> =
            Arc::new(move || source().map(|result| result.map_err(Into::into)).boxed());
        JwksBuilder {
            source,
            rules: ClaimRules::default(),
            timing: Timing {
                refresh_interval: DEFAULT_REFRESH_INTERVAL,
                min_refetch_interval: DEFAULT_MIN_REFETCH_INTERVAL,
                fetch_timeout: DEFAULT_FETCH_TIMEOUT,
                max_age: DEFAULT_MAX_AGE,
            },
        }
    }

    /// Fetches the key set now (or joins the fetch in flight), whatever the minimum
    /// interval, and reports which keys it holds. Call it at start-up to fail early when
    /// the source is down or its set has no usable key; verifications load the set on
    /// their own otherwise.
    ///
    /// # Errors
    ///
    /// [`JwksError`] when the source fails or times out, or the set has no usable key.
    ///
    /// # Examples
    ///
    /// See [`JwksVerifier`].
    pub async fn refresh(&self) -> Result<KeySetSummary, JwksError> {
        self.inner
            .key_set(None, true)
            .await
            .map(|set| set.summary.clone())
    }

    /// Verifies `token`: its `kid` chooses the key.
    ///
    /// # Errors
    ///
    /// The credential errors of [`JwtVerifier`](crate::jwt::JwtVerifier) (a token
    /// without a `kid`, or whose `kid` the set does not hold after the refetch it may
    /// trigger, is [`AuthError::ValidationFailed`]), and [`AuthError::Unavailable`] when
    /// no usable key set can be had.
    async fn verify_token(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        let compact = Compact::parse(token.expose_secret())?;
        let kid = compact
            .header
            .kid
            .as_deref()
            .ok_or(AuthError::ValidationFailed)?;
        let set = self
            .inner
            .key_set(Some(kid), false)
            .await
            .map_err(AuthError::unavailable)?;
        let key = set.keys.get(kid).ok_or(AuthError::ValidationFailed)?;
        compact.verify(key, &self.inner.rules)
    }
}

impl TokenVerifier for JwksVerifier {
    async fn verify(&self, token: &Token) -> Result<AuthenticatedUser, AuthError> {
        self.verify_token(token).await
    }
}

/// Configures a [`JwksVerifier`]: the claim checks (as for
/// [`JwtVerifier`](crate::jwt::JwtVerifier)) and the cache's timing.
///
/// # Examples
///
/// See [`JwksVerifier`].
#[must_use]
pub struct JwksBuilder {
    source: Arc<Source>,
    rules: ClaimRules,
    timing: Timing,
}

debug_fields!(JwksBuilder { rules, timing, .. });

impl JwksBuilder {
    crate::jwt::claim_rule_setters! {
        audience:
        /// See [`JwksVerifier`].
        issuer:
        /// See [`JwksVerifier`].
        leeway:
        /// See [`JwksVerifier`].
    }

    builder_setters! {
        /// How old the set may get before it is fetched again (default
        /// [`DEFAULT_REFRESH_INTERVAL`]).
        ///
        /// # Examples
        ///
        /// See [`JwksVerifier`].
        refresh_interval(interval: Duration) => timing.refresh_interval;

        /// The shortest time between the starts of two fetches (default
        /// [`DEFAULT_MIN_REFETCH_INTERVAL`]); it bounds the fetches that unknown `kid`s and a
        /// failing source can cause.
        ///
        /// # Examples
        ///
        /// ```
        /// # async fn keys() -> Result<wsctx::jwt::jsonwebtoken::jwk::JwkSet, std::io::Error> { Ok(Default::default()) }
        /// let verifier = wsctx::jwks::JwksVerifier::builder(keys)
        ///     .min_refetch_interval(std::time::Duration::from_secs(60))
        ///     .build();
        /// # let _ = verifier;
        /// ```
        min_refetch_interval(interval: Duration) => timing.min_refetch_interval;

        /// How long one fetch may take (default [`DEFAULT_FETCH_TIMEOUT`]).
        ///
        /// # Examples
        ///
        /// ```
        /// # async fn keys() -> Result<wsctx::jwt::jsonwebtoken::jwk::JwkSet, std::io::Error> { Ok(Default::default()) }
        /// let verifier = wsctx::jwks::JwksVerifier::builder(keys)
        ///     .fetch_timeout(std::time::Duration::from_secs(2))
        ///     .build();
        /// # let _ = verifier;
        /// ```
        fetch_timeout(timeout: Duration) => timing.fetch_timeout;

        /// How old the last good set may get and still be used while refreshing it fails
        /// (default [`DEFAULT_MAX_AGE`]; never less than the refresh interval). Past it,
        /// verifications are AUTH_UNAVAILABLE until a fetch succeeds.
        ///
        /// # Examples
        ///
        /// ```
        /// # async fn keys() -> Result<wsctx::jwt::jsonwebtoken::jwk::JwkSet, std::io::Error> { Ok(Default::default()) }
        /// let verifier = wsctx::jwks::JwksVerifier::builder(keys)
        ///     .max_age(std::time::Duration::from_secs(15 * 60))
        ///     .build();
        /// # let _ = verifier;
        /// ```
        max_age(age: Duration) => timing.max_age;
    }

    /// The verifier. Nothing is fetched yet: see [`JwksVerifier::refresh`].
    ///
    /// # Examples
    ///
    /// See [`JwksVerifier`].
    #[must_use]
    pub fn build(self) -> JwksVerifier {
        let mut timing = self.timing;
        timing.max_age = timing.max_age.max(timing.refresh_interval);
        JwksVerifier {
            inner: Arc::new(Inner {
                source: self.source,
                rules: self.rules,
                timing,
                state: Mutex::new(State::default()),
            }),
        }
    }
}
