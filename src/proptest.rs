//! Strategies and [`Arbitrary`] impls for property tests (feature `proptest`).
//!
//! Valid input, for handlers that must accept it:
//!
//! - [`valid_id`] and one strategy per newtype ([`user_id`], [`thread_id`], [`run_id`],
//!   [`request_id`], [`websocket_client_id`]); the same values back the [`Arbitrary`]
//!   impls of the newtypes;
//! - [`valid_raw_context`], a [`Context<Raw>`] that validates under [`Policy::default`];
//! - [`validated_context`], a [`Context<Validated>`] made by the public builder and
//!   [`Context::validate`] (it cannot bypass validation); the [`Arbitrary`] impl of
//!   `Context<Validated>` uses it.
//!
//! Invalid input, one strategy per [`InvalidClass`]:
//!
//! - ids: [`empty_id`], [`whitespace_only_id`], [`placeholder_word_id`],
//!   [`placeholder_prefix_id`], [`too_long_id`], [`control_character_id`],
//!   [`invisible_character_id`], [`not_normalized_id`];
//! - whole contexts: [`invalid_raw_context_of`] for one class and
//!   [`invalid_raw_context`] for any class. Each yields the context together with the
//!   [`Field`] and [`FieldErrorKind`] that validation must report. The rest of the
//!   context is valid, so validating it with [`Policy::default`] fails with exactly that
//!   one error.
//!
//! `use wsctx::proptest::*;` brings in every strategy and [`InvalidClass`]; the
//! [`Arbitrary`] impls need no import (`any::<UserId>()`, `any::<Context<Validated>>()`).
//!
//! Every valid id avoids the placeholder words and prefixes of [`Policy::default`]
//! ([`DEFAULT_PLACEHOLDER_WORDS`], [`DEFAULT_PLACEHOLDER_PREFIXES`]), so a strategy's
//! values pass both the structural rule and the default policy.
//!
//! proptest's newest releases may need a newer Rust than this crate's minimum supported
//! version; Cargo's resolver (v3, the edition-2024 default) then picks an older,
//! compatible proptest release.
//!
//! # Examples
//!
//! ```
//! use proptest::prelude::*;
//! use wsctx::proptest::{invalid_raw_context, valid_raw_context};
//! use wsctx::{Policy, SequenceGenerator};
//!
//! proptest!(ProptestConfig::with_cases(32), |(raw in valid_raw_context())| {
//!     prop_assert!(raw.validate(&Policy::default(), &SequenceGenerator::new()).is_ok());
//! });
//!
//! proptest!(ProptestConfig::with_cases(32), |((raw, field, kind) in invalid_raw_context())| {
//!     let error = raw.validate(&Policy::default(), &SequenceGenerator::new()).unwrap_err();
//!     prop_assert!(error.as_invalid().unwrap().contains(field, kind));
//! });
//! ```

use ::proptest::arbitrary::Arbitrary;
use ::proptest::collection::vec;
use ::proptest::option;
use ::proptest::prelude::{Just, Strategy, any, prop_oneof};
use ::proptest::sample::select;
use ::proptest::strategy::BoxedStrategy;

use crate::context::{Context, MAX_OPERATION_DEPTH};
use crate::error::{Field, FieldErrorKind};
use crate::generate::SequenceGenerator;
use crate::id::{RequestId, RunId, ThreadId, UserId, WebSocketClientId};
use crate::metadata::{
    MAX_METADATA_ENTRIES, MAX_METADATA_KEY_BYTES, MAX_METADATA_VALUE_BYTES, RESERVED_METADATA_KEYS,
};
use crate::rule::{
    DEFAULT_PLACEHOLDER_PREFIXES, DEFAULT_PLACEHOLDER_WORDS, MAX_ID_BYTES,
    PLACEHOLDER_PREFIX_MAX_BYTES, Policy, invisible_ranges,
};
use crate::state::{Raw, Validated};

/// Unicode whitespace (trimmed away by the rule), including U+0085 and U+3000.
const WHITESPACE: [char; 16] = [
    ' ', '\t', '\n', '\r', '\u{0B}', '\u{0C}', '\u{85}', '\u{A0}', '\u{1680}', '\u{2000}',
    '\u{200A}', '\u{2028}', '\u{2029}', '\u{202F}', '\u{205F}', '\u{3000}',
];

/// ASCII characters typical of real ids.
const ASCII_ID_CHARS: &str =
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.:@/+=~";

/// Multi-byte characters the rule accepts, each in NFC and none combining with its
/// neighbours: 2-, 3- and 4-byte UTF-8, capital sigma (lowercases to `σ`), sharp s and
/// dotted capital I (which lowercases to two characters).
const MULTIBYTE_ID_CHARS: [char; 12] = [
    'é', 'ß', 'Ж', 'λ', '日', '本', '한', '🙂', '🦀', 'Σ', 'ñ', '\u{130}',
];

