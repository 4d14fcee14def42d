//! Request bodies: a strict JSON extractor that reports every problem at once.
//!
//! `web::Json` stops at the first serde error, coerces nothing we can control, and its messages
//! echo the rejected input (which may be a password). Instead the body is parsed into a
//! `serde_json::Value`, then read field by field: each field's JSON type is checked without
//! coercion, its value is parsed by the domain type that owns the invariant, and every problem is
//! collected before answering.

use std::future::Future;
use std::pin::Pin;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpRequest};
use futures::StreamExt;
use rosetta_domain::{
    DestinationId, DestinationName, DestinationPatch, InvalidValue, NewDestination, NewPipeline, NewSource, Patch,
    PgDatabase, PgHost, PgPort, PgUsername, PipelineName, PipelinePatch, PipelineStatus, PublicationName,
    ReplicationId, Secret, ShortText, SnowflakeAccount, SnowflakeSettings, SourceId, SourceName, SourcePatch,
};
use serde_json::{Map, Value};

use crate::error::{ApiError, FieldError};

/// The largest body accepted, in bytes; set once per app from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodyLimit(pub usize);

/// A request body read strictly into `T`.
#[derive(Debug)]
pub(crate) struct Body<T>(pub T);

/// How a write type is read from a JSON object.
pub(crate) trait ReadBody: Sized {
    /// Reads every field it knows from `fields`, recording each problem there. Returns `None`
    /// when a required value is missing or invalid (the problem is recorded).
    fn read(fields: &mut Fields) -> Option<Self>;
}

impl<T: ReadBody + 'static> FromRequest for Body<T> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let limit = req.app_data::<BodyLimit>().map_or(crate::DEFAULT_BODY_LIMIT, |limit| limit.0);
        let declared_length = req
            .headers()
            .get(header::CONTENT_LENGTH)
            .and_then(|value| value.to_str().ok())
            .and_then(|value| value.parse::<u64>().ok());
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(is_json);
        let mut payload = payload.take();
        Box::pin(async move {
            // Refuse a declared oversize body before reading any of it.
            if declared_length.is_some_and(|length| length > limit as u64) {
                return Err(ApiError::payload_too_large(limit));
            }
            let mut bytes = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                let chunk = chunk.map_err(|_| ApiError::unreadable_body())?;
                if bytes.len() + chunk.len() > limit {
                    return Err(ApiError::payload_too_large(limit));
                }
                bytes.extend_from_slice(&chunk);
            }
            if bytes.is_empty() {
                return Err(ApiError::validation(vec![FieldError::new(&["body"], "missing", "Field required")]));
            }
            if !is_json {
                return Err(ApiError::unsupported_media_type());
            }
            let value: Value = serde_json::from_slice(&bytes).map_err(|error| {
                // Line and column only: serde's other text could quote the input.
                ApiError::validation(vec![FieldError::new(
                    &["body"],
                    "json_invalid",
                    format!("Invalid JSON at line {} column {}", error.line(), error.column()),
                )])
            })?;
            let Value::Object(map) = value else {
                return Err(ApiError::validation(vec![FieldError::new(
                    &["body"],
                    "dict_type",
                    "Input should be a JSON object",
                )]));
            };
            let mut fields = Fields::new(map);
            let parsed = T::read(&mut fields);
            let problems = fields.finish();
            match parsed {
                Some(value) if problems.is_empty() => Ok(Body(value)),
                _ => Err(ApiError::validation(problems)),
            }
        })
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

/// A problem with one value: its `type` code and message.
#[derive(Debug)]
pub(crate) struct Problem {
    kind: &'static str,
    msg: String,
}

impl From<InvalidValue> for Problem {
    fn from(invalid: InvalidValue) -> Self {
        Self { kind: invalid.kind.code(), msg: invalid.message }
    }
}

/// A JSON object being read field by field; every field not read is unknown.
#[derive(Debug)]
pub(crate) struct Fields {
    map: Map<String, Value>,
    problems: Vec<FieldError>,
}

impl Fields {
    fn new(map: Map<String, Value>) -> Self {
        Self { map, problems: Vec::new() }
    }

    /// A field that must be present and not `null`.
    pub(crate) fn required<T>(&mut self, name: &str, read: impl Fn(Value) -> Result<T, Problem>) -> Option<T> {
        match self.map.remove(name) {
            None => {
                self.problems.push(FieldError::new(&["body", name], "missing", "Field required"));
                None
            }
            Some(value) => self.check(name, read(value)),
        }
    }

    /// A field that may be omitted (`None`) but is not nullable.
    pub(crate) fn optional<T>(&mut self, name: &str, read: impl Fn(Value) -> Result<T, Problem>) -> Option<T> {
        let value = self.map.remove(name)?;
        self.check(name, read(value))
    }

