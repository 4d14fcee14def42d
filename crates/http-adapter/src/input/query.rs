//! Query strings: declared once as a function over [`QueryFields`], which reads a request
//! (reporting every problem at once) or describes the parameters for the OpenAPI document.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use serde_json::Value;
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{RefOr, Required};

use super::{Problem, TextInput};
use crate::error::{ApiError, FieldError};

/// A query: how it is read from (and described as) query parameters. Unknown parameters are
/// ignored; a repeated one counts with its last value.
pub(crate) trait QueryInput: Sized + 'static {
    /// Reads every parameter, recording each problem; `None` when one is invalid, and always in
    /// describe mode.
    fn read(fields: &mut QueryFields) -> Option<Self>;
}

/// Implements `utoipa::IntoParams` for a [`QueryInput`] from its one declaration.
macro_rules! described_query {
    ($($name:ty),*) => {$(
        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $crate::input::query::describe::<$name>()
            }
        }
    )*};
}
pub(crate) use described_query;

/// The parameters of query `Q`.
pub(crate) fn describe<Q: QueryInput>() -> Vec<Parameter> {
    let mut fields = QueryFields { mode: Mode::Describe { parameters: Vec::new() } };
    let _ = Q::read(&mut fields);
    match fields.mode {
        Mode::Describe { parameters } => parameters,
        Mode::Read { .. } => unreachable!("describe mode stays describe mode"),
    }
}

/// The parameters of one request being read, or a query being described.
pub(crate) struct QueryFields {
    mode: Mode,
}

impl std::fmt::Debug for QueryFields {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Read { .. } => "read",
            Mode::Describe { .. } => "describe",
        };
        f.debug_struct("QueryFields").field("mode", &mode).finish_non_exhaustive()
    }
}

enum Mode {
    Read { pairs: Vec<(String, String)>, problems: Vec<FieldError> },
    Describe { parameters: Vec<Parameter> },
}

impl QueryFields {
    /// A parameter that may be omitted.
    pub(crate) fn optional<T: TextInput>(&mut self, name: &'static str, description: &str) -> Option<T> {
        match &mut self.mode {
            Mode::Describe { parameters } => {
                parameters.push(parameter(name, description, T::schema(), None));
                None
            }
            Mode::Read { pairs, problems } => {
                let raw = pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())?;
                check(problems, name, T::parse(raw))
            }
        }
    }

    /// A parameter that takes `default` when omitted; `shown` is the default as documented.
    pub(crate) fn defaulted<T: TextInput>(
        &mut self,
        name: &'static str,
        description: &str,
        default: T,
        shown: Value,
    ) -> Option<T> {
        match &mut self.mode {
            Mode::Describe { parameters } => {
                parameters.push(parameter(name, description, T::schema(), Some(shown)));
                None
            }
            Mode::Read { pairs, problems } => {
                match pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str()) {
                    None => Some(default),
                    Some(raw) => check(problems, name, T::parse(raw)),
                }
            }
        }
    }
}

fn parameter(
    name: &str,
    description: &str,
    mut schema: utoipa::openapi::schema::Object,
    default: Option<Value>,
) -> Parameter {
    schema.default = default;
    ParameterBuilder::new()
        .name(name)
        .parameter_in(ParameterIn::Query)
        .required(Required::False)
        .description(Some(description))
        .schema(Some(RefOr::T(Schema::Object(schema))))
        .build()
}

fn check<T>(problems: &mut Vec<FieldError>, name: &str, result: Result<T, Problem>) -> Option<T> {
    result.map_err(|problem| problems.push(FieldError::new(&["query", name], problem.kind, problem.msg))).ok()
}

/// Reads query `Q` from a raw query string.
pub(crate) fn read_query<Q: QueryInput>(query: &str) -> Result<Q, Vec<FieldError>> {
    let pairs = actix_web::web::Query::<Vec<(String, String)>>::from_query(query).map_err(|_| {
        vec![FieldError::new(&["query"], "query_invalid", "The query string is not valid percent-encoded UTF-8")]
    })?;
    let mut fields = QueryFields { mode: Mode::Read { pairs: pairs.into_inner(), problems: Vec::new() } };
    let parsed = Q::read(&mut fields);
    let Mode::Read { problems, .. } = fields.mode else { unreachable!("read mode stays read mode") };
    match parsed {
        Some(query) if problems.is_empty() => Ok(query),
        _ => Err(problems),
    }
}

/// The query parameters of a request, read as `Q`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Query<Q>(pub Q);

impl<Q: QueryInput> FromRequest for Query<Q> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(read_query::<Q>(req.query_string()).map(Query).map_err(ApiError::validation))
    }
}
