//! The value types requests carry, each with its schema next to its reader.
//!
//! The patterns are JSON Schema (ECMA-262) regular expressions that accept exactly what the
//! domain constructors accept; `tests::schemas_agree_with_the_domain` checks each against the
//! domain on the boundary cases.

use chrono::{DateTime, Utc};
use rosetta_domain::{
    AlertId, AlertRule, AlertState, ChannelId, ChannelKind, ChannelName, ChannelUrl, CleanupTaskId, DestinationId,
    DestinationName, PageLimit, PgDatabase, PgHost, PgPort, PgSslMode, PgSslRootCert, PgUsername, PipelineId,
    PipelineName, PipelineStatus, PublicationName, ReplicationId, Secret, Severity, ShortText, SigningSecret, SlotName,
    SnowflakeAccount, SourceId, SourceName, TableName, Timestamp,
};
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, Type};
use utoipa::openapi::{KnownFormat, SchemaFormat};

use super::{
    JsonInput, Problem, TextInput, integer_schema, parse_integer, read_integer, read_text, string_schema, within,
};

/// A resource name: letters, digits, `-`, `_` (stored lower-cased).
pub(crate) const NAME_PATTERN: &str = "^[A-Za-z0-9_-]+$";
/// No control character (Unicode category Cc: U+0000–U+001F, U+007F–U+009F).
pub(crate) const NO_CONTROL_PATTERN: &str = r"^[^\u0000-\u001F\u007F-\u009F]*$";
/// No control character and no white space (Unicode `White_Space`), at least one character.
const HOST_PATTERN: &str = r"^[^\u0000-\u0020\u007F-\u00A0\u1680\u2000-\u200A\u2028\u2029\u202F\u205F\u3000]+$";
/// An unquoted PostgreSQL identifier.
const IDENTIFIER_PATTERN: &str = "^[A-Za-z_][A-Za-z0-9_]*$";
/// A replication slot name.
const SLOT_PATTERN: &str = "^[a-z0-9_]+$";
/// `schema.table`: a schema without `.`, a `.`, a table name; no control characters.
const TABLE_PATTERN: &str = r"^[^.\u0000-\u001F\u007F-\u009F]+\.[^\u0000-\u001F\u007F-\u009F]+$";
/// A Snowflake account identifier.
const ACCOUNT_PATTERN: &str = "^[A-Za-z0-9.-]+$";

/// Defines [`JsonInput`] for a string type from its schema and domain constructor.
macro_rules! json_text {
    ($type:ty, $schema:expr) => {
        impl JsonInput for $type {
            fn schema() -> Object {
                $schema
            }
            fn read(value: Value) -> Result<Self, Problem> {
                read_text(value, <$type>::parse)
            }
        }
    };
}

json_text!(SourceName, string_schema(1, 255, Some(NAME_PATTERN)));
json_text!(DestinationName, string_schema(1, 255, Some(NAME_PATTERN)));
json_text!(PipelineName, string_schema(1, 255, Some(NAME_PATTERN)));
json_text!(PgHost, string_schema(1, 255, Some(HOST_PATTERN)));
json_text!(PgDatabase, string_schema(1, 255, Some(NO_CONTROL_PATTERN)));
json_text!(PgUsername, string_schema(1, 255, Some(NO_CONTROL_PATTERN)));
json_text!(PublicationName, string_schema(1, 63, Some(IDENTIFIER_PATTERN)));
json_text!(SnowflakeAccount, string_schema(1, 255, Some(ACCOUNT_PATTERN)));
json_text!(ShortText, string_schema(0, 255, Some(NO_CONTROL_PATTERN)));

impl JsonInput for Secret {
    fn schema() -> Object {
        let mut schema = string_schema(1, Secret::MAX_CHARS, None);
        schema.write_only = Some(true);
        schema
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_text(value, Secret::parse)
    }
}

impl JsonInput for PgPort {
    fn schema() -> Object {
        integer_schema(Some(1), Some(65_535))
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_integer(value, PgPort::new)
    }
}

impl JsonInput for ReplicationId {
    fn schema() -> Object {
        integer_schema(Some(0), None)
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_integer(value, ReplicationId::new)
    }
}

/// Ids in bodies and paths: any integer is a well-formed id; whether it exists is the service's
/// business.
macro_rules! id_input {
    ($($type:ty),*) => {$(
        impl JsonInput for $type {
            fn schema() -> Object {
                integer_schema(None, None)
            }
            fn read(value: Value) -> Result<Self, Problem> {
                read_integer(value, |raw| Ok(<$type>::new(raw)))
            }
        }

        impl TextInput for $type {
            fn schema() -> Object {
                integer_schema(None, None)
            }
            fn parse(raw: &str) -> Result<Self, Problem> {
                parse_integer(raw).map(<$type>::new)
            }
        }
    )*};
}

