//! Delivery: fan-out to one user's sockets only, slow consumers, closes that get
//! through full queues, `disconnect_user`, shutdown and the idle reaper.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use support::contexts::{bound, tabs};
use tokio::time::timeout;
use wsctx::{
    CloseCode, CloseFrame, CloseStyle, Delivery, ErrorCode, FactoryError, Frame, Limits,
    ManagerFactory, Outbound, TryRecvError, UserId,
};

fn close(code: CloseCode, reason: &str) -> Frame {
    Frame::Close(CloseFrame::new(code, reason))
}

/// What a send did: (delivered, dropped).
fn sent(delivery: Delivery) -> (usize, usize) {
    (delivery.delivered, delivery.dropped)
}

/// Everything an outbound yields now, up to and including a close frame.
fn drain(outbound: &mut Outbound) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Ok(frame) = outbound.try_recv() {
        frames.push(frame);
    }
    frames
}

#[test]
fn send_reaches_every_tab_of_the_user_and_nobody_else() {
    let factory = ManagerFactory::default();
    let [(a1, mut a1_out), (_a2, mut a2_out), (_a3, mut a3_out)] = tabs(&factory, "user-a");
    let (b1, mut b1_out) = factory.create(bound("user-b", "tab-1")).unwrap();

    assert_eq!(sent(a1.send_to_user(Frame::text("to a"))), (3, 0));
    assert_eq!(sent(b1.send_to_user(Frame::binary(vec![0xb]))), (1, 0));

    for out in [&mut a1_out, &mut a2_out, &mut a3_out] {
        assert_eq!(drain(out), vec![Frame::text("to a")]);
    }
    assert_eq!(drain(&mut b1_out), vec![Frame::binary(vec![0xb])]);
}

#[tokio::test]
async fn recv_wakes_a_waiting_writer() {
    let factory = ManagerFactory::default();
    let (manager, mut outbound) = factory.create(bound("user-a", "tab-1")).unwrap();
    let writer = tokio::spawn(async move {
        let mut got = Vec::new();
        while let Some(frame) = outbound.recv().await {
            got.push(frame);
        }
        got
    });
    tokio::task::yield_now().await;
    manager.send_to_user(Frame::text("1"));
    tokio::task::yield_now().await;
    manager.send_to_user(Frame::text("2"));
    tokio::task::yield_now().await;
    drop(manager);
    let got = timeout(Duration::from_secs(5), writer)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        got,
        vec![
            Frame::text("1"),
            Frame::text("2"),
            close(CloseCode::NORMAL, "")
        ]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_consumer_cannot_delay_the_users_other_sockets() {
    const FRAMES: usize = 1_000;
    const QUEUE: usize = 16;
    let factory = ManagerFactory::new(Limits {
        outbound_queue: QUEUE,
        ..Limits::default()
    });
    let (sender, mut slow_out) = factory.create(bound("user-a", "tab-slow")).unwrap();
    let fast = tabs::<3>(&factory, "user-a");
    let (_managers, outbounds): (Vec<_>, Vec<_>) = fast.into_iter().unzip();

    // Fast writers read as frames come, each on its own task; the slow one never reads.
    let progress: Vec<Arc<AtomicUsize>> = (0..outbounds.len()).map(|_| Arc::default()).collect();
    let writers: Vec<_> = outbounds
        .into_iter()
        .zip(&progress)
        .map(|(mut out, progress)| {
            let progress = Arc::clone(progress);
            tokio::spawn(async move {
                let mut texts = Vec::new();
                while texts.len() < FRAMES {
                    match out.recv().await {
                        Some(Frame::Text(text)) => texts.push(text),
                        other => panic!("unexpected {other:?}"),
                    }
                    progress.store(texts.len(), Ordering::Release);
                }
                texts
            })
        })
        .collect();

    let mut slow_closed_at = None;
    for i in 0..FRAMES {
        let delivery = sender.send_to_user(Frame::text(i.to_string()));
        if delivery.dropped == 1 && slow_closed_at.is_none() {
            slow_closed_at = Some(i);
        }
        // Every fast socket gets every frame; the slow one only until its queue is full.
        assert_eq!(
            delivery.delivered,
            if i < QUEUE { 4 } else { 3 },
            "frame {i}"
        );
        // A fast writer is one that keeps within half a queue of the sender.
        let behind = |p: &Arc<AtomicUsize>| p.load(Ordering::Acquire) + QUEUE / 2 <= i;
        timeout(Duration::from_secs(10), async {
            while progress.iter().any(behind) {
                tokio::task::yield_now().await;
            }
        })
        .await
        .unwrap();
    }
    assert_eq!(
        slow_closed_at,
        Some(QUEUE),
        "the 17th frame overflows the slow queue"
    );

    for writer in writers {
        let texts = timeout(Duration::from_secs(10), writer)
            .await
            .unwrap()
            .unwrap();
        let expected: Vec<String> = (0..FRAMES).map(|i| i.to_string()).collect();
        assert_eq!(
            texts.iter().map(ToString::to_string).collect::<Vec<_>>(),
            expected
        );
    }

    // The slow socket gets the close first, although its queue was full.
    assert_eq!(
        slow_out.recv().await,
        Some(close(CloseCode::TRY_AGAIN_LATER, "slow_consumer"))
    );
    assert_eq!(slow_out.recv().await, None);
    let m = factory.metrics();
    assert_eq!(m.slow_consumers, 1);
    assert_eq!(m.messages_discarded, QUEUE as u64);
}

#[test]
fn sending_never_blocks_on_a_full_queue() {
    // One thread, no reader at all: every send returns at once.
    let factory = ManagerFactory::new(Limits {
        outbound_queue: 4,
        ..Limits::default()
    });
    let [(slow, _slow_out), (_fast, mut fast_out)] = tabs(&factory, "user-a");
    for i in 0..100 {
        slow.send_to_user(Frame::text(i.to_string()));
        assert_eq!(drain(&mut fast_out), vec![Frame::text(i.to_string())]);
    }
    assert!(slow.is_closing());
}

#[test]
fn a_close_gets_through_a_full_queue() {
    let factory = ManagerFactory::new(Limits {
        outbound_queue: 2,
        ..Limits::default()
    });
    let (manager, mut outbound) = factory.create(bound("user-a", "tab-1")).unwrap();
    manager.send_to_user(Frame::text("1"));
    manager.send_to_user(Frame::text("2"));
    assert_eq!(outbound.len(), 2);
    let user = manager.context().user_id().clone();
    assert_eq!(
        factory.disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, "bye")),
        1
    );
    assert_eq!(
        drain(&mut outbound),
        vec![close(CloseCode::GOING_AWAY, "bye")]
    );
    assert_eq!(outbound.try_recv(), Err(TryRecvError::Closed));
}

