//! `serde` support (feature `serde`).
//!
//! - `Context<Raw>` deserializes from a map with unknown fields rejected. An id of the
//!   wrong type (JSON `null`, a number, an array, an object) is kept as "wrong type" and
//!   reported by [`Context::validate`] as INVALID_CONTEXT naming that field: it is never
//!   coerced with `to_string`, and never a panic.
//! - `Context<Validated>` deserializes only through validation, with [`Policy::default`]
//!   and [`UuidGenerator`].
//! - Validated and bound contexts serialize to the raw shape, so that serializing and
//!   deserializing gives an equal validated context.
//! - The id newtypes serialize as strings and re-validate when deserialized.
//! - No error message of these deserializers contains input: a value of the wrong type
//!   gets a fixed message (`UserId must be a string`, `a context must be an object`) or a
//!   wrong-type report, never serde's usual "invalid type: integer `7`", and an unknown
//!   field name is not repeated.
//! - [`EventType`] and [`ResumePoint`] serialize as their text and are checked again
//!   when deserialized; a value of another type is refused without being quoted.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{
    self, DeserializeSeed, EnumAccess, IgnoredAny, MapAccess, SeqAccess, VariantAccess as _,
    Visitor,
};
use serde::ser::SerializeMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::context::{Context, RawParts, RawValue};
use crate::error::Field;
use crate::event::EventType;
use crate::generate::UuidGenerator;
use crate::id::{RequestId, RunId, ThreadId, UserId, WebSocketClientId};
use crate::resume::ResumePoint;
use crate::rule::Policy;
use crate::state::{Raw, Valid, Validated};

macro_rules! id_serde {
    ($($name:ident),*) => {$(
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                let Shape::Str(value) = string_or_other(deserializer)? else {
                    return Err(de::Error::custom(concat!(stringify!($name), " must be a string")));
                };
                Self::try_new(value.into_owned()).map_err(|error| {
                    de::Error::custom(format_args!(concat!(stringify!($name), " {}"), error))
                })
            }
        }
    )*};
}
id_serde!(UserId, ThreadId, RunId, RequestId, WebSocketClientId);

/// Reads a value that should be a string. A self-describing format is asked for any value,
/// so that a number or a map reaches [`Classify`] and gets a fixed message: `serde_json`,
/// asked for a string, would build "invalid type: integer `7`" itself, quoting the input.
/// A binary format that is not self-describing (bincode) cannot answer "any value"; it is
/// asked for a string, and can only ever produce one.
fn string_or_other<'de, D: Deserializer<'de>>(d: D) -> Result<Shape<'de, ()>, D::Error> {
    if d.is_human_readable() {
        d.deserialize_any(Classify(Skip))
    } else {
        d.deserialize_string(Classify(Skip))
    }
}

/// The fields a raw context accepts, in the order they are validated.
const CONTEXT_FIELDS: [Field; 9] = Field::ALL;

/// What a value of the input turned out to be. A string, a non-negative integer and a
/// map (made into whatever the entry point wants) are kept; anything else is consumed and
/// kept as `Other`, without its value.
enum Shape<'de, M> {
    Str(Cow<'de, str>),
    Unsigned(u64),
    Map(M),
    Other,
}

impl<M> Shape<'_, M> {
    /// A string is `Given`; anything else is `WrongType`, reported later by validation.
    fn into_string(self) -> RawValue<String> {
        match self {
            Self::Str(value) => RawValue::Given(value.into_owned()),
            _ => RawValue::WrongType,
        }
    }

    /// A non-negative integer is `Given`; anything else is `WrongType`.
    fn into_depth(self) -> RawValue<u64> {
        match self {
            Self::Unsigned(value) => RawValue::Given(value),
            _ => RawValue::WrongType,
        }
    }
}

/// What an entry point makes of a map (the one shape whose handling differs).
trait MapShape<'de> {
    type Output;
    fn visit<A: MapAccess<'de>>(self, map: A) -> Result<Self::Output, A::Error>;
}

/// Consumes a map and keeps nothing.
struct Skip;

impl<'de> MapShape<'de> for Skip {
    type Output = ();
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }
}

/// The one visitor for input whose type the input decides. It never fails because of a
/// type, so serde's "invalid type: integer `7`, expected ..." message, which quotes the
/// input, is never built; each entry point turns a shape it cannot use into a fixed
/// message or a wrong-type report. Errors from the format itself (bad syntax) still pass
/// through.
struct Classify<M>(M);

