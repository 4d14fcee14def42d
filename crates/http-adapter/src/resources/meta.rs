//! `GET /openapi.json` and `GET /metrics`.

use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, get, web};
use metrics_exporter_prometheus::PrometheusHandle;

/// The OpenAPI document, serialized once at start-up.
#[derive(Debug, Clone)]
pub(crate) struct OpenApiJson(pub Bytes);

/// The OpenAPI 3.1 document of this API.
#[utoipa::path(
    tag = "meta",
    responses((status = 200, description = "The OpenAPI document", content_type = "application/json", body = Object))
)]
#[get("/openapi.json")]
pub(crate) async fn openapi_json(document: web::Data<OpenApiJson>) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::json()).body(document.0.clone())
}

/// Prometheus metrics in the text exposition format.
#[utoipa::path(
    tag = "meta",
    responses((status = 200, description = "Metrics", content_type = "text/plain; version=0.0.4", body = String))
)]
#[get("/metrics")]
pub(crate) async fn metrics(handle: web::Data<PrometheusHandle>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(handle.render())
}
