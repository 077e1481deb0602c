//! Server push: `ManagerFactory::send_to_user` by user id, and (feature `serde`) events
//! from an emitter, their replay ring, resumes, gaps and the ring's lifetime.

mod support;

use support::contexts::{bound, tabs};
use wsctx::{CloseCode, CloseFrame, Frame, ManagerFactory, Outbound, UserId};

/// Everything an outbound yields now.
fn drain(outbound: &mut Outbound) -> Vec<Frame> {
    let mut frames = Vec::new();
    while let Ok(frame) = outbound.try_recv() {
        frames.push(frame);
    }
    frames
}

fn user(id: &str) -> UserId {
    UserId::try_new(id).unwrap()
}

#[test]
fn send_to_user_by_id_reaches_all_five_tabs_of_that_user_and_nobody_else() {
    let factory = ManagerFactory::default();
    let mut a = tabs::<5>(&factory, "user-a");
    let mut b = tabs::<5>(&factory, "user-b");

    let delivery = factory.send_to_user(&user("user-a"), Frame::text("report ready"));
    assert_eq!((delivery.delivered, delivery.dropped), (5, 0));
    assert_eq!((delivery.position, delivery.buffered), (None, false));
    for (_, out) in &mut a {
        assert_eq!(drain(out), vec![Frame::text("report ready")]);
    }
    for (_, out) in &mut b {
        assert_eq!(drain(out), Vec::<Frame>::new());
    }
    assert_eq!(factory.metrics().messages_delivered, 5);
}

#[test]
fn send_to_user_with_no_socket_delivers_to_nobody() {
    let factory = ManagerFactory::default();
    let (_b, mut b_out) = factory.create(bound("user-b", "tab-1")).unwrap();
    let delivery = factory.send_to_user(&user("user-a"), Frame::text("anyone?"));
    assert_eq!((delivery.delivered, delivery.dropped), (0, 0));
    assert!(drain(&mut b_out).is_empty());
}

#[test]
fn send_to_user_refuses_a_close_frame() {
    let factory = ManagerFactory::default();
    let [(_a1, mut out1), (_a2, mut out2)] = tabs(&factory, "user-a");
    let close = Frame::Close(CloseFrame::new(CloseCode::NORMAL, "bye"));
    let delivery = factory.send_to_user(&user("user-a"), close);
    assert_eq!((delivery.delivered, delivery.dropped), (0, 2));
    assert!(drain(&mut out1).is_empty() && drain(&mut out2).is_empty());
    assert!(!out1.is_closing());
}

#[cfg(feature = "serde")]
mod events {
    use std::time::Duration;

    use serde_json::{Value, json};
    use wsctx::{
        Context, Delivery, EmitError, Emitter, ErrorCode, EventType, FactoryError, Limits,
        ManagerFactory, Outbound, Policy, ReplayLimits, ResumePoint, SequenceGenerator,
        state::Validated,
    };

    use super::support::contexts::{bound, tabs};
    use super::{drain, user};

    /// A factory whose replay window is `window`.
    fn windowed(window: Duration) -> ManagerFactory {
        ManagerFactory::new(Limits {
            replay: ReplayLimits {
                window,
                ..ReplayLimits::default()
            },
            ..Limits::default()
        })
    }

    fn event(name: &str) -> EventType {
        EventType::try_new(name).unwrap()
    }

    /// The emitter of a request of `user`.
    /// A factory with the default limits, and an emitter of `user`'s events on it.
    fn default_factory_and_emitter(user: &str) -> (ManagerFactory, Emitter) {
        let factory = ManagerFactory::default();
        let emitter = emitter(&factory, user);
        (factory, emitter)
    }

    fn emitter(factory: &ManagerFactory, user: &str) -> Emitter {
        factory.emitter(&request(user))
    }

