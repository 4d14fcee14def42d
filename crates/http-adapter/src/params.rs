//! Path and query parameters, parsed strictly and reported all at once in the error body.

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpRequest};
use chrono::{DateTime, Utc};
use rosetta_domain::{PageLimit, PageRequest, SourceId, Timestamp};
use rosetta_ports::inbound::DeleteMode;
use rosetta_ports::wal::{SystemHistoryQuery, WalHistoryQuery};
use utoipa::IntoParams;
use validator::{Validate, ValidationErrors};

use crate::error::{ApiError, FieldError};

const INT_PARSING: &str = "Input should be a valid integer, unable to parse string as an integer";
const DATETIME_PARSING: &str = "Input should be an RFC 3339 date-time with an offset, e.g. 2026-01-14T10:06:33Z";

/// The one `{…}` segment of a path (`{id}`, `{source_id}`), as the id type `T`. A bad value is
/// reported under the segment's own name, so one extractor serves every route with one id.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Id<T>(pub T);

impl<T: From<i64>> FromRequest for Id<T> {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let segment = req.match_info().iter().next();
        let parsed = segment.and_then(|(_, raw)| raw.parse::<i64>().ok());
        let name = segment.map_or("id", |(name, _)| name);
        ready(
            parsed.map(|raw| Id(T::from(raw))).ok_or_else(|| {
                ApiError::validation(vec![FieldError::new(&["path", name], "int_parsing", INT_PARSING)])
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

/// The query parameters of `GET /metrics/wal`, as documented; read by [`WalHistory`].
#[derive(Debug, Clone, Copy, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "a parameter list for OpenAPI only: `WalHistory` reads the query")]
pub(crate) struct WalHistoryParams {
    /// Only this source. A source that does not exist yields an empty list, not a 404.
    #[param(required = false)]
    source_id: Option<i64>,
    /// Only rows recorded at or after this instant: RFC 3339 with an offset, e.g.
    /// `2026-01-14T10:00:00Z` (send `+` as `%2B`). Not after `to`.
    #[param(value_type = Option<String>, format = DateTime, required = false)]
    from: Option<Timestamp>,
    /// Only rows recorded at or before this instant: RFC 3339 with an offset.
    #[param(value_type = Option<String>, format = DateTime, required = false)]
    to: Option<Timestamp>,
    /// How many rows to return at most (1–1000), newest first.
    #[param(minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: i64,
}

/// The query parameters of `GET /metrics/system`, as documented; read by [`SystemHistory`].
#[derive(Debug, Clone, Copy, IntoParams)]
#[into_params(parameter_in = Query)]
#[expect(dead_code, reason = "a parameter list for OpenAPI only: `SystemHistory` reads the query")]
pub(crate) struct SystemHistoryParams {
    /// Only samples taken at or after this instant: RFC 3339 with an offset, e.g.
    /// `2026-01-14T10:00:00Z` (send `+` as `%2B`). Not after `to`.
    #[param(value_type = Option<String>, format = DateTime, required = false)]
    from: Option<Timestamp>,
    /// Only samples taken at or before this instant: RFC 3339 with an offset.
    #[param(value_type = Option<String>, format = DateTime, required = false)]
    to: Option<Timestamp>,
    /// How many samples to return at most (1–1000), newest first.
    #[param(minimum = 1, maximum = 1000, default = 100, required = false)]
    limit: i64,
}

/// The WAL history a request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct WalHistory(pub WalHistoryQuery);

impl FromRequest for WalHistory {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_wal_history(req.query_string()).map(WalHistory).map_err(ApiError::validation))
    }
}

/// The host history a request asks for.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SystemHistory(pub SystemHistoryQuery);

impl FromRequest for SystemHistory {
    type Error = ApiError;
    type Future = Ready<Result<Self, ApiError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(parse_system_history(req.query_string()).map(SystemHistory).map_err(ApiError::validation))
    }
}

fn parse_wal_history(query: &str) -> Result<WalHistoryQuery, Vec<FieldError>> {
    let pairs = query_pairs(query);
    let source_id = match last_value(&pairs, "source_id") {
        None => Ok(None),
        Some(raw) => raw
            .parse::<i64>()
            .map(|id| Some(SourceId::new(id)))
            .map_err(|_| query_error("source_id", "int_parsing", INT_PARSING)),
    };
    match (source_id, parse_window(&pairs)) {
        (Ok(source_id), Ok(Window { from, to, limit })) => Ok(WalHistoryQuery { source_id, from, to, limit }),
        (source_id, window) => Err(source_id.err().into_iter().chain(window.err().into_iter().flatten()).collect()),
    }
}

fn parse_system_history(query: &str) -> Result<SystemHistoryQuery, Vec<FieldError>> {
    let Window { from, to, limit } = parse_window(&query_pairs(query))?;
    Ok(SystemHistoryQuery { from, to, limit })
}

/// The time range and size shared by both history queries.
struct Window {
    from: Option<Timestamp>,
    to: Option<Timestamp>,
    limit: PageLimit,
}

/// `from`, `to` and `limit`, every problem reported (in that order).
fn parse_window(pairs: &[(String, String)]) -> Result<Window, Vec<FieldError>> {
    let (from, to, limit) = (parse_instant(pairs, "from"), parse_instant(pairs, "to"), parse_limit(pairs));
    let mut problems = Vec::new();
    match (&from, &to) {
        // An empty range is a mistake worth naming rather than an empty answer; both ends are
        // reported, since either may be the wrong one.
        (Ok(Some(start)), Ok(Some(end))) if start > end => {
            problems.push(query_error("from", "value_error", "must not be after 'to'"));
            problems.push(query_error("to", "value_error", "must not be before 'from'"));
        }
        _ => {}
    }
    match (from, to, limit) {
        (Ok(from), Ok(to), Ok(limit)) if problems.is_empty() => Ok(Window { from, to, limit }),
        (from, to, limit) => {
            let parse_problems = [from.err(), to.err()].into_iter().flatten();
            Err(parse_problems.chain(problems).chain(limit.err()).collect())
        }
    }
}

/// An optional RFC 3339 instant. The offset is required: a local time would mean a different
/// instant on every server.
fn parse_instant(pairs: &[(String, String)], name: &str) -> Result<Option<Timestamp>, FieldError> {
    let Some(raw) = last_value(pairs, name) else { return Ok(None) };
    DateTime::parse_from_rfc3339(raw)
        .or_else(|error| match unencoded_plus_offset(raw) {
            // `+02:00` sent without percent-encoding arrives as ` 02:00` (form decoding turns
            // `+` into a space); no valid instant ends that way, so the intent is unambiguous.
            Some(repaired) => DateTime::parse_from_rfc3339(&repaired),
            None => Err(error),
        })
        .map(|instant| Some(instant.with_timezone(&Utc)))
        .map_err(|_| query_error(name, "datetime_parsing", DATETIME_PARSING))
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

/// `limit` (default 100), with the same words as a list's `limit`; the domain owns the bounds.
fn parse_limit(pairs: &[(String, String)]) -> Result<PageLimit, FieldError> {
    let Some(raw) = last_value(pairs, "limit") else { return Ok(PageLimit::DEFAULT) };
    let value = raw.parse::<i64>().map_err(|_| query_error("limit", "int_parsing", INT_PARSING))?;
    u32::try_from(value).ok().and_then(|limit| PageLimit::new(limit).ok()).ok_or_else(|| {
        if value < 1 {
            query_error("limit", "greater_than_equal", ge(1))
        } else {
            query_error("limit", "less_than_equal", le(PageLimit::MAX.into()))
        }
    })
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

    #[test]
    fn instants_need_an_offset_and_survive_an_unencoded_plus() {
        let instant = |query: &str| parse_instant(&query_pairs(query), "from").map(|at| at.map(|at| at.to_rfc3339()));
        assert_eq!(instant("").unwrap(), None);
        for (query, utc) in [
            ("from=2026-01-14T10:00:00Z", "2026-01-14T10:00:00+00:00"),
            ("from=2026-01-14T10:00:00.5%2B02:00", "2026-01-14T08:00:00.500+00:00"),
            ("from=2026-01-14T10:00:00+02:00", "2026-01-14T08:00:00+00:00"),
            ("from=2026-01-14T10:00:00-05:30", "2026-01-14T15:30:00+00:00"),
        ] {
            assert_eq!(instant(query).unwrap().as_deref(), Some(utc), "{query}");
        }
        for bad in ["from=2026-01-14T10:00:00", "from=2026-01-14", "from=", "from=now", "from=2026-01-14T10:00:00+2:00"]
        {
            assert_eq!(instant(bad).unwrap_err().kind, "datetime_parsing", "{bad}");
        }
        assert_eq!(unencoded_plus_offset("x 02:00").as_deref(), Some("x+02:00"));
        assert_eq!(unencoded_plus_offset(" 02:00").as_deref(), Some("+02:00"));
        for untouched in ["x+02:00", "x 2:00", "x 02-00", "x 0a:00", "02:00", "é 02:0"] {
            assert_eq!(unencoded_plus_offset(untouched), None, "{untouched}");
        }
    }
}
