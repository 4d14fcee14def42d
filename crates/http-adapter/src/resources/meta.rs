//! `GET /openapi.json`, `GET /docs` and `GET /metrics`.

use std::sync::Arc;

use actix_web::http::header::ContentType;
use actix_web::web::Bytes;
use actix_web::{HttpResponse, ResponseError, get, web};

use crate::RenderMetrics;
use crate::error::ApiError;

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
pub(crate) async fn metrics(render: web::Data<MetricsText>) -> HttpResponse {
    // Off the worker thread: at thousands of sources the text is megabytes.
    let render = Arc::clone(&render.0);
    match web::block(move || render()).await {
        Ok(text) => HttpResponse::Ok().content_type("text/plain; version=0.0.4; charset=utf-8").body(text),
        Err(error) => {
            tracing::error!(error = %error, "rendering the metrics failed");
            ApiError::internal().error_response()
        }
    }
}

/// What `/metrics` serves.
pub(crate) struct MetricsText(pub RenderMetrics);

/// The Swagger UI page, served from the binary (no CDN); it loads `/openapi.json`. Its files
/// live under `/docs/`, which the page names as its base, so `/docs` and `/docs/` both work.
#[utoipa::path(
    tag = "meta",
    responses((status = 200, description = "The interactive API documentation", content_type = "text/html", body = String))
)]
#[get("/docs")]
pub(crate) async fn docs(page: web::Data<DocsPage>) -> HttpResponse {
    HttpResponse::Ok().content_type(ContentType::html()).body(page.0.clone())
}

/// The UI's index page with `<base href="/docs/">`, built once at start-up.
#[derive(Debug, Clone)]
pub(crate) struct DocsPage(pub Bytes);

impl DocsPage {
    /// The page for a UI whose files are served under `/docs/` and that loads `/openapi.json`.
    pub(crate) fn new(config: std::sync::Arc<utoipa_swagger_ui::Config<'static>>) -> std::io::Result<Self> {
        let index = utoipa_swagger_ui::serve("index.html", config)
            .map_err(|error| std::io::Error::other(error.to_string()))?
            .ok_or_else(|| std::io::Error::other("the Swagger UI has no index.html"))?;
        let html = String::from_utf8_lossy(&index.bytes).replacen("<head>", "<head>\n    <base href=\"/docs/\">", 1);
        Ok(Self(Bytes::from(html)))
    }
}
