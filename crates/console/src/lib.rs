//! Rosetta's operator console, served at `/console` by the same binary as the API.
//!
//! An inbound adapter of its own: a single-page app (one HTML page, a stylesheet, vanilla
//! JavaScript) embedded in the binary with `include_str!` — no CDN, no build step, nothing to
//! deploy beside the server, usable offline. Its script calls the HTTP API like any other
//! client, with the API key the operator signs in with (kept in `sessionStorage`, sent as
//! `Authorization: Bearer`), so it sees exactly what the API allows, with the API's validation
//! messages, and never reaches the database. Static pages rather than server-rendered
//! templates for that reason: a template would need the key on the server side (a cookie
//! session, and CSRF defences with it) to render data the API already serves.
//!
//! Every response of the scope carries the security headers of [`SECURITY_HEADERS`]: a strict
//! Content-Security-Policy (no inline script or style, nothing from another origin), `nosniff`,
//! no referrer, no framing.

use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpResponse, web};

const INDEX: &str = include_str!("../assets/index.html");
const SCRIPT: &str = include_str!("../assets/app.js");
const STYLE: &str = include_str!("../assets/app.css");
const ICON: &str = include_str!("../assets/favicon.svg");

/// The Content-Security-Policy of every console response. Charts arrive as SVG fetched with the
/// key and shown from a `blob:` URL (an `<img>` cannot send the header), hence `img-src blob:`;
/// an SVG shown through `<img>` runs no script.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
     img-src 'self' blob:; connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; \
     form-action 'self'; frame-ancestors 'none'";

/// The headers every console response carries.
pub const SECURITY_HEADERS: [(&str, &str); 6] = [
    ("Content-Security-Policy", CONTENT_SECURITY_POLICY),
    ("X-Content-Type-Options", "nosniff"),
    ("Referrer-Policy", "no-referrer"),
    ("X-Frame-Options", "DENY"),
    ("Cross-Origin-Opener-Policy", "same-origin"),
    ("Cache-Control", "no-cache"),
];

/// The console for an API served under `api_prefix` (e.g. `/api/v1`).
#[derive(Debug, Clone)]
pub struct Console {
    index: String,
}

/// Why a console cannot be built.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidApiPrefix;

impl std::fmt::Display for InvalidApiPrefix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the API prefix must be a path of letters, digits, '-', '_', '.' and '/'")
    }
}

impl std::error::Error for InvalidApiPrefix {}

impl Console {
    /// The console of the API at `api_prefix`, which its page names for the script (in a
    /// `<meta>` element: the policy allows no inline script). Errors: a prefix that is not a
    /// plain path (it is written into HTML).
    pub fn new(api_prefix: &str) -> Result<Self, InvalidApiPrefix> {
        let plain = api_prefix.starts_with('/')
            && api_prefix.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_' | '.'));
        if !plain {
            return Err(InvalidApiPrefix);
        }
        Ok(Self { index: INDEX.replace("{{API_PREFIX}}", api_prefix) })
    }

    /// Registers the `/console` scope; register it before the API (whose catch-all answers
    /// every path nothing else serves).
    pub fn configure(&self, cfg: &mut web::ServiceConfig) {
        let index = web::Data::new(self.index.clone());
        let mut headers = DefaultHeaders::new();
        for (name, value) in SECURITY_HEADERS {
            headers = headers.add((name, value));
        }
        cfg.service(
            web::scope("/console")
                .app_data(index)
                .wrap(headers)
                .route("", web::get().to(page))
                .route("/", web::get().to(page))
                .route("/app.js", web::get().to(|| asset("text/javascript; charset=utf-8", SCRIPT)))
                .route("/app.css", web::get().to(|| asset("text/css; charset=utf-8", STYLE)))
                .route("/favicon.svg", web::get().to(|| asset("image/svg+xml", ICON)))
                .default_service(web::to(not_found)),
        );
    }
}

async fn page(index: web::Data<String>) -> HttpResponse {
    HttpResponse::Ok().content_type("text/html; charset=utf-8").body(index.get_ref().clone())
}

async fn asset(content_type: &'static str, body: &'static str) -> HttpResponse {
    HttpResponse::Ok().insert_header((header::CONTENT_TYPE, HeaderValue::from_static(content_type))).body(body)
}

async fn not_found() -> HttpResponse {
    HttpResponse::NotFound()
        .content_type("text/html; charset=utf-8")
        .body("<!doctype html><title>Not found</title><p>No such page. <a href=\"/console\">Open the console</a>.</p>")
}

#[cfg(test)]
mod tests {
    use actix_web::App;
    use actix_web::test as web_test;

    use super::*;

    #[actix_web::test]
    async fn every_response_carries_the_security_headers_and_the_page_names_the_api() {
        let console = Console::new("/api/v1").unwrap();
        let app = web_test::init_service(App::new().configure(|cfg| console.configure(cfg))).await;
        for (path, status, content_type) in [
            ("/console", 200, "text/html; charset=utf-8"),
            ("/console/", 200, "text/html; charset=utf-8"),
            ("/console/app.js", 200, "text/javascript; charset=utf-8"),
            ("/console/app.css", 200, "text/css; charset=utf-8"),
            ("/console/favicon.svg", 200, "image/svg+xml"),
            ("/console/nothing-here", 404, "text/html; charset=utf-8"),
        ] {
            let response = web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request()).await;
            assert_eq!(response.status().as_u16(), status, "{path}");
            let headers = response.headers();
            assert_eq!(headers.get("content-type").unwrap(), content_type, "{path}");
            for (name, value) in SECURITY_HEADERS {
                assert_eq!(headers.get(name).and_then(|v| v.to_str().ok()), Some(value), "{path}: {name}");
            }
        }
        let page = web_test::call_and_read_body(&app, web_test::TestRequest::get().uri("/console").to_request()).await;
        let page = String::from_utf8(page.to_vec()).unwrap();
        assert!(page.contains(r#"<meta name="rosetta-api" content="/api/v1">"#), "{page}");
        assert!(!page.contains("<script>") && !page.contains(" style="), "no inline script or style: {page}");
    }

    #[test]
    fn a_prefix_that_is_not_a_plain_path_is_refused() {
        assert_eq!(Console::new("/api\"><script>").unwrap_err(), InvalidApiPrefix);
        assert_eq!(Console::new("api").unwrap_err(), InvalidApiPrefix);
        assert!(Console::new("/rosetta/api/v2").is_ok());
    }
}
