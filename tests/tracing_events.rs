//! Tracing events carry field names and error codes, never values (feature `tracing`).
#![cfg(feature = "tracing")]
use std::fmt::Write as _;
use std::sync::{Arc, Mutex};

use tracing::field::{Field as TracingField, Visit};
use tracing::{Event, Level, Metadata, Subscriber, span};
use wsctx::{
    Context, Fallback, GenerateError, IdGenerator, IdKind, Policy, SequenceGenerator, from_fn,
};

#[derive(Clone, Default)]
struct Capture(Arc<Mutex<Vec<(Level, String)>>>);

struct Render(String);
impl Visit for Render {
    fn record_debug(&mut self, field: &TracingField, value: &dyn std::fmt::Debug) {
        let _ = write!(self.0, "{}={:?} ", field.name(), value);
    }
}

impl Subscriber for Capture {
    fn enabled(&self, _: &Metadata<'_>) -> bool {
        true
    }
    fn new_span(&self, _: &span::Attributes<'_>) -> span::Id {
        span::Id::from_u64(1)
    }
    fn record(&self, _: &span::Id, _: &span::Record<'_>) {}
    fn record_follows_from(&self, _: &span::Id, _: &span::Id) {}
    fn event(&self, event: &Event<'_>) {
        let mut render = Render(String::new());
        event.record(&mut render);
        self.0
            .lock()
            .unwrap()
            .push((*event.metadata().level(), render.0));
    }
    fn enter(&self, _: &span::Id) {}
    fn exit(&self, _: &span::Id) {}
}

const MARKER: &str = "VaLuEmArKeR";

#[test]
fn rejected_fields_are_logged_by_name_at_debug_only() {
    let capture = Capture::default();
    tracing::subscriber::with_default(capture.clone(), || {
        let _ = Context::builder()
            .user_id(format!("{MARKER}\u{202E}"))
            .run_id(format!("test_{}", &MARKER[..4]))
            .build()
            .validate(&Policy::default(), &SequenceGenerator::new());
    });
    let events = capture.0.lock().unwrap();
    let rejected: Vec<_> = events
        .iter()
        .filter(|(_, e)| e.contains("INVALID_CONTEXT"))
        .collect();
    assert_eq!(rejected.len(), 2, "{events:?}");
    assert!(rejected[0].1.contains(r#"field="user_id""#));
    assert!(rejected[1].1.contains(r#"field="run_id""#));
    for (level, event) in events.iter() {
        assert_eq!(*level, Level::DEBUG, "bad input is not a warning: {event}");
        assert!(!event.contains(&MARKER[..4]), "value leaked: {event}");
    }
}

#[test]
fn the_fallback_warns_once_per_failure() {
    let capture = Capture::default();
    let ids = Fallback::new(
        from_fn(|kind| Err(GenerateError::new(kind))),
        SequenceGenerator::new(),
    );
    tracing::subscriber::with_default(capture.clone(), || {
        for _ in 0..3 {
            ids.generate(IdKind::Thread).unwrap();
        }
    });
    let events = capture.0.lock().unwrap();
    let warnings: Vec<_> = events.iter().filter(|(l, _)| *l == Level::WARN).collect();
    assert_eq!(warnings.len(), 3, "{events:?}");
    assert!(warnings[0].1.contains(r#"id_kind="thread""#));
}
