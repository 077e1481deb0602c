//! Metrics: every counter moves with the transition it counts, and nothing else moves.

mod support;

use std::time::Duration;

use support::contexts::{bound, tabs};
use support::full::{fill, tight_limits};
use wsctx::{
    CloseCode, CloseFrame, ErrorCode, Frame, Limits, ManagerFactory, MetricsSnapshot, UserId,
};

/// The counters that changed between two snapshots, with their change.
fn changes(before: &MetricsSnapshot, after: &MetricsSnapshot) -> Vec<(&'static str, i64)> {
    let fields = |m: &MetricsSnapshot| {
        [
            ("admitted", m.admitted),
            ("freed", m.freed),
            ("active", m.active),
            (
                "rejected_connection_limit",
                m.rejected(ErrorCode::ConnectionLimit),
            ),
            ("rejected_overloaded", m.rejected(ErrorCode::Overloaded)),
            (
                "rejected_duplicate_client",
                m.rejected(ErrorCode::DuplicateClient),
            ),
            (
                "rejected_shutting_down",
                m.rejected(ErrorCode::ShuttingDown),
            ),
            ("messages_delivered", m.messages_delivered),
            ("messages_dropped", m.messages_dropped),
            ("messages_discarded", m.messages_discarded),
            ("slow_consumers", m.slow_consumers),
            ("idle_timeouts", m.idle_timeouts),
            ("disconnected", m.disconnected),
            ("closed_by_shutdown", m.closed_by_shutdown),
        ]
    };
    fields(before)
        .into_iter()
        .zip(fields(after))
        .filter(|((_, b), (_, a))| a != b)
        .map(|((name, b), (_, a))| (name, i64::try_from(a).unwrap() - i64::try_from(b).unwrap()))
        .collect()
}

