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
//! - [`EventType`] and [`ResumePoint`] serialize as their text and are checked again
//!   when deserialized; a value of another type is refused without being quoted.

use std::fmt;
use std::marker::PhantomData;
use std::str::FromStr;

use serde::de::{self, DeserializeSeed, IgnoredAny, MapAccess, SeqAccess, Visitor};
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
                let value = String::deserialize(deserializer)?;
                Self::try_new(value).map_err(|error| {
                    de::Error::custom(format_args!(concat!(stringify!($name), " {}"), error))
                })
            }
        }
    )*};
}
id_serde!(UserId, ThreadId, RunId, RequestId, WebSocketClientId);

/// The fields a raw context accepts, in the order they are validated.
const CONTEXT_FIELDS: [Field; 9] = Field::ALL;

/// Accepts any value; a string becomes `Given`, anything else `WrongType` (consumed,
/// not kept).
struct AnyString;

impl<'de> Visitor<'de> for AnyString {
    type Value = RawValue<String>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string")
    }
    fn visit_str<E: de::Error>(self, v: &str) -> Result<Self::Value, E> {
        Ok(RawValue::Given(v.to_owned()))
    }
    fn visit_string<E: de::Error>(self, v: String) -> Result<Self::Value, E> {
        Ok(RawValue::Given(v))
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawValue::WrongType)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RawValue::WrongType)
    }
}

impl<'de> DeserializeSeed<'de> for AnyString {
    type Value = RawValue<String>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
}

/// Accepts any value; a non-negative integer becomes `Given`, anything else `WrongType`.
struct AnyDepth;

impl<'de> Visitor<'de> for AnyDepth {
    type Value = RawValue<u64>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a non-negative integer")
    }
    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Self::Value, E> {
        Ok(RawValue::Given(v))
    }
    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Self::Value, E> {
        Ok(u64::try_from(v).map_or(RawValue::WrongType, RawValue::Given))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(RawValue::WrongType)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(RawValue::WrongType)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(RawValue::WrongType)
    }
}

/// The metadata map: string keys, any values (non-strings become `WrongType`). Anything
/// but a map is `None`, reported as a wrong-typed metadata entry.
struct AnyMetadata;

impl<'de> Visitor<'de> for AnyMetadata {
    type Value = Option<Vec<(String, RawValue<String>)>>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of strings")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut entries = Vec::new();
        while let Some(key) = map.next_key::<String>()? {
            let value = map.next_value_seed(AnyString)?;
            entries.push((key, value));
        }
        Ok(Some(entries))
    }
    fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_none<E: de::Error>(self) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(self)
    }
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Ok(None)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Self::Value, A::Error> {
        while seq.next_element::<IgnoredAny>()?.is_some() {}
        Ok(None)
    }
}

struct RawVisitor;

impl<'de> Visitor<'de> for RawVisitor {
    type Value = RawParts;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a context object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<RawParts, A::Error> {
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
                    parts.metadata = match map.next_value_seed(MetadataSeed)? {
                        Some(entries) => entries,
                        // Not a map: one entry of the wrong type makes validate report it.
                        None => vec![(String::from("metadata"), RawValue::WrongType)],
                    };
                    continue;
                }
                Field::OperationDepth => {
                    if parts.operation_depth.is_some() {
                        return Err(de::Error::duplicate_field(field.as_str()));
                    }
                    parts.operation_depth = Some(map.next_value_seed(DepthSeed)?);
                    continue;
                }
            };
            if slot.is_some() {
                return Err(de::Error::duplicate_field(field.as_str()));
            }
            *slot = Some(map.next_value_seed(AnyString)?);
        }
        Ok(parts)
    }
}

struct MetadataSeed;
impl<'de> DeserializeSeed<'de> for MetadataSeed {
    type Value = Option<Vec<(String, RawValue<String>)>>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(AnyMetadata)
    }
}

struct DepthSeed;
impl<'de> DeserializeSeed<'de> for DepthSeed {
    type Value = RawValue<u64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_any(AnyDepth)
    }
}

/// Field names come from [`Field::as_str`], the crate's one list of wire names.
struct FieldName(Field);

impl<'de> Deserialize<'de> for FieldName {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl Visitor<'_> for NameVisitor {
            type Value = FieldName;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a context field name")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<FieldName, E> {
                Field::from_name(v)
                    .map(FieldName)
                    // The unknown name is client input: do not echo it.
                    .ok_or_else(|| de::Error::custom(UnknownField))
            }
        }
        d.deserialize_identifier(NameVisitor)
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
        let repr = d.deserialize_map(RawVisitor)?;
        Ok(Self { repr })
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
    fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("a boolean"), &self))
    }
    fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
    }
    fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
    }
    fn visit_i128<E: de::Error>(self, _: i128) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
    }
    fn visit_u128<E: de::Error>(self, _: u128) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
    }
    fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("a number"), &self))
    }
    fn visit_bytes<E: de::Error>(self, _: &[u8]) -> Result<Self::Value, E> {
        Err(E::invalid_type(de::Unexpected::Other("bytes"), &self))
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
