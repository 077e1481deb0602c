//! A walk through valid and invalid handshake inputs, printing what each becomes: the
//! validated context, or the rejection with its code, HTTP status and close code.
//!
//! Run with `cargo run --example tour`.
#![allow(clippy::print_stdout, reason = "an example prints")]

use wsctx::{
    CloseStyle, Context, ContextBuilder, IdGenerator, Policy, Rejection, UuidGenerator, from_fn,
};

fn show(label: &str, raw: ContextBuilder, policy: &Policy) {
    show_with(label, raw, policy, &UuidGenerator::new());
}

fn show_with(label: &str, raw: ContextBuilder, policy: &Policy, ids: &dyn IdGenerator) {
    println!("── {label}");
    let outcome = raw
        .build()
        .validate(policy, ids)
        .map_err(Rejection::from)
        .and_then(|ctx| {
            ctx.bind(Some(([127, 0, 0, 1], 50_312).into()), ids)
                .map_err(Rejection::from)
        });
    match outcome {
        Ok(ctx) => println!(
            "   accepted: user {} · thread {} · run {} · request {} · client {} · depth {}",
            ctx.user_id().fingerprint(),
            ctx.thread_id(),
            ctx.run_id(),
            ctx.request_id(),
            ctx.websocket_client_id(),
            ctx.operation_depth(),
        ),
        Err(rejection) => println!(
            "   rejected: {} · HTTP {} · close {} \"{}\" · retry {}\n   message:  {}",
            rejection.code(),
            rejection
                .http_status()
                .map_or_else(|| "-".to_owned(), |s| s.to_string()),
            rejection.close_code(CloseStyle::Detailed),
            rejection.close_reason(),
            rejection.retry(),
            rejection.message(),
        ),
    }
}

fn main() {
    let policy = Policy::default();
    let user = || Context::builder().user_id("user-8f14e45f");

    show(
        "a full, valid context",
        user()
            .thread_id("thread_42")
            .run_id("run_7")
            .websocket_client_id("tab-1"),
        &policy,
    );
    show(
        "only a user id: the other ids are generated",
        user(),
        &policy,
    );
    show(
        "user id \" null \" (a placeholder word, padded)",
        Context::builder().user_id(" null "),
        &policy,
    );
    show(
        "thread id \"test_x\" (a placeholder prefix under 20 bytes)",
        user().thread_id("test_x"),
        &policy,
    );
    show(
        "a 10,000-byte run id",
        user().run_id("r".repeat(10_000)),
        &policy,
    );
    show(
        "a request id with U+202E (right-to-left override)",
        user().request_id("req_\u{202E}txt.exe"),
        &policy,
    );
    look_alikes(&policy);
    show(
        "a reserved metadata key",
        user().metadata("user_id", "someone-else"),
        &policy,
    );
    show("operation depth 11", user().operation_depth(11), &policy);
    show(
        "no user id at all (never invented)",
        Context::builder().thread_id("thread_42"),
        &policy,
    );
    show(
        "several problems at once: all reported",
        Context::builder()
            .user_id("")
            .run_id("mock")
            .metadata("Bad Key", "v"),
        &policy,
    );
    show(
        "user id \"1\" under the default policy",
        Context::builder().user_id("1"),
        &policy,
    );
    show(
        "user id \"1\" with a policy for integer ids",
        Context::builder().user_id("1"),
        &Policy::default().allow_word("1"),
    );
    show(
        "user id \"ΟΔΟΣ\" with a policy that denies \" ΟΔΟΣ \" (stored trimmed, folded like ids)",
        Context::builder().user_id("ΟΔΟΣ"),
        &Policy::default().deny_word(" ΟΔΟΣ "),
    );

    children(&policy);
}

/// Characters that render as nothing or change rendering, text not in NFC, and a
/// generator that emits what the policy refuses.
fn look_alikes(policy: &Policy) {
    let user = || Context::builder().user_id("user-8f14e45f");
    show(
        "user id \"alice\" + U+00AD (a soft hyphen: renders as \"alice\")",
        Context::builder().user_id("alice\u{AD}"),
        policy,
    );
    show(
        "thread id with a variation selector, a Hangul filler and a private-use character",
        user().thread_id("t\u{FE0F}\u{3164}\u{E000}"),
        policy,
    );
    show(
        "user id \"jose\" + U+0301 (not in NFC: renders as \"jos\u{e9}\", one character)",
        Context::builder().user_id("jos\u{65}\u{301}"),
        policy,
    );
    show_with(
        "a generator that emits \"temp_1\" (a placeholder: a server bug, not the client's)",
        user(),
        policy,
        &from_fn(|_| Ok("temp_1".to_owned())),
    );
}

/// Child contexts down to the depth limit.
fn children(policy: &Policy) {
    let ids = UuidGenerator::new();
    if let Ok(parent) = Context::builder()
        .user_id("user-8f14e45f")
        .build()
        .validate(policy, &ids)
    {
        let mut ctx = parent;
        let mut depth_reached = 0;
        while let Ok(child) = ctx.child("step", policy, &ids) {
            depth_reached = child.operation_depth();
            ctx = child;
        }
        println!("── child contexts: reached depth {depth_reached}; the next child is refused:");
        if let Err(error) = ctx.child("step", policy, &ids) {
            println!("   {}", Rejection::from(error));
        }
    }
}