    /// A nullable field: omitted keeps, `null` clears, a value sets.
    pub(crate) fn nullable<T>(&mut self, name: &str, read: impl Fn(Value) -> Result<T, Problem>) -> Patch<T> {
        match self.map.remove(name) {
            None => Patch::Keep,
            Some(Value::Null) => Patch::Clear,
            Some(value) => self.check(name, read(value)).map_or(Patch::Keep, Patch::Set),
        }
    }

    fn check<T>(&mut self, name: &str, result: Result<T, Problem>) -> Option<T> {
        result.map_err(|problem| self.problems.push(FieldError::new(&["body", name], problem.kind, problem.msg))).ok()
    }

    /// Every problem recorded, then one per unknown field.
    fn finish(mut self) -> Vec<FieldError> {
        let unknown = self
            .map
            .keys()
            .map(|name| FieldError::new(&["body", name], "extra_forbidden", "Extra inputs are not permitted"));
        self.problems.extend(unknown);
        self.problems
    }
}

/// Reads a JSON string (no coercion) and parses it with a domain constructor.
fn text<T>(parse: impl Fn(String) -> Result<T, InvalidValue>) -> impl Fn(Value) -> Result<T, Problem> {
    move |value| match value {
        Value::String(text) => parse(text).map_err(Problem::from),
        _ => Err(Problem { kind: "string_type", msg: "Input should be a valid string".to_owned() }),
    }
}

/// Reads a JSON integer (no coercion: `"5432"` and `5432.0` are refused) and parses it with a
/// domain constructor.
fn integer<T>(parse: impl Fn(i64) -> Result<T, InvalidValue>) -> impl Fn(Value) -> Result<T, Problem> {
    move |value| match value {
        Value::Number(number) => match number.as_i64() {
            Some(integer) => parse(integer).map_err(Problem::from),
            // A whole number above i64::MAX fits no field (they are all BIGINT or narrower).
            None if number.is_u64() => {
                Err(Problem { kind: "less_than_equal", msg: format!("must be at most {}", i64::MAX) })
            }
            None => Err(Problem { kind: "int_type", msg: "Input should be a valid integer".to_owned() }),
        },
        _ => Err(Problem { kind: "int_type", msg: "Input should be a valid integer".to_owned() }),
    }
}

/// Reads an id; any integer is a well-formed id (existence is the service's business).
fn id<T: From<i64>>() -> impl Fn(Value) -> Result<T, Problem> {
    integer(|raw| Ok(T::from(raw)))
}

fn status() -> impl Fn(Value) -> Result<PipelineStatus, Problem> {
    text(|text| text.parse::<PipelineStatus>())
}

impl ReadBody for NewSource {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required("name", text(SourceName::parse));
        let pg_host = f.required("pg_host", text(PgHost::parse));
        let pg_port = f.optional("pg_port", integer(PgPort::new));
        let pg_database = f.required("pg_database", text(PgDatabase::parse));
        let pg_username = f.required("pg_username", text(PgUsername::parse));
        let pg_password = f.nullable("pg_password", text(Secret::parse));
        let publication_name = f.required("publication_name", text(PublicationName::parse));
        let replication_id = f.required("replication_id", integer(ReplicationId::new));
        Some(Self {
            name: name?,
            pg_host: pg_host?,
            pg_port: pg_port.unwrap_or_default(),
            pg_database: pg_database?,
            pg_username: pg_username?,
            pg_password: pg_password.apply(None),
            publication_name: publication_name?,
            replication_id: replication_id?,
        })
    }
}

impl ReadBody for SourcePatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", text(SourceName::parse)),
            pg_host: f.optional("pg_host", text(PgHost::parse)),
            pg_port: f.optional("pg_port", integer(PgPort::new)),
            pg_database: f.optional("pg_database", text(PgDatabase::parse)),
            pg_username: f.optional("pg_username", text(PgUsername::parse)),
            pg_password: f.nullable("pg_password", text(Secret::parse)),
            publication_name: f.optional("publication_name", text(PublicationName::parse)),
            replication_id: f.optional("replication_id", integer(ReplicationId::new)),
        })
    }
}

impl ReadBody for NewDestination {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required("name", text(DestinationName::parse));
        let settings = SnowflakeSettings {
            snowflake_account: f.nullable("snowflake_account", text(SnowflakeAccount::parse)).apply(None),
            snowflake_user: f.nullable("snowflake_user", text(ShortText::parse)).apply(None),
            snowflake_database: f.nullable("snowflake_database", text(ShortText::parse)).apply(None),
            snowflake_schema: f.nullable("snowflake_schema", text(ShortText::parse)).apply(None),
            snowflake_role: f.nullable("snowflake_role", text(ShortText::parse)).apply(None),
            snowflake_private_key_path: f.nullable("snowflake_private_key_path", text(ShortText::parse)).apply(None),
            snowflake_host: f.nullable("snowflake_host", text(ShortText::parse)).apply(None),
        };
        let passphrase = f.nullable("snowflake_private_key_passphrase", text(Secret::parse)).apply(None);
        Some(Self { name: name?, settings, snowflake_private_key_passphrase: passphrase })
    }
}