/// Well-known look-alike characters the rule refuses as invisible, one or more per
/// class: format characters (`Cf`: zero-width, bidi, soft hyphen U+00AD, U+061C,
/// U+180E, the BOM, a tag character), the line and paragraph separators, default
/// ignorables that are not `Cf` (U+034F, the Hangul fillers U+115F and U+3164, a
/// variation selector), private-use characters and noncharacters.
/// [`invisible_character_id`] mixes them with characters drawn from the rule's own
/// tables.
const LOOK_ALIKES: [char; 24] = [
    '\u{AD}',
    '\u{61C}',
    '\u{180E}',
    '\u{200B}',
    '\u{200D}',
    '\u{200F}',
    '\u{202E}',
    '\u{2060}',
    '\u{2066}',
    '\u{FEFF}',
    '\u{E0041}',
    '\u{2028}',
    '\u{2029}',
    '\u{34F}',
    '\u{115F}',
    '\u{3164}',
    '\u{FE0F}',
    '\u{E0100}',
    '\u{E000}',
    '\u{F8FF}',
    '\u{10FFFD}',
    '\u{FDD0}',
    '\u{FFFE}',
    '\u{10FFFF}',
];

/// Character sequences that are not in NFC although each character is allowed: a
/// decomposed `é` and `Å`, combining marks out of canonical order, the Kelvin, Ohm and
/// Angstrom signs (singletons that NFC replaces), a CJK compatibility ideograph, a
/// Hangul syllable spelled as two jamo, and U+2000 (EN QUAD, which NFC turns into
/// U+2002).
const NOT_NFC: [&str; 9] = [
    "e\u{301}",
    "A\u{30A}",
    "a\u{301}\u{316}",
    "\u{212A}",
    "\u{2126}",
    "\u{212B}",
    "\u{F900}",
    "\u{1100}\u{1161}",
    "x\u{2000}y",
];

/// Characters allowed in a metadata key.
const KEY_CHARS: &str = "abcdefghijklmnopqrstuvwxyz0123456789_.-";

fn chars_of(set: &'static str) -> Vec<char> {
    set.chars().collect()
}

/// One character that may appear anywhere in a valid id (never whitespace, control or
/// invisible): mostly ASCII, one in four multi-byte.
fn id_char() -> impl Strategy<Value = char> {
    prop_oneof![
        3 => select(chars_of(ASCII_ID_CHARS)),
        1 => select(MULTIBYTE_ID_CHARS.to_vec()),
    ]
}

/// One character that may appear inside a valid id: an id character, or now and then
/// interior whitespace (a space, U+00A0 or U+3000).
fn interior_char() -> impl Strategy<Value = char> {
    prop_oneof![
        12 => id_char(),
        1 => select(vec![' ', '\u{A0}', '\u{3000}']),
    ]
}

/// 0 to 3 whitespace characters.
fn padding() -> impl Strategy<Value = String> {
    vec(select(WHITESPACE.to_vec()), 0..=3).prop_map(String::from_iter)
}

/// A run of 1 to `max` id characters (no whitespace, control or invisible characters).
fn core(max: usize) -> impl Strategy<Value = String> {
    vec(id_char(), 1..=max).prop_map(String::from_iter)
}

/// The longest prefix of `s` of at most `max` bytes, cut on a character boundary.
fn truncate_to(mut s: String, max: usize) -> String {
    if s.len() > max {
        let mut end = max;
        while !s.is_char_boundary(end) {
            end -= 1;
        }
        s.truncate(end);
    }
    s
}

/// Whether the default policy refuses the (trimmed) `value`, decided from the constants.
fn is_default_placeholder(value: &str) -> bool {
    let lower = value.to_lowercase();
    DEFAULT_PLACEHOLDER_WORDS.contains(&lower.as_str())
        || (value.len() < PLACEHOLDER_PREFIX_MAX_BYTES
            && DEFAULT_PLACEHOLDER_PREFIXES
                .iter()
                .any(|prefix| lower.starts_with(prefix)))
}

/// Makes a candidate valid: at most 256 bytes, trimmed, non-empty, and not a
/// placeholder of the default policy (such values get the prefix `id-`).
fn finish_id(candidate: String) -> String {
    let cut = truncate_to(candidate, MAX_ID_BYTES);
    let trimmed = cut.trim();
    let mut id = if trimmed.is_empty() {
        String::from("id")
    } else {
        trimmed.to_owned()
    };
    if is_default_placeholder(&id) {
        // Placeholders are short (words, or prefixed values under 20 bytes): there is room.
        id.insert_str(0, "id-");
    }
    id
}

