//! JSON request bodies: declared once as a function over [`Fields`], which reads a request
//! (reporting every problem at once) or describes the body for the OpenAPI document.

use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use actix_web::dev::Payload;
use actix_web::http::header;
use actix_web::web::BytesMut;
use actix_web::{FromRequest, HttpRequest};
use futures::StreamExt;
use rosetta_domain::Patch;
use serde_json::{Map, Value};
use utoipa::openapi::RefOr;
use utoipa::openapi::schema::{AdditionalProperties, Object, ObjectBuilder, Schema, Type};

use super::json::{JsonError, parse_strict};
use super::{JsonInput, or_null};
use crate::error::{ApiError, FieldError};

/// How request bodies are received (see [`receive_body`]); set once per app from the settings.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BodySettings {
    /// The largest body accepted, in bytes.
    pub limit: usize,
    /// How long the whole body may take to arrive once its head has.
    pub timeout: Duration,
}

impl Default for BodySettings {
    fn default() -> Self {
        Self { limit: crate::DEFAULT_BODY_LIMIT, timeout: crate::DEFAULT_BODY_TIMEOUT }
    }
}

/// A write body: how it is read from (and described as) a JSON object.
pub(crate) trait WriteBody: Sized + 'static {
    /// Reads every field from `fields`, recording each problem there; `None` when a required
    /// value is missing or invalid (the problem is recorded), and always in describe mode.
    fn read(fields: &mut Fields) -> Option<Self>;
}

/// Names a body in the OpenAPI document: `request_body = SourceCreate` documents the body a
/// handler reads with `Body<SourceCreate>`.
pub(crate) trait DescribedBody {
    /// What the body reads into.
    type Value: WriteBody;
    /// The schema's description.
    const DESCRIPTION: &'static str;
}

/// Declares a body schema type `$name` for the body value `$value`, named `$name` in the
/// OpenAPI document.
macro_rules! described_body {
    ($(#[$meta:meta])* $name:ident for $value:ty, $description:literal) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub(crate) struct $name;

        impl $crate::input::body::DescribedBody for $name {
            type Value = $value;
            const DESCRIPTION: &'static str = $description;
        }

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                $crate::input::body::describe::<$name>()
            }
        }

        impl utoipa::ToSchema for $name {}
    };
}
pub(crate) use described_body;

/// The schema of body `B`: an object with exactly the fields its reader reads.
pub(crate) fn describe<B: DescribedBody>() -> RefOr<Schema> {
    let mut fields = Fields { mode: Mode::Describe { properties: Vec::new(), required: Vec::new() } };
    let _ = B::Value::read(&mut fields);
    let Mode::Describe { properties, required } = fields.mode else {
        unreachable!("describe mode stays describe mode")
    };
    let mut object = ObjectBuilder::new()
        .schema_type(Type::Object)
        .description(Some(B::DESCRIPTION))
        .additional_properties(Some(AdditionalProperties::FreeForm(false)));
    for (name, schema) in properties {
        object = object.property(name, schema);
    }
    for name in required {
        object = object.required(name);
    }
    RefOr::T(Schema::Object(object.build()))
}

/// A JSON object being read field by field (every field not read is unknown), or a body being
/// described.
pub(crate) struct Fields {
    mode: Mode,
}

impl std::fmt::Debug for Fields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Read { .. } => "read",
            Mode::Describe { .. } => "describe",
        };
        f.debug_struct("Fields").field("mode", &mode).finish_non_exhaustive()
    }
}

enum Mode {
    Read { map: Map<String, Value>, problems: Vec<FieldError> },
    Describe { properties: Vec<(&'static str, Schema)>, required: Vec<&'static str> },
}

impl Fields {
    fn reading(map: Map<String, Value>) -> Self {
        Self { mode: Mode::Read { map, problems: Vec::new() } }
    }

    /// A field that must be present and not `null`.
    pub(crate) fn required<T: JsonInput>(&mut self, name: &'static str, description: &str) -> Option<T> {
        match &mut self.mode {
            Mode::Describe { properties, required } => {
                properties.push((name, Schema::Object(described(T::schema(), description, None))));
                required.push(name);
                None
            }
            Mode::Read { map, problems } => match map.remove(name) {
                None => {
                    problems.push(FieldError::new(&["body", name], "missing", "Field required"));
                    None
                }
                Some(value) => check(problems, name, T::read(value)),
            },
        }
    }

