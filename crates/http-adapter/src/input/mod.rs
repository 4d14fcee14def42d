//! Everything a request carries — JSON bodies, query strings, path segments — read strictly and
//! documented from one declaration.
//!
//! Each value type the API accepts implements [`JsonInput`] (body fields) or [`TextInput`]
//! (query and path values): its JSON Schema and its reader sit side by side, and a body, query
//! or path is declared once as a function over [`body::Fields`], [`query::QueryFields`] or
//! [`path::PathFields`]. That function runs in two modes: reading a request (every problem
//! collected) or describing itself for the OpenAPI document. So the document cannot name a field
//! the reader ignores, miss one it reads, or state a rule the reader does not apply.

pub(crate) mod body;
pub(crate) mod json;
pub(crate) mod path;
pub(crate) mod query;
pub(crate) mod values;

use rosetta_domain::InvalidValue;
use serde_json::Value;
use utoipa::openapi::schema::{Object, ObjectBuilder, SchemaType, Type};

/// A problem with one value: its `type` code and a message that never repeats the input.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Problem {
    pub kind: &'static str,
    pub msg: String,
}

impl Problem {
    pub(crate) fn new(kind: &'static str, msg: impl Into<String>) -> Self {
        Self { kind, msg: msg.into() }
    }
}

impl From<InvalidValue> for Problem {
    fn from(invalid: InvalidValue) -> Self {
        Self { kind: invalid.kind.code(), msg: invalid.message }
    }
}

/// A value of a JSON body: its schema and its strict reader (no coercion: `"5432"` is not a
/// number, `null` is not a string).
pub(crate) trait JsonInput: Sized {
    /// The JSON Schema of the value; it accepts exactly what [`JsonInput::read`] accepts.
    fn schema() -> Object;
    /// Reads the value.
    fn read(value: Value) -> Result<Self, Problem>;
}

/// A value of a query string or path segment: its schema and its parser.
pub(crate) trait TextInput: Sized {
    /// The JSON Schema of the value; it accepts exactly what [`TextInput::parse`] accepts.
    fn schema() -> Object;
    /// Parses the value.
    fn parse(raw: &str) -> Result<Self, Problem>;
}

/// A string schema.
pub(crate) fn string_schema(min: usize, max: usize, pattern: Option<&str>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::String)
        .min_length((min > 0).then_some(min))
        .max_length(Some(max))
        .pattern(pattern)
        .build()
}

/// An integer schema with bounds.
pub(crate) fn integer_schema(min: Option<i64>, max: Option<i64>) -> Object {
    ObjectBuilder::new()
        .schema_type(Type::Integer)
        .format(Some(utoipa::openapi::SchemaFormat::KnownFormat(utoipa::openapi::KnownFormat::Int64)))
        .minimum(min)
        .maximum(max)
        .build()
}

/// `schema` that also accepts `null`.
pub(crate) fn or_null(mut schema: Object) -> Object {
    schema.schema_type = match schema.schema_type {
        SchemaType::Type(kind) => SchemaType::Array(vec![kind, Type::Null]),
        SchemaType::Array(mut kinds) => {
            if !kinds.contains(&Type::Null) {
                kinds.push(Type::Null);
            }
            SchemaType::Array(kinds)
        }
        SchemaType::AnyValue => SchemaType::AnyValue,
    };
    if let Some(values) = &mut schema.enum_values {
        values.push(Value::Null);
    }
    schema
}

/// A JSON string (never coerced), parsed by a domain constructor.
pub(crate) fn read_text<T>(value: Value, parse: impl FnOnce(String) -> Result<T, InvalidValue>) -> Result<T, Problem> {
    match value {
        Value::String(text) => parse(text).map_err(Problem::from),
        _ => Err(Problem::new("string_type", "Input should be a valid string")),
    }
}

/// A JSON integer, parsed by a domain constructor. JSON has one number type, so an integral
/// number written with a fraction or exponent (`5432.0`, `5.432e3`) is that integer, as JSON
/// Schema's `integer` says; `5432.5`, strings and booleans are refused.
pub(crate) fn read_integer<T>(value: Value, parse: impl FnOnce(i64) -> Result<T, InvalidValue>) -> Result<T, Problem> {
    let Value::Number(number) = value else {
        return Err(Problem::new("int_type", "Input should be a valid integer"));
    };
    if let Some(integer) = number.as_i64() {
        return parse(integer).map_err(Problem::from);
    }
    if number.is_u64() {
        return Err(too_large());
    }
    match number.as_f64() {
        Some(float) if float.is_finite() && float.fract() == 0.0 => {
            // Exactly representable integers below 2^63 convert without loss; beyond, the
            // value fits no field (they are all BIGINT or narrower).
            if float >= 9_223_372_036_854_775_808.0 {
                Err(too_large())
            } else if float < -9_223_372_036_854_775_808.0 {
                Err(Problem::new("greater_than_equal", format!("must be at least {}", i64::MIN)))
            } else {
                #[expect(clippy::cast_possible_truncation, reason = "integral and within i64's range, checked above")]
                parse(float as i64).map_err(Problem::from)
            }
        }
        _ => Err(Problem::new("int_type", "Input should be a valid integer")),
    }
}

fn too_large() -> Problem {
    Problem::new("less_than_equal", format!("must be at most {}", i64::MAX))
}

/// `value` when it lies in `min..=max`, else the problem a client of the original service knows
/// (`greater_than_equal` / `less_than_equal`, naming the bound).
pub(crate) fn within(value: i64, min: i64, max: i64) -> Result<i64, Problem> {
    if value < min {
        Err(Problem::new("greater_than_equal", format!("Input should be greater than or equal to {min}")))
    } else if value > max {
        Err(Problem::new("less_than_equal", format!("Input should be less than or equal to {max}")))
    } else {
        Ok(value)
    }
}

/// An integer in a query string or path: decimal digits with an optional sign, nothing else.
pub(crate) fn parse_integer(raw: &str) -> Result<i64, Problem> {
    raw.parse::<i64>().map_err(|_| {
        Problem::new("int_parsing", "Input should be a valid integer, unable to parse string as an integer")
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn integral_numbers_are_integers_whatever_their_spelling() {
        let read = |value: Value| read_integer(value, Ok);
        assert_eq!(read(json!(5432)), Ok(5432));
        assert_eq!(read(json!(5432.0)), Ok(5432));
        assert_eq!(read(serde_json::from_str("5.432e3").unwrap()), Ok(5432));
        assert_eq!(read(json!(-1.0)), Ok(-1));
        for refused in [json!(5432.5), json!("5432"), json!(true), json!(null), json!([1])] {
            assert_eq!(read(refused.clone()).unwrap_err().kind, "int_type", "{refused}");
        }
        assert_eq!(read(json!(u64::MAX)).unwrap_err().kind, "less_than_equal");
        assert_eq!(read(json!(1e300)).unwrap_err().kind, "less_than_equal");
        assert_eq!(read(json!(-1e300)).unwrap_err().kind, "greater_than_equal");
        assert_eq!(read(json!(9_223_372_036_854_775_807_i64)), Ok(i64::MAX));
    }

    #[test]
    fn nullable_schemas_add_null_to_the_type_and_the_enum() {
        let schema = or_null(ObjectBuilder::new().schema_type(Type::String).enum_values(Some(["a"])).build());
        let schema = serde_json::to_value(schema).unwrap();
        assert_eq!(schema["type"], json!(["string", "null"]));
        assert_eq!(schema["enum"], json!(["a", null]));
    }
}
