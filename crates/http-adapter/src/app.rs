//! Assembling the API: its routes (registered once for both serving and the OpenAPI document),
//! shared state, the docs UI and the 404/405 fallback, as one scope any `App` can mount; and the
//! app of one worker, with whatever else is mounted next to the API.

use std::io;
use std::sync::Arc;

use actix_web::body::BoxBody;
use actix_web::dev::{ResourceDef, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::Method;
use actix_web::http::header;
use actix_web::middleware::from_fn;
use actix_web::web::{self, Bytes};
use actix_web::{App, Error, HttpRequest, HttpResponse, ResponseError};
use utoipa::openapi::OpenApi;
use utoipa_actix_web::scope;
use utoipa_swagger_ui::SwaggerUi;

use crate::error::ApiError;
use crate::input::body::BodySettings;
use crate::middleware::{ApiKeys, ClientLimiter, Guard, api_boundary, guard, request_context};
use crate::resources::meta::{self, DocsPage, MetricsText, OpenApiJson};
use crate::resources::{alerts, channels, destinations, health, pipelines, slots, source_operations, sources, wal};
use crate::{HttpSettings, Mount, RenderMetrics, ServicesFactory, openapi};

/// The version the service reports (health, OpenAPI).
#[derive(Debug, Clone)]
pub(crate) struct Version(pub String);

/// The readiness route, relative to the API prefix; open without key or quota.
const READINESS_PATH: &str = "/health";

/// Everything the app needs, built once and shared by every worker (the services are built
/// per worker).
#[derive(Clone)]
pub(crate) struct AppState {
    services: ServicesFactory,
    prefix: String,
    version: web::Data<Version>,
    body: BodySettings,
    guard: web::Data<Guard>,
    openapi: web::Data<OpenApiJson>,
    docs: web::Data<DocsPage>,
    swagger: Arc<utoipa_swagger_ui::Config<'static>>,
    routes: web::Data<RouteTable>,
    metrics: web::Data<MetricsText>,
}

impl AppState {
    /// Checks the settings and builds the shared state, including the OpenAPI document.
    pub(crate) fn new(services: ServicesFactory, settings: &HttpSettings, metrics: RenderMetrics) -> io::Result<Self> {
        let prefix = settings.api_prefix.as_str();
        if !prefix.starts_with('/') || prefix.ends_with('/') {
            return Err(invalid_input(format!(
                "the API prefix must start with '/' and not end with '/' (got {prefix:?})"
            )));
        }
        let limiter = match settings.rate_limit {
            None => None,
            Some(limit) => Some(
                ClientLimiter::new(limit)
                    .ok_or_else(|| invalid_input("the rate limit needs a positive rate and burst".to_owned()))?,
            ),
        };
        let keys = (!settings.api_keys.is_empty()).then(|| ApiKeys::new(&settings.api_keys));

        let mut document = openapi::openapi_document(prefix);
        document.info.version.clone_from(&settings.version);
        let json = serde_json::to_vec(&document).map_err(io::Error::other)?;
        let swagger = Arc::new(utoipa_swagger_ui::Config::from("/openapi.json"));

        Ok(Self {
            services,
            prefix: prefix.to_owned(),
            version: web::Data::new(Version(settings.version.clone())),
            body: BodySettings { limit: settings.body_limit_bytes, timeout: settings.body_timeout },
            guard: web::Data::new(Guard { open_path: READINESS_PATH, keys, limiter }),
            openapi: web::Data::new(OpenApiJson(Bytes::from(json))),
            docs: web::Data::new(DocsPage::new(Arc::clone(&swagger))?),
            swagger,
            routes: web::Data::new(RouteTable::new(&document)),
            metrics: web::Data::new(MetricsText(metrics)),
        })
    }
}

fn invalid_input(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}

/// The whole API as one scope with an empty prefix: the root routes (liveness, this document,
/// its UI, metrics) and the versioned scope behind its guard. Used to serve and, in an empty app,
/// to build the OpenAPI document, so the two cannot drift apart.
pub(crate) fn api_scope(
    prefix: &str,
) -> scope::Scope<
    impl ServiceFactory<ServiceRequest, Config = (), Response = ServiceResponse, Error = Error, InitError = ()> + use<>,
> {
    scope::scope("")
        .service(health::liveness)
        .service(meta::openapi_json)
        .service(meta::docs)
        .service(meta::metrics)
        .service(
            scope::scope(prefix)
                .wrap(from_fn(guard))
                .service(health::readiness)
                // Before `/sources/{id}`: `validate` is not an id, so another method on this
                // path is a 405 (through the fallback), not a 422 on a malformed id.
                .service(source_operations::validate_source_settings)
                .map(|scope| scope.service(web::resource("/sources/validate").to(fallback)))
                .service(sources::create_source)
                .service(sources::list_sources)
                .service(sources::get_source)
                .service(sources::put_source)
                .service(sources::patch_source)
                .service(sources::delete_source)
                .service(destinations::create_destination)
                .service(destinations::list_destinations)
                .service(destinations::get_destination)
                .service(destinations::put_destination)
                .service(destinations::patch_destination)
                .service(destinations::delete_destination)
                .service(pipelines::create_pipeline)
                .service(pipelines::list_pipelines)
                .service(pipelines::get_pipeline)
                .service(pipelines::put_pipeline)
                .service(pipelines::patch_pipeline)
                .service(pipelines::delete_pipeline)
                .service(pipelines::start_pipeline)
                .service(pipelines::pause_pipeline)
                .service(pipelines::refresh_pipeline)
                .service(wal::wal_history)
                .service(wal::list_wal_states)
                .service(wal::get_wal_state)
                .service(wal::wal_chart)
                .service(wal::system_history)
                .service(alerts::list_alerts)
                .service(alerts::get_alert)
                .service(alerts::acknowledge_alert)
                .service(alerts::list_alert_rules)
                .service(alerts::patch_alert_rule)
                .service(alerts::list_source_alert_rules)
                .service(alerts::patch_source_alert_rule)
                .service(alerts::delete_source_alert_rule)
                .service(channels::create_channel)
                .service(channels::list_channels)
                .service(channels::get_channel)
                .service(channels::patch_channel)
                .service(channels::delete_channel)
                .service(channels::test_channel)
                .service(channels::list_deliveries)
                .service(source_operations::validate_source)
                .service(source_operations::list_source_tables)
                .service(source_operations::get_source_publication)
                .service(source_operations::put_source_publication)
                .service(source_operations::delete_source_publication)
                .service(slots::create_pipeline_slot)
                .service(slots::get_pipeline_slot)
                .service(slots::delete_pipeline_slot)
                .service(slots::list_cleanup_tasks)
                .service(slots::delete_cleanup_task),
        )
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("prefix", &self.prefix).finish_non_exhaustive()
    }
}

