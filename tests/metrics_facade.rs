//! The `metrics` facade, read through metrics-util's debugging recorder: each transition
//! moves exactly its series, by the amount `MetricsSnapshot` moves, and no metric name
//! or label carries an id. Each test gives its factory (or handshake) a recorder of its
//! own with `metrics::with_local_recorder`, so tests running in parallel never see each
//! other's figures.
#![cfg(feature = "metrics")]
#![allow(
    clippy::float_cmp,
    reason = "the recorder holds counts as floats; every value compared is an exact integer"
)]

mod support;

use std::time::Duration;

use metrics_util::debugging::DebuggingRecorder;
use support::contexts::{bound, tabs};
use support::full::{fill, tight_limits};
use support::metrics::{Reader, Series, Values, assert_mirrors, every_series, is_cluster, series};
use wsctx::metrics::{Metric, MetricKind};
use wsctx::{CloseCode, CloseFrame, ErrorCode, Frame, Limits, ManagerFactory, Rejection, UserId};

/// A factory reporting to a recorder of its own.
struct Watched {
    factory: ManagerFactory,
    reader: Reader,
}

impl Watched {
    fn new(limits: Limits) -> Self {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let factory = metrics::with_local_recorder(&recorder, || ManagerFactory::new(limits));
        Self {
            factory,
            reader: Reader::new(snapshotter),
        }
    }

    /// The series `step` moved, with how much; checks that the recorder still mirrors
    /// the factory's snapshot afterwards.
    #[track_caller]
    fn moves(&self, step: impl FnOnce()) -> Vec<(Series, f64)> {
        let moved = moved(&self.reader, step);
        assert_mirrors(&self.reader.read(), &self.factory.metrics());
        moved
    }

    /// Runs `step` and asserts that exactly the `expected` series moved, by those
    /// amounts.
    #[track_caller]
    fn expect(&self, expected: &[(Metric, Option<ErrorCode>, f64)], step: impl FnOnce()) {
        assert_eq!(self.moves(step), sorted(expected));
    }

    /// Runs `admit`, one admission, and asserts that it moved admitted and active up one
    /// each and `also`, and nothing else; returns what `admit` returned.
    #[track_caller]
    fn expect_admission<T>(
        &self,
        also: &[(Metric, Option<ErrorCode>, f64)],
        admit: impl FnOnce() -> T,
    ) -> T {
        let admission = [
            (ConnectionsAdmitted, None, 1.0),
            (ConnectionsActive, None, 1.0),
        ];
        let mut admitted = None;
        self.expect(&[&admission[..], also].concat(), || {
            admitted = Some(admit());
        });
        admitted.expect("the admission ran")
    }
}

/// The series of `reader`'s recorder that `step` moved, with how much, in series order.
fn moved(reader: &Reader, step: impl FnOnce()) -> Vec<(Series, f64)> {
    let before = reader.read();
    step();
    diff(&before, reader.read())
}

/// The series that differ from `before` in `after`, with how much, in series order.
fn diff(before: &Values, after: Values) -> Vec<(Series, f64)> {
    assert!(
        before.keys().all(|key| after.contains_key(key)),
        "no series disappears"
    );
    after
        .into_iter()
        .filter_map(|(key, value)| {
            let was = before.get(&key).copied().unwrap_or(0.0);
            (value != was).then_some((key, value - was))
        })
        .collect()
}

fn sorted(expected: &[(Metric, Option<ErrorCode>, f64)]) -> Vec<(Series, f64)> {
    let mut expected: Vec<_> = expected
        .iter()
        .map(|&(metric, code, by)| (series(metric, code), by))
        .collect();
    expected.sort_by(|a, b| a.0.cmp(&b.0));
    expected
}

use Metric::{
    AdmissionRejections, ConnectionsActive, ConnectionsAdmitted, ConnectionsClosed,
    ConnectionsDisconnected, ConnectionsFreed, MessagesDelivered, MessagesDiscarded,
    MessagesDropped,
};