/// Valid ids: trimmed, 1 to 256 bytes, free of control and invisible characters, and not
/// a placeholder word or prefix of [`Policy::default`].
///
/// Distribution, by weight:
/// - 4/10 ASCII tokens of 1 to 48 characters of `[A-Za-z0-9-_.:@/+=~]`;
/// - 2/10 prefixed hex ids such as `user-8f14e45f` (4 to 32 hex digits);
/// - 3/10 mixed text of 1 to 40 characters, one in four multi-byte (2 to 4 bytes UTF-8,
///   capital sigma, U+0130) and now and then interior whitespace (a space, U+00A0 or
///   U+3000);
/// - 1/10 long text cut to at most 256 bytes on a character boundary, so 253 to 256
///   bytes most of the time.
///
/// A candidate that is a default placeholder gets the prefix `id-`, so `"0"` becomes
/// `"id-0"`; an empty candidate becomes `"id"`.
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::{Policy, UserId};
///
/// proptest!(ProptestConfig::with_cases(64), |(id in wsctx::proptest::valid_id())| {
///     prop_assert_eq!(Policy::default().check(&id), Ok(()));
///     let user_id = UserId::try_new(id.clone()).unwrap();
///     prop_assert_eq!(user_id.as_str(), id.as_str());
/// });
/// ```
pub fn valid_id() -> impl Strategy<Value = String> {
    let token = vec(select(chars_of(ASCII_ID_CHARS)), 1..=48).prop_map(String::from_iter);
    let hex = (
        select(vec![
            "user-", "u_", "thread-", "run.", "req:", "tab-", "client/",
        ]),
        vec(select(chars_of("0123456789abcdef")), 4..=32),
    )
        .prop_map(|(prefix, digits)| {
            let mut id = String::from(prefix);
            id.extend(digits);
            id
        });
    let mixed = (id_char(), vec(interior_char(), 0..=39)).prop_map(|(first, rest)| {
        let mut id = String::from(first);
        id.extend(rest);
        id
    });
    let long = vec(interior_char(), 200..=260).prop_map(String::from_iter);
    prop_oneof![4 => token, 2 => hex, 3 => mixed, 1 => long].prop_map(finish_id)
}

macro_rules! newtype_strategy {
    ($(#[$doc:meta])* $fn_name:ident, $name:ident) => {
        $(#[$doc])*
        ///
        /// Distribution: the values of [`valid_id`], so they also pass
        /// [`Policy::default`]. Never fails to generate.
        pub fn $fn_name() -> impl Strategy<Value = $name> {
            valid_id().prop_filter_map("the structural rule accepts every valid_id", |id| {
                $name::try_new(id).ok()
            })
        }

        /// Valid values only: the values of
        #[doc = concat!("[`", stringify!($fn_name), "`].")]
        impl Arbitrary for $name {
            type Parameters = ();
            type Strategy = BoxedStrategy<Self>;

            fn arbitrary_with((): ()) -> Self::Strategy {
                $fn_name().boxed()
            }
        }
    };
}

newtype_strategy!(
    /// Valid [`UserId`]s.
    ///
    /// # Examples
    ///
    /// ```
    /// use proptest::prelude::*;
    /// use wsctx::UserId;
    ///
    /// proptest!(ProptestConfig::with_cases(16), |(id in any::<UserId>())| {
    ///     prop_assert_eq!(UserId::try_new(id.as_str()), Ok(id.clone()));
    /// });
    /// ```
    user_id, UserId
);
newtype_strategy!(
    /// Valid [`ThreadId`]s.
    thread_id, ThreadId
);
newtype_strategy!(
    /// Valid [`RunId`]s.
    run_id, RunId
);
newtype_strategy!(
    /// Valid [`RequestId`]s.
    request_id, RequestId
);
newtype_strategy!(
    /// Valid [`WebSocketClientId`]s.
    websocket_client_id, WebSocketClientId
);

/// A valid id surrounded by 0 to 3 whitespace characters on each side.
fn padded_valid_id() -> impl Strategy<Value = String> {
    (padding(), valid_id(), padding()).prop_map(|(left, id, right)| left + &id + &right)
}

/// A valid metadata key: 1 to 16 bytes of `[a-z0-9_.-]`, never reserved.
fn metadata_key() -> impl Strategy<Value = String> {
    vec(select(chars_of(KEY_CHARS)), 1..=16).prop_map(|chars| {
        let mut key = String::from_iter(chars);
        if RESERVED_METADATA_KEYS.contains(&key.as_str()) {
            key.push('x');
        }
        key
    })
}

/// A valid metadata value: any text of at most 1024 bytes (values have no character
/// rule).
fn metadata_value() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => vec(select(chars_of(ASCII_ID_CHARS)), 0..=32).prop_map(String::from_iter),
        3 => vec(any::<char>(), 0..=16).prop_map(String::from_iter),
        1 => (1000..=MAX_METADATA_VALUE_BYTES).prop_map(|n| "v".repeat(n)),
    ]
}

/// The id fields a client may send (the operation name is handled apart: the policy
/// does not apply to it).
#[derive(Clone, Copy, Debug)]
enum Slot {
    User,
    Thread,
    Run,
    Request,
    ParentRequest,
    WebSocketClient,
    Operation,
}

impl Slot {
    const IDS: [Self; 6] = [
        Self::User,
        Self::Thread,
        Self::Run,
        Self::Request,
        Self::ParentRequest,
        Self::WebSocketClient,
    ];
    /// [`IDS`](Self::IDS), then the operation name.
    const ALL: [Self; 7] = {
        let mut all = [Self::Operation; 7];
        let mut i = 0;
        while i < Self::IDS.len() {
            all[i] = Self::IDS[i];
            i += 1;
        }
        all
    };

