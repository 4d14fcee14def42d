//! Path parameters, by name: declared once as a function over [`PathFields`], which reads the
//! matched segments or describes them for the OpenAPI document.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use utoipa::openapi::path::{Parameter, ParameterBuilder, ParameterIn};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::{RefOr, Required};

use super::TextInput;
use crate::error::{ApiError, FieldError};

/// The parameters of a route's path.
pub(crate) trait PathInput: Sized + 'static {
    /// Reads every segment by its name, recording each problem; `None` when one is invalid, and
    /// always in describe mode.
    fn read(fields: &mut PathFields<'_>) -> Option<Self>;
}

/// Implements `utoipa::IntoParams` for a [`PathInput`] from its one declaration.
macro_rules! described_path {
    ($($name:ty),*) => {$(
        impl utoipa::IntoParams for $name {
            fn into_params(
                _: impl Fn() -> Option<utoipa::openapi::path::ParameterIn>,
            ) -> Vec<utoipa::openapi::path::Parameter> {
                $crate::input::path::describe::<$name>()
            }
        }
    )*};
}
pub(crate) use described_path;

/// The parameters of path `P`.
pub(crate) fn describe<P: PathInput>() -> Vec<Parameter> {
    let mut fields = PathFields { mode: Mode::Describe { parameters: Vec::new() } };
    let _ = P::read(&mut fields);
    match fields.mode {
        Mode::Describe { parameters } => parameters,
        Mode::Read { .. } => unreachable!("describe mode stays describe mode"),
    }
}

/// The matched segments of one request, or a path being described.
pub(crate) struct PathFields<'r> {
    mode: Mode<'r>,
}

impl std::fmt::Debug for PathFields<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mode = match self.mode {
            Mode::Read { .. } => "read",
            Mode::Describe { .. } => "describe",
        };
        f.debug_struct("PathFields").field("mode", &mode).finish_non_exhaustive()
    }
}

enum Mode<'r> {
    Read { request: &'r HttpRequest, problems: Vec<FieldError> },
    Describe { parameters: Vec<Parameter> },
}

impl PathFields<'_> {
    /// The segment `{name}` of the route.
    pub(crate) fn segment<T: TextInput>(&mut self, name: &'static str, description: &str) -> Option<T> {
        match &mut self.mode {
            Mode::Describe { parameters } => {
                parameters.push(
                    ParameterBuilder::new()
                        .name(name)
                        .parameter_in(ParameterIn::Path)
                        .required(Required::True)
                        .description(Some(description))
                        .schema(Some(RefOr::T(Schema::Object(T::schema()))))
                        .build(),
                );
                None
            }
            Mode::Read { request, problems } => {
                let Some(raw) = request.match_info().get(name) else {
                    // A handler declared a segment its route does not have: a bug, not input.
                    tracing::error!(segment = name, route = ?request.match_pattern(), "path segment not in the route");
                    problems.push(FieldError::new(&["path", name], "missing", "Field required"));
                    return None;
                };
                T::parse(raw)
                    .map_err(|problem| problems.push(FieldError::new(&["path", name], problem.kind, problem.msg)))
                    .ok()
            }
        }
    }
}

/// The path parameters of a request, read as `P`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Path<P>(pub P);

impl<P: PathInput> FromRequest for Path<P> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let mut fields = PathFields { mode: Mode::Read { request: req, problems: Vec::new() } };
        let parsed = P::read(&mut fields);
        let Mode::Read { problems, .. } = fields.mode else { unreachable!("read mode stays read mode") };
        ready(match parsed {
            Some(path) if problems.is_empty() => Ok(Path(path)),
            _ => Err(ApiError::validation(problems)),
        })
    }
}
