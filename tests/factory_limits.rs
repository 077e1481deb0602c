//! Admission: per-user and global limits, duplicate client ids, RAII slots, and the
//! races between concurrent admissions.

mod support;

use std::sync::{Arc, Barrier};
use std::thread;
use std::time::Duration;

use support::contexts::{bound, tabs};
use wsctx::state::Bound;
use wsctx::{
    CloseCode, CloseStyle, Context, ErrorCode, FactoryError, IsolatedManager, Limits,
    ManagerFactory, Outbound, Rejection, UserId,
};

fn user(id: &str) -> UserId {
    UserId::try_new(id).unwrap()
}

#[test]
fn limits_default_to_the_contract() {
    let limits = Limits::default();
    assert_eq!(limits.per_user, 5);
    assert_eq!(limits.global, 10_000);
    assert_eq!(limits.outbound_queue, 256);
    assert_eq!(limits.idle_timeout, Duration::from_secs(300));
    assert_eq!(ManagerFactory::default().limits(), limits);
}

#[test]
fn sixth_socket_of_one_user_is_refused_while_another_user_connects() {
    let factory = ManagerFactory::default();
    let held = tabs::<5>(&factory, "user-a");
    assert_eq!(factory.connections(&user("user-a")), 5);

    let error = factory.create(bound("user-a", "tab-6")).unwrap_err();
    assert_eq!(error, FactoryError::ConnectionLimit);
    let rejection = Rejection::from(error);
    assert_eq!(rejection.code(), ErrorCode::ConnectionLimit);
    assert_eq!(rejection.http_status(), Some(429));
    assert_eq!(
        rejection.close_code(CloseStyle::Detailed),
        CloseCode::TOO_MANY_REQUESTS
    );

    // Another user is never refused because user-a is at its limit.
    let (other, _out) = factory.create(bound("user-b", "tab-1")).unwrap();
    assert_eq!(other.context().user_id(), &user("user-b"));
    assert_eq!(factory.metrics().active, 6);
    drop(held);
}

#[test]
fn a_freed_slot_can_be_reused() {
    let factory = ManagerFactory::new(Limits {
        per_user: 2,
        ..Limits::default()
    });
    let first = factory.create(bound("user-a", "tab-1")).unwrap();
    let _second = factory.create(bound("user-a", "tab-2")).unwrap();
    assert_eq!(
        factory.create(bound("user-a", "tab-3")).unwrap_err(),
        FactoryError::ConnectionLimit
    );

    drop(first);
    assert_eq!(factory.connections(&user("user-a")), 1);
    // The slot and the client id are both free again.
    let _again = factory.create(bound("user-a", "tab-1")).unwrap();
    assert_eq!(
        factory.create(bound("user-a", "tab-3")).unwrap_err(),
        FactoryError::ConnectionLimit
    );
}

#[test]
fn dropping_only_the_outbound_keeps_the_slot() {
    let factory = ManagerFactory::new(Limits {
        per_user: 1,
        ..Limits::default()
    });
    let (manager, outbound) = factory.create(bound("user-a", "tab-1")).unwrap();
    drop(outbound);
    assert_eq!(
        factory.create(bound("user-a", "tab-2")).unwrap_err(),
        FactoryError::ConnectionLimit
    );
    drop(manager);
    let _again = factory.create(bound("user-a", "tab-2")).unwrap();
}

#[test]
fn global_limit_gives_overloaded() {
    let factory = ManagerFactory::new(Limits {
        global: 3,
        ..Limits::default()
    });
    let mut held: Vec<_> = ["user-a", "user-b", "user-c"]
        .iter()
        .map(|u| factory.create(bound(u, "tab-1")).unwrap())
        .collect();

    let error = factory.create(bound("user-d", "tab-1")).unwrap_err();
    assert_eq!(error, FactoryError::Overloaded);
    let rejection = Rejection::from(error);
    assert_eq!(rejection.http_status(), Some(503));
    assert!(rejection.retry_after().is_some());
    assert_eq!(
        rejection.close_code(CloseStyle::Detailed),
        CloseCode::TRY_AGAIN_LATER
    );
    // A user with sockets already is refused too: the limit is global.
    assert_eq!(
        factory.create(bound("user-a", "tab-2")).unwrap_err(),
        FactoryError::Overloaded
    );

    held.pop();
    let _d = factory.create(bound("user-d", "tab-1")).unwrap();
    assert_eq!(factory.metrics().active, 3);
}

#[test]
fn duplicate_client_id_is_refused_for_the_same_user_only() {
    let factory = ManagerFactory::default();
    let (first, _first_out) = factory.create(bound("user-a", "tab-1")).unwrap();

    let error = factory.create(bound("user-a", "tab-1")).unwrap_err();
    assert_eq!(error, FactoryError::DuplicateClient);
    let rejection = Rejection::from(error);
    assert_eq!(rejection.http_status(), Some(409));
    assert_eq!(
        rejection.close_code(CloseStyle::Detailed),
        CloseCode::CONFLICT
    );

    // Another user may use the same client id.
    let (_b, _b_out) = factory.create(bound("user-b", "tab-1")).unwrap();

    // Once the first socket is closing, the id is free for a reconnect, while the slot
    // stays counted until the manager is dropped.
    assert!(first.close(&wsctx::CloseFrame::new(CloseCode::NORMAL, "")));
    let (_again, _again_out) = factory.create(bound("user-a", "tab-1")).unwrap();
    assert_eq!(factory.connections(&user("user-a")), 2);
}