    fn request(user: &str) -> Context<Validated> {
        Context::builder()
            .user_id(user)
            .thread_id("thread-1")
            .run_id("run-1")
            .request_id("req-1")
            .build()
            .validate(&Policy::default(), &SequenceGenerator::new())
            .unwrap()
    }

    fn emit(emitter: &Emitter, data: i64) -> Delivery {
        emitter
            .emit(&event("agent_thinking"), &json!(data))
            .unwrap()
    }

    /// The JSON frames an outbound yields now.
    fn json_frames(outbound: &mut Outbound) -> Vec<Value> {
        drain(outbound)
            .iter()
            .map(|frame| serde_json::from_str(frame.as_text().unwrap()).unwrap())
            .collect()
    }

    /// The `data` of each event frame, and the type of every other frame.
    fn summary(frames: &[Value]) -> Vec<String> {
        frames
            .iter()
            .map(|frame| match frame["type"].as_str().unwrap() {
                "event" => frame["data"].to_string(),
                "resumed" => format!("resumed {}", frame["missed"]),
                other => other.to_owned(),
            })
            .collect()
    }

    fn position_of(frame: &Value) -> ResumePoint {
        format!("{}.{}", frame["epoch"].as_str().unwrap(), frame["seq"])
            .parse()
            .unwrap()
    }

    /// What a tab of `user-a` that resumes from `point` gets at admission (the tab is
    /// dropped afterwards).
    fn resumed(factory: &ManagerFactory, tab: &str, point: ResumePoint) -> Vec<String> {
        let (_tab, mut out) = factory
            .create_resuming(bound("user-a", tab), point)
            .unwrap();
        summary(&json_frames(&mut out))
    }

    /// Admits a tab of `user` that is told its starting position; returns it and the
    /// position.
    fn fresh_tab(
        factory: &ManagerFactory,
        user: &str,
        tab: &str,
    ) -> ((wsctx::IsolatedManager, Outbound), ResumePoint) {
        let (manager, mut outbound) = factory.create_with_position(bound(user, tab)).unwrap();
        let frames = json_frames(&mut outbound);
        assert_eq!(frames.len(), 1);
        assert_eq!(frames[0]["type"], "position");
        let position = position_of(&frames[0]);
        ((manager, outbound), position)
    }

    #[test]
    fn emit_reaches_every_tab_of_the_user_in_order_and_nobody_else() {
        let factory = ManagerFactory::default();
        let mut a = tabs::<5>(&factory, "user-a");
        let [(_b, mut b_out)] = tabs(&factory, "user-b");
        let emitter = emitter(&factory, "user-a");

        let deliveries: Vec<Delivery> = (1..=3).map(|i| emit(&emitter, i)).collect();
        for (i, delivery) in deliveries.iter().enumerate() {
            assert_eq!((delivery.delivered, delivery.dropped), (5, 0));
            assert!(delivery.buffered);
            assert_eq!(delivery.position.unwrap().seq(), i as u64 + 1);
        }
        let epoch = deliveries[0].position.unwrap().epoch();
        for (_, out) in &mut a {
            let frames = json_frames(out);
            assert_eq!(summary(&frames), ["1", "2", "3"]);
            for (i, frame) in frames.iter().enumerate() {
                assert_eq!(position_of(frame), ResumePoint::new(epoch, i as u64 + 1));
                assert_eq!(frame["event"], "agent_thinking");
                assert_eq!(frame["run_id"], "run-1");
                assert!(!frame.to_string().contains("user-a"), "{frame}");
            }
        }
        assert!(drain(&mut b_out).is_empty());
        assert_eq!(factory.metrics().events_emitted, 3);
        assert_eq!(factory.metrics().messages_delivered, 15);
    }