impl<'de, M: MapShape<'de>> Visitor<'de> for Classify<M> {
    type Value = Shape<'de, M::Output>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any value")
    }
    fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Borrowed(v)))
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(v.to_owned())))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(Shape::Str(Cow::Owned(v)))
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(Shape::Unsigned(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Shape::Other, Shape::Unsigned))
    }
    fn visit_u128<E: de::Error>(self, v: u128) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Shape::Other, Shape::Unsigned))
    }
    fn visit_i128<E: de::Error>(self, v: i128) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(Shape::Other, Shape::Unsigned))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(Shape::Other)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_newtype_struct<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(Shape::Other)
    }
    fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Self::Value, A::Error> {
        self.0.visit(map).map(Shape::Map)
    }
    fn visit_enum<A: EnumAccess<'de>>(self, data: A) -> Result<Self::Value, A::Error> {
        data.variant::<IgnoredAny>()?
            .1
            .newtype_variant::<IgnoredAny>()?;
        Ok(Shape::Other)
    }
}

impl<'de, M: MapShape<'de>> DeserializeSeed<'de> for Classify<M> {
    type Value = Shape<'de, M::Output>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// The metadata map: its string-keyed entries; a value that is not a string is kept as
/// `WrongType`, and so is an entry whose key is not a string.
struct Entries;

impl<'de> MapShape<'de> for Entries {
    type Output = Vec<(String, RawValue<String>)>;
    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Output, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key_seed(Classify(Skip))? {
            let value = map.next_value_seed(Classify(Skip))?.into_string();
            entries.push(match key {
                Shape::Str(key) => (key.into_owned(), value),
                _ => wrong_typed_metadata(),
            });
        }
        Ok(entries)
    }
}

/// A metadata entry that validation reports as `WrongType` for `metadata`.
fn wrong_typed_metadata() -> (String, RawValue<String>) {
    (String::from("metadata"), RawValue::WrongType)
}

/// A context object: its fields, each value classified.
struct Fields;

impl<'de> MapShape<'de> for Fields {
    type Output = RawParts;

    fn visit<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParts, A::Error> {
        let mut parts = RawParts::default();
        let mut metadata_seen = false;
        while let Some(key) = map.next_key::<FieldName>()? {
            let field = key.0;
            let slot = match field {
                Field::UserId => &mut parts.user_id,
                Field::ThreadId => &mut parts.thread_id,
                Field::RunId => &mut parts.run_id,
                Field::RequestId => &mut parts.request_id,
                Field::ParentRequestId => &mut parts.parent_request_id,
                Field::WebSocketClientId => &mut parts.websocket_client_id,
                Field::Operation => &mut parts.operation,
                Field::Metadata => {
                    if metadata_seen {
                        return Err(de::Error::duplicate_field(field.as_str()));
                    }
                    metadata_seen = true;
                    parts.metadata = match map.next_value_seed(Classify(Entries))? {
                        Shape::Map(entries) => entries,
                        // Not a map: one entry of the wrong type makes validate report it.
                        _ => vec![wrong_typed_metadata()],
                    };
                    continue;
                }
                Field::OperationDepth => {
                    if parts.operation_depth.is_some() {
                        return Err(de::Error::duplicate_field(field.as_str()));
                    }
                    parts.operation_depth = Some(map.next_value_seed(Classify(Skip))?.into_depth());
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::duplicate_field(field.as_str()));
            }
            *slot = Some(map.next_value_seed(Classify(Skip))?.into_string());
        }
        Ok(parts)
    }
}

/// Field names come from [`Field::as_str`], the crate's one list of wire names.
struct FieldName(Field);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_identifier(Classify(Skip))? {
            Shape::Str(name) => Field::from_name(&name)
                .map(FieldName)
                // The unknown name is client input: do not echo it.
                .ok_or_else(|| de::Error::custom(UnknownField)),
            _ => Err(de::Error::custom(UnknownField)),
        }
    }
}

struct UnknownField;
impl fmt::Display for UnknownField {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("unknown field, expected one of: ")?;
        for (i, field) in CONTEXT_FIELDS.iter().enumerate() {
            if i > 0 {
                f.write_str(", ")?;
            }
            f.write_str(field.as_str())?;
        }
        Ok(())
    }
}

/// Deserializes raw, unchecked data. Unknown fields are rejected; wrong-typed values are
/// reported later by [`Context::validate`].
///
/// ```
/// use wsctx::{Context, Field, FieldErrorKind, Policy, UuidGenerator, state::Raw};
///
/// let raw: Context<Raw> = serde_json::from_str(r#"{"user_id": "u-1", "run_id": 7}"#)?;
/// let error = raw.validate(&Policy::default(), &UuidGenerator::new()).unwrap_err();
/// assert!(error.as_invalid().unwrap().contains(Field::RunId, FieldErrorKind::WrongType));
/// # Ok::<(), serde_json::Error>(())
/// ```
impl<'de> Deserialize<'de> for Context<Raw> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        match d.deserialize_any(Classify(Fields))? {
            Shape::Map(repr) => Ok(Self { repr }),
            _ => Err(de::Error::custom("a context must be an object")),
        }
    }
}