impl AppState {
    /// Registers the API into `cfg`, with services built for the calling worker (call on the
    /// worker's thread): their state, and one scope that serves every API route, answers every
    /// path nothing registered before it serves (404, 405, `OPTIONS`), and gives its own errors
    /// the one error body.
    pub(crate) fn configure(&self, cfg: &mut web::ServiceConfig) {
        let services = (self.services)();
        cfg.app_data(web::Data::from(services.sources))
            .app_data(web::Data::from(services.destinations))
            .app_data(web::Data::from(services.pipelines))
            .app_data(web::Data::from(services.health))
            .app_data(web::Data::from(services.wal_monitor))
            .app_data(web::Data::from(services.alerts))
            .app_data(web::Data::from(services.channels))
            .app_data(web::Data::from(services.source_operations))
            .app_data(web::Data::from(services.slots))
            .app_data(web::Data::from(services.cleanup_tasks))
            .app_data(self.body)
            .app_data(self.version.clone())
            .app_data(self.guard.clone())
            .app_data(self.openapi.clone())
            .app_data(self.docs.clone())
            .app_data(self.routes.clone())
            .app_data(self.metrics.clone())
            // The default of every resource and scope registered without one of its own (a
            // resource asked for a method it does not serve included): actix falls back to the
            // app's default, not to the enclosing scope's.
            .default_service(web::to(fallback));
        let swagger = (*self.swagger).clone();
        cfg.service(
            api_scope(&self.prefix)
                // The UI's own files, served from the binary (no CDN); it loads our /openapi.json.
                .map(|scope| scope.service(SwaggerUi::new("/docs/{_:.*}").config(swagger)))
                .wrap(from_fn(api_boundary)),
        );
    }
}