/// Runs `step` and asserts that exactly `expected` counters changed, by those amounts.
#[track_caller]
fn expect(factory: &ManagerFactory, expected: &[(&'static str, i64)], step: impl FnOnce()) {
    let before = factory.metrics();
    step();
    assert_eq!(changes(&before, &factory.metrics()), expected);
}

#[test]
fn admission_and_release_move_admitted_active_and_freed() {
    let factory = ManagerFactory::default();
    let mut held = None;
    expect(&factory, &[("admitted", 1), ("active", 1)], || {
        held = Some(factory.create(bound("user-a", "tab-1")).unwrap());
    });
    expect(&factory, &[("freed", 1), ("active", -1)], || {
        drop(held.take());
    });
    let m = factory.metrics();
    assert_eq!((m.admitted, m.freed, m.active), (1, 1, 0));
}

#[test]
fn each_refusal_counts_under_its_code() {
    let factory = ManagerFactory::new(tight_limits());
    let _held = fill(&factory);
    expect(&factory, &[("rejected_duplicate_client", 1)], || {
        factory.create(bound("user-a", "tab-1")).unwrap_err();
    });
    expect(&factory, &[("rejected_connection_limit", 1)], || {
        factory.create(bound("user-a", "tab-2")).unwrap_err();
    });
    expect(&factory, &[("rejected_overloaded", 1)], || {
        factory.create(bound("user-c", "tab-1")).unwrap_err();
    });
    factory.shutdown();
    expect(&factory, &[("rejected_shutting_down", 1)], || {
        factory.create(bound("user-c", "tab-1")).unwrap_err();
    });
    let m = factory.metrics();
    assert_eq!(m.rejected(ErrorCode::DuplicateClient), 1);
    assert_eq!(m.rejected(ErrorCode::ConnectionLimit), 1);
    assert_eq!(m.rejected(ErrorCode::Overloaded), 1);
    assert_eq!(m.rejected(ErrorCode::ShuttingDown), 1);
    assert_eq!(m.rejected(ErrorCode::NoToken), 0);
    assert_eq!(m.rejected_total(), 4);
}

#[test]
fn delivery_counts_one_per_receiving_socket() {
    let factory = ManagerFactory::default();
    let [(a1, _o1), (_a2, _o2)] = tabs(&factory, "user-a");
    let (_b, _ob) = factory.create(bound("user-b", "tab-1")).unwrap();
    expect(&factory, &[("messages_delivered", 2)], || {
        a1.send_to_user(Frame::text("x"));
    });
}

#[test]
fn a_full_queue_counts_a_slow_consumer_a_dropped_frame_and_the_discarded_ones() {
    let factory = ManagerFactory::new(Limits {
        outbound_queue: 3,
        ..Limits::default()
    });
    let [(manager, _out)] = tabs(&factory, "user-a");
    for _ in 0..3 {
        manager.send_to_user(Frame::text("x"));
    }
    expect(
        &factory,
        &[
            ("messages_dropped", 1),
            ("messages_discarded", 3),
            ("slow_consumers", 1),
        ],
        || {
            manager.send_to_user(Frame::text("overflow"));
        },
    );
    // Further frames to the closing socket are dropped, not counted as slow again.
    expect(&factory, &[("messages_dropped", 1)], || {
        manager.send_to_user(Frame::text("late"));
    });
}

#[test]
fn a_dropped_outbound_counts_its_queued_frames_as_discarded() {
    let factory = ManagerFactory::default();
    let (manager, out) = factory.create(bound("user-a", "tab-1")).unwrap();
    manager.send_to_user(Frame::text("x"));
    manager.send_to_user(Frame::text("y"));
    expect(&factory, &[("messages_discarded", 2)], || drop(out));
}

#[test]
fn disconnects_count_once_per_socket_closed() {
    let factory = ManagerFactory::default();
    let [(a1, _o1), (a2, _o2), (a3, _o3)] = tabs(&factory, "user-a");
    let user = UserId::try_new("user-a").unwrap();
    expect(&factory, &[("disconnected", 1)], || {
        a1.close(&CloseFrame::new(CloseCode::NORMAL, ""));
    });
    expect(&factory, &[("disconnected", 2)], || {
        factory.disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, ""));
    });
    expect(&factory, &[], || {
        factory.disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, ""));
        a3.close(&CloseFrame::new(CloseCode::NORMAL, ""));
    });
    // A close frame is never sent as a message: refused, it counts as dropped for each
    // socket of the user and closes nothing.
    expect(&factory, &[("messages_dropped", 3)], || {
        a2.send_to_user(Frame::Close(CloseFrame::new(CloseCode::NORMAL, "")));
    });
}

#[test]
fn shutdown_counts_every_open_socket_it_closes() {
    let factory = ManagerFactory::default();
    let (a, _oa) = factory.create(bound("user-a", "tab-1")).unwrap();
    let _b = factory.create(bound("user-b", "tab-1")).unwrap();
    let _c = factory.create(bound("user-c", "tab-1")).unwrap();
    a.close(&CloseFrame::new(CloseCode::NORMAL, ""));
    expect(&factory, &[("closed_by_shutdown", 2)], || {
        factory.shutdown();
    });
    expect(&factory, &[], || factory.shutdown());
}

#[tokio::test(start_paused = true)]
async fn the_idle_reaper_counts_idle_timeouts() {
    let factory = ManagerFactory::new(Limits {
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    });
    let [(_idle, _oi), (busy, _ob)] = tabs(&factory, "user-a");
    // t = 0: the sweep notes both admissions.
    expect(&factory, &[], || assert_eq!(factory.close_idle(), 0));
    tokio::time::advance(Duration::from_secs(29)).await;
    busy.record_activity();
    expect(&factory, &[], || assert_eq!(factory.close_idle(), 0));
    // t = 30: the idle socket has had no activity for 30 s, the busy one for 1 s.
    tokio::time::advance(Duration::from_secs(1)).await;
    expect(&factory, &[("idle_timeouts", 1)], || {
        assert_eq!(factory.close_idle(), 1);
    });
    expect(&factory, &[], || assert_eq!(factory.close_idle(), 0));
}
