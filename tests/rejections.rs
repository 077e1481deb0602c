//! The rejection table: every code renders to a sendable close code, a short reason, and
//! 1011 only for INTERNAL_ERROR.

use std::time::Duration;

use wsctx::{
    CloseCode, CloseReason, CloseStyle, Context, ErrorCode, MAX_CLOSE_REASON_BYTES, Policy,
    Rejection, Retry, SequenceGenerator,
};

/// The rejection table of `ARCHITECTURE.md`, written out by hand, independently of the
/// `rejection_table!` macro it checks.
const TABLE: [(ErrorCode, &str, Option<u16>, u16, Retry); 19] = [
    (
        ErrorCode::NoToken,
        "NO_TOKEN",
        Some(401),
        4401,
        Retry::Never,
    ),
    (
        ErrorCode::InvalidFormat,
        "INVALID_FORMAT",
        Some(401),
        4401,
        Retry::Never,
    ),
    (
        ErrorCode::ValidationFailed,
        "VALIDATION_FAILED",
        Some(401),
        4401,
        Retry::Never,
    ),
    (
        ErrorCode::TokenExpired,
        "TOKEN_EXPIRED",
        Some(401),
        4401,
        Retry::AfterRefresh,
    ),
    (
        ErrorCode::MissingUserId,
        "MISSING_USER_ID",
        Some(403),
        4403,
        Retry::Never,
    ),
    (
        ErrorCode::Forbidden,
        "FORBIDDEN",
        Some(403),
        4403,
        Retry::Never,
    ),
    (
        ErrorCode::InvalidContext,
        "INVALID_CONTEXT",
        Some(400),
        4400,
        Retry::Never,
    ),
    (
        ErrorCode::DuplicateClient,
        "DUPLICATE_CLIENT",
        Some(409),
        4409,
        Retry::Never,
    ),
    (
        ErrorCode::ConnectionLimit,
        "CONNECTION_LIMIT",
        Some(429),
        4429,
        Retry::Backoff,
    ),
    (
        ErrorCode::Overloaded,
        "OVERLOADED",
        Some(503),
        1013,
        Retry::Backoff,
    ),
    (
        ErrorCode::AuthUnavailable,
        "AUTH_UNAVAILABLE",
        Some(503),
        1013,
        Retry::Backoff,
    ),
    (
        ErrorCode::SlowConsumer,
        "SLOW_CONSUMER",
        None,
        1013,
        Retry::Backoff,
    ),
    (
        ErrorCode::IdleTimeout,
        "IDLE_TIMEOUT",
        None,
        4408,
        Retry::Immediate,
    ),
    (
        ErrorCode::ShuttingDown,
        "SHUTTING_DOWN",
        Some(503),
        1012,
        Retry::Backoff,
    ),
    (
        ErrorCode::ProtocolError,
        "PROTOCOL_ERROR",
        None,
        1002,
        Retry::Never,
    ),
    (
        ErrorCode::InvalidPayload,
        "INVALID_PAYLOAD",
        None,
        1007,
        Retry::Never,
    ),
    (
        ErrorCode::MessageTooBig,
        "MESSAGE_TOO_BIG",
        None,
        1009,
        Retry::Never,
    ),
    (
        ErrorCode::HeartbeatTimeout,
        "HEARTBEAT_TIMEOUT",
        None,
        4408,
        Retry::Immediate,
    ),
    (
        ErrorCode::InternalError,
        "INTERNAL_ERROR",
        Some(500),
        1011,
        Retry::Backoff,
    ),
];

fn all_rejections() -> Vec<Rejection> {
    let mut all: Vec<Rejection> = ErrorCode::ALL.iter().map(|&c| Rejection::new(c)).collect();
    // INVALID_CONTEXT with every field failing: the longest reason there is.
    let mut builder = Context::builder()
        .user_id("")
        .thread_id("")
        .run_id("")
        .request_id("")
        .parent_request_id("")
        .websocket_client_id("")
        .operation("")
        .metadata("user_id", "x")
        .operation_depth(99);
    for i in 0..65 {
        builder = builder.metadata(format!("k{i}"), "v");
    }
    let error = builder
        .build()
        .validate(&Policy::default(), &SequenceGenerator::new())
        .unwrap_err();
    all.push(Rejection::from(error));
    all
}