#[test]
fn a_new_factory_registers_every_series_at_0_and_describes_it() {
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    let _factory = metrics::with_local_recorder(&recorder, ManagerFactory::default);
    let snapshot = snapshotter.snapshot().into_vec();
    let values: Values = snapshot
        .iter()
        .map(|(key, _, _, _)| {
            let code = key.key().labels().next().map(|l| l.value().to_owned());
            ((key.key().name().to_owned(), code), 0.0)
        })
        .collect();
    let factory_series =
        || every_series().filter(|(m, _)| *m != Metric::HandshakeRejections && !is_cluster(*m));
    for (metric, code) in factory_series() {
        assert_eq!(
            values.get(&series(metric, code)),
            Some(&0.0),
            "{metric:?} {code:?}"
        );
    }
    // Nothing else: the handshake's family is registered by a handshake.
    assert_eq!(values.len(), factory_series().count());
    for (key, unit, help, value) in &snapshot {
        let metric = Metric::ALL
            .into_iter()
            .find(|m| m.name() == key.key().name())
            .unwrap();
        assert_eq!(*unit, Some(metric.unit()), "{metric:?}");
        assert_eq!(help.as_deref(), Some(metric.help()), "{metric:?}");
        let is_counter = matches!(value, metrics_util::debugging::DebugValue::Counter(_));
        assert_eq!(
            is_counter,
            metric.kind() == MetricKind::Counter,
            "{metric:?}"
        );
    }
}

#[test]
fn admission_and_release_move_admitted_active_and_freed() {
    let w = Watched::new(Limits::default());
    let mut held =
        Some(w.expect_admission(&[], || w.factory.create(bound("user-a", "tab-1")).unwrap()));
    w.expect(
        &[
            (ConnectionsFreed, None, 1.0),
            (ConnectionsActive, None, -1.0),
        ],
        || drop(held.take()),
    );
}

#[test]
fn each_admission_refusal_moves_its_code_only() {
    let w = Watched::new(tight_limits());
    let _held = fill(&w.factory);
    let refusals = [
        (ErrorCode::DuplicateClient, bound("user-a", "tab-1")),
        (ErrorCode::ConnectionLimit, bound("user-a", "tab-2")),
        (ErrorCode::Overloaded, bound("user-c", "tab-1")),
    ];
    for (code, ctx) in refusals {
        w.expect(&[(AdmissionRejections, Some(code), 1.0)], || {
            assert_eq!(w.factory.create(ctx).unwrap_err().code(), code);
        });
    }
    w.factory.shutdown();
    w.expect(
        &[(AdmissionRejections, Some(ErrorCode::ShuttingDown), 1.0)],
        || {
            w.factory.create(bound("user-c", "tab-1")).unwrap_err();
        },
    );
}

#[test]
fn a_send_moves_delivered_once_per_receiving_socket() {
    let w = Watched::new(Limits::default());
    let [(a1, _o1), (_a2, _o2)] = tabs(&w.factory, "user-a");
    let (_b, _ob) = w.factory.create(bound("user-b", "tab-1")).unwrap();
    w.expect(&[(MessagesDelivered, None, 2.0)], || {
        a1.send_to_user(Frame::text("x"));
    });
    let alice = UserId::try_new("user-a").unwrap();
    w.expect(&[(MessagesDelivered, None, 2.0)], || {
        w.factory
            .send_to_user(&alice, Frame::text("from elsewhere"));
    });
    // A close frame is refused as a message: dropped for each socket of the user.
    w.expect(&[(MessagesDropped, None, 2.0)], || {
        a1.send_to_user(Frame::Close(CloseFrame::new(CloseCode::NORMAL, "")));
    });
}

#[test]
fn a_slow_consumer_moves_dropped_discarded_and_its_close() {
    let w = Watched::new(Limits {
        outbound_queue: 3,
        ..Limits::default()
    });
    let [(manager, _out)] = tabs(&w.factory, "user-a");
    for _ in 0..3 {
        manager.send_to_user(Frame::text("x"));
    }
    w.expect(
        &[
            (MessagesDropped, None, 1.0),
            (MessagesDiscarded, None, 3.0),
            (ConnectionsClosed, Some(ErrorCode::SlowConsumer), 1.0),
        ],
        || {
            manager.send_to_user(Frame::text("overflow"));
        },
    );
    w.expect(&[(MessagesDropped, None, 1.0)], || {
        manager.send_to_user(Frame::text("late"));
    });
}