    const fn field(self) -> Field {
        match self {
            Self::User => Field::UserId,
            Self::Thread => Field::ThreadId,
            Self::Run => Field::RunId,
            Self::Request => Field::RequestId,
            Self::ParentRequest => Field::ParentRequestId,
            Self::WebSocketClient => Field::WebSocketClientId,
            Self::Operation => Field::Operation,
        }
    }
}

/// The plain data of a raw context, before it goes through the public builder.
#[derive(Clone, Debug)]
struct Spec {
    user_id: String,
    thread_id: Option<String>,
    run_id: Option<String>,
    request_id: Option<String>,
    parent_request_id: Option<String>,
    websocket_client_id: Option<String>,
    metadata: Vec<(String, String)>,
    operation_depth: Option<u64>,
    operation: Option<String>,
}

impl Spec {
    fn set(&mut self, slot: Slot, value: String) {
        match slot {
            Slot::User => self.user_id = value,
            Slot::Thread => self.thread_id = Some(value),
            Slot::Run => self.run_id = Some(value),
            Slot::Request => self.request_id = Some(value),
            Slot::ParentRequest => self.parent_request_id = Some(value),
            Slot::WebSocketClient => self.websocket_client_id = Some(value),
            Slot::Operation => self.operation = Some(value),
        }
    }

    fn build(self) -> Context<Raw> {
        let mut builder = Context::builder().user_id(self.user_id);
        if let Some(id) = self.thread_id {
            builder = builder.thread_id(id);
        }
        if let Some(id) = self.run_id {
            builder = builder.run_id(id);
        }
        if let Some(id) = self.request_id {
            builder = builder.request_id(id);
        }
        if let Some(id) = self.parent_request_id {
            builder = builder.parent_request_id(id);
        }
        if let Some(id) = self.websocket_client_id {
            builder = builder.websocket_client_id(id);
        }
        for (key, value) in self.metadata {
            builder = builder.metadata(key, value);
        }
        if let Some(depth) = self.operation_depth {
            builder = builder.operation_depth(depth);
        }
        if let Some(operation) = self.operation {
            builder = builder.operation(operation);
        }
        builder.build()
    }
}

fn valid_spec() -> impl Strategy<Value = Spec> {
    (
        padded_valid_id(),
        option::of(padded_valid_id()),
        option::of(padded_valid_id()),
        option::of(padded_valid_id()),
        option::of(padded_valid_id()),
        option::of(padded_valid_id()),
        vec((metadata_key(), metadata_value()), 0..=6),
        option::of(0..=u64::from(MAX_OPERATION_DEPTH)),
        option::of(padded_valid_id()),
    )
        .prop_map(|parts| Spec {
            user_id: parts.0,
            thread_id: parts.1,
            run_id: parts.2,
            request_id: parts.3,
            parent_request_id: parts.4,
            websocket_client_id: parts.5,
            metadata: parts.6,
            operation_depth: parts.7,
            operation: parts.8,
        })
}

/// Raw contexts that [`Context::validate`] accepts under [`Policy::default`].
///
/// Distribution: the user id is always given; the thread, run, request, parent request
/// and client ids and the operation name are each given with probability 1/2. Every
/// given id is a [`valid_id`] with 0 to 3 whitespace characters (including U+0085 and
/// U+3000) on each side. 0 to 6 metadata entries with keys of 1 to 16 bytes of
/// `[a-z0-9_.-]` (never reserved; duplicate keys possible, the last one wins) and values
/// of at most 1024 bytes (mostly short ASCII, some arbitrary characters, one in ten
/// 1000 to 1024 bytes). The operation depth is absent or 0 to 10, uniformly.
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::{Policy, UuidGenerator};
///
/// proptest!(ProptestConfig::with_cases(16), |(raw in wsctx::proptest::valid_raw_context())| {
///     let ctx = raw.validate(&Policy::default(), &UuidGenerator::new()).unwrap();
///     prop_assert!(ctx.operation_depth() <= 10);
/// });
/// ```
pub fn valid_raw_context() -> impl Strategy<Value = Context<Raw>> {
    valid_spec().prop_map(Spec::build)
}

/// Validated contexts, made only through the public API: a [`valid_raw_context`] is
/// validated with [`Policy::default`] and a [`SequenceGenerator`] (so generated ids are
/// deterministic, `thread_<n>`, `run_<n>`, `req_<n>`, from a start drawn in
/// 1..=1,000,000), then 0 to 2 [`Context::child`] steps are taken while the depth
/// allows, named by a [`valid_id`] (3/4) or a [`placeholder_word_id`] (1/4: the policy
/// does not apply to operation names). Values that would fail validation cannot occur
/// (and would be filtered out).
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::{Context, Policy, SequenceGenerator, state::Validated};
///
/// proptest!(ProptestConfig::with_cases(16), |(ctx in any::<Context<Validated>>())| {
///     let again = ctx.clone().into_raw().validate(&Policy::default(), &SequenceGenerator::new());
///     prop_assert_eq!(again.unwrap(), ctx);
/// });
/// ```
pub fn validated_context() -> impl Strategy<Value = Context<Validated>> {
    (
        valid_raw_context(),
        1..=1_000_000_u64,
        vec(
            prop_oneof![3 => valid_id(), 1 => placeholder_word_id()],
            0..=2,
        ),
    )
        .prop_filter_map(
            "validation accepts every valid_raw_context",
            |(raw, start, operations)| {
                let ids = SequenceGenerator::starting_at(start);
                let policy = Policy::default();
                let mut ctx = raw.validate(&policy, &ids).ok()?;
                for operation in operations {
                    if ctx.operation_depth() >= MAX_OPERATION_DEPTH {
                        break;
                    }
                    ctx = ctx.child(&operation, &policy, &ids).ok()?;
                }
                Some(ctx)
            },
        )
}