/// The app of one worker: `mounts` first (they take precedence over the API's catch-all), then
/// the API, all inside the request context (request id, access log, request metrics).
pub(crate) fn build_app(
    state: &AppState,
    mounts: &[Mount],
) -> App<
    impl ServiceFactory<ServiceRequest, Config = (), Response = ServiceResponse<BoxBody>, Error = Error, InitError = ()>
    + use<>,
> {
    let mut app = App::new();
    for mount in mounts {
        app = app.configure(|cfg| mount(cfg));
    }
    app.configure(|cfg| state.configure(cfg)).wrap(from_fn(request_context))
}

/// No route matched: `OPTIONS` on a route answers which methods it serves; another method the
/// route does not serve is 405 with `Allow`; a path no route serves is 404.
async fn fallback(req: HttpRequest, routes: web::Data<RouteTable>) -> HttpResponse {
    // The path as the router saw it (percent-decoded the same way).
    match routes.allowed(req.match_info().as_str()) {
        Some(allow) if req.method() == Method::OPTIONS => {
            HttpResponse::NoContent().insert_header((header::ALLOW, allow)).finish()
        }
        Some(allow) => ApiError::method_not_allowed(allow).error_response(),
        None => ApiError::route_not_found().error_response(),
    }
}

/// Every documented path with its methods, to tell a 405 from a 404.
#[derive(Debug)]
pub(crate) struct RouteTable(Vec<(ResourceDef, Vec<Method>)>);

impl RouteTable {
    fn new(document: &OpenApi) -> Self {
        let routes = document
            .paths
            .paths
            .iter()
            .map(|(path, item)| {
                // HEAD is served wherever GET is (see `request_context`), OPTIONS everywhere.
                let methods = [
                    (Method::GET, item.get.is_some()),
                    (Method::HEAD, item.get.is_some()),
                    (Method::POST, item.post.is_some()),
                    (Method::PUT, item.put.is_some()),
                    (Method::PATCH, item.patch.is_some()),
                    (Method::DELETE, item.delete.is_some()),
                    (Method::OPTIONS, true),
                ];
                let methods = methods.into_iter().filter_map(|(method, present)| present.then_some(method)).collect();
                (ResourceDef::new(path.as_str()), methods)
            })
            .collect();
        Self(routes)
    }

    /// The methods served at `path`, as an `Allow` value, if the path is a route at all. A
    /// literal route wins over templated ones it also matches (`/sources/validate` is not
    /// `/sources/{id}`), as in the router.
    fn allowed(&self, path: &str) -> Option<String> {
        let matching: Vec<&(ResourceDef, Vec<Method>)> =
            self.0.iter().filter(|(resource, _)| resource.is_match(path)).collect();
        let literal = matching.iter().find(|(resource, _)| !resource.is_prefix() && resource.pattern() == Some(path));
        let chosen: Vec<&(ResourceDef, Vec<Method>)> = match literal {
            Some(route) => vec![*route],
            None => matching,
        };
        let mut methods: Vec<&str> = Vec::new();
        for method in chosen.iter().flat_map(|(_, methods)| methods.iter().map(Method::as_str)) {
            if !methods.contains(&method) {
                methods.push(method);
            }
        }
        (!methods.is_empty()).then(|| methods.join(", "))
    }
}