#[test]
fn disconnects_move_disconnected_once_per_socket() {
    let w = Watched::new(Limits::default());
    let [(a1, _o1), (_a2, _o2), (_a3, out3)] = tabs(&w.factory, "user-a");
    let user = UserId::try_new("user-a").unwrap();
    w.expect(&[(ConnectionsDisconnected, None, 1.0)], || {
        a1.close(&CloseFrame::new(CloseCode::NORMAL, ""));
    });
    w.expect(&[(ConnectionsDisconnected, None, 2.0)], || {
        w.factory
            .disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, ""));
    });
    w.expect(&[], || {
        w.factory
            .disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, ""));
    });
    // The close frame waiting in the dropped queue is not a message: nothing moves.
    w.expect(&[], || drop(out3));
}

#[test]
fn closes_with_a_rejection_move_the_closes_of_their_code() {
    let w = Watched::new(Limits::default());
    // The codes the axum runner closes with, and one an application might use.
    let codes = [
        ErrorCode::ProtocolError,
        ErrorCode::InvalidPayload,
        ErrorCode::MessageTooBig,
        ErrorCode::HeartbeatTimeout,
        ErrorCode::TokenExpired,
        ErrorCode::Forbidden,
    ];
    for (i, code) in codes.into_iter().enumerate() {
        let (manager, _out) = w
            .factory
            .create(bound("user-a", &format!("tab-{i}")))
            .unwrap();
        manager.send_to_user(Frame::text("queued"));
        w.expect(
            &[
                (ConnectionsClosed, Some(code), 1.0),
                (MessagesDiscarded, None, 1.0),
            ],
            || assert!(manager.close_with(&Rejection::new(code))),
        );
        w.expect(&[], || assert!(!manager.close_with(&Rejection::new(code))));
    }
}

#[tokio::test(start_paused = true)]
async fn the_idle_reaper_moves_the_idle_closes() {
    let w = Watched::new(Limits {
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    });
    let [(_idle, _oi), (busy, _ob)] = tabs(&w.factory, "user-a");
    w.expect(&[], || assert_eq!(w.factory.close_idle(), 0));
    tokio::time::advance(Duration::from_secs(29)).await;
    busy.record_activity();
    w.expect(&[], || assert_eq!(w.factory.close_idle(), 0));
    tokio::time::advance(Duration::from_secs(1)).await;
    w.expect(
        &[(ConnectionsClosed, Some(ErrorCode::IdleTimeout), 1.0)],
        || assert_eq!(w.factory.close_idle(), 1),
    );
}

#[test]
fn shutdown_moves_one_close_per_open_socket() {
    let w = Watched::new(Limits::default());
    let (a, _oa) = w.factory.create(bound("user-a", "tab-1")).unwrap();
    let _b = w.factory.create(bound("user-b", "tab-1")).unwrap();
    let _c = w.factory.create(bound("user-c", "tab-1")).unwrap();
    w.expect(&[(ConnectionsDisconnected, None, 1.0)], || {
        a.close(&CloseFrame::new(CloseCode::NORMAL, ""));
    });
    w.expect(
        &[(ConnectionsClosed, Some(ErrorCode::ShuttingDown), 2.0)],
        || w.factory.shutdown(),
    );
    w.expect(&[], || w.factory.shutdown());
}

#[test]
fn a_factory_keeps_its_recorder_on_every_thread_and_others_see_nothing() {
    let mine = Watched::new(Limits::default());
    let other = Watched::new(Limits::default());
    let factory = mine.factory.clone();
    let untouched = moved(&other.reader, || {
        let admitted = mine.moves(|| {
            std::thread::spawn(move || {
                let (manager, _out) = factory.create(bound("user-a", "tab-1")).unwrap();
                manager.send_to_user(Frame::text("from another thread"));
            })
            .join()
            .unwrap();
        });
        assert_eq!(
            admitted,
            sorted(&[
                (ConnectionsAdmitted, None, 1.0),
                (ConnectionsFreed, None, 1.0),
                (MessagesDelivered, None, 1.0),
                (MessagesDiscarded, None, 1.0),
            ])
        );
    });
    assert_eq!(untouched, []);
    // A factory created under no recorder reports nowhere, and still counts.
    let plain = ManagerFactory::default();
    let quiet = moved(&mine.reader, || {
        let _tab = plain.create(bound("user-a", "tab-1")).unwrap();
    });
    assert_eq!(quiet, []);
    assert_eq!(plain.metrics().admitted, 1);
}