#[test]
fn the_table_matches_the_design() {
    assert_eq!(ErrorCode::ALL.len(), TABLE.len());
    for (code, name, http, close, retry) in TABLE {
        let r = Rejection::new(code);
        assert_eq!(code.as_str(), name);
        assert_eq!(r.http_status(), http, "{name}");
        assert_eq!(r.close_code(CloseStyle::Detailed).as_u16(), close, "{name}");
        assert_eq!(r.retry(), retry, "{name}");
        assert_eq!(code.to_string(), name);
        assert_eq!(code.reason(), name.to_lowercase());
    }
}

#[test]
fn close_codes_are_sendable_and_1011_is_only_internal_error() {
    for style in [CloseStyle::Detailed, CloseStyle::Opaque] {
        for rejection in all_rejections() {
            let code = rejection.close_code(style).as_u16();
            assert!(CloseCode::new(code).is_some(), "{code} is sendable");
            assert!(![1004, 1005, 1006, 1015].contains(&code) && code >= 1000);
            assert_eq!(
                code == 1011,
                rejection.code() == ErrorCode::InternalError,
                "{:?} → {code}",
                rejection.code()
            );
            if rejection.code().is_client_caused() {
                assert_ne!(code, 1011);
            }
        }
    }
}

#[test]
fn opaque_style_hides_every_44xx_code_behind_1008() {
    for rejection in all_rejections() {
        let detailed = rejection.close_code(CloseStyle::Detailed).as_u16();
        let opaque = rejection.close_code(CloseStyle::Opaque).as_u16();
        if (4400..4500).contains(&detailed) {
            assert_eq!(opaque, 1008);
        } else {
            assert_eq!(opaque, detailed);
        }
    }
}

#[test]
fn reasons_fit_in_a_close_frame() {
    for rejection in all_rejections() {
        let reason = rejection.close_reason();
        assert!(reason.as_str().len() <= MAX_CLOSE_REASON_BYTES);
        assert!(reason.as_str().starts_with(rejection.code().reason()));
    }
    let invalid = all_rejections().pop().unwrap();
    assert_eq!(
        invalid.close_reason().as_str(),
        "invalid_context:user_id,thread_id,run_id,request_id,parent_request_id,\
         websocket_client_id,operation,metadata"
    );
}

#[test]
fn close_reason_cuts_on_a_character_boundary() {
    for filler in ["a", "é", "€", "😀"] {
        for n in 100..140 {
            let input = filler.repeat(n);
            let reason = CloseReason::new(&input);
            assert!(reason.as_str().len() <= 123);
            assert!(input.starts_with(reason.as_str()));
            assert!(reason.as_str().len() > 123 - filler.len() || input.len() <= 123);
        }
    }
}

#[test]
fn close_code_refuses_unsendable_codes() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, u16::MAX] {
        assert!(CloseCode::new(code).is_none(), "{code}");
        assert_eq!(
            CloseCode::try_from(code).unwrap_err().to_string(),
            format!("close code {code} must not be sent")
        );
    }
    for code in [
        1000, 1001, 1002, 1003, 1007, 1008, 1011, 1012, 1013, 1014, 3000, 4000, 4999,
    ] {
        assert_eq!(CloseCode::new(code).map(u16::from), Some(code));
    }
}

#[test]
fn retry_after_is_set_for_429_and_503() {
    for code in ErrorCode::ALL {
        let r = Rejection::new(code);
        let expects = matches!(r.http_status(), Some(429 | 503));
        assert_eq!(r.retry_after().is_some(), expects, "{code}");
    }
    let custom = Rejection::new(ErrorCode::Overloaded).with_retry_after(Duration::from_secs(42));
    assert_eq!(custom.retry_after(), Some(Duration::from_secs(42)));
}

#[test]
fn error_frames_are_json_with_the_documented_shape() {
    for rejection in all_rejections() {
        let frame: serde_json::Value = serde_json::from_str(&rejection.error_frame()).unwrap();
        let object = frame.as_object().unwrap();
        assert_eq!(object.len(), 4);
        assert_eq!(frame["type"], "error");
        assert_eq!(frame["code"], rejection.code().as_str());
        assert_eq!(frame["message"], rejection.message().as_ref());
        assert_eq!(frame["retry"], rejection.retry().as_str());
    }
}