/// Valid values only: the values of [`validated_context`].
impl Arbitrary for Context<Validated> {
    type Parameters = ();
    type Strategy = BoxedStrategy<Self>;

    fn arbitrary_with((): ()) -> Self::Strategy {
        validated_context().boxed()
    }
}

/// The empty string (class [`InvalidClass::Empty`]).
pub fn empty_id() -> impl Strategy<Value = String> {
    Just(String::new())
}

/// 1 to 8 whitespace characters drawn from ASCII whitespace, U+0085, U+00A0, U+1680,
/// U+2000–U+200A, U+2028, U+2029, U+202F, U+205F and U+3000 (class
/// [`InvalidClass::WhitespaceOnly`]; empty once trimmed).
pub fn whitespace_only_id() -> impl Strategy<Value = String> {
    vec(select(WHITESPACE.to_vec()), 1..=8).prop_map(String::from_iter)
}

/// Appends `word` (ASCII) to `value`, character `i` upper-cased when bit `i % 64` of
/// `case` is set.
fn push_in_case(value: &mut String, word: &str, case: u64) {
    for (i, c) in word.chars().enumerate() {
        if case >> (i % 64) & 1 == 1 {
            value.push(c.to_ascii_uppercase());
        } else {
            value.push(c);
        }
    }
}

/// A placeholder word of [`Policy::default`] in any mix of upper and lower case, with 0
/// to 3 whitespace characters on each side (class [`InvalidClass::PlaceholderWord`]).
/// The words are chosen uniformly from [`DEFAULT_PLACEHOLDER_WORDS`].
///
/// These values pass the structural rule: only the policy refuses them. (No
/// look-alike such as the Kelvin sign for `k`: it is not in NFC, so the structural rule
/// refuses it first.)
pub fn placeholder_word_id() -> impl Strategy<Value = String> {
    (
        select(DEFAULT_PLACEHOLDER_WORDS.to_vec()),
        any::<u64>(),
        padding(),
        padding(),
    )
        .prop_map(|(word, case, left, right)| {
            let mut value = left;
            push_in_case(&mut value, word, case);
            value + &right
        })
}

/// A placeholder prefix of [`Policy::default`] (uniformly from
/// [`DEFAULT_PLACEHOLDER_PREFIXES`], in random case) followed by 0 or more characters of
/// `[a-z0-9]`, shorter than 20 bytes once trimmed, with 0 to 3 whitespace characters on
/// each side (class [`InvalidClass::PlaceholderPrefix`]).
///
/// These values pass the structural rule: only the policy refuses them.
pub fn placeholder_prefix_id() -> impl Strategy<Value = String> {
    (
        select(DEFAULT_PLACEHOLDER_PREFIXES.to_vec()),
        any::<u64>(),
        vec(
            select(chars_of("abcdefghijklmnopqrstuvwxyz0123456789")),
            0..=7,
        ),
        padding(),
        padding(),
    )
        .prop_map(|(prefix, case, suffix, left, right)| {
            let mut value = left;
            push_in_case(&mut value, prefix, case);
            let room = PLACEHOLDER_PREFIX_MAX_BYTES - 1 - prefix.len();
            value.extend(suffix.into_iter().take(room));
            value + &right
        })
}

/// Values longer than 256 bytes once trimmed (class [`InvalidClass::TooLong`]), with 0
/// to 3 whitespace characters on each side.
///
/// Distribution: half are just past the limit, 257 to 260 bytes, made of ASCII and one
/// final 1- to 4-byte character that crosses the boundary; half are 257 to 400 id
/// characters (one in four multi-byte), so 257 to about 1,600 bytes.
pub fn too_long_id() -> impl Strategy<Value = String> {
    let boundary = (select(vec!['x', 'é', '日', '🙂']), 0..=3_usize).prop_map(|(last, extra)| {
        // `MAX_ID_BYTES - len + 1 + extra` ASCII bytes, then `last`: 257 to 260 bytes.
        let ascii = MAX_ID_BYTES + 1 + extra - last.len_utf8();
        let mut value = "a".repeat(ascii);
        value.push(last);
        value
    });
    let long = vec(id_char(), MAX_ID_BYTES + 1..=400).prop_map(String::from_iter);
    (padding(), prop_oneof![boundary, long], padding())
        .prop_map(|(left, value, right)| left + &value + &right)
}