/// Deserializes and validates with [`Policy::default`] and [`UuidGenerator`]; any
/// validation failure is a deserialization error naming the failing fields.
impl<'de> Deserialize<'de> for Context<Validated> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Context::<Raw>::deserialize(d)?
            .validate(&Policy::default(), &UuidGenerator::new())
            .map_err(de::Error::custom)
    }
}

/// Serializes the validated fields in the raw shape (a bound context serializes its
/// requested client id, not its connection details).
impl<S: Valid> Serialize for Context<S> {
    fn serialize<Ser: Serializer>(&self, serializer: Ser) -> Result<Ser::Ok, Ser::Error> {
        let mut map = serializer.serialize_map(None)?;
        map.serialize_entry("user_id", self.user_id())?;
        map.serialize_entry("thread_id", self.thread_id())?;
        map.serialize_entry("run_id", self.run_id())?;
        map.serialize_entry("request_id", self.request_id())?;
        if let Some(parent) = self.parent_request_id() {
            map.serialize_entry("parent_request_id", parent)?;
        }
        if let Some(client) = self.requested_client_id() {
            map.serialize_entry("websocket_client_id", client)?;
        }
        if !self.metadata().is_empty() {
            map.serialize_entry("metadata", &MetadataRef(self.metadata()))?;
        }
        map.serialize_entry("operation_depth", &self.operation_depth())?;
        if let Some(operation) = self.operation() {
            map.serialize_entry("operation", operation)?;
        }
        map.end()
    }
}

struct MetadataRef<'a>(&'a crate::metadata::Metadata);
impl Serialize for MetadataRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.0.iter())
    }
}

/// Drives a string visitor that refuses the other types itself (see [`Parsed`]). A self-describing format
/// hands a value of the wrong type to the visitor, which refuses it without quoting it;
/// `deserialize_str` would let the format quote it (`serde_json` does, for numbers).
/// Formats that are not human-readable are seldom self-describing, so they get
/// `deserialize_str`.
fn deserialize_string<'de, D, V>(deserializer: D, visitor: V) -> Result<V::Value, D::Error>
where
    D: Deserializer<'de>,
    V: Visitor<'de>,
{
    if deserializer.is_human_readable() {
        deserializer.deserialize_any(visitor)
    } else {
        deserializer.deserialize_str(visitor)
    }
}

/// A string visitor for a type that parses from its text (`FromStr`), refusing other
/// types without quoting them; `expecting` names what it wants.
struct Parsed<T> {
    expecting: &'static str,
    parsed: PhantomData<T>,
}

impl<T> Parsed<T> {
    const fn new(expecting: &'static str) -> Self {
        Self {
            expecting,
            parsed: PhantomData,
        }
    }
}

/// Visitor methods that refuse a value of another type, naming the type, never the value.
macro_rules! refuse_types {
    ($($method:ident($ty:ty) => $what:literal,)+) => {$(
        fn $method<E: de::Error>(self, _: $ty) -> Result<Self::Value, E> {
            Err(E::invalid_type(de::Unexpected::Other($what), &self))
        }
    )+};
}

impl<T> Visitor<'_> for Parsed<T>
where
    T: FromStr,
    T::Err: fmt::Display,
{
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.expecting)
    }

    /// The error names the broken rule, never the input.
    fn visit_str<E: de::Error>(self, text: &str) -> Result<T, E> {
        text.parse().map_err(E::custom)
    }

    // A value of another type is refused without being written into the error.
    refuse_types! {
        visit_bool(bool) => "a boolean",
        visit_i64(i64) => "a number",
        visit_u64(u64) => "a number",
        visit_i128(i128) => "a number",
        visit_u128(u128) => "a number",
        visit_f64(f64) => "a number",
        visit_bytes(&[u8]) => "bytes",
    }
}

impl Serialize for EventType {
    /// As its name.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

impl<'de> Deserialize<'de> for EventType {
    /// From a string that passes the rule; the error names the broken rule, never the
    /// input. In a self-describing format the value must be a string: a number is
    /// refused, not converted (quote it in YAML).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_string(deserializer, Parsed::new("an event type"))
    }
}

impl Serialize for ResumePoint {
    /// As its text, `<epoch>.<seq>`.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for ResumePoint {
    /// From its text, parsed as strictly as [`ResumePoint::parse`]; the error names what
    /// is wrong, never the input. In a self-describing format the value must be a string
    /// (quote it in YAML).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserialize_string(deserializer, Parsed::new("a resume point <epoch>.<seq>"))
    }
}
