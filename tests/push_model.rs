//! Server push under real concurrency: a seeded proptest draws, for several clients
//! (tabs) of a few users, a program of emits (to any user), reconnects that resume,
//! reloads, plain connects, absences and sleeps; the clients run at once on a
//! multi-thread runtime while a monitor samples the replay gauges and a sweeper frees
//! expired rings. Then every socket's frames are checked against what was emitted:
//!
//! - every event frame a socket got is of its own user, at the position its emit
//!   reported, with that emit's data; no position was given twice;
//! - within a socket, events come once each, in order, with no hole: from the position
//!   frame on; or after a resume, exactly the events after the resume point, then
//!   `resumed` with their number, then the live ones; or after `resume_gap`, live ones;
//! - a socket still open at the end gets the last event of its user;
//! - the replay bytes never exceed the total cap;
//! - once every socket is gone and the window has passed, every ring is freed and no
//!   byte is held.

#![cfg(feature = "serde")]

mod support;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed};
use serde_json::{Value, json};
use support::contexts::bound;
use wsctx::{
    Emitter, EventType, IsolatedManager, Limits, ManagerFactory, Outbound, ReplayLimits,
    ResumePoint,
};

const USERS: usize = 3;
const CLIENTS_PER_USER: usize = 2;
const WINDOW: Duration = Duration::from_millis(20);
const REPLAY: ReplayLimits = ReplayLimits {
    events_per_user: 8,
    window: WINDOW,
    bytes_per_user: 2_000,
    bytes_total: 4_000,
};

#[derive(Clone, Copy, Debug)]
enum Op {
    /// Emit an event to this user (from no socket in particular).
    Emit(usize),
    /// Read what the socket has queued.
    Drain,
    /// Drop the connection and resume from the last position seen (or connect with a
    /// position frame when none was seen).
    Reconnect,
    /// Drop the connection and connect again with a position frame, as a reload does.
    Reload,
    /// Drop the connection and connect again without any start frame.
    Plain,
    /// Drop the connection and stay away until the next connecting op.
    Away,
    Sleep,
    Yield,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (0..USERS).prop_map(Op::Emit),
        4 => Just(Op::Drain),
        3 => Just(Op::Reconnect),
        1 => Just(Op::Reload),
        1 => Just(Op::Plain),
        2 => Just(Op::Away),
        2 => Just(Op::Sleep),
        2 => Just(Op::Yield),
    ]
}

/// How a socket started.
#[derive(Clone, Copy, Debug)]
enum Start {
    Plain,
    Position,
    Resume(ResumePoint),
}

/// One socket of one client, from admission to drop.
#[derive(Debug)]
struct Session {
    user: usize,
    start: Start,
    frames: Vec<Value>,
    /// Still connected when the clients stopped.
    open_at_end: bool,
}

struct Live {
    session: Session,
    manager: IsolatedManager,
    outbound: Outbound,
}

impl Live {
    fn drain(&mut self, last: &mut Option<ResumePoint>) {
        while let Ok(frame) = self.outbound.try_recv() {
            let value: Value = serde_json::from_str(frame.as_text().unwrap()).unwrap();
            if let Some("event" | "position") = value["type"].as_str() {
                *last = Some(position(&value));
            }
            self.session.frames.push(value);
        }
    }

    fn close(mut self, last: &mut Option<ResumePoint>) -> Session {
        self.drain(last);
        drop(self.manager);
        self.session
    }
}

fn position(frame: &Value) -> ResumePoint {
    format!("{}.{}", frame["epoch"].as_str().unwrap(), frame["seq"])
        .parse()
        .unwrap()
}

/// What every emit reported: (user, position) -> the event's number.
type Emitted = Mutex<HashMap<(usize, ResumePoint), u64>>;

struct World {
    factory: ManagerFactory,
    emitters: Vec<Emitter>,
    emitted: Emitted,
    numbers: AtomicU64,
    event: EventType,
}