/// Server push: events, replay, resumes and the rings (the emitter needs `serde`).
#[cfg(feature = "serde")]
mod events {
    use std::time::Duration;

    use wsctx::metrics::Metric::{
        ConnectionsActive, ConnectionsFreed, EventsEmitted, EventsReplayed, MessagesDelivered,
        MessagesDiscarded, ReplayBytes, ReplayRings, ResumeGaps, Resumes,
    };
    use wsctx::{EventType, Limits, ReplayLimits, ResumePoint};

    use super::support::contexts::bound;
    use super::support::metrics::series;
    use super::{Watched, sorted};

    #[tokio::test(start_paused = true)]
    async fn events_resumes_gaps_and_rings_move_their_series() {
        let w = Watched::new(Limits {
            replay: ReplayLimits {
                window: Duration::from_secs(1),
                ..ReplayLimits::default()
            },
            ..Limits::default()
        });
        let step = EventType::try_new("agent_thinking").unwrap();
        let ctx = bound("user-a", "tab-1");
        let emitter = w.factory.emitter(&ctx);
        let tab = w.factory.create(ctx).unwrap();

        // The user's first event creates the ring and holds the event's bytes.
        let before = w.factory.metrics().replay_bytes;
        let mut seen = None;
        let moved = w.moves(|| seen = emitter.emit(&step, &1).unwrap().position);
        let held = w.factory.metrics().replay_bytes - before;
        assert!(held > 0);
        #[allow(clippy::cast_precision_loss, reason = "a few hundred bytes")]
        let mut expected = sorted(&[
            (EventsEmitted, None, 1.0),
            (MessagesDelivered, None, 1.0),
            (ReplayRings, None, 1.0),
            (ReplayBytes, None, held as f64),
        ]);
        expected.sort_by(|a, b| a.0.cmp(&b.0));
        assert_eq!(moved, expected);
        let seen: ResumePoint = seen.unwrap();

        drop(tab);
        // Missed by nobody: the user has no socket, the ring keeps it.
        let moved = w.moves(|| {
            emitter.emit(&step, &2).unwrap();
        });
        assert_eq!(moved.len(), 2, "{moved:?}");
        assert_eq!(moved[0].0, series(EventsEmitted, None));
        assert_eq!(moved[1].0, series(ReplayBytes, None));

        let resumed = w
            .expect_admission(&[(Resumes, None, 1.0), (EventsReplayed, None, 1.0)], || {
                w.factory.create_resuming(bound("user-a", "tab-2"), seen)
            });
        let unknown: ResumePoint = "0123456789abcdef.1".parse().unwrap();
        let gap = w.expect_admission(&[(ResumeGaps, None, 1.0)], || {
            w.factory.create_resuming(bound("user-a", "tab-3"), unknown)
        });
        // Nobody read them: the replayed event and `resumed`, and `resume_gap`, are
        // thrown away with their sockets.
        w.expect(
            &[
                (ConnectionsFreed, None, 2.0),
                (ConnectionsActive, None, -2.0),
                (MessagesDiscarded, None, 3.0),
            ],
            || drop((resumed, gap)),
        );

        // One window after the last socket left, the sweep frees the ring and gives its
        // bytes back.
        tokio::time::advance(Duration::from_secs(2)).await;
        let bytes = w.factory.metrics().replay_bytes;
        #[allow(clippy::cast_precision_loss, reason = "a few hundred bytes")]
        let freed = sorted(&[
            (ReplayRings, None, -1.0),
            (ReplayBytes, None, -(bytes as f64)),
        ]);
        assert_eq!(
            w.moves(|| assert_eq!(w.factory.free_expired_rings(), 1)),
            freed
        );
        assert_eq!(w.factory.metrics().replay_bytes, 0);
    }

    #[test]
    fn a_position_for_a_new_user_moves_the_rings() {
        let w = Watched::new(Limits::default());
        let tab = w.expect_admission(&[(ReplayRings, None, 1.0)], || {
            w.factory.create_with_position(bound("user-b", "tab-1"))
        });
        assert!(tab.is_ok());
    }
}

