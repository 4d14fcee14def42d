//! Path and query parameters, parsed strictly and reported all at once in the error body.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use rosetta_domain::{PageLimit, PageRequest};
use rosetta_ports::inbound::DeleteMode;
use utoipa::IntoParams;
use validator::{Validate, ValidationErrors};

use crate::error::{ApiError, FieldError};

const INT_PARSING: &str = "Input should be a valid integer, unable to parse string as an integer";

/// The `{id}` segment of a path, as the id type `T`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id<T>(pub T);

impl<T: From<i64>> FromRequest for Id<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let parsed = req.match_info().get("id").and_then(|raw| raw.parse::<i64>().ok());
        ready(
            parsed.map(|raw| Id(T::from(raw))).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(&["path", "id"], "int_parsing", INT_PARSING)])
            }),
        )
    }
}

/// The query parameters of a list. Its shape (bounds) is checked by `validator`, then it becomes
/// the domain's [`PageRequest`].
#[derive(Debug, Clone, Copy, Validate, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ListQuery {
    /// How many items to skip (≥ 0).
    #[validate(range(min = 0))]
    #[param(minimum = 0, default = 0, required = false)]
    skip: i64,
    /// How many items to return at most (1–1000).
    #[validate(range(min = 1, max = 1000))]
    #[param(minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: i64,
}

/// The page a list asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Paging(pub PageRequest);

impl FromRequest for Paging {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_paging(req.query_string()).map(Paging).map_err(ApiError::validation))
    }
}

fn parse_paging(query: &str) -> Result<PageRequest, Vec<FieldError>> {
    let pairs = query_pairs(query);
    let integer = |name: &str, default: i64| match last_value(&pairs, name) {
        None => Ok(default),
        Some(raw) => raw.parse::<i64>().map_err(|_| query_error(name, "int_parsing", INT_PARSING)),
    };
    let (skip, limit) = (integer("skip", 0), integer("limit", i64::from(PageLimit::DEFAULT.get())));
    // A value that did not parse is replaced by one in range, so that it is reported only once.
    let query = ListQuery { skip: skip.as_ref().copied().unwrap_or(0), limit: limit.as_ref().copied().unwrap_or(1) };
    let shape = query.validate().err();
    let problems: Vec<FieldError> = [("skip", skip), ("limit", limit)]
        .into_iter()
        .filter_map(|(name, parsed)| match parsed {
            Err(problem) => Some(problem),
            Ok(value) => shape.as_ref().and_then(|errors| range_problem(errors, name, value)),
        })
        .collect();
    if !problems.is_empty() {
        return Err(problems);
    }
    // The domain owns the page size; the conversions cannot fail once the shape is valid.
    let skip = u64::try_from(query.skip).map_err(|_| vec![query_error("skip", "greater_than_equal", ge(0))])?;
    let limit = u32::try_from(query.limit)
        .map_err(|_| vec![query_error("limit", "less_than_equal", le(PageLimit::MAX.into()))])
        .and_then(|limit| {
            PageLimit::new(limit).map_err(|invalid| vec![query_error("limit", invalid.kind.code(), invalid.message)])
        })?;
    Ok(PageRequest { skip, limit })
}

fn range_problem(errors: &ValidationErrors, name: &str, value: i64) -> Option<FieldError> {
    let error = errors.field_errors().get(name)?.first()?;
    let bound = |key: &str| error.params.get(key).and_then(serde_json::Value::as_f64).map(|bound| bound as i64);
    match (bound("min"), bound("max")) {
        (Some(min), _) if value < min => Some(query_error(name, "greater_than_equal", ge(min))),
        (_, Some(max)) => Some(query_error(name, "less_than_equal", le(max))),
        _ => Some(query_error(name, "value_error", "Input is out of range")),
    }
}

fn ge(bound: i64) -> String {
    format!("Input should be greater than or equal to {bound}")
}

fn le(bound: i64) -> String {
    format!("Input should be less than or equal to {bound}")
}

/// The query parameters of a source or destination delete.
#[derive(Debug, Clone, Copy, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DeleteQuery {
    /// Also delete the pipelines that use the entity (and their metadata), in the same
    /// transaction. Without it, a delete of an entity in use is refused with 409.
    #[param(default = false, required = false)]
    cascade: bool,
}

/// How a delete treats pipelines that still use the entity.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Cascade(pub DeleteMode);

impl FromRequest for Cascade {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let pairs = query_pairs(req.query_string());
        let parsed = match last_value(&pairs, "cascade") {
            None | Some("false") => Ok(DeleteQuery { cascade: false }),
            Some("true") => Ok(DeleteQuery { cascade: true }),
            Some(_) => Err(ApiError::validation(vec![query_error(
                "cascade",
                "bool_parsing",
                "Input should be a valid boolean: 'true' or 'false'",
            )])),
        };
        ready(parsed.map(|query| Cascade(if query.cascade { DeleteMode::Cascade } else { DeleteMode::Restrict })))
    }
}

fn query_error(name: &str, kind: &str, msg: impl Into<String>) -> FieldError {
    FieldError::new(&["query", name], kind, msg)
}

/// The decoded `name=value` pairs of a query string; undecodable input yields no pairs (and so
/// the defaults), since unknown parameters are ignored anyway.
fn query_pairs(query: &str) -> Vec<(String, String)> {
    actix_web::web::Query::<Vec<(String, String)>>::from_query(query)
        .map(|query| query.into_inner())
        .unwrap_or_default()
}

/// The last value of a repeated parameter, as most frameworks do.
fn last_value<'a>(pairs: &'a [(String, String)], name: &str) -> Option<&'a str> {
    pairs.iter().rev().find(|(key, _)| key == name).map(|(_, value)| value.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(query: &str) -> Vec<(String, String, String)> {
        parse_paging(query).unwrap_err().into_iter().map(|p| (p.loc.join("."), p.kind, p.msg)).collect::<Vec<_>>()
    }

    #[test]
    fn defaults_and_values() {
        assert_eq!(parse_paging("").unwrap(), PageRequest::default());
        let page = parse_paging("skip=5&limit=1000&other=x").unwrap();
        assert_eq!((page.skip, page.limit.get()), (5, 1000));
    }

    #[test]
    fn every_bad_parameter_is_reported() {
        assert_eq!(
            problems("skip=-1&limit=0"),
            [
                ("query.skip".into(), "greater_than_equal".into(), ge(0)),
                ("query.limit".into(), "greater_than_equal".into(), ge(1)),
            ]
        );
        assert_eq!(problems("limit=1001"), [("query.limit".into(), "less_than_equal".into(), le(1000))]);
        assert_eq!(
            problems("skip=abc&limit=5000"),
            [
                ("query.skip".into(), "int_parsing".into(), INT_PARSING.into()),
                ("query.limit".into(), "less_than_equal".into(), le(1000)),
            ]
        );
        assert_eq!(problems("limit="), [("query.limit".into(), "int_parsing".into(), INT_PARSING.into())]);
    }
}
