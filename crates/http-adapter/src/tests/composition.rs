//! The API mounted next to a scope of another kind (a console): each keeps its own bodies and
//! headers, and both get request ids, access logs and request metrics.

use actix_web::middleware::from_fn;
use actix_web::{App, HttpResponse, web};

use super::*;
use crate::request_context;

/// A console-like scope: HTML with its own security header, its own 404 page and a plain-text
/// error, none of which the API may rewrite.
pub(super) fn console(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/console")
            .route(
                "",
                web::get().to(|| async {
                    HttpResponse::Ok()
                        .content_type("text/html; charset=utf-8")
                        .insert_header(("Content-Security-Policy", "default-src 'self'"))
                        .body("<h1>Rosetta</h1>")
                }),
            )
            .route(
                "/broken",
                web::get().to(|| async { HttpResponse::BadRequest().content_type("text/plain").body("no") }),
            )
            .default_service(web::to(|| async {
                HttpResponse::NotFound().content_type("text/html; charset=utf-8").body("<p>no such page</p>")
            })),
    );
}

async fn composed() -> impl Service<Request, Response = ServiceResponse<BoxBody>, Error = actix_web::Error> {
    let api = Api::new(Mocks::default().into_services().shared(), &settings(), metrics_handle()).expect("api");
    test::init_service(App::new().configure(console).configure(|cfg| api.configure(cfg)).wrap(from_fn(request_context)))
        .await
}

#[actix_web::test]
async fn a_mounted_scope_keeps_its_own_bodies_and_headers() {
    let app = composed().await;

    let page = send(&app, TestRequest::get().uri("/console").insert_header(("X-Request-Id", "console-1"))).await;
    assert_eq!(page.status, StatusCode::OK);
    assert_eq!(page.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(page.header("content-security-policy"), Some("default-src 'self'"));
    assert_eq!(page.header("x-request-id"), Some("console-1"));
    assert_eq!(page.text(), "<h1>Rosetta</h1>");

    let missing = send(&app, TestRequest::get().uri("/console/no-such-page")).await;
    assert_eq!((missing.status, missing.text().as_str()), (StatusCode::NOT_FOUND, "<p>no such page</p>"));
    assert!(missing.header("x-request-id").is_some(), "request ids cover every mount");
    let broken = send(&app, TestRequest::get().uri("/console/broken")).await;
    assert_eq!((broken.status, broken.header("content-type")), (StatusCode::BAD_REQUEST, Some("text/plain")));
    assert_eq!(broken.text(), "no");

    // The API around it still answers with its error body, everywhere it is the answerer.
    send(&app, TestRequest::get().uri("/nowhere")).await.assert_error(StatusCode::NOT_FOUND, "NotFound");
    send(&app, TestRequest::get().uri("/api/v1/sources")).await.assert_error(StatusCode::UNAUTHORIZED, "Unauthorized");
    let wrong = send(&app, TestRequest::post().uri("/health")).await;
    wrong.assert_error(StatusCode::METHOD_NOT_ALLOWED, "MethodNotAllowed");
    let live = send(&app, TestRequest::get().uri("/health")).await;
    assert_eq!(live.status, StatusCode::OK);

    let metrics = send(&app, TestRequest::get().uri("/metrics")).await.text();
    assert!(
        metrics.lines().any(|line| line.starts_with("http_requests_total{")
            && line.contains(r#"route="/console""#)
            && line.contains(r#"status="200""#)),
        "the console's requests are counted: {metrics}"
    );
}