    #[test]
    fn a_child_context_at_any_depth_reports_its_parent_and_depth() {
        let factory = ManagerFactory::default();
        let [(_a, mut out)] = tabs(&factory, "user-a");
        let ids = SequenceGenerator::new();
        let grandchild = request("user-a")
            .child("plan", &Policy::default(), &ids)
            .unwrap()
            .child("search", &Policy::default(), &ids)
            .unwrap();
        let emitter = factory.emitter(&grandchild);
        emitter
            .emit(&event("tool_executing"), &json!({"tool": "search"}))
            .unwrap();
        let frame = &json_frames(&mut out)[0];
        assert_eq!(frame["depth"], 2);
        assert_eq!(frame["request_id"], grandchild.request_id().as_str());
        assert_eq!(
            frame["parent_request_id"],
            grandchild.parent_request_id().unwrap().as_str()
        );
        assert_eq!(frame["data"], json!({"tool": "search"}));
        assert!(frame["ts"].as_str().unwrap().ends_with('Z'));
    }

    #[test]
    fn oversized_data_sends_nothing_and_takes_no_position() {
        let factory = ManagerFactory::new(Limits {
            event_data_bytes: 8,
            ..Limits::default()
        });
        let mut a = tabs::<3>(&factory, "user-a");
        let emitter = emitter(&factory, "user-a");

        let error = emitter
            .emit(&event("agent_thinking"), &"123456789")
            .unwrap_err();
        assert_eq!(error, EmitError::DataTooLarge { limit: 8 });
        for (_, out) in &mut a {
            assert!(drain(out).is_empty());
        }
        let m = factory.metrics();
        assert_eq!(
            (m.events_emitted, m.messages_delivered, m.replay_bytes),
            (0, 0, 0)
        );

        // The next event is the user's first.
        let delivery = emitter.emit(&event("agent_thinking"), &"123456").unwrap(); // 8 bytes of JSON
        assert_eq!(delivery.position.unwrap().seq(), 1);
    }

    #[test]
    fn an_event_to_a_user_without_socket_or_ring_is_kept_by_nobody() {
        let factory = ManagerFactory::default();
        let delivery = emit(&emitter(&factory, "user-a"), 1);
        assert_eq!(delivery, Delivery::default());
        assert_eq!(factory.metrics().replay_rings, 0);
        // A tab that comes later starts at the beginning of a new stream.
        let (_tab, position) = fresh_tab(&factory, "user-a", "tab-1");
        assert_eq!(position.seq(), 0);
    }

    #[test]
    fn a_position_frame_comes_first_and_every_later_event_follows_it() {
        let (factory, emitter) = default_factory_and_emitter("user-a");
        let ((_t1, mut out1), start) = fresh_tab(&factory, "user-a", "tab-1");
        emit(&emitter, 1);
        let ((_t2, mut out2), second) = fresh_tab(&factory, "user-a", "tab-2");
        assert_eq!(second, ResumePoint::new(start.epoch(), 1));
        emit(&emitter, 2);
        assert_eq!(summary(&json_frames(&mut out1)), ["1", "2"]);
        assert_eq!(summary(&json_frames(&mut out2)), ["2"]);
    }

    #[test]
    fn resume_replays_the_missed_events_then_resumed_then_live_ones() {
        let (factory, emitter) = default_factory_and_emitter("user-a");
        let ((tab, mut out), _) = fresh_tab(&factory, "user-a", "tab-1");
        emit(&emitter, 1);
        let seen = position_of(&json_frames(&mut out)[0]);
        drop((tab, out)); // the connection drops
        emit(&emitter, 2);
        emit(&emitter, 3);

        let (_tab, mut out) = factory
            .create_resuming(bound("user-a", "tab-1"), seen)
            .unwrap();
        emit(&emitter, 4);
        let frames = json_frames(&mut out);
        assert_eq!(summary(&frames), ["2", "3", "resumed 2", "4"]);
        assert_eq!(
            frames
                .iter()
                .filter_map(|f| f["seq"].as_u64())
                .collect::<Vec<_>>(),
            [2, 3, 4]
        );
        let m = factory.metrics();
        assert_eq!((m.resumes, m.resume_gaps, m.events_replayed), (1, 0, 2));
        assert_eq!(m.messages_delivered, 1 + 1); // event 1 and event 4; not the replay
    }