/// A Unicode `Cc` control character: U+0000–U+001F or U+007F–U+009F.
fn control_char() -> impl Strategy<Value = char> {
    prop_oneof![
        ::proptest::char::range('\u{0}', '\u{1F}'),
        ::proptest::char::range('\u{7F}', '\u{9F}'),
    ]
}

/// Values with a control character (class [`InvalidClass::ControlCharacter`]).
///
/// Distribution: 3/4 have any `Cc` character (U+0000–U+001F, U+007F–U+009F, including
/// the whitespace controls tab, newline and U+0085) between two runs of 1 to 30 id
/// characters; 1/4 start or end with a non-whitespace control character. At most 242
/// bytes, so the length rule never fires first. 0 to 3 whitespace characters on each
/// side.
pub fn control_character_id() -> impl Strategy<Value = String> {
    let inner = (core(30), control_char(), core(30))
        .prop_map(|(before, c, after)| before + &String::from(c) + &after);
    let edge = (
        core(30),
        control_char().prop_filter("not whitespace", |c| !c.is_whitespace()),
        any::<bool>(),
    )
        .prop_map(|(id, c, at_start)| {
            if at_start {
                String::from(c) + &id
            } else {
                id + &String::from(c)
            }
        });
    (padding(), prop_oneof![3 => inner, 1 => edge], padding())
        .prop_map(|(left, value, right)| left + &value + &right)
}

/// One character the rule refuses as invisible or ambiguous: half the time one of the
/// well-known look-alikes, half the time any character of the rule's own tables (a
/// table range chosen uniformly, so that small classes such as the line separator show
/// up as often as the planes of private-use characters, then a character of it).
fn invisible_char() -> impl Strategy<Value = char> {
    let ranges = invisible_ranges();
    let from_tables = (0..ranges.len(), any::<u32>()).prop_filter_map(
        "every range holds only characters",
        move |(index, offset)| {
            let range = &ranges[index];
            let span = range.end() - range.start() + 1;
            char::from_u32(range.start() + offset % span)
        },
    );
    prop_oneof![select(LOOK_ALIKES.to_vec()), from_tables]
}

/// Values with an invisible or ambiguous character (class
/// [`InvalidClass::InvisibleCharacter`]): a character of general category `Cf`, `Zl`,
/// `Zp` or `Co`, a default-ignorable code point or a noncharacter, between two runs of 0
/// to 30 id characters (at least one before and after when it is whitespace, U+2028 or
/// U+2029, which would otherwise be trimmed away), with 0 to 3 whitespace characters on
/// each side.
///
/// Distribution of the character: half the time one of 24 well-known look-alikes chosen
/// uniformly (U+00AD, U+061C, U+180E, zero-width and bidi characters, the BOM, a tag
/// character, U+2028, U+2029, U+034F, the Hangul fillers, variation selectors,
/// private-use characters, noncharacters); half the time any character of the rule's
/// own tables: one of their ranges chosen uniformly (so that one-character classes such
/// as U+2028 come up as often as whole planes of private-use characters), then a
/// character of that range.
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::{IdError, UserId};
///
/// proptest!(ProptestConfig::with_cases(32), |(value in wsctx::proptest::invisible_character_id())| {
///     prop_assert_eq!(UserId::try_new(value), Err(IdError::InvisibleCharacter));
/// });
/// ```
pub fn invisible_character_id() -> impl Strategy<Value = String> {
    let run = || vec(id_char(), 0..=30).prop_map(String::from_iter);
    (padding(), run(), invisible_char(), run(), padding()).prop_map(
        |(left, mut before, c, mut after, right)| {
            if c.is_whitespace() {
                before.push('a');
                after.insert(0, 'b');
            }
            left + &before + &String::from(c) + &after + &right
        },
    )
}

/// Values that are not in Unicode NFC although every character is allowed (class
/// [`InvalidClass::NotNormalized`]): one of a fixed list of non-NFC sequences (a
/// decomposed `é` or `Å`, combining marks out of canonical order, the Kelvin, Ohm and
/// Angstrom signs, a CJK compatibility ideograph, a Hangul syllable as two jamo, an
/// interior U+2000), chosen uniformly, between two runs of 0 to 30 id characters, with
/// 0 to 3 whitespace characters on each side.
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::{IdError, UserId};
///
/// proptest!(ProptestConfig::with_cases(32), |(value in wsctx::proptest::not_normalized_id())| {
///     prop_assert_eq!(UserId::try_new(value), Err(IdError::NotNormalized));
/// });
/// ```
pub fn not_normalized_id() -> impl Strategy<Value = String> {
    let run = || vec(id_char(), 0..=30).prop_map(String::from_iter);
    (padding(), run(), select(NOT_NFC.to_vec()), run(), padding())
        .prop_map(|(left, before, seq, after, right)| left + &before + seq + &after + &right)
}