id_input!(SourceId, DestinationId, PipelineId);

impl JsonInput for PipelineStatus {
    fn schema() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .enum_values(Some(PipelineStatus::ALL.map(PipelineStatus::as_str)))
            .build()
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_text(value, |text| text.parse())
    }
}

impl TextInput for PageLimit {
    fn schema() -> Object {
        integer_schema(Some(1), Some(i64::from(PageLimit::MAX)))
    }
    fn parse(raw: &str) -> Result<Self, Problem> {
        let value = within(parse_integer(raw)?, 1, i64::from(PageLimit::MAX))?;
        u32::try_from(value).ok().and_then(|limit| PageLimit::new(limit).ok()).ok_or_else(|| {
            Problem::new("less_than_equal", format!("Input should be less than or equal to {}", PageLimit::MAX))
        })
    }
}

/// A chart dimension in pixels, `MIN` to `MAX`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Pixels<const MIN: u32, const MAX: u32>(pub u32);

impl<const MIN: u32, const MAX: u32> TextInput for Pixels<MIN, MAX> {
    fn schema() -> Object {
        integer_schema(Some(i64::from(MIN)), Some(i64::from(MAX)))
    }
    fn parse(raw: &str) -> Result<Self, Problem> {
        let value = within(parse_integer(raw)?, i64::from(MIN), i64::from(MAX))?;
        Ok(Self(u32::try_from(value).unwrap_or(MAX)))
    }
}

/// How many items a list skips: 0 or more.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) struct Skip(pub u64);

impl TextInput for Skip {
    fn schema() -> Object {
        integer_schema(Some(0), None)
    }
    fn parse(raw: &str) -> Result<Self, Problem> {
        let value = parse_integer(raw)?;
        u64::try_from(value)
            .map(Skip)
            .map_err(|_| Problem::new("greater_than_equal", "Input should be greater than or equal to 0"))
    }
}

impl TextInput for bool {
    fn schema() -> Object {
        ObjectBuilder::new().schema_type(Type::Boolean).build()
    }
    fn parse(raw: &str) -> Result<Self, Problem> {
        match raw {
            "true" => Ok(true),
            "false" => Ok(false),
            _ => Err(Problem::new("bool_parsing", "Input should be a valid boolean: 'true' or 'false'")),
        }
    }
}

/// An RFC 3339 instant. The offset is required: a local time would mean a different instant on
/// every server.
impl TextInput for Timestamp {
    fn schema() -> Object {
        ObjectBuilder::new()
            .schema_type(Type::String)
            .format(Some(SchemaFormat::KnownFormat(KnownFormat::DateTime)))
            .build()
    }
    fn parse(raw: &str) -> Result<Self, Problem> {
        DateTime::parse_from_rfc3339(raw)
            .or_else(|error| match unencoded_plus_offset(raw) {
                // `+02:00` sent without percent-encoding arrives as ` 02:00` (form decoding turns
                // `+` into a space); no valid instant ends that way, so the intent is unambiguous.
                Some(repaired) => DateTime::parse_from_rfc3339(&repaired),
                None => Err(error),
            })
            .map(|instant| instant.with_timezone(&Utc))
            .map_err(|_| {
                Problem::new(
                    "datetime_parsing",
                    "Input should be an RFC 3339 date-time with an offset, e.g. 2026-01-14T10:06:33Z",
                )
            })
    }
}

/// Defines [`JsonInput`] and [`TextInput`] for an enum from its wire names.
macro_rules! enum_input {
    ($type:ty, $all:expr) => {
        impl JsonInput for $type {
            fn schema() -> Object {
                ObjectBuilder::new().schema_type(Type::String).enum_values(Some($all.map(<$type>::as_str))).build()
            }
            fn read(value: Value) -> Result<Self, Problem> {
                read_text(value, |text| text.parse())
            }
        }

        impl TextInput for $type {
            fn schema() -> Object {
                <$type as JsonInput>::schema()
            }
            fn parse(raw: &str) -> Result<Self, Problem> {
                raw.parse().map_err(Problem::from)
            }
        }
    };
}

enum_input!(AlertRule, AlertRule::ALL);
enum_input!(PgSslMode, PgSslMode::ALL);
enum_input!(Severity, Severity::ALL);
enum_input!(ChannelKind, ChannelKind::ALL);
enum_input!(AlertState, [AlertState::Firing, AlertState::Resolved]);

id_input!(AlertId, ChannelId, CleanupTaskId);
json_text!(SlotName, string_schema(1, 63, Some(SLOT_PATTERN)));
// What makes PEM valid (base64 of X.509 DER inside BEGIN/END lines) is beyond a pattern.
json_text!(PgSslRootCert, string_schema(1, PgSslRootCert::MAX_CHARS, None));

