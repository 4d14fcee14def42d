//! The API, one module per resource: its response bodies, its write bodies, queries and paths
//! (each declared once, see [`crate::input`]) and its handlers. A handler parses its input,
//! calls one inbound port method and maps the result.

pub(crate) mod alerts;
pub(crate) mod channels;
pub(crate) mod destinations;
pub(crate) mod health;
pub(crate) mod meta;
pub(crate) mod pipelines;
pub(crate) mod slots;
pub(crate) mod source_operations;
pub(crate) mod sources;
pub(crate) mod wal;

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse};
use chrono::SecondsFormat;
use rosetta_domain::{Page, PageLimit, PageRequest, Timestamp};
use rosetta_ports::inbound::DeleteMode;
use serde::Serialize;
use serde_json::json;

use crate::input::query::{QueryFields, QueryInput, described_query};
use crate::input::values::Skip;

/// The header carrying the total number of items of a list.
pub(crate) const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

/// RFC 3339 in UTC with microseconds and `Z`, e.g. `2026-01-14T10:06:33.454666Z`.
pub(crate) fn timestamp(at: Timestamp) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

/// `201 Created` with the new entity and its `Location`.
fn created(req: &HttpRequest, id: i64, body: impl Serialize) -> HttpResponse {
    let location = format!("{}/{id}", req.path().trim_end_matches('/'));
    HttpResponse::Created().insert_header((header::LOCATION, location)).json(body)
}

/// `200` with one page as a JSON array, `X-Total-Count` and a `Link` header pointing at the
/// neighbouring pages (same path, `skip`/`limit` set).
fn page<T, B: Serialize>(
    req: &HttpRequest,
    request: PageRequest,
    page: Page<T>,
    body: impl Fn(T) -> B,
) -> HttpResponse {
    let limit = u64::from(request.limit.get());
    let link = |skip: u64, rel: &str| format!("<{}?skip={skip}&limit={limit}>; rel=\"{rel}\"", req.path());
    let mut links = Vec::with_capacity(2);
    if page.has_next(request) {
        links.push(link(request.skip.saturating_add(limit), "next"));
    }
    if request.skip > 0 {
        // Past the end, "prev" is the last page rather than another empty one.
        let last_page = page.total.saturating_sub(1) / limit * limit;
        links.push(link(request.skip.saturating_sub(limit).min(last_page), "prev"));
    }
    let mut response = HttpResponse::Ok();
    response.insert_header((TOTAL_COUNT, page.total));
    if !links.is_empty() {
        response.insert_header((header::LINK, links.join(", ")));
    }
    response.json(page.items.into_iter().map(body).collect::<Vec<_>>())
}

/// The query of a list: `skip` and `limit`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ListQuery(pub PageRequest);

impl QueryInput for ListQuery {
    fn read(q: &mut QueryFields) -> Option<Self> {
        let skip = q.defaulted("skip", "How many items to skip (≥ 0).", Skip(0), json!(0));
        let limit = q.defaulted(
            "limit",
            "How many items to return at most (1–1000).",
            PageLimit::DEFAULT,
            json!(PageLimit::DEFAULT.get()),
        );
        Some(Self(PageRequest { skip: skip?.0, limit: limit? }))
    }
}

/// The query of a source or destination delete.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DeleteQuery(pub DeleteMode);

impl QueryInput for DeleteQuery {
    fn read(q: &mut QueryFields) -> Option<Self> {
        let cascade = q.defaulted(
            "cascade",
            "Also delete the pipelines that use the entity (and their metadata), in the same transaction. \
             Without it, a delete of an entity in use is refused with 409.",
            false,
            json!(false),
        )?;
        Some(Self(if cascade { DeleteMode::Cascade } else { DeleteMode::Restrict }))
    }
}

described_query!(ListQuery, DeleteQuery);

/// Declares a path of one id segment: `$name { id }` read from `{$segment}`.
macro_rules! id_path {
    ($(#[$meta:meta])* $name:ident($id:ty), $segment:literal, $description:literal) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy)]
        pub(crate) struct $name(pub $id);

        impl $crate::input::path::PathInput for $name {
            fn read(p: &mut $crate::input::path::PathFields<'_>) -> Option<Self> {
                p.segment($segment, $description).map(Self)
            }
        }

        $crate::input::path::described_path!($name);
    };
}
pub(crate) use id_path;