#[test]
fn disconnect_user_closes_exactly_that_users_sockets_with_the_given_code() {
    let factory = ManagerFactory::default();
    let a = tabs::<3>(&factory, "user-a");
    let mut b = tabs::<2>(&factory, "user-b");
    let code = CloseCode::new(4000).unwrap();

    let closed = factory.disconnect_user(
        &UserId::try_new("user-a").unwrap(),
        &CloseFrame::new(code, "kicked"),
    );
    assert_eq!(closed, 3);
    for (manager, mut out) in a {
        assert!(manager.is_closing());
        assert_eq!(drain(&mut out), vec![close(code, "kicked")]);
    }
    b[0].0.send_to_user(Frame::text("still here"));
    for (manager, out) in &mut b {
        assert!(!manager.is_closing());
        assert_eq!(drain(out), vec![Frame::text("still here")]);
    }
    // Already closed: nothing more to close. An unknown user: nothing at all.
    assert_eq!(
        factory.disconnect_user(
            &UserId::try_new("user-a").unwrap(),
            &CloseFrame::new(code, "x")
        ),
        0
    );
    assert_eq!(
        factory.disconnect_user(
            &UserId::try_new("nobody").unwrap(),
            &CloseFrame::new(code, "x")
        ),
        0
    );
    assert_eq!(factory.metrics().disconnected, 3);
}

/// Closing is `close` and `disconnect_user`'s job: a close frame handed to
/// `send_to_user` is refused (every socket of the user counts it as dropped) and closes
/// nothing. Until this change it closed every tab of the user.
#[test]
fn a_close_frame_sent_to_the_user_is_refused_and_closes_nothing() {
    let factory = ManagerFactory::default();
    let [(a1, mut a1_out), (a2, mut a2_out)] = tabs(&factory, "user-a");
    let (_b, mut b_out) = factory.create(bound("user-b", "tab-1")).unwrap();
    assert_eq!(
        sent(a1.send_to_user(close(CloseCode::NORMAL, "logged_out"))),
        (0, 2)
    );
    assert!(!a1.is_closing() && !a2.is_closing());
    for out in [&mut a1_out, &mut a2_out, &mut b_out] {
        assert_eq!(out.try_recv(), Err(TryRecvError::Empty));
    }
    let m = factory.metrics();
    assert_eq!((m.messages_dropped, m.disconnected), (2, 0));
}