impl JsonInput for TableName {
    fn schema() -> Object {
        string_schema(3, 127, Some(TABLE_PATTERN))
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_text(value, |text| TableName::parse(&text))
    }
}
json_text!(ChannelName, string_schema(1, 255, Some(NAME_PATTERN)));

impl JsonInput for bool {
    fn schema() -> Object {
        ObjectBuilder::new().schema_type(Type::Boolean).build()
    }
    fn read(value: Value) -> Result<Self, Problem> {
        match value {
            Value::Bool(flag) => Ok(flag),
            _ => Err(Problem::new("bool_type", "Input should be a valid boolean")),
        }
    }
}

/// An `http`/`https` URL; write-only (it is a credential).
impl JsonInput for ChannelUrl {
    fn schema() -> Object {
        let mut schema = string_schema(1, ChannelUrl::MAX_CHARS, Some(URL_PATTERN));
        schema.write_only = Some(true);
        schema
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_text(value, ChannelUrl::parse)
    }
}

/// An absolute `http`/`https` URL with a host name or IPv4 address (no IPv6 literal), optional
/// user info and port (1–65535), no white space or control characters.
const URL_PATTERN: &str = r"^[Hh][Tt][Tt][Pp][Ss]?://([^/?#\s\u0000-\u001F\u007F-\u009F]*@)?[A-Za-z0-9._-]+(:([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5]))?([/?#][^\s\u0000-\u001F\u007F-\u009F]*)?$";

/// A webhook signing secret (16–1024 characters); write-only.
impl JsonInput for SigningSecret {
    fn schema() -> Object {
        let mut schema = string_schema(SigningSecret::MIN_CHARS, Secret::MAX_CHARS, None);
        schema.write_only = Some(true);
        schema
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_text(value, SigningSecret::parse)
    }
}

/// A threshold of an alert rule, in the rule's unit: 1 to 2^63 − 1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Threshold(pub u64);

impl JsonInput for Threshold {
    fn schema() -> Object {
        integer_schema(Some(1), Some(i64::MAX))
    }
    fn read(value: Value) -> Result<Self, Problem> {
        read_integer(value, Ok).and_then(|raw| match u64::try_from(raw) {
            Ok(threshold) if threshold >= 1 => Ok(Self(threshold)),
            _ => Err(Problem::new("greater_than_equal", "Input should be greater than or equal to 1")),
        })
    }
}

/// A duration of an alert rule in seconds, 0 to 30 days (`window_seconds` refuses 0 itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RuleSeconds(pub u64);

impl RuleSeconds {
    const MAX: i64 = 30 * 86_400;
}

impl JsonInput for RuleSeconds {
    fn schema() -> Object {
        integer_schema(Some(0), Some(Self::MAX))
    }
    fn read(value: Value) -> Result<Self, Problem> {
        let seconds = within(read_integer(value, Ok)?, 0, Self::MAX)?;
        Ok(Self(seconds.unsigned_abs()))
    }
}

/// `raw` with a trailing ` hh:mm` turned back into `+hh:mm`, if it ends that way.
fn unencoded_plus_offset(raw: &str) -> Option<String> {
    let split = raw.len().checked_sub(6)?;
    let (instant, offset) = (raw.get(..split)?, raw.get(split..)?);
    let offset = offset.strip_prefix(' ')?;
    let well_formed = offset.len() == 5
        && offset.bytes().enumerate().all(|(i, byte)| if i == 2 { byte == b':' } else { byte.is_ascii_digit() });
    well_formed.then(|| format!("{instant}+{offset}"))
}

#[cfg(test)]
mod tests {
    use regex::Regex;
    use serde_json::json;

    use super::*;

    /// Whether `text` satisfies a string schema (length in code points, and the pattern).
    fn schema_accepts(schema: &Object, text: &str) -> bool {
        let chars = text.chars().count();
        let pattern = schema.pattern.as_deref().map(|p| Regex::new(p).unwrap_or_else(|e| panic!("{p}: {e}")));
        schema.min_length.is_none_or(|min| chars >= min)
            && schema.max_length.is_none_or(|max| chars <= max)
            && pattern.is_none_or(|pattern| pattern.is_match(text))
    }

