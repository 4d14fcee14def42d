//! The resource handlers. Each one parses its input, calls one inbound port method and maps the
//! result; everything else lives in the extractors, the DTOs and the error mapping.

pub(crate) mod destinations;
pub(crate) mod meta;
pub(crate) mod pipelines;
pub(crate) mod sources;
pub(crate) mod wal;

use actix_web::http::header::{self, HeaderName};
use actix_web::{HttpRequest, HttpResponse};
use rosetta_domain::{Page, PageRequest};
use serde::Serialize;

/// The header carrying the total number of items of a list.
pub(crate) const TOTAL_COUNT: HeaderName = HeaderName::from_static("x-total-count");

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