impl ReadBody for DestinationPatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", text(DestinationName::parse)),
            snowflake_account: f.nullable("snowflake_account", text(SnowflakeAccount::parse)),
            snowflake_user: f.nullable("snowflake_user", text(ShortText::parse)),
            snowflake_database: f.nullable("snowflake_database", text(ShortText::parse)),
            snowflake_schema: f.nullable("snowflake_schema", text(ShortText::parse)),
            snowflake_role: f.nullable("snowflake_role", text(ShortText::parse)),
            snowflake_private_key_path: f.nullable("snowflake_private_key_path", text(ShortText::parse)),
            snowflake_host: f.nullable("snowflake_host", text(ShortText::parse)),
            snowflake_private_key_passphrase: f.nullable("snowflake_private_key_passphrase", text(Secret::parse)),
        })
    }
}

impl ReadBody for NewPipeline {
    fn read(f: &mut Fields) -> Option<Self> {
        let name = f.required("name", text(PipelineName::parse));
        let source_id = f.required("source_id", id::<SourceId>());
        let destination_id = f.required("destination_id", id::<DestinationId>());
        let status = f.optional("status", status());
        Some(Self {
            name: name?,
            source_id: source_id?,
            destination_id: destination_id?,
            status: status.unwrap_or_default(),
        })
    }
}

impl ReadBody for PipelinePatch {
    fn read(f: &mut Fields) -> Option<Self> {
        Some(Self {
            name: f.optional("name", text(PipelineName::parse)),
            source_id: f.optional("source_id", id::<SourceId>()),
            destination_id: f.optional("destination_id", id::<DestinationId>()),
            status: f.optional("status", status()),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn read<T: ReadBody>(body: Value) -> Result<T, Vec<FieldError>> {
        let Value::Object(map) = body else { panic!("not an object") };
        let mut fields = Fields::new(map);
        let parsed = T::read(&mut fields);
        let problems = fields.finish();
        match parsed {
            Some(value) if problems.is_empty() => Ok(value),
            _ => Err(problems),
        }
    }

    fn kinds(problems: &[FieldError]) -> Vec<(String, String)> {
        problems.iter().map(|p| (p.loc.join("."), p.kind.clone())).collect()
    }

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
    }

    #[test]
    fn source_defaults_and_optional_password() {
        let source: NewSource = read(json!({
            "name": "Orders", "pg_host": "h", "pg_database": "d", "pg_username": "u",
            "publication_name": "p", "replication_id": 0, "pg_password": null
        }))
        .unwrap();
        assert_eq!(source.name.as_str(), "orders");
        assert_eq!(source.pg_port.get(), 5432);
        assert!(source.pg_password.is_none());
    }

    #[test]
    fn integers_are_not_coerced() {
        for port in [json!("5432"), json!(5432.0), json!(true), json!(null)] {
            let problems = read::<SourcePatch>(json!({ "pg_port": port })).unwrap_err();
            assert_eq!(kinds(&problems), [("body.pg_port".to_owned(), "int_type".to_owned())], "{port}");
        }
        let huge = read::<SourcePatch>(json!({ "replication_id": u64::MAX })).unwrap_err();
        assert_eq!(huge[0].kind, "less_than_equal");
    }

    #[test]
    fn patch_semantics() {
        let patch: DestinationPatch = read(json!({"snowflake_user": null, "snowflake_role": "r"})).unwrap();
        assert_eq!(patch.snowflake_user, Patch::Clear);
        assert_eq!(patch.snowflake_role, Patch::Set(ShortText::parse("r").unwrap()));
        assert_eq!(patch.snowflake_host, Patch::Keep);
        assert!(patch.name.is_none());
        let problems = read::<DestinationPatch>(json!({"name": null})).unwrap_err();
        assert_eq!(kinds(&problems), [("body.name".to_owned(), "string_type".to_owned())]);
    }

    #[test]
    fn pipeline_status_defaults_to_start_and_is_checked() {
        let pipeline: NewPipeline = read(json!({"name": "p", "source_id": 1, "destination_id": 2})).unwrap();
        assert_eq!(pipeline.status, PipelineStatus::Start);
        let problems =
            read::<NewPipeline>(json!({"name": "p", "source_id": 1, "destination_id": 2, "status": "GO"})).unwrap_err();
        assert_eq!(kinds(&problems), [("body.status".to_owned(), "string_pattern_mismatch".to_owned())]);
    }
}