/// A class of invalid input, with the [`FieldErrorKind`] validation reports for it.
///
/// # Examples
///
/// ```
/// use wsctx::FieldErrorKind;
/// use wsctx::proptest::InvalidClass;
///
/// assert_eq!(InvalidClass::WhitespaceOnly.kind(), FieldErrorKind::Empty);
/// assert_eq!(InvalidClass::ALL.len(), 13);
/// ```
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum InvalidClass {
    /// An id or operation name that is the empty string ([`empty_id`]).
    Empty,
    /// An id or operation name made only of whitespace ([`whitespace_only_id`]).
    WhitespaceOnly,
    /// An id that is a placeholder word ([`placeholder_word_id`]).
    PlaceholderWord,
    /// A short id with a placeholder prefix ([`placeholder_prefix_id`]).
    PlaceholderPrefix,
    /// An id or operation name over 256 bytes ([`too_long_id`]).
    TooLong,
    /// An id or operation name with a control character ([`control_character_id`]).
    ControlCharacter,
    /// An id or operation name with an invisible or ambiguous character
    /// ([`invisible_character_id`]).
    InvisibleCharacter,
    /// An id or operation name that is not in Unicode NFC ([`not_normalized_id`]).
    NotNormalized,
    /// A metadata entry whose key is one of [`RESERVED_METADATA_KEYS`].
    ReservedMetadataKey,
    /// A metadata key that is empty, longer than 64 bytes, or not made of `[a-z0-9_.-]`.
    InvalidMetadataKey,
    /// More than [`MAX_METADATA_ENTRIES`] metadata entries.
    TooManyMetadataEntries,
    /// A metadata value longer than [`MAX_METADATA_VALUE_BYTES`] bytes.
    MetadataValueTooLong,
    /// An operation depth past [`MAX_OPERATION_DEPTH`].
    DepthExceeded,
}

impl InvalidClass {
    /// Every class.
    pub const ALL: [Self; 13] = [
        Self::Empty,
        Self::WhitespaceOnly,
        Self::PlaceholderWord,
        Self::PlaceholderPrefix,
        Self::TooLong,
        Self::ControlCharacter,
        Self::InvisibleCharacter,
        Self::NotNormalized,
        Self::ReservedMetadataKey,
        Self::InvalidMetadataKey,
        Self::TooManyMetadataEntries,
        Self::MetadataValueTooLong,
        Self::DepthExceeded,
    ];

    /// The error kind validation reports for this class.
    #[must_use]
    pub const fn kind(self) -> FieldErrorKind {
        match self {
            Self::Empty | Self::WhitespaceOnly => FieldErrorKind::Empty,
            Self::PlaceholderWord => FieldErrorKind::PlaceholderWord,
            Self::PlaceholderPrefix => FieldErrorKind::PlaceholderPrefix,
            Self::TooLong => FieldErrorKind::TooLong,
            Self::ControlCharacter => FieldErrorKind::ControlCharacter,
            Self::InvisibleCharacter => FieldErrorKind::InvisibleCharacter,
            Self::NotNormalized => FieldErrorKind::NotNormalized,
            Self::ReservedMetadataKey => FieldErrorKind::ReservedKey,
            Self::InvalidMetadataKey => FieldErrorKind::InvalidKey,
            Self::TooManyMetadataEntries => FieldErrorKind::TooManyEntries,
            Self::MetadataValueTooLong => FieldErrorKind::ValueTooLong,
            Self::DepthExceeded => FieldErrorKind::DepthExceeded,
        }
    }
}

/// Puts `value` into one of `slots` of a valid context.
fn with_id(
    slots: &[Slot],
    value: impl Strategy<Value = String> + 'static,
    kind: FieldErrorKind,
) -> BoxedStrategy<(Context<Raw>, Field, FieldErrorKind)> {
    (valid_spec(), select(slots.to_vec()), value)
        .prop_map(move |(mut spec, slot, value)| {
            spec.set(slot, value);
            (spec.build(), slot.field(), kind)
        })
        .boxed()
}

/// Adds the metadata entry `entry` to a valid context.
fn with_entry(
    entry: impl Strategy<Value = (String, String)> + 'static,
    kind: FieldErrorKind,
) -> BoxedStrategy<(Context<Raw>, Field, FieldErrorKind)> {
    (valid_spec(), entry)
        .prop_map(move |(mut spec, entry)| {
            spec.metadata.push(entry);
            (spec.build(), Field::Metadata, kind)
        })
        .boxed()
}

/// A metadata key that is not 1 to 64 bytes of `[a-z0-9_.-]`.
fn invalid_metadata_key() -> impl Strategy<Value = String> {
    let bad = select(vec!['A', 'Z', ' ', '/', ':', 'é', '\u{0}', '\u{200B}']);
    prop_oneof![
        Just(String::new()),
        (MAX_METADATA_KEY_BYTES + 1..=100).prop_map(|n| "k".repeat(n)),
        (metadata_key(), bad, any::<bool>()).prop_map(|(key, c, at_start)| {
            if at_start {
                String::from(c) + &key
            } else {
                key + &String::from(c)
            }
        }),
    ]
}