    /// Strings on every boundary the rules draw: lengths, each control and white-space
    /// character, the characters each pattern allows and the ones next to them.
    fn corpus() -> Vec<String> {
        let mut texts: Vec<String> =
            ["", "a", "A-b_9", "a.b", "a b", "é", "_x", "1x", "x'y", "x\"y", "db.internal"].map(String::from).to_vec();
        for len in [62, 63, 64, 254, 255, 256, 1024, 1025] {
            texts.push("a".repeat(len));
            texts.push("é".repeat(len));
        }
        let specials = (0u32..0xA2).chain([0x1680, 0x2000, 0x200A, 0x200B, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000]);
        for c in specials.chain([0xFEFF, 0x10FFFF]).filter_map(char::from_u32) {
            texts.push(format!("a{c}b"));
            texts.push(c.to_string());
        }
        texts
    }

    fn agrees<T>(name: &str, schema: Object, parse: impl Fn(String) -> Result<T, rosetta_domain::InvalidValue>) {
        for text in corpus() {
            let domain = parse(text.clone()).is_ok();
            assert_eq!(schema_accepts(&schema, &text), domain, "{name}: schema and domain disagree on {text:?}");
        }
    }

    #[test]
    fn schemas_agree_with_the_domain() {
        agrees("SourceName", <SourceName as JsonInput>::schema(), SourceName::parse);
        agrees("DestinationName", <DestinationName as JsonInput>::schema(), DestinationName::parse);
        agrees("PipelineName", <PipelineName as JsonInput>::schema(), PipelineName::parse);
        agrees("PgHost", <PgHost as JsonInput>::schema(), PgHost::parse);
        agrees("PgDatabase", <PgDatabase as JsonInput>::schema(), PgDatabase::parse);
        agrees("PgUsername", <PgUsername as JsonInput>::schema(), PgUsername::parse);
        agrees("PublicationName", <PublicationName as JsonInput>::schema(), PublicationName::parse);
        agrees("SnowflakeAccount", <SnowflakeAccount as JsonInput>::schema(), SnowflakeAccount::parse);
        agrees("ShortText", <ShortText as JsonInput>::schema(), ShortText::parse);
        agrees("Secret", <Secret as JsonInput>::schema(), Secret::parse);
    }

    #[test]
    fn integer_bounds_agree_with_the_domain() {
        for (value, port_ok) in [(0, false), (1, true), (65_535, true), (65_536, false), (-1, false)] {
            assert_eq!(PgPort::read(json!(value)).is_ok(), port_ok, "{value}");
        }
        let port = serde_json::to_value(<PgPort as JsonInput>::schema()).unwrap();
        assert_eq!((&port["minimum"], &port["maximum"]), (&json!(1), &json!(65_535)));
        assert!(ReplicationId::read(json!(-1)).is_err() && ReplicationId::read(json!(0)).is_ok());
        assert_eq!(serde_json::to_value(<ReplicationId as JsonInput>::schema()).unwrap()["minimum"], json!(0));
    }

    #[test]
    fn query_values_parse_strictly() {
        assert_eq!(Skip::parse("0"), Ok(Skip(0)));
        assert_eq!(Skip::parse("-1").unwrap_err().kind, "greater_than_equal");
        assert_eq!(Skip::parse("1.0").unwrap_err().kind, "int_parsing");
        assert_eq!(PageLimit::parse("1000").map(PageLimit::get), Ok(1000));
        assert_eq!(PageLimit::parse("0").unwrap_err().kind, "greater_than_equal");
        assert_eq!(PageLimit::parse("1001").unwrap_err().kind, "less_than_equal");
        assert_eq!(bool::parse("true"), Ok(true));
        assert_eq!(bool::parse("1").unwrap_err().kind, "bool_parsing");
    }

    #[test]
    fn instants_need_an_offset_and_survive_an_unencoded_plus() {
        let instant = |raw: &str| Timestamp::parse(raw).map(|at| at.to_rfc3339());
        for (raw, utc) in [
            ("2026-01-14T10:00:00Z", "2026-01-14T10:00:00+00:00"),
            ("2026-01-14T10:00:00.5+02:00", "2026-01-14T08:00:00.500+00:00"),
            ("2026-01-14T10:00:00 02:00", "2026-01-14T08:00:00+00:00"),
            ("2026-01-14T10:00:00-05:30", "2026-01-14T15:30:00+00:00"),
        ] {
            assert_eq!(instant(raw).as_deref(), Ok(utc), "{raw}");
        }
        for bad in ["2026-01-14T10:00:00", "2026-01-14", "", "now", "2026-01-14T10:00:00+2:00"] {
            assert_eq!(instant(bad).unwrap_err().kind, "datetime_parsing", "{bad}");
        }
        assert_eq!(unencoded_plus_offset("x 02:00").as_deref(), Some("x+02:00"));
        for untouched in ["x+02:00", "x 2:00", "x 02-00", "x 0a:00", "02:00", "é 02:0"] {
            assert_eq!(unencoded_plus_offset(untouched), None, "{untouched}");
        }
    }
}