impl World {
    fn emit(&self, user: usize) {
        let n = self.numbers.fetch_add(1, Ordering::Relaxed);
        let delivery = self.emitters[user]
            .emit(&self.event, &json!({"u": user, "n": n}))
            .unwrap();
        if let Some(position) = delivery.position {
            let previous = self.emitted.lock().unwrap().insert((user, position), n);
            assert_eq!(previous, None, "position {position} given twice");
        }
    }

    fn connect(&self, user: usize, client: usize, start: Start) -> Live {
        let ctx = bound(&format!("user-{user}"), &format!("client-{client}"));
        let (manager, outbound) = match start {
            Start::Plain => self.factory.create(ctx),
            Start::Position => self.factory.create_with_position(ctx),
            Start::Resume(point) => self.factory.create_resuming(ctx, point),
        }
        .unwrap();
        Live {
            session: Session {
                user,
                start,
                frames: Vec::new(),
                open_at_end: false,
            },
            manager,
            outbound,
        }
    }
}

/// Runs one client's program; returns its closed sessions and the open one.
async fn client(world: Arc<World>, client: usize, ops: Vec<Op>) -> (Vec<Session>, Option<Live>) {
    let user = client % USERS;
    let mut sessions = Vec::new();
    let mut last = None;
    let mut live = Some(world.connect(user, client, Start::Position));
    for op in ops {
        let start = match op {
            Op::Emit(to) => {
                world.emit(to);
                None
            }
            Op::Drain => {
                if let Some(live) = &mut live {
                    live.drain(&mut last);
                }
                None
            }
            Op::Reconnect => Some(last.map_or(Start::Position, Start::Resume)),
            Op::Reload => Some(Start::Position),
            Op::Plain => Some(Start::Plain),
            Op::Away => {
                if let Some(live) = live.take() {
                    sessions.push(live.close(&mut last));
                }
                None
            }
            Op::Sleep => {
                tokio::time::sleep(WINDOW / 2).await;
                None
            }
            Op::Yield => {
                tokio::task::yield_now().await;
                None
            }
        };
        if let Some(start) = start {
            if let Some(live) = live.take() {
                sessions.push(live.close(&mut last));
            }
            live = Some(world.connect(user, client, start));
        }
    }
    (sessions, live)
}

/// Checks one session against what was emitted.
fn check(session: &Session, emitted: &HashMap<(usize, ResumePoint), u64>) -> Result<(), String> {
    let mut frames = session.frames.iter().peekable();
    // The position the next event must follow; `None` until known.
    let mut after: Option<ResumePoint> = None;
    match session.start {
        Start::Plain => {}
        Start::Position => {
            let first = frames.next().ok_or("no position frame")?;
            if first["type"] != "position" {
                return Err(format!("first frame {first}"));
            }
            after = Some(position(first));
        }
        Start::Resume(point) => {
            if frames.peek().is_some_and(|f| f["type"] == "resume_gap") {
                frames.next();
            } else {
                let mut at = point;
                loop {
                    let frame = frames.next().ok_or("no resumed frame")?;
                    if frame["type"] == "resumed" {
                        let replayed = at.seq() - point.seq();
                        if frame["missed"] != replayed {
                            return Err(format!("{frame} after {replayed} replayed"));
                        }
                        break;
                    }
                    let next = event_position(frame, session.user, emitted)?;
                    if next != ResumePoint::new(at.epoch(), at.seq() + 1) {
                        return Err(format!("replayed {next} after {at}"));
                    }
                    at = next;
                }
                after = Some(at);
            }
        }
    }
    for frame in frames {
        let next = event_position(frame, session.user, emitted)?;
        if let Some(at) = after
            && next != ResumePoint::new(at.epoch(), at.seq() + 1)
        {
            return Err(format!("event {next} after {at}"));
        }
        after = Some(next);
    }
    Ok(())
}