    #[test]
    fn resume_from_the_newest_position_misses_nothing() {
        let factory = ManagerFactory::default();
        let ((_tab, _out), start) = fresh_tab(&factory, "user-a", "tab-1");
        assert_eq!(resumed(&factory, "tab-2", start), ["resumed 0"]);
    }

    #[test]
    fn resume_gets_a_gap_when_the_ring_cannot_serve_it() {
        let factory = ManagerFactory::new(Limits {
            replay: ReplayLimits {
                events_per_user: 2,
                ..ReplayLimits::default()
            },
            ..Limits::default()
        });
        let emitter = emitter(&factory, "user-a");
        let ((_keep, _keep_out), start) = fresh_tab(&factory, "user-a", "tab-0");
        for i in 1..=3 {
            emit(&emitter, i);
        }
        let resume = |point, tab| resumed(&factory, tab, point);
        // Event 1 was thrown away to keep 2 events: resuming before it is a gap.
        assert_eq!(resume(start, "tab-1"), ["resume_gap"]);
        // From event 1, the two held events are exactly the missed ones.
        let at_1 = ResumePoint::new(start.epoch(), 1);
        assert_eq!(resume(at_1, "tab-2"), ["2", "3", "resumed 2"]);
        // Another epoch, and a position the stream never reached.
        let other_epoch = ResumePoint::new(start.epoch() ^ 1, 3);
        assert_eq!(resume(other_epoch, "tab-3"), ["resume_gap"]);
        let ahead = ResumePoint::new(start.epoch(), 4);
        assert_eq!(resume(ahead, "tab-4"), ["resume_gap"]);
        let m = factory.metrics();
        assert_eq!((m.resumes, m.resume_gaps), (1, 3));
    }

    #[tokio::test(start_paused = true)]
    async fn the_ring_outlives_the_last_socket_by_the_window_then_is_freed() {
        let window = Duration::from_secs(60);
        let just_short = Duration::from_millis(59_999);
        let factory = windowed(window);
        let emitter = emitter(&factory, "user-a");
        let ((tab, out), start) = fresh_tab(&factory, "user-a", "tab-1");
        drop((tab, out));
        emit(&emitter, 1); // while nobody is connected
        let held = factory.metrics().replay_bytes;
        assert!(held > 0);

        tokio::time::advance(just_short).await;
        assert_eq!(factory.free_expired_rings(), 0);
        assert_eq!(resumed(&factory, "tab-1", start), ["1", "resumed 1"]);

        // The window counts from the later of the socket leaving and the newest event.
        tokio::time::advance(just_short).await;
        assert_eq!(factory.free_expired_rings(), 0);
        tokio::time::advance(Duration::from_millis(1)).await;
        assert_eq!(factory.free_expired_rings(), 1);
        let m = factory.metrics();
        assert_eq!((m.replay_rings, m.replay_bytes), (0, 0));

        // Its events are gone with it.
        assert_eq!(resumed(&factory, "tab-1", start), ["resume_gap"]);
    }

    #[tokio::test(start_paused = true)]
    async fn the_ring_stays_while_any_tab_of_the_user_is_connected() {
        let window = Duration::from_secs(10);
        let factory = windowed(window);
        let emitter = emitter(&factory, "user-a");
        let ((_stays, mut out), start) = fresh_tab(&factory, "user-a", "tab-1");
        let (leaves, _) = fresh_tab(&factory, "user-a", "tab-2");
        drop(leaves);
        tokio::time::advance(2 * window).await;
        assert_eq!(factory.free_expired_rings(), 0);
        // The stream goes on in the same epoch.
        let delivery = emit(&emitter, 1);
        assert_eq!(delivery.position, Some(ResumePoint::new(start.epoch(), 1)));
        assert_eq!(
            position_of(&json_frames(&mut out)[0]),
            delivery.position.unwrap()
        );
    }

