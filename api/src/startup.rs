//! Building and running the HTTP server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

use crate::catch_panic::catch_panic;
use crate::metrics::{self, Metrics};
use crate::registry::{LoadedModel, Registry};
use crate::CorsSettings;
use crate::{openapi, routes, ServiceSettings};

/// What every handler shares.
pub struct AppState {
    pub registry: Registry,
    pub settings: ServiceSettings,
    /// Serialised once at start-up.
    pub openapi_json: web::Bytes,
    pub metrics: Metrics,
}

/// The server, bound and ready to run. Tests bind port 0 and read [`Application::port`].
pub struct Application {
    port: u16,
    server: Server,
}

impl Application {
    /// The server for `models` (the first also answers the MAX routes), listening on `listener`.
    pub fn build(
        listener: TcpListener,
        models: Vec<LoadedModel>,
        settings: ServiceSettings,
    ) -> std::io::Result<Self> {
        let port = listener.local_addr()?.port();
        let infos: Vec<_> = models.iter().map(|m| m.model.info().clone()).collect();
        let openapi_json = serde_json::to_vec(&openapi::document(&settings.api, &infos))
            .map_err(std::io::Error::other)?
            .into();
        let limits = settings.limits.clone();
        let cors = settings.cors.clone();
        let metrics = Metrics::new().map_err(std::io::Error::other)?;
        let registry = Registry::new(settings.limits.max_concurrent_decodes);
        for model in models {
            registry.add(model, &metrics);
        }
        let state = web::Data::new(AppState {
            registry,
            metrics,
            settings,
            openapi_json,
        });
        let server = HttpServer::new(move || {
            App::new()
                .app_data(state.clone())
                .wrap(middleware::from_fn(catch_panic))
                .wrap(middleware::from_fn(metrics::record))
                .wrap(middleware::Condition::new(cors.enabled, cors_policy(&cors)))
                .wrap(middleware::Logger::default())
                .configure(routes::configure)
        })
        .client_request_timeout(limits.request_timeout)
        .keep_alive(limits.keep_alive)
        .listen(listener)?
        .run();
        Ok(Self { port, server })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests.
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        self.server.await
    }
}

fn cors_policy(settings: &CorsSettings) -> actix_cors::Cors {
    let policy = actix_cors::Cors::default()
        .allow_any_method()
        .allow_any_header()
        .expose_any_header()
        .max_age(3600);
    if settings.origins.is_empty() {
        return policy.allow_any_origin();
    }
    settings
        .origins
        .iter()
        .fold(policy, |policy, origin| policy.allowed_origin(origin))
}
