//! The OpenAPI 3.1 document: the paths collected from the registered handlers, plus what every
//! route shares and can be derived instead of repeated: security and the 401/429/503/500
//! answers of versioned routes, the 400/408/413/415 answers of every operation with a body, and
//! the links from each `POST` that creates a resource to the operations on it.

use std::collections::BTreeMap;

use actix_web::App;
use utoipa::OpenApi;
use utoipa::openapi::link::LinkBuilder;
use utoipa::openapi::path::{HttpMethod, Operation, PathItem};
use utoipa::openapi::security::{
    ApiKey, ApiKeyValue, HttpAuthScheme, HttpBuilder, SecurityRequirement, SecurityScheme,
};
use utoipa::openapi::{Components, Content, Ref, RefOr, Response};
use utoipa_actix_web::AppExt;

use crate::app::api_scope;

/// The document's fixed parts; the paths come from [`api_scope`].
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
        (name = "alerts", description = "Alerts on slots and sources, their rules, and the notification channels \
                                         they are delivered to"),
        (name = "cleanup-tasks", description = "Work on sources that outlives what asked for it: managed slots \
                                                 to drop whose pipelines are gone"),
        (name = "health", description = "Liveness and readiness"),
        (name = "meta", description = "This document, its interactive UI and Prometheus metrics"),
    )
)]
struct ApiDoc;

const BEARER: &str = "bearer";
const API_KEY: &str = "api_key";

/// The OpenAPI document of the API served under `api_prefix` (as served at `/openapi.json`,
/// whose `info.version` is the running version).
pub fn openapi_document(api_prefix: &str) -> utoipa::openapi::OpenApi {
    let (_, mut document) =
        App::new().into_utoipa_app().openapi(ApiDoc::openapi()).service(api_scope(api_prefix)).split_for_parts();
    let components = document.components.get_or_insert_with(Components::new);
    components
        .add_security_scheme(BEARER, SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()));
    components.add_security_scheme(API_KEY, SecurityScheme::ApiKey(ApiKey::Header(ApiKeyValue::new("X-API-Key"))));

    let readiness = format!("{api_prefix}/health");
    let versioned = format!("{api_prefix}/");
    for (path, item) in &mut document.paths.paths {
        let guarded = path.starts_with(&versioned) && *path != readiness;
        for (_, operation) in operations(item) {
            if guarded {
                operation.security = Some(vec![
                    SecurityRequirement::new(BEARER, Vec::<String>::new()),
                    SecurityRequirement::new(API_KEY, Vec::<String>::new()),
                ]);
                add_error(operation, "401", "Missing or invalid API key (when keys are configured)");
                add_error(operation, "429", "Rate limit exceeded (see `Retry-After`)");
                add_error(operation, "503", "The metadata database is unavailable (see `Retry-After`)");
            }
            if operation.request_body.is_some() {
                add_error(operation, "400", "The body could not be received (a broken upload)");
                add_error(operation, "408", "The body did not arrive in time; the connection is closed");
                add_error(operation, "413", "Body too large");
                add_error(operation, "415", "Not JSON");
                add_error(operation, "422", "Invalid body (every problem listed)");
            }
            if path.starts_with(&versioned) {
                add_error(operation, "500", "Internal error (generic body)");
            }
        }
    }
    add_links(&mut document);
    document
}

fn operations(item: &mut PathItem) -> impl Iterator<Item = (HttpMethod, &mut Operation)> {
    [
        (HttpMethod::Get, &mut item.get),
        (HttpMethod::Post, &mut item.post),
        (HttpMethod::Put, &mut item.put),
        (HttpMethod::Patch, &mut item.patch),
        (HttpMethod::Delete, &mut item.delete),
    ]
    .into_iter()
    .filter_map(|(method, operation)| operation.as_mut().map(|operation| (method, operation)))
}

fn add_error(operation: &mut Operation, status: &str, description: &str) {
    let content = Content::new(Some(Ref::from_schema_name("ErrorBody")));
    let response = Response::builder().description(description).content("application/json", content).build();
    operation.responses.responses.entry(status.to_owned()).or_insert(RefOr::T(response));
}

/// Links each `201` of `POST {collection}` to the operations that can use the created id:
/// every operation on `{collection}/{id}` and below it, every operation with a path parameter
/// named `{singular}_id` (`/wal-monitor/sources/{source_id}`), and every body field
/// `{singular}_id` (a pipeline's `source_id`) — so clients and the contract test can follow a
/// resource from its creation to everything that takes it.
fn add_links(document: &mut utoipa::openapi::OpenApi) {
    let bodies = body_fields(document);
    let paths = &mut document.paths.paths;
    let mut links: Vec<(String, LinkBuilder, String)> = Vec::new();
    for (collection, item) in paths.iter() {
        if item.post.as_ref().and_then(|post| post.operation_id.as_ref()).is_none() {
            continue;
        }
        let member = format!("{collection}/{{id}}");
        let Some(singular) = collection.rsplit('/').next().and_then(|last| last.strip_suffix('s')) else { continue };
        let reference = format!("{}_id", singular.replace('-', "_"));
        for (path, target) in paths.iter() {
            let mut target = target.clone();
            for (_, operation) in operations(&mut target) {
                let Some(id) = operation.operation_id.clone() else { continue };
                let link = if path == &member || path.starts_with(&format!("{member}/")) {
                    LinkBuilder::new().parameter("id", "$response.body#/id")
                } else if path.contains(&format!("{{{reference}}}")) {
                    LinkBuilder::new().parameter(&reference, "$response.body#/id")
                } else if bodies.get(&id).is_some_and(|fields| fields.contains(&reference)) {
                    LinkBuilder::new().request_body(Some(serde_json::json!({ &reference: "$response.body#/id" })))
                } else {
                    continue;
                };
                links.push((collection.clone(), link.operation_id(id.clone()), id));
            }
        }
    }
    for (collection, link, target) in links {
        let created = paths
            .get_mut(&collection)
            .and_then(|item| item.post.as_mut())
            .and_then(|post| post.responses.responses.get_mut("201"));
        if let Some(RefOr::T(response)) = created {
            let link = link.description(format!("The created resource, through `{target}`")).build();
            response.links.insert(target, RefOr::T(link));
        }
    }
}

/// The JSON body fields of each operation, by operation id.
fn body_fields(document: &utoipa::openapi::OpenApi) -> BTreeMap<String, Vec<String>> {
    let schemas = document.components.as_ref().map(|components| &components.schemas);
    let mut fields = BTreeMap::new();
    for item in document.paths.paths.values() {
        let mut item = item.clone();
        for (_, operation) in operations(&mut item) {
            let schema = operation
                .request_body
                .as_ref()
                .and_then(|body| match body {
                    RefOr::T(body) => body.content.get("application/json"),
                    RefOr::Ref(_) => None,
                })
                .and_then(|content| match content {
                    RefOr::T(content) => content.schema.as_ref(),
                    RefOr::Ref(_) => None,
                });
            let name = match schema {
                Some(RefOr::Ref(reference)) => reference.ref_location.rsplit('/').next().map(str::to_owned),
                _ => None,
            };
            let properties =
                name.and_then(|name| schemas.and_then(|schemas| schemas.get(&name))).and_then(|schema| match schema {
                    RefOr::T(utoipa::openapi::schema::Schema::Object(object)) => {
                        Some(object.properties.keys().cloned().collect::<Vec<_>>())
                    }
                    _ => None,
                });
            if let (Some(id), Some(properties)) = (operation.operation_id.clone(), properties) {
                fields.insert(id, properties);
            }
        }
    }
    fields
}
