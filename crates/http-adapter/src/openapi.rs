//! The OpenAPI 3.1 document: the paths collected from the registered handlers, plus what every
//! versioned route shares (security, 401/429/500/503 responses).

use actix_web::App;
use utoipa::OpenApi;
use utoipa::openapi::path::{Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, Content, Ref, RefOr, Response};
use utoipa_actix_web::AppExt;

use crate::app::register;

/// The document's fixed parts; the paths come from [`register`].
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Rosetta",
        description = "Control plane of PostgreSQL CDC pipelines: sources, destinations, pipelines and their \
                       lifecycle, and the WAL each source's replication slots make its disk keep. Every error \
                       answers with the one error body (`ErrorBody`)."
    ),
    tags(
        (name = "sources", description = "PostgreSQL databases to replicate from"),
        (name = "destinations", description = "Snowflake warehouses to replicate into"),
        (name = "pipelines", description = "Source → destination pipelines and their lifecycle"),
        (name = "wal-monitor", description = "WAL retained per source and slot (latest state and history), and \
                                              host CPU / memory / swap history"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document and Prometheus metrics"),
    )
)]
struct ApiDoc;

const BEARER: &str = "bearer";
const API_KEY: &str = "api_key";

/// The OpenAPI document of the API served under `api_prefix` (as served at `/openapi.json`,
/// whose `info.version` is the running version).
pub fn openapi_document(api_prefix: &str) -> utoipa::openapi::OpenApi {
    let (_, mut document) =
        register(App::new().into_utoipa_app().openapi(ApiDoc::openapi()), api_prefix).split_for_parts();
    let components = document.components.get_or_insert_with(Components::new);
    components
        .add_security_scheme(BEARER, SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    components.add_security_scheme(API_KEY, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));

    let readiness = format!("{api_prefix}/health");
    let versioned = format!("{api_prefix}/");
    for (path, item) in &mut document.paths.paths {
        if !path.starts_with(&versioned) {
            continue;
        }
        let guarded = *path != readiness;
        for operation in operations(item) {
            if guarded {
                operation.security = Some(vec![
                    SecurityRequirement::new(BEARER, Vec::<String>::new()),
                    SecurityRequirement::new(API_KEY, Vec::<String>::new()),
                ]);
                add_error(operation, "401", "Missing or invalid API key (when keys are configured)");
                add_error(operation, "429", "Rate limit exceeded (see `Retry-After`)");
                add_error(operation, "503", "The metadata database is unavailable (see `Retry-After`)");
            }
            add_error(operation, "500", "Internal error (generic body)");
        }
    }
    document
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = &mut Operation> {
    [&mut item.get, &mut item.post, &mut item.put, &mut item.patch, &mut item.delete].into_iter().flatten()
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let content = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let response = Response::builder().description(description).content("application/json", content).build();
    operation.responses.responses.entry(status.to_owned()).or_insert(RefOr::T(response));
}