/// The handshake's refusals (feature `http`).
#[cfg(feature = "http")]
mod handshake {
    use std::future::{Future, ready};
    use std::sync::Arc;

    use http::{HeaderMap, HeaderValue, Uri, header};
    use metrics_util::debugging::DebuggingRecorder;
    use wsctx::http::{Handshake, HandshakeBuilder, Origins};
    use wsctx::metrics::Metric::HandshakeRejections;
    use wsctx::{
        AuthError, AuthenticatedUser, ErrorCode, GenerateError, IdKind, Rejection, Token, from_fn,
        verify_fn,
    };

    use super::support::metrics::{Reader, Series, series};
    use super::{diff, sorted};

    /// `ok-<user>` is that user; a few words stand for each refusal of a verifier.
    fn builder() -> HandshakeBuilder {
        Handshake::builder(verify_fn(|token: &Token| {
            ready(match token.expose_secret() {
                "expired" => Err(AuthError::Expired),
                "forged" => Err(AuthError::ValidationFailed),
                "down" => Err(AuthError::unavailable("identity provider unreachable")),
                other => AuthenticatedUser::from_subject(other.strip_prefix("ok-")),
            })
        }))
    }

    /// `configure`'s handshake, reporting to a recorder of its own.
    fn watched(
        configure: impl FnOnce(HandshakeBuilder) -> HandshakeBuilder,
    ) -> (Handshake, Reader) {
        let recorder = DebuggingRecorder::new();
        let snapshotter = recorder.snapshotter();
        let handshake = metrics::with_local_recorder(&recorder, || configure(builder()).build());
        (handshake, Reader::new(snapshotter))
    }

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        let value = HeaderValue::from_str(&format!("Bearer {token}")).unwrap();
        headers.insert(header::AUTHORIZATION, value);
        headers
    }

    #[tokio::test]
    async fn a_new_handshake_registers_its_family_at_0() {
        let (_handshake, reader) = watched(|b| b);
        let values = reader.read();
        assert_eq!(values.len(), ErrorCode::COUNT);
        for code in ErrorCode::ALL {
            assert_eq!(values[&series(HandshakeRejections, Some(code))], 0.0);
        }
    }

    /// The series `step` moved, with how much, and what it returned.
    async fn moves<T>(reader: &Reader, step: impl Future<Output = T>) -> (Vec<(Series, f64)>, T) {
        let before = reader.read();
        let out = step.await;
        (diff(&before, reader.read()), out)
    }

    /// Asserts that `step` is refused with `code` and moves that code's series, once,
    /// and nothing else.
    async fn refused_once<T: std::fmt::Debug>(
        reader: &Reader,
        code: ErrorCode,
        step: impl Future<Output = Result<T, Rejection>>,
    ) {
        let (moved, refused) = moves(reader, step).await;
        assert_eq!(refused.unwrap_err().code(), code);
        assert_eq!(
            moved,
            sorted(&[(HandshakeRejections, Some(code), 1.0)]),
            "{code:?}"
        );
    }

    #[tokio::test]
    async fn each_refusal_of_authenticate_and_bind_moves_its_code_only() {
        let (handshake, reader) = watched(|b| b.origins(Origins::list(["https://app.example"])));
        let ws = Uri::from_static("/ws");
        let from_app = |mut headers: HeaderMap| {
            headers.insert(
                header::ORIGIN,
                HeaderValue::from_static("https://app.example"),
            );
            headers
        };
        let mut elsewhere = bearer("ok-user-a");
        elsewhere.insert(
            header::ORIGIN,
            HeaderValue::from_static("https://evil.example"),
        );
        let refused_token = [
            (ErrorCode::NoToken, None),
            (ErrorCode::InvalidFormat, Some("a!b")),
            (ErrorCode::ValidationFailed, Some("forged")),
            (ErrorCode::TokenExpired, Some("expired")),
            (ErrorCode::MissingUserId, Some("anonymous")),
            (ErrorCode::AuthUnavailable, Some("down")),
        ];
        let mut cases = vec![(ErrorCode::Forbidden, elsewhere, ws.clone())];
        for (code, token) in refused_token {
            let headers = token.map_or_else(HeaderMap::new, bearer);
            cases.push((code, from_app(headers), ws.clone()));
        }
        let bad_thread = Uri::from_static("/ws?thread_id=null");
        cases.push((
            ErrorCode::InvalidContext,
            from_app(bearer("ok-user-a")),
            bad_thread,
        ));
        for (code, headers, uri) in cases {
            refused_once(&reader, code, handshake.authenticate(&headers, &uri)).await;
        }
        // An accepted handshake moves nothing.
        let headers = from_app(bearer("ok-user-a"));
        let (moved, ctx) = moves(&reader, handshake.authenticate(&headers, &ws)).await;
        assert_eq!(moved, []);
        // Binding it moves nothing either.
        let (moved, bound) = moves(&reader, async { handshake.bind(ctx.unwrap(), None) }).await;
        assert!(bound.is_ok());
        assert_eq!(moved, []);
        // The building blocks called on their own are not handshakes: a refused
        // refresh (`verify_capped`) moves nothing.
        let (moved, refused) = moves(&reader, handshake.verify_capped(&Token::new("forged"))).await;
        assert!(refused.is_err());
        assert_eq!(moved, []);
    }

    #[tokio::test]
    async fn verifications_over_the_cap_move_overloaded() {
        let (handshake, reader) = watched(|b| b.max_in_flight(0));
        let headers = bearer("ok-user-a");
        let ws = Uri::from_static("/ws");
        refused_once(
            &reader,
            ErrorCode::Overloaded,
            handshake.authenticate(&headers, &ws),
        )
        .await;
    }

    #[tokio::test]
    async fn a_generator_that_fails_moves_internal_error_at_authenticate_and_at_bind() {
        // Fails for everything: the context's missing ids cannot be generated.
        let (broken, reader) =
            watched(|b| b.id_generator(from_fn(|kind: IdKind| Err(GenerateError::new(kind)))));
        refused_once(
            &reader,
            ErrorCode::InternalError,
            broken.authenticate(&bearer("ok-user-a"), &Uri::from_static("/ws")),
        )
        .await;

        // Fails only for client ids: the context validates, the bind fails.
        let no_client_ids = from_fn(|kind: IdKind| match kind {
            IdKind::WebSocketClient => Err(GenerateError::new(kind)),
            _ => Ok(format!("{}_generated", kind.prefix())),
        });
        let (handshake, reader) = watched(|b| b.id_generator(Arc::new(no_client_ids)));
        let headers = bearer("ok-user-a");
        let ctx = handshake
            .authenticate(&headers, &Uri::from_static("/ws"))
            .await
            .unwrap();
        refused_once(&reader, ErrorCode::InternalError, async {
            handshake.bind(ctx, None)
        })
        .await;
    }

    /// The axum extractor reads the resume point after the handshake's checks; a
    /// malformed one is a refusal of the handshake too.
    #[cfg(feature = "axum")]
    #[tokio::test]
    async fn the_extractor_moves_a_malformed_resume_point() {
        use axum::extract::FromRequestParts as _;
        use wsctx::axum::Authenticated;

        let (handshake, reader) = watched(|b| b);
        let request = |uri: &'static str| {
            let (parts, ()) = http::Request::builder()
                .uri(uri)
                .header(header::AUTHORIZATION, "Bearer ok-user-a")
                .body(())
                .unwrap()
                .into_parts();
            parts
        };
        // What the extractor makes of a request.
        let extract = |mut parts: http::request::Parts| {
            let handshake = &handshake;
            async move { Authenticated::from_request_parts(&mut parts, handshake).await }
        };
        let malformed = request("/ws?resume=not-a-point");
        refused_once(&reader, ErrorCode::InvalidContext, extract(malformed)).await;

        let mut anonymous = request("/ws?resume=0123456789abcdef.1");
        anonymous.headers.remove(header::AUTHORIZATION);
        // Refused by the checks before the resume point is read: counted once.
        refused_once(&reader, ErrorCode::NoToken, extract(anonymous)).await;

        let resuming = request("/ws?resume=0123456789abcdef.1");
        let (moved, accepted) = moves(&reader, extract(resuming)).await;
        assert!(accepted.is_ok());
        assert_eq!(moved, []);
    }
}