    /// A field that may be omitted (`None`) but is not nullable.
    pub(crate) fn optional<T: JsonInput>(&mut self, name: &'static str, description: &str) -> Option<T> {
        match &mut self.mode {
            Mode::Describe { properties, .. } => {
                properties.push((name, Schema::Object(described(T::schema(), description, None))));
                None
            }
            Mode::Read { map, problems } => {
                let value = map.remove(name)?;
                check(problems, name, T::read(value))
            }
        }
    }

    /// A field that takes `default` when omitted; `shown` is the default as the document shows it.
    pub(crate) fn defaulted<T: JsonInput>(
        &mut self,
        name: &'static str,
        description: &str,
        default: T,
        shown: Value,
    ) -> Option<T> {
        match &mut self.mode {
            Mode::Describe { properties, .. } => {
                properties.push((name, Schema::Object(described(T::schema(), description, Some(shown)))));
                None
            }
            Mode::Read { map, problems } => match map.remove(name) {
                None => Some(default),
                Some(value) => check(problems, name, T::read(value)),
            },
        }
    }

    /// A nullable field: omitted keeps, `null` clears, a value sets.
    pub(crate) fn nullable<T: JsonInput>(&mut self, name: &'static str, description: &str) -> Patch<T> {
        match &mut self.mode {
            Mode::Describe { properties, .. } => {
                properties.push((name, Schema::Object(described(or_null(T::schema()), description, None))));
                Patch::Keep
            }
            Mode::Read { map, problems } => match map.remove(name) {
                None => Patch::Keep,
                Some(Value::Null) => Patch::Clear,
                Some(value) => check(problems, name, T::read(value)).map_or(Patch::Keep, Patch::Set),
            },
        }
    }

    /// A list field that may be omitted (`None`): `min`–`max` items, each read as `T` (a bad
    /// item is reported with its index).
    pub(crate) fn optional_list<T: JsonInput>(
        &mut self,
        name: &'static str,
        description: &str,
        (min, max): (usize, usize),
    ) -> Option<Vec<T>> {
        match &mut self.mode {
            Mode::Describe { properties, .. } => {
                let array = utoipa::openapi::schema::ArrayBuilder::new()
                    .items(T::schema())
                    .min_items(Some(min))
                    .max_items(Some(max))
                    .description(Some(description))
                    .build();
                properties.push((name, Schema::Array(array)));
                None
            }
            Mode::Read { map, problems } => {
                let value = map.remove(name)?;
                let Value::Array(items) = value else {
                    problems.push(FieldError::new(&["body", name], "list_type", "Input should be a valid list"));
                    return None;
                };
                if items.len() < min || items.len() > max {
                    let message = format!("must have {min} to {max} items");
                    problems.push(FieldError::new(&["body", name], "list_length", message));
                    return None;
                }
                let mut values = Vec::with_capacity(items.len());
                let mut ok = true;
                for (index, item) in items.into_iter().enumerate() {
                    match T::read(item) {
                        Ok(value) => values.push(value),
                        Err(problem) => {
                            let index = index.to_string();
                            problems.push(FieldError::new(&["body", name, &index], problem.kind, problem.msg));
                            ok = false;
                        }
                    }
                }
                ok.then_some(values)
            }
        }
    }

    /// Every problem recorded, then one per unknown field.
    fn finish(self) -> Vec<FieldError> {
        match self.mode {
            Mode::Describe { .. } => Vec::new(),
            Mode::Read { map, mut problems } => {
                problems.extend(
                    map.keys().map(|name| {
                        FieldError::new(&["body", name], "extra_forbidden", "Extra inputs are not permitted")
                    }),
                );
                problems
            }
        }
    }
}

fn described(mut schema: Object, description: &str, default: Option<Value>) -> Object {
    schema.description = Some(description.to_owned());
    schema.default = default;
    schema
}

fn check<T>(problems: &mut Vec<FieldError>, name: &str, result: Result<T, super::Problem>) -> Option<T> {
    result.map_err(|problem| problems.push(FieldError::new(&["body", name], problem.kind, problem.msg))).ok()
}

/// Reads `object` as body `T`: the value, or every problem.
pub(crate) fn read_object<T: WriteBody>(object: Map<String, Value>) -> Result<T, Vec<FieldError>> {
    let mut fields = Fields::reading(object);
    let parsed = T::read(&mut fields);
    let problems = fields.finish();
    match parsed {
        Some(value) if problems.is_empty() => Ok(value),
        _ => Err(problems),
    }
}

/// A request body read strictly as the body `B` documents.
#[derive(Debug)]
pub(crate) struct Body<B: DescribedBody>(pub B::Value);

impl<B: DescribedBody + 'static> FromRequest for Body<B> {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, ApiError>>>>;