    #[tokio::test(start_paused = true)]
    async fn an_expired_event_is_a_gap_even_while_the_user_is_connected() {
        let window = Duration::from_secs(10);
        let factory = windowed(window);
        let emitter = emitter(&factory, "user-a");
        let ((_tab, _out), start) = fresh_tab(&factory, "user-a", "tab-1");
        emit(&emitter, 1);
        tokio::time::advance(window).await;
        assert_eq!(factory.free_expired_rings(), 0); // a socket is attached
        assert_eq!(factory.metrics().replay_bytes, 0); // but the event expired
        assert_eq!(resumed(&factory, "tab-2", start), ["resume_gap"]);
    }

    #[test]
    fn replayed_frames_do_not_count_against_the_outbound_queue() {
        let factory = ManagerFactory::new(Limits {
            outbound_queue: 2,
            ..Limits::default()
        });
        let emitter = emitter(&factory, "user-a");
        let ((tab, out), start) = fresh_tab(&factory, "user-a", "tab-1");
        drop((tab, out));
        for i in 1..=10 {
            emit(&emitter, i);
        }
        let (_tab, mut out) = factory
            .create_resuming(bound("user-a", "tab-1"), start)
            .unwrap();
        assert_eq!(out.len(), 11);
        // Room for two live frames beyond the replay…
        assert_eq!(emit(&emitter, 11).delivered, 1);
        assert_eq!(emit(&emitter, 12).delivered, 1);
        // …and as the replay is read, it gives its room back to nobody.
        out.try_recv().unwrap();
        assert_eq!(emit(&emitter, 13).dropped, 1); // the queue overflowed
        assert_eq!(factory.metrics().slow_consumers, 1);
        assert!(out.is_closing());
    }

    #[test]
    fn a_refused_resume_replays_and_counts_nothing() {
        let factory = ManagerFactory::new(Limits {
            per_user: 1,
            ..Limits::default()
        });
        let ((_tab, _out), start) = fresh_tab(&factory, "user-a", "tab-1");
        emit(&emitter(&factory, "user-a"), 1);
        let error = factory
            .create_resuming(bound("user-a", "tab-2"), start)
            .unwrap_err();
        assert_eq!(error, FactoryError::ConnectionLimit);
        let m = factory.metrics();
        assert_eq!((m.resumes, m.resume_gaps, m.events_replayed), (0, 0, 0));
        assert_eq!(m.rejected(ErrorCode::ConnectionLimit), 1);
    }

    #[test]
    fn replay_bytes_count_each_held_frame_and_its_bookkeeping() {
        let factory = ManagerFactory::default();
        let [(_tab, mut out)] = tabs(&factory, "user-a");
        let emitter = emitter(&factory, "user-a");
        emit(&emitter, 1);
        emit(&emitter, 22);
        let frames: usize = drain(&mut out)
            .iter()
            .map(|frame| frame.as_text().unwrap().len())
            .sum();
        assert_eq!(factory.metrics().replay_bytes, (frames + 2 * 64) as u64);
        assert_eq!(factory.metrics().replay_rings, 1);
    }

    #[test]
    fn an_emitter_shows_no_user_id_and_is_cheap_to_share() {
        let (factory, emitter) = default_factory_and_emitter("user-secret-7");
        let debug = format!("{emitter:?}");
        assert!(!debug.contains("user-secret-7"), "{debug}");
        assert!(
            debug.contains(&user("user-secret-7").fingerprint().to_string()),
            "{debug}"
        );
        let clone = emitter.clone();
        let [(_tab, mut out)] = tabs(&factory, "user-secret-7");
        std::thread::spawn(move || emit(&clone, 1)).join().unwrap();
        assert_eq!(summary(&json_frames(&mut out)), ["1"]);
    }
}