/// Raw contexts with exactly one failing field of class `class`, with the field and
/// kind [`Context::validate`] must report under [`Policy::default`].
///
/// Distribution: a [`valid_raw_context`], then
/// - for the id classes, one field chosen uniformly among the six ids (user, thread, run,
///   request, parent request, client) and, for the structural classes (all but the
///   placeholder ones, which the policy applies to ids only), the operation name, is set
///   to a value of the class's id strategy ([`empty_id`], [`too_long_id`], …);
/// - [`InvalidClass::ReservedMetadataKey`]: one more entry with a reserved key (uniform);
/// - [`InvalidClass::InvalidMetadataKey`]: one more entry whose key is empty, 65 to 100
///   bytes, or has an upper-case, space, `/`, `:`, non-ASCII, NUL or zero-width character;
/// - [`InvalidClass::TooManyMetadataEntries`]: the metadata replaced by 65 to 80 valid
///   entries with distinct keys;
/// - [`InvalidClass::MetadataValueTooLong`]: one more entry whose value is 1025 to 1400
///   bytes (ASCII or 2-byte `é`);
/// - [`InvalidClass::DepthExceeded`]: a depth of 11 to 20 (3/4) or any `u64` above 10
///   (1/4).
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::proptest::{InvalidClass, invalid_raw_context_of};
/// use wsctx::{Policy, SequenceGenerator};
///
/// proptest!(ProptestConfig::with_cases(16), |((raw, field, kind) in invalid_raw_context_of(InvalidClass::TooLong))| {
///     let error = raw.validate(&Policy::default(), &SequenceGenerator::new()).unwrap_err();
///     let invalid = error.as_invalid().unwrap();
///     prop_assert_eq!(invalid.len(), 1);
///     prop_assert!(invalid.contains(field, kind));
/// });
/// ```
pub fn invalid_raw_context_of(
    class: InvalidClass,
) -> BoxedStrategy<(Context<Raw>, Field, FieldErrorKind)> {
    let kind = class.kind();
    match class {
        InvalidClass::Empty => with_id(&Slot::ALL, empty_id(), kind),
        InvalidClass::WhitespaceOnly => with_id(&Slot::ALL, whitespace_only_id(), kind),
        InvalidClass::PlaceholderWord => with_id(&Slot::IDS, placeholder_word_id(), kind),
        InvalidClass::PlaceholderPrefix => with_id(&Slot::IDS, placeholder_prefix_id(), kind),
        InvalidClass::TooLong => with_id(&Slot::ALL, too_long_id(), kind),
        InvalidClass::ControlCharacter => with_id(&Slot::ALL, control_character_id(), kind),
        InvalidClass::InvisibleCharacter => with_id(&Slot::ALL, invisible_character_id(), kind),
        InvalidClass::NotNormalized => with_id(&Slot::ALL, not_normalized_id(), kind),
        InvalidClass::ReservedMetadataKey => with_entry(
            (
                select(RESERVED_METADATA_KEYS.to_vec()).prop_map(String::from),
                metadata_value(),
            ),
            kind,
        ),
        InvalidClass::InvalidMetadataKey => {
            with_entry((invalid_metadata_key(), metadata_value()), kind)
        }
        InvalidClass::TooManyMetadataEntries => (valid_spec(), MAX_METADATA_ENTRIES + 1..=80)
            .prop_map(move |(mut spec, n)| {
                spec.metadata = (0..n)
                    .map(|i| (format!("key.{i}"), i.to_string()))
                    .collect();
                (spec.build(), Field::Metadata, kind)
            })
            .boxed(),
        InvalidClass::MetadataValueTooLong => {
            let value = prop_oneof![
                (MAX_METADATA_VALUE_BYTES + 1..=1400).prop_map(|n| "v".repeat(n)),
                (MAX_METADATA_VALUE_BYTES / 2 + 1..=700).prop_map(|n| "é".repeat(n)),
            ];
            with_entry((metadata_key(), value), kind)
        }
        InvalidClass::DepthExceeded => {
            let depth = prop_oneof![
                3 => u64::from(MAX_OPERATION_DEPTH) + 1..=20,
                1 => u64::from(MAX_OPERATION_DEPTH) + 1..=u64::MAX,
            ];
            (valid_spec(), depth)
                .prop_map(move |(mut spec, depth)| {
                    spec.operation_depth = Some(depth);
                    (spec.build(), Field::OperationDepth, kind)
                })
                .boxed()
        }
    }
}

/// Raw contexts with exactly one failing field, of any [`InvalidClass`] (uniformly), with
/// the field and kind [`Context::validate`] must report under [`Policy::default`]. See
/// [`invalid_raw_context_of`] for the distribution within each class.
///
/// # Examples
///
/// ```
/// use proptest::prelude::*;
/// use wsctx::{Policy, Rejection, SequenceGenerator};
///
/// proptest!(ProptestConfig::with_cases(32), |((raw, _field, _kind) in wsctx::proptest::invalid_raw_context())| {
///     let error = raw.validate(&Policy::default(), &SequenceGenerator::new()).unwrap_err();
///     prop_assert_eq!(Rejection::from(error).http_status(), Some(400));
/// });
/// ```
pub fn invalid_raw_context() -> impl Strategy<Value = (Context<Raw>, Field, FieldErrorKind)> {
    select(InvalidClass::ALL.to_vec()).prop_flat_map(invalid_raw_context_of)
}
