//! Building and running the HTTP server.

use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::{middleware, web, App, HttpServer};

use crate::auth::{self, Api, RequiredToken};
use crate::catch_panic::catch_panic;
use crate::metrics::Metrics;
use crate::recording;
use crate::registry::{LoadedModel, Registry};
use crate::state::AppState;
use crate::work_queue::DecodeBudget;
use crate::CorsSettings;
use crate::{openapi, routes, ServiceSettings};

/// The OpenAPI document of the models served, serialised; the state calls it whenever a model
/// comes or goes.
fn serialised_document(
    settings: &ServiceSettings,
    registry: &Registry,
) -> serde_json::Result<web::Bytes> {
    let infos: Vec<_> = registry
        .all()
        .iter()
        .map(|served| served.info().clone())
        .collect();
    let document = openapi::document(&settings.api, &infos, settings.auth.inference.is_some());
    serde_json::to_vec(&document).map(web::Bytes::from)
}

/// Where the server listens: the inference API, the management API when it is on (on a listener
/// of its own, or on the inference listener as TorchServe does when both addresses are the same),
/// and `/metrics` alone when asked for.
#[derive(Default)]
pub struct Listeners {
    pub inference: Option<TcpListener>,
    pub management: Option<TcpListener>,
    pub management_on_inference: bool,
    pub metrics: Option<TcpListener>,
}

impl From<TcpListener> for Listeners {
    fn from(inference: TcpListener) -> Self {
        Self {
            inference: Some(inference),
            ..Self::default()
        }
    }
}

/// The server, bound and ready to run. Tests bind port 0 and read [`Application::port`].
pub struct Application {
    port: u16,
    management_port: Option<u16>,
    metrics_port: Option<u16>,
    servers: Vec<Server>,
}

impl Application {
    /// The server for `models` (the first also answers the MAX routes), listening on `listeners`.
    pub fn build(
        listeners: impl Into<Listeners>,
        models: Vec<LoadedModel>,
        settings: ServiceSettings,
    ) -> std::io::Result<Self> {
        let listeners = listeners.into();
        let inference = listeners
            .inference
            .ok_or_else(|| std::io::Error::other("no inference listener"))?;
        let port = inference.local_addr()?.port();
        let metrics = Metrics::new().map_err(std::io::Error::other)?;
        let registry = Registry::new(
            settings.limits.runners_per_model,
            settings.limits.job_queue_size,
            DecodeBudget::new(settings.limits.decoder_budget_bytes),
        );
        for model in models {
            registry
                .add(model, &metrics)
                .map_err(|err| std::io::Error::other(err.to_string()))?;
        }
        let state = web::Data::new(
            AppState::new(registry, settings, metrics, serialised_document)
                .map_err(std::io::Error::other)?,
        );
        let (api, configure): (Api, fn(&mut web::ServiceConfig)) =
            if listeners.management_on_inference {
                (Api::Both, routes::configure_both)
            } else {
                (Api::Inference, routes::configure)
            };
        let mut servers = vec![serve(inference, state.clone(), api, configure)?];
        let management_port = match listeners.management {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                servers.push(serve(
                    listener,
                    state.clone(),
                    Api::Management,
                    routes::management::configure,
                )?);
                Some(port)
            }
            None => listeners.management_on_inference.then_some(port),
        };
        let metrics_port = match listeners.metrics {
            Some(listener) => {
                let port = listener.local_addr()?.port();
                servers.push(serve(
                    listener,
                    state,
                    Api::Metrics,
                    routes::health::configure_metrics,
                )?);
                Some(port)
            }
            None => None,
        };
        Ok(Self {
            port,
            management_port,
            metrics_port,
            servers,
        })
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The management API's port, when it is on.
    pub fn management_port(&self) -> Option<u16> {
        self.management_port
    }

    /// The metrics listener's port, when it is on.
    pub fn metrics_port(&self) -> Option<u16> {
        self.metrics_port
    }

    /// Serves until SIGINT or SIGTERM, then drains in-flight requests on every listener (actix's
    /// own signal handling would stop at once on SIGINT, dropping them).
    pub async fn run_until_stopped(self) -> std::io::Result<()> {
        let handles: Vec<_> = self.servers.iter().map(Server::handle).collect();
        let servers = futures_util::future::try_join_all(self.servers);
        futures_util::pin_mut!(servers);
        tokio::select! {
            result = &mut servers => { result?; }
            () = shutdown_signal() => {
                log::info!("stopping: finishing the requests in flight");
                // The servers act on a stop only while they are polled.
                let stops = futures_util::future::join_all(handles.iter().map(|handle| handle.stop(true)));
                let (result, _) = futures_util::future::join(&mut servers, stops).await;
                result?;
            }
        }
        Ok(())
    }
}

/// One listener's server: `configure`'s routes, asking for `api`'s token.
fn serve(
    listener: TcpListener,
    state: web::Data<AppState>,
    api: Api,
    configure: fn(&mut web::ServiceConfig),
) -> std::io::Result<Server> {
    let limits = state.settings.limits.clone();
    let cors = state.settings.cors.clone();
    let required = web::Data::new(RequiredToken {
        api,
        tokens: state.settings.auth.clone(),
    });
    let inference = api != Api::Management;
    let workers = limits.http_workers;
    let server = HttpServer::new(move || {
        App::new()
            .app_data(state.clone())
            .app_data(required.clone())
            // Around the routes only: a handler's own errors and a refused token already have bodies.
            .wrap(middleware::Condition::new(
                inference,
                middleware::from_fn(routes::fallback::with_error_body),
            ))
            // Inside CORS, so that preflight requests (which carry no token) are answered, and
            // inside the metrics, so that refusals are counted.
            .wrap(middleware::from_fn(auth::require_token))
            .wrap(middleware::from_fn(auth::refuse_web_pages))
            .wrap(middleware::from_fn(catch_panic))
            .wrap(middleware::from_fn(recording::record))
            .wrap(middleware::Condition::new(
                inference && cors.enabled,
                cors_policy(&cors),
            ))
            .wrap(middleware::Logger::default())
            .configure(configure)
    })
    .client_request_timeout(limits.request_timeout)
    .keep_alive(limits.keep_alive)
    .disable_signals();
    let server = match workers {
        Some(workers) => server.workers(workers),
        None => server,
    };
    Ok(server.listen(listener)?.run())
}

/// SIGTERM (what Docker and Kubernetes send) or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        match (
            signal(SignalKind::terminate()),
            signal(SignalKind::interrupt()),
        ) {
            (Ok(mut terminate), Ok(mut interrupt)) => {
                tokio::select! {
                    _ = terminate.recv() => {}
                    _ = interrupt.recv() => {}
                }
            }
            _ => {
                log::warn!("cannot listen for SIGTERM and SIGINT: stop the server by killing it");
                std::future::pending::<()>().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
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