/// The position of an event frame of `user`, checked against its emit.
fn event_position(
    frame: &Value,
    user: usize,
    emitted: &HashMap<(usize, ResumePoint), u64>,
) -> Result<ResumePoint, String> {
    if frame["type"] != "event" {
        return Err(format!("unexpected frame {frame}"));
    }
    if frame["data"]["u"] != user {
        return Err(format!("user {user} got {frame}"));
    }
    let at = position(frame);
    match emitted.get(&(user, at)) {
        Some(n) if frame["data"]["n"] == *n => Ok(at),
        other => Err(format!("{frame} was emitted as {other:?}")),
    }
}

fn run(programs: Vec<Vec<Op>>) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let factory = ManagerFactory::new(Limits {
            outbound_queue: 100_000,
            replay: REPLAY,
            ..Limits::default()
        });
        let emitters = (0..USERS)
            .map(|user| factory.emitter(&bound(&format!("user-{user}"), "worker")))
            .collect();
        let world = Arc::new(World {
            factory: factory.clone(),
            emitters,
            emitted: Mutex::default(),
            numbers: AtomicU64::new(0),
            event: EventType::try_new("agent_thinking").unwrap(),
        });

        let running = Arc::new(AtomicBool::new(true));
        let monitor = tokio::spawn({
            let (factory, running) = (factory.clone(), Arc::clone(&running));
            async move {
                let mut most = 0;
                while running.load(Ordering::Relaxed) {
                    let m = factory.metrics();
                    most = most.max(m.replay_bytes);
                    assert!(m.replay_bytes <= REPLAY.bytes_total as u64, "{m:?}");
                    factory.free_expired_rings();
                    tokio::time::sleep(Duration::from_millis(1)).await;
                }
                most
            }
        });
        let clients: Vec<_> = programs
            .into_iter()
            .enumerate()
            .map(|(i, ops)| tokio::spawn(client(Arc::clone(&world), i, ops)))
            .collect();
        let mut sessions = Vec::new();
        let mut open = Vec::new();
        for c in clients {
            let (closed, live) = c.await.unwrap();
            sessions.extend(closed);
            open.extend(live);
        }
        running.store(false, Ordering::Relaxed);
        monitor.await.unwrap();

        // Quiet now: one last event per user reaches every open socket of that user.
        for user in 0..USERS {
            world.emit(user);
        }
        let mut unused = None;
        for mut live in open {
            live.session.open_at_end = true;
            sessions.push(live.close(&mut unused));
        }
        let emitted = world.emitted.lock().unwrap().clone();
        for session in &sessions {
            check(session, &emitted).map_err(|e| format!("{e} in {session:?}"))?;
            if session.open_at_end {
                let newest = emitted
                    .iter()
                    .filter(|((user, _), _)| *user == session.user)
                    .max_by_key(|(_, n)| **n)
                    .map(|(_, n)| *n);
                let got = session.frames.last().map(|f| f["data"]["n"].clone());
                if got != newest.map(Value::from) {
                    return Err(format!(
                        "open session missed the last event {newest:?}: {session:?}"
                    ));
                }
            }
        }

        // Every socket is gone: after the window, every ring is freed.
        tokio::time::sleep(WINDOW + Duration::from_millis(5)).await;
        factory.free_expired_rings();
        let m = factory.metrics();
        if (m.replay_rings, m.replay_bytes, m.active) != (0, 0, 0) {
            return Err(format!("rings left after the window: {m:?}"));
        }
        Ok(())
    })
}

fn config() -> Config {
    Config {
        cases: 24,
        rng_seed: RngSeed::Fixed(0x5eed_0011),
        failure_persistence: None,
        ..Config::default()
    }
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn concurrent_emits_and_resumes_deliver_each_event_once_in_order_to_its_user_only(
        programs in prop::collection::vec(
            prop::collection::vec(op(), 10..40),
            USERS * CLIENTS_PER_USER,
        ),
    ) {
        run(programs).map_err(TestCaseError::fail)?;
    }
}