#[test]
fn a_shut_down_factory_refuses_with_shutting_down() {
    let factory = ManagerFactory::default();
    factory.shutdown();
    let error = factory.create(bound("user-a", "tab-1")).unwrap_err();
    assert_eq!(error, FactoryError::ShuttingDown);
    assert_eq!(
        Rejection::from(error).close_code(CloseStyle::Detailed),
        CloseCode::SERVICE_RESTART
    );
    assert_eq!(Rejection::from(error).http_status(), Some(503));
}

#[test]
fn zero_limits_refuse_everything_and_a_zero_queue_reads_as_one() {
    let refusal = |limits| {
        let factory = ManagerFactory::new(limits);
        factory.create(bound("user-a", "tab-1")).unwrap_err()
    };
    let d = Limits::default();
    assert_eq!(
        refusal(Limits { per_user: 0, ..d }),
        FactoryError::ConnectionLimit
    );
    assert_eq!(refusal(Limits { global: 0, ..d }), FactoryError::Overloaded);
    let mut tiny = d;
    tiny.outbound_queue = 0;
    assert_eq!(ManagerFactory::new(tiny).limits().outbound_queue, 1);
}

#[test]
fn error_messages_are_lowercase_fixed_text_matching_the_table() {
    for error in [
        FactoryError::ConnectionLimit,
        FactoryError::Overloaded,
        FactoryError::DuplicateClient,
        FactoryError::ShuttingDown,
    ] {
        let message = error.to_string();
        assert_eq!(message, error.code().message());
        assert_eq!(message, message.to_lowercase());
        assert_eq!(Rejection::from(error).code(), error.code());
        assert_ne!(
            Rejection::from(error).close_code(CloseStyle::Detailed),
            CloseCode::INTERNAL_ERROR
        );
    }
}

#[test]
fn debug_output_never_shows_the_user_id() {
    let factory = ManagerFactory::default();
    let (manager, outbound) = factory.create(bound("secret-user-8812", "tab-1")).unwrap();
    let fingerprint = manager.context().user_id().fingerprint().to_string();
    let manager_debug = format!("{manager:?}");
    for text in [
        manager_debug.clone(),
        format!("{outbound:?}"),
        format!("{factory:?}"),
        format!("{:?}", factory.metrics()),
    ] {
        assert!(!text.contains("secret-user-8812"), "{text}");
    }
    assert!(manager_debug.contains(&fingerprint), "{manager_debug}");
}

/// Admits `contexts` to `factory` from one thread each, released at once by a barrier.
/// Every refusal must be `refusal`; returns the admitted sockets.
fn admit_at_once(
    factory: &ManagerFactory,
    contexts: Vec<Context<Bound>>,
    refusal: FactoryError,
) -> Vec<(IsolatedManager, Outbound)> {
    let barrier = Arc::new(Barrier::new(contexts.len()));
    let threads: Vec<_> = contexts
        .into_iter()
        .map(|ctx| {
            let (factory, barrier) = (factory.clone(), Arc::clone(&barrier));
            thread::spawn(move || {
                barrier.wait();
                factory.create(ctx)
            })
        })
        .collect();
    let results = threads.into_iter().map(|t| t.join().unwrap());
    let (admitted, refused): (Vec<_>, Vec<_>) = results.partition(Result::is_ok);
    for error in refused.into_iter().filter_map(Result::err) {
        assert_eq!(error, refusal);
    }
    admitted.into_iter().filter_map(Result::ok).collect()
}

/// `rounds` rounds of [`admit_at_once`] with fresh `contexts()`: each round exactly
/// `limit` are admitted and the others refused with `refusal`; `while_held` runs while
/// the admitted sockets are held, and they are dropped at the end of the round.
fn admit_rounds<I: Iterator<Item = Context<Bound>>>(
    factory: &ManagerFactory,
    rounds: usize,
    contexts: impl Fn() -> I,
    (limit, refusal): (usize, FactoryError),
    while_held: impl Fn(),
) {
    for round in 0..rounds {
        let admitted = admit_at_once(factory, contexts().collect(), refusal);
        assert_eq!(admitted.len(), limit, "round {round}");
        while_held();
    }
}

#[test]
fn per_user_limit_holds_under_concurrent_admissions() {
    let factory = ManagerFactory::new(Limits {
        per_user: 3,
        ..Limits::default()
    });
    let hot_user_tabs = || (0..8).map(|t| bound("hot-user", &format!("tab-{t}")));
    admit_rounds(
        &factory,
        50,
        hot_user_tabs,
        (3, FactoryError::ConnectionLimit),
        || {
            assert_eq!(factory.connections(&user("hot-user")), 3);
        },
    );
    let m = factory.metrics();
    assert_eq!(m.active, 0);
    assert_eq!(m.admitted, 150);
    assert_eq!(m.freed, 150);
    assert_eq!(m.rejected(ErrorCode::ConnectionLimit), 250);
}

#[test]
fn global_limit_holds_under_concurrent_admissions() {
    let factory = ManagerFactory::new(Limits {
        global: 5,
        ..Limits::default()
    });
    let users = || (0..16).map(|t| bound(&format!("user-{t}"), "tab-1"));
    admit_rounds(&factory, 30, users, (5, FactoryError::Overloaded), || {});
    assert_eq!(factory.metrics().active, 0);
}