    /// The body was already received whole, within its size and time limits, by
    /// [`receive_body`] (before routing), so this only reads it from memory.
    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let is_json =
            req.headers().get(header::CONTENT_TYPE).and_then(|value| value.to_str().ok()).is_some_and(is_json);
        let mut payload = payload.take();
        Box::pin(async move {
            let mut bytes = BytesMut::new();
            while let Some(chunk) = payload.next().await {
                bytes.extend_from_slice(&chunk.map_err(|_| ApiError::unreadable_body())?);
            }
            if bytes.is_empty() {
                return Err(ApiError::validation(vec![FieldError::new(&["body"], "missing", "Field required")]));
            }
            if !is_json {
                return Err(ApiError::unsupported_media_type());
            }
            let object = match parse_strict(&bytes) {
                Ok(Value::Object(object)) => object,
                Ok(_) => {
                    return Err(ApiError::validation(vec![FieldError::new(
                        &["body"],
                        "dict_type",
                        "Input should be a JSON object",
                    )]));
                }
                Err(JsonError::Syntax { line, column }) => {
                    return Err(ApiError::validation(vec![FieldError::new(
                        &["body"],
                        "json_invalid",
                        format!("Invalid JSON at line {line} column {column}"),
                    )]));
                }
                Err(JsonError::DuplicateKey { path }) => {
                    let loc: Vec<&str> = std::iter::once("body").chain(path.iter().map(String::as_str)).collect();
                    return Err(ApiError::validation(vec![FieldError::new(
                        &loc,
                        "duplicate_key",
                        "A key appears more than once in this JSON object",
                    )]));
                }
            };
            read_object::<B::Value>(object).map(Body).map_err(ApiError::validation)
        })
    }
}

/// Why a request body could not be received.
pub(crate) struct Unreceived {
    /// The answer.
    pub error: ApiError,
    /// What is left of the body. The caller keeps it alive until the answer is sent: the HTTP
    /// server then closes the connection instead of reading (draining) the rest of a body that
    /// may never end.
    pub rest: Payload,
}

impl std::fmt::Debug for Unreceived {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Unreceived").field("error", &self.error).finish_non_exhaustive()
    }
}

/// Receives the whole body of a request that has one, within `settings` (size, then time from
/// now), and puts it back as an in-memory payload. Every request goes through here before
/// routing, so that no handler — even one that ignores bodies — leaves a slow body to the
/// server, which would wait for its end without a deadline.
pub(crate) async fn receive_body(
    req: &mut actix_web::dev::ServiceRequest,
    settings: BodySettings,
) -> Result<(), Unreceived> {
    use actix_web::HttpMessage;

    let headers = req.headers();
    let declared_length = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.trim().parse::<u64>().ok());
    let chunked = headers.contains_key(header::TRANSFER_ENCODING);
    if !chunked && declared_length.is_none_or(|length| length == 0) {
        return Ok(());
    }
    let mut payload = req.take_payload();
    // Refuse a declared oversize body before reading any of it.
    if declared_length.is_some_and(|length| length > settings.limit as u64) {
        return Err(Unreceived { error: ApiError::payload_too_large(settings.limit), rest: payload });
    }
    let mut bytes = BytesMut::new();
    let receive = async {
        while let Some(chunk) = payload.next().await {
            let chunk = chunk.map_err(|_| ApiError::unreadable_body())?;
            if bytes.len() + chunk.len() > settings.limit {
                return Err(ApiError::payload_too_large(settings.limit));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(())
    };
    let received = actix_web::rt::time::timeout(settings.timeout, receive)
        .await
        .unwrap_or_else(|_| Err(ApiError::request_timeout(settings.timeout)));
    match received {
        Ok(()) => {
            req.set_payload(Payload::from(bytes.freeze()));
            Ok(())
        }
        Err(error) => Err(Unreceived { error, rest: payload }),
    }
}

/// `application/json`, with or without parameters such as `charset`.
fn is_json(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|essence| essence.trim().eq_ignore_ascii_case("application/json"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_types() {
        assert!(is_json("application/json"));
        assert!(is_json("Application/JSON; charset=utf-8"));
        assert!(!is_json("text/plain"));
        assert!(!is_json("application/jsonx"));
    }
}
