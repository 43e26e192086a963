//! Liveness for Docker's HEALTHCHECK and TorchServe clients.

use actix_web::{web, HttpResponse};
use serde::Serialize;
use utoipa::ToSchema;

use crate::endpoints;
use crate::errors::ApiError;
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct PingResponse {
    #[schema(example = "Healthy")]
    status: &'static str,
}

/// TorchServe's health check: the server is up and the model loaded.
#[utoipa::path(get, path = endpoints::PING, tag = "operations", responses((status = 200, body = PingResponse)))]
pub async fn ping() -> HttpResponse {
    HttpResponse::Ok().json(PingResponse { status: "Healthy" })
}

/// Prometheus metrics: requests by route and status, latency histograms, batch sizes, model info.
#[utoipa::path(get, path = endpoints::METRICS, tag = "operations",
    responses((status = 200, description = "Prometheus text format", content_type = "text/plain; version=0.0.4", body = String)))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let text = state
        .metrics
        .render()
        .map_err(|err| ApiError::Internal(format!("cannot render the metrics: {err}")))?;
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(text))
}

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::PING).route(web::get().to(ping)))
        .service(web::resource(endpoints::METRICS).route(web::get().to(metrics)));
}

/// The metrics listener: `/metrics` alone, as TorchServe's `metrics_address` serves it (any
/// other path is the listener's 404 with a body).
pub fn configure_metrics(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource(endpoints::METRICS).route(web::get().to(metrics)));
}