/// Issue 8, defect 8: after `IsolatedManager::close`, the manager's own sends still
/// reached the user's other tabs. They are refused now; the slot stays held until the
/// manager is dropped, as documented.
#[test]
fn a_closed_manager_cannot_send_and_holds_its_slot_until_dropped() {
    let factory = ManagerFactory::new(Limits {
        per_user: 2,
        ..Limits::default()
    });
    let user = UserId::try_new("user-a").unwrap();
    let [(a1, mut a1_out), (a2, mut a2_out)] = tabs(&factory, "user-a");
    assert!(a1.close(&CloseFrame::new(CloseCode::NORMAL, "logged_out")));

    assert_eq!(sent(a1.send_to_user(Frame::text("after close"))), (0, 2));
    assert_eq!(factory.metrics().messages_dropped, 2);
    assert_eq!(a2_out.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(
        drain(&mut a1_out),
        vec![close(CloseCode::NORMAL, "logged_out")]
    );

    // Closed is not freed: the slot and the client id are the drop's to give back.
    assert_eq!(factory.connections(&user), 2);
    assert_eq!(
        factory.create(bound("user-a", "tab-3")).unwrap_err(),
        FactoryError::ConnectionLimit
    );
    drop(a1);
    assert_eq!(factory.connections(&user), 1);
    let (_a3, mut a3_out) = factory.create(bound("user-a", "tab-3")).unwrap();

    // The user's open tabs still talk to each other.
    assert_eq!(sent(a2.send_to_user(Frame::text("still here"))), (2, 0));
    assert_eq!(drain(&mut a2_out), vec![Frame::text("still here")]);
    assert_eq!(drain(&mut a3_out), vec![Frame::text("still here")]);
}

/// Every close the server requests refuses the manager's sends, not only `close`.
#[tokio::test(start_paused = true)]
async fn a_manager_closed_by_the_server_cannot_send() {
    let factory = ManagerFactory::new(Limits {
        idle_timeout: Duration::from_secs(30),
        ..Limits::default()
    });
    let user = UserId::try_new("user-a").unwrap();
    let (kicked, _kicked_out) = factory.create(bound("user-a", "tab-1")).unwrap();
    factory.disconnect_user(&user, &CloseFrame::new(CloseCode::GOING_AWAY, "bye"));
    let (idle, _idle_out) = factory.create(bound("user-a", "tab-2")).unwrap();
    let (busy, mut busy_out) = factory.create(bound("user-a", "tab-3")).unwrap();
    assert_eq!(factory.close_idle(), 0);
    tokio::time::advance(Duration::from_secs(30)).await;
    busy.record_activity();
    assert_eq!(factory.close_idle(), 1);
    assert!(idle.is_closing() && !busy.is_closing());

    for closed in [&kicked, &idle] {
        assert_eq!(
            sent(closed.send_to_user(Frame::text("from a closed tab"))),
            (0, 3)
        );
    }
    assert_eq!(busy_out.try_recv(), Err(TryRecvError::Empty));

    factory.shutdown();
    assert_eq!(
        sent(busy.send_to_user(Frame::text("after shutdown"))),
        (0, 3)
    );
    assert!(drain(&mut busy_out).iter().all(Frame::is_close));
}

#[test]
fn closing_one_manager_closes_only_its_socket() {
    let factory = ManagerFactory::default();
    let [(a1, mut a1_out), (a2, mut a2_out)] = tabs(&factory, "user-a");
    assert!(a1.close_with(&wsctx::Rejection::new(ErrorCode::TokenExpired)));
    assert_eq!(
        drain(&mut a1_out),
        vec![close(CloseCode::UNAUTHORIZED, "token_expired")]
    );
    assert_eq!(sent(a2.send_to_user(Frame::text("hi"))), (1, 1));
    assert_eq!(drain(&mut a2_out), vec![Frame::text("hi")]);
}

#[test]
fn dropping_a_manager_closes_its_socket_and_discards_what_was_queued() {
    let factory = ManagerFactory::default();
    let (manager, mut outbound) = factory.create(bound("user-a", "tab-1")).unwrap();
    manager.send_to_user(Frame::text("never sent"));
    drop(manager);
    assert!(outbound.is_closing());
    assert_eq!(drain(&mut outbound), vec![close(CloseCode::NORMAL, "")]);
    assert_eq!(outbound.try_recv(), Err(TryRecvError::Closed));
    let m = factory.metrics();
    assert_eq!((m.active, m.freed, m.messages_discarded), (0, 1, 1));
}

#[test]
fn a_dropped_outbound_only_drops_frames_for_its_own_socket() {
    let factory = ManagerFactory::default();
    let [(a1, a1_out), (_a2, mut a2_out)] = tabs(&factory, "user-a");
    drop(a1_out);
    assert!(a1.is_closing());
    assert_eq!(sent(a1.send_to_user(Frame::text("x"))), (1, 1));
    assert_eq!(drain(&mut a2_out), vec![Frame::text("x")]);
}

#[test]
fn shutdown_closes_everything_with_1012_and_refuses_new_admissions() {
    let factory = ManagerFactory::default();
    let mut all: Vec<_> = Vec::new();
    for user in ["user-a", "user-b", "user-c"] {
        for tab in ["tab-1", "tab-2"] {
            all.push(factory.create(bound(user, tab)).unwrap());
        }
    }
    all[0].0.send_to_user(Frame::text("pending"));
    factory.shutdown();
    assert!(factory.is_shutting_down());
    for (manager, out) in &mut all {
        assert!(manager.is_closing());
        assert_eq!(
            drain(out),
            vec![close(CloseCode::SERVICE_RESTART, "shutting_down")]
        );
    }
    assert_eq!(
        factory.create(bound("user-d", "tab-1")).unwrap_err(),
        FactoryError::ShuttingDown
    );
    factory.shutdown(); // idempotent
    assert_eq!(factory.metrics().closed_by_shutdown, 6);
    drop(all);
    assert_eq!(factory.metrics().active, 0);
}

#[tokio::test(start_paused = true)]
async fn the_idle_reaper_closes_idle_sockets_with_4408() {
    let factory = ManagerFactory::new(Limits {
        idle_timeout: Duration::from_secs(60),
        ..Limits::default()
    });
    let (_idle, mut idle_out) = factory.create(bound("user-a", "tab-idle")).unwrap();
    let (busy, mut busy_out) = factory.create(bound("user-a", "tab-busy")).unwrap();
    let (_other, mut other_out) = factory.create(bound("user-b", "tab-1")).unwrap();
    let reaper = tokio::spawn({
        let factory = factory.clone();
        async move { factory.run_idle_reaper(Duration::from_secs(10)).await }
    });

    // Sweeps run at t = 10 s, 20 s, ...; the busy socket is active at 5 s, 15 s, ...
    // The first sweep sees the admissions, so the idle sockets' last activity is 10 s.
    tokio::time::sleep(Duration::from_secs(5)).await;
    for _ in 0..6 {
        busy.record_activity();
        tokio::time::sleep(Duration::from_secs(10)).await;
    }
    // t = 65 s: the sweep at 60 s found 50 s of idleness, less than the timeout.
    assert!(!idle_out.is_closing());
    busy.record_activity();
    // t = 75 s: the sweep at 70 s found 60 s and closed the two idle sockets.
    tokio::time::sleep(Duration::from_secs(10)).await;
    assert_eq!(
        drain(&mut idle_out),
        vec![close(CloseCode::TIMEOUT, "idle_timeout")]
    );
    assert_eq!(
        drain(&mut other_out),
        vec![close(CloseCode::TIMEOUT, "idle_timeout")]
    );
    assert_eq!(busy_out.try_recv(), Err(TryRecvError::Empty));
    assert_eq!(factory.metrics().idle_timeouts, 2);

    // Shutdown stops the reaper.
    factory.shutdown();
    timeout(Duration::from_secs(1), reaper)
        .await
        .unwrap()
        .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_reaper_returns_at_once_on_a_shut_down_factory() {
    let factory = ManagerFactory::default();
    factory.shutdown();
    timeout(
        Duration::from_secs(1),
        factory.run_idle_reaper(Duration::ZERO),
    )
    .await
    .unwrap();
}

#[tokio::test(start_paused = true)]
async fn the_opaque_style_closes_idle_sockets_with_1008() {
    let factory = ManagerFactory::with_close_style(
        Limits {
            idle_timeout: Duration::from_secs(1),
            ..Limits::default()
        },
        CloseStyle::Opaque,
    );
    let (_m, mut out) = factory.create(bound("user-a", "tab-1")).unwrap();
    assert_eq!(factory.close_idle(), 0);
    tokio::time::advance(Duration::from_secs(2)).await;
    assert_eq!(factory.close_idle(), 1);
    assert_eq!(
        drain(&mut out),
        vec![close(CloseCode::POLICY_VIOLATION, "idle_timeout")]
    );
}