/// Every metric name and label the recorder ever saw, after a run through the
/// transitions with distinctive ids: only the table's names, only the `code` label,
/// only error codes as its values, and no id anywhere.
#[tokio::test]
async fn no_metric_name_or_label_carries_an_id() {
    const USER: &str = "user-7f3a9c1e";
    const TAB: &str = "tab-2b8d4e6f";
    let recorder = DebuggingRecorder::new();
    let snapshotter = recorder.snapshotter();
    // For the whole test, on this thread (the runtime is single-threaded): whatever the
    // crate reports at any moment, not only through the handles taken at creation,
    // reaches this recorder.
    let _everything = metrics::set_default_local_recorder(&recorder);
    let factory = metrics::with_local_recorder(&recorder, || {
        ManagerFactory::new(Limits {
            per_user: 3,
            outbound_queue: 1,
            ..Limits::default()
        })
    });
    let ctx = bound(USER, TAB);
    let thread = ctx.thread_id().as_str().to_owned();
    #[cfg_attr(
        not(any(feature = "serde", feature = "http")),
        allow(unused_mut, reason = "the event and handshake steps add ids")
    )]
    let mut ids = vec![USER.to_owned(), TAB.to_owned(), thread];
    let (manager, _out) = factory.create(ctx).unwrap();
    factory.create(bound(USER, TAB)).unwrap_err();
    manager.send_to_user(Frame::text("one"));
    manager.send_to_user(Frame::text("two")); // a slow consumer
    let (other, _o) = factory.create(bound(USER, "tab-other")).unwrap();
    other.close_with(&Rejection::new(ErrorCode::ProtocolError));
    factory.disconnect_user(
        &UserId::try_new(USER).unwrap(),
        &CloseFrame::new(CloseCode::GOING_AWAY, ""),
    );
    #[cfg(feature = "serde")]
    {
        let ctx = bound(USER, "tab-events");
        ids.push(ctx.run_id().as_str().to_owned());
        ids.push(ctx.request_id().as_str().to_owned());
        let (_tab, _out) = factory.create_with_position(ctx.clone()).unwrap();
        let event = wsctx::EventType::try_new("agent_thinking").unwrap();
        factory.emitter(&ctx).emit(&event, &USER).unwrap();
    }
    #[cfg(feature = "http")]
    {
        use http::{HeaderMap, HeaderValue, Uri, header};

        let verifier = wsctx::verify_fn(|token: &wsctx::Token| {
            std::future::ready(wsctx::AuthenticatedUser::from_subject(
                token.expose_secret().strip_prefix("ok-"),
            ))
        });
        let handshake = metrics::with_local_recorder(&recorder, || {
            wsctx::http::Handshake::builder(verifier).build()
        });
        let mut headers = HeaderMap::new();
        let bearer = HeaderValue::from_str(&format!("Bearer ok-{USER}")).unwrap();
        headers.insert(header::AUTHORIZATION, bearer);
        let refused = Uri::from_static("/ws?thread_id=null&run_id=run-5d1c7a2b");
        ids.push("run-5d1c7a2b".to_owned());
        handshake
            .authenticate(&headers, &refused)
            .await
            .unwrap_err();
        handshake
            .authenticate(&HeaderMap::new(), &refused)
            .await
            .unwrap_err();
        let _accepted = handshake
            .authenticate(&headers, &Uri::from_static("/ws"))
            .await
            .unwrap();
    }
    let names: Vec<&str> = Metric::ALL.iter().map(|m| m.name()).collect();
    let codes: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
    let snapshot = snapshotter.snapshot().into_vec();
    assert!(snapshot.len() > Metric::COUNT);
    for (key, _, help, _) in &snapshot {
        let key = key.key();
        assert!(
            names.contains(&key.name()),
            "{} is in the table",
            key.name()
        );
        for label in key.labels() {
            assert_eq!(label.key(), "code");
            assert!(codes.contains(&label.value()), "{}", label.value());
        }
        let mut text = format!("{key:?}");
        text.push_str(help.as_deref().unwrap_or_default());
        for id in &ids {
            assert!(!text.contains(id.as_str()), "{id} in {text}");
        }
    }
}
